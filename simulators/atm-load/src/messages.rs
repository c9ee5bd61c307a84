//! The ISO 8583 messages of the load, built through `protocols::dialect` as the agent builds
//! them: a withdrawal authorization (0100) and its completion advice (0220).

use protocols::dialect::{Advice, CardRequest, MessageKey, OriginalKey, Request, TransactionType};
use protocols::iso8583::{Message, Spec, TransmissionDateTime};
use protocols::types::{Amount, Currency, Pan, Stan, TerminalId};

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

fn transmission(at: &str) -> Result<TransmissionDateTime, LoadError> {
    TransmissionDateTime::parse(at)
        .ok_or_else(|| LoadError::Protocol(format!("transmission time {at:?} is not MMDDhhmmss")))
}

/// 0100, processing code 011000: a wallet withdrawal of `minor` on `pan`.
pub fn withdrawal(id: &TxnId, terminal: &str, pan: &str, minor: u64) -> Result<Message, LoadError> {
    Ok(Request::Withdrawal(CardRequest {
        acceptance: Default::default(),
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
        acceptance: Default::default(),
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
        assert_eq!(
            m.get_str(90),
            Some("010000012311251140000000000000000000000000")
        );
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
