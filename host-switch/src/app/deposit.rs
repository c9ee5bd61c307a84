//! 0200 deposit: credit the wallet at once.
//!
//! Journaled as `CreditRequested` before the ledger call. If the ledger times out, the credit may
//! or may not have been made: the terminal is told 91 (it returns the cash) and the transaction
//! goes to `CompensationPending`, which ensures the credit with its own key and debits it back.

use protocols::types::{Amount, Pan};

use super::{approval_code, ledger_step::ledger_key, withdrawal::decline_code, Opened, Switch};
use crate::domain::{PinEntry, RecordedReply, ResponseCode, TxnKey, TxnKind, TxnState};
use crate::ports::{Journal, JournalError, Ledger, PostingKind};

const CLASS: &str = "0200";

impl<L: Ledger, J: Journal> Switch<L, J> {
    pub(super) async fn deposit(
        &self,
        key: TxnKey,
        pan: Pan,
        amount: Amount,
        pin: Option<PinEntry>,
    ) -> Result<RecordedReply, JournalError> {
        let (_guard, rec, resumed) = match self
            .open_txn(CLASS, TxnKind::Deposit, &key, &pan, amount, pin.as_ref())
            .await?
        {
            Opened::Answered(reply) => return Ok(reply),
            Opened::Ready {
                guard,
                rec,
                resumed,
            } => (guard, rec, resumed),
        };
        let outcome = self
            .ledger
            .post(
                &ledger_key(&rec, "credit"),
                PostingKind::Credit,
                &rec.account,
                amount,
                &rec.key,
            )
            .await;
        let (next, reply) = match outcome {
            Ok(movement_id) => {
                let reply = RecordedReply {
                    approval_code: Some(approval_code(&movement_id)),
                    ..RecordedReply::code(ResponseCode::Approved)
                };
                (TxnState::Credited { movement_id }, reply)
            }
            Err(e) => {
                let code = decline_code(&e);
                tracing::info!(error = %e, %code, "deposit not credited");
                // The credit may exist (a timeout, a 5xx, or an earlier attempt of a resumed record).
                let next = if e.may_have_applied() || resumed {
                    TxnState::CompensationPending {
                        amount_minor: amount.minor,
                    }
                } else {
                    TxnState::Declined { code }
                };
                (next, RecordedReply::code(code))
            }
        };
        self.close_txn(CLASS, &key, rec, next, reply).await
    }
}
