//! 0420/0421 reversal: undo the original transaction.
//!
//! - a hold not yet captured is voided (or, with a replacement amount in field 95, captured for
//!   the part that was dispensed: a partial reversal);
//! - a captured withdrawal or a credited deposit is compensated by an opposite movement;
//! - a reversal for a transaction never seen is approved and remembered (`ReversedUnseen`), so a
//!   late original is declined instead of holding money for a customer who has gone.

use protocols::types::{Amount, Pan};

use super::{now_ms, Switch};
use crate::domain::{RecordedReply, ResponseCode, TxnKey, TxnKind, TxnRecord, TxnState};
use crate::ports::{Journal, JournalError, JournalWrite, Ledger};

const CLASS: &str = "0420";

impl<L: Ledger, J: Journal> Switch<L, J> {
    pub(super) async fn reversal(
        &self,
        key: TxnKey,
        original: TxnKey,
        kind: TxnKind,
        amount: Amount,
        dispensed_minor: u64,
        pan: Option<Pan>,
    ) -> Result<RecordedReply, JournalError> {
        let _guard = self.lock(&original).await;
        if let Some(recorded) = self.recorded(CLASS, &key)? {
            return Ok(recorded);
        }
        let Some(mut rec) = self.journal.txn(&original.as_string())? else {
            tracing::warn!(original = %original, "reversal before its original: remembered, approved");
            let account = match &pan {
                Some(p) => self.account(p)?.as_str().to_owned(),
                None => String::new(),
            };
            let mut rec = TxnRecord::new(&original, kind, &account, amount, now_ms());
            rec.state = TxnState::ReversedUnseen;
            return self
                .answer(
                    CLASS,
                    &key,
                    Some(rec),
                    RecordedReply::code(ResponseCode::Approved),
                )
                .await;
        };
        let next = match &rec.state {
            TxnState::HoldRequested => Some(TxnState::VoidPending { hold_id: None }),
            TxnState::Held { hold_id }
                if dispensed_minor > 0 && dispensed_minor <= rec.amount.minor =>
            {
                Some(TxnState::CapturePending {
                    hold_id: hold_id.clone(),
                    amount_minor: dispensed_minor,
                })
            }
            TxnState::Held { hold_id } => Some(TxnState::VoidPending {
                hold_id: Some(hold_id.clone()),
            }),
            // A partial reversal (field 95) that already captured its part, repeated after its
            // answer was lost: the customer has exactly what was captured, nothing to undo.
            TxnState::Captured { amount_minor, .. } if dispensed_minor == *amount_minor => None,
            TxnState::Captured { amount_minor, .. } if dispensed_minor > 0 => {
                tracing::error!(
                    captured_minor = amount_minor,
                    dispensed_minor,
                    "partial reversal contradicts the captured amount: needs an operator"
                );
                return self
                    .answer_code(CLASS, &key, ResponseCode::InvalidTransaction)
                    .await;
            }
            TxnState::Captured { amount_minor, .. } => Some(TxnState::CompensationPending {
                amount_minor: *amount_minor,
            }),
            TxnState::CreditRequested | TxnState::Credited { .. } => {
                Some(TxnState::CompensationPending {
                    amount_minor: rec.amount.minor,
                })
            }
            // In progress or done: drive on / nothing to do.
            TxnState::CapturePending { .. }
            | TxnState::VoidPending { .. }
            | TxnState::CompensationPending { .. }
            | TxnState::Voided
            | TxnState::Compensated { .. }
            | TxnState::Declined { .. }
            | TxnState::ReversedUnseen => None,
            // A deposit taken offline is only advised once the cash is in: nothing to undo here.
            TxnState::CreditAdvised | TxnState::Exception { .. } | TxnState::Resolved { .. } => {
                tracing::warn!(
                    state = rec.state.name(),
                    "reversal of a deposit advised offline: left as it is"
                );
                None
            }
        };
        if let Some(next) = next {
            if let Err(e) = rec.advance(next, now_ms()) {
                tracing::error!(error = %e, "journal state machine refused the reversal");
                return Ok(RecordedReply::code(ResponseCode::SystemError));
            }
            self.journal
                .write(JournalWrite {
                    txn: Some(rec.clone()),
                    reply: None,
                })
                .await?;
        }
        self.drive_and_answer(CLASS, &key, &mut rec).await
    }
}
