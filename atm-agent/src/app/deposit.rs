//! A cash deposit: credited online when the switch is reachable (0200), taken anyway when it is
//! not (the card number waits in the vault and the deposit is advised once the terminal confirms
//! it took the cash) — but only for cards in a range the switch said it credits offline.
//!
//! Either way the deposit is recorded as in doubt before the terminal is told to take the cash,
//! and the terminal's status settles it (`settlement`): an online deposit the terminal did not
//! take is reversed, a stored one is advised only once taken. A deposit whose request may have
//! reached the switch but got no answer, or was answered 96, is declined and reversed, like a
//! withdrawal.

use protocols::types::Amount;

use super::conversation::{Conversation, CustomerReply, CustomerRequest, Decline, SessionEnd};
use super::Services;
use crate::domain::exchange::ResponseCode;
use crate::domain::pending::{PendingDispense, Purpose};
use crate::ports::{AdviceQueue, LinkError, SwitchLink, TerminalStore};

impl<L: SwitchLink, S: TerminalStore, Q: AdviceQueue> Services<L, S, Q> {
    pub async fn deposit<C: Conversation>(
        &self,
        at: &mut C,
        req: &CustomerRequest,
    ) -> Result<(), SessionEnd> {
        let amount = Amount::new(req.amount_minor, at.currency());
        if amount.minor == 0 {
            return at
                .reply(CustomerReply::Decline(Decline::InvalidAmount))
                .await;
        }
        let terminal = at.terminal_id().clone();
        let online = if self.uplink.is_up() {
            let pin = match self.pin_for(&terminal, req.pin, &req.pan) {
                Ok(p) => p,
                Err(decline) => return at.reply(CustomerReply::Decline(decline)).await,
            };
            let (pending, outcome) = self
                .authorize(
                    &terminal,
                    Purpose::OnlineDeposit,
                    req,
                    amount,
                    Vec::new(),
                    pin,
                )
                .await?;
            match outcome {
                Ok(answer) if answer.code == ResponseCode::Approved => Some(pending),
                Ok(answer) => return self.authorization_declined(at, &answer, &pending).await,
                // Never sent: nothing can exist for it; take it as a stored deposit instead.
                Err(LinkError::Down) => {
                    self.forget_pending(&terminal, &pending).await?;
                    None
                }
                Err(e) => return self.authorization_failed(at, e, &pending).await,
            }
        } else {
            None
        };
        let pending = match online {
            Some(p) => p,
            None if !self.uplink.takes_deposit_offline(&req.pan) => {
                tracing::info!("switch unreachable and the card is not in a range it credits offline: deposit declined");
                return at
                    .reply(CustomerReply::Decline(Decline::HostUnavailable))
                    .await;
            }
            None => self.store_deposit(&terminal, req, amount).await?,
        };
        at.reply(CustomerReply::AcceptDeposit {
            amount,
            tsn: pending.tsn,
        })
        .await?;
        self.settle_after_report(at, pending).await
    }

    /// The switch is unreachable: the card number goes to the vault and the deposit is recorded,
    /// to be advised once the cash is in.
    async fn store_deposit(
        &self,
        terminal: &protocols::types::TerminalId,
        req: &CustomerRequest,
        amount: Amount,
    ) -> Result<PendingDispense, SessionEnd> {
        let (stan, _) = self.next_key(terminal).await?;
        let reference = format!("{terminal}:{stan}");
        self.state.put_card(&reference, &req.pan).await?;
        tracing::info!(%stan, "switch unreachable: deposit taken offline, its card sealed in the vault until it is advised");
        self.record_pending(
            terminal,
            Purpose::StoredDeposit,
            amount,
            Vec::new(),
            Some(reference),
        )
        .await
    }
}
