//! Finishes ledger work the switch owes: captures, voids, compensations and the credits of
//! offline deposits that were journaled but not confirmed (a crash, a timeout, an open breaker).
//! Runs once at start-up, then on an interval (or when woken) until shutdown. Each transaction is
//! driven under its lock, so it never races the request flows; every call reuses the
//! transaction's idempotency key, so nothing posts twice.
//!
//! A `HoldRequested` or `CreditRequested` record found under the lock is one no request drives
//! any more: the switch crashed, or a journal write failed after the ledger call. Whether the
//! ledger acted is unknown, so the hold is voided (asked again by its key first) and the credit
//! compensated; the agent, told nothing or 96, reverses too, and both land on the same end.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Switch;
use crate::domain::{TxnKey, TxnState};
use crate::ports::{Journal, Ledger};

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResumeReport {
    pub pending: usize,
    pub settled: usize,
    pub failed: usize,
}

impl<L: Ledger, J: Journal> Switch<L, J> {
    /// One pass over every pending transaction.
    pub async fn resume_pending(&self) -> ResumeReport {
        let mut report = ResumeReport::default();
        let keys = match self.journal.pending_keys() {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, "resumer cannot read the journal");
                return report;
            }
        };
        for key_text in keys {
            report.pending += 1;
            let Some(key) = parse_key(&key_text) else {
                tracing::error!(txn = %key_text, "journal key is malformed: skipped");
                report.failed += 1;
                continue;
            };
            // A transaction whose lock is held is being driven by a request right now (an
            // in-flight `HoldRequested` is in the index too): the next pass looks again.
            let Some(_guard) = self.try_lock(&key) else {
                continue;
            };
            // Re-read under the lock: a request flow may have settled it meanwhile.
            let mut current = match self.journal.txn(&key_text) {
                Ok(Some(r)) if r.state.is_pending_outbound() => r,
                _ => continue,
            };
            match self.settle_abandoned(&mut current).await {
                Ok(()) => report.settled += 1,
                Err(e) => {
                    tracing::warn!(txn = %current.key, state = current.state.name(), error = %e, "pending ledger work not settled yet");
                    report.failed += 1;
                }
            }
        }
        if report.pending > 0 {
            tracing::info!(?report, "resumer pass");
        }
        report
    }

    /// Moves transactions finished more than `retention` ago to the journal's archive.
    pub async fn archive_finished(&self, retention: Duration) {
        let before_ms = super::now_ms().saturating_sub(retention.as_millis() as u64);
        if let Err(e) = self.journal.archive_finished(before_ms).await {
            tracing::error!(error = %e, "journal archiving failed: finished transactions stay in the hot journal");
        }
    }

    /// Runs passes every `interval` until `shutdown` becomes true, and moves finished
    /// transactions older than `retention` to the archive at start and then every
    /// `retention / 24` (at least every minute, at most every hour).
    pub async fn run_resumer(
        self: Arc<Self>,
        interval: Duration,
        retention: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let archive_every =
            (retention / 24).clamp(Duration::from_secs(60), Duration::from_secs(3600));
        let mut last_archive: Option<tokio::time::Instant> = None;
        loop {
            if last_archive.is_none_or(|at| at.elapsed() >= archive_every) {
                self.archive_finished(retention).await;
                last_archive = Some(tokio::time::Instant::now());
            }
            self.resume_pending().await;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.resume_now.notified() => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}

impl<L: Ledger, J: Journal> Switch<L, J> {
    /// Drives a record found pending under its lock; a request nobody drives any more first
    /// becomes the undoing of whatever the ledger may have done for it.
    async fn settle_abandoned(
        &self,
        rec: &mut crate::domain::TxnRecord,
    ) -> Result<(), super::ledger_step::DriveError> {
        let undo = match rec.state {
            TxnState::HoldRequested => Some(TxnState::VoidPending { hold_id: None }),
            TxnState::CreditRequested => Some(TxnState::CompensationPending {
                amount_minor: rec.amount.minor,
            }),
            _ => None,
        };
        if let Some(next) = undo {
            tracing::warn!(
                txn = %rec.key,
                state = rec.state.name(),
                "request left without an outcome (crash or journal failure): undoing what the ledger may have done"
            );
            rec.advance(next, super::now_ms())?;
            self.journal
                .write(crate::ports::JournalWrite {
                    txn: Some(rec.clone()),
                    reply: None,
                })
                .await?;
        }
        self.drive_waiting(rec, false).await
    }
}

pub(crate) fn parse_key(text: &str) -> Option<TxnKey> {
    let mut parts = text.splitn(3, ':');
    let terminal = protocols::types::TerminalId::parse(parts.next()?).ok()?;
    let stan = protocols::types::Stan::parse(parts.next()?).ok()?;
    Some(TxnKey::new(terminal, stan, parts.next()?))
}
