//! The operators' control sockets of the agent (`atmctl`) and the switch (`switchctl`).
//!
//! A unix domain socket with mode 0600 (only the daemon's user and root reach it), one JSON request
//! per line, one JSON answer per line: `{"ok":true,"data":…}` or `{"ok":false,"error":"…"}`.
//!
//! [`bind`] gives the socket its mode before anyone can reach it (bound in a private 0700
//! directory, then linked into place) and removes nothing at the configured path but a stale
//! socket. [`run_with_peer`] tells the handler who connected (uid and pid from `SO_PEERCRED`), so
//! every key load, card unblock or exception decision is recorded with the kernel's word for who
//! made it, beside the name the operator types.
//!
//! Requests may carry secrets (a custodian's key component, a card number), so:
//! - each request line is read into one fixed buffer wiped as lines leave it, and handed to the
//!   daemon's handler in a zeroizing string of exactly its length;
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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
pub use zeroize::Zeroizing;

/// Longest request line accepted.
pub const MAX_LINE: usize = 4096;
/// An idle connection is closed after this long.
pub const IDLE: Duration = Duration::from_secs(60);

/// Why the control socket could not be created at its configured path.
#[derive(Debug)]
enum BindRefused {
    NotASocket(&'static str),
    InUse,
}

/// Binds the socket at `path` with mode 0600, with no moment at which anyone else could connect.
///
/// The socket is bound inside a fresh private directory (mode 0700, next to `path`), set to 0600
/// there, and then hard-linked into place: `link(2)` never replaces an existing name, so a file
/// that appears at `path` meanwhile makes the bind fail instead of being deleted. (Setting the
/// umask around `bind` would also close the window, but the umask is process-wide, racy in a
/// multi-threaded daemon, and needs `unsafe`; a `chmod` after `bind` leaves a window open.)
///
/// What may already be at `path`: nothing; a stale socket (nobody accepts on it: a daemon that
/// crashed), which is removed; a live socket, a regular file, a directory or a symbolic link,
/// which are refused with an error naming the path and nothing is removed. The parent directory
/// is created if missing.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    let parent = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir.to_owned(),
        None => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)?;
    clear_stale(path).map_err(|why| refused(path, why))??;
    let private = PrivateDir::create(&parent)?;
    let staged = private.path.join("s");
    let listener = UnixListener::bind(&staged)?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
    std::fs::hard_link(&staged, path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            refused(
                path,
                BindRefused::NotASocket("something else was created there meanwhile"),
            )
        } else {
            e
        }
    })?;
    Ok(listener)
}

fn refused(path: &Path, why: BindRefused) -> std::io::Error {
    let (kind, text) = match why {
        BindRefused::NotASocket(what) => (
            std::io::ErrorKind::AlreadyExists,
            format!(
                "{}: {what}, not a stale control socket; refusing to remove it (move it away or configure another control socket path)",
                path.display()
            ),
        ),
        BindRefused::InUse => (
            std::io::ErrorKind::AddrInUse,
            format!(
                "{}: another process is serving this control socket (is a second daemon running with the same configuration?)",
                path.display()
            ),
        ),
    };
    std::io::Error::new(kind, text)
}

/// Removes a stale socket at `path`; refuses anything else. The outer error says why the path
/// is refused, the inner one is an I/O failure.
fn clear_stale(path: &Path) -> Result<std::io::Result<()>, BindRefused> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ok(())),
        Err(e) => return Ok(Err(e)),
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(BindRefused::NotASocket("a symbolic link"));
    }
    if kind.is_dir() {
        return Err(BindRefused::NotASocket("a directory"));
    }
    if !kind.is_socket() {
        return Err(BindRefused::NotASocket("a file"));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(BindRefused::InUse),
        Err(_) => Ok(std::fs::remove_file(path)),
    }
}

/// Removes the socket at `path` at shutdown, if a socket is still what is there.
fn remove_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

/// A fresh directory with mode 0700 where the socket is bound before it is linked into place;
/// removed (with the staged name) when dropped.
struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    fn create(parent: &Path) -> std::io::Result<PrivateDir> {
        use std::os::unix::fs::DirBuilderExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut last = None;
        // A name taken already (another daemon binding at the same moment) is skipped; a few
        // tries are plenty, and the loop has a bound.
        for attempt in 0..16u32 {
            let name = format!(".ctl-{}-{nanos:x}-{attempt}", std::process::id());
            let path = parent.join(name);
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(PrivateDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no free private directory name")))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path.join("s"));
        let _ = std::fs::remove_dir(&self.path);
    }
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
    remove_socket(&path);
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
    let mut lines = LineReader::new(read.take(MAX_LINE as u64 * 16));
    loop {
        let next = tokio::select! {
            n = tokio::time::timeout(IDLE, lines.next_line()) => n,
            _ = shutdown.changed() => return Ok(()),
        };
        let answer = match next.map_err(|_| std::io::ErrorKind::TimedOut)?? {
            None => return Ok(()),
            Some(Line::TooLong) => error("request too long"),
            Some(Line::Text(line)) => handle(line).await,
        };
        write.write_all(format!("{answer}\n").as_bytes()).await?;
    }
}

/// One line read by [`LineReader`].
#[derive(Debug)]
enum Line {
    Text(Zeroizing<String>),
    /// Longer than [`MAX_LINE`]: its bytes were wiped and skipped up to the newline.
    TooLong,
}

/// Reads newline-ended lines into one fixed buffer that is never reallocated and is wiped as
/// lines leave it, so a key component or a card number sent over the socket leaves no copy behind
/// in freed memory (a `BufReader` plus `String` growth would leave several).
struct LineReader<R> {
    inner: R,
    buf: Zeroizing<Vec<u8>>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Inside a line already found too long: skip up to its newline.
    skipping: bool,
}

impl<R: tokio::io::AsyncRead + Unpin> LineReader<R> {
    const CAPACITY: usize = 2 * MAX_LINE;

    fn new(inner: R) -> Self {
        LineReader {
            inner,
            buf: Zeroizing::new(vec![0; Self::CAPACITY]),
            start: 0,
            end: 0,
            skipping: false,
        }
    }

    async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            if let Some(i) = self.buf[self.start..self.end]
                .iter()
                .position(|&b| b == b'\n')
            {
                let line_end = self.start + i;
                let line = if self.skipping || i > MAX_LINE {
                    self.skipping = false;
                    Line::TooLong
                } else {
                    self.take_text(self.start, line_end)?
                };
                self.wipe(self.start, line_end + 1);
                self.start = line_end + 1;
                return Ok(Some(line));
            }
            if self.skipping || self.end - self.start > MAX_LINE {
                // No newline within MAX_LINE bytes: drop what is held and skip to the newline.
                self.skipping = true;
                self.wipe(self.start, self.end);
                self.start = 0;
                self.end = 0;
            }
            self.compact();
            let n = self.inner.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return self.at_end_of_input();
            }
            self.end += n;
        }
    }

    /// The last line when the input ends without a newline (as `lines()` gives it).
    fn at_end_of_input(&mut self) -> std::io::Result<Option<Line>> {
        if self.skipping {
            self.skipping = false;
            return Ok(Some(Line::TooLong));
        }
        if self.start == self.end {
            return Ok(None);
        }
        let line = if self.end - self.start > MAX_LINE {
            Line::TooLong
        } else {
            self.take_text(self.start, self.end)?
        };
        self.wipe(self.start, self.end);
        self.start = self.end;
        Ok(Some(line))
    }

    /// Copies `buf[from..to]` into a zeroizing string of exactly that capacity (no regrowth).
    fn take_text(&self, from: usize, to: usize) -> std::io::Result<Line> {
        let text = std::str::from_utf8(&self.buf[from..to])
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))?;
        let mut line = Zeroizing::new(String::with_capacity(text.len()));
        line.push_str(text.strip_suffix('\r').unwrap_or(text));
        Ok(Line::Text(line))
    }

    /// Moves the unread bytes to the front, wiping the place they leave.
    fn compact(&mut self) {
        if self.start == 0 {
            return;
        }
        let len = self.end - self.start;
        self.buf.copy_within(self.start..self.end, 0);
        self.wipe(len, self.end);
        self.start = 0;
        self.end = len;
    }

    fn wipe(&mut self, from: usize, to: usize) {
        use zeroize::Zeroize;
        self.buf[from..to].zeroize();
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
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert!(
            left.is_empty(),
            "no private staging directory left behind: {left:?}"
        );
    }

    #[test]
    fn a_regular_file_at_the_socket_path_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctl.sock");
        std::fs::write(&path, b"the operator's notes").unwrap();
        let err = bind(&path).unwrap_err();
        assert!(
            err.to_string()
                .contains("a file, not a stale control socket"),
            "{err}"
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"the operator's notes");
    }

    #[test]
    fn a_directory_or_a_symlink_at_the_socket_path_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctl.sock");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), b"x").unwrap();
        let err = bind(&path).unwrap_err();
        assert!(err.to_string().contains("a directory"), "{err}");
        assert!(path.join("inside").exists());

        let target = dir.path().join("target");
        std::fs::write(&target, b"x").unwrap();
        let link = dir.path().join("link.sock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = bind(&link).unwrap_err();
        assert!(err.to_string().contains("a symbolic link"), "{err}");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(target.exists());
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_live_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctl.sock");
        // A socket nobody accepts on any more: what a crashed daemon leaves.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let live = bind(&path).expect("a stale socket is replaced");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = bind(&path).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
        // The live socket is still in place and reachable (the refused bind's probe is queued
        // first; the daemon's accept loop serves it as an empty connection).
        let p = path.clone();
        let client =
            tokio::task::spawn_blocking(move || std::os::unix::net::UnixStream::connect(&p));
        let (_probe, _) = live.accept().await.unwrap();
        let (_client, _) = live.accept().await.unwrap();
        client
            .await
            .unwrap()
            .expect("the first daemon's socket still works");
    }

    #[tokio::test]
    async fn the_handler_learns_the_peer_uid_and_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctl.sock");
        let listener = bind(&path).unwrap();
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(run_with_peer(
            listener,
            path.clone(),
            stopped,
            |_line, peer: Peer| async move { ok(json!({"uid": peer.uid, "pid": peer.pid})) },
        ));
        let p = path.clone();
        let data = tokio::task::spawn_blocking(move || request(&p, "{}", "the daemon"))
            .await
            .unwrap()
            .unwrap();
        let our_uid = std::fs::metadata("/proc/self").map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid()
        });
        assert_eq!(data["pid"], std::process::id());
        if let Ok(uid) = our_uid {
            assert_eq!(data["uid"], uid);
        }
        stop.send(true).unwrap();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_request_line_leaves_no_copy_in_the_read_buffer() {
        let secret = "0123456789ABCDEFFEDCBA9876543210";
        let input = format!(
            "{{\"component\":\"{secret}\"}}\n{}\nlast",
            "x".repeat(MAX_LINE + 10)
        );
        let mut reader = LineReader::new(input.as_bytes());
        let Some(Line::Text(line)) = reader.next_line().await.unwrap() else {
            panic!("a line")
        };
        assert!(line.contains(secret));
        assert_eq!(line.capacity(), line.len(), "no regrowth left a copy");
        assert!(
            !reader
                .buf
                .windows(secret.len())
                .any(|w| w == secret.as_bytes()),
            "the line was wiped from the read buffer"
        );
        assert!(matches!(
            reader.next_line().await.unwrap(),
            Some(Line::TooLong)
        ));
        let Some(Line::Text(last)) = reader.next_line().await.unwrap() else {
            panic!("the last line without a newline")
        };
        assert_eq!(last.as_str(), "last");
        assert!(reader.next_line().await.unwrap().is_none());
        assert!(
            reader.buf.iter().all(|&b| b == 0),
            "everything read was wiped"
        );
        assert_eq!(reader.buf.capacity(), LineReader::<&[u8]>::CAPACITY);
    }
}
