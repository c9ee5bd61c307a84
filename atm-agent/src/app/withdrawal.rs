//! A cash withdrawal, the agent's half of the withdrawal saga (ARCHITECTURE.md).
//!
//! The note mix comes first (an amount the cassettes cannot make is declined without asking the
//! switch); the dispense is recorded as in doubt, durably, *before* the authorization leaves;
//! on approval the terminal is told to dispense and its status settles the money (`settlement`):
//! everything out → completion advice for the full amount, short dispense → completion for what
//! left, nothing → reversal, unknown → stays in doubt for an operator. If the request may have
//! reached the switch but no answer came (timeout, link lost), or the switch answered 96 (it may
//! have placed the hold and failed to journal it), the customer is declined and a reversal is
//! queued, so a late or unrecorded approval never strands a hold. While the switch is unreachable,
//! the customer is declined at once with the "host unavailable" screen.

use protocols::types::Amount;

use super::conversation::{Conversation, CustomerReply, CustomerRequest, Decline, SessionEnd};
use super::Services;
use crate::domain::exchange::ResponseCode;
use crate::domain::mix;
use crate::domain::pending::Purpose;
use crate::ports::{AdviceQueue, SwitchLink, TerminalStore};

impl<L: SwitchLink, S: TerminalStore, Q: AdviceQueue> Services<L, S, Q> {
    pub async fn withdrawal<C: Conversation>(
        &self,
        at: &mut C,
        req: &CustomerRequest,
    ) -> Result<(), SessionEnd> {
        let amount = Amount::new(req.amount_minor, at.currency());
        let (stock, cassette_types) = at.note_stock();
        let notes = match mix::mix(amount.minor, &stock, cassette_types, self.max_notes) {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(amount = amount.minor, error = %e, "amount cannot be dispensed");
                return at
                    .reply(CustomerReply::Decline(Decline::AmountNotAvailable))
                    .await;
            }
        };
        if !self.uplink.is_up() {
            return at
                .reply(CustomerReply::Decline(Decline::HostUnavailable))
                .await;
        }
        let terminal = at.terminal_id().clone();
        let pin = match self.pin_for(&terminal, req.pin, &req.pan) {
            Ok(p) => p,
            Err(decline) => return at.reply(CustomerReply::Decline(decline)).await,
        };
        let (pending, outcome) = self
            .authorize(
                &terminal,
                Purpose::Withdrawal,
                req,
                amount,
                notes.clone(),
                pin,
            )
            .await?;
        match outcome {
            Ok(answer) if answer.code == ResponseCode::Approved => {
                at.reply(CustomerReply::Dispense {
                    notes,
                    amount,
                    approval_code: answer.approval_code.unwrap_or_default(),
                    tsn: pending.tsn,
                })
                .await?;
                self.settle_after_report(at, pending).await
            }
            Ok(answer) => self.authorization_declined(at, &answer, &pending).await,
            Err(e) => self.authorization_failed(at, e, &pending).await,
        }
    }
}
