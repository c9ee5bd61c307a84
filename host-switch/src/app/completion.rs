//! 0220 completion advice: capture what the terminal actually dispensed.
//!
//! A partial dispense captures only the dispensed amount (the ledger releases the rest); nothing
//! dispensed voids the hold. `CapturePending` is journaled before the ledger call; if the ledger is
//! unreachable the terminal's agent is told 91 and keeps the advice queued, while the resumer
//! finishes the capture on its own — whichever comes first, the capture happens once.

use super::{now_ms, Switch};
use crate::domain::{RecordedReply, ResponseCode, TxnKey, TxnKind, TxnState};
use crate::ports::{Journal, JournalError, Ledger};

const CLASS: &str = "0220";

impl<L: Ledger, J: Journal> Switch<L, J> {
    pub(super) async fn completion(
        &self,
        key: TxnKey,
        original: TxnKey,
        dispensed_minor: u64,
    ) -> Result<RecordedReply, JournalError> {
        let _guard = self.lock(&original).await;
        if let Some(recorded) = self.recorded(CLASS, &key)? {
            return Ok(recorded);
        }
        let Some(mut rec) = self.journal.txn(&original.as_string())? else {
            tracing::error!(original = %original, "completion for a transaction the journal does not know: needs an operator");
            return self
                .answer_code(CLASS, &key, ResponseCode::InvalidTransaction)
                .await;
        };
        if rec.kind != TxnKind::Withdrawal {
            return self
                .answer_code(CLASS, &key, ResponseCode::InvalidTransaction)
                .await;
        }
        let next = match &rec.state {
            TxnState::Held { hold_id } if dispensed_minor > rec.amount.minor => {
                tracing::error!(
                    hold_id,
                    dispensed_minor,
                    held_minor = rec.amount.minor,
                    "completion exceeds the held amount"
                );
                return self
                    .answer_code(CLASS, &key, ResponseCode::InvalidAmount)
                    .await;
            }
            TxnState::Held { hold_id } if dispensed_minor == 0 => Some(TxnState::VoidPending {
                hold_id: Some(hold_id.clone()),
            }),
            TxnState::Held { hold_id } => Some(TxnState::CapturePending {
                hold_id: hold_id.clone(),
                amount_minor: dispensed_minor,
            }),
            // Unfinished work from an earlier attempt: drive it on.
            TxnState::CapturePending { .. } | TxnState::VoidPending { .. } => None,
            // Already captured through another advice (a duplicate with another STAN).
            TxnState::Captured { .. } | TxnState::Voided => None,
            other => {
                tracing::error!(
                    state = other.name(),
                    "completion for a transaction that was not approved: needs an operator"
                );
                return self
                    .answer_code(CLASS, &key, ResponseCode::InvalidTransaction)
                    .await;
            }
        };
        if let Some(next) = next {
            if let Err(e) = rec.advance(next, now_ms()) {
                tracing::error!(error = %e, "journal state machine refused the completion");
                return Ok(RecordedReply::code(ResponseCode::SystemError));
            }
            self.journal
                .write(crate::ports::JournalWrite {
                    txn: Some(rec.clone()),
                    reply: None,
                })
                .await?;
        }
        self.drive_and_answer(CLASS, &key, &mut rec).await
    }
}
