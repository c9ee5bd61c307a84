//! The operator's control socket: a unix domain socket (mode 0600, so only the switch's user and
//! root reach it) speaking one JSON request per line and one JSON answer per line. `switchctl` is
//! its client.
//!
//! Requests:
//! - `{"cmd":"card_status","card":"<card reference or PAN>"}`
//! - `{"cmd":"card_unblock","card":"<card reference or PAN>"}`
//! - `{"cmd":"zpk_rotate"}`
//! - `{"cmd":"keys_list"}`
//!
//! Answers: `{"ok":true,"data":…}` or `{"ok":false,"error":"…"}`. A PAN is hashed to the card
//! reference at once; only the reference is logged or answered.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::app::pin::PinGuard;
use crate::app::zone_keys::ZoneKeys;
use crate::domain::pin::{CardPinRecord, CardRef};

/// Longest request line accepted.
const MAX_LINE: usize = 4096;
/// Who an unblock is attributed to in the log.
const WHO: &str = "operator via control socket";

#[derive(Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
enum Request {
    CardStatus { card: String },
    CardUnblock { card: String },
    ZpkRotate,
    KeysList,
}

/// What the socket serves: the optional PIN and key features.
#[derive(Clone)]
pub struct ControlTarget {
    pub zone: Option<Arc<ZoneKeys>>,
    pub pins: Option<Arc<PinGuard>>,
}

/// Binds the socket (replacing a stale one) with mode 0600.
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

/// Serves connections until `shutdown`, then removes the socket file.
pub async fn run(
    target: ControlTarget,
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
                let target = target.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(&target, stream, shutdown).await {
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

/// One connection; it ends with the switch, so an idle client never keeps the key store open.
async fn serve(
    target: &ControlTarget,
    stream: UnixStream,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read.take(MAX_LINE as u64 * 16)).lines();
    loop {
        let next = tokio::select! {
            n = tokio::time::timeout(Duration::from_secs(60), lines.next_line()) => n,
            _ = shutdown.changed() => return Ok(()),
        };
        let Some(line) = next.map_err(|_| std::io::ErrorKind::TimedOut)?? else {
            return Ok(());
        };
        let answer = if line.len() > MAX_LINE {
            json!({"ok": false, "error": "request too long"})
        } else {
            match serde_json::from_str::<Request>(&line) {
                Ok(req) => match answer(target, req).await {
                    Ok(data) => json!({"ok": true, "data": data}),
                    Err(error) => json!({"ok": false, "error": error}),
                },
                Err(e) => json!({"ok": false, "error": format!("bad request: {e}")}),
            }
        };
        write.write_all(format!("{answer}\n").as_bytes()).await?;
    }
}

async fn answer(target: &ControlTarget, req: Request) -> Result<Value, String> {
    match req {
        Request::CardStatus { card } => {
            let pins = pins(target)?;
            let card = CardRef::from_operator(&card)?;
            let record = pins.status(&card).map_err(|e| e.to_string())?;
            Ok(card_json(&record, pins.max_tries()))
        }
        Request::CardUnblock { card } => {
            let pins = pins(target)?;
            let card = CardRef::from_operator(&card)?;
            let (before, after) = pins.unblock(&card, WHO).await.map_err(|e| e.to_string())?;
            let mut data = card_json(&after, pins.max_tries());
            data["was_blocked"] = json!(before.is_blocked());
            Ok(data)
        }
        Request::ZpkRotate => {
            let info = zone(target)?
                .rotate("operator via control socket")
                .await
                .map_err(|e| e.to_string())?;
            serde_json::to_value(info).map_err(|e| e.to_string())
        }
        Request::KeysList => {
            let keys = zone(target)?.list().map_err(|e| e.to_string())?;
            serde_json::to_value(keys).map_err(|e| e.to_string())
        }
    }
}

fn pins(target: &ControlTarget) -> Result<&PinGuard, String> {
    target
        .pins
        .as_deref()
        .ok_or_else(|| "PIN verification is not configured (no [pin] section)".to_owned())
}

fn zone(target: &ControlTarget) -> Result<&ZoneKeys, String> {
    target
        .zone
        .as_deref()
        .ok_or_else(|| "no key store is configured (no [keys] section)".to_owned())
}

/// A card's PIN state as the operator sees it (never its PVV or offset).
fn card_json(record: &CardPinRecord, max_tries: u8) -> Value {
    json!({
        "card": record.card.as_str(),
        "method": record.data.as_ref().map(|d| d.method_name()),
        "tries": record.wrong_tries().unwrap_or(max_tries),
        "blocked": record.is_blocked(),
        "max_tries": max_tries,
    })
}
