//! The technician's control socket: a unix domain socket (mode 0600, so only the agent's user and
//! root reach it) speaking one JSON request per line and one JSON answer per line.
//!
//! Requests: `{"cmd":"status"}`, `{"cmd":"queue_ls"}`, `{"cmd":"queue_retry","terminal":null}`,
//! `{"cmd":"terminal","terminal":"ATM00001","action":"in_service"|"out_of_service"|"supply_counters"}`.
//! Answers: `{"ok":true,"data":…}` or `{"ok":false,"error":"…"}`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::app::registry::TerminalCommand;
use crate::app::Services;

/// Longest request line accepted.
const MAX_LINE: usize = 4096;

#[derive(Debug, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Status,
    QueueLs,
    QueueRetry {
        #[serde(default)]
        terminal: Option<String>,
    },
    Terminal {
        terminal: String,
        action: Action,
    },
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    InService,
    OutOfService,
    SupplyCounters,
}

/// Binds the socket (replacing a stale one) with mode 0600.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

pub async fn run(
    svc: Arc<Services>,
    listener: UnixListener,
    path: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        match accepted {
            Ok((stream, _)) => {
                let svc = svc.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(&svc, stream).await {
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

async fn serve(svc: &Services, stream: UnixStream) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read.take(MAX_LINE as u64 * 16)).lines();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)??
    {
        let answer = if line.len() > MAX_LINE {
            json!({"ok": false, "error": "request too long"})
        } else {
            match serde_json::from_str::<Request>(&line) {
                Ok(req) => answer(svc, req),
                Err(e) => json!({"ok": false, "error": format!("bad request: {e}")}),
            }
        };
        write.write_all(format!("{answer}\n").as_bytes()).await?;
    }
    Ok(())
}

use tokio::io::AsyncReadExt;

fn answer(svc: &Services, req: Request) -> Value {
    match req {
        Request::Status => json!({"ok": true, "data": {
            "uplink": if svc.uplink.is_up() { "up" } else { "down" },
            "queue": {"pending": svc.queue.len(), "parked": svc.queue.parked_len()},
            "terminals": svc.registry.snapshot(),
        }}),
        Request::QueueLs => json!({"ok": true, "data": svc.queue.list()}),
        Request::QueueRetry { terminal } => {
            let n = svc.queue.retry_now(terminal.as_deref());
            svc.forwarder.notify_one();
            json!({"ok": true, "data": {"made_due": n}})
        }
        Request::Terminal { terminal, action } => {
            let command = match action {
                Action::InService => TerminalCommand::GoInService,
                Action::OutOfService => TerminalCommand::GoOutOfService,
                Action::SupplyCounters => TerminalCommand::SendSupplyCounters,
            };
            match svc.registry.command(&terminal, command) {
                Ok(()) => json!({"ok": true, "data": {"sent": format!("{command:?}")}}),
                Err(e) => json!({"ok": false, "error": e}),
            }
        }
    }
}
