//! Connections the fault injector can cut: how a lost answer of mode `drop` closes the connection
//! *after* the books changed, with no HTTP response at all.
//!
//! The listener hands axum a [`CuttableStream`] (a `TcpStream` with a shared "cut" flag) and each
//! request a [`ConnectionCutter`] for its own connection (as connect info, in the request's
//! extensions). The fault layer runs the handler to the end — the effect is applied and durable —
//! then cuts: every later write on that connection fails, so hyper gives up on the response it
//! was about to write and closes the connection. The client sees the connection closed before
//! any answer, which is what a crash or a network cut after commit looks like from outside.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A TCP listener whose connections can be cut one by one.
pub struct CuttableListener {
    inner: TcpListener,
}

impl CuttableListener {
    pub fn new(inner: TcpListener) -> Self {
        CuttableListener { inner }
    }
}

impl Listener for CuttableListener {
    type Io = CuttableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // axum's own accept loop: it logs accept errors and backs off instead of spinning.
        let (stream, addr) = Listener::accept(&mut self.inner).await;
        let stream = CuttableStream {
            stream,
            cut: Arc::new(AtomicBool::new(false)),
        };
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// One accepted connection; once cut, it refuses every write.
pub struct CuttableStream {
    stream: TcpStream,
    cut: Arc<AtomicBool>,
}

impl CuttableStream {
    fn refuse_if_cut(&self) -> Option<io::Error> {
        self.cut.load(Ordering::SeqCst).then(|| {
            io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection cut after the request was handled (injected fault)",
            )
        })
    }
}

impl AsyncRead for CuttableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CuttableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(error) = self.refuse_if_cut() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(error) = self.refuse_if_cut() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The handle a request carries to cut its own connection.
#[derive(Debug, Clone)]
pub struct ConnectionCutter {
    cut: Arc<AtomicBool>,
}

impl ConnectionCutter {
    /// Nothing more is written on this connection: the answer being prepared never leaves.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, CuttableListener>> for ConnectionCutter {
    fn connect_info(stream: IncomingStream<'_, CuttableListener>) -> Self {
        ConnectionCutter {
            cut: stream.io().cut.clone(),
        }
    }
}
