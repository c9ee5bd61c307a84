//! The card-present context the agent gives every request it sends for a terminal: where and
//! when the card was accepted and how it was read (ISO 8583 fields 12, 13, 14, 22, 32, 35, 37,
//! 42, 43; `protocols::dialect::Acceptance`).
//!
//! Two parts with two lifetimes:
//! - **the transaction's context** ([`Acceptors::context`]): local time and date (12, 13), the
//!   acquirer (32), the retrieval reference (37) and the card acceptor (42, 43). No card data, so
//!   it is stored with the in-doubt record and every advice that settles it
//!   ([`AcceptanceRecord`]), and a completion or reversal names the same RRN as its original.
//! - **the card read** ([`card_read`]): track 2 as the terminal read it (35: every character
//!   between the start and end sentinels, which ISO 8583 leaves out), its expiry (14) and the
//!   entry mode (22). Online requests only: never stored, never in an advice.
//!
//! Local time is UTC: the agent has no time zone setting, and field 7 is UTC too, so 12 and 13
//! are field 7's instant.
//!
//! The retrieval reference number is `YDDDhh` + STAN (12 digits): the last digit of the UTC
//! year, the day of the year, the hour, then the request's STAN. A terminal's STANs are unique
//! within a day and the hour narrows it further, so an RRN is unique per terminal for ten years;
//! it is a function of the request's own instant and STAN, so it never needs a counter of its own.

use std::collections::HashMap;

use protocols::dialect::{valid_track2_field, Acceptance, EntryMode, Expiry};
use protocols::iso8583::{utc_fields, LocalDate, LocalTime};
use protocols::types::{Rrn, Stan, TerminalId, Track2};
use serde::{Deserialize, Serialize};

/// A terminal's card acceptor (fields 42 and 43), from its `[[terminals]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acceptor {
    /// Field 42; the terminal id when not configured.
    pub id: Option<String>,
    /// Field 43, name and location (padded to 40 on the wire); left out when not configured.
    pub location: Option<String>,
}

/// Who accepts the cards: the acquirer (field 32, `[acquirer] id`) and each terminal's acceptor.
#[derive(Debug, Clone, Default)]
pub struct Acceptors {
    acquirer_id: Option<String>,
    by_terminal: HashMap<String, Acceptor>,
}

impl Acceptors {
    /// `acquirer_id`: field 32, `None` to leave it out.
    pub fn new(acquirer_id: Option<String>) -> Self {
        Self {
            acquirer_id,
            by_terminal: HashMap::new(),
        }
    }

    /// The acceptor of `terminal` (a terminal with none is its own acceptor, without location).
    pub fn with_terminal(mut self, terminal: &str, acceptor: Acceptor) -> Self {
        self.by_terminal.insert(terminal.to_owned(), acceptor);
        self
    }

    /// The context of `terminal`'s request with `stan`, transmitted at `unix_secs` (field 7's
    /// instant). No card data: this is what the transaction's record and advices keep.
    pub fn context(&self, terminal: &TerminalId, stan: Stan, unix_secs: u64) -> Acceptance {
        let [month, day, hour, minute, second] = utc_fields(unix_secs);
        let acceptor = self.by_terminal.get(terminal.as_str());
        Acceptance {
            local_time: Some(LocalTime {
                hour,
                minute,
                second,
            }),
            local_date: Some(LocalDate { month, day }),
            acquirer_id: self.acquirer_id.clone(),
            rrn: rrn(unix_secs, stan),
            acceptor_id: Some(
                acceptor
                    .and_then(|a| a.id.clone())
                    .unwrap_or_else(|| terminal.as_str().to_owned()),
            ),
            acceptor_location: acceptor.and_then(|a| a.location.clone()),
            ..Acceptance::default()
        }
    }
}

/// Field 37 of a request with `stan` transmitted at `unix_secs`: `YDDDhh` + STAN (module doc).
/// Always twelve digits, so always `Some`.
pub fn rrn(unix_secs: u64, stan: Stan) -> Option<Rrn> {
    Some(Rrn::julian(unix_secs, stan))
}

/// What the card read adds to an online request: track 2 as the terminal sent it, without its
/// start (`;`) and end (`?`) sentinels (field 35 carries the data between them, at most 37
/// characters), its expiry and the entry mode. `None`: no track was read (keyed).
pub fn card_read(track2: Option<&Track2>) -> Acceptance {
    let Some(track) = track2 else {
        return Acceptance {
            entry_mode: Some(EntryMode::KEYED),
            ..Acceptance::default()
        };
    };
    let expiry = track.expiry_yymm().and_then(Expiry::parse);
    let raw = track.expose();
    let data = raw.strip_prefix(';').unwrap_or(raw);
    let data = data.strip_suffix('?').unwrap_or(data);
    let sendable = Some(data)
        .filter(|d| valid_track2_field(d))
        .and_then(|d| Track2::parse(d).ok());
    // A track field 35 cannot carry (too long, another character set) is left out, and the
    // entry mode says so: read from the stripe, not sent unaltered.
    let entry_mode = match &sendable {
        Some(_) => EntryMode::MAGSTRIPE,
        None => EntryMode::parse("021").unwrap_or(EntryMode::MAGSTRIPE),
    };
    Acceptance {
        track2: sendable,
        expiry,
        entry_mode: Some(entry_mode),
        ..Acceptance::default()
    }
}

/// An online request's acceptance: the transaction's `context` and what the card read adds.
pub fn online(context: &Acceptance, track2: Option<&Track2>) -> Acceptance {
    let read = card_read(track2);
    Acceptance {
        track2: read.track2,
        expiry: read.expiry,
        entry_mode: read.entry_mode,
        ..stored_part(context)
    }
}

/// A transaction's context as the in-doubt record and the advice queue store it: plain text,
/// every field optional, so records written before it existed still read. Never card data
/// (track 2, expiry, PIN): [`AcceptanceRecord::from`] drops them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptanceRecord {
    /// Field 12, `hhmmss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_time: Option<String>,
    /// Field 13, `MMDD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquirer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rrn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptor_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptor_location: Option<String>,
}

/// Which stored value of a context does not parse.
#[derive(Debug, thiserror::Error)]
#[error("stored acceptance: {field} {value:?} is not valid")]
pub struct AcceptanceRecordError {
    pub field: &'static str,
    pub value: String,
}

impl AcceptanceRecord {
    /// Nothing stored (a record of an earlier agent).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The context back, checked: a stored value that no longer parses is refused by name.
    pub fn to_acceptance(&self) -> Result<Acceptance, AcceptanceRecordError> {
        fn check<T>(
            field: &'static str,
            value: &Option<String>,
            parse: impl Fn(&str) -> Option<T>,
        ) -> Result<Option<T>, AcceptanceRecordError> {
            value
                .as_deref()
                .map(|v| {
                    parse(v).ok_or_else(|| AcceptanceRecordError {
                        field,
                        value: v.to_owned(),
                    })
                })
                .transpose()
        }
        use protocols::dialect::{valid_acceptor_id, valid_acceptor_location, valid_acquirer_id};
        let text = |ok: fn(&str) -> bool| move |s: &str| ok(s).then(|| s.to_owned());
        Ok(Acceptance {
            local_time: check("local_time", &self.local_time, parse_local_time)?,
            local_date: check("local_date", &self.local_date, parse_local_date)?,
            acquirer_id: check("acquirer_id", &self.acquirer_id, text(valid_acquirer_id))?,
            rrn: check("rrn", &self.rrn, |s| Rrn::parse(s).ok())?,
            acceptor_id: check("acceptor_id", &self.acceptor_id, text(valid_acceptor_id))?,
            acceptor_location: check(
                "acceptor_location",
                &self.acceptor_location,
                text(valid_acceptor_location),
            )?,
            ..Acceptance::default()
        })
    }
}

impl From<&Acceptance> for AcceptanceRecord {
    fn from(a: &Acceptance) -> Self {
        Self {
            local_time: a.local_time.map(|t| t.to_string()),
            local_date: a.local_date.map(|d| d.to_string()),
            acquirer_id: a.acquirer_id.clone(),
            rrn: a.rrn.as_ref().map(|r| r.as_str().to_owned()),
            acceptor_id: a.acceptor_id.clone(),
            acceptor_location: a.acceptor_location.clone(),
        }
    }
}

/// The stored part of a context: what [`AcceptanceRecord`] keeps.
pub fn stored_part(a: &Acceptance) -> Acceptance {
    Acceptance {
        track2: None,
        expiry: None,
        entry_mode: None,
        ..a.clone()
    }
}

fn two_digits(s: &str, at: usize) -> Option<u8> {
    s.get(at..at + 2)
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))?
        .parse()
        .ok()
}

fn parse_local_time(s: &str) -> Option<LocalTime> {
    let (hour, minute, second) = (two_digits(s, 0)?, two_digits(s, 2)?, two_digits(s, 4)?);
    (s.len() == 6 && hour < 24 && minute < 60 && second < 60).then_some(LocalTime {
        hour,
        minute,
        second,
    })
}

fn parse_local_date(s: &str) -> Option<LocalDate> {
    let (month, day) = (two_digits(s, 0)?, two_digits(s, 2)?);
    (s.len() == 4 && (1..=12).contains(&month) && (1..=31).contains(&day))
        .then_some(LocalDate { month, day })
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-25 11:40:36 UTC, day 329.
    const AT: u64 = 1_795_606_836;

    fn tid(s: &str) -> TerminalId {
        TerminalId::parse(s).unwrap()
    }

    #[test]
    fn the_rrn_is_year_digit_day_hour_and_stan() {
        let rrn = |at, stan| rrn(at, Stan::new(stan).unwrap()).unwrap();
        assert_eq!(rrn(AT, 123).as_str(), "632911000123");
        // Another STAN in the same hour, another RRN; the next day, another RRN.
        assert_ne!(rrn(AT, 124), rrn(AT, 123));
        assert_eq!(rrn(AT + 86_400, 123).as_str(), "633011000123");
        assert_eq!(rrn(AT + 3600, 123).as_str(), "632912000123");
    }

    #[test]
    fn the_context_names_the_acquirer_the_acceptor_and_the_local_time() {
        let acceptors = Acceptors::new(Some("12345678901".into())).with_terminal(
            "ATM00001",
            Acceptor {
                id: Some("BRANCH-0042".into()),
                location: Some("1 MAIN STREET SPRINGFIELD US".into()),
            },
        );
        let c = acceptors.context(&tid("ATM00001"), Stan::new(7).unwrap(), AT);
        assert_eq!(c.local_time.unwrap().to_string(), "114036");
        assert_eq!(c.local_date.unwrap().to_string(), "1125");
        assert_eq!(c.acquirer_id.as_deref(), Some("12345678901"));
        assert_eq!(c.rrn.unwrap().as_str(), "632911000007");
        assert_eq!(c.acceptor_id.as_deref(), Some("BRANCH-0042"));
        assert!(c.acceptor_location.is_some());
        assert!(c.track2.is_none() && c.expiry.is_none());
        // A terminal without its own acceptor is named by its terminal id, without a location.
        let other = acceptors.context(&tid("ATM2"), Stan::new(7).unwrap(), AT);
        assert_eq!(other.acceptor_id.as_deref(), Some("ATM2"));
        assert_eq!(other.acceptor_location, None);
        assert_eq!(
            Acceptors::default()
                .context(&tid("ATM2"), Stan::new(7).unwrap(), AT)
                .acquirer_id,
            None
        );
    }

    #[test]
    fn a_swiped_card_sends_its_track_as_read() {
        let t = Track2::parse(";4761739001010010=28122011143804400000?").unwrap();
        let a = card_read(Some(&t));
        assert_eq!(
            a.track2.as_ref().map(Track2::expose),
            Some("4761739001010010=28122011143804400000"),
            "the data between the sentinels, unaltered"
        );
        let bare = Track2::parse("4761739001010010=2812201").unwrap();
        assert_eq!(card_read(Some(&bare)).track2, Some(bare));
        assert_eq!(a.expiry.map(|e| e.to_string()).as_deref(), Some("2812"));
        assert_eq!(a.entry_mode, Some(EntryMode::MAGSTRIPE));
        let long = Track2::parse(&format!("4761739001010010={}", "1".repeat(30))).unwrap();
        let a = card_read(Some(&long));
        assert_eq!(a.track2, None);
        assert_eq!(a.entry_mode.unwrap().as_str(), "021");
        assert_eq!(card_read(None).entry_mode, Some(EntryMode::KEYED));
    }

    #[test]
    fn the_stored_record_keeps_no_card_data_and_reads_back() {
        let acceptors = Acceptors::new(Some("42".into()));
        let t = Track2::parse("4761739001010010=28122011143804400000").unwrap();
        let full = card_read(Some(&t));
        let context = acceptors.context(&tid("ATM1"), Stan::new(9).unwrap(), AT);
        let request = Acceptance {
            track2: full.track2,
            expiry: full.expiry,
            entry_mode: full.entry_mode,
            ..context.clone()
        };
        let record = AcceptanceRecord::from(&request);
        let json = serde_json::to_string(&record).unwrap();
        assert!(!json.contains("2812") && !json.contains("4761"), "{json}");
        assert_eq!(record.to_acceptance().unwrap(), stored_part(&request));
        assert_eq!(record.to_acceptance().unwrap(), context);
        assert!(AcceptanceRecord::default().is_empty());
        let bad = AcceptanceRecord {
            local_time: Some("256100".into()),
            ..record
        };
        assert_eq!(bad.to_acceptance().unwrap_err().field, "local_time");
    }
}
