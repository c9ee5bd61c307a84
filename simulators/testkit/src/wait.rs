//! Waiting for something to become true, always with a deadline: a test that waits forever tells
//! nobody what it was waiting for.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// How often conditions are polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Polls `check` every 50 ms until it holds; panics (fails the test) naming `what` after
/// `timeout_secs`.
pub async fn wait_until<F, Fut>(what: &str, timeout_secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout_secs);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout_secs} s waiting for {what}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Waits until something accepts TCP connections at `addr`; `false` after `timeout`.
pub async fn wait_listening(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return true;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    false
}

/// A free port on 127.0.0.1 (bound, then released: a child process binds it).
pub fn free_port() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}
