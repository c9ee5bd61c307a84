//! The connections to one bank host: each is a task that connects (TCP, or TLS), signs on with
//! an 0800/001, checks an idle line with 0800/301 echoes, matches answers to requests by response
//! MTI + field 41 + field 11, and reconnects with exponential backoff and jitter when the line
//! drops. A request is only ever written on a signed-on connection; when none is, the caller
//! learns it before anything left (a safe decline), not after.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use protocols::framing::{Frame, FrameCodec, LengthPrefix};
use protocols::iso8583::{Message, Spec};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::Framed;

use super::messages::{self, MatchKey};
use super::traces::Traces;

/// Why a message got no answer on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// Nothing was written: no connection is signed on.
    NotConnected(String),
    /// Written, then the connection dropped before the answer.
    Lost(String),
    /// Written, no answer in time.
    Timeout,
    /// The message cannot be packed with the host's spec (nothing was written).
    Pack(String),
}

/// How a link task is set up.
#[derive(Clone)]
pub struct LinkSettings {
    pub host: String,
    pub address: String,
    pub spec: Arc<Spec>,
    pub prefix: LengthPrefix,
    pub tls: Option<(
        tokio_rustls::TlsConnector,
        tokio_rustls::rustls::pki_types::ServerName<'static>,
    )>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub echo_interval: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

struct Outgoing {
    msg: Message,
    reply: oneshot::Sender<Result<Message, LinkError>>,
}

/// One connection's handle.
struct Link {
    up: AtomicBool,
    tx: mpsc::Sender<Outgoing>,
}

/// The connections to one host.
pub struct Pool {
    links: Vec<Arc<Link>>,
    next: AtomicUsize,
    timeout: Duration,
    host: String,
}

impl Pool {
    /// Starts `connections` link tasks; they run until `shutdown`.
    pub fn start(
        settings: LinkSettings,
        connections: usize,
        traces: Arc<Traces>,
        shutdown: watch::Receiver<bool>,
    ) -> (Arc<Pool>, Vec<tokio::task::JoinHandle<()>>) {
        let mut links = Vec::new();
        let mut tasks = Vec::new();
        for n in 0..connections {
            let (tx, rx) = mpsc::channel(256);
            let link = Arc::new(Link {
                up: AtomicBool::new(false),
                tx,
            });
            links.push(link.clone());
            tasks.push(tokio::spawn(run_link(
                n,
                settings.clone(),
                link,
                rx,
                traces.clone(),
                shutdown.clone(),
            )));
        }
        (
            Arc::new(Pool {
                links,
                next: AtomicUsize::new(0),
                timeout: settings.timeout,
                host: settings.host,
            }),
            tasks,
        )
    }

    /// Whether at least one connection is signed on.
    pub fn is_up(&self) -> bool {
        self.links.iter().any(|l| l.up.load(Ordering::Relaxed))
    }

    /// Sends `msg` on a signed-on connection (round robin) and waits for its answer.
    pub async fn exchange(&self, msg: Message) -> Result<Message, LinkError> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.links.len();
        let link = (0..n)
            .map(|i| &self.links[(start + i) % n])
            .find(|l| l.up.load(Ordering::Relaxed))
            .ok_or_else(|| LinkError::NotConnected(format!("{} is not signed on", self.host)))?;
        let (reply, answer) = oneshot::channel();
        link.tx
            .send(Outgoing { msg, reply })
            .await
            .map_err(|_| LinkError::NotConnected("link task stopped".into()))?;
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(Ok(result)) => result,
            // The link task dropped the request: the connection went down. Whether it was written
            // is not known here, so it counts as lost (the outcome is unknown).
            Ok(Err(_)) => Err(LinkError::Lost("connection closed".into())),
            Err(_) => Err(LinkError::Timeout),
        }
    }
}

async fn connect(s: &LinkSettings) -> Result<Box<dyn Stream>, String> {
    let tcp = tokio::time::timeout(s.connect_timeout, TcpStream::connect(&s.address))
        .await
        .map_err(|_| format!("connect timed out after {:?}", s.connect_timeout))?
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    match &s.tls {
        None => Ok(Box::new(tcp)),
        Some((connector, name)) => {
            let tls = tokio::time::timeout(s.connect_timeout, connector.connect(name.clone(), tcp))
                .await
                .map_err(|_| "TLS handshake timed out".to_owned())?
                .map_err(|e| format!("TLS handshake: {e}"))?;
            Ok(Box::new(tls))
        }
    }
}

async fn run_link(
    n: usize,
    s: LinkSettings,
    link: Arc<Link>,
    mut rx: mpsc::Receiver<Outgoing>,
    traces: Arc<Traces>,
    mut shutdown: watch::Receiver<bool>,
) {
    let new_backoff = || super::retry_backoff(s.retry_min, s.retry_max);
    let mut backoff = new_backoff();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let outcome = match connect(&s).await {
            Ok(stream) => {
                let framed = Framed::new(stream, FrameCodec::new(s.prefix));
                session(
                    n,
                    &s,
                    &link,
                    &mut rx,
                    &traces,
                    framed,
                    &mut shutdown,
                    &mut backoff,
                    new_backoff,
                )
                .await
            }
            Err(e) => Err(e),
        };
        link.up.store(false, Ordering::Relaxed);
        match outcome {
            Ok(()) => return,
            Err(reason) => {
                let wait = backoff.next().unwrap_or(s.retry_max);
                tracing::warn!(host = %s.host, link = n, address = %s.address, %reason, retry_in_ms = wait.as_millis() as u64, "bank host link down");
                // Requests queued meanwhile are refused at once: nothing was written.
                while let Ok(out) = rx.try_recv() {
                    let _ = out.reply.send(Err(LinkError::NotConnected(reason.clone())));
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

type Pending = HashMap<MatchKey, oneshot::Sender<Result<Message, LinkError>>>;

/// One connected session: sign-on, then requests, answers and echoes until the line fails
/// (`Err(reason)`) or the switch shuts down (`Ok`).
#[allow(clippy::too_many_arguments)]
async fn session<B: Iterator<Item = Duration>>(
    n: usize,
    s: &LinkSettings,
    link: &Link,
    rx: &mut mpsc::Receiver<Outgoing>,
    traces: &Traces,
    mut framed: Framed<Box<dyn Stream>, FrameCodec>,
    shutdown: &mut watch::Receiver<bool>,
    backoff: &mut B,
    new_backoff: impl Fn() -> B,
) -> Result<(), String> {
    let pending: Mutex<Pending> = Mutex::new(HashMap::new());
    // Sign-on, answered before anything else is sent.
    let sign_on = network_message(traces, 1)?;
    write(&mut framed, &s.spec, &sign_on).await?;
    let answer = tokio::time::timeout(s.timeout, read_until(&mut framed, &s.spec, &sign_on))
        .await
        .map_err(|_| format!("no answer to the sign-on within {:?}", s.timeout))??;
    match answer.response_code() {
        Ok(Some("00")) => {}
        other => return Err(format!("sign-on refused: {other:?}")),
    }
    link.up.store(true, Ordering::Relaxed);
    *backoff = new_backoff();
    tracing::info!(host = %s.host, link = n, address = %s.address, "bank host link signed on");

    let mut echo_due = tokio::time::Instant::now() + s.echo_interval;
    let mut echo_sent: Option<(MatchKey, tokio::time::Instant)> = None;
    let fail_all = |pending: &Mutex<Pending>, reason: &str| {
        let drained: Vec<_> = pending
            .lock()
            .map(|mut p| p.drain().map(|(_, v)| v).collect())
            .unwrap_or_default();
        for reply in drained {
            let _ = reply.send(Err(LinkError::Lost(reason.to_owned())));
        }
    };
    loop {
        let echo_timer = match &echo_sent {
            Some((_, sent)) => *sent + s.timeout,
            None => echo_due,
        };
        tokio::select! {
            out = rx.recv() => {
                let Some(out) = out else { return Ok(()) };
                let key = messages::request_match_key(&out.msg);
                let bytes = match s.spec.pack(&out.msg) {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = out.reply.send(Err(LinkError::Pack(e.to_string())));
                        continue;
                    }
                };
                if let Ok(mut p) = pending.lock() {
                    if p.len() > 1024 {
                        p.retain(|_, reply| !reply.is_closed());
                    }
                    p.insert(key, out.reply);
                }
                if let Err(e) = framed.send(Frame::payload(Bytes::from(bytes))).await {
                    let reason = format!("write: {e}");
                    fail_all(&pending, &reason);
                    return Err(reason);
                }
                echo_due = tokio::time::Instant::now() + s.echo_interval;
            }
            frame = framed.next() => {
                let frame = match frame {
                    Some(Ok(f)) => f,
                    Some(Err(e)) => {
                        let reason = format!("read: {e}");
                        fail_all(&pending, &reason);
                        return Err(reason);
                    }
                    None => {
                        fail_all(&pending, "closed by the host");
                        return Err("closed by the host".into());
                    }
                };
                let msg = match s.spec.unpack(&frame.payload) {
                    Ok(m) => m,
                    Err(e) => {
                        // Out of sync with the host's dialect: drop the line, the answers
                        // outstanding are unknown outcomes.
                        let reason = format!("unreadable message from the host: {e}");
                        fail_all(&pending, &reason);
                        return Err(reason);
                    }
                };
                let key = messages::response_match_key(&msg);
                if echo_sent.as_ref().is_some_and(|(k, _)| *k == key) {
                    echo_sent = None;
                    echo_due = tokio::time::Instant::now() + s.echo_interval;
                    continue;
                }
                let waiter = pending.lock().ok().and_then(|mut p| p.remove(&key));
                match waiter {
                    Some(reply) => {
                        if reply.send(Ok(msg)).is_err() {
                            tracing::warn!(host = %s.host, mti = %key.0, terminal = %key.1, stan = %key.2, "late answer from the bank host (its request timed out): logged, not applied");
                        }
                    }
                    None if msg.mti().is_response() => {
                        tracing::warn!(host = %s.host, mti = %key.0, terminal = %key.1, stan = %key.2, "answer from the bank host matches no request in flight: logged, not applied");
                    }
                    None => {
                        // The host asks us something (its own echo, a sign-on): answer network
                        // management, refuse the rest.
                        let mut resp = Message::response_to(&msg);
                        let code = if msg.mti().as_str() == "0800" { "00" } else { "12" };
                        let _ = resp.set_str(39, code);
                        write(&mut framed, &s.spec, &resp).await?;
                    }
                }
            }
            _ = tokio::time::sleep_until(echo_timer) => {
                if echo_sent.is_some() {
                    let reason = format!("no answer to an echo within {:?}", s.timeout);
                    fail_all(&pending, &reason);
                    return Err(reason);
                }
                let echo = network_message(traces, 301)?;
                echo_sent = Some((messages::request_match_key(&echo), tokio::time::Instant::now()));
                write(&mut framed, &s.spec, &echo).await?;
            }
            _ = shutdown.changed() => {
                if let Ok(sign_off) = network_message(traces, 2) {
                    let _ = write(&mut framed, &s.spec, &sign_off).await;
                }
                fail_all(&pending, "switch shutting down");
                return Ok(());
            }
        }
    }
}

fn network_message(traces: &Traces, code: u16) -> Result<Message, String> {
    let (stan, at) = traces.next_stan().map_err(|e| e.to_string())?;
    messages::network(code, stan, &at).map_err(|e| e.to_string())
}

async fn write(
    framed: &mut Framed<Box<dyn Stream>, FrameCodec>,
    spec: &Spec,
    msg: &Message,
) -> Result<(), String> {
    let bytes = spec.pack(msg).map_err(|e| format!("pack: {e}"))?;
    framed
        .send(Frame::payload(Bytes::from(bytes)))
        .await
        .map_err(|e| format!("write: {e}"))
}

/// Reads until the answer to `request` arrives (used for the sign-on, before anything else).
async fn read_until(
    framed: &mut Framed<Box<dyn Stream>, FrameCodec>,
    spec: &Spec,
    request: &Message,
) -> Result<Message, String> {
    let want = messages::request_match_key(request);
    loop {
        let frame = framed
            .next()
            .await
            .ok_or("closed by the host")?
            .map_err(|e| format!("read: {e}"))?;
        let msg = spec
            .unpack(&frame.payload)
            .map_err(|e| format!("unreadable message from the host: {e}"))?;
        if messages::response_match_key(&msg) == want {
            return Ok(msg);
        }
    }
}
