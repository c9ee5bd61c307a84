//! The ISO 8583 messages of the load, built the way an agent builds them (iso87-ascii):
//! a withdrawal authorization (0100) and its completion advice (0220).

use protocols::iso8583::{Message, Mti, Spec};

use crate::transaction_keys::TxnId;
use super::LoadError;

/// Currency of every load transaction (field 49): EUR.
pub const CURRENCY_NUMERIC: &str = "978";

fn base(mti: &str, id: &TxnId, terminal: &str) -> Result<Message, LoadError> {
    let mut m = Message::new(mti)?;
    m.set_str(7, &id.at)?;
    m.set_str(11, &format!("{:06}", id.stan))?;
    m.set_str(41, terminal)?;
    m.set_str(49, CURRENCY_NUMERIC)?;
    Ok(m)
}

/// 0100, processing code 011000: a wallet withdrawal of `minor` on `pan`.
pub fn withdrawal(id: &TxnId, terminal: &str, pan: &str, minor: u64) -> Result<Message, LoadError> {
    let mut m = base("0100", id, terminal)?;
    m.set_str(2, pan)?;
    m.set_str(3, "011000")?;
    m.set_str(4, &format!("{minor:012}"))?;
    Ok(m)
}

/// 0220 for the withdrawal `original`, saying all of `minor` was dispensed.
pub fn completion(
    id: &TxnId,
    original: &TxnId,
    terminal: &str,
    pan: &str,
    minor: u64,
) -> Result<Message, LoadError> {
    let mut m = withdrawal(id, terminal, pan, minor)?;
    m.set_mti(Mti::parse("0220")?);
    // Field 90: original MTI, STAN, date-time, then acquirer/forwarding ids (zeros).
    m.set_str(
        90,
        &format!("0100{:06}{}{:022}", original.stan, original.at, 0),
    )
    ?;
    // Field 95: actual amount, settlement amount, then fees (none).
    m.set_str(95, &format!("{minor:012}{:012}C00000000C00000000", 0))
        ?;
    Ok(m)
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
    let m = Spec::iso87_ascii()
        .unpack(payload)?;
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
