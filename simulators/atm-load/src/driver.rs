//! One load connection: keeps up to `in_flight` operations outstanding on one TLS connection,
//! at a target rate or flat out, and matches answers by terminal id (41) + STAN (11) — the switch
//! answers in completion order, not in request order.
//!
//! A single task owns the connection: it reads answers, starts new operations when a slot (and,
//! with a rate, a send time) is free, and writes everything it has to send with one flush. That
//! keeps the load generator cheap, which matters when it shares two cores with the switch.
//!
//! With a rate, latency is counted from the operation's scheduled send time, not from when a slot
//! became free: a slow switch then shows as latency instead of silently lowering the offered load
//! (coordinated omission).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use protocols::framing::FrameCodec;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::codec::Framed;

use super::messages::{completion, pack, read_answer, withdrawal, Answer};
use super::stats::ConnectionTally;
use super::LoadError;
use crate::transaction_keys::{KeySpace, TxnId};

/// What each operation of a phase is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// One 0100 sent to the echo server, answered by its copy.
    Echo,
    /// One 0100 → 0110.
    Authorization,
    /// 0100 → 0110 "00" → 0220 (all dispensed) → 0230.
    Saga,
}

/// How one phase runs on one connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionPlan {
    pub workload: Workload,
    pub index: usize,
    pub duration: Duration,
    pub in_flight: usize,
    /// Time between two operation starts on this connection; `None` is flat out.
    pub interval: Option<Duration>,
    /// How long to wait for outstanding answers after the phase ends.
    pub drain: Duration,
    pub keys: Arc<KeySpace>,
    pub cards: Arc<Vec<String>>,
    pub amount_minor: u64,
}

/// An operation waiting for an answer.
struct Pending {
    started: Instant,
    stage: Stage,
}

enum Stage {
    /// Waiting for the 0110 (or the echo); for a saga the card is needed for the 0220.
    Authorization { id: TxnId, card: usize },
    /// Waiting for the 0230.
    Completion,
}

type Key = (u8, u32);

/// How long closing a connection may take once the phase is over.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

struct Connection {
    plan: ConnectionPlan,
    pending: HashMap<Key, Pending>,
    outbox: Vec<Bytes>,
    tally: ConnectionTally,
    started_ops: u64,
}

/// Runs one phase on `stream` and returns what it counted.
pub(crate) async fn run_connection<S>(
    stream: S,
    plan: ConnectionPlan,
    start: Instant,
) -> ConnectionTally
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sink, mut frames) = Framed::new(stream, FrameCodec::default()).split();
    let deadline = start + plan.duration;
    let mut c = Connection {
        pending: HashMap::with_capacity(plan.in_flight * 2),
        outbox: Vec::with_capacity(plan.in_flight),
        tally: ConnectionTally::default(),
        started_ops: 0,
        plan,
    };
    // Connections start their rate schedule staggered over one interval.
    let mut next_at = match c.plan.interval {
        Some(iv) => start + iv.mul_f64((c.plan.index % 64) as f64 / 64.0),
        None => start,
    };
    let mut stopping = false;
    loop {
        let now = Instant::now();
        stopping |= now >= deadline;
        while !stopping && c.pending.len() < c.plan.in_flight {
            let scheduled = match c.plan.interval {
                Some(_) if next_at > now => break,
                Some(iv) => {
                    let scheduled = next_at;
                    next_at += iv;
                    scheduled
                }
                None => now,
            };
            if let Err(e) = c.start_operation(scheduled) {
                tracing::error!(error = %e, "cannot build a load message");
                c.tally.errors += 1;
                stopping = true;
            }
        }
        if !c.outbox.is_empty() {
            c.tally.messages_sent += c.outbox.len() as u64;
            let mut failed = false;
            for bytes in c.outbox.drain(..) {
                if sink.feed(bytes).await.is_err() {
                    failed = true;
                    break;
                }
            }
            if failed || sink.flush().await.is_err() {
                tracing::warn!(
                    connection = c.plan.index,
                    "load connection closed while sending"
                );
                break;
            }
        }
        if stopping && c.pending.is_empty() {
            break;
        }
        let slot_free = !stopping && c.pending.len() < c.plan.in_flight;
        tokio::select! {
            biased;
            frame = frames.next() => {
                match frame {
                    Some(Ok(f)) => c.on_answer(&f.payload),
                    Some(Err(e)) => {
                        tracing::warn!(connection = c.plan.index, error = %e, "load connection: framing error");
                        break;
                    }
                    None => {
                        tracing::warn!(connection = c.plan.index, "load connection closed by the peer");
                        break;
                    }
                }
                // Answers already received are handled before the next write, so one flush
                // carries every follow-up and new operation they allow.
                for _ in 0..c.plan.in_flight {
                    match frames.next().now_or_never() {
                        Some(Some(Ok(f))) => c.on_answer(&f.payload),
                        _ => break,
                    }
                }
            }
            _ = tokio::time::sleep_until(next_at), if slot_free && c.plan.interval.is_some() => {}
            _ = tokio::time::sleep_until(deadline), if !stopping => {}
            _ = tokio::time::sleep_until(deadline + c.plan.drain), if stopping => {
                tracing::warn!(connection = c.plan.index, unanswered = c.pending.len(), "no answer within the drain time");
                break;
            }
        }
    }
    // Close with a TLS close_notify, so the peer sees an orderly end, not a truncated stream.
    if let Ok(framed) = sink.reunite(frames) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, framed.into_inner().shutdown()).await;
    }
    // Whatever is still outstanding was never answered.
    c.tally.errors += c.pending.len() as u64;
    c.tally.operations = c.started_ops;
    c.tally
}

impl Connection {
    fn start_operation(&mut self, scheduled: Instant) -> Result<(), LoadError> {
        let n = self.started_ops;
        let keys = self.plan.keys.clone();
        // Terminals and cards are spread evenly, and differently per connection.
        let terminal = ((self.plan.index as u64 + n) % keys.terminals().len() as u64) as u8;
        let card = ((n * 7 + self.plan.index as u64 * 13) % self.plan.cards.len() as u64) as usize;
        let id = keys.next(terminal);
        let msg = withdrawal(
            &id,
            keys.terminal(terminal),
            &self.plan.cards[card],
            self.plan.amount_minor,
        )?;
        self.outbox.push(Bytes::from(pack(&msg)?));
        self.started_ops += 1;
        if self
            .pending
            .insert(
                (terminal, id.stan),
                Pending {
                    started: scheduled,
                    stage: Stage::Authorization { id, card },
                },
            )
            .is_some()
        {
            // Only possible after a million operations per terminal in flight at once.
            self.tally.errors += 1;
        }
        Ok(())
    }

    fn on_answer(&mut self, payload: &[u8]) {
        let answer = match read_answer(payload) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "load: unreadable answer");
                self.tally.errors += 1;
                return;
            }
        };
        let Some(terminal) = self.plan.keys.terminal_index(&answer.terminal) else {
            tracing::warn!(terminal = %answer.terminal, "load: answer for an unknown terminal");
            self.tally.errors += 1;
            return;
        };
        let Some(pending) = self.pending.remove(&(terminal, answer.stan)) else {
            tracing::warn!(terminal = %answer.terminal, stan = answer.stan, "load: answer matches nothing in flight");
            self.tally.errors += 1;
            return;
        };
        match (self.plan.workload, pending.stage) {
            (Workload::Echo, _) => self.finish(pending.started, true),
            (Workload::Authorization, _) => self.finish(pending.started, approved(&answer)),
            (Workload::Saga, Stage::Authorization { id, card }) if approved(&answer) => {
                if let Err(e) = self.send_completion(terminal, &id, card, pending.started) {
                    tracing::error!(error = %e, "cannot build a completion advice");
                    self.tally.errors += 1;
                }
            }
            (Workload::Saga, Stage::Authorization { .. }) => self.finish(pending.started, false),
            (Workload::Saga, Stage::Completion) => self.finish(pending.started, approved(&answer)),
        }
    }

    fn send_completion(
        &mut self,
        terminal: u8,
        original: &TxnId,
        card: usize,
        started: Instant,
    ) -> Result<(), LoadError> {
        let keys = self.plan.keys.clone();
        let id = keys.next(terminal);
        let msg = completion(
            &id,
            original,
            keys.terminal(terminal),
            &self.plan.cards[card],
            self.plan.amount_minor,
        )?;
        self.outbox.push(Bytes::from(pack(&msg)?));
        self.pending.insert(
            (terminal, id.stan),
            Pending {
                started,
                stage: Stage::Completion,
            },
        );
        Ok(())
    }

    fn finish(&mut self, started: Instant, approved: bool) {
        self.tally.completed += 1;
        if approved {
            self.tally.approved += 1;
        } else {
            self.tally.declined += 1;
        }
        self.tally.record_latency(started.elapsed());
    }
}

fn approved(answer: &Answer) -> bool {
    answer.code.as_deref() == Some("00")
}
