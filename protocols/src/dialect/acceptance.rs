//! The card-present context of an ATM transaction: what a bank host needs besides the card number
//! and the amount (ISO 8583:1987 fields 12, 13, 14, 18, 22, 32, 35, 37, 42, 43).
//!
//! Every field is optional when read, so a message from an older agent (or another acquirer's
//! habits) still reads; the switch fills what a host needs and the agent did not send (local time
//! from field 7, its own acquirer id). Track 2 travels only in online requests: it is never queued,
//! journaled or stored, so advices name the card by PAN (field 2) and expiry (field 14).

use std::fmt;

use crate::iso8583::{FieldError, LocalDate, LocalTime, Message};
use crate::types::{Rrn, Track2};

/// Field 18 of every ATM transaction: merchant type 6011, "financial institution, automated cash
/// disbursement".
pub const MERCHANT_TYPE_ATM: &str = "6011";

/// Field 22, point-of-service entry mode: two digits for how the card was read and one for the
/// terminal's PIN capability.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryMode([u8; 3]);

impl EntryMode {
    /// Full magnetic stripe read (track 2 sent unaltered), PIN entry capable: "901".
    pub const MAGSTRIPE: EntryMode = EntryMode(*b"901");
    /// Chip read, PIN entry capable: "051".
    pub const CHIP: EntryMode = EntryMode(*b"051");
    /// PAN keyed or taken from a stored record (an advice of a deposit taken offline): "011".
    pub const KEYED: EntryMode = EntryMode(*b"011");

    /// Three digits, as on the wire.
    pub fn parse(s: &str) -> Option<EntryMode> {
        let b = s.as_bytes();
        (b.len() == 3 && b.iter().all(u8::is_ascii_digit)).then(|| EntryMode([b[0], b[1], b[2]]))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("000")
    }
}

impl fmt::Debug for EntryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryMode({})", self.as_str())
    }
}

impl fmt::Display for EntryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Field 14, the card's expiry date, `YYMM`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Expiry {
    pub year: u8,
    pub month: u8,
}

impl Expiry {
    /// `YYMM` with a month from 01 to 12.
    pub fn parse(s: &str) -> Option<Expiry> {
        let b = s.as_bytes();
        if b.len() != 4 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let year = (b[0] - b'0') * 10 + (b[1] - b'0');
        let month = (b[2] - b'0') * 10 + (b[3] - b'0');
        (1..=12).contains(&month).then_some(Expiry { year, month })
    }
}

// An expiry date is card data: it never prints in full.
impl fmt::Debug for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Expiry(****)")
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}{:02}", self.year, self.month)
    }
}

/// Where and how the card was accepted. `Debug` masks the track and the expiry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acceptance {
    /// Field 35: track 2 as the terminal read it. Online requests only; never stored.
    pub track2: Option<Track2>,
    /// Field 14: the card's expiry (from track 2 when the card was swiped).
    pub expiry: Option<Expiry>,
    /// Field 22.
    pub entry_mode: Option<EntryMode>,
    /// Field 12: the terminal's local time of the transaction.
    pub local_time: Option<LocalTime>,
    /// Field 13: the terminal's local date of the transaction.
    pub local_date: Option<LocalDate>,
    /// Field 32: the acquiring institution's id, up to 11 digits.
    pub acquirer_id: Option<String>,
    /// Field 37: the retrieval reference the acquirer gave the transaction (unique per terminal).
    pub rrn: Option<Rrn>,
    /// Field 42: card acceptor id, up to 15 characters.
    pub acceptor_id: Option<String>,
    /// Field 43: card acceptor name and location, 40 characters (name and street 25, city 13,
    /// country 2).
    pub acceptor_location: Option<String>,
}

/// Field 32 as the dialect accepts it: 1 to 11 digits.
pub fn valid_acquirer_id(s: &str) -> bool {
    (1..=11).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// Field 42 as the dialect accepts it: 1 to 15 printable characters, no trailing space (it is
/// space-padded to 15 on the wire and trimmed when read).
pub fn valid_acceptor_id(s: &str) -> bool {
    (1..=15).contains(&s.len()) && printable(s) && !s.ends_with(' ')
}

/// Field 43 as the dialect accepts it: 1 to 40 printable characters, no trailing space (padded to
/// 40 on the wire and trimmed when read).
pub fn valid_acceptor_location(s: &str) -> bool {
    (1..=40).contains(&s.len()) && printable(s) && !s.ends_with(' ')
}

/// Field 35 as the `iso87-ascii` layout carries it: at most 37 characters of the track 2 set
/// (`0-9 : ; < = > ?` and `D`).
pub fn valid_track2_field(s: &str) -> bool {
    s.len() <= 37 && s.bytes().all(|b| (0x30..=0x3F).contains(&b) || b == b'D')
}

fn printable(s: &str) -> bool {
    s.bytes().all(|b| (0x20..=0x7E).contains(&b))
}

fn malformed(field: u8, reason: &'static str) -> FieldError {
    FieldError::Malformed { field, reason }
}

impl Acceptance {
    /// The acceptance of an advice: everything but track 2 (advices are stored; track 2 never is).
    pub fn without_track2(&self) -> Acceptance {
        Acceptance {
            track2: None,
            ..self.clone()
        }
    }

    /// Field 32 as a number, for field 90's acquiring institution id (0 when absent).
    pub fn acquirer_number(&self) -> u64 {
        self.acquirer_id
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Writes the fields that are present (field 18 is the caller's: card requests only). A value
    /// the field cannot carry is refused, never cut: a host must see what the terminal saw.
    pub(crate) fn write(&self, m: &mut Message) -> Result<(), FieldError> {
        if let Some(t) = self.local_time {
            m.set_local_time(t);
        }
        if let Some(d) = self.local_date {
            m.set_local_date(d);
        }
        if let Some(e) = self.expiry {
            m.set_str(14, &e.to_string())?;
        }
        if let Some(mode) = self.entry_mode {
            m.set_str(22, mode.as_str())?;
        }
        if let Some(id) = &self.acquirer_id {
            if !valid_acquirer_id(id) {
                return Err(malformed(32, "acquirer id: 1 to 11 digits"));
            }
            m.set_str(32, id)?;
        }
        if let Some(t) = &self.track2 {
            if !valid_track2_field(t.expose()) {
                return Err(malformed(
                    35,
                    "track 2: at most 37 characters of 0-9 : ; < = > ? D",
                ));
            }
            m.set_track2(t);
        }
        if let Some(rrn) = &self.rrn {
            m.set_rrn(rrn);
        }
        if let Some(id) = &self.acceptor_id {
            if !valid_acceptor_id(id) {
                return Err(malformed(
                    42,
                    "card acceptor id: 1 to 15 printable characters",
                ));
            }
            m.set_str(42, &format!("{id:<15}"))?;
        }
        if let Some(loc) = &self.acceptor_location {
            if !valid_acceptor_location(loc) {
                return Err(malformed(
                    43,
                    "card acceptor location: 1 to 40 printable characters",
                ));
            }
            m.set_str(43, &format!("{loc:<40}"))?;
        }
        Ok(())
    }

    /// Reads the fields that are present. Each error names the field; the caller turns it into
    /// the dialect's error (answered 30).
    pub(crate) fn read(m: &Message) -> Result<Acceptance, FieldError> {
        Ok(Acceptance {
            track2: m.track2()?,
            expiry: text(m, 14)?
                .map(|s| Expiry::parse(s).ok_or(malformed(14, "expiry: expected YYMM")))
                .transpose()?,
            entry_mode: text(m, 22)?
                .map(|s| EntryMode::parse(s).ok_or(malformed(22, "entry mode: expected 3 digits")))
                .transpose()?,
            local_time: m.local_time()?,
            local_date: m.local_date()?,
            acquirer_id: text(m, 32)?
                .map(|s| {
                    valid_acquirer_id(s)
                        .then(|| s.to_owned())
                        .ok_or(malformed(32, "acquirer id: 1 to 11 digits"))
                })
                .transpose()?,
            rrn: m.rrn()?,
            acceptor_id: padded(m, 42, 15, "card acceptor id: up to 15 printable characters")?,
            acceptor_location: padded(
                m,
                43,
                40,
                "card acceptor location: up to 40 printable characters",
            )?,
        })
    }
}

fn text(m: &Message, n: u8) -> Result<Option<&str>, FieldError> {
    m.get(n)
        .map(|v| std::str::from_utf8(v).map_err(|_| malformed(n, "not text")))
        .transpose()
}

/// A space-padded text field, trimmed; all spaces reads as absent.
fn padded(
    m: &Message,
    n: u8,
    max: usize,
    reason: &'static str,
) -> Result<Option<String>, FieldError> {
    let Some(s) = text(m, n)? else {
        return Ok(None);
    };
    if s.len() > max || !printable(s) {
        return Err(malformed(n, reason));
    }
    let t = s.trim_end();
    Ok((!t.is_empty()).then(|| t.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_track_2_or_the_expiry() {
        let a = Acceptance {
            track2: Some(Track2::parse("4761739001010010=28122011143804400000").unwrap()),
            expiry: Expiry::parse("2812"),
            entry_mode: Some(EntryMode::MAGSTRIPE),
            ..Acceptance::default()
        };
        let shown = format!("{a:?}");
        assert!(!shown.contains("2812"), "{shown}");
        assert!(!shown.contains("22011143804400000"), "{shown}");
        assert!(!shown.contains("4761739001010010"), "{shown}");
        assert!(shown.contains("901"), "{shown}");
    }

    #[test]
    fn field_limits() {
        assert!(valid_acquirer_id("12345678901") && !valid_acquirer_id("123456789012"));
        assert!(!valid_acquirer_id("") && !valid_acquirer_id("12a"));
        assert!(valid_acceptor_id("ATM00001") && !valid_acceptor_id(&"A".repeat(16)));
        assert!(!valid_acceptor_id("ATM ") && !valid_acceptor_id(""));
        assert!(valid_acceptor_location(&"L".repeat(40)));
        assert!(!valid_acceptor_location(&"L".repeat(41)));
        assert!(!valid_acceptor_location("caf\u{e9}"));
        assert!(valid_track2_field(";4761739001010010=2812201?"));
        assert!(!valid_track2_field(&format!("{}=", "4".repeat(37))));
    }

    #[test]
    fn advices_keep_everything_but_the_track_and_name_the_acquirer() {
        let a = Acceptance {
            track2: Some(Track2::parse("4761739001010010=2812").unwrap()),
            acquirer_id: Some("00042".into()),
            ..Acceptance::default()
        };
        let b = a.without_track2();
        assert_eq!(b.track2, None);
        assert_eq!(b.acquirer_id, a.acquirer_id);
        assert_eq!(b.acquirer_number(), 42);
        assert_eq!(Acceptance::default().acquirer_number(), 0);
    }
}
