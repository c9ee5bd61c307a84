//! The steps every customer flow shares: the transaction key (STAN and transmission time), the
//! in-doubt record written before a request leaves, the PIN step, queuing an advice, and what to
//! do when the switch did not answer.
//!
//! They are methods of [`Services`] over the ports, so the flows in `withdrawal`, `deposit`,
//! `inquiry` and `settlement` read as the saga of ARCHITECTURE.md and nothing else.

use protocols::dialect::Acceptance;
use protocols::iso8583::TransmissionDateTime;
use protocols::types::{Amount, Pan, Stan, TerminalId};

use super::conversation::{
    Conversation, CustomerReply, CustomerRequest, Decline, PinEntry, SessionEnd,
};
use super::pin_keys::PinPathError;
use super::Services;
use crate::domain::acceptance;
use crate::domain::advice::Advice;
use crate::domain::dispense::Settlement;
use crate::domain::exchange::{approval_may_exist, CardRequest, SwitchAnswer, TransactionKey};
use crate::domain::pending::{Doubt, PendingDispense, Purpose};
use crate::domain::pin::ZonePinBlock;
use crate::ports::{AdviceQueue, LinkError, SwitchLink, TerminalStore};

impl<L: SwitchLink, S: TerminalStore, Q: AdviceQueue> Services<L, S, Q> {
    /// A new STAN for the terminal, and now as the transmission time.
    pub(super) async fn next_key(
        &self,
        terminal: &TerminalId,
    ) -> Result<(Stan, TransmissionDateTime), SessionEnd> {
        let stan = self.state.next_stan(terminal).await?;
        Ok((stan, crate::clock::transmission_date_time_now()))
    }

    /// A new STAN for a customer's request, now as its transmission time, and the request's
    /// acceptance context at that same instant (local time, acquirer, RRN, acceptor).
    pub(super) async fn next_transaction(
        &self,
        terminal: &TerminalId,
    ) -> Result<(Stan, TransmissionDateTime, Acceptance), SessionEnd> {
        let stan = self.state.next_stan(terminal).await?;
        let now = crate::clock::now_unix_secs();
        let context = self.acceptors.context(terminal, stan, now);
        Ok((stan, TransmissionDateTime::from_unix_secs(now), context))
    }

    /// Records, durably and *before* the request leaves, what the terminal is about to be asked
    /// to do. If the agent dies anywhere after this, the record survives: when the terminal comes
    /// back, its TSN tells whether it ever processed the reply, and the transaction is settled
    /// (completed, or reversed so no hold or credit is left behind).
    pub(super) async fn record_pending(
        &self,
        terminal: &TerminalId,
        purpose: Purpose,
        amount: Amount,
        notes: Vec<u32>,
        card_ref: Option<String>,
    ) -> Result<PendingDispense, SessionEnd> {
        let (stan, transmitted_at, context) = self.next_transaction(terminal).await?;
        // The settlement's advice is named now, so settling twice (a crash between queuing the
        // advice and clearing this record) queues the same advice, once.
        let advice_key = self.next_key(terminal).await?;
        let tsn = self.state.next_tsn(terminal).await?;
        let pending = PendingDispense {
            purpose,
            card_ref,
            tsn,
            stan,
            transmitted_at,
            amount,
            notes,
            since_ms: crate::clock::now_ms(),
            doubt: Doubt::Awaiting,
            advice_key: Some(advice_key),
            acceptance: context,
        };
        self.state.put_pending(terminal, &pending).await?;
        self.count_in_doubt(terminal);
        Ok(pending)
    }

    /// Shows the terminal's records in doubt in the registry (`atmctl status`).
    pub(crate) fn count_in_doubt(&self, terminal: &TerminalId) {
        match self.state.pending_of(terminal) {
            Ok(records) => self.registry.update(terminal.as_str(), |v| {
                v.dispense_in_doubt = !records.is_empty();
                v.dispenses_in_doubt = records.len();
            }),
            Err(e) => tracing::error!(%terminal, error = %e, "dispenses in doubt unreadable"),
        }
    }

    /// Records the transaction (see `record_pending`), then asks the switch.
    pub(super) async fn authorize(
        &self,
        terminal: &TerminalId,
        purpose: Purpose,
        req: &CustomerRequest,
        amount: Amount,
        notes: Vec<u32>,
        pin: Option<ZonePinBlock>,
    ) -> Result<(PendingDispense, Result<SwitchAnswer, LinkError>), SessionEnd> {
        let pending = self
            .record_pending(terminal, purpose, amount, notes, None)
            .await?;
        let request = CardRequest {
            transaction: purpose.transaction(),
            key: TransactionKey {
                terminal: terminal.clone(),
                stan: pending.stan,
                transmitted_at: pending.transmitted_at,
            },
            pan: req.pan.clone(),
            amount,
            pin,
            acceptance: acceptance::online(&pending.acceptance, req.track2.as_ref()),
        };
        let outcome = self
            .uplink
            .request(&request, self.authorization_timeout)
            .await;
        Ok((pending, outcome))
    }

    /// The record is done with (declined, or settled and its advice queued).
    pub(super) async fn forget_pending(
        &self,
        terminal: &TerminalId,
        pending: &PendingDispense,
    ) -> Result<(), SessionEnd> {
        self.state.clear_pending(terminal, pending.tsn).await?;
        self.count_in_doubt(terminal);
        Ok(())
    }

    /// The switch did not answer. If it may have approved, the transaction is reversed (the
    /// customer is declined and nothing was dispensed or taken); if the request never left, it is
    /// simply forgotten.
    pub(super) async fn authorization_failed<C: Conversation>(
        &self,
        at: &mut C,
        e: LinkError,
        pending: &PendingDispense,
    ) -> Result<(), SessionEnd> {
        tracing::warn!(error = %e, "authorization unanswered: customer declined");
        if e.maybe_delivered() {
            self.settle(at, pending, Settlement::Reverse).await?;
        } else {
            self.forget_pending(at.terminal_id(), pending).await?;
        }
        at.reply(CustomerReply::Decline(Decline::HostUnavailable))
            .await
    }

    /// The switch declined (any code but 00). A definite decline owes nothing; a 96 may hide an
    /// approval the switch failed to journal, so it is reversed like an unanswered request
    /// (ARCHITECTURE.md, the ambiguity rule). Either way the customer is declined.
    pub(super) async fn authorization_declined<C: Conversation>(
        &self,
        at: &mut C,
        answer: &SwitchAnswer,
        pending: &PendingDispense,
    ) -> Result<(), SessionEnd> {
        if approval_may_exist(&answer.code) {
            tracing::warn!(code = %answer.code, stan = %pending.stan, "switch error: it may have acted, reversal queued");
            self.settle(at, pending, Settlement::Reverse).await?;
        } else {
            tracing::info!(code = %answer.code, "declined by the switch");
            self.forget_pending(at.terminal_id(), pending).await?;
        }
        at.reply(CustomerReply::Decline(Decline::for_code(&answer.code)))
            .await
    }

    /// Queues an advice durably and wakes the forwarder.
    pub(super) async fn enqueue(
        &self,
        terminal: &TerminalId,
        advice: Advice,
    ) -> Result<(), SessionEnd> {
        self.queue.enqueue(terminal, advice).await?;
        self.forwarder.notify_one();
        Ok(())
    }

    /// Queues a terminal's status for the fleet view (0820).
    pub async fn status_advice(
        &self,
        terminal: &TerminalId,
        amount: Amount,
        detail: &str,
    ) -> Result<(), SessionEnd> {
        let (stan, at) = self.next_key(terminal).await?;
        self.enqueue(terminal, Advice::status(terminal, stan, at, amount, detail))
            .await
    }

    /// The customer's PIN, translated to the zone PIN key, or the decline to show when it cannot
    /// be (the reason is logged; no PIN data is). `None` when PINs are not handled or the terminal
    /// sent no PIN buffer (the switch decides whether the card needs one).
    pub(super) fn pin_for(
        &self,
        terminal: &TerminalId,
        pin: PinEntry,
        pan: &Pan,
    ) -> Result<Option<ZonePinBlock>, Decline> {
        let Some(keys) = &self.keys else {
            return Ok(None);
        };
        let block = match pin {
            PinEntry::Absent => return Ok(None),
            PinEntry::Block(b) => Ok(b),
            PinEntry::Unreadable => Err(PinPathError::Buffer),
        };
        let loaded = self.state.pin_key(terminal).ok().flatten();
        let tid = terminal.as_str();
        match block.and_then(|b| keys.translate(tid, loaded.map(|k| k.version), b, pan)) {
            Ok(p) => Ok(Some(p)),
            Err(e) => {
                let hint = match &e {
                    PinPathError::Store(keystore::KeyStoreError::PinBlockFormat(_)) => {
                        "the terminal's PIN pad may hold another PIN key: check its master key, then `atmctl keys rotate`"
                    }
                    PinPathError::NoZoneKey => {
                        "no zone PIN key: is the zone master key entered (`atmctl keys load-zone-master`)?"
                    }
                    PinPathError::NoTerminalKey => "the terminal has no confirmed PIN key",
                    _ => "",
                };
                tracing::warn!(target: "security", terminal = tid, error = %e, hint, "PIN cannot be sent to the switch: declined");
                Err(match e {
                    PinPathError::Buffer | PinPathError::Store(_) => Decline::Declined,
                    PinPathError::NoTerminalKey | PinPathError::NoZoneKey => {
                        Decline::HostUnavailable
                    }
                })
            }
        }
    }
}
