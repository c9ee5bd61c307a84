//! What the agent owes the switch after a customer is served: the queue's payload.
//!
//! An advice is everything needed to build its ISO 8583 message again after a restart. It never
//! carries card data (the queue shows advices to technicians): a completion or reversal names the
//! original by STAN and transmission date-time (field 90), which is how the switch finds it. A
//! deposit taken while the switch was unreachable must reach it with its card number: the advice
//! holds only a reference to it in the agent's card vault (`StateStore::put_card`). An advice
//! carries its original's acceptance context (local time, acquirer, RRN, acceptor: fields 12, 13,
//! 32, 37, 42, 43), which is not card data; never track 2, the expiry or a PIN block.

use protocols::iso8583::{Mti, TransmissionDateTime};
use protocols::types::{Amount, Currency, Stan, TerminalId};
use serde::{Deserialize, Serialize};

use super::acceptance::{AcceptanceRecord, AcceptanceRecordError};
use super::exchange::TransactionType;
use protocols::dialect::Acceptance;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdviceKind {
    /// 0220: cash dispensed for an approved withdrawal (all or part of it).
    Completion,
    /// 0420: undo the original (nothing dispensed, timed out, deposit not taken).
    Reversal,
    /// 0220 (0221) deposit advice, processing code 21, no field 90: a deposit accepted while
    /// the switch was unreachable; the switch journals it and posts the credit itself.
    StoredDeposit,
    /// 0820: a terminal's status for the fleet view.
    Status,
}

/// The original transaction an advice refers to (field 90).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    pub mti: Mti,
    pub stan: Stan,
    pub transmitted_at: TransmissionDateTime,
}

impl Original {
    /// The original request of `transaction`, by its STAN and transmission time.
    pub fn of(
        transaction: TransactionType,
        stan: Stan,
        transmitted_at: TransmissionDateTime,
    ) -> Self {
        Self {
            mti: transaction.request_mti(),
            stan,
            transmitted_at,
        }
    }
}

/// What the agent owes the switch. Build one with [`Advice::new`] or [`Advice::status`]. The queue
/// stores it as [`AdviceRecord`] (plain values), so a record written by any earlier agent still
/// reads, and one that no longer makes sense is refused by name rather than sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "AdviceRecord", try_from = "AdviceRecord")]
pub struct Advice {
    pub kind: AdviceKind,
    pub terminal: TerminalId,
    /// This message's own STAN and field 7: fixed at enqueue, so a resend is the same message.
    pub stan: Stan,
    pub transmitted_at: TransmissionDateTime,
    /// The original's transaction type; `None` for a status advice.
    pub transaction: Option<TransactionType>,
    /// Field 4: the original amount.
    pub amount: Amount,
    /// Field 95 actual amount (completion: what was dispensed).
    pub actual_minor: Option<u64>,
    pub original: Option<Original>,
    /// Only for `StoredDeposit`: where the card number waits in the vault.
    pub card_ref: Option<String>,
    /// Only for `Status`: what the terminal reported.
    pub detail: Option<String>,
    /// The original's acceptance context, without card data (`domain::acceptance`).
    pub acceptance: Acceptance,
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
            terminal: terminal.clone(),
            stan,
            transmitted_at,
            transaction: Some(transaction),
            amount,
            actual_minor: None,
            original: None,
            card_ref: None,
            detail: None,
            acceptance: Acceptance::default(),
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
            terminal: terminal.clone(),
            stan,
            transmitted_at,
            transaction: None,
            amount,
            actual_minor: None,
            original: None,
            card_ref: None,
            detail: Some(detail.chars().take(200).collect()),
            acceptance: Acceptance::default(),
        }
    }

    /// The request MTI, `0221`/`0421`-style when this send is a repeat.
    pub fn mti(&self, repeat: bool) -> &'static str {
        match (self.kind, repeat) {
            (AdviceKind::Completion, false) => "0220",
            (AdviceKind::Completion, true) => "0221",
            (AdviceKind::Reversal, false) => "0420",
            (AdviceKind::Reversal, true) => "0421",
            (AdviceKind::StoredDeposit, false) => "0220",
            (AdviceKind::StoredDeposit, true) => "0221",
            (AdviceKind::Status, _) => "0820",
        }
    }
}

/// An advice as the queue stores it (and `atmctl queue ls` shows it): the plain values every
/// agent has written, so queues survive upgrades.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdviceRecord {
    pub kind: AdviceKind,
    pub terminal_id: String,
    pub stan: u32,
    pub transmitted_at: String,
    /// `000000` for a status advice.
    pub processing_code: String,
    pub currency: u16,
    pub amount_minor: u64,
    pub actual_minor: Option<u64>,
    pub original: Option<OriginalRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The original's acceptance context (absent in records of earlier agents).
    #[serde(default, skip_serializing_if = "AcceptanceRecord::is_empty")]
    pub acceptance: AcceptanceRecord,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginalRecord {
    pub mti: String,
    pub stan: u32,
    pub transmitted_at: String,
}

/// Why a stored advice record is not an advice (a value that does not parse).
#[derive(Debug, thiserror::Error)]
#[error("queued advice record: {field} {value:?} is not valid")]
pub struct AdviceRecordError {
    field: &'static str,
    value: String,
}

fn invalid(field: &'static str, value: impl ToString) -> AdviceRecordError {
    AdviceRecordError {
        field,
        value: value.to_string(),
    }
}

fn transmission(
    field: &'static str,
    text: &str,
) -> Result<TransmissionDateTime, AdviceRecordError> {
    TransmissionDateTime::parse(text).ok_or_else(|| invalid(field, text))
}

impl From<Advice> for AdviceRecord {
    fn from(a: Advice) -> Self {
        Self {
            kind: a.kind,
            terminal_id: a.terminal.as_str().to_owned(),
            stan: a.stan.value(),
            transmitted_at: a.transmitted_at.to_string(),
            processing_code: a
                .transaction
                .map_or_else(|| "000000".to_owned(), |t| t.processing_code().to_string()),
            currency: a.amount.currency.numeric,
            amount_minor: a.amount.minor,
            actual_minor: a.actual_minor,
            original: a.original.map(|o| OriginalRecord {
                mti: o.mti.to_string(),
                stan: o.stan.value(),
                transmitted_at: o.transmitted_at.to_string(),
            }),
            card_ref: a.card_ref,
            detail: a.detail,
            acceptance: AcceptanceRecord::from(&a.acceptance),
        }
    }
}

impl TryFrom<AdviceRecord> for Advice {
    type Error = AdviceRecordError;

    fn try_from(r: AdviceRecord) -> Result<Self, AdviceRecordError> {
        let transaction = match r.processing_code.as_str() {
            "000000" => None,
            code => Some(
                code.get(..2)
                    .and_then(|t| t.parse().ok())
                    .and_then(TransactionType::from_code)
                    .ok_or_else(|| invalid("processing_code", code))?,
            ),
        };
        let original = match r.original {
            None => None,
            Some(o) => Some(Original {
                mti: Mti::parse(&o.mti).map_err(|_| invalid("original.mti", &o.mti))?,
                stan: Stan::new(o.stan).map_err(|_| invalid("original.stan", o.stan))?,
                transmitted_at: transmission("original.transmitted_at", &o.transmitted_at)?,
            }),
        };
        Ok(Self {
            kind: r.kind,
            terminal: TerminalId::parse(&r.terminal_id)
                .map_err(|_| invalid("terminal_id", &r.terminal_id))?,
            stan: Stan::new(r.stan).map_err(|_| invalid("stan", r.stan))?,
            transmitted_at: transmission("transmitted_at", &r.transmitted_at)?,
            transaction,
            amount: Amount::new(
                r.amount_minor,
                Currency {
                    numeric: r.currency,
                },
            ),
            actual_minor: r.actual_minor,
            original,
            card_ref: r.card_ref,
            detail: r.detail,
            acceptance: r
                .acceptance
                .to_acceptance()
                .map_err(|e: AcceptanceRecordError| invalid(e.field, e.value))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion() -> Advice {
        let at = TransmissionDateTime::parse("1125114000").unwrap();
        let mut a = Advice::new(
            AdviceKind::Completion,
            &TerminalId::parse("ATM00001").unwrap(),
            Stan::new(2).unwrap(),
            at,
            TransactionType::Withdrawal,
            Amount::new(1000, Currency::EUR),
        );
        a.actual_minor = Some(1000);
        a.original = Some(Original::of(
            TransactionType::Withdrawal,
            Stan::new(1).unwrap(),
            at,
        ));
        a
    }

    #[test]
    fn repeats_use_the_repeat_mti() {
        let mut a = completion();
        assert_eq!((a.mti(false), a.mti(true)), ("0220", "0221"));
        a.kind = AdviceKind::Reversal;
        assert_eq!((a.mti(false), a.mti(true)), ("0420", "0421"));
    }

    #[test]
    fn a_record_written_by_an_earlier_agent_reads_and_is_written_back_the_same() {
        let old = r#"{"kind":"Completion","terminal_id":"ATM00001","stan":2,"transmitted_at":"1125114000","processing_code":"011000","currency":978,"amount_minor":1000,"actual_minor":1000,"original":{"mti":"0100","stan":1,"transmitted_at":"1125114000"}}"#;
        let a: Advice = serde_json::from_str(old).unwrap();
        assert_eq!(a, completion());
        assert_eq!(serde_json::to_string(&a).unwrap(), old);
        let status = r#"{"kind":"Status","terminal_id":"ATM00001","stan":3,"transmitted_at":"1125114000","processing_code":"000000","currency":978,"amount_minor":0,"actual_minor":null,"original":null,"detail":"P20"}"#;
        let s: Advice = serde_json::from_str(status).unwrap();
        assert_eq!((s.transaction, s.detail.as_deref()), (None, Some("P20")));
        assert_eq!(serde_json::to_string(&s).unwrap(), status);
    }

    #[test]
    fn a_record_that_no_longer_parses_is_refused_by_name() {
        let bad = r#"{"kind":"Completion","terminal_id":"ATM00001","stan":2,"transmitted_at":"1399114000","processing_code":"011000","currency":978,"amount_minor":1000,"actual_minor":null,"original":null}"#;
        let e = serde_json::from_str::<Advice>(bad).unwrap_err().to_string();
        assert!(e.contains("transmitted_at"), "{e}");
    }
}
