//! 0100 balance inquiry: the wallet's available and ledger balance (field 54, written by `protocols::dialect`). Nothing moves, so
//! nothing is journaled; a replay simply asks again (its PIN try is still counted only once, see
//! `domain::pin`).

use protocols::dialect::Balances;
use protocols::types::{Currency, Pan};

use super::{withdrawal::decline_code, Switch};
use crate::domain::{PinEntry, RecordedReply, ResponseCode, Route, TxnKey, WalletAccount};
use crate::ports::{Journal, JournalError, Ledger};

impl<L: Ledger, J: Journal> Switch<L, J> {
    pub(super) async fn balance_inquiry(
        &self,
        key: &TxnKey,
        pan: &Pan,
        currency: Currency,
        pin: Option<&PinEntry>,
    ) -> Result<RecordedReply, JournalError> {
        if self.routes.route(pan) != Some(Route::Wallet) {
            return Ok(RecordedReply::code(ResponseCode::InvalidAccount));
        }
        if let Some(reply) = self.pin_step(None, key, pan, pin).await? {
            return Ok(reply);
        }
        Ok(
            match self
                .ledger
                .balance(WalletAccount::for_card(pan).as_str())
                .await
            {
                Ok(b) if b.currency == currency || currency.numeric == 0 => RecordedReply {
                    balances: Some(Balances {
                        currency: b.currency,
                        ledger_minor: b.balance_minor,
                        available_minor: b.available_minor,
                    }),
                    ..RecordedReply::code(ResponseCode::Approved)
                },
                Ok(_) => RecordedReply::code(ResponseCode::InvalidTransaction),
                Err(e) => RecordedReply::code(decline_code(&e)),
            },
        )
    }
}
