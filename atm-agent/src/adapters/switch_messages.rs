//! The agent's side of the agent ↔ switch dialect: the agent's typed requests and queued advices
//! become `protocols::dialect` requests, and the switch's answers come back through
//! `protocols::dialect::Answer`. The field layout lives in `protocols::dialect`, shared with the
//! switch, so the two daemons cannot drift apart; this module only converts the agent's values.
//!
//! Every customer request carries its acceptance context (`domain::acceptance`): 12, 13, 14,
//! 18 = 6011, 22, 32, 35, 37, 42, 43. A queued advice carries its original's, stored with it,
//! without card data: 12, 13, 32, 37, 42, 43, and field 90 names the acquirer; a stored
//! deposit's advice adds entry mode 011 (its card number comes from the vault, not a read).
//!
//! An answer the agent cannot read (a response code outside the dialect, a malformed field) is
//! [`LinkError::Unreadable`]: its outcome is unknown, so a withdrawal or deposit in that state is
//! reversed like one that timed out (docs/ARCHITECTURE.md, the ambiguity rule).

use protocols::dialect::{
    self, Answer, MessageKey, NetworkCode, NetworkRequest, OriginalKey, PinField, Request,
    StatusAdvice,
};
use protocols::iso8583::{Message, PinBlock, TransmissionDateTime};
use protocols::types::{Pan, Stan};

use crate::domain::advice::{Advice, AdviceKind};
use crate::domain::exchange::{
    CardRequest, ResponseCode, SwitchAnswer, TransactionType, ZonePinKeyDelivery,
};
use crate::ports::{Cause, LinkError};

/// Why a queued advice cannot be written as a message of the dialect.
#[derive(Debug, thiserror::Error)]
#[error("the queued advice has no {0}")]
struct MissingInAdvice(&'static str);

fn encode(e: impl Into<Cause>) -> LinkError {
    LinkError::Encode(e.into())
}

fn to_message(request: &Request) -> Result<Message, LinkError> {
    request.to_message().map_err(encode)
}

fn read_answer(resp: &Message) -> Result<Answer, LinkError> {
    Answer::from_message(resp).map_err(|e| LinkError::Unreadable(Box::new(e)))
}

fn message_key(r: &CardRequest) -> MessageKey {
    MessageKey {
        terminal: r.key.terminal.clone(),
        stan: r.key.stan,
        transmitted_at: r.key.transmitted_at,
    }
}

/// A customer's request: 0100 for a withdrawal or an inquiry, 0200 for a deposit.
pub fn card_request(r: &CardRequest) -> Result<Message, LinkError> {
    let request = dialect::CardRequest {
        acceptance: r.acceptance.clone(),
        key: message_key(r),
        pan: r.pan.clone(),
        amount: r.amount,
        pin: r.pin.as_ref().map(|pin| PinField {
            block: PinBlock::new(pin.block.to_hex().into_bytes()),
            key_version: Some(pin.zone_key_version),
        }),
        repeat: false,
    };
    to_message(&match r.transaction {
        TransactionType::Withdrawal => Request::Withdrawal(request),
        TransactionType::BalanceInquiry => Request::BalanceInquiry(request),
        TransactionType::Deposit => Request::Deposit(request),
    })
}

/// The switch's answer to a customer's request.
pub fn card_answer(resp: &Message) -> Result<SwitchAnswer, LinkError> {
    let answer = read_answer(resp)?;
    Ok(SwitchAnswer {
        code: answer.code,
        approval_code: answer.approval_code,
        available_minor: answer.balances.map(|b| b.available_minor),
    })
}

/// The request of a queued advice (`repeat`: a resend, 0221/0421); `card`: a stored deposit's
/// card number from the vault.
pub fn advice_request(a: &Advice, repeat: bool, card: Option<&Pan>) -> Result<Request, LinkError> {
    let missing = |what| encode(MissingInAdvice(what));
    let key = MessageKey {
        terminal: a.terminal.clone(),
        stan: a.stan,
        transmitted_at: a.transmitted_at,
    };
    if a.kind == AdviceKind::Status {
        return Ok(Request::Status(StatusAdvice {
            key,
            detail: a.detail.clone().unwrap_or_default(),
        }));
    }
    if a.kind == AdviceKind::StoredDeposit {
        // A deposit advice (0220/0221, processing code 21, no field 90): the switch journals it,
        // answers 00 once journaled and posts the credit itself, so a ledger outage never
        // blocks the terminal's queue. Never a PIN block: PIN blocks are never stored.
        let pan = card.cloned().ok_or_else(|| missing("card number"))?;
        return Ok(Request::DepositAdvice(dialect::CardRequest {
            acceptance: dialect::Acceptance {
                entry_mode: Some(dialect::EntryMode::KEYED),
                ..a.acceptance.without_track2()
            },
            key,
            pan,
            amount: a.amount,
            pin: None,
            repeat,
        }));
    }
    let original = a
        .original
        .as_ref()
        .ok_or_else(|| missing("original transaction"))?;
    let advice = dialect::Advice {
        acceptance: a.acceptance.without_track2(),
        key,
        original: OriginalKey {
            mti: original.mti,
            stan: original.stan,
            transmitted_at: original.transmitted_at,
        },
        transaction: a.transaction.ok_or_else(|| missing("transaction type"))?,
        amount: a.amount,
        dispensed_minor: a.actual_minor,
        pan: card.cloned(),
        repeat,
    };
    Ok(match a.kind {
        AdviceKind::Completion => Request::Completion(advice),
        _ => Request::Reversal(advice),
    })
}

/// The message of a queued advice.
pub fn advice(a: &Advice, repeat: bool, card: Option<&Pan>) -> Result<Message, LinkError> {
    to_message(&advice_request(a, repeat, card)?)
}

/// An 0800 for the link itself (no terminal).
pub fn network_request(
    code: NetworkCode,
    stan: Stan,
    at: TransmissionDateTime,
) -> Result<Message, LinkError> {
    to_message(&Request::Network(NetworkRequest {
        code,
        stan: Some(stan),
        transmitted_at: Some(at),
        terminal: None,
    }))
}

/// The response code of any answer.
pub fn response_code(resp: &Message) -> Result<ResponseCode, LinkError> {
    Ok(read_answer(resp)?.code)
}

/// The zone PIN key version the switch announces in its 0810s (sign-on, echo).
/// Field 63 of an 0810: the card ranges whose deposits may be taken offline.
pub fn offline_deposits(resp: &Message) -> Option<protocols::dialect::OfflineDeposits> {
    Answer::from_message(resp).ok()?.offline_deposits
}

pub fn announced_zone_key(resp: &Message) -> Option<u32> {
    Answer::from_message(resp).ok()?.zone_key_version
}

/// The zone PIN key in an 0810 key change answer: its version (field 53), and field 48's
/// cryptogram (hex), 6-hex check value and 16-hex MAC ([`keystore::KeyDelivery::body`]). Only the
/// layout is read here: the MAC is the key store's to check.
pub fn zone_pin_key_delivery(resp: &Message) -> Result<ZonePinKeyDelivery, LinkError> {
    let answer = read_answer(resp)?;
    let wrong = |why: &str| LinkError::Answer(why.to_owned());
    if !answer.code.is_approved() {
        return Err(LinkError::Answer(format!(
            "switch answered the key change request with {}",
            answer.code
        )));
    }
    let version = answer
        .zone_key_version
        .ok_or_else(|| wrong("0810 key change without a key version in field 53"))?;
    let data = answer
        .zone_key_under_zmk
        .ok_or_else(|| wrong("0810 key change without field 48"))?;
    ZonePinKeyDelivery::from_body(version, &data)
        .map_err(|e| LinkError::Answer(format!("field 48: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::exchange::TransactionKey;
    use protocols::types::{Amount, Currency, TerminalId};

    fn withdrawal() -> CardRequest {
        CardRequest {
            transaction: TransactionType::Withdrawal,
            key: TransactionKey {
                terminal: TerminalId::parse("ATM1").unwrap(),
                stan: Stan::new(42).unwrap(),
                transmitted_at: TransmissionDateTime::parse("1125114000").unwrap(),
            },
            pan: Pan::parse("4761739001010010").unwrap(),
            amount: Amount::new(5000, Currency::EUR),
            pin: None,
            acceptance: Default::default(),
        }
    }

    #[test]
    fn a_withdrawal_is_an_0100_with_the_transaction_key() {
        let m = card_request(&withdrawal()).unwrap();
        assert_eq!(m.mti().as_str(), "0100");
        assert_eq!(m.get_str(3), Some("011000"));
        assert_eq!(m.get_str(4), Some("000000005000"));
        assert_eq!(m.get_str(11), Some("000042"));
        assert_eq!(m.get_str(41), Some("ATM1    "));
        assert_eq!(m.get_str(49), Some("978"));
        assert!(!m.contains(52));
    }

    #[test]
    fn an_unreadable_answer_may_have_been_acted_on() {
        let request = card_request(&withdrawal()).unwrap();
        let no_code = Message::response_to(&request);
        let e = card_answer(&no_code).unwrap_err();
        assert!(e.maybe_delivered(), "{e}");
        let mut odd = Message::response_to(&request);
        odd.set_str(39, "Q9").unwrap();
        assert!(card_answer(&odd).unwrap_err().maybe_delivered());
    }

    #[test]
    fn a_stored_deposit_is_sent_as_a_deposit_advice_without_an_original() {
        let key = withdrawal().key;
        let mut a = Advice::new(
            AdviceKind::StoredDeposit,
            &key.terminal,
            Stan::new(44).unwrap(),
            key.transmitted_at,
            TransactionType::Deposit,
            Amount::new(2500, Currency::EUR),
        );
        a.card_ref = Some("ATM1:000043".into());
        let pan = Pan::parse("4761739001010010").unwrap();
        let m = advice(&a, false, Some(&pan)).unwrap();
        assert_eq!(m.mti().as_str(), "0220");
        assert!(
            m.get_str(3).unwrap().starts_with("21"),
            "{:?}",
            m.get_str(3)
        );
        assert!(!m.contains(90), "no original");
        assert!(!m.contains(52), "no PIN block");
        let Request::DepositAdvice(read) = Request::from_message(&m).unwrap() else {
            panic!("not a deposit advice")
        };
        assert_eq!(
            (read.key.stan, read.amount.minor),
            (Stan::new(44).unwrap(), 2500)
        );
        assert_eq!(advice(&a, true, Some(&pan)).unwrap().mti().as_str(), "0221");
        assert!(advice(&a, false, None).is_err(), "never without its card");
    }

    #[test]
    fn a_queued_completion_reads_back_on_the_switch_side_as_sent() {
        let key = withdrawal().key;
        let mut a = Advice::new(
            AdviceKind::Completion,
            &key.terminal,
            Stan::new(43).unwrap(),
            key.transmitted_at,
            TransactionType::Withdrawal,
            Amount::new(5000, Currency::EUR),
        );
        a.actual_minor = Some(3000);
        a.original = Some(crate::domain::advice::Original::of(
            TransactionType::Withdrawal,
            key.stan,
            key.transmitted_at,
        ));
        let m = advice(&a, true, None).unwrap();
        assert_eq!(m.mti().as_str(), "0221");
        let Request::Completion(read) = Request::from_message(&m).unwrap() else {
            panic!("not a completion")
        };
        assert_eq!(read.dispensed_or_all(), 3000);
        assert_eq!(read.original.stan, key.stan);
    }
}
