//! The operators' control sockets of the agent (`atmctl`) and the switch (`switchctl`).
//!
//! A unix domain socket with mode 0600 (only the daemon's user and root reach it), one JSON request
//! per line, one JSON answer per line: `{"ok":true,"data":…}` or `{"ok":false,"error":"…"}`.
//! Requests may carry secrets (a custodian's key component, a card number), so:
//! - each request line is held in a zeroizing buffer and handed to the daemon's handler as such;
//! - a request that does not parse is answered with the kind of error and its column only, never
//!   serde's message (which quotes the offending value); nothing here logs a request;
//! - lines are limited to [`MAX_LINE`] bytes, idle connections to [`IDLE`], and connections end
//!   when the daemon shuts down.

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
pub use zeroize::Zeroizing;

/// Longest request line accepted.
pub const MAX_LINE: usize = 4096;
/// An idle connection is closed after this long.
pub const IDLE: Duration = Duration::from_secs(60);

/// Binds the socket at `path` (replacing a stale one, creating its directory) with mode 0600.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// An answer carrying `data`.
pub fn ok(data: Value) -> Value {
    json!({"ok": true, "data": data})
}

/// An answer carrying an error message.
pub fn error(message: impl Into<String>) -> Value {
    json!({"ok": false, "error": message.into()})
}

/// `Ok(data)` → [`ok`], `Err(message)` → [`error`].
pub fn answer(result: Result<Value, String>) -> Value {
    match result {
        Ok(data) => ok(data),
        Err(e) => error(e),
    }
}

/// Parses a request line; on failure, the answer to send: the error's kind and column, without
/// serde's message (it would quote the value, which may be a key component or a card number).
pub fn parse<T: DeserializeOwned>(line: &str) -> Result<T, Value> {
    serde_json::from_str(line).map_err(|e| {
        error(format!(
            "bad request: {:?} error at column {} (see the list of requests in the docs)",
            e.classify(),
            e.column()
        ))
    })
}

/// Who is at the other end of a control connection, as the kernel says (`SO_PEERCRED`): what
/// an operator's decision is attributed to, beside the name they give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Peer {
    pub uid: Option<u32>,
    pub pid: Option<i32>,
}

/// Serves connections until `shutdown`, then removes the socket file. `handle` gets each request
/// line and returns the whole answer (use [`parse`], [`ok`], [`error`], [`answer`]).
pub async fn run<H, F>(
    listener: UnixListener,
    path: PathBuf,
    shutdown: watch::Receiver<bool>,
    handle: H,
) where
    H: Fn(Zeroizing<String>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Value> + Send,
{
    run_with_peer(listener, path, shutdown, move |line, _peer: Peer| {
        handle(line)
    })
    .await
}

/// As [`run`], and `handle` also learns the connecting process's credentials.
pub async fn run_with_peer<H, F>(
    listener: UnixListener,
    path: PathBuf,
    mut shutdown: watch::Receiver<bool>,
    handle: H,
) where
    H: Fn(Zeroizing<String>, Peer) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Value> + Send,
{
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        match accepted {
            Ok((stream, _)) => {
                let peer = stream
                    .peer_cred()
                    .map(|c| Peer {
                        uid: Some(c.uid()),
                        pid: c.pid(),
                    })
                    .unwrap_or_default();
                let handle = handle.clone();
                let handle = move |line| handle(line, peer);
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(stream, shutdown, handle).await {
                        tracing::debug!(error = %e, "control connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let _ = std::fs::remove_file(path);
}

async fn serve<H, F>(
    stream: UnixStream,
    mut shutdown: watch::Receiver<bool>,
    handle: H,
) -> std::io::Result<()>
where
    H: Fn(Zeroizing<String>) -> F,
    F: Future<Output = Value>,
{
    let (read, mut write) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(read.take(MAX_LINE as u64 * 16)).lines();
    loop {
        let next = tokio::select! {
            n = tokio::time::timeout(IDLE, lines.next_line()) => n,
            _ = shutdown.changed() => return Ok(()),
        };
        let Some(line) = next.map_err(|_| std::io::ErrorKind::TimedOut)?? else {
            return Ok(());
        };
        let line = Zeroizing::new(line);
        let answer = if line.len() > MAX_LINE {
            error("request too long")
        } else {
            handle(line).await
        };
        write.write_all(format!("{answer}\n").as_bytes()).await?;
    }
}

/// Sends a typed request: the daemon's own request type, serialized (into a zeroizing buffer
/// reserved up front, so a key component leaves no copy behind) exactly as the daemon parses it.
pub fn send<R: serde::Serialize>(socket: &Path, typed: &R, peer: &str) -> Result<Value, String> {
    let mut line = Zeroizing::new(Vec::with_capacity(MAX_LINE));
    serde_json::to_writer(&mut *line, typed)
        .map_err(|e| format!("cannot write the request: {e}"))?;
    if line.len() >= MAX_LINE {
        return Err(format!("the request is longer than {MAX_LINE} bytes"));
    }
    let line = std::str::from_utf8(&line).map_err(|e| format!("cannot write the request: {e}"))?;
    request(socket, line, peer)
}

/// Sends one request line (JSON, without the newline) to the daemon `peer` ("the agent", "the
/// switch") at `socket`, and returns the answer's `data`, or a one-line error.
pub fn request(socket: &Path, line: &str, peer: &str) -> Result<Value, String> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|e| format!("cannot reach {peer} at {}: {e}", socket.display()))?;
    let timeout = Some(Duration::from_secs(10));
    stream
        .set_read_timeout(timeout)
        .and_then(|_| stream.set_write_timeout(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(line.as_bytes())
        .and_then(|_| stream.write_all(b"\n"))
        .map_err(|e| format!("cannot send to {peer}: {e}"))?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(|e| format!("no answer from {peer}: {e}"))?;
    let answer: Value =
        serde_json::from_str(&answer).map_err(|e| format!("unreadable answer from {peer}: {e}"))?;
    if answer["ok"] == Value::Bool(true) {
        Ok(answer["data"].clone())
    } else {
        Err(format!(
            "{peer} refused: {}",
            answer["error"].as_str().unwrap_or("unknown error")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Req {
        card: String,
    }

    #[test]
    fn a_bad_request_is_answered_without_quoting_its_value() {
        let answer = parse::<Req>(r#"{"card":4761739001010010}"#).unwrap_err();
        let text = answer.to_string();
        assert!(text.contains("bad request"), "{text}");
        assert!(!text.contains("4761739001010010"), "{text}");
    }

    #[tokio::test]
    async fn serves_one_answer_per_line_on_a_0600_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("ctl.sock");
        let listener = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(run(listener, path.clone(), stopped, |line| async move {
            match parse::<Req>(&line) {
                Ok(r) => ok(json!({"len": r.card.len()})),
                Err(answer) => answer,
            }
        }));
        let p = path.clone();
        let (good, bad, long) = tokio::task::spawn_blocking(move || {
            (
                request(&p, r#"{"card":"abc"}"#, "the daemon"),
                request(&p, r#"{"card":1}"#, "the daemon"),
                request(&p, &"x".repeat(MAX_LINE + 1), "the daemon"),
            )
        })
        .await
        .unwrap();
        assert_eq!(good.unwrap()["len"], 3);
        assert!(bad
            .unwrap_err()
            .starts_with("the daemon refused: bad request"));
        assert!(long.unwrap_err().contains("too long"));
        stop.send(true).unwrap();
        server.await.unwrap();
        assert!(!path.exists(), "socket removed at shutdown");
    }
}
