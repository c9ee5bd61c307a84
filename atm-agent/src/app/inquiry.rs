//! A balance inquiry: asked of the switch (0100, processing code 31), the available balance shown
//! and printed. Nothing moves, so nothing is recorded and nothing is advised; without an answer
//! the customer is simply told the service is unavailable.

use protocols::types::Amount;

use super::conversation::{Conversation, CustomerReply, CustomerRequest, Decline, SessionEnd};
use super::Services;
use crate::domain::acceptance;
use crate::domain::exchange::{CardRequest, ResponseCode, TransactionKey, TransactionType};
use crate::ports::{AdviceQueue, SwitchLink, TerminalStore};

impl<L: SwitchLink, S: TerminalStore, Q: AdviceQueue> Services<L, S, Q> {
    pub async fn inquiry<C: Conversation>(
        &self,
        at: &mut C,
        req: &CustomerRequest,
    ) -> Result<(), SessionEnd> {
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
        let (stan, transmitted_at, context) = self.next_transaction(&terminal).await?;
        let request = CardRequest {
            transaction: TransactionType::BalanceInquiry,
            key: TransactionKey {
                terminal,
                stan,
                transmitted_at,
            },
            pan: req.pan.clone(),
            amount: Amount::new(0, at.currency()),
            pin,
            acceptance: acceptance::online(&context, req.track2.as_ref()),
        };
        let reply = match self
            .uplink
            .request(&request, self.authorization_timeout)
            .await
        {
            Ok(answer) if answer.code == ResponseCode::Approved => CustomerReply::Balance {
                available_minor: answer.available_minor,
            },
            Ok(answer) => CustomerReply::Decline(Decline::for_code(&answer.code)),
            Err(e) => {
                tracing::warn!(error = %e, "balance inquiry unanswered");
                CustomerReply::Decline(Decline::InquiryUnanswered)
            }
        };
        at.reply(reply).await
    }
}
