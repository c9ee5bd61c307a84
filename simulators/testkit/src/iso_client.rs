//! A framed ISO 8583 client (2-byte length prefix, `iso87-ascii`) that speaks to the switch as an
//! agent does: over mutual TLS with the test PKI's agent certificate, or over any stream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use mtls::PkiFiles;
use protocols::framing::FrameCodec;
use protocols::iso8583::{Message, Spec};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// How long [`IsoClient::recv_raw`] waits for a frame before failing the test.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A framed ISO 8583 client over any stream.
pub struct IsoClient {
    framed: Framed<Box<dyn Stream>, FrameCodec>,
}

/// A byte stream the client can run over (TCP, TLS, an in-memory duplex).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl IsoClient {
    pub fn new(stream: impl Stream + 'static) -> Self {
        Self {
            framed: Framed::new(Box::new(stream), FrameCodec::default()),
        }
    }

    /// Dials `addr` over mutual TLS with the agent certificate of `files`.
    pub async fn connect(addr: SocketAddr, files: &PkiFiles) -> std::io::Result<IsoClient> {
        let cfg = mtls::client_config(files.client_files()).map_err(std::io::Error::other)?;
        Self::connect_with(addr, cfg).await
    }

    /// Dials `addr` over TLS with a client configuration of the test's choosing (a wrong CA, a
    /// certificate for other terminals…).
    pub async fn connect_with(
        addr: SocketAddr,
        cfg: Arc<mtls::rustls::ClientConfig>,
    ) -> std::io::Result<IsoClient> {
        let tcp = TcpStream::connect(addr).await?;
        let name = mtls::server_name("localhost").map_err(std::io::Error::other)?;
        let tls = mtls::TlsConnector::from(cfg).connect(name, tcp).await?;
        Ok(IsoClient::new(tls))
    }

    pub async fn send_raw(&mut self, payload: &[u8]) {
        self.framed
            .send(Bytes::copy_from_slice(payload))
            .await
            .unwrap();
    }

    /// Bytes written as they are, without a length prefix (a peer that breaks the framing).
    pub async fn send_bytes_unframed(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.framed.get_mut().write_all(bytes).await.unwrap();
    }

    /// The next frame, or `None` when the peer closed the connection.
    pub async fn recv_raw(&mut self) -> Option<Bytes> {
        match tokio::time::timeout(ANSWER_TIMEOUT, self.framed.next())
            .await
            .expect("no answer within 10 s")
        {
            Some(Ok(f)) => Some(f.payload),
            _ => None,
        }
    }

    /// Sends `msg` and waits for the answer.
    pub async fn request(&mut self, msg: &Message) -> Message {
        let spec = Spec::iso87_ascii();
        self.send_raw(&spec.pack(msg).unwrap()).await;
        let answer = self
            .recv_raw()
            .await
            .expect("connection closed instead of an answer");
        spec.unpack(&answer).unwrap()
    }
}
