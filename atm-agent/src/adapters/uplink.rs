//! The uplink: one ISO 8583 connection to the switch (mutual TLS, 2-byte length framing),
//! shared by every terminal of this agent.
//!
//! - Connects, signs on (0800/001), echoes (0800/301) on an interval, and on any failure
//!   reconnects with exponential backoff and jitter (`backon`).
//! - Requests are multiplexed: each waits for the response with the same MTI class, terminal id
//!   (41) and STAN (11), with a timeout. A response that matches nothing in flight (it came after
//!   its timeout) is logged and handed to the late-response channel, never dropped silently.
//! - [`LinkError`] tells the caller whether the request may have reached the switch: `Down`
//!   means it was never sent; `Lost` and `Timeout` mean the switch may have acted on it, so a
//!   withdrawal in that state must be reversed.
//! - It is the agent's [`SwitchLink`]: typed requests in, typed answers out, written as ISO 8583
//!   by `switch_messages` (the only module that knows field numbers).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use protocols::framing::FrameCodec;
use protocols::iso8583::{Message, Mti, Spec};
use protocols::types::{Pan, Stan};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::Framed;

use super::switch_messages as dialect;
use crate::domain::advice::Advice;
use crate::domain::exchange::{CardRequest, ResponseCode, SwitchAnswer, ZonePinKeyDelivery};
use crate::ports::{LinkError, SwitchLink};
use protocols::dialect::NetworkCode;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// The switch's acquirer endpoint, `host:port`.
    pub address: String,
    /// The name the switch's certificate must carry (default `localhost`).
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// `false` only in the lab, against a switch in plain mode: refused unless `address` is a
    /// loopback address and there is no `[keys]` section (no PIN block may cross in clear).
    #[serde(default = "default_true")]
    pub tls: bool,
    /// Certificate revocation list(s) of the switch's CA, PEM (optional; `tls = true` only). A
    /// switch certificate listed is refused at the handshake, and so is one whose CA has no CRL
    /// in the file. Read at start: a new CRL takes a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_crl: Option<std::path::PathBuf>,
    #[serde(default = "default_echo_ms")]
    pub echo_interval_ms: u64,
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_backoff_min_ms")]
    pub backoff_min_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Requests outstanding on the connection at once.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
}

fn default_server_name() -> String {
    "localhost".into()
}
fn default_true() -> bool {
    true
}
fn default_echo_ms() -> u64 {
    30_000
}
fn default_connect_ms() -> u64 {
    5_000
}
fn default_backoff_min_ms() -> u64 {
    200
}
fn default_backoff_max_ms() -> u64 {
    30_000
}
fn default_in_flight() -> usize {
    1024
}

/// How a response finds its request: response MTI class, terminal id, STAN.
type MatchKey = (String, String, String);

fn match_key(response_mti: Mti, msg: &Message) -> MatchKey {
    (
        response_mti.as_str().to_owned(),
        msg.get_str(41).unwrap_or("").trim_end().to_owned(),
        msg.get_str(11).unwrap_or("").to_owned(),
    )
}

/// The response class of a request MTI: repeats (0221, 0421) are answered like their first send.
fn response_class(request: Mti) -> Mti {
    let r = request.response();
    match r.as_str() {
        "0231" => Mti::parse("0230").unwrap_or(r),
        "0431" => Mti::parse("0430").unwrap_or(r),
        _ => r,
    }
}

struct Shared {
    outbox: Mutex<Option<mpsc::Sender<Bytes>>>,
    pending: Mutex<HashMap<MatchKey, oneshot::Sender<Message>>>,
    up: watch::Sender<bool>,
    late: mpsc::Sender<Message>,
    echo_stan: AtomicU32,
    /// The zone PIN key version the switch announces in field 53 of its 0810s.
    zone_key: watch::Sender<Option<u32>>,
    /// The card ranges whose deposits may be taken offline (field 63 of its 0810s).
    offline_deposits: Mutex<Option<protocols::dialect::OfflineDeposits>>,
}

/// A handle to the uplink; cheap to clone.
#[derive(Clone)]
pub struct Uplink {
    shared: Arc<Shared>,
}

/// Opens streams to the switch: TLS with the agent's client certificate, or plain TCP.
#[derive(Clone)]
pub struct Connector {
    pub address: String,
    pub server_name: String,
    pub tls: Option<Arc<mtls::rustls::ClientConfig>>,
    pub connect_timeout: Duration,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl Connector {
    async fn connect(&self) -> Result<Box<dyn Stream>, String> {
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.address))
            .await
            .map_err(|_| format!("connect to {} timed out", self.address))?
            .map_err(|e| format!("connect to {}: {e}", self.address))?;
        let _ = tcp.set_nodelay(true);
        let Some(cfg) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let name = mtls::server_name(&self.server_name).map_err(|e| e.to_string())?;
        let tls = tokio::time::timeout(
            self.connect_timeout,
            mtls::TlsConnector::from(cfg.clone()).connect(name, tcp),
        )
        .await
        .map_err(|_| "TLS handshake timed out".to_owned())?
        .map_err(|e| format!("TLS handshake: {e}"))?;
        Ok(Box::new(tls))
    }
}

impl Uplink {
    /// Starts the connection manager. Late responses arrive on the returned receiver.
    pub fn start(
        config: &UplinkConfig,
        connector: Connector,
        shutdown: watch::Receiver<bool>,
    ) -> (Uplink, mpsc::Receiver<Message>) {
        let (up, _) = watch::channel(false);
        let (late, late_rx) = mpsc::channel(256);
        let shared = Arc::new(Shared {
            outbox: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
            up,
            late,
            echo_stan: AtomicU32::new(0),
            zone_key: watch::channel(None).0,
            offline_deposits: Mutex::new(None),
        });
        let uplink = Uplink { shared };
        tokio::spawn(uplink.clone().manage(config.clone(), connector, shutdown));
        (uplink, late_rx)
    }

    pub fn is_up(&self) -> bool {
        *self.shared.up.borrow()
    }

    /// Watches the link state (true = signed on).
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.shared.up.subscribe()
    }

    /// Watches the zone PIN key version the switch announces at sign-on and in echoes.
    pub fn announced_zone_key(&self) -> watch::Receiver<Option<u32>> {
        self.shared.zone_key.subscribe()
    }

    /// Sends `msg` and waits for its response.
    pub async fn request(&self, msg: &Message, timeout: Duration) -> Result<Message, LinkError> {
        let bytes = Spec::iso87_ascii()
            .pack(msg)
            .map_err(|e| LinkError::Encode(Box::new(e)))?;
        let key = match_key(response_class(msg.mti()), msg);
        let (tx, rx) = oneshot::channel();
        let sender = {
            let outbox = self.shared.outbox.lock().map_err(|_| LinkError::Down)?;
            outbox.clone().ok_or(LinkError::Down)?
        };
        {
            let mut pending = self.shared.pending.lock().map_err(|_| LinkError::Down)?;
            if pending.contains_key(&key) {
                return Err(LinkError::InFlight(format!("{key:?}")));
            }
            pending.insert(key.clone(), tx);
        }
        // One deadline for queuing and answering: a writer stuck on a dead socket fills the
        // outbox, and waiting for room without a bound would hang every caller (the forwarder).
        let deadline = tokio::time::Instant::now() + timeout;
        match tokio::time::timeout_at(deadline, sender.send(Bytes::from(bytes))).await {
            Ok(Ok(())) => {}
            // Never queued, so never sent.
            Ok(Err(_)) | Err(_) => {
                self.forget(&key);
                return Err(LinkError::Down);
            }
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(_)) => Err(LinkError::Lost),
            Err(_) => {
                self.forget(&key);
                Err(LinkError::Timeout(timeout.as_millis() as u64))
            }
        }
    }

    fn forget(&self, key: &MatchKey) {
        if let Ok(mut p) = self.shared.pending.lock() {
            p.remove(key);
        }
    }

    fn deliver(&self, resp: Message) {
        let key = match_key(resp.mti(), &resp);
        let waiter = self
            .shared
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(&key));
        match waiter {
            Some(tx) => {
                let _ = tx.send(resp);
            }
            None => {
                tracing::warn!(mti = %resp.mti(), terminal = %key.1, stan = %key.2, code = resp.get_str(39).unwrap_or(""), "late or unmatched response from the switch");
                if self.shared.late.try_send(resp).is_err() {
                    tracing::error!("late-response channel full: response logged above");
                }
            }
        }
    }

    async fn manage(
        self,
        config: UplinkConfig,
        connector: Connector,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let new_backoff = || {
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(config.backoff_min_ms))
                .with_max_delay(Duration::from_millis(config.backoff_max_ms))
                .with_jitter()
                .without_max_times()
                .build()
        };
        let mut backoff = new_backoff();
        loop {
            if *shutdown.borrow() {
                return;
            }
            match connector.connect().await {
                Ok(stream) => {
                    let signed_on = self.session(stream, &config, &mut shutdown).await;
                    if signed_on {
                        backoff = new_backoff();
                    }
                }
                Err(e) => tracing::warn!(error = %e, "switch unreachable"),
            }
            let delay = backoff
                .next()
                .unwrap_or(Duration::from_millis(config.backoff_max_ms));
            tracing::info!(
                delay_ms = delay.as_millis() as u64,
                "reconnecting to the switch"
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Runs one connection until it fails. Returns whether sign-on succeeded.
    async fn session(
        &self,
        stream: Box<dyn Stream>,
        config: &UplinkConfig,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let (mut sink, mut frames) = Framed::new(stream, FrameCodec::default()).split();
        let (tx, mut rx) = mpsc::channel::<Bytes>(config.max_in_flight);
        let writer = tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if sink.send(b).await.is_err() {
                    break;
                }
            }
        });
        if let Ok(mut o) = self.shared.outbox.lock() {
            *o = Some(tx);
        }
        let reader = {
            let this = self.clone();
            tokio::spawn(async move {
                while let Some(frame) = frames.next().await {
                    match frame {
                        Ok(f) => match Spec::iso87_ascii().unpack(&f.payload) {
                            Ok(m) => this.deliver(m),
                            Err(e) => {
                                tracing::warn!(error = %e, "malformed message from the switch")
                            }
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "framing error from the switch: closing");
                            break;
                        }
                    }
                }
            })
        };
        let signed_on = match self.network_management(NetworkCode::SignOn).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "sign-on refused");
                false
            }
        };
        if signed_on {
            tracing::info!(switch = %config.address, "signed on to the switch");
            self.shared.up.send_replace(true);
            let mut echo =
                tokio::time::interval(Duration::from_millis(config.echo_interval_ms.max(100)));
            echo.tick().await;
            let mut reader = reader;
            loop {
                tokio::select! {
                    _ = &mut reader => break,
                    _ = shutdown.changed() => {
                        let _ = self.network_management(NetworkCode::SignOff).await;
                        break;
                    }
                    _ = echo.tick() => {
                        if let Err(e) = self.network_management(NetworkCode::Echo).await {
                            tracing::warn!(error = %e, "echo failed: reconnecting");
                            break;
                        }
                    }
                }
            }
            reader.abort();
        } else {
            reader.abort();
        }
        self.shared.up.send_replace(false);
        if let Ok(mut o) = self.shared.outbox.lock() {
            *o = None;
        }
        // Everything still waiting was sent on this connection: its fate is unknown.
        if let Ok(mut p) = self.shared.pending.lock() {
            p.clear();
        }
        writer.abort();
        tracing::warn!("link to the switch is down");
        signed_on
    }

    async fn network_management(&self, code: NetworkCode) -> Result<(), LinkError> {
        let resp = self.network_request(code).await?;
        match dialect::response_code(&resp)? {
            ResponseCode::Approved => {
                if let Some(ranges) = dialect::offline_deposits(&resp) {
                    if let Ok(mut known) = self.shared.offline_deposits.lock() {
                        if known.as_ref() != Some(&ranges) {
                            tracing::info!(ranges = %ranges.to_field(), "card ranges whose deposits may be taken offline");
                        }
                        *known = Some(ranges);
                    }
                }
                if let Some(v) = dialect::announced_zone_key(&resp) {
                    self.shared.zone_key.send_if_modified(|k| {
                        let changed = *k != Some(v);
                        *k = Some(v);
                        changed
                    });
                }
                Ok(())
            }
            other => Err(LinkError::Answer(format!(
                "network management {code} answered {other}"
            ))),
        }
    }

    /// Sends an 0800 with network management code `code` (field 70) and returns the 0810.
    pub async fn network_request(&self, code: NetworkCode) -> Result<Message, LinkError> {
        let stan = self.shared.echo_stan.fetch_add(1, Ordering::Relaxed) % Stan::MAX + 1;
        let stan = Stan::new(stan).map_err(|e| LinkError::Encode(Box::new(e)))?;
        let m = dialect::network_request(code, stan, crate::clock::transmission_date_time_now())?;
        self.request(&m, Duration::from_secs(10)).await
    }
}

impl SwitchLink for Uplink {
    fn is_up(&self) -> bool {
        Uplink::is_up(self)
    }

    fn link_state(&self) -> watch::Receiver<bool> {
        self.watch()
    }

    async fn request(
        &self,
        request: &CardRequest,
        timeout: Duration,
    ) -> Result<SwitchAnswer, LinkError> {
        let msg = dialect::card_request(request)?;
        let resp = Uplink::request(self, &msg, timeout).await?;
        dialect::card_answer(&resp)
    }

    async fn advise(
        &self,
        advice: &Advice,
        repeat: bool,
        card: Option<&Pan>,
        timeout: Duration,
    ) -> Result<ResponseCode, LinkError> {
        let msg = dialect::advice(advice, repeat, card)?;
        let resp = Uplink::request(self, &msg, timeout).await?;
        dialect::response_code(&resp)
    }

    fn announced_zone_key(&self) -> watch::Receiver<Option<u32>> {
        Uplink::announced_zone_key(self)
    }

    fn takes_deposit_offline(&self, pan: &Pan) -> bool {
        self.shared
            .offline_deposits
            .lock()
            .map(|known| known.as_ref().is_some_and(|r| r.accepts(pan)))
            .unwrap_or(false)
    }

    async fn zone_pin_key(&self) -> Result<ZonePinKeyDelivery, LinkError> {
        let resp = self.network_request(NetworkCode::KeyChange).await?;
        dialect::zone_pin_key_delivery(&resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uplink_with_outbox(outbox: mpsc::Sender<Bytes>) -> Uplink {
        Uplink {
            shared: Arc::new(Shared {
                outbox: Mutex::new(Some(outbox)),
                pending: Mutex::new(HashMap::new()),
                up: watch::channel(true).0,
                late: mpsc::channel(1).0,
                echo_stan: AtomicU32::new(0),
                zone_key: watch::channel(None).0,
                offline_deposits: Mutex::new(None),
            }),
        }
    }

    #[tokio::test]
    async fn a_full_outbox_is_a_request_not_sent_within_the_timeout_never_a_hang() {
        // The connection's writer is stuck (a dead socket): nobody drains the outbox.
        let (tx, _stuck_writer) = mpsc::channel::<Bytes>(1);
        tx.try_send(Bytes::from_static(b"queued before")).unwrap();
        let uplink = uplink_with_outbox(tx);
        let echo = dialect::network_request(
            NetworkCode::Echo,
            Stan::new(1).unwrap(),
            crate::clock::transmission_date_time_now(),
        )
        .unwrap();
        let outcome = tokio::time::timeout(
            Duration::from_secs(5),
            uplink.request(&echo, Duration::from_millis(50)),
        )
        .await
        .expect("the request returns within its own timeout");
        assert!(matches!(outcome, Err(LinkError::Down)), "{outcome:?}");
        assert!(
            uplink.shared.pending.lock().unwrap().is_empty(),
            "nothing left waiting"
        );
    }
}
