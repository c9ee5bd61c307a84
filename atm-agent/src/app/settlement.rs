//! Settling a dispense (or deposit) the terminal was told to do: the advice it owes the switch.
//!
//! The terminal's own word settles it (ARCHITECTURE.md, the saga): its status right after the
//! reply ([`Services::settle_after_report`]), or, after a power failure, the last transaction
//! status of its next request or its supply counters ([`Services::settle_after_power_failure`]).
//! Then [`Services::settle`] queues what is owed — a completion advice for what was dispensed, a
//! reversal for what never happened, the advice of a stored deposit — durably, and only then
//! forgets the in-doubt record. An outcome nobody knows stays in doubt, for an operator: the cash
//! may be in the customer's hand.

use super::conversation::{Conversation, SessionEnd};
use super::Services;
use crate::domain::advice::{Advice, AdviceKind, Original};
use crate::domain::dispense::{self, Settlement};
use crate::domain::pending::{PendingDispense, Purpose};
use crate::ports::{AdviceQueue, SwitchLink, TerminalStore};

impl<L: SwitchLink, S: TerminalStore, Q: AdviceQueue> Services<L, S, Q> {
    /// Waits for the terminal to say what happened to the cash, and settles it.
    pub(super) async fn settle_after_report<C: Conversation>(
        &self,
        at: &mut C,
        pending: PendingDispense,
    ) -> Result<(), SessionEnd> {
        let report = match at.report().await {
            Ok(Some(report)) => report,
            // The terminal went on without a status: in doubt until it reports.
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::error!(error = %e, tsn = pending.tsn, "no status after the reply: dispense in doubt");
                return Err(e);
            }
        };
        let settlement = dispense::after_report(report, pending.amount.minor);
        tracing::info!(
            tsn = pending.tsn,
            ?report,
            ?settlement,
            "terminal reported the outcome"
        );
        self.settle(at, &pending, settlement).await
    }

    /// Settles the dispense left in doubt with transaction serial number `tsn`, from the value of
    /// the notes the terminal says it dispensed in it (last transaction status or supply counters).
    pub async fn settle_after_power_failure<C: Conversation>(
        &self,
        at: &mut C,
        tsn: u16,
        dispensed_minor: u64,
    ) -> Result<(), SessionEnd> {
        let Some(pending) = self.state.pending(at.terminal_id())? else {
            return Ok(());
        };
        let settlement = if pending.tsn != tsn {
            // The terminal never processed the reply for this transaction (the agent or the
            // link died first): nothing left it and nothing went in.
            tracing::warn!(
                pending_tsn = pending.tsn,
                reported_tsn = tsn,
                "terminal never acted on the reply"
            );
            Settlement::Reverse
        } else {
            match pending.purpose {
                Purpose::Withdrawal => dispense::after_power_failure(dispensed_minor),
                // The terminal processed the deposit reply: it took the cash (the supply counters
                // and the last transaction status carry no deposit detail to say otherwise).
                Purpose::OnlineDeposit | Purpose::StoredDeposit => Settlement::Complete {
                    dispensed_minor: pending.amount.minor,
                },
            }
        };
        tracing::info!(
            tsn,
            ?settlement,
            "settling the dispense left in doubt by a power failure"
        );
        self.settle(at, &pending, settlement).await
    }

    /// Queues the advice a settled dispense owes, then forgets the dispense.
    pub(super) async fn settle<C: Conversation>(
        &self,
        at: &mut C,
        pending: &PendingDispense,
        settlement: Settlement,
    ) -> Result<(), SessionEnd> {
        let terminal = at.terminal_id().clone();
        let transaction = pending.purpose.transaction();
        let original = Original::of(transaction, pending.stan, pending.transmitted_at);
        let advice =
            |kind, stan, now| Advice::new(kind, &terminal, stan, now, transaction, pending.amount);
        match (pending.purpose, settlement) {
            (_, Settlement::InDoubt) => {
                tracing::error!(
                    tsn = pending.tsn,
                    stan = %pending.stan,
                    "dispense outcome unknown: hold kept, needs an operator"
                );
                return Ok(());
            }
            (Purpose::Withdrawal, Settlement::Complete { dispensed_minor }) => {
                at.dispensed(&pending.notes, dispensed_minor == pending.amount.minor);
                let (stan, now) = self.next_key(&terminal).await?;
                let completion = Advice {
                    actual_minor: Some(dispensed_minor),
                    original: Some(original),
                    ..advice(AdviceKind::Completion, stan, now)
                };
                self.enqueue(&terminal, completion).await?;
            }
            (Purpose::Withdrawal | Purpose::OnlineDeposit, Settlement::Reverse) => {
                let (stan, now) = self.next_key(&terminal).await?;
                let reversal = Advice {
                    original: Some(original),
                    ..advice(AdviceKind::Reversal, stan, now)
                };
                self.enqueue(&terminal, reversal).await?;
            }
            (Purpose::OnlineDeposit, Settlement::Complete { .. }) => {}
            (Purpose::StoredDeposit, Settlement::Complete { .. }) => {
                let (stan, now) = self.next_key(&terminal).await?;
                let stored = Advice {
                    card_ref: pending.card_ref.clone(),
                    ..advice(AdviceKind::StoredDeposit, stan, now)
                };
                self.enqueue(&terminal, stored).await?;
            }
            (Purpose::StoredDeposit, Settlement::Reverse) => {
                if let Some(reference) = &pending.card_ref {
                    self.state.remove_card(reference).await?;
                }
            }
        }
        self.forget_pending(&terminal).await
    }
}
