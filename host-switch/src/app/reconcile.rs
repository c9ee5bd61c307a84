//! Reconciliation as an operator use case: fetch both sides, compare (see `domain::reconcile`).
//! The wallet's transactions against the ledger; the bank host route's are the host's business.

use super::Switch;
use crate::domain::reconcile::{reconcile, Reconciliation};
use crate::ports::{Journal, Ledger};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Journal(#[from] crate::ports::JournalError),
    #[error(transparent)]
    Ledger(#[from] crate::ports::LedgerError),
}

impl<L: Ledger, J: Journal> Switch<L, J> {
    pub async fn reconcile(&self) -> Result<Reconciliation, ReconcileError> {
        let journal = self.journal.txns()?;
        let movements = self.ledger.movements().await?;
        Ok(reconcile(&journal, &movements))
    }
}
