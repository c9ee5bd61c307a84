//! The terminal's TCP connection to the agent: framing, and a background task that answers the
//! host whenever it speaks.
//!
//! One task per connection owns the framed socket. It writes what the customer session hands it
//! (already encoded, in order) and reads host messages: terminal and data commands are answered
//! at once (see `commands.rs`); a transaction reply goes to the waiting customer session if one
//! waits (the MCN check is the session's), and is rejected `C01` (`A`) otherwise (a late reply);
//! anything unparseable is rejected `B04` (`A`). Dropping the [`Link`] aborts the task and closes
//! the socket at once, which is how a power failure looks from the agent's side.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use firmware_profiles::Profile;
use futures::{SinkExt, StreamExt};
use protocols::framing::{Frame, FrameCodec};
use protocols::ndc::{Dialect, HostMessage, TerminalMessage, TransactionReply};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, Mutex};
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

use super::commands;
use super::error::AtmError;
use super::messages::{self, reason};
use super::terminal::{Terminal, TerminalCounters, TerminalStatus};

/// Outbound messages queued for the socket (bounded: the session waits when the agent is slow).
const OUTBOUND_QUEUE: usize = 64;
/// Transaction replies handed to the session; one is expected at a time.
const REPLY_QUEUE: usize = 4;

/// The terminal state, shared by the connection task and the customer session. Every change goes
/// through [`Shared::with`], which publishes fresh snapshots afterwards.
#[derive(Debug)]
pub(crate) struct Shared {
    terminal: Mutex<Terminal>,
    counters: watch::Sender<TerminalCounters>,
    status: watch::Sender<TerminalStatus>,
}

impl Shared {
    pub(crate) fn new(t: Terminal) -> Arc<Self> {
        let (counters, _) = watch::channel(t.counters());
        let (status, _) = watch::channel(t.status());
        Arc::new(Self {
            terminal: Mutex::new(t),
            counters,
            status,
        })
    }

    /// Runs `f` on the terminal under the lock (never held across an await), then publishes.
    pub(crate) async fn with<R>(&self, f: impl FnOnce(&mut Terminal) -> R) -> R {
        let mut t = self.terminal.lock().await;
        let r = f(&mut t);
        self.counters.send_replace(t.counters());
        self.status.send_replace(t.status());
        r
    }

    pub(crate) fn counters(&self) -> watch::Receiver<TerminalCounters> {
        self.counters.subscribe()
    }
    pub(crate) fn status(&self) -> watch::Receiver<TerminalStatus> {
        self.status.subscribe()
    }
}

/// What the session hands the connection task.
#[derive(Debug)]
enum Outbound {
    /// An encoded message to write.
    Message(Vec<u8>),
    /// Answered once everything queued before it is written to the socket.
    Flushed(oneshot::Sender<()>),
}

/// The live connection: where the session sends messages and receives transaction replies.
#[derive(Debug)]
pub(crate) struct Link {
    out: mpsc::Sender<Outbound>,
    /// For the MAC of solicited statuses (MAC mode), made with the PIN pad's key when sent.
    shared: Arc<Shared>,
    pub(crate) replies: mpsc::Receiver<TransactionReply>,
    task: JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Link {
    /// Connects, writes `first` (the power-up) before anything else, marks the terminal
    /// connected and starts the connection task. A real terminal that just powered up says so
    /// before it answers any command the host sends it meanwhile.
    pub(crate) async fn open(
        addr: &str,
        profile: &Profile,
        shared: Arc<Shared>,
        connect_timeout_ms: u64,
        first: Vec<u8>,
    ) -> Result<Self, AtmError> {
        let stream = tokio::time::timeout(
            Duration::from_millis(connect_timeout_ms),
            TcpStream::connect(addr),
        )
        .await
        .map_err(|_| AtmError::ConnectTimeout {
            addr: addr.to_owned(),
            timeout_ms: connect_timeout_ms,
        })?
        .map_err(|source| AtmError::Connect {
            addr: addr.to_owned(),
            source,
        })?;
        // Small request/answer messages: do not let Nagle hold them back.
        let _ = stream.set_nodelay(true);
        let f = &profile.framing;
        let codec = FrameCodec::new(f.length_prefix)
            .with_header_len(f.header_len)
            .with_max_frame_len(f.max_frame_bytes);
        let framed = Framed::new(stream, codec);
        let (out, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
        let (reply_tx, replies) = mpsc::channel(REPLY_QUEUE);
        shared.with(|t| t.connected = true).await;
        let conn = Connection {
            framed,
            header: Bytes::from(vec![b'0'; f.header_len]),
            dialect: profile.dialect.clone(),
            shared: shared.clone(),
            reply_tx,
        };
        let mut conn = conn;
        if !conn.write(first).await {
            return Err(AtmError::Disconnected);
        }
        let task = tokio::spawn(conn.run(out_rx));
        Ok(Self {
            out,
            shared,
            replies,
            task,
        })
    }

    /// Queues a message for the agent.
    pub(crate) async fn send(
        &self,
        msg: &TerminalMessage,
        dialect: &Dialect,
    ) -> Result<(), AtmError> {
        let mut msg = msg.clone();
        self.shared.with(|t| t.authenticate_status(&mut msg)).await;
        let bytes = msg.encode(dialect)?;
        self.out
            .send(Outbound::Message(bytes))
            .await
            .map_err(|_| AtmError::Disconnected)
    }

    /// Waits until every message queued so far is written to the socket (so a power failure
    /// right after cannot lose one that the terminal already sent).
    pub(crate) async fn flushed(&self) -> Result<(), AtmError> {
        let (tx, rx) = oneshot::channel();
        self.out
            .send(Outbound::Flushed(tx))
            .await
            .map_err(|_| AtmError::Disconnected)?;
        rx.await.map_err(|_| AtmError::Disconnected)
    }
}

struct Connection {
    framed: Framed<TcpStream, FrameCodec>,
    /// Fixed header (TPDU) sent before every payload when the profile has one.
    header: Bytes,
    dialect: Dialect,
    shared: Arc<Shared>,
    reply_tx: mpsc::Sender<TransactionReply>,
}

impl Connection {
    async fn run(mut self, mut out_rx: mpsc::Receiver<Outbound>) {
        loop {
            // Both branches are cancel-safe: recv() and StreamExt::next() lose nothing.
            tokio::select! {
                out = out_rx.recv() => match out {
                    Some(Outbound::Message(bytes)) => {
                        if !self.write(bytes).await {
                            break;
                        }
                    }
                    // Earlier messages are written (each write flushes the socket).
                    Some(Outbound::Flushed(done)) => {
                        let _ = done.send(());
                    }
                    None => break,
                },
                frame = self.framed.next() => match frame {
                    Some(Ok(frame)) => {
                        if let Some(mut answer) = self.handle(&frame.payload).await {
                            self.shared.with(|t| t.authenticate_status(&mut answer)).await;
                            match answer.encode(&self.dialect) {
                                Ok(bytes) => {
                                    if !self.write(bytes).await {
                                        break;
                                    }
                                }
                                Err(e) => tracing::error!(error = %e, "cannot encode an answer"),
                            }
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "bad frame from the agent; closing");
                        break;
                    }
                    None => {
                        tracing::info!("the agent closed the connection");
                        break;
                    }
                },
            }
        }
        self.shared
            .with(|t| {
                t.connected = false;
                t.awaiting = None;
            })
            .await;
    }

    async fn write(&mut self, payload: Vec<u8>) -> bool {
        let frame = Frame {
            header: self.header.clone(),
            payload: payload.into(),
        };
        match self.framed.send(frame).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot write to the agent; closing");
                false
            }
        }
    }

    /// The answer to one host message, if it gets one now.
    async fn handle(&self, payload: &[u8]) -> Option<TerminalMessage> {
        let msg = match HostMessage::parse(payload, &self.dialect) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "host message does not parse; command reject");
                return Some(
                    self.shared
                        .with(|t| {
                            t.command_rejected();
                            messages::reject(&t.luno, &t.dialect, reason::BAD_COMMAND)
                        })
                        .await,
                );
            }
        };
        match msg {
            HostMessage::TerminalCommand(c) => Some(
                self.shared
                    .with(|t| commands::terminal_command(t, &c))
                    .await,
            ),
            HostMessage::DataCommand(c) => {
                Some(self.shared.with(|t| commands::data_command(t, &c)).await)
            }
            HostMessage::TransactionReply(r) => self.reply(r).await,
            // The simulated terminal keeps no electronic journal to upload: an EJ command needs
            // no answer.
            HostMessage::Journal(_) => None,
            // No EMV kernel here, and nothing else is understood: rejected like a bad command.
            HostMessage::EmvConfiguration(_) | HostMessage::Unknown(_) => Some(
                self.shared
                    .with(|t| {
                        t.command_rejected();
                        messages::reject(&t.luno, &t.dialect, reason::BAD_COMMAND)
                    })
                    .await,
            ),
        }
    }

    /// Hands a reply to the waiting session, or rejects it.
    async fn reply(&self, r: TransactionReply) -> Option<TerminalMessage> {
        let tx = &self.reply_tx;
        self.shared
            .with(|t| {
                if r.luno != t.luno {
                    tracing::warn!(luno = %r.luno, "transaction reply for another LUNO");
                    t.command_rejected();
                    return Some(messages::reject(&t.luno, &t.dialect, reason::BAD_COMMAND));
                }
                if t.awaiting.is_some() {
                    match tx.try_send(r) {
                        Ok(()) => {
                            t.awaiting = None;
                            return None;
                        }
                        Err(
                            mpsc::error::TrySendError::Full(r)
                            | mpsc::error::TrySendError::Closed(r),
                        ) => {
                            return Some(late_reply(t, &r));
                        }
                    }
                }
                Some(late_reply(t, &r))
            })
            .await
    }
}

/// A reply nobody waits for (after the host reply timer, or never asked for): rejected, and it
/// becomes the last transaction status (`3`, reply rejected) the next request reports.
pub(crate) fn late_reply(t: &mut Terminal, r: &TransactionReply) -> TerminalMessage {
    tracing::warn!(tsn = r.tsn, mcn = %r.mcn, "transaction reply not awaited; rejected");
    t.command_rejected();
    t.reply_rejected(r.tsn);
    messages::reject(&t.luno, &t.dialect, reason::NOT_AWAITING_REPLY)
}
