//! ISO 8583 messages ⇄ domain requests and answers. The only place in the switch that knows
//! field numbers; the application sees `Request` and `RecordedReply`.

use protocols::iso8583::{FieldError, Message};
use protocols::types::{Amount, Currency, Pan, TerminalId};

use crate::domain::zone_key::{parse_version_field, version_field};
use crate::domain::{PinEntry, RecordedReply, Request, ResponseCode, TxnKey, TxnKind};

/// A request that cannot be served, with the response code to answer it with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (answered {code})")]
pub struct MappingError {
    pub code: ResponseCode,
    pub reason: String,
}

fn bad(code: ResponseCode, reason: impl Into<String>) -> MappingError {
    MappingError {
        code,
        reason: reason.into(),
    }
}

fn format_error(e: impl std::fmt::Display) -> MappingError {
    bad(ResponseCode::FormatError, e.to_string())
}

/// A field the request cannot do without, through its typed getter.
fn required<T>(value: Result<Option<T>, FieldError>, n: u8, name: &str) -> Result<T, MappingError> {
    value.map_err(format_error)?.ok_or_else(|| {
        bad(
            ResponseCode::FormatError,
            format!("field {n} ({name}) is missing"),
        )
    })
}

/// The terminal id of a message (field 41), for the certificate check and for logs.
pub fn terminal_id(msg: &Message) -> Option<TerminalId> {
    msg.terminal_id().ok().flatten()
}

fn txn_key(msg: &Message) -> Result<TxnKey, MappingError> {
    let terminal = required(msg.terminal_id(), 41, "terminal id")?;
    let stan = required(msg.stan(), 11, "STAN")?;
    let at = required(msg.transmission_datetime(), 7, "transmission date-time")?;
    Ok(TxnKey::new(terminal, stan, at.to_string()))
}

fn pan(msg: &Message) -> Result<Pan, MappingError> {
    let invalid = |e: FieldError| bad(ResponseCode::InvalidAccount, e.to_string());
    if let Some(p) = msg.pan().map_err(invalid)? {
        return Ok(p);
    }
    match msg.track2().map_err(invalid)? {
        Some(t) => Ok(t.pan().clone()),
        None => Err(bad(
            ResponseCode::FormatError,
            "neither field 2 (PAN) nor field 35 (track 2) is present",
        )),
    }
}

fn currency(msg: &Message) -> Result<Currency, MappingError> {
    required(msg.currency(), 49, "currency")
}

fn amount(msg: &Message) -> Result<Amount, MappingError> {
    let minor = msg
        .amount()
        .map_err(|e| bad(ResponseCode::InvalidAmount, e.to_string()))?;
    let minor =
        minor.ok_or_else(|| bad(ResponseCode::FormatError, "field 4 (amount) is missing"))?;
    Ok(Amount::new(minor, currency(msg)?))
}

/// Field 95's actual transaction amount, when present.
fn replacement_amount(msg: &Message) -> Result<Option<u64>, MappingError> {
    Ok(msg
        .replacement_amounts()
        .map_err(format_error)?
        .map(|r| r.actual_amount))
}

/// The original transaction named in field 90, at the same terminal.
fn original_key(msg: &Message, terminal: &TerminalId) -> Result<TxnKey, MappingError> {
    let original = required(msg.original_data(), 90, "original data elements")?;
    let at = original.transmission.ok_or_else(|| {
        bad(
            ResponseCode::FormatError,
            "field 90 carries no original date-time",
        )
    })?;
    Ok(TxnKey::new(terminal.clone(), original.stan, at.to_string()))
}

/// Fields 52 and 53 of a request that may carry a PIN (advices never do: they are not read).
fn pin_entry(msg: &Message) -> Option<PinEntry> {
    let field52 = std::str::from_utf8(msg.get(52)?).unwrap_or("");
    if field52.len() != 16 {
        return Some(PinEntry::Unreadable);
    }
    match keystore::EncryptedPinBlock::from_hex(field52) {
        Ok(block) => Some(PinEntry::Block {
            block,
            zpk_version: msg.get_str(53).and_then(parse_version_field),
        }),
        Err(_) => Some(PinEntry::Unreadable),
    }
}

fn transaction_type(msg: &Message) -> Result<u8, MappingError> {
    Ok(required(msg.processing_code(), 3, "processing code")?.transaction_type)
}

/// Reads a request message into a domain request.
pub fn to_request(msg: &Message) -> Result<Request, MappingError> {
    let mti = msg.mti();
    match mti.as_str() {
        "0800" => {
            let code = required(msg.network_management_code(), 70, "network management code")?;
            Ok(Request::NetworkManagement {
                code: format!("{code:03}"),
                terminal: terminal_id(msg),
            })
        }
        "0100" | "0101" => {
            let key = txn_key(msg)?;
            match transaction_type(msg)? {
                1 => Ok(Request::Withdrawal {
                    key,
                    pan: pan(msg)?,
                    amount: amount(msg)?,
                    pin: pin_entry(msg),
                }),
                31 => Ok(Request::BalanceInquiry {
                    key,
                    pan: pan(msg)?,
                    currency: currency(msg)?,
                    pin: pin_entry(msg),
                }),
                other => Err(bad(
                    ResponseCode::InvalidTransaction,
                    format!("transaction type {other:02} is not served in 0100"),
                )),
            }
        }
        "0200" | "0201" => {
            let key = txn_key(msg)?;
            match transaction_type(msg)? {
                21 => Ok(Request::Deposit {
                    key,
                    pan: pan(msg)?,
                    amount: amount(msg)?,
                    pin: pin_entry(msg),
                }),
                other => Err(bad(
                    ResponseCode::InvalidTransaction,
                    format!("transaction type {other:02} is not served in 0200"),
                )),
            }
        }
        "0220" | "0221" => {
            let key = txn_key(msg)?;
            let original = original_key(msg, &key.terminal)?;
            let dispensed_minor = match replacement_amount(msg)? {
                Some(v) => v,
                None => amount(msg)?.minor,
            };
            Ok(Request::Completion {
                key,
                original,
                dispensed_minor,
            })
        }
        "0420" | "0421" => {
            let key = txn_key(msg)?;
            let original = original_key(msg, &key.terminal)?;
            let kind = match transaction_type(msg)? {
                1 => TxnKind::Withdrawal,
                21 => TxnKind::Deposit,
                other => {
                    return Err(bad(
                        ResponseCode::InvalidTransaction,
                        format!("transaction type {other:02} cannot be reversed"),
                    ))
                }
            };
            Ok(Request::Reversal {
                key,
                original,
                kind,
                amount: amount(msg)?,
                dispensed_minor: replacement_amount(msg)?.unwrap_or(0),
                pan: pan(msg).ok(),
            })
        }
        "0820" => {
            let key = txn_key(msg)?;
            let detail = msg
                .get_str(48)
                .or_else(|| msg.get_str(63))
                .unwrap_or("")
                .chars()
                .take(200)
                .collect();
            Ok(Request::StatusAdvice { key, detail })
        }
        other => Err(bad(
            ResponseCode::InvalidTransaction,
            format!("MTI {other} is not served"),
        )),
    }
}

/// Builds the response to `request`: its echo fields, the code, and what the answer adds.
pub fn to_response(request: &Message, reply: &RecordedReply) -> Message {
    let mut resp = Message::response_to(request);
    // Network management answers say what they answer (the key exchange's contract needs 161).
    if request.mti().as_str() == "0800" {
        if let Some(code) = request.get(70) {
            let _ = resp.set(70, code);
        }
    }
    // The setters only refuse field numbers outside 2-128; these are constants within it.
    let _ = resp.set_str(39, reply.code.code());
    if let Some(code) = &reply.approval_code {
        let _ = resp.set_str(38, code);
    }
    if let Some(f54) = &reply.additional_amounts {
        let _ = resp.set_str(54, f54);
    }
    if let Some(version) = reply.zpk_version {
        let _ = resp.set_str(53, &version_field(version));
    }
    if let Some(f48) = &reply.zpk_under_zmk {
        let _ = resp.set_str(48, f48);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(to_request(&m).unwrap_err().code, ResponseCode::FormatError);
    }

    #[test]
    fn unknown_processing_code_and_mti_are_invalid_transactions() {
        let mut m = withdrawal();
        m.set_str(3, "401000").unwrap();
        assert_eq!(
            to_request(&m).unwrap_err().code,
            ResponseCode::InvalidTransaction
        );
        let m = Message::new("0600").unwrap();
        assert_eq!(
            to_request(&m).unwrap_err().code,
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
