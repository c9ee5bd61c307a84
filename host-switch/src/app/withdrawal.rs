//! 0100 withdrawal: a hold on the wallet for the requested amount.
//!
//! The record is journaled as `HoldRequested` before the ledger is called, so that a crash
//! between the ledger's hold and our journal leaves a trace a reversal can act on.

use protocols::types::{Amount, Pan};

use super::{approval_code, drive::ledger_key, now_ms, Switch};
use crate::domain::{RecordedReply, ResponseCode, Route, TxnKey, TxnKind, TxnRecord, TxnState, WalletAccount};
use crate::ports::{Journal, JournalError, JournalWrite, Ledger, LedgerError};

const CLASS: &str = "0100";

impl<L: Ledger, J: Journal> Switch<L, J> {
    pub(super) async fn withdrawal(&self, key: TxnKey, pan: Pan, amount: Amount) -> Result<RecordedReply, JournalError> {
        if self.routes.route(&pan) != Some(Route::Wallet) {
            tracing::warn!("card is not routed to the wallet: declined 14");
            return self.answer(CLASS, &key, None, RecordedReply::code(ResponseCode::InvalidAccount)).await;
        }
        if amount.minor == 0 {
            return self.answer(CLASS, &key, None, RecordedReply::code(ResponseCode::InvalidAmount)).await;
        }
        let _guard = self.lock(&key).await;
        if let Some(recorded) = self.recorded(CLASS, &key)? {
            return Ok(recorded);
        }
        let mut rec = match self.journal.txn(&key.as_string())? {
            Some(rec) if rec.state == TxnState::HoldRequested => rec,
            Some(rec) => {
                // A reversal got here first, or the record exists in another state: never hold again.
                tracing::warn!(state = rec.state.name(), "withdrawal for a transaction already in the journal: declined");
                return self.answer(CLASS, &key, None, RecordedReply::code(ResponseCode::DoNotHonour)).await;
            }
            None => {
                let rec = TxnRecord::new(&key, TxnKind::Withdrawal, WalletAccount::for_card(&pan).as_str(), pan.masked(), amount, now_ms());
                self.journal.write(JournalWrite { txn: Some(rec.clone()), reply: None }).await?;
                rec
            }
        };
        let outcome = self.ledger.hold(&ledger_key(&rec, "hold"), &rec.account, amount, &rec.key).await;
        let (next, reply) = match outcome {
            Ok(hold) => {
                let reply = RecordedReply { code: ResponseCode::Approved, approval_code: Some(approval_code(&hold.hold_id)), additional_amounts: None };
                (TxnState::Held { hold_id: hold.hold_id }, reply)
            }
            Err(e) => {
                let code = decline_code(&e);
                tracing::info!(error = %e, %code, "hold not granted");
                // A timeout or 5xx may have left a hold behind: void it in the background.
                let next = if matches!(e, LedgerError::Timeout(_) | LedgerError::Unavailable(_)) {
                    TxnState::VoidPending { hold_id: None }
                } else {
                    TxnState::Declined { code }
                };
                (next, RecordedReply::code(code))
            }
        };
        if let Err(e) = rec.advance(next, now_ms()) {
            tracing::error!(error = %e, "journal state machine refused the hold outcome");
            return Ok(RecordedReply::code(ResponseCode::SystemError));
        }
        self.answer(CLASS, &key, Some(rec), reply).await
    }
}

/// The response code for a ledger refusal.
pub(super) fn decline_code(e: &LedgerError) -> ResponseCode {
    match e {
        LedgerError::InsufficientFunds => ResponseCode::InsufficientFunds,
        LedgerError::UnknownAccount => ResponseCode::InvalidAccount,
        LedgerError::Invalid(_) => ResponseCode::InvalidAmount,
        LedgerError::Conflict(_) => ResponseCode::SystemError,
        LedgerError::Unavailable(_) | LedgerError::Timeout(_) | LedgerError::BreakerOpen => ResponseCode::IssuerUnavailable,
    }
}
