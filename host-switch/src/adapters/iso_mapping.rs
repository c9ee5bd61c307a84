//! ISO 8583 messages ⇄ domain requests and answers, through `protocols::dialect` (the one
//! definition of the agent↔switch messages). The application sees `Request` and `RecordedReply`,
//! never a field number.

use protocols::dialect::{self, Answer, DialectError, PinField, TransactionType};
use protocols::iso8583::Message;
use protocols::types::TerminalId;

use crate::domain::{PinEntry, RecordedReply, Request, ResponseCode, TxnKey, TxnKind};

/// A request that cannot be served, with the response code to answer it with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error(transparent)]
    Dialect(#[from] DialectError),
    #[error("a {0} cannot be reversed")]
    NotReversible(TransactionType),
}

impl MappingError {
    pub fn code(&self) -> ResponseCode {
        match self {
            Self::Dialect(e) => e.answer_code(),
            Self::NotReversible(_) => ResponseCode::InvalidTransaction,
        }
    }
}

/// The terminal id of a message (field 41), for the certificate check and for logs.
pub fn terminal_id(msg: &Message) -> Option<TerminalId> {
    msg.terminal_id().ok().flatten()
}

fn txn_key(key: &dialect::MessageKey) -> TxnKey {
    TxnKey::new(
        key.terminal.clone(),
        key.stan,
        key.transmitted_at.to_string(),
    )
}

fn original_key(advice: &dialect::Advice) -> TxnKey {
    TxnKey::new(
        advice.key.terminal.clone(),
        advice.original.stan,
        advice.original.transmitted_at.to_string(),
    )
}

/// Fields 52 and 53: a block the key store can take, or `Unreadable` when field 52 is not 16 hex
/// digits (answered as a wrong PIN would be, never translated).
fn pin_entry(pin: Option<PinField>) -> Option<PinEntry> {
    let pin = pin?;
    let block = std::str::from_utf8(pin.block.expose())
        .ok()
        .filter(|b| b.len() == 16)
        .and_then(|b| keystore::EncryptedPinBlock::from_hex(b).ok());
    Some(match block {
        Some(block) => PinEntry::Block {
            block,
            zpk_version: pin.key_version,
        },
        None => PinEntry::Unreadable,
    })
}

/// Reads a request message into a domain request.
pub fn to_request(msg: &Message) -> Result<Request, MappingError> {
    Ok(match dialect::Request::from_message(msg)? {
        dialect::Request::Network(n) => Request::NetworkManagement {
            code: n.code,
            terminal: n.terminal,
        },
        dialect::Request::Withdrawal(r) => Request::Withdrawal {
            key: txn_key(&r.key),
            pan: r.pan,
            amount: r.amount,
            pin: pin_entry(r.pin),
            acceptance: r.acceptance,
        },
        dialect::Request::BalanceInquiry(r) => Request::BalanceInquiry {
            key: txn_key(&r.key),
            pan: r.pan,
            currency: r.amount.currency,
            pin: pin_entry(r.pin),
            acceptance: r.acceptance,
        },
        dialect::Request::Deposit(r) => Request::Deposit {
            key: txn_key(&r.key),
            pan: r.pan,
            amount: r.amount,
            pin: pin_entry(r.pin),
            acceptance: r.acceptance,
        },
        dialect::Request::DepositAdvice(r) => Request::DepositAdvice {
            key: txn_key(&r.key),
            pan: r.pan,
            amount: r.amount,
        },
        dialect::Request::Completion(a) => Request::Completion {
            key: txn_key(&a.key),
            original: original_key(&a),
            dispensed_minor: a.dispensed_or_all(),
        },
        dialect::Request::Reversal(a) => Request::Reversal {
            key: txn_key(&a.key),
            original: original_key(&a),
            kind: match a.transaction {
                TransactionType::Withdrawal => TxnKind::Withdrawal,
                TransactionType::Deposit => TxnKind::Deposit,
                other => return Err(MappingError::NotReversible(other)),
            },
            amount: a.amount,
            dispensed_minor: a.dispensed_minor.unwrap_or(0),
            pan: a.pan,
        },
        dialect::Request::Status(s) => Request::StatusAdvice {
            key: txn_key(&s.key),
            detail: s.detail.chars().take(200).collect(),
        },
    })
}

/// The dialect's answer for a recorded reply.
fn answer(reply: &RecordedReply) -> Answer {
    Answer {
        code: reply.code,
        approval_code: reply.approval_code.clone(),
        balances: reply.balances,
        zone_key_version: reply.zpk_version,
        zone_key_under_zmk: reply.zpk_under_zmk.clone(),
        offline_deposits: reply.offline_deposits.clone(),
    }
}

/// Builds the response to `request`: its echo fields, the code, and what the answer adds. An
/// answer that cannot be written (a value outside its field) is logged and answered 96.
pub fn to_response(request: &Message, reply: &RecordedReply) -> Message {
    answer(reply).to_message(request).unwrap_or_else(|e| {
        tracing::error!(error = %e, code = %reply.code, "answer cannot be written: answered 96");
        let mut resp = Message::response_to(request);
        let _ = resp.set_str(39, ResponseCode::SystemError.code());
        resp
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocols::types::{Amount, Currency};

    fn withdrawal() -> Message {
        let mut m = Message::new("0100").unwrap();
        for (n, v) in [
            (2, "4761739001010010"),
            (3, "011000"),
            (4, "000000002000"),
            (7, "1125114000"),
            (11, "000123"),
            (41, "ATM00001"),
            (49, "978"),
        ] {
            m.set_str(n, v).unwrap();
        }
        m
    }

    #[test]
    fn withdrawal_maps_to_a_domain_request() {
        let Request::Withdrawal {
            key,
            pan,
            amount,
            pin,
            ..
        } = to_request(&withdrawal()).unwrap()
        else {
            panic!("not a withdrawal")
        };
        assert_eq!(key.as_string(), "ATM00001:000123:1125114000");
        assert_eq!(pan.bin(), "476173");
        assert_eq!(amount, Amount::new(2000, Currency::EUR));
        assert_eq!(pin, None);
    }

    #[test]
    fn pin_block_and_its_zpk_version_are_read() {
        let mut m = withdrawal();
        m.set_str(52, "0123456789ABCDEF").unwrap();
        m.set_str(53, "0000000000000003").unwrap();
        let Request::Withdrawal { pin, .. } = to_request(&m).unwrap() else {
            panic!()
        };
        let Some(PinEntry::Block { block, zpk_version }) = pin else {
            panic!("{pin:?}")
        };
        assert_eq!(block.to_hex(), "0123456789ABCDEF");
        assert_eq!(zpk_version, Some(3));
        assert!(
            !format!("{block:?}").contains("0123"),
            "the block never prints"
        );
        m.set_str(52, "0123456789ABCDEZ").unwrap();
        let Request::Withdrawal { pin, .. } = to_request(&m).unwrap() else {
            panic!()
        };
        assert_eq!(pin, Some(PinEntry::Unreadable));
    }

    #[test]
    fn key_change_answer_carries_version_and_cryptogram() {
        let mut req = Message::new("0800").unwrap();
        req.set_str(70, "161").unwrap();
        let reply = RecordedReply {
            zpk_version: Some(3),
            zpk_under_zmk: Some("00".repeat(16) + "ABCDEF"),
            ..RecordedReply::code(ResponseCode::Approved)
        };
        let resp = to_response(&req, &reply);
        assert_eq!(resp.get_str(53), Some("0000000000000003"));
        assert_eq!(resp.get_str(48).map(str::len), Some(38));
        assert_eq!(resp.get_str(39), Some("00"));
        assert_eq!(resp.get_str(70), Some("161"));
        let packed = protocols::iso8583::Spec::iso87_ascii().pack(&resp).unwrap();
        assert!(!packed.is_empty());
    }

    #[test]
    fn describe_masks_the_pin_block() {
        let mut m = withdrawal();
        m.set_str(52, "0123456789ABCDEF").unwrap();
        assert!(!m.describe().contains("0123456789ABCDEF"));
        assert!(!format!("{m:?}").contains("0123456789ABCDEF"));
    }

    #[test]
    fn missing_fields_are_format_errors() {
        let mut m = withdrawal();
        m.remove(11);
        assert_eq!(
            to_request(&m).unwrap_err().code(),
            ResponseCode::FormatError
        );
    }

    #[test]
    fn unknown_processing_code_and_mti_are_invalid_transactions() {
        let mut m = withdrawal();
        m.set_str(3, "401000").unwrap();
        assert_eq!(
            to_request(&m).unwrap_err().code(),
            ResponseCode::InvalidTransaction
        );
        let m = Message::new("0600").unwrap();
        assert_eq!(
            to_request(&m).unwrap_err().code(),
            ResponseCode::InvalidTransaction
        );
    }

    #[test]
    fn completion_reads_original_and_replacement_amount() {
        let mut m = withdrawal();
        m.set_mti(protocols::iso8583::Mti::parse("0220").unwrap());
        m.set_str(11, "000124").unwrap();
        m.set_str(90, "010000012311251140000000000000000000000000")
            .unwrap();
        m.set_str(95, "000000001000000000000000C00000000C00000000")
            .unwrap();
        let Request::Completion {
            original,
            dispensed_minor,
            ..
        } = to_request(&m).unwrap()
        else {
            panic!()
        };
        assert_eq!(original.as_string(), "ATM00001:000123:1125114000");
        assert_eq!(dispensed_minor, 1000);
    }
}
