//! What the mtls integration tests share: the agent's side of one exchange.

use std::sync::Arc;

use mtls::rustls::ClientConfig;
use mtls::{server_name, TlsConnector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connects, sends "0800", reads the 4-byte answer. Err if any step fails.
pub async fn exchange(
    addr: std::net::SocketAddr,
    config: Arc<ClientConfig>,
) -> Result<Vec<u8>, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = server_name("localhost").map_err(|e| e.to_string())?;
    let mut tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    // With TLS 1.3 the client finishes its side of the handshake before the server has judged
    // the client certificate, so a refusal may only show up on the first read.
    tls.write_all(b"0800").await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4];
    tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    Ok(buf.to_vec())
}
