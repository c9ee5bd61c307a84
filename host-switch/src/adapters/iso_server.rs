//! The acquirer endpoint: ISO 8583 (`iso87-ascii`) with a 2-byte length, over mutual TLS (or plain
//! TCP in the lab), one task per connection and one per request.
//!
//! Connection policy for bad input:
//! - a framing error (hostile length header, oversized frame): logged, connection closed — the
//!   stream is out of sync and cannot be trusted;
//! - a frame that is not a valid ISO 8583 message: logged with the field and offset, answered with
//!   response code 30 when its MTI is readable, connection kept — until 3 in a row, then closed;
//! - field 41 not covered by the client certificate: answered 58, logged on the `security` target,
//!   connection closed.
//!
//! Connections still in the TLS handshake are capped ([`EndpointLimits::max_handshakes`]) and
//! timed out ([`EndpointLimits::handshake_timeout`]): a peer that opens TCP connections and never
//! sends a ClientHello holds a handshake slot for the timeout at most, and while every slot is
//! held new connections wait in the kernel's accept queue (a warning on the `security` target
//! says so) instead of each getting a task, a buffer and a connection slot.
//!
//! Requests on one connection are served concurrently (an agent multiplexes many terminals) up to
//! a bound; responses go back in completion order and are matched by the agent on MTI/41/11.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use mtls::PeerIdentity;
use protocols::framing::{FrameCodec, FramingError};
use protocols::iso8583::{Message, Mti, Spec};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::Framed;
use tracing::Instrument;

use super::iso_mapping::{terminal_id, to_request, to_response};
use crate::app::Switch;
use crate::domain::{RecordedReply, ResponseCode};
use crate::ports::{Journal, Ledger};

/// Consecutive malformed messages after which a connection is closed.
const MAX_MALFORMED_IN_A_ROW: u32 = 3;

#[derive(Debug, Clone)]
pub struct EndpointLimits {
    pub max_connections: usize,
    pub max_in_flight_per_connection: usize,
    pub max_frame_bytes: usize,
    pub idle_timeout: Duration,
    /// Connections in the TLS handshake at once; more wait in the accept queue.
    pub max_handshakes: usize,
    /// A handshake not finished after this long is abandoned and the connection closed.
    pub handshake_timeout: Duration,
}

pub struct AcquirerEndpoint<L, J> {
    switch: Arc<Switch<L, J>>,
    tls: Option<TlsAcceptor>,
    limits: EndpointLimits,
}

impl<L: Ledger, J: Journal> AcquirerEndpoint<L, J> {
    /// `tls = None` is the lab's plain-TCP mode.
    pub fn new(
        switch: Arc<Switch<L, J>>,
        tls: Option<TlsAcceptor>,
        limits: EndpointLimits,
    ) -> Arc<Self> {
        Arc::new(Self {
            switch,
            tls,
            limits,
        })
    }

    /// Accepts connections until `shutdown` turns true; then stops accepting (the listener is
    /// closed) and waits for open connections to answer the requests they have in flight. The
    /// caller bounds that wait; connections still open when it gives up are aborted with it.
    pub async fn run(self: Arc<Self>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
        let connections = Arc::new(Semaphore::new(self.limits.max_connections));
        let handshakes = Arc::new(Semaphore::new(self.limits.max_handshakes));
        let mut at_handshake_cap = false;
        let mut open = JoinSet::new();
        loop {
            // Finished connections leave the set as we go, so it holds only open ones.
            while open.try_join_next().is_some() {}
            let permit = tokio::select! {
                p = connections.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = shutdown.changed() => break,
            };
            let handshake = match self
                .handshake_slot(&handshakes, &mut at_handshake_cap, &mut shutdown)
                .await
            {
                Some(h) => h,
                None => break,
            };
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.changed() => break,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let this = self.clone();
                    let shutdown = shutdown.clone();
                    open.spawn(async move {
                        this.connection(stream, peer, handshake, shutdown).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        drop(listener);
        if !open.is_empty() {
            tracing::info!(
                connections = open.len(),
                "stopped accepting; answering what open connections have in flight"
            );
        }
        while open.join_next().await.is_some() {}
    }

    /// A handshake slot for the next connection (`None`: shutting down). The plain-TCP lab mode
    /// has no handshake and takes none. Reaching the cap is logged once per episode, not once
    /// per waiting connection.
    async fn handshake_slot(
        &self,
        handshakes: &Arc<Semaphore>,
        at_cap: &mut bool,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Option<OwnedSemaphorePermit>> {
        if self.tls.is_none() {
            return Some(None);
        }
        if let Ok(p) = handshakes.clone().try_acquire_owned() {
            *at_cap = false;
            return Some(Some(p));
        }
        if !*at_cap {
            *at_cap = true;
            tracing::warn!(
                target: "security",
                max_handshakes = self.limits.max_handshakes,
                handshake_timeout_ms = self.limits.handshake_timeout.as_millis() as u64,
                "TLS handshakes at the cap: new connections wait in the accept queue until a handshake finishes or times out (many peers that connect and never finish a handshake: a scan or a flood)"
            );
        }
        tokio::select! {
            p = handshakes.clone().acquire_owned() => p.ok().map(Some),
            _ = shutdown.changed() => None,
        }
    }

    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        handshake: Option<OwnedSemaphorePermit>,
        shutdown: watch::Receiver<bool>,
    ) {
        let _ = stream.set_nodelay(true);
        let span = tracing::info_span!("connection", %peer);
        async move {
            match &self.tls {
                None => self.serve(stream, None, shutdown).await,
                Some(acceptor) => {
                    let handshake_timeout = self.limits.handshake_timeout;
                    let accepted = tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await;
                    // The slot is freed once the handshake is over, whatever its outcome (a
                    // timed-out connection is closed first: its stream went with the future).
                    drop(handshake);
                    let tls = match accepted {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::warn!(target: "security", error = %e, "TLS handshake refused");
                            return;
                        }
                        Err(_) => {
                            tracing::warn!(target: "security", timeout_ms = handshake_timeout.as_millis() as u64, "TLS handshake timed out: connection closed");
                            return;
                        }
                    };
                    let identity = match PeerIdentity::from_connection(tls.get_ref().1) {
                        Ok(id) => id,
                        Err(e) => {
                            tracing::warn!(target: "security", error = %e, "client certificate carries no usable identity");
                            return;
                        }
                    };
                    tracing::info!(identity = %identity, "agent connected");
                    self.serve(tls, Some(identity), shutdown).await
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn serve<S>(
        &self,
        stream: S,
        identity: Option<PeerIdentity>,
        mut shutdown: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let codec = FrameCodec::default().with_max_frame_len(self.limits.max_frame_bytes);
        let (mut sink, mut frames) = Framed::new(stream, codec).split();
        let (tx, mut rx) = mpsc::channel::<Bytes>(self.limits.max_in_flight_per_connection);
        let writer = tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if let Err(e) = sink.send(bytes).await {
                    tracing::info!(error = %e, "cannot write to the connection");
                    break;
                }
            }
        });
        let in_flight = Arc::new(Semaphore::new(self.limits.max_in_flight_per_connection));
        let spec = Spec::iso87_ascii();
        let mut malformed_in_a_row = 0u32;
        loop {
            let next = tokio::select! {
                n = tokio::time::timeout(self.limits.idle_timeout, frames.next()) => n,
                _ = shutdown.changed() => break,
            };
            let frame = match next {
                Err(_) => {
                    tracing::info!("idle timeout: closing connection");
                    break;
                }
                Ok(None) => break,
                Ok(Some(Err(FramingError::Io(e))))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    tracing::info!("peer closed the connection without a TLS close_notify");
                    break;
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "framing error: closing connection");
                    break;
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let msg = match spec.unpack(&frame.payload) {
                Ok(m) => m,
                Err(e) => {
                    malformed_in_a_row += 1;
                    tracing::warn!(error = %e, bytes = frame.payload.len(), "malformed ISO 8583 message");
                    if let Some(resp) = format_error_response(&frame.payload) {
                        if let Ok(bytes) = spec.pack(&resp) {
                            let _ = tx.send(Bytes::from(bytes)).await;
                        }
                    }
                    if malformed_in_a_row >= MAX_MALFORMED_IN_A_ROW {
                        tracing::warn!("too many malformed messages in a row: closing connection");
                        break;
                    }
                    continue;
                }
            };
            malformed_in_a_row = 0;
            if let Some(identity) = &identity {
                if !terminal_allowed(&msg, identity) {
                    tracing::warn!(
                        target: "security",
                        terminal = msg.get_str(41).unwrap_or(""),
                        identity = %identity,
                        "field 41 is not covered by the client certificate: refused with 58, closing connection"
                    );
                    let resp =
                        to_response(&msg, &RecordedReply::code(ResponseCode::SecurityViolation));
                    if let Ok(bytes) = spec.pack(&resp) {
                        let _ = tx.send(Bytes::from(bytes)).await;
                    }
                    break;
                }
            }
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                break;
            };
            let switch = self.switch.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let resp = respond(&switch, &msg).await;
                match spec.pack(&resp) {
                    Ok(bytes) => {
                        let _ = tx.send(Bytes::from(bytes)).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, response = %resp.describe(), "cannot pack response")
                    }
                }
                drop(permit);
            });
        }
        // In-flight requests still hold senders: the writer sends their answers, then ends.
        drop(tx);
        let _ = writer.await;
    }
}

/// Serves one well-formed request message.
async fn respond<L: Ledger, J: Journal>(switch: &Switch<L, J>, msg: &Message) -> Message {
    tracing::debug!(request = %msg.describe(), "request");
    let reply = match to_request(msg) {
        Ok(request) => switch.handle(request).await,
        Err(e) => {
            tracing::warn!(mti = %msg.mti(), terminal = msg.get_str(41).unwrap_or(""), stan = msg.get_str(11).unwrap_or(""), error = %e, "request refused");
            RecordedReply::code(e.code())
        }
    };
    to_response(msg, &reply)
}

/// Network management may come without a terminal id; everything else must name one the
/// certificate covers.
fn terminal_allowed(msg: &Message, identity: &PeerIdentity) -> bool {
    match terminal_id(msg) {
        Some(t) => identity.allows(t.as_str()),
        None => msg.mti().as_str() == "0800" && !msg.contains(41),
    }
}

/// A response carrying 30 (format error) for a message whose MTI, at least, is readable.
fn format_error_response(payload: &[u8]) -> Option<Message> {
    let mti = Mti::parse(std::str::from_utf8(payload.get(..4)?).ok()?).ok()?;
    if mti.is_response() {
        return None;
    }
    let mut resp = Message::with_mti(mti.response());
    resp.set_str(39, ResponseCode::FormatError.code()).ok()?;
    Some(resp)
}
