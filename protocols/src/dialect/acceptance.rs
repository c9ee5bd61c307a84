//! The card-present context of an ATM transaction: what a bank host needs besides the card number
//! and the amount (ISO 8583:1987 fields 12, 13, 14, 18, 22, 32, 35, 37, 42, 43).
//!
//! Every field is optional when read, so a message from an older agent (or another acquirer's
//! habits) still reads; the switch fills what a host needs and the agent did not send (local time
//! from field 7, its own acquirer id). Track 2 travels only in online requests: it is never queued,
//! journaled or stored, so advices name the card by PAN (field 2) and expiry (field 14).

use std::fmt;

use crate::iso8583::{LocalDate, LocalTime};
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
