//! The ISO 8583 messages of the load, built through `protocols::dialect` as the agent builds
//! them: a withdrawal authorization (0100) and its completion advice (0220), each with the
//! card-present context the agent gives it (track 2 in the 0100 only; the 0220 names the
//! original's RRN, local time and acceptor).

use protocols::dialect::{
    Acceptance, Advice, CardRequest, EntryMode, Expiry, MessageKey, OriginalKey, Request,
    TransactionType,
};
use protocols::iso8583::{LocalDate, LocalTime, Message, Spec, TransmissionDateTime};
use protocols::types::{Amount, Currency, Pan, Rrn, Stan, TerminalId, Track2};

use super::LoadError;
use crate::transaction_keys::TxnId;

/// Currency of every load transaction (field 49).
pub const CURRENCY: Currency = Currency::EUR;

fn key(id: &TxnId, terminal: &str) -> Result<MessageKey, LoadError> {
    Ok(MessageKey {
        terminal: TerminalId::parse(terminal)?,
        stan: Stan::new(id.stan)?,
        transmitted_at: transmission(&id.at)?,
    })
}

/// Field 32 of every load message.
pub const ACQUIRER: &str = "12345678901";

/// The context of the transaction `id` at `terminal`, as the agent fills it (local time = field
/// 7, UTC; RRN = `0DDDhh` + STAN with the day of the year approximated from field 7), without
/// card data.
fn acceptance(id: &TxnId, terminal: &str) -> Result<Acceptance, LoadError> {
    let at = transmission(&id.at)?;
    const DAYS_BEFORE: [u16; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let day_of_year = DAYS_BEFORE[usize::from(at.month.clamp(1, 12)) - 1] + u16::from(at.day);
    let rrn = format!("0{day_of_year:03}{:02}{:06}", at.hour, id.stan);
    Ok(Acceptance {
        local_time: Some(LocalTime {
            hour: at.hour,
            minute: at.minute,
            second: at.second,
        }),
        local_date: Some(LocalDate {
            month: at.month,
            day: at.day,
        }),
        acquirer_id: Some(ACQUIRER.into()),
        rrn: Some(Rrn::parse(&rrn)?),
        acceptor_id: Some(TerminalId::parse(terminal)?.as_str().to_owned()),
        ..Acceptance::default()
    })
}

/// What swiping `pan` adds: track 2 (within field 35's 37 characters), its expiry, entry mode 901.
fn card_read(pan: &str) -> Result<Acceptance, LoadError> {
    let raw: String = format!("{pan}=28122011143804400000")
        .chars()
        .take(37)
        .collect();
    Ok(Acceptance {
        track2: Some(Track2::parse(&raw)?),
        expiry: Expiry::parse("2812"),
        entry_mode: Some(EntryMode::MAGSTRIPE),
        ..Acceptance::default()
    })
}

fn transmission(at: &str) -> Result<TransmissionDateTime, LoadError> {
    TransmissionDateTime::parse(at)
        .ok_or_else(|| LoadError::Protocol(format!("transmission time {at:?} is not MMDDhhmmss")))
}

/// 0100, processing code 011000: a wallet withdrawal of `minor` on `pan`.
pub fn withdrawal(id: &TxnId, terminal: &str, pan: &str, minor: u64) -> Result<Message, LoadError> {
    let read = card_read(pan)?;
    Ok(Request::Withdrawal(CardRequest {
        acceptance: Acceptance {
            track2: read.track2,
            expiry: read.expiry,
            entry_mode: read.entry_mode,
            ..acceptance(id, terminal)?
        },
        key: key(id, terminal)?,
        pan: Pan::parse(pan)?,
        amount: Amount::new(minor, CURRENCY),
        pin: None,
        repeat: false,
    })
    .to_message()?)
}

/// 0220 for the withdrawal `original`, saying all of `minor` was dispensed.
pub fn completion(
    id: &TxnId,
    original: &TxnId,
    terminal: &str,
    pan: &str,
    minor: u64,
) -> Result<Message, LoadError> {
    Ok(Request::Completion(Advice {
        acceptance: acceptance(original, terminal)?,
        key: key(id, terminal)?,
        original: OriginalKey {
            mti: TransactionType::Withdrawal.request_mti(),
            stan: Stan::new(original.stan)?,
            transmitted_at: transmission(&original.at)?,
        },
        transaction: TransactionType::Withdrawal,
        amount: Amount::new(minor, CURRENCY),
        dispensed_minor: Some(minor),
        pan: Some(Pan::parse(pan)?),
        repeat: false,
    })
    .to_message()?)
}

pub fn pack(msg: &Message) -> Result<Vec<u8>, LoadError> {
    Ok(Spec::iso87_ascii().pack(msg)?)
}

/// The three fields the load reads from an answer: terminal (41), STAN (11), response code (39).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub mti: [u8; 4],
    pub terminal: String,
    pub stan: u32,
    /// `None` when the answer carries no field 39 (the echo server's copies).
    pub code: Option<String>,
}

/// Unpacks an answer with the full codec (the same work for the switch and the echo baseline).
pub fn read_answer(payload: &[u8]) -> Result<Answer, LoadError> {
    let m = Spec::iso87_ascii().unpack(payload)?;
    let stan = m
        .get_str(11)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| LoadError::Protocol(format!("answer {} without a STAN", m.mti())))?;
    let terminal = m
        .get_str(41)
        .ok_or_else(|| LoadError::Protocol(format!("answer {} without field 41", m.mti())))?;
    Ok(Answer {
        mti: *m.mti().as_bytes(),
        terminal: terminal.to_owned(),
        stan,
        code: m.get_str(39).map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_names_its_original_in_field_90() {
        let original = TxnId {
            terminal: 0,
            stan: 123,
            at: "1125114000".into(),
        };
        let id = TxnId {
            terminal: 0,
            stan: 124,
            at: "1125114000".into(),
        };
        let m = completion(&id, &original, "ATM00001", "4761739001010010", 2000).unwrap();
        // The original, and the acquirer that took it (field 32's value).
        assert_eq!(
            m.get_str(90),
            Some("010000012311251140001234567890100000000000")
        );
        assert_eq!(m.get_str(37), Some("032911000123"), "the original's RRN");
        assert!(!m.contains(35), "an advice never carries track 2");
        let request = withdrawal(&original, "ATM00001", "4761739001010010", 2000).unwrap();
        for n in [12, 13, 14, 18, 22, 32, 35, 37, 42] {
            assert!(request.contains(n), "field {n}");
        }
        assert_eq!(
            m.get_str(95),
            Some("000000002000000000000000C00000000C00000000")
        );
        let back = read_answer(&pack(&m).unwrap()).unwrap();
        assert_eq!(
            (back.terminal.as_str(), back.stan, &back.mti),
            ("ATM00001", 124, b"0220")
        );
    }
}
