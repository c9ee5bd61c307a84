//! A customer transaction's state machine, as journaled.
//!
//! ```text
//!  withdrawal: HoldRequested ─► Held ─► CapturePending ─► Captured ─► CompensationPending ─► Compensated
//!                    │            │                                     (reversal after capture)
//!                    │            └────► VoidPending ─► Voided
//!                    └─► Declined
//!  deposit:    CreditRequested ─► Credited ─► CompensationPending ─► Compensated
//!                    └─► Declined      (CreditRequested ─► CompensationPending when reversed in doubt)
//!  reversal before the original was seen: ReversedUnseen (a late original is then declined)
//!  deposit taken offline (0220 advice): CreditAdvised ─► Credited
//!                    └─► Exception ─► CreditAdvised (an operator retries) | Resolved (written off)
//! ```
//! `HoldRequested` is written *before* the ledger is called: if the switch dies between the ledger's
//! hold and the journal, the record says a hold may exist, and a reversal re-asks the ledger with the
//! same idempotency key (getting the same hold) to void it. A `Held` withdrawal with no advice is
//! "in doubt": never silently voided, the cash may be in the customer's hand.
//! The `*Pending` states and `CreditAdvised` are outbound work the ledger has not confirmed; the
//! resumer drives them on. A `HoldRequested` or `CreditRequested` record that no request is
//! driving any more (a crash, or a journal write that failed after the ledger call) is an
//! ambiguous outcome: the resumer voids the hold or compensates the credit, by idempotency key.
//! `Exception` is money the switch owes but the ledger refused (an offline deposit to an account
//! that does not exist): never dropped, listed for an operator until resolved.

use protocols::types::Amount;
use serde::{Deserialize, Serialize};

use super::{ResponseCode, TxnKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnKind {
    Withdrawal,
    Deposit,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    HoldRequested,
    Held {
        hold_id: String,
    },
    CapturePending {
        hold_id: String,
        amount_minor: u64,
    },
    Captured {
        hold_id: String,
        amount_minor: u64,
    },
    VoidPending {
        hold_id: Option<String>,
    },
    Voided,
    CreditRequested,
    Credited {
        movement_id: String,
    },
    /// Undo a posted movement: a credit back after a captured withdrawal, a debit after a deposit.
    CompensationPending {
        amount_minor: u64,
    },
    Compensated {
        amount_minor: u64,
    },
    Declined {
        code: ResponseCode,
    },
    ReversedUnseen,
    /// A deposit the terminal took while the switch was unreachable (0220 advice): the cash is in
    /// the ATM and the switch owes the credit.
    CreditAdvised,
    /// Money owed that the ledger refused for good: an operator must act (`switchctl exceptions`).
    Exception {
        reason: String,
    },
    /// An exception an operator closed without moving money (written off, with why and who).
    Resolved {
        by: String,
        reason: String,
    },
}

impl TxnState {
    /// Work the switch still owes the ledger, or a ledger call whose outcome is not journaled
    /// yet: what the resumer picks up (a `*Requested` record only once no request drives it).
    pub fn is_pending_outbound(&self) -> bool {
        matches!(
            self,
            Self::CapturePending { .. }
                | Self::VoidPending { .. }
                | Self::CompensationPending { .. }
                | Self::CreditAdvised
                | Self::HoldRequested
                | Self::CreditRequested
        )
    }

    /// Nothing more will happen to the transaction unless a reversal or an operator comes: it may
    /// leave the hot journal. A `Held` withdrawal is not finished (its advice is awaited, or its
    /// dispense is in doubt), nor is an unresolved exception.
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            Self::Captured { .. }
                | Self::Voided
                | Self::Credited { .. }
                | Self::Compensated { .. }
                | Self::Declined { .. }
                | Self::ReversedUnseen
                | Self::Resolved { .. }
        )
    }

    /// The name used in logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::HoldRequested => "hold_requested",
            Self::Held { .. } => "held",
            Self::CapturePending { .. } => "capture_pending",
            Self::Captured { .. } => "captured",
            Self::VoidPending { .. } => "void_pending",
            Self::Voided => "voided",
            Self::CreditRequested => "credit_requested",
            Self::Credited { .. } => "credited",
            Self::CompensationPending { .. } => "compensation_pending",
            Self::Compensated { .. } => "compensated",
            Self::Declined { .. } => "declined",
            Self::ReversedUnseen => "reversed_unseen",
            Self::CreditAdvised => "credit_advised",
            Self::Exception { .. } => "exception",
            Self::Resolved { .. } => "resolved",
        }
    }

    /// Whether the state machine allows going from `self` to `next`. Every journal write of a
    /// transaction is checked against it, so a bug cannot e.g. capture a voided hold.
    pub fn may_become(&self, next: &TxnState) -> bool {
        use TxnState::*;
        matches!(
            (self, next),
            (
                HoldRequested,
                Held { .. } | Declined { .. } | VoidPending { .. }
            ) | (Held { .. }, CapturePending { .. } | VoidPending { .. })
                | (
                    CapturePending { .. },
                    Captured { .. } | CapturePending { .. }
                )
                | (Captured { .. }, CompensationPending { .. })
                | (VoidPending { .. }, Voided | VoidPending { .. })
                | (
                    CreditRequested,
                    Credited { .. } | Declined { .. } | CompensationPending { .. }
                )
                | (Credited { .. }, CompensationPending { .. })
                | (CompensationPending { .. }, Compensated { .. })
                | (CreditAdvised, Credited { .. } | Exception { .. })
                | (Exception { .. }, CreditAdvised | Resolved { .. })
        )
    }
}

/// One transaction as the journal keeps it. Holds no card data: the card appears only as its
/// wallet account, its keyed reference. Not its masked PAN too: a reference beside the first 6
/// and last 4 digits is what let an unkeyed reference be reversed, so records keep one of the two.
/// (Records written before keep their `pan_masked`, which is ignored when read.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRecord {
    pub key: String,
    pub kind: TxnKind,
    pub account: String,
    pub amount: Amount,
    pub state: TxnState,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// The answer given to the request that created the transaction (0100/0200), kept with it so
    /// the state and the answer are one write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<RecordedReply>,
    /// What operators decided about this transaction (who, when, what and why), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operator_notes: Vec<OperatorNote>,
    /// A card on the bank host route: the request as the host knows it. `None`: the wallet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<Box<super::issuer::HostTrace>>,
}

/// One operator decision, journaled with the transaction it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorNote {
    pub at_ms: u64,
    pub by: String,
    pub action: String,
    pub reason: String,
}

impl TxnRecord {
    pub fn new(key: &TxnKey, kind: TxnKind, account: &str, amount: Amount, now_ms: u64) -> Self {
        let state = match kind {
            TxnKind::Withdrawal => TxnState::HoldRequested,
            TxnKind::Deposit => TxnState::CreditRequested,
        };
        Self {
            key: key.as_string(),
            kind,
            account: account.to_owned(),
            amount,
            state,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            answer: None,
            operator_notes: Vec::new(),
            issuer: None,
        }
    }

    /// Moves to `next` if the state machine allows it.
    pub fn advance(&mut self, next: TxnState, now_ms: u64) -> Result<(), InvalidTransition> {
        if !self.state.may_become(&next) {
            return Err(InvalidTransition {
                key: self.key.clone(),
                from: self.state.name(),
                to: next.name(),
            });
        }
        self.state = next;
        self.updated_at_ms = now_ms;
        Ok(())
    }

    /// Money this transaction moved in the ledger from the customer's point of view
    /// (negative = debited), for reconciliation.
    pub fn net_posted_minor(&self) -> i128 {
        let amount = i128::from(self.amount.minor);
        match (&self.kind, &self.state) {
            (TxnKind::Withdrawal, TxnState::Captured { amount_minor, .. }) => {
                -i128::from(*amount_minor)
            }
            (TxnKind::Deposit, TxnState::Credited { .. }) => amount,
            _ => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transaction {key}: {from} cannot become {to}")]
pub struct InvalidTransition {
    pub key: String,
    pub from: &'static str,
    pub to: &'static str,
}

/// The answer given to one request message, so a replay gets exactly the same answer.
/// Only what is not an echo of the request is kept; echo fields are copied from the replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedReply {
    pub code: ResponseCode,
    /// Field 38, when approved.
    pub approval_code: Option<String>,
    /// Field 54 (balance inquiry). Inquiries are never journaled, so older records have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balances: Option<protocols::dialect::Balances>,
    /// Field 53: the current zone PIN key version (answers to sign-on, echo and key change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zpk_version: Option<keystore::KeyVersion>,
    /// Field 48 of a key change answer: the ZPK under the ZMK (hex) followed by its KCV.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zpk_under_zmk: Option<String>,
    /// Field 63 of a sign-on or echo answer: whose deposits an agent may take offline (never
    /// journaled: network answers are not recorded).
    #[serde(skip)]
    pub offline_deposits: Option<protocols::dialect::OfflineDeposits>,
}

impl RecordedReply {
    pub fn code(code: ResponseCode) -> Self {
        Self {
            code,
            approval_code: None,
            balances: None,
            zpk_version: None,
            zpk_under_zmk: None,
            offline_deposits: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TxnState::*;

    fn all_states() -> Vec<TxnState> {
        let h = || "h1".to_string();
        vec![
            HoldRequested,
            Held { hold_id: h() },
            CapturePending {
                hold_id: h(),
                amount_minor: 1,
            },
            Captured {
                hold_id: h(),
                amount_minor: 1,
            },
            VoidPending { hold_id: Some(h()) },
            Voided,
            CreditRequested,
            Credited { movement_id: h() },
            CompensationPending { amount_minor: 1 },
            Compensated { amount_minor: 1 },
            Declined {
                code: ResponseCode::InsufficientFunds,
            },
            ReversedUnseen,
            CreditAdvised,
            Exception { reason: h() },
            Resolved {
                by: h(),
                reason: h(),
            },
        ]
    }

    #[test]
    fn transitions_are_exactly_the_documented_ones() {
        let allowed: &[(&str, &str)] = &[
            ("hold_requested", "held"),
            ("hold_requested", "declined"),
            ("hold_requested", "void_pending"),
            ("held", "capture_pending"),
            ("held", "void_pending"),
            ("capture_pending", "captured"),
            ("capture_pending", "capture_pending"),
            ("captured", "compensation_pending"),
            ("void_pending", "voided"),
            ("void_pending", "void_pending"),
            ("credit_requested", "credited"),
            ("credit_requested", "declined"),
            ("credit_requested", "compensation_pending"),
            ("credited", "compensation_pending"),
            ("compensation_pending", "compensated"),
            ("credit_advised", "credited"),
            ("credit_advised", "exception"),
            ("exception", "credit_advised"),
            ("exception", "resolved"),
        ];
        for from in all_states() {
            for to in all_states() {
                let expected = allowed.contains(&(from.name(), to.name()));
                assert_eq!(
                    from.may_become(&to),
                    expected,
                    "{} -> {}",
                    from.name(),
                    to.name()
                );
            }
        }
    }

    #[test]
    fn terminal_states_go_nowhere() {
        for s in [
            Voided,
            Compensated { amount_minor: 1 },
            Declined {
                code: ResponseCode::DoNotHonour,
            },
            ReversedUnseen,
            Resolved {
                by: "o".into(),
                reason: "r".into(),
            },
        ] {
            assert!(
                all_states().iter().all(|n| !s.may_become(n)),
                "{}",
                s.name()
            );
        }
    }

    #[test]
    fn unconfirmed_ledger_work_and_unknown_outcomes_are_pending() {
        let pending: Vec<_> = all_states()
            .into_iter()
            .filter(|s| s.is_pending_outbound())
            .map(|s| s.name())
            .collect();
        assert_eq!(
            pending,
            vec![
                "hold_requested",
                "capture_pending",
                "void_pending",
                "credit_requested",
                "compensation_pending",
                "credit_advised"
            ]
        );
    }
}
