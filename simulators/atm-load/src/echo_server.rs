//! A bare framed echo server over mutual TLS: the baseline every load figure is set beside.
//!
//! Same transport as the switch's acquirer endpoint (rustls, 2-byte length framing, one task per
//! connection), none of its work: each frame is written back as it came, with the MTI turned into
//! its response (0100 → 0110) so the client matches it as it matches a switch answer. What the
//! switch reaches as a share of this is what its own work (codec, journal, ledger) costs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{FutureExt, SinkExt, StreamExt};
use mtls::rustls::{ClientConfig, ServerConfig};
use mtls::{TestPki, TlsAcceptor};
use protocols::framing::FrameCodec;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

use super::LoadError;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames written before one flush when the client has pipelined several.
const BATCH_FRAMES_MAX: usize = 256;

/// An echo server serving in this process.
pub struct RunningEcho {
    pub local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningEcho {
    /// Stops accepting and closes open connections.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// A throwaway PKI for the echo server: its server configuration and a client configuration
/// whose certificate covers the lab terminal ids.
pub fn lab_tls() -> Result<(Arc<ServerConfig>, Arc<ClientConfig>), LoadError> {
    let pki = TestPki::try_generate()?;
    let server = pki.try_server_cert(mtls::pki::LAB_SWITCH_HOSTNAMES)?;
    let client = pki.try_client_cert(
        mtls::pki::LAB_AGENT_COMMON_NAME,
        mtls::pki::LAB_TERMINAL_IDS,
    )?;
    let ca = pki.ca_pem();
    let server = mtls::server_config_from_pem(
        server.cert_pem.as_bytes(),
        server.key_pem.as_bytes(),
        ca.as_bytes(),
    )?;
    let client = mtls::client_config_from_pem(
        client.cert_pem.as_bytes(),
        client.key_pem.as_bytes(),
        ca.as_bytes(),
    )?;
    Ok((server, client))
}

/// Binds `addr` (port 0 picks one) and echoes every frame of every connection.
pub async fn start(addr: SocketAddr, tls: Arc<ServerConfig>) -> Result<RunningEcho, LoadError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| LoadError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| LoadError::Connect {
        addr: addr.to_string(),
        source,
    })?;
    let (shutdown, rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, TlsAcceptor::from(tls), rx));
    Ok(RunningEcho {
        local_addr,
        shutdown,
        task,
    })
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream, acceptor.clone(), shutdown.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "echo: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve(stream: TcpStream, acceptor: TlsAcceptor, mut shutdown: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return tracing::warn!(error = %e, "echo: TLS handshake refused"),
        Err(_) => return tracing::warn!("echo: TLS handshake timed out"),
    };
    let mut framed = Framed::new(tls, FrameCodec::default());
    loop {
        let first = tokio::select! {
            f = framed.next() => f,
            _ = shutdown.changed() => return,
        };
        let Some(Ok(frame)) = first else { return };
        if framed.feed(answer(frame.payload)).await.is_err() {
            return;
        }
        // Everything the client pipelined that is already here goes out with one flush.
        for _ in 1..BATCH_FRAMES_MAX {
            match framed.next().now_or_never() {
                Some(Some(Ok(frame))) => {
                    if framed.feed(answer(frame.payload)).await.is_err() {
                        return;
                    }
                }
                Some(_) => return,
                None => break,
            }
        }
        if SinkExt::<Bytes>::flush(&mut framed).await.is_err() {
            return;
        }
    }
}

/// The frame back, its MTI turned into the response MTI (third digit + 1: 0100 → 0110).
fn answer(payload: Bytes) -> Bytes {
    if payload.len() < 4 || !payload[2].is_ascii_digit() || payload[2] % 2 == 1 {
        return payload;
    }
    let mut out = BytesMut::from(&payload[..]);
    out[2] += 1;
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_mti_becomes_response_mti() {
        assert_eq!(&answer(Bytes::from_static(b"0100rest"))[..], b"0110rest");
        assert_eq!(&answer(Bytes::from_static(b"0110rest"))[..], b"0110rest");
        assert_eq!(&answer(Bytes::from_static(b"01"))[..], b"01");
    }
}
