//! Where ATMs connect: TCP listeners, one session per connection, one session per terminal.
//!
//! NDC itself authenticates nothing: whoever reaches the port and sends a terminal's LUNO would
//! speak for that terminal (take its customers' transactions, its PIN key loads). So a connection
//! is identified by where it comes from, before it says a word:
//! - a terminal with a listen port of its own (`[[terminals]] listen`): whoever connects there
//!   is that terminal (from its `address`, when given);
//! - on the shared port (`ndc.listen`): the one terminal bound to the peer's address
//!   (`[[terminals]] address`).
//!
//! Identified that way, the session starts at once and the agent leads (it asks for the
//! configuration id; `app::session`). When several terminals share the address (a NAT, a range),
//! or none is bound to it but some are configured with `any_address = true`, the LUNO of the
//! first message picks among those candidates. A LUNO claimed from an address or port not bound
//! to it is refused: the connection is closed and the claim logged on the `security` target with
//! the peer's address; the session goes on checking the LUNO of every later message.
//!
//! A new connection of a terminal that has a session replaces it (the old is closed between
//! customers; logged). At most `ndc.max_connections` connections are open at once; one beyond
//! that is closed at once (logged).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use firmware_profiles::Profile;
use futures::StreamExt;
use protocols::framing::{Frame, FrameCodec};
use protocols::types::TerminalId;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio_util::codec::Framed;
use tracing::Instrument;

use crate::app::session::Session;
use crate::app::Services;
use crate::config::TerminalConfig;
use crate::ports::{AdviceQueue, SwitchLink, TerminalStore};

/// Time a connection identified only by its LUNO has to send its first message.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections accepted but not yet handed to a session (bounded: accepting waits beyond it).
const ACCEPT_BACKLOG: usize = 64;

/// Which listener a connection came in on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Port {
    /// `ndc.listen`, shared by the terminals without a port of their own.
    Shared,
    /// The `listen` port of the terminal with this id.
    Terminal(String),
}

pub struct NdcServer<L, S, Q> {
    svc: Arc<Services<L, S, Q>>,
    /// Every configured terminal and its profile.
    terminals: Vec<(TerminalConfig, Profile)>,
    codec: FrameCodec,
    connections: Arc<Semaphore>,
    max_connections: usize,
}

/// A connection known to be a terminal's.
struct Identified {
    terminal: TerminalConfig,
    profile: Profile,
    /// The first message, when the LUNO in it is what identified the terminal.
    first: Option<Frame>,
    how: &'static str,
}

impl<L: SwitchLink, S: TerminalStore, Q: AdviceQueue> NdcServer<L, S, Q> {
    pub fn new(
        svc: Arc<Services<L, S, Q>>,
        terminals: Vec<(TerminalConfig, Profile)>,
        codec: FrameCodec,
        max_connections: usize,
    ) -> Arc<Self> {
        for (t, _) in &terminals {
            if t.any_address {
                tracing::warn!(target: "security", terminal = %t.terminal_id, luno = %t.luno, "terminal accepted from ANY address (any_address = true): whoever reaches the NDC port can speak for it");
            }
        }
        let max_connections = max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Self {
            svc,
            terminals,
            codec,
            connections: Arc::new(Semaphore::new(max_connections)),
            max_connections,
        })
    }

    /// Accepts terminals on every listener until `shutdown` turns true; then stops accepting and
    /// waits for every session to end, which each does once no customer is in flight (the caller
    /// bounds the wait; sessions still running when it gives up are aborted with this future).
    pub async fn run(
        self: Arc<Self>,
        listeners: Vec<(TcpListener, Port)>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let (accepted_tx, mut accepted) = mpsc::channel(ACCEPT_BACKLOG);
        let mut acceptors = JoinSet::new();
        for (listener, port) in listeners {
            acceptors.spawn(accept(listener, port, accepted_tx.clone()));
        }
        drop(accepted_tx);
        let mut sessions = JoinSet::new();
        loop {
            while sessions.try_join_next().is_some() {}
            let (stream, peer, port) = tokio::select! {
                a = accepted.recv() => match a {
                    Some(a) => a,
                    None => break,
                },
                _ = shutdown.changed() => break,
            };
            let Ok(permit) = self.connections.clone().try_acquire_owned() else {
                tracing::warn!(%peer, max_connections = self.max_connections, "too many terminal connections (ndc.max_connections): connection closed");
                drop(stream);
                continue;
            };
            let this = self.clone();
            let stop = shutdown.clone();
            sessions.spawn(
                async move {
                    this.connection(stream, peer, port, stop).await;
                    drop(permit);
                }
                .instrument(tracing::info_span!("atm", %peer)),
            );
        }
        acceptors.abort_all();
        drop(accepted);
        if !sessions.is_empty() {
            tracing::info!(
                sessions = sessions.len(),
                "stopped accepting terminals; ending sessions once their customers are served"
            );
        }
        while sessions.join_next().await.is_some() {}
    }

    async fn connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        port: Port,
        mut stop: watch::Receiver<bool>,
    ) {
        let _ = stream.set_nodelay(true);
        let mut framed = Framed::new(stream, self.codec.clone());
        let identified = tokio::select! {
            i = self.identify(&mut framed, peer, &port) => i,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Some(Identified {
            terminal,
            profile,
            first,
            how,
        }) = identified
        else {
            return;
        };
        let terminal_id = match TerminalId::parse(&terminal.terminal_id) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, luno = %terminal.luno, "terminal id not usable: closing");
                return;
            }
        };
        tracing::info!(terminal = %terminal.terminal_id, luno = %terminal.luno, %peer, by = how, "terminal connected");
        let (tx, rx) = mpsc::channel(8);
        let (session, replaced) =
            self.svc
                .registry
                .attach(&terminal.terminal_id, tx, &peer.to_string());
        let tid = terminal.terminal_id.clone();
        let end = Session::new(self.svc.clone(), framed, terminal, terminal_id, profile, rx)
            .stop_on(stop)
            .attached(session, replaced)
            .run(first)
            .await;
        tracing::info!(terminal = %tid, reason = %end, "terminal session ended");
    }

    /// Which terminal a connection is, or `None` (logged) when it is none the agent serves
    /// from there.
    async fn identify(
        &self,
        framed: &mut Framed<TcpStream, FrameCodec>,
        peer: SocketAddr,
        port: &Port,
    ) -> Option<Identified> {
        let identified = |(t, p): &(TerminalConfig, Profile), first, how| Identified {
            terminal: t.clone(),
            profile: p.clone(),
            first,
            how,
        };
        if let Port::Terminal(id) = port {
            let entry = self.terminals.iter().find(|(t, _)| &t.terminal_id == id)?;
            let t = &entry.0;
            if !t.address.is_empty() && !t.address_matches(peer.ip()) {
                tracing::warn!(target: "security", terminal = %t.terminal_id, luno = %t.luno, %peer, allowed = %t.address, "connection to a terminal's own port from an address it is not bound to: refused");
                return None;
            }
            return Some(identified(entry, None, "port"));
        }
        let shared: Vec<&(TerminalConfig, Profile)> = self
            .terminals
            .iter()
            .filter(|(t, _)| t.listen.is_none())
            .collect();
        let by_address: Vec<&&(TerminalConfig, Profile)> = shared
            .iter()
            .filter(|(t, _)| t.address_matches(peer.ip()))
            .collect();
        if let [one] = by_address.as_slice() {
            return Some(identified(one, None, "address"));
        }
        if by_address.is_empty() && !shared.iter().any(|(t, _)| t.any_address) {
            tracing::warn!(target: "security", %peer, "connection from an address no terminal is bound to: closed");
            return None;
        }
        // Several terminals share the address, or only `any_address` terminals may be it: the
        // LUNO of the first message picks among them.
        let first = self.first_frame(framed).await?;
        let luno = luno_of(&first.payload);
        let Some(entry) = self.terminals.iter().find(|(t, _)| t.luno == luno) else {
            tracing::warn!(luno = %luno, %peer, "unknown LUNO: closing the connection");
            return None;
        };
        let t = &entry.0;
        let allowed = t.listen.is_none() && (t.any_address || t.address_matches(peer.ip()));
        if !allowed {
            let allowed = match t.listen {
                Some(own) => format!("its own port {own}"),
                None => t.address.to_string(),
            };
            tracing::warn!(target: "security", terminal = %t.terminal_id, luno = %luno, %peer, %allowed, "terminal claimed from an address or port it is not bound to: connection refused");
            return None;
        }
        Some(identified(entry, Some(first), "luno"))
    }

    async fn first_frame(&self, framed: &mut Framed<TcpStream, FrameCodec>) -> Option<Frame> {
        match tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, framed.next()).await {
            Ok(Some(Ok(f))) => Some(f),
            Ok(Some(Err(e))) => {
                tracing::warn!(error = %e, "framing error before the terminal identified itself: closing");
                None
            }
            Ok(None) => None,
            Err(_) => {
                tracing::warn!(
                    "no message within {} s: closing",
                    FIRST_MESSAGE_TIMEOUT.as_secs()
                );
                None
            }
        }
    }
}

/// Accepts connections on one listener and hands them over; accept errors back off.
async fn accept(
    listener: TcpListener,
    port: Port,
    accepted: mpsc::Sender<(TcpStream, SocketAddr, Port)>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if accepted.send((stream, peer, port.clone())).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, port = ?port, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The LUNO of a raw NDC message: its second FS-separated field, up to 9 characters.
fn luno_of(payload: &[u8]) -> String {
    let field = payload.split(|b| *b == 0x1C).nth(1).unwrap_or_default();
    String::from_utf8_lossy(field.get(..9).unwrap_or(field)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luno_is_the_second_field() {
        assert_eq!(luno_of(b"12\x1c001\x1c\x1cB0022"), "001");
        assert_eq!(luno_of(b"11\x1c001000001\x1c"), "001000001");
        assert_eq!(luno_of(b"garbage"), "");
    }
}
