//! Where ATMs connect: a TCP listener, one session per connection. The first message names the
//! terminal (its LUNO, the second field of every NDC message); a LUNO this agent does not serve is
//! logged and the connection closed.
//!
//! NDC itself authenticates nothing: whoever reaches the port and sends a terminal's LUNO would
//! speak for that terminal (take its customers' transactions, its PIN key loads). So each terminal
//! is bound to the address(es) it connects from (`[[terminals]] address`), and a LUNO claimed from
//! any other address is refused: the connection is closed before anything is sent, and the claim
//! is logged on the `security` target with the peer's address. A terminal configured with
//! `any_address = true` is accepted from anywhere (warned about at every start).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use firmware_profiles::Profile;
use futures::StreamExt;
use protocols::framing::FrameCodec;
use protocols::ndc::TerminalMessage;
use protocols::types::TerminalId;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::codec::Framed;
use tracing::Instrument;

use crate::app::session::Session;
use crate::app::Services;
use crate::config::TerminalConfig;
use crate::ports::{AdviceQueue, SwitchLink, TerminalStore};

/// Time a new connection has to send its first message.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct NdcServer<L, S, Q> {
    svc: Arc<Services<L, S, Q>>,
    /// LUNO → the terminal and its profile.
    terminals: HashMap<String, (TerminalConfig, Profile)>,
    codec: FrameCodec,
}

impl<L: SwitchLink, S: TerminalStore, Q: AdviceQueue> NdcServer<L, S, Q> {
    pub fn new(
        svc: Arc<Services<L, S, Q>>,
        terminals: HashMap<String, (TerminalConfig, Profile)>,
        codec: FrameCodec,
    ) -> Arc<Self> {
        for (t, _) in terminals.values() {
            if t.any_address {
                tracing::warn!(target: "security", terminal = %t.terminal_id, luno = %t.luno, "terminal accepted from ANY address (any_address = true): whoever reaches the NDC port can speak for it");
            }
        }
        Arc::new(Self {
            svc,
            terminals,
            codec,
        })
    }

    /// Accepts terminals until `shutdown` turns true; then stops accepting and waits for every
    /// session to end, which each does once no customer is in flight (the caller bounds the
    /// wait; sessions still running when it gives up are aborted with this future).
    pub async fn run(self: Arc<Self>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
        let mut sessions = JoinSet::new();
        loop {
            while sessions.try_join_next().is_some() {}
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.changed() => break,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let this = self.clone();
                    let stop = shutdown.clone();
                    sessions.spawn(
                        async move { this.connection(stream, peer, stop).await }
                            .instrument(tracing::info_span!("atm", %peer)),
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        drop(listener);
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
        mut stop: watch::Receiver<bool>,
    ) {
        let _ = stream.set_nodelay(true);
        let mut framed = Framed::new(stream, self.codec.clone());
        let first = tokio::select! {
            first = tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, framed.next()) => first,
            _ = stop.wait_for(|s| *s) => return,
        };
        let first = match first {
            Ok(Some(Ok(f))) => f,
            Ok(Some(Err(e))) => {
                tracing::warn!(error = %e, "framing error before the terminal identified itself: closing");
                return;
            }
            Ok(None) => return,
            Err(_) => {
                tracing::warn!(
                    "no message within {} s: closing",
                    FIRST_MESSAGE_TIMEOUT.as_secs()
                );
                return;
            }
        };
        let luno = luno_of(&first.payload);
        let Some((terminal, profile)) = self.terminals.get(&luno).cloned() else {
            tracing::warn!(luno = %luno, "unknown LUNO: closing the connection");
            return;
        };
        if !terminal.admits(peer.ip()) {
            tracing::warn!(target: "security", terminal = %terminal.terminal_id, luno = %luno, %peer, allowed = %terminal.address, "terminal claimed from an address it is not bound to: connection refused");
            return;
        }
        let msg = match TerminalMessage::parse(&first.payload, &profile.dialect) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(terminal = %terminal.terminal_id, error = %e, "malformed first message: closing");
                return;
            }
        };
        let terminal_id = match TerminalId::parse(&terminal.terminal_id) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, luno = %luno, "terminal id not usable: closing");
                return;
            }
        };
        tracing::info!(terminal = %terminal.terminal_id, luno = %luno, %peer, "terminal connected");
        let (tx, rx) = mpsc::channel(8);
        self.svc.registry.attach(&terminal.terminal_id, tx);
        let tid = terminal.terminal_id.clone();
        let end = Session::new(self.svc.clone(), framed, terminal, terminal_id, profile, rx)
            .stop_on(stop)
            .run(msg)
            .await;
        tracing::info!(terminal = %tid, reason = %end, "terminal session ended");
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
