//! The network side: a TCP listener, one task per connection, length-prefixed ISO 8583 frames in
//! the configured dialect.
//!
//! A connection reads frames in order and applies each to the books at once, in arrival order
//! (so a reversal right behind its original finds it); the answers then wait out their latency
//! in tasks of their own and are written as they become ready, so answers on one connection may
//! leave out of order (the switch matches them by MTI class, field 41 and field 11).
//!
//! A frame that does not decode (bad length header, or a payload the spec cannot unpack) is
//! logged and the connection closed: after it the stream cannot be trusted to be in step.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use protocols::framing::FrameCodec;
use protocols::iso8583::Message;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio_util::codec::Framed;

use crate::host::Delivery;
use crate::record::Fate;
use crate::{Outage, Shared};

/// Most connections served at once; more wait in the accept backlog.
pub const CONNECTIONS_MAX: usize = 1_024;
/// Most answers waiting out their latency on one connection; past it reading pauses.
pub const IN_FLIGHT_PER_CONNECTION_MAX: usize = 512;
/// How long writing one answer may take before the connection is given up.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts until `stop` turns true, then aborts the connections.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let mut connections = JoinSet::new();
    let mut next_connection = 0u64;
    loop {
        let permit = tokio::select! {
            _ = stopped(&mut stop) => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => accepted,
        };
        // Reap finished connections so the set stays small.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if *shared.outage.borrow() == Outage::Refuse {
            shared.lock().recorder.stats.connections_refused += 1;
            tracing::info!(%peer, "refused (outage)");
            drop(stream);
            continue;
        }
        next_connection += 1;
        let id = next_connection;
        shared.lock().recorder.stats.connections_accepted += 1;
        tracing::info!(%peer, connection = id, "connected");
        let shared = shared.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            let _permit = permit;
            let reason = Connection::new(id, shared, stop).run(stream).await;
            tracing::info!(%peer, connection = id, reason, "closed");
        });
    }
    connections.shutdown().await;
}

/// Resolves once `stop` is true (or its sender is gone). The watch guard is dropped inside, so
/// the connection future stays `Send`.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Resolves once the outage is `Refuse` (or the host is gone).
async fn refusing(outage: &mut watch::Receiver<Outage>) {
    let _ = outage.wait_for(|o| *o == Outage::Refuse).await;
}

/// An answer ready to be written: exchange sequence and packed bytes.
type Ready = (u64, Bytes);

struct Connection {
    id: u64,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    outage: watch::Receiver<Outage>,
    in_flight: Arc<Semaphore>,
}

impl Connection {
    fn new(id: u64, shared: Arc<Shared>, stop: watch::Receiver<bool>) -> Connection {
        let outage = shared.outage.subscribe();
        Connection {
            id,
            shared,
            stop,
            outage,
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT_PER_CONNECTION_MAX)),
        }
    }

    /// Serves the connection; returns why it ended.
    async fn run(self, stream: TcpStream) -> &'static str {
        let _ = stream.set_nodelay(true);
        let mut framed = Framed::new(stream, FrameCodec::new(self.shared.length_prefix));
        let (ready_tx, mut ready_rx) = mpsc::channel::<Ready>(IN_FLIGHT_PER_CONNECTION_MAX);
        let mut answering = JoinSet::new();
        let mut reading = true;
        let mut stop = self.stop.clone();
        let mut outage = self.outage.clone();
        loop {
            if !reading && answering.is_empty() && ready_rx.is_empty() {
                return "peer closed";
            }
            tokio::select! {
                _ = stopped(&mut stop) => return "shutdown",
                _ = refusing(&mut outage) => {
                    self.shared.lock().recorder.stats.connections_refused += 1;
                    return "outage: refuse";
                }
                Some(_) = answering.join_next(), if !answering.is_empty() => {}
                Some((seq, bytes)) = ready_rx.recv() => {
                    let fate = match tokio::time::timeout(WRITE_TIMEOUT, framed.send(bytes)).await {
                        Ok(Ok(())) => Fate::Answered,
                        Ok(Err(e)) => {
                            tracing::warn!(connection = self.id, error = %e, "answer not written");
                            Fate::SendFailed
                        }
                        Err(_) => Fate::SendFailed,
                    };
                    self.shared.lock().recorder.settle(seq, fate);
                    if fate == Fate::SendFailed {
                        return "write failed";
                    }
                }
                frame = framed.next(), if reading => match frame {
                    None => reading = false,
                    Some(Err(e)) => {
                        tracing::warn!(connection = self.id, error = %e, "undecodable frame: closing");
                        self.shared.lock().recorder.stats.undecodable_frames += 1;
                        return "undecodable frame";
                    }
                    Some(Ok(frame)) => {
                        let message = match self.shared.spec.unpack(&frame.payload) {
                            Ok(m) => m,
                            Err(e) => {
                                tracing::warn!(connection = self.id, error = %e, "message does not unpack: closing");
                                self.shared.lock().recorder.stats.undecodable_frames += 1;
                                return "undecodable message";
                            }
                        };
                        // Backpressure: at most IN_FLIGHT_PER_CONNECTION_MAX answers waiting.
                        let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
                            return "shutdown";
                        };
                        if let Some(task) = self.receive(message, ready_tx.clone()) {
                            answering.spawn(async move {
                                task.await;
                                drop(permit);
                            });
                        }
                    }
                },
            }
        }
    }

    /// Records and applies one message; returns the task that sends its answer, if any.
    fn receive(
        &self,
        message: Message,
        ready: mpsc::Sender<Ready>,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        tracing::debug!(connection = self.id, message = %message.describe(), "received");
        let silent = *self.outage.borrow() == Outage::Silent;
        let mut guard = self.shared.lock();
        let seq = guard.recorder.received(self.id, &message);
        if silent {
            guard.recorder.settle(seq, Fate::Swallowed);
            return None;
        }
        let decision = guard.host.decide(&message);
        guard
            .recorder
            .decided(seq, decision.answer.as_ref(), decision.rule.clone());
        let answer = match (decision.delivery, decision.answer) {
            (Delivery::Answer, Some(answer)) => answer,
            (Delivery::DropAnswer, _) => {
                tracing::info!(connection = self.id, mti = %message.mti(), "answer dropped on purpose");
                guard.recorder.settle(seq, Fate::AnswerDropped);
                return None;
            }
            _ => {
                guard.recorder.settle(seq, Fate::Swallowed);
                return None;
            }
        };
        let bytes = match self.shared.spec.pack(&answer) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                tracing::warn!(connection = self.id, error = %e, "answer does not pack");
                guard.recorder.settle(seq, Fate::SendFailed);
                return None;
            }
        };
        drop(guard);
        let latency = Duration::from_millis(self.shared.latency_ms.load(Ordering::Relaxed))
            + decision.extra_latency;
        let outage = self.outage.clone();
        let shared = self.shared.clone();
        Some(async move {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            // A host that went silent while this answer waited never sends it (it was applied).
            if *outage.borrow() == Outage::Silent {
                shared.lock().recorder.settle(seq, Fate::AnswerDropped);
                return;
            }
            if ready.send((seq, bytes)).await.is_err() {
                shared.lock().recorder.settle(seq, Fate::SendFailed);
            }
        })
    }
}
