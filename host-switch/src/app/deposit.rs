//! 0200 deposit: credit the wallet at once.
//!
//! Journaled as `CreditRequested` before the ledger call. If the ledger times out, the credit may
//! or may not have been made: the terminal is told 91 (it returns the cash) and the transaction
//! goes to `CompensationPending`, which ensures the credit with its own key and debits it back.

use protocols::types::{Amount, Pan};

use super::{approval_code, drive::ledger_key, now_ms, withdrawal::decline_code, Switch};
use crate::domain::{RecordedReply, ResponseCode, Route, TxnKey, TxnKind, TxnRecord, TxnState, WalletAccount};
use crate::ports::{Journal, JournalError, JournalWrite, Ledger, LedgerError, PostingKind};

const CLASS: &str = "0200";

impl<L: Ledger, J: Journal> Switch<L, J> {
    pub(super) async fn deposit(&self, key: TxnKey, pan: Pan, amount: Amount) -> Result<RecordedReply, JournalError> {
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
            Some(rec) if rec.state == TxnState::CreditRequested => rec,
            Some(rec) => {
                tracing::warn!(state = rec.state.name(), "deposit for a transaction already in the journal: declined");
                return self.answer(CLASS, &key, None, RecordedReply::code(ResponseCode::DoNotHonour)).await;
            }
            None => {
                let rec = TxnRecord::new(&key, TxnKind::Deposit, WalletAccount::for_card(&pan).as_str(), pan.masked(), amount, now_ms());
                self.journal.write(JournalWrite { txn: Some(rec.clone()), reply: None }).await?;
                rec
            }
        };
        let outcome = self.ledger.post(&ledger_key(&rec, "credit"), PostingKind::Credit, &rec.account, amount, &rec.key).await;
        let (next, reply) = match outcome {
            Ok(movement_id) => {
                let reply = RecordedReply { code: ResponseCode::Approved, approval_code: Some(approval_code(&movement_id)), additional_amounts: None };
                (TxnState::Credited { movement_id }, reply)
            }
            Err(e) => {
                let code = decline_code(&e);
                tracing::info!(error = %e, %code, "deposit not credited");
                let next = if matches!(e, LedgerError::Timeout(_) | LedgerError::Unavailable(_)) {
                    TxnState::CompensationPending { amount_minor: amount.minor }
                } else {
                    TxnState::Declined { code }
                };
                (next, RecordedReply::code(code))
            }
        };
        if let Err(e) = rec.advance(next, now_ms()) {
            tracing::error!(error = %e, "journal state machine refused the credit outcome");
            return Ok(RecordedReply::code(ResponseCode::SystemError));
        }
        self.answer(CLASS, &key, Some(rec), reply).await
    }
}
