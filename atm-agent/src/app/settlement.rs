//! Settling a dispense (or deposit) the terminal was told to do: the advice it owes the switch.
//!
//! The terminal's own word settles it (ARCHITECTURE.md, the saga): its status right after the
//! reply ([`Services::settle_after_report`]), or, after a power failure, the last transaction
//! status of its next request or its supply counters ([`Services::settle_after_power_failure`]).
//! What the terminal cannot tell (`E3`, `E5`, a fault without counts, a terminal that went on to
//! the next customer without reporting) stays recorded, one record per transaction, until a
//! technician settles it ([`Services::settle_by_operator`], `atmctl dispense settle`), who, when
//! and why journaled first.
//!
//! Each settlement queues what is owed — a completion advice for what was dispensed, a reversal
//! for what never happened, the advice of a stored deposit — durably, and only then forgets the
//! record. A record is settled once: the terminal's word and a technician's take a claim on it
//! ([`SettlementClaims`]) and read it again under the claim.

use std::collections::HashSet;
use std::sync::Mutex;

use protocols::iso8583::TransmissionDateTime;
use protocols::types::{Stan, TerminalId};

use super::conversation::{Conversation, SessionEnd};
use super::Services;
use crate::domain::acceptance;
use crate::domain::advice::{Advice, AdviceKind, Original};
use crate::domain::dispense::{self, OperatorSettlementError, Settlement, TerminalReport};
use crate::domain::pending::{Doubt, OperatorSettlement, PendingDispense, Purpose};
use crate::ports::{AdviceQueue, StoreError, SwitchLink, TerminalStore};

/// The records (terminal, TSN) being settled right now.
#[derive(Default)]
pub struct SettlementClaims(Mutex<HashSet<(String, u16)>>);

/// A claim on one record; released when dropped.
pub struct Claim<'a> {
    claims: &'a SettlementClaims,
    key: (String, u16),
}

impl SettlementClaims {
    /// Claims the record, or `None` when someone else is settling it.
    pub fn claim(&self, terminal: &TerminalId, tsn: u16) -> Option<Claim<'_>> {
        let key = (terminal.as_str().to_owned(), tsn);
        let fresh = {
            let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
            held.insert(key.clone())
        };
        // Built only when taken: dropping a Claim releases its key.
        if fresh {
            Some(Claim { claims: self, key })
        } else {
            None
        }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut held = self.claims.0.lock().unwrap_or_else(|p| p.into_inner());
        held.remove(&self.key);
    }
}

/// Why a technician's settlement was refused. The messages start with `not found:`, `invalid:`
/// or `busy:` (atmctl's exit code is chosen by them).
#[derive(Debug, thiserror::Error)]
pub enum OperatorSettleError {
    #[error("not found: no dispense in doubt with TSN {tsn} at {terminal}")]
    NotFound { terminal: String, tsn: u16 },
    #[error("{0}")]
    Invalid(#[from] OperatorSettlementError),
    #[error("busy: the record is being settled right now; look again with atmctl dispense ls")]
    Busy,
    #[error("storage: {0}")]
    Storage(#[from] StoreError),
    #[error("{0}")]
    Failed(#[from] SessionEnd),
}

/// What a technician's settlement did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSettled {
    pub settlement: Settlement,
    /// The advice queued for the switch, if any (an online deposit taken owes none).
    pub advice: Option<AdviceKind>,
}

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
        if settlement == Settlement::InDoubt {
            let doubt = Doubt::Uncounted {
                report: describe(&report),
            };
            return self
                .keep_for_operator(at.terminal_id(), pending, doubt)
                .await;
        }
        self.settle(at, &pending, settlement).await
    }

    /// Settles what the terminal's last transaction — TSN `tsn`, notes worth `dispensed_minor`,
    /// from its last transaction status or supply counters — can tell of its records in doubt.
    pub async fn settle_after_power_failure<C: Conversation>(
        &self,
        at: &mut C,
        tsn: u16,
        dispensed_minor: u64,
    ) -> Result<(), SessionEnd> {
        let terminal = at.terminal_id().clone();
        for pending in self.state.pending_of(&terminal)? {
            let Some(settlement) = dispense::after_last_transaction(&pending, tsn, dispensed_minor)
            else {
                continue;
            };
            tracing::info!(
                record_tsn = pending.tsn,
                reported_tsn = tsn,
                ?settlement,
                "settling a dispense in doubt from the terminal's last transaction"
            );
            self.settle(at, &pending, settlement).await?;
        }
        Ok(())
    }

    /// The terminal went on to its next customer: a record still awaiting its report will not
    /// get one (the terminal's counters will name the new transaction), so it waits for the
    /// terminal's counters of its own TSN or a technician.
    pub async fn next_customer(&self, terminal: &TerminalId) -> Result<(), SessionEnd> {
        for pending in self.state.pending_of(terminal)? {
            if pending.doubt == Doubt::Awaiting {
                self.keep_for_operator(terminal, pending, Doubt::Unreported)
                    .await?;
            }
        }
        Ok(())
    }

    /// A technician's word on a record in doubt (`atmctl dispense settle`): journaled (who,
    /// when, why), then settled like the terminal's word would.
    pub async fn settle_by_operator(
        &self,
        terminal: &TerminalId,
        tsn: u16,
        word: OperatorSettlement,
    ) -> Result<OperatorSettled, OperatorSettleError> {
        let not_found = || OperatorSettleError::NotFound {
            terminal: terminal.to_string(),
            tsn,
        };
        let seen = self.state.pending(terminal, tsn)?.ok_or_else(not_found)?;
        let settlement = dispense::after_operator(&seen, word.dispensed_minor, &word.reason)?;
        let _claim = self
            .claims
            .claim(terminal, tsn)
            .ok_or(OperatorSettleError::Busy)?;
        let pending = self
            .state
            .pending(terminal, tsn)?
            .filter(|p| p.stan == seen.stan)
            .ok_or_else(not_found)?;
        self.state
            .log_operator_settlement(terminal, &pending, &word)
            .await?;
        tracing::warn!(
            target: "audit",
            %terminal,
            tsn,
            stan = %pending.stan,
            purpose = ?pending.purpose,
            approved_minor = pending.amount.minor,
            dispensed_minor = ?word.dispensed_minor,
            by = word.by.as_deref().unwrap_or("-"),
            peer_uid = ?word.peer_uid,
            reason = %word.reason,
            ?settlement,
            "dispense in doubt settled by a technician"
        );
        let advice = self
            .queue_settlement(terminal, &pending, settlement)
            .await?;
        Ok(OperatorSettled { settlement, advice })
    }

    /// Queues the advice a settled dispense owes, then forgets the dispense.
    pub(super) async fn settle<C: Conversation>(
        &self,
        at: &mut C,
        pending: &PendingDispense,
        settlement: Settlement,
    ) -> Result<(), SessionEnd> {
        let terminal = at.terminal_id().clone();
        let Some(_claim) = self.claims.claim(&terminal, pending.tsn) else {
            tracing::warn!(
                tsn = pending.tsn,
                "a technician is settling this dispense: the terminal's word is not used"
            );
            return Ok(());
        };
        // Under the claim: a technician may have settled it meanwhile.
        let Some(pending) = self
            .state
            .pending(&terminal, pending.tsn)?
            .filter(|p| p.stan == pending.stan)
        else {
            tracing::warn!(
                tsn = pending.tsn,
                "dispense already settled: the terminal's word is not used"
            );
            return Ok(());
        };
        if let (Purpose::Withdrawal, Settlement::Complete { dispensed_minor }) =
            (pending.purpose, settlement)
        {
            at.dispensed(&pending.notes, dispensed_minor == pending.amount.minor);
        }
        self.queue_settlement(&terminal, &pending, settlement)
            .await
            .map(|_| ())
    }

    /// The key of the advice a record's settlement owes: the one chosen with the record, or a new
    /// one for a record of an earlier agent.
    async fn advice_key(
        &self,
        terminal: &TerminalId,
        pending: &PendingDispense,
    ) -> Result<(Stan, TransmissionDateTime), SessionEnd> {
        match pending.advice_key {
            Some(key) => Ok(key),
            None => self.next_key(terminal).await,
        }
    }

    /// Keeps the record for a technician, saying why, loudly. Under the record's claim, and only
    /// if it is still held: a technician settling it meanwhile must not see it come back.
    async fn keep_for_operator(
        &self,
        terminal: &TerminalId,
        pending: PendingDispense,
        doubt: Doubt,
    ) -> Result<(), SessionEnd> {
        let Some(_claim) = self.claims.claim(terminal, pending.tsn) else {
            tracing::warn!(
                tsn = pending.tsn,
                "a technician is settling this dispense right now"
            );
            return Ok(());
        };
        self.mark_in_doubt(terminal, pending, doubt).await
    }

    /// [`Services::keep_for_operator`] for a caller that holds the record's claim.
    async fn mark_in_doubt(
        &self,
        terminal: &TerminalId,
        pending: PendingDispense,
        doubt: Doubt,
    ) -> Result<(), SessionEnd> {
        let Some(mut pending) = self
            .state
            .pending(terminal, pending.tsn)?
            .filter(|p| p.stan == pending.stan)
        else {
            tracing::warn!(tsn = pending.tsn, "dispense already settled");
            return Ok(());
        };
        tracing::error!(
            %terminal,
            tsn = pending.tsn,
            stan = %pending.stan,
            ?doubt,
            "dispense outcome unknown: hold kept, needs a technician (atmctl dispense ls / settle)"
        );
        pending.doubt = doubt;
        self.state.put_pending(terminal, &pending).await?;
        Ok(())
    }

    /// Queues the advice the settlement owes (durably), then forgets the record. The caller holds
    /// the record's claim. Returns the kind of advice queued.
    async fn queue_settlement(
        &self,
        terminal: &TerminalId,
        pending: &PendingDispense,
        settlement: Settlement,
    ) -> Result<Option<AdviceKind>, SessionEnd> {
        let transaction = pending.purpose.transaction();
        let original = Original::of(transaction, pending.stan, pending.transmitted_at);
        // Every advice carries its original's context (RRN, local time, acquirer, acceptor).
        let advice = |kind, stan, now| Advice {
            acceptance: acceptance::stored_part(&pending.acceptance),
            ..Advice::new(kind, terminal, stan, now, transaction, pending.amount)
        };
        let queued = match (pending.purpose, settlement) {
            (_, Settlement::InDoubt) => {
                let doubt = Doubt::Uncounted {
                    report: "in doubt".into(),
                };
                self.mark_in_doubt(terminal, pending.clone(), doubt).await?;
                return Ok(None);
            }
            (Purpose::Withdrawal, Settlement::Complete { dispensed_minor }) => {
                let (stan, now) = self.advice_key(terminal, pending).await?;
                let completion = Advice {
                    actual_minor: Some(dispensed_minor),
                    original: Some(original),
                    ..advice(AdviceKind::Completion, stan, now)
                };
                self.enqueue(terminal, completion).await?;
                Some(AdviceKind::Completion)
            }
            (Purpose::Withdrawal | Purpose::OnlineDeposit, Settlement::Reverse) => {
                let (stan, now) = self.advice_key(terminal, pending).await?;
                let reversal = Advice {
                    original: Some(original),
                    ..advice(AdviceKind::Reversal, stan, now)
                };
                self.enqueue(terminal, reversal).await?;
                Some(AdviceKind::Reversal)
            }
            (Purpose::OnlineDeposit, Settlement::Complete { .. }) => None,
            (Purpose::StoredDeposit, Settlement::Complete { .. }) => {
                let (stan, now) = self.advice_key(terminal, pending).await?;
                let stored = Advice {
                    card_ref: pending.card_ref.clone(),
                    ..advice(AdviceKind::StoredDeposit, stan, now)
                };
                self.enqueue(terminal, stored).await?;
                Some(AdviceKind::StoredDeposit)
            }
            (Purpose::StoredDeposit, Settlement::Reverse) => {
                if let Some(reference) = &pending.card_ref {
                    self.state.remove_card(reference).await?;
                }
                None
            }
        };
        self.forget_pending(terminal, pending).await?;
        Ok(queued)
    }
}

/// The terminal's report in an operator's words (kept in the record).
fn describe(report: &TerminalReport) -> String {
    match report {
        TerminalReport::CashHandlerFault {
            outcome,
            dispensed_minor: None,
        } => format!("cash handler E{} without note counts", outcome.code()),
        TerminalReport::CashHandlerFault {
            outcome,
            dispensed_minor: Some(v),
        } => format!("cash handler E{}, counted {v}", outcome.code()),
        TerminalReport::Unclear => "a status that says nothing about the cash".into(),
        TerminalReport::Ready | TerminalReport::Rejected => format!("{report:?}"),
    }
}
