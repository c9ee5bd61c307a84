//! A message the codec does not type: an unknown class, or (from [`super::NdcMessage::decode`])
//! a message whose typed reading would not give back the same bytes. Kept as its raw fields so
//! that it can be logged, counted and written back unchanged; never an error that ends a
//! connection.
//!
//! Its fields may hold anything a terminal sends, card data included, so `Debug` and
//! `Serialize` mask them: every PAN-like run of 13 to 19 digits everywhere, and in a
//! transaction request (`11`) every field after the MCN (tracks, PIN buffer, buffers) entirely.
//! [`UnknownMessage::fields`] is the clear form.

use std::fmt;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use super::error::NdcError;
use super::fields::{latin1, Writer, FS};
use super::sensitive::{mask_pan_runs, masked_buffer};

/// A message kept as raw FS fields.
#[derive(Clone, PartialEq, Eq)]
pub struct UnknownMessage {
    /// The first field (class, subclass, response flag), as sent.
    pub class: String,
    /// The second field, normally the LUNO; `None` when the message has no FS at all.
    pub luno: Option<String>,
    /// Every field after the LUNO, empty ones included, as sent.
    pub fields: Vec<String>,
}

impl UnknownMessage {
    /// Splits any bytes into class, LUNO and fields; never fails.
    pub fn parse(bytes: &[u8]) -> Self {
        let mut it = bytes.split(|&b| b == FS);
        let class = latin1(it.next().unwrap_or_default());
        let luno = it.next().map(latin1);
        Self {
            class,
            luno,
            fields: it.map(latin1).collect(),
        }
    }

    pub fn luno(&self) -> &str {
        self.luno.as_deref().unwrap_or("")
    }

    /// The same bytes back (fails only for a value holding FS or a wide character in a field,
    /// or fields without a LUNO).
    pub fn encode(&self) -> Result<Vec<u8>, NdcError> {
        let mut w = Writer::new("unknown");
        w.text("message class", &self.class)?;
        match &self.luno {
            Some(l) => {
                w.fs().text("LUNO", l)?;
            }
            None if !self.fields.is_empty() => {
                return Err(w.err(
                    "LUNO",
                    super::error::Reason::Invalid("fields need a LUNO slot"),
                ))
            }
            None => {}
        }
        for f in &self.fields {
            w.fs().text("field", f)?;
        }
        Ok(w.finish())
    }

    /// The fields as `Debug`/`Serialize` show them (see the module doc).
    pub fn masked_fields(&self) -> Vec<String> {
        let request = self.class == "11";
        self.fields
            .iter()
            .enumerate()
            .map(|(k, f)| {
                // fields[0] is message field 2; a request's tracks start at message field 5.
                if request && k >= 3 {
                    masked_buffer(f)
                } else {
                    mask_pan_runs(f)
                }
            })
            .collect()
    }
}

impl fmt::Debug for UnknownMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnknownMessage")
            .field("class", &self.class)
            .field("luno", &self.luno)
            .field("fields", &self.masked_fields())
            .finish()
    }
}

impl Serialize for UnknownMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("UnknownMessage", 3)?;
        st.serialize_field("class", &self.class)?;
        st.serialize_field("luno", &self.luno)?;
        st.serialize_field("fields", &self.masked_fields())?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_bytes_round_trip() {
        for raw in [
            &b""[..],
            b"99",
            b"99\x1c",
            b"51\x1c001\x1c\x1cdata\x1c\x1c",
            b"\x1c\x1c\x1c",
        ] {
            assert_eq!(UnknownMessage::parse(raw).encode().unwrap(), raw);
        }
    }

    #[test]
    fn card_data_is_masked() {
        let u = UnknownMessage::parse(b"11\x1c001\x1c\x1c\x1c11\x1c;4761739001010010=3012?");
        let shown = format!("{u:?} {}", serde_json::to_string(&u).unwrap());
        assert!(!shown.contains("4761739001010010"), "{shown}");
        let e = UnknownMessage::parse(b"99\x1c001\x1cPAN 4761739001010010 END");
        assert!(format!("{e:?}").contains("476173******0010"));
    }
}
