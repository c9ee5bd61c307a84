//! Card data, PIN blocks and key material that must never reach a log line or a JSON dump in clear.
//!
//! [`CardTrack`] (track 1/2/3 as read), [`PinBuffer`] and [`KeyField`] (the key data of a key
//! change command) keep the clear value private: `Debug` and `Serialize` show only the masked PAN
//! (first 6 / last 4 digits), `****`, or a key field's length prefix, and the clear value is
//! reachable only through an explicit `expose()`. `atmctl ndc decode` prints `serde_json` of a parsed
//! message, so masking in `Serialize` is what keeps that tool safe to use on live traffic.
//!
//! Buffers B and C and a transaction request's id buffers stay plain `String`s (encoders and
//! simulators fill them), but their holders show them through [`masked_buffer`] only: they carry
//! what a screen collected or a card reader read (a new PIN's block at a PIN change, an account
//! number typed in, smart card data).

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

/// Why PIN buffer A is not an 8-byte PIN block. Never carries the buffer's characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinBufferError {
    #[error("PIN buffer A is {got} characters; an enciphered PIN block is 16")]
    BadLength { got: usize },
    #[error("PIN buffer A has a character outside 0-9, :;<=>? and A-F at position {position}")]
    BadCharacter { position: usize },
}

/// Bytes of a PIN block, and hex digits in PIN buffer A.
const PIN_BLOCK_BYTES: usize = 8;
const PIN_BLOCK_DIGITS: usize = 2 * PIN_BLOCK_BYTES;

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

    /// The 8-byte (enciphered) PIN block the 16 characters stand for. Accepts the terminal's
    /// `:;<=>?` for A-F, and `A-F`/`a-f` as some hosts and test tools write them.
    pub fn to_bytes(&self) -> Result<[u8; 8], PinBufferError> {
        let got = self.0.chars().count();
        if got != PIN_BLOCK_DIGITS {
            return Err(PinBufferError::BadLength { got });
        }
        let mut block = [0u8; PIN_BLOCK_BYTES];
        for (position, c) in self.0.chars().enumerate() {
            let nibble = match c {
                '0'..='9' => c as u8 - b'0',
                ':'..='?' => 10 + (c as u8 - b':'),
                'A'..='F' => 10 + (c as u8 - b'A'),
                'a'..='f' => 10 + (c as u8 - b'a'),
                _ => return Err(PinBufferError::BadCharacter { position }),
            };
            let byte = &mut block[position / 2];
            *byte = (*byte << 4) | nibble;
        }
        Ok(block)
    }

    /// PIN buffer A for an 8-byte (enciphered) PIN block, in the terminal's charset (`:;<=>?`
    /// for A-F), as a terminal sends it.
    pub fn from_bytes(block: &[u8; 8]) -> Self {
        const DIGITS: &[u8; 16] = b"0123456789:;<=>?";
        let wire = block
            .iter()
            .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0x0F)]])
            .map(char::from)
            .collect();
        Self(wire)
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

/// The key data of a key change data command (`3 … 3x`/`4x`), as sent: for an extended key
/// change a 3-character length and the enciphered key as 3-digit decimals (see
/// [`super::KeyLoad`]). The key is enciphered, but a logged key cryptogram still helps an attacker
/// who later gets the master key, so `Debug`/`Serialize` show only the length prefix:
/// `len=030 ****`.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyField(String);

impl KeyField {
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }
    /// The field as sent. Call it only to put it on the wire or to decode the key.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// `len=030 ****` (the length prefix when it is 3 hex digits), else `****`.
    pub fn masked(&self) -> String {
        match self.0.as_bytes().get(..3) {
            Some(len) if len.iter().all(u8::is_ascii_hexdigit) => {
                format!("len={} ****", String::from_utf8_lossy(len))
            }
            _ => "****".to_owned(),
        }
    }
}

impl fmt::Debug for KeyField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyField({})", self.masked())
    }
}

impl Serialize for KeyField {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

/// How buffer B or C or an id buffer shows in `Debug`/`Serialize`: `****` and its length in
/// characters, or nothing when it is empty (so an absent buffer still reads as absent).
pub fn masked_buffer(raw: &str) -> String {
    if raw.is_empty() {
        String::new()
    } else {
        format!("**** ({} characters)", raw.chars().count())
    }
}

/// Journal or printer text with every PAN-like run of 13 to 19 digits masked as [`mask_pan`]
/// does (first 6 and last 4 kept). Shorter or longer runs (amounts, counters, serial numbers)
/// are left alone, so the text stays readable.
pub fn mask_pan_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if (13..=19).contains(&run.len()) {
            out.push_str(&mask_pan(run));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// `serialize_with` for a buffer field: [`masked_buffer`].
pub(crate) fn serialize_masked_buffer<S: Serializer>(raw: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&masked_buffer(raw))
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
    fn pin_buffer_bytes_use_the_terminal_charset() {
        let block = [0x84, 0x16, 0x3A, 0xD3, 0x39, 0x52, 0x89, 0xB7];
        let p = PinBuffer::from_bytes(&block);
        assert_eq!(p.expose(), "84163:=3395289;7");
        assert_eq!(p.to_bytes(), Ok(block));
        assert_eq!(PinBuffer::new("84163AD3395289B7").to_bytes(), Ok(block));
        assert_eq!(PinBuffer::new("84163ad3395289b7").to_bytes(), Ok(block));
        assert_eq!(
            PinBuffer::new("84163:=3395289;").to_bytes(),
            Err(PinBufferError::BadLength { got: 15 })
        );
        assert_eq!(
            PinBuffer::new("84163:=3395289;G").to_bytes(),
            Err(PinBufferError::BadCharacter { position: 15 })
        );
        assert_eq!(
            PinBuffer::new("8416\u{e9}:=3395289;").to_bytes(),
            Err(PinBufferError::BadLength { got: 15 }),
            "length counts characters, not bytes"
        );
        let e = PinBuffer::new("84163:=3395289;X").to_bytes().unwrap_err();
        assert!(!e.to_string().contains('X'), "{e}");
    }

    #[test]
    fn key_field_shows_only_its_length() {
        let k = KeyField::new(format!("030{}", "123".repeat(16)));
        assert_eq!(format!("{k:?}"), "KeyField(len=030 ****)");
        assert_eq!(serde_json::to_string(&k).unwrap(), "\"len=030 ****\"");
        assert_eq!(KeyField::new("12").masked(), "****");
        assert_eq!(KeyField::new("x30123").masked(), "****");
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
