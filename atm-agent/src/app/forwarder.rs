//! The forwarder: sends queued advices to the switch, in order per terminal, one in flight per
//! terminal, until each is answered.
//!
//! Loop: `due()` → `begin_attempt()` (durably counts the send, so a resend after a crash is
//! flagged as a repeat, 0221/0421) → send → `complete()` on 00 or a final decline, else
//! `retry_later()` with backoff. A 91, a timeout or a lost link back off without counting against
//! the retry limit; nothing is ever dropped silently (the queue parks what it gives up on).

use std::sync::Arc;
use std::time::Duration;

use protocols::iso8583::{
    Message, Mti, OriginalData, ReplacementAmounts, Sign, SignedAmount, TransmissionDateTime,
};
use protocols::types::Stan;
use tokio::sync::watch;

use super::Services;
use crate::domain::advice::{Advice, AdviceKind};
use crate::queue::Entry;

/// How often the queue is looked at when nothing wakes the forwarder.
const POLL: Duration = Duration::from_millis(200);
/// Advices sent at once (at most one per terminal anyway).
const MAX_CONCURRENT: usize = 64;

pub async fn run(svc: Arc<Services>, mut shutdown: watch::Receiver<bool>) {
    let mut link = svc.uplink.watch();
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT));
    loop {
        if svc.uplink.is_up() {
            for entry in svc.queue.due(crate::clock::now_ms()) {
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    break;
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

async fn forward(svc: &Services, entry: Entry<Advice>) {
    let entry = match svc.queue.begin_attempt(&entry.id).await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "cannot begin an advice attempt");
            return;
        }
    };
    let advice = &entry.payload;
    let msg = match message(svc, advice, entry.repeat) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(terminal = %advice.terminal_id, stan = advice.stan, error = %e, "advice cannot be built: parked");
            let _ = svc.queue.park(&entry.id, &e).await;
            return;
        }
    };
    let outcome = svc.uplink.request(&msg, svc.advice_timeout).await;
    let result = match outcome {
        Ok(resp) => match resp.get_str(39).unwrap_or("") {
            "00" => {
                tracing::info!(terminal = %advice.terminal_id, stan = advice.stan, mti = %msg.mti(), "advice acknowledged");
                done(svc, &entry).await
            }
            "91" => svc
                .queue
                .retry_later(&entry.id, "switch answered 91", false)
                .await
                .map(|_| ()),
            "96" => svc
                .queue
                .retry_later(&entry.id, "switch answered 96", true)
                .await
                .map(|_| ()),
            code => {
                // A final decline: the switch will never accept it. It leaves the queue, loudly.
                tracing::error!(terminal = %advice.terminal_id, stan = advice.stan, %code, kind = ?advice.kind, "advice declined by the switch: needs an operator");
                done(svc, &entry).await
            }
        },
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

async fn done(svc: &Services, entry: &Entry<Advice>) -> Result<(), crate::queue::QueueError> {
    svc.queue.complete(&entry.id).await?;
    if let Some(reference) = &entry.payload.card_ref {
        if let Err(e) = svc.state.remove_card(reference).await {
            tracing::warn!(error = %e, "card vault entry not removed");
        }
    }
    Ok(())
}

/// The ISO 8583 message of an advice (a repeat carries the repeat MTI).
fn message(svc: &Services, a: &Advice, repeat: bool) -> Result<Message, String> {
    let err = |e: protocols::iso8583::FieldError| e.to_string();
    let mut m = Message::new(a.mti(repeat)).map_err(err)?;
    m.set_str(7, &a.transmitted_at).map_err(err)?;
    m.set_str(11, &format!("{:06}", a.stan)).map_err(err)?;
    m.set_str(41, &format!("{:<8}", a.terminal_id))
        .map_err(err)?;
    if a.kind == AdviceKind::Status {
        m.set_str(48, a.detail.as_deref().unwrap_or(""))
            .map_err(err)?;
        return Ok(m);
    }
    m.set_str(3, &a.processing_code).map_err(err)?;
    m.set_str(4, &format!("{:012}", a.amount_minor))
        .map_err(err)?;
    m.set_str(49, &format!("{:03}", a.currency)).map_err(err)?;
    if let Some(o) = &a.original {
        let original = OriginalData {
            mti: Mti::parse(&o.mti).map_err(err)?,
            stan: Stan::new(o.stan).map_err(|e| e.to_string())?,
            transmission: TransmissionDateTime::parse(&o.transmitted_at),
            acquirer_id: 0,
            forwarding_id: 0,
        };
        m.set_original_data(&original).map_err(err)?;
    }
    if let Some(actual) = a.actual_minor {
        let nothing = SignedAmount {
            sign: Sign::Credit,
            minor: 0,
        };
        let amounts = ReplacementAmounts {
            actual_amount: actual,
            settlement_amount: 0,
            transaction_fee: nothing,
            settlement_fee: nothing,
        };
        m.set_replacement_amounts(&amounts).map_err(err)?;
    }
    if let Some(reference) = &a.card_ref {
        let pan = svc
            .state
            .card(reference)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("card {reference} is not in the vault"))?;
        m.set_str(2, pan.expose()).map_err(err)?;
    }
    Ok(m)
}
