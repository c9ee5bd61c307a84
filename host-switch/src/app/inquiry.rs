//! 0100 balance inquiry: the wallet's available and ledger balance (field 54, written by
//! `protocols::dialect`). Nothing moves, so nothing is journaled and no recorded answer stops a
//! repeated request: the PIN step is what stops PIN guessing here. Every verification counts; a
//! repeat counts once only when it is a true replay (same fields 41/11/7 *and* the same PIN
//! block), and wrong PINs are rate-limited per terminal and per card (see `app::pin`).

use protocols::dialect::Balances;
use protocols::types::{Currency, Pan};

use super::{withdrawal::decline_code, Switch};
use crate::domain::{PinEntry, RecordedReply, ResponseCode, Route, TxnKey};
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
        let account = self.account(pan)?;
        Ok(match self.ledger.balance(account.as_str()).await {
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
        })
    }
}
