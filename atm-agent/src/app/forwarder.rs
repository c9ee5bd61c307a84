//! The forwarder: sends queued advices to the switch, in order per terminal, one in flight per
//! terminal, until each is answered.
//!
//! Loop: `claim_due()` (the advice is in flight from here: no other pass picks it) →
//! `begin_attempt()` (durably counts the send, so a resend after a crash is flagged as a repeat,
//! 0221/0421; refused if the advice is already begun) → send → `complete()` on 00, `park()` on a
//! final decline (with its reason; a stored deposit's card stays in the vault), else
//! `retry_later()` with backoff. A 91, a timeout or a lost link back off without counting against
//! the retry limit (a 91 is never final: the switch has not done the work yet). Nothing is ever
//! dropped silently.
//! The link port writes the advice as its ISO 8583 message; the forwarder only decides.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Services;
use crate::domain::advice::Advice;
use crate::domain::exchange::ResponseCode;
use crate::ports::{AdviceQueue, Entry, LinkError, QueueError, SwitchLink, TerminalStore};

/// How often the queue is looked at when nothing wakes the forwarder.
const POLL: Duration = Duration::from_millis(200);
/// Advices sent at once (at most one per terminal anyway).
const MAX_CONCURRENT: usize = 64;

pub async fn run<L, S, Q>(svc: Arc<Services<L, S, Q>>, mut shutdown: watch::Receiver<bool>)
where
    L: SwitchLink,
    S: TerminalStore,
    Q: AdviceQueue,
{
    let mut link = svc.uplink.link_state();
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT));
    loop {
        if svc.uplink.is_up() {
            // Claimed under the queue's lock: a later pass cannot pick the same advice again
            // before its task has begun the attempt (which would send it twice).
            let free = limit.available_permits();
            for entry in svc.queue.claim_due(crate::clock::now_ms(), free) {
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    svc.queue.release(&entry.id);
                    continue;
                };
                let svc = svc.clone();
                tokio::spawn(async move {
                    forward(&svc, entry).await;
                    drop(permit);
                    svc.forwarder.notify_one();
                });
            }
        }
        tokio::select! {
            _ = svc.forwarder.notified() => {}
            _ = link.changed() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

pub(crate) async fn forward<L, S, Q>(svc: &Services<L, S, Q>, entry: Entry<Advice>)
where
    L: SwitchLink,
    S: TerminalStore,
    Q: AdviceQueue,
{
    let entry = match svc.queue.begin_attempt(&entry.id).await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "cannot begin an advice attempt");
            return;
        }
    };
    let advice = &entry.payload;
    let card = match stored_card(svc, advice) {
        Ok(card) => card,
        Err(why) => {
            tracing::error!(terminal = %advice.terminal, stan = %advice.stan, error = %why, "advice cannot be built: parked");
            let _ = svc.queue.park(&entry.id, &why).await;
            return;
        }
    };
    let outcome = svc
        .uplink
        .advise(advice, entry.repeat, card.as_ref(), svc.advice_timeout)
        .await;
    let mti = advice.mti(entry.repeat);
    let result = match outcome {
        Ok(ResponseCode::Approved) => {
            tracing::info!(terminal = %advice.terminal, stan = %advice.stan, %mti, "advice acknowledged");
            done(svc, &entry).await
        }
        Ok(ResponseCode::IssuerUnavailable) => svc
            .queue
            .retry_later(&entry.id, "switch answered 91", false)
            .await
            .map(|_| ()),
        Ok(ResponseCode::SystemError) => svc
            .queue
            .retry_later(&entry.id, "switch answered 96", true)
            .await
            .map(|_| ()),
        Ok(code) => {
            // A final decline: the switch will never accept it as it is. Nothing is deleted: the
            // advice is parked with its reason (atmctl queue ls) and a stored deposit's card stays
            // in the vault, until an operator acts.
            tracing::error!(terminal = %advice.terminal, stan = %advice.stan, %code, kind = ?advice.kind, "advice declined by the switch: parked for an operator");
            let reason = format!("declined by the switch: {code} ({mti})");
            svc.queue.park(&entry.id, &reason).await
        }
        Err(e @ LinkError::Encode(_)) => {
            tracing::error!(terminal = %advice.terminal, stan = %advice.stan, error = %e, "advice cannot be built: parked");
            svc.queue.park(&entry.id, &e.to_string()).await
        }
        Err(e) => svc
            .queue
            .retry_later(&entry.id, &e.to_string(), false)
            .await
            .map(|_| ()),
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "queue update failed");
    }
}

/// The card number a stored deposit's advice carries, from the vault.
fn stored_card<L, S: TerminalStore, Q>(
    svc: &Services<L, S, Q>,
    advice: &Advice,
) -> Result<Option<protocols::types::Pan>, String> {
    let Some(reference) = &advice.card_ref else {
        return Ok(None);
    };
    svc.state
        .card(reference)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("card {reference} is not in the vault"))
        .map(Some)
}

async fn done<L, S, Q>(svc: &Services<L, S, Q>, entry: &Entry<Advice>) -> Result<(), QueueError>
where
    S: TerminalStore,
    Q: AdviceQueue,
{
    svc.queue.complete(&entry.id).await?;
    if let Some(reference) = &entry.payload.card_ref {
        if let Err(e) = svc.state.remove_card(reference).await {
            tracing::warn!(error = %e, "card vault entry not removed");
        }
    }
    Ok(())
}
