//! 0220 deposit advice: a deposit the terminal took while the switch was unreachable.
//!
//! The cash is already in the ATM, so the advice is not a request that may be declined: the
//! switch journals it once (`CreditAdvised`), answers 00 in the same durable write, and posts the
//! credit itself (the resumer, with the transaction's fixed idempotency key). A ledger outage
//! therefore never blocks the terminal's queue of advices. A card no route takes, or a credit the
//! ledger refuses for good, becomes an exception an operator resolves; nothing is dropped.

use protocols::types::{Amount, Pan};

use super::{now_ms, Switch};
use crate::domain::{RecordedReply, ResponseCode, Route, TxnKey, TxnKind, TxnRecord, TxnState};
use crate::ports::{Journal, JournalError, Ledger};

const CLASS: &str = "0220";

impl<L: Ledger, J: Journal> Switch<L, J> {
    pub(super) async fn deposit_advice(
        &self,
        key: TxnKey,
        pan: Pan,
        amount: Amount,
    ) -> Result<RecordedReply, JournalError> {
        let _guard = self.lock(&key).await;
        if let Some(recorded) = self.recorded(CLASS, &key)? {
            return Ok(recorded);
        }
        if let Some(rec) = self.journal.txn(&key.as_string())? {
            // Journaled before (its answer lost in a crash, or the key reused): never twice.
            tracing::warn!(
                state = rec.state.name(),
                "deposit advice already journaled: acknowledged again"
            );
            return self.answer_code(CLASS, &key, ResponseCode::Approved).await;
        }
        let routed = self.routes.route(&pan) == Some(Route::Wallet);
        let account = self.account(&pan)?;
        let mut rec = TxnRecord::new(&key, TxnKind::Deposit, account.as_str(), amount, now_ms());
        rec.state = if !routed {
            tracing::error!(
                amount = amount.minor,
                "deposit taken offline for a card no route serves: exception for an operator"
            );
            TxnState::Exception {
                reason: "card is not routed to the wallet".into(),
            }
        } else if amount.minor == 0 {
            TxnState::Exception {
                reason: "deposit advice for a zero amount".into(),
            }
        } else {
            tracing::info!(
                amount = amount.minor,
                "deposit advice journaled: the switch owes the credit"
            );
            TxnState::CreditAdvised
        };
        let reply = self
            .answer(
                CLASS,
                &key,
                Some(rec),
                RecordedReply::code(ResponseCode::Approved),
            )
            .await?;
        self.wake_resumer();
        Ok(reply)
    }
}
