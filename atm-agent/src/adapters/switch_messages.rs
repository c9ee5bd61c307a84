//! The agent's side of the agent ↔ switch dialect: the one place where the agent's typed
//! requests, answers and advices become ISO 8583 messages (iso87-ascii field layout) and back.
//!
//! Field use (ARCHITECTURE.md, "The agent ↔ switch dialect"): 2 PAN, 3 processing code, 4 amount,
//! 7 transmission date-time, 11 STAN, 41 terminal id, 49 currency, 52/53 PIN block and zone key
//! version, 38 approval code, 39 response code, 48 status detail or a key under the zone master
//! key, 54 balances, 70 network management code, 90 original data, 95 replacement amounts.
//!
//! `protocols::dialect` (typed agent ↔ switch messages shared with the switch) is being written;
//! once it lands, this module's functions become calls to it and nothing outside this file changes.

use keystore::{Cryptogram, Kcv};
use protocols::iso8583::{
    FieldError, Message, Mti, OriginalData, ReplacementAmounts, Sign, SignedAmount,
    TransmissionDateTime,
};
use protocols::types::{Pan, Stan};

use crate::domain::advice::{Advice, AdviceKind};
use crate::domain::exchange::{
    CardRequest, ResponseCode, SwitchAnswer, TransactionType, ZonePinKeyDelivery,
};
use crate::ports::{Cause, LinkError};

/// Network management code of a key change request (field 70).
pub const KEY_CHANGE: &str = "161";
pub const SIGN_ON: &str = "001";
pub const SIGN_OFF: &str = "002";
pub const ECHO: &str = "301";

/// The processing code (field 3) of a transaction type.
pub fn processing_code(t: TransactionType) -> &'static str {
    t.processing_code()
}

fn encode(e: impl Into<Cause>) -> LinkError {
    LinkError::Encode(e.into())
}

fn field(e: FieldError) -> LinkError {
    encode(e)
}

/// A customer's request: 0100 for a withdrawal or an inquiry, 0200 for a deposit.
pub fn card_request(r: &CardRequest) -> Result<Message, LinkError> {
    let mut m = Message::new(r.transaction.request_mti()).map_err(field)?;
    m.set_str(2, r.pan.expose()).map_err(field)?;
    m.set_str(3, processing_code(r.transaction))
        .map_err(field)?;
    m.set_str(4, &r.amount.to_field4()).map_err(field)?;
    m.set_str(7, &r.key.transmitted_at.to_string())
        .map_err(field)?;
    m.set_str(11, &r.key.stan.to_string()).map_err(field)?;
    m.set_str(41, &r.key.terminal.to_field41()).map_err(field)?;
    m.set_str(49, &format!("{:03}", r.amount.currency.numeric))
        .map_err(field)?;
    if let Some(pin) = &r.pin {
        m.set_str(52, &pin.block.to_hex()).map_err(field)?;
        m.set_str(53, &format!("{:016}", pin.zone_key_version))
            .map_err(field)?;
    }
    Ok(m)
}

/// The switch's answer to a customer's request. A missing response code reads as 96.
pub fn card_answer(resp: &Message) -> SwitchAnswer {
    let code = ResponseCode::parse(resp.get_str(39).unwrap_or("96"));
    let available_minor = resp
        .additional_amounts()
        .ok()
        .flatten()
        .and_then(|a| a.into_iter().find(|x| x.amount_type == 2))
        .map(|a| {
            let minor = i64::try_from(a.amount.minor).unwrap_or(i64::MAX);
            match a.amount.sign {
                Sign::Credit => minor,
                Sign::Debit => -minor,
            }
        });
    SwitchAnswer {
        code,
        approval_code: resp.get_str(38).map(str::to_owned),
        available_minor,
    }
}

/// The message of a queued advice (a repeat carries the repeat MTI); `card`: a stored deposit's
/// card number from the vault.
pub fn advice(a: &Advice, repeat: bool, card: Option<&Pan>) -> Result<Message, LinkError> {
    let mut m = Message::new(a.mti(repeat)).map_err(field)?;
    m.set_str(7, &a.transmitted_at).map_err(field)?;
    m.set_str(11, &format!("{:06}", a.stan)).map_err(field)?;
    m.set_str(41, &format!("{:<8}", a.terminal_id))
        .map_err(field)?;
    if a.kind == AdviceKind::Status {
        m.set_str(48, a.detail.as_deref().unwrap_or(""))
            .map_err(field)?;
        return Ok(m);
    }
    m.set_str(3, &a.processing_code).map_err(field)?;
    m.set_str(4, &format!("{:012}", a.amount_minor))
        .map_err(field)?;
    m.set_str(49, &format!("{:03}", a.currency))
        .map_err(field)?;
    if let Some(o) = &a.original {
        let original = OriginalData {
            mti: Mti::parse(&o.mti).map_err(field)?,
            stan: Stan::new(o.stan).map_err(encode)?,
            transmission: TransmissionDateTime::parse(&o.transmitted_at),
            acquirer_id: 0,
            forwarding_id: 0,
        };
        m.set_original_data(&original).map_err(field)?;
    }
    if let Some(actual) = a.actual_minor {
        let nothing = SignedAmount {
            sign: Sign::Credit,
            minor: 0,
        };
        let amounts = ReplacementAmounts {
            actual_amount: actual,
            settlement_amount: 0,
            transaction_fee: nothing,
            settlement_fee: nothing,
        };
        m.set_replacement_amounts(&amounts).map_err(field)?;
    }
    if let Some(pan) = card {
        m.set_str(2, pan.expose()).map_err(field)?;
    }
    Ok(m)
}

/// An 0800 with network management code `code` (field 70).
pub fn network_request(code: &str, stan: Stan, at: &str) -> Result<Message, LinkError> {
    let mut m = Message::new("0800").map_err(field)?;
    m.set_str(7, at).map_err(field)?;
    m.set_str(11, &stan.to_string()).map_err(field)?;
    m.set_str(70, code).map_err(field)?;
    Ok(m)
}

/// The response code of any answer (missing: 96).
pub fn response_code(resp: &Message) -> ResponseCode {
    ResponseCode::parse(resp.get_str(39).unwrap_or("96"))
}

/// The zone PIN key version the switch announces in field 53 of its 0810s.
pub fn announced_zone_key(resp: &Message) -> Option<u32> {
    resp.get_str(53).and_then(|v| v.parse::<u32>().ok())
}

/// The zone PIN key in an 0810 key change answer: field 53 its version, field 48 the cryptogram
/// (hex) followed by the 6-hex check value.
pub fn zone_pin_key_delivery(resp: &Message) -> Result<ZonePinKeyDelivery, LinkError> {
    let answer = |why: &str| LinkError::Answer(why.to_owned());
    let code = response_code(resp);
    if !code.is_approved() {
        return Err(LinkError::Answer(format!(
            "switch answered the key change request with {code}"
        )));
    }
    let version: u32 = resp
        .get_str(53)
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .ok_or_else(|| answer("0810 key change without a key version in field 53"))?;
    let data = resp
        .get_str(48)
        .ok_or_else(|| answer("0810 key change without field 48"))?;
    if data.len() < 6 || !data.is_ascii() {
        return Err(answer("field 48 too short for a key and its check value"));
    }
    let (cryptogram, kcv) = data.split_at(data.len() - 6);
    let cryptogram = Cryptogram::from_hex(cryptogram)
        .map_err(|e| LinkError::Answer(format!("field 48 key: {e}")))?;
    let kcv: Kcv = kcv
        .parse()
        .map_err(|e| LinkError::Answer(format!("field 48 check value: {e}")))?;
    Ok(ZonePinKeyDelivery {
        version,
        cryptogram,
        kcv,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::exchange::TransactionKey;
    use protocols::types::{Amount, Currency, TerminalId};

    #[test]
    fn a_withdrawal_is_an_0100_with_the_transaction_key() {
        let r = CardRequest {
            transaction: TransactionType::Withdrawal,
            key: TransactionKey {
                terminal: TerminalId::parse("ATM1").unwrap(),
                stan: Stan::new(42).unwrap(),
                transmitted_at: TransmissionDateTime::parse("1125114000").unwrap(),
            },
            pan: Pan::parse("4761739001010010").unwrap(),
            amount: Amount::new(5000, Currency::EUR),
            pin: None,
        };
        let m = card_request(&r).unwrap();
        assert_eq!(m.mti().as_str(), "0100");
        assert_eq!(m.get_str(3), Some("011000"));
        assert_eq!(m.get_str(4), Some("000000005000"));
        assert_eq!(m.get_str(11), Some("000042"));
        assert_eq!(m.get_str(41), Some("ATM1    "));
        assert_eq!(m.get_str(49), Some("978"));
        assert!(!m.contains(52));
    }

    #[test]
    fn an_answer_without_a_code_is_a_system_error() {
        let m = Message::new("0110").unwrap();
        assert_eq!(card_answer(&m).code, ResponseCode::SystemError);
    }
}
