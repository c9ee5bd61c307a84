//! Performs the ledger call a pending state owes, then journals the next state.
//!
//! Shared by the request flows (which drive their transaction at once) and the resumer (which
//! drives whatever a crash or an outage left behind). Every call uses the transaction's fixed
//! idempotency key for that operation, so driving the same state twice never posts twice.

use protocols::types::Amount;

use super::{now_ms, Switch};
use crate::domain::{RecordedReply, ResponseCode, TxnKey, TxnKind, TxnRecord, TxnState};
use crate::ports::{Journal, JournalError, JournalWrite, Ledger, LedgerError, PostingKind};

/// Why a pending state could not be driven to its end.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Journal(#[from] crate::ports::JournalError),
    #[error(transparent)]
    Transition(#[from] crate::domain::txn::InvalidTransition),
    #[error(transparent)]
    Issuer(#[from] crate::domain::issuer::IssuerError),
}

impl DriveError {
    /// The work may get done if tried again later (the agent is told 91 and repeats its advice).
    pub fn is_transient(&self) -> bool {
        use crate::domain::issuer::IssuerError as I;
        match self {
            Self::Ledger(e) => e.is_transient(),
            Self::Issuer(I::UnknownHost(_) | I::Storage { .. }) => false,
            Self::Issuer(_) => true,
            Self::Journal(_) | Self::Transition(_) => false,
        }
    }
}

impl<L: Ledger, J: Journal> Switch<L, J> {
    /// Drives `rec` from a pending state to its settled state, journaling durably.
    /// A non-pending record is left as it is.
    pub async fn drive(&self, rec: &mut TxnRecord) -> Result<(), DriveError> {
        self.drive_waiting(rec, true).await
    }

    /// As [`drive`](Self::drive); without `wait_for_host`, an advice a bank host has not
    /// acknowledged yet is left to its queue at once (the resumer must not wait on one host).
    pub(super) async fn drive_waiting(
        &self,
        rec: &mut TxnRecord,
        wait_for_host: bool,
    ) -> Result<(), DriveError> {
        if let Some(trace) = rec.issuer.clone() {
            let Some(next) = self.drive_bank(rec, &trace, wait_for_host).await? else {
                return Ok(());
            };
            return self.settled(rec, next, "bank host acknowledged").await;
        }
        let next = match rec.state.clone() {
            TxnState::CapturePending {
                hold_id,
                amount_minor,
            } => {
                self.ledger
                    .capture(&ledger_key(rec, "capture"), &hold_id, amount_minor)
                    .await?;
                TxnState::Captured {
                    hold_id,
                    amount_minor,
                }
            }
            TxnState::VoidPending { hold_id } => {
                self.void(rec, hold_id).await?;
                TxnState::Voided
            }
            TxnState::CompensationPending { amount_minor } => {
                self.compensate(rec, amount_minor).await?;
                TxnState::Compensated { amount_minor }
            }
            TxnState::CreditAdvised => match self.credit_advised(rec).await {
                Ok(movement_id) => TxnState::Credited { movement_id },
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => {
                    tracing::error!(txn = %rec.key, error = %e, "the ledger refused the credit of a deposit the ATM holds: exception for an operator");
                    TxnState::Exception {
                        reason: format!("ledger refused the credit: {e}"),
                    }
                }
            },
            _ => return Ok(()),
        };
        self.settled(rec, next, "ledger confirmed").await
    }

    /// Journals the state the ledger or the host confirmed.
    async fn settled(
        &self,
        rec: &mut TxnRecord,
        next: TxnState,
        what: &'static str,
    ) -> Result<(), DriveError> {
        let from = rec.state.name();
        rec.advance(next, now_ms())?;
        self.journal
            .write(JournalWrite {
                txn: Some(rec.clone()),
                reply: None,
            })
            .await?;
        tracing::info!(txn = %rec.key, from, to = rec.state.name(), "{what}");
        Ok(())
    }

    /// Drives `rec` for an advice (0220/0420) and answers it: 00 once the ledger confirmed; 91,
    /// not recorded, while the ledger is unreachable (the agent repeats the advice, the resumer
    /// carries on meanwhile); 96, recorded, when the ledger refuses (an operator must look).
    pub(super) async fn drive_and_answer(
        &self,
        class: &'static str,
        key: &TxnKey,
        rec: &mut TxnRecord,
    ) -> Result<RecordedReply, JournalError> {
        match self.drive(rec).await {
            Ok(()) => self.answer_code(class, key, ResponseCode::Approved).await,
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, state = rec.state.name(), "work not confirmed yet: 91, the advice will be repeated");
                Ok(RecordedReply::code(ResponseCode::IssuerUnavailable))
            }
            Err(DriveError::Journal(e)) => Err(e),
            Err(e) => {
                tracing::error!(error = %e, state = rec.state.name(), "ledger refused: needs an operator");
                self.answer_code(class, key, ResponseCode::SystemError)
                    .await
            }
        }
    }

    /// Voids the hold. When the hold id is unknown (the ledger call that made it timed out), the
    /// hold is asked for again with its original idempotency key: the ledger answers with the hold
    /// it made, if it made one, and a "no" means there is nothing to void.
    async fn void(&self, rec: &TxnRecord, hold_id: Option<String>) -> Result<(), LedgerError> {
        let hold_id = match hold_id {
            Some(h) => h,
            None => match self
                .ledger
                .hold(&ledger_key(rec, "hold"), &rec.account, rec.amount, &rec.key)
                .await
            {
                Ok(h) => h.hold_id,
                Err(
                    LedgerError::InsufficientFunds
                    | LedgerError::UnknownAccount
                    | LedgerError::Invalid(_),
                ) => return Ok(()),
                Err(e) => return Err(e),
            },
        };
        match self.ledger.void(&ledger_key(rec, "void"), &hold_id).await {
            Ok(()) => Ok(()),
            Err(LedgerError::Conflict(reason)) => {
                // The ledger says the hold cannot be voided (already captured): an operator must look.
                tracing::error!(txn = %rec.key, %reason, "void refused by the ledger: transaction needs an operator");
                Err(LedgerError::Conflict(reason))
            }
            Err(e) => Err(e),
        }
    }

    /// Credits a deposit the terminal took offline, with the key an online deposit would use.
    async fn credit_advised(&self, rec: &TxnRecord) -> Result<String, LedgerError> {
        self.ledger
            .post(
                &ledger_key(rec, "credit"),
                PostingKind::Credit,
                &rec.account,
                rec.amount,
                &rec.key,
            )
            .await
    }

    /// Undoes a posted movement: a credit back after a captured withdrawal; after a deposit, the
    /// deposit's credit is first ensured (same key: no second effect) and then debited back.
    async fn compensate(&self, rec: &TxnRecord, amount_minor: u64) -> Result<(), LedgerError> {
        let amount = Amount::new(amount_minor, rec.amount.currency);
        let kind = match rec.kind {
            TxnKind::Withdrawal => PostingKind::Credit,
            TxnKind::Deposit => {
                self.ledger
                    .post(
                        &ledger_key(rec, "credit"),
                        PostingKind::Credit,
                        &rec.account,
                        rec.amount,
                        &rec.key,
                    )
                    .await?;
                PostingKind::Debit
            }
        };
        self.ledger
            .post(
                &ledger_key(rec, "compensate"),
                kind,
                &rec.account,
                amount,
                &rec.key,
            )
            .await
            .map(|_| ())
    }
}

/// The idempotency key of one ledger operation on a journaled transaction.
pub(crate) fn ledger_key(rec: &TxnRecord, operation: &str) -> String {
    format!("{operation}:{}", rec.key)
}
