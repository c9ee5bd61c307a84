//! Card data and PIN blocks that must never reach a log line or a JSON dump in clear.
//!
//! [`CardTrack`] (track 1/2/3 as read) and [`PinBuffer`] keep the clear value private: `Debug` and
//! `Serialize` show only the masked PAN (first 6 / last 4 digits) or `****`, and the clear value is
//! reachable only through an explicit `expose()`. `atmctl ndc decode` prints `serde_json` of a parsed
//! message, so masking in `Serialize` is what keeps that tool safe to use on live traffic.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::types::{mask_pan, mask_track2, Track2, ValueError};

/// Which magnetic track a [`CardTrack`] holds (it decides how the value is masked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TrackKind {
    Track1,
    Track2,
    Track3,
}

/// Track data as the card reader sent it, masked in `Debug`/`Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct CardTrack {
    kind: TrackKind,
    raw: String,
}

impl CardTrack {
    pub fn new(kind: TrackKind, raw: impl Into<String>) -> Self {
        Self {
            kind,
            raw: raw.into(),
        }
    }
    pub fn kind(&self) -> TrackKind {
        self.kind
    }
    /// The clear track data. Call it only to put it on the wire or hand it to the issuer.
    pub fn expose(&self) -> &str {
        &self.raw
    }
    /// Track 2 parsed into PAN and expiry (`;`/`?` sentinels allowed).
    pub fn track2(&self) -> Result<Track2, ValueError> {
        Track2::parse(&self.raw)
    }
    /// The masked form: the PAN (first run of 12-19 digits) as first 6 / last 4, the rest hidden.
    pub fn masked(&self) -> String {
        if self.raw.is_empty() {
            return String::new();
        }
        if self.kind == TrackKind::Track2 {
            return mask_track2(&self.raw);
        }
        match first_pan_run(&self.raw) {
            Some(pan) => format!("{}^****", mask_pan(pan)),
            None => "****".to_owned(),
        }
    }
}

fn first_pan_run(s: &str) -> Option<&str> {
    s.split(|c: char| !c.is_ascii_digit())
        .find(|run| (12..=19).contains(&run.len()))
}

impl fmt::Debug for CardTrack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}({})", self.kind, self.masked())
    }
}

impl Serialize for CardTrack {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

/// PIN buffer A: a PIN block whose hex digits A-F travel as `:;<=>?`. Always shown as `****`.
#[derive(Clone, PartialEq, Eq)]
pub struct PinBuffer(String);

impl PinBuffer {
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }
    /// Builds the wire form from hex digits (`0-9A-F`, either case); `None` if one is not hex.
    pub fn from_hex_digits(hex: &str) -> Option<Self> {
        hex.chars()
            .map(|c| match c.to_ascii_uppercase() {
                d @ '0'..='9' => Some(d),
                h @ 'A'..='F' => Some(char::from(b':' + (h as u8 - b'A'))),
                _ => None,
            })
            .collect::<Option<String>>()
            .map(Self)
    }
    /// The clear wire form (`84163:=3395289;7`). Call it only to put it on the wire or translate it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The PIN block as hex digits (`:`..`?` become `A`..`F`); `None` if a character is outside
    /// `0-9:;<=>?`.
    pub fn to_hex_digits(&self) -> Option<String> {
        self.0
            .bytes()
            .map(|b| match b {
                b'0'..=b'9' => Some(b as char),
                b':'..=b'?' => Some(char::from(b'A' + (b - b':'))),
                _ => None,
            })
            .collect()
    }
}

impl fmt::Debug for PinBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinBuffer(****)")
    }
}

impl Serialize for PinBuffer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("****")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_buffer_decodes_ndc_hex_digits() {
        let p = PinBuffer::new("84163:=3395289;7");
        assert_eq!(p.to_hex_digits().as_deref(), Some("84163AD3395289B7"));
        assert_eq!(
            PinBuffer::from_hex_digits("84163AD3395289B7"),
            Some(p.clone())
        );
        assert_eq!(PinBuffer::new("12X4").to_hex_digits(), None);
        assert_eq!(format!("{p:?}"), "PinBuffer(****)");
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"****\"");
    }

    #[test]
    fn tracks_show_only_first6_last4() {
        let t2 = CardTrack::new(TrackKind::Track2, ";502265400089000092=2708620951?");
        assert_eq!(t2.masked(), "502265********0092=****");
        assert_eq!(t2.track2().unwrap().pan().expose(), "502265400089000092");
        let t1 = CardTrack::new(TrackKind::Track1, "%B1234567890123445^PADILLA/L.^99011X?");
        assert_eq!(t1.masked(), "123456******3445^****");
        assert!(!format!("{t1:?}").contains("PADILLA"));
        assert_eq!(CardTrack::new(TrackKind::Track3, "xyz").masked(), "****");
    }
}
