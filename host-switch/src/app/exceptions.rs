//! Exceptions: money the switch owes that the ledger refused for good (a deposit taken offline
//! for an account the ledger does not know, a card no route serves). They are never dropped:
//! `switchctl exceptions ls` lists them and `switchctl exceptions resolve` closes each one, either
//! by posting again (`retry`: after the account was opened, say) or by writing it off with a
//! reason (the cash is handled outside the wallet). Who and why are journaled with the record.

use futures::future::BoxFuture;
use serde::Serialize;

use super::{now_ms, Switch};
use crate::domain::txn::OperatorNote;
use crate::domain::{TxnRecord, TxnState};
use crate::ports::{Journal, JournalError, JournalWrite, Ledger};

/// What an operator decides for an exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// Post the credit again (the resumer does it, by the same idempotency key).
    Retry,
    /// Close it without moving money in the ledger.
    WriteOff,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no transaction {0} in the journal")]
    Unknown(String),
    #[error("transaction {key} is {state}, not an exception")]
    NotAnException { key: String, state: &'static str },
    #[error("a resolution needs a reason and who gives it")]
    Unexplained,
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Transition(#[from] crate::domain::txn::InvalidTransition),
}

/// The operator's desk: object-safe, so the control socket holds it without the switch's types.
pub trait ExceptionDesk: Send + Sync + 'static {
    /// Every unresolved exception, oldest first.
    fn exceptions(&self) -> Result<Vec<TxnRecord>, JournalError>;
    /// Resolves one; returns the record as journaled.
    fn resolve<'a>(
        &'a self,
        key: &'a str,
        resolution: Resolution,
        by: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<TxnRecord, ResolveError>>;
}

impl<L: Ledger, J: Journal> ExceptionDesk for Switch<L, J> {
    fn exceptions(&self) -> Result<Vec<TxnRecord>, JournalError> {
        let mut list: Vec<TxnRecord> = self
            .journal
            .txns()?
            .into_iter()
            .filter(|r| matches!(r.state, TxnState::Exception { .. }))
            .collect();
        list.sort_by_key(|r| r.created_at_ms);
        Ok(list)
    }

    fn resolve<'a>(
        &'a self,
        key: &'a str,
        resolution: Resolution,
        by: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<TxnRecord, ResolveError>> {
        Box::pin(async move {
            if by.trim().is_empty() || reason.trim().is_empty() {
                return Err(ResolveError::Unexplained);
            }
            let txn_key = super::resumer::parse_key(key)
                .ok_or_else(|| ResolveError::Unknown(key.to_owned()))?;
            let _guard = self.lock(&txn_key).await;
            let mut rec = self
                .journal
                .txn(key)?
                .ok_or_else(|| ResolveError::Unknown(key.to_owned()))?;
            if !matches!(rec.state, TxnState::Exception { .. }) {
                return Err(ResolveError::NotAnException {
                    key: key.to_owned(),
                    state: rec.state.name(),
                });
            }
            let next = match resolution {
                Resolution::Retry => TxnState::CreditAdvised,
                Resolution::WriteOff => TxnState::Resolved {
                    by: by.to_owned(),
                    reason: reason.to_owned(),
                },
            };
            let at_ms = now_ms();
            rec.advance(next, at_ms)?;
            rec.operator_notes.push(OperatorNote {
                at_ms,
                by: by.to_owned(),
                action: match resolution {
                    Resolution::Retry => "retry".into(),
                    Resolution::WriteOff => "write_off".into(),
                },
                reason: reason.to_owned(),
            });
            self.journal
                .write(JournalWrite {
                    txn: Some(rec.clone()),
                    reply: None,
                })
                .await?;
            tracing::warn!(txn = %rec.key, ?resolution, by, reason, "exception resolved by an operator");
            if resolution == Resolution::Retry {
                self.wake_resumer();
            }
            Ok(rec)
        })
    }
}
