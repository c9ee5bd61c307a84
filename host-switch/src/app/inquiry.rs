//! 0100 balance inquiry: the wallet's available and ledger balance in field 54. Nothing moves, so
//! nothing is journaled; a replay simply asks again (its PIN try is still counted only once, see
//! `domain::pin`).

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
                    additional_amounts: Some(field54(
                        b.currency,
                        b.balance_minor,
                        b.available_minor,
                    )),
                    ..RecordedReply::code(ResponseCode::Approved)
                },
                Ok(_) => RecordedReply::code(ResponseCode::InvalidTransaction),
                Err(e) => RecordedReply::code(decline_code(&e)),
            },
        )
    }
}

/// Field 54: two 20-character entries, ledger balance (type 01) and available balance (type 02):
/// account type `00`, amount type, currency (3), sign `C`/`D`, 12 digits.
pub(crate) fn field54(currency: Currency, balance_minor: i64, available_minor: i64) -> String {
    let entry = |kind: &str, v: i64| {
        let sign = if v < 0 { 'D' } else { 'C' };
        format!(
            "00{kind}{:03}{sign}{:012}",
            currency.numeric,
            v.unsigned_abs()
        )
    };
    format!(
        "{}{}",
        entry("01", balance_minor),
        entry("02", available_minor)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field54_has_ledger_and_available_entries() {
        assert_eq!(
            field54(Currency::EUR, 12345, -5),
            "0001978C0000000123450002978D000000000005"
        );
    }
}
