//! What the agent owes the switch after a customer is served: the queue's payload.
//!
//! An advice is everything needed to build its ISO 8583 message again after a restart. It never
//! carries card data (the queue shows advices to technicians): a completion or reversal names the
//! original by STAN and transmission date-time (field 90), which is how the switch finds it. A
//! deposit taken while the switch was unreachable must reach it with its card number: the advice
//! holds only a reference to it in the agent's card vault (`StateStore::put_card`).

use protocols::iso8583::TransmissionDateTime;
use protocols::types::{Amount, Stan, TerminalId};
use serde::{Deserialize, Serialize};

use super::exchange::TransactionType;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdviceKind {
    /// 0220: cash dispensed for an approved withdrawal (all or part of it).
    Completion,
    /// 0420: undo the original (nothing dispensed, timed out, deposit not taken).
    Reversal,
    /// 0200: a deposit accepted while the switch was unreachable.
    StoredDeposit,
    /// 0820: a terminal's status for the fleet view.
    Status,
}

/// The original transaction an advice refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Original {
    pub mti: String,
    pub stan: u32,
    pub transmitted_at: String,
}

impl Original {
    /// The original request of `transaction`, by its STAN and transmission time.
    pub fn of(
        transaction: TransactionType,
        stan: Stan,
        transmitted_at: TransmissionDateTime,
    ) -> Self {
        Self {
            mti: transaction.request_mti().to_string(),
            stan: stan.value(),
            transmitted_at: transmitted_at.to_string(),
        }
    }
}

/// An advice as the queue stores it: plain values, so that a record written by any earlier agent
/// still reads (build one with [`Advice::new`] or [`Advice::status`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advice {
    pub kind: AdviceKind,
    pub terminal_id: String,
    /// This message's own STAN and field 7: fixed at enqueue, so a resend is the same message.
    pub stan: u32,
    pub transmitted_at: String,
    pub processing_code: String,
    pub currency: u16,
    /// Field 4: the original amount.
    pub amount_minor: u64,
    /// Field 95 actual amount (completion: what was dispensed).
    pub actual_minor: Option<u64>,
    pub original: Option<Original>,
    /// Only for `StoredDeposit`: where the card number waits in the vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_ref: Option<String>,
    /// Only for `Status`: what the terminal reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Advice {
    /// An advice about a customer's transaction, with its own STAN and transmission time.
    pub fn new(
        kind: AdviceKind,
        terminal: &TerminalId,
        stan: Stan,
        transmitted_at: TransmissionDateTime,
        transaction: TransactionType,
        amount: Amount,
    ) -> Self {
        Self {
            kind,
            terminal_id: terminal.as_str().to_owned(),
            stan: stan.value(),
            transmitted_at: transmitted_at.to_string(),
            processing_code: transaction.processing_code().to_string(),
            currency: amount.currency.numeric,
            amount_minor: amount.minor,
            actual_minor: None,
            original: None,
            card_ref: None,
            detail: None,
        }
    }

    /// A terminal's status for the fleet view (`detail`: what it reported, at most 200 chars).
    pub fn status(
        terminal: &TerminalId,
        stan: Stan,
        transmitted_at: TransmissionDateTime,
        amount: Amount,
        detail: &str,
    ) -> Self {
        Self {
            kind: AdviceKind::Status,
            terminal_id: terminal.as_str().to_owned(),
            stan: stan.value(),
            transmitted_at: transmitted_at.to_string(),
            processing_code: "000000".to_owned(),
            currency: amount.currency.numeric,
            amount_minor: amount.minor,
            actual_minor: None,
            original: None,
            card_ref: None,
            detail: Some(detail.chars().take(200).collect()),
        }
    }

    /// The request MTI, `0221`/`0421`-style when this send is a repeat.
    pub fn mti(&self, repeat: bool) -> &'static str {
        match (self.kind, repeat) {
            (AdviceKind::Completion, false) => "0220",
            (AdviceKind::Completion, true) => "0221",
            (AdviceKind::Reversal, false) => "0420",
            (AdviceKind::Reversal, true) => "0421",
            (AdviceKind::StoredDeposit, _) => "0200",
            (AdviceKind::Status, _) => "0820",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_use_the_repeat_mti() {
        let mut a = Advice {
            kind: AdviceKind::Completion,
            terminal_id: "ATM00001".into(),
            stan: 2,
            transmitted_at: "1125114000".into(),
            processing_code: "011000".into(),
            currency: 978,
            amount_minor: 1000,
            actual_minor: Some(1000),
            original: None,
            card_ref: None,
            detail: None,
        };
        assert_eq!((a.mti(false), a.mti(true)), ("0220", "0221"));
        a.kind = AdviceKind::Reversal;
        assert_eq!((a.mti(false), a.mti(true)), ("0420", "0421"));
    }

    #[test]
    fn advices_round_trip_through_json() {
        let a = Advice {
            kind: AdviceKind::StoredDeposit,
            terminal_id: "ATM00001".into(),
            stan: 2,
            transmitted_at: "1125114000".into(),
            processing_code: "210010".into(),
            currency: 978,
            amount_minor: 1000,
            actual_minor: None,
            original: None,
            card_ref: Some("ATM00001:000002".into()),
            detail: None,
        };
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Advice>(&json).unwrap(), a);
    }
}
