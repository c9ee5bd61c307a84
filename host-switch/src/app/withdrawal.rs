//! 0100 withdrawal: a hold on the wallet for the requested amount.
//!
//! The record is journaled as `HoldRequested` before the ledger is called, so that a crash
//! between the ledger's hold and our journal leaves a trace a reversal can act on.

use protocols::types::{Amount, Pan};

use super::{approval_code, ledger_step::ledger_key, Opened, Switch};
use crate::domain::{PinEntry, RecordedReply, ResponseCode, TxnKey, TxnKind, TxnState};
use crate::ports::{Journal, JournalError, Ledger, LedgerError};

const CLASS: &str = "0100";

impl<L: Ledger, J: Journal> Switch<L, J> {
    pub(super) async fn withdrawal(
        &self,
        key: TxnKey,
        pan: Pan,
        amount: Amount,
        pin: Option<PinEntry>,
    ) -> Result<RecordedReply, JournalError> {
        let (_guard, rec, resumed) = match self
            .open_txn(CLASS, TxnKind::Withdrawal, &key, &pan, amount, pin.as_ref())
            .await?
        {
            Opened::Answered(reply) => return Ok(reply),
            Opened::Ready {
                guard,
                rec,
                resumed,
            } => (guard, rec, resumed),
        };
        let (next, reply) = match self
            .ledger
            .hold(&ledger_key(&rec, "hold"), &rec.account, amount, &rec.key)
            .await
        {
            Ok(hold) => {
                let reply = RecordedReply {
                    approval_code: Some(approval_code(&hold.hold_id)),
                    ..RecordedReply::code(ResponseCode::Approved)
                };
                (
                    TxnState::Held {
                        hold_id: hold.hold_id,
                    },
                    reply,
                )
            }
            Err(e) => {
                let code = decline_code(&e);
                tracing::info!(error = %e, %code, "hold not granted");
                // A timeout or 5xx may have left a hold behind, and so may the earlier attempt of
                // a resumed record whatever this one met: void it in the background.
                let next = if e.may_have_applied() || resumed {
                    TxnState::VoidPending { hold_id: None }
                } else {
                    TxnState::Declined { code }
                };
                (next, RecordedReply::code(code))
            }
        };
        self.close_txn(CLASS, &key, rec, next, reply).await
    }
}

/// The response code for a ledger refusal.
pub(super) fn decline_code(e: &LedgerError) -> ResponseCode {
    match e {
        LedgerError::InsufficientFunds => ResponseCode::InsufficientFunds,
        LedgerError::UnknownAccount => ResponseCode::InvalidAccount,
        LedgerError::Invalid(_) => ResponseCode::InvalidAmount,
        LedgerError::Conflict(_) => ResponseCode::SystemError,
        LedgerError::Unavailable(_) | LedgerError::Timeout(_) | LedgerError::BreakerOpen => {
            ResponseCode::IssuerUnavailable
        }
    }
}
