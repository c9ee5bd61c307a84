//! The technician's control socket: a unix domain socket (mode 0600, so only the agent's user and
//! root reach it) speaking one JSON request per line and one JSON answer per line.
//!
//! Requests: `{"cmd":"status"}`, `{"cmd":"queue_ls"}`, `{"cmd":"queue_retry","terminal":null}`,
//! `{"cmd":"terminal","terminal":"ATM00001","action":"in_service"|"out_of_service"|"supply_counters"}`,
//! `{"cmd":"keys_load_master","terminal":"ATM00001","components":[{"component":"<hex>","kcv":"<6 hex>"},…]}`,
//! `{"cmd":"keys_load_zone_master","components":[…]}`, `{"cmd":"keys_rotate","terminal":"ATM00001"}`,
//! `{"cmd":"keys_ls"}`.
//! Answers: `{"ok":true,"data":…}` or `{"ok":false,"error":"…"}`.
//!
//! Key components arrive in clear over this socket (it is the custodians' keyboard, through
//! `atmctl`): the request line is zeroized after parsing, components are kept in zeroizing buffers,
//! and neither requests nor parse errors (which could quote a value) are ever logged or echoed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keystore::{Component, Kcv};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use zeroize::Zeroizing;

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
    KeysLoadMaster {
        terminal: String,
        components: Vec<ComponentEntry>,
    },
    KeysLoadZoneMaster {
        components: Vec<ComponentEntry>,
    },
    KeysRotate {
        terminal: String,
    },
    KeysLs,
}

/// One custodian's key component and its check value. `Debug` hides the component.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentEntry {
    component: Zeroizing<String>,
    kcv: String,
}

impl std::fmt::Debug for ComponentEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ComponentEntry {{ component: ****, kcv: {} }}", self.kcv)
    }
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
        let line = Zeroizing::new(line);
        let answer = if line.len() > MAX_LINE {
            json!({"ok": false, "error": "request too long"})
        } else {
            match serde_json::from_str::<Request>(&line) {
                Ok(req) => answer(svc, req),
                // serde's message may quote the offending value (a key component): not echoed.
                Err(e) => json!({"ok": false, "error": format!(
                    "bad request: {:?} error at column {} (see the request list in the docs)",
                    e.classify(),
                    e.column()
                )}),
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
        Request::KeysLoadMaster {
            terminal,
            components,
        } => keys_answer(svc, |keys| {
            if svc.registry.view(&terminal).is_none() {
                return Err(format!("unknown terminal {terminal}"));
            }
            let (c, k) = parse_components(&components)?;
            let info = keys
                .load_master(&terminal, &c, &k)
                .map_err(|e| e.to_string())?;
            tracing::info!(terminal = %terminal, version = info.version, kcv = %info.kcv, components = c.len(), "terminal master key entered by custodians");
            // A connected terminal gets its PIN key now; otherwise at its next start-up.
            let pin_key = match svc.registry.command(&terminal, TerminalCommand::LoadPinKey) {
                Ok(()) => "loading".to_owned(),
                Err(e) => format!("at next start-up ({e})"),
            };
            Ok(
                json!({"name": info.name, "version": info.version, "kcv": info.kcv, "pin_key": pin_key}),
            )
        }),
        Request::KeysLoadZoneMaster { components } => keys_answer(svc, |keys| {
            let (c, k) = parse_components(&components)?;
            let info = keys.load_zone_master(&c, &k).map_err(|e| e.to_string())?;
            tracing::info!(version = info.version, kcv = %info.kcv, components = c.len(), "zone master key entered by custodians");
            svc.zone_master_loaded.notify_one();
            Ok(json!({"name": info.name, "version": info.version, "kcv": info.kcv}))
        }),
        Request::KeysRotate { terminal } => keys_answer(svc, |_| {
            svc.registry
                .command(&terminal, TerminalCommand::LoadPinKey)
                .map(|()| json!({"sent": "LoadPinKey"}))
        }),
        Request::KeysLs => keys_answer(svc, |keys| {
            keys.store()
                .list()
                .map(|l| json!(l))
                .map_err(|e| e.to_string())
        }),
    }
}

fn keys_answer(
    svc: &Services,
    f: impl FnOnce(&crate::app::keys::PinKeys) -> Result<Value, String>,
) -> Value {
    let Some(keys) = &svc.keys else {
        return json!({"ok": false, "error": "keys are not configured: add a [keys] section"});
    };
    match f(keys) {
        Ok(data) => json!({"ok": true, "data": data}),
        Err(e) => json!({"ok": false, "error": e}),
    }
}

fn parse_components(entries: &[ComponentEntry]) -> Result<(Vec<Component>, Vec<Kcv>), String> {
    if entries.len() < 2 {
        return Err("a key is entered as two or more components".into());
    }
    let mut components = Vec::new();
    let mut kcvs = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        components.push(
            Component::from_hex(&e.component)
                .map_err(|err| format!("component {}: {err}", i + 1))?,
        );
        kcvs.push(
            e.kcv
                .trim()
                .to_ascii_uppercase()
                .parse::<Kcv>()
                .map_err(|err| format!("component {}: {err}", i + 1))?,
        );
    }
    Ok((components, kcvs))
}
