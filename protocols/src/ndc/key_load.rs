//! Loading a key into the terminal's encrypting PIN pad: the extended key change data command.
//!
//! The host never sends a clear key. It enciphers the new key under a key the terminal already
//! holds (the terminal master key, entered by two custodians in components) and sends it in a
//! data command `3 FS luno FS FS 4<modifier> FS <key field>`: identifier `41` a new master key,
//! `42` the communications/PIN key (the TPK that enciphers PIN buffer A), `45` the MAC key
//! (NDC.md section 5, "Keys"). The terminal deciphers it and answers `22 … 9`, or, when so
//! configured ([`super::Dialect::key_kvv_reply`]), `23 FS luno FS FS 3 FS <KVV>`.
//!
//! The key field ([`KeyLoad::encode_field`]) is a 3-character length, the number of decimal
//! digits that follow written as 3 upper-case hex digits, then each key byte as 3 decimal digits:
//! `030` + 48 digits for a 16-byte key, `048` + 72 for 24 bytes, `018` + 24 for 8.
//!
//! Nothing here prints key material: [`KeyLoad`] shows as `KeyLoad(len=030 ****)`, errors name
//! positions and counts, never digits.

use std::fmt;

use serde::{Serialize, Serializer};

use super::data_command::{DataCommand, DataCommandData};
use super::sensitive::KeyField;

/// Key lengths a DES/3DES PIN pad takes: single, double and triple length.
pub const KEY_LENGTHS: [usize; 3] = [8, 16, 24];

/// Which key an extended key change (`4x`) loads: the `x` of the identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyChangeModifier {
    /// `1`: a new terminal master key, enciphered under the current one.
    Master,
    /// `2`: the communications (PIN) key, enciphered under the master key.
    CommsPin,
    /// `5`: the MAC key, enciphered under the master key.
    Mac,
}

impl KeyChangeModifier {
    /// The modifier as it travels after the subclass (`"2"` for the comms/PIN key).
    pub const fn code(self) -> &'static str {
        match self {
            Self::Master => "1",
            Self::CommsPin => "2",
            Self::Mac => "5",
        }
    }

    /// The modifier of a received command; `None` for one this crate does not name.
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "1" => Some(Self::Master),
            "2" => Some(Self::CommsPin),
            "5" => Some(Self::Mac),
            _ => None,
        }
    }
}

/// Why a key field does not hold a key. Names counts and positions, never the digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyLoadError {
    #[error("key field is {got} characters, too short for its 3-character length")]
    TooShort { got: usize },
    #[error("key field length is not 3 hexadecimal digits")]
    BadLengthField,
    #[error("key field has a character that is not a decimal digit at position {position}")]
    NonDigit { position: usize },
    #[error("key field announces {announced} digits but carries {got}")]
    DigitCountMismatch { announced: usize, got: usize },
    #[error("key field has {digits} digits, not a whole number of 3-digit bytes")]
    NotTriplets { digits: usize },
    #[error("key field byte {index} is above 255")]
    ByteTooLarge { index: usize },
    #[error("a key is 8, 16 or 24 bytes, got {got}")]
    UnsupportedKeyLength { got: usize },
}

/// A key as an extended key change carries it: enciphered under the terminal's master key (the
/// bytes are a cryptogram, never a clear key). Exists only with 8, 16 or 24 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyLoad {
    key_bytes: Vec<u8>,
}

impl KeyLoad {
    /// The enciphered key; 8, 16 or 24 bytes.
    pub fn new(key_bytes: Vec<u8>) -> Result<Self, KeyLoadError> {
        if !KEY_LENGTHS.contains(&key_bytes.len()) {
            return Err(KeyLoadError::UnsupportedKeyLength {
                got: key_bytes.len(),
            });
        }
        Ok(Self { key_bytes })
    }

    /// The enciphered key bytes (to decipher under the master key).
    pub fn key_bytes(&self) -> &[u8] {
        &self.key_bytes
    }

    pub fn into_key_bytes(self) -> Vec<u8> {
        self.key_bytes
    }

    /// The 3-character length prefix: the digit count as 3 upper-case hex digits (`030`).
    fn length_prefix(&self) -> String {
        format!("{:03X}", self.key_bytes.len() * 3)
    }

    /// The data command's key field: `030` + each byte as 3 decimal digits.
    pub fn encode_field(&self) -> String {
        let mut s = self.length_prefix();
        for b in &self.key_bytes {
            s.push_str(&format!("{b:03}"));
        }
        s
    }

    /// Reads a key field (the inverse of [`KeyLoad::encode_field`]); never panics. The length
    /// prefix is read as hex in either case.
    pub fn parse_field(field: &str) -> Result<Self, KeyLoadError> {
        let bytes = field.as_bytes();
        let (Some(len), Some(digits)) = (bytes.get(..3), bytes.get(3..)) else {
            return Err(KeyLoadError::TooShort {
                got: field.chars().count(),
            });
        };
        if !len.iter().all(u8::is_ascii_hexdigit) {
            return Err(KeyLoadError::BadLengthField);
        }
        let announced = len
            .iter()
            .fold(0usize, |acc, &h| acc * 16 + usize::from(hex_value(h)));
        if let Some(p) = digits.iter().position(|b| !b.is_ascii_digit()) {
            return Err(KeyLoadError::NonDigit { position: 3 + p });
        }
        if announced != digits.len() {
            return Err(KeyLoadError::DigitCountMismatch {
                announced,
                got: digits.len(),
            });
        }
        let triplets = digits.chunks_exact(3);
        if !triplets.remainder().is_empty() {
            return Err(KeyLoadError::NotTriplets {
                digits: digits.len(),
            });
        }
        if !KEY_LENGTHS.contains(&(digits.len() / 3)) {
            return Err(KeyLoadError::UnsupportedKeyLength {
                got: digits.len() / 3,
            });
        }
        let key_bytes = triplets
            .enumerate()
            .map(|(index, t)| {
                let v = t.iter().fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
                u8::try_from(v).map_err(|_| KeyLoadError::ByteTooLarge { index })
            })
            .collect::<Result<Vec<u8>, _>>()?;
        Ok(Self { key_bytes })
    }

    /// `len=030 ****`: what logs and JSON show.
    pub fn masked(&self) -> String {
        format!("len={} ****", self.length_prefix())
    }

    /// The data command's payload: extended key change (`4<modifier>`) carrying this key.
    pub fn data(&self, modifier: KeyChangeModifier) -> DataCommandData {
        DataCommandData::KeyChange {
            subclass: '4',
            modifier: modifier.code().to_owned(),
            data: KeyField::new(self.encode_field()),
        }
    }
}

fn hex_value(h: u8) -> u8 {
    match h {
        b'0'..=b'9' => h - b'0',
        b'a'..=b'f' => h - b'a' + 10,
        b'A'..=b'F' => h - b'A' + 10,
        _ => 0,
    }
}

impl fmt::Debug for KeyLoad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyLoad({})", self.masked())
    }
}

impl Serialize for KeyLoad {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

impl DataCommand {
    /// Extended key change `3 FS luno FS FS 4<modifier> FS <key field>`: no response flag, no
    /// sequence number, no MAC (set them on the value if the dialect wants them).
    pub fn extended_key_change(
        luno: impl Into<String>,
        modifier: KeyChangeModifier,
        key: &KeyLoad,
    ) -> Self {
        DataCommand::new(luno, key.data(modifier))
    }
}

impl DataCommandData {
    /// For an extended key change (`4x`): which key it loads (`None` for a modifier this crate
    /// does not name) and the key read from its field. `None` for any other data command,
    /// including the old-style key change `3x`.
    pub fn extended_key_load(
        &self,
    ) -> Option<(Option<KeyChangeModifier>, Result<KeyLoad, KeyLoadError>)> {
        match self {
            DataCommandData::KeyChange {
                subclass: '4',
                modifier,
                data,
            } => Some((
                KeyChangeModifier::from_code(modifier),
                KeyLoad::parse_field(data.expose()),
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Dialect;
    use super::*;

    #[test]
    fn field_is_hex_digit_count_then_3_digit_bytes() {
        let k = KeyLoad::new((0u8..16).map(|i| i * 17).collect()).unwrap();
        let f = k.encode_field();
        assert_eq!(f, "030000017034051068085102119136153170187204221238255");
        assert_eq!(KeyLoad::parse_field(&f), Ok(k));
        assert!(KeyLoad::new(vec![0; 24])
            .unwrap()
            .encode_field()
            .starts_with("048"));
        assert!(KeyLoad::new(vec![0; 8])
            .unwrap()
            .encode_field()
            .starts_with("018"));
    }

    #[test]
    fn bad_fields_are_named() {
        use KeyLoadError::*;
        let ok = format!("018{}", "001".repeat(8));
        assert!(KeyLoad::parse_field(&ok).is_ok());
        let cases: Vec<(String, KeyLoadError)> = vec![
            ("03".into(), TooShort { got: 2 }),
            (format!("0G8{}", "001".repeat(8)), BadLengthField),
            (
                format!("018{}x", "001".repeat(8)),
                NonDigit { position: 27 },
            ),
            (
                format!("018{}", "001".repeat(7)),
                DigitCountMismatch {
                    announced: 24,
                    got: 21,
                },
            ),
            (
                format!("019{}0", "001".repeat(8)),
                NotTriplets { digits: 25 },
            ),
            (
                format!("01E{}", "001".repeat(10)),
                UnsupportedKeyLength { got: 10 },
            ),
            (
                format!("018001256{}", "001".repeat(6)),
                ByteTooLarge { index: 1 },
            ),
            ("000".into(), UnsupportedKeyLength { got: 0 }),
        ];
        for (field, want) in cases {
            assert_eq!(KeyLoad::parse_field(&field), Err(want), "{field}");
        }
        assert_eq!(
            KeyLoad::new(vec![1; 15]),
            Err(UnsupportedKeyLength { got: 15 })
        );
    }

    #[test]
    fn key_change_command_is_built_and_read_back_without_showing_the_key() {
        let d = Dialect::basic();
        let key = KeyLoad::new(vec![0xAB; 16]).unwrap();
        let cmd = DataCommand::extended_key_change("001", KeyChangeModifier::CommsPin, &key);
        let bytes = cmd.encode(&d).unwrap();
        assert_eq!(
            bytes,
            format!("3\x1c001\x1c\x1c42\x1c030{}", "171".repeat(16)).as_bytes()
        );
        let back = DataCommand::parse(&bytes, &d).unwrap();
        assert_eq!(back, cmd);
        let (modifier, k) = back.data.extended_key_load().unwrap();
        assert_eq!(modifier, Some(KeyChangeModifier::CommsPin));
        assert_eq!(k, Ok(key.clone()));
        for shown in [
            format!("{back:?}"),
            format!("{back:#?}"),
            serde_json::to_string(&back).unwrap(),
            format!("{key:?}"),
            serde_json::to_string(&key).unwrap(),
        ] {
            assert!(!shown.contains("171171"), "{shown}");
            assert!(shown.contains("len=030 ****"), "{shown}");
        }
    }
}
