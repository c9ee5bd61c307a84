//! The technician's control socket: a unix domain socket (mode 0600, so only the agent's user and
//! root reach it) speaking one JSON request per line and one JSON answer per line.
//!
//! Requests: `crate::control_api::Request` (typed once for this server and its clients).
//! Answers: `{"ok":true,"data":…}` or `{"ok":false,"error":"…"}`.
//!
//! Every key entry, dispense settlement and requeue is logged on the `audit` target with the
//! connecting process's uid and pid from the kernel (`SO_PEERCRED`), beside any name typed.
//!
//! Key components arrive in clear over this socket (it is the custodians' keyboard, through
//! `atmctl`): the request line is zeroized after parsing, components are kept in zeroizing buffers,
//! and neither requests nor parse errors (which could quote a value) are ever logged or echoed
//! (the `control-socket` crate serves the socket).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keystore::{Component, Kcv};
use serde_json::{json, Value};
use tokio::net::UnixListener;
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::adapters::state_store::PendingRecord;
use crate::app::pin_keys::PinKeys;
use crate::app::registry::TerminalCommand;
use crate::control_api::{Action, ComponentEntry, Request, SettleOutcome};
use crate::domain::pending::OperatorSettlement;
use crate::ports::TerminalStore;
use crate::runtime::AgentServices as Services;
use protocols::types::TerminalId;

/// Binds the socket with mode 0600 (replacing a stale socket, never anything else).
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    control_socket::bind(path)
}

/// Serves technicians until `shutdown`, then removes the socket file.
pub async fn run(
    svc: Arc<Services>,
    listener: UnixListener,
    path: PathBuf,
    shutdown: watch::Receiver<bool>,
) {
    control_socket::run_with_peer(
        listener,
        path,
        shutdown,
        move |line: Zeroizing<String>, peer| {
            let svc = svc.clone();
            async move {
                match control_socket::parse::<Request>(&line) {
                    Ok(req) => answer(&svc, req, peer).await,
                    Err(bad) => bad,
                }
            }
        },
    )
    .await
}

async fn answer(svc: &Services, req: Request, peer: control_socket::Peer) -> Value {
    match req {
        Request::Status => json!({"ok": true, "data": {
            "uplink": if svc.uplink.is_up() { "up" } else { "down" },
            "queue": {"pending": svc.queue.len(), "parked": svc.queue.parked_len()},
            "terminals": svc.registry.snapshot(),
            "dispenses_in_doubt": dispenses(svc, None),
        }}),
        Request::DispenseLs { terminal } => {
            json!({"ok": true, "data": dispenses(svc, terminal.as_deref())})
        }
        Request::DispenseSettle {
            terminal,
            tsn,
            outcome,
            reason,
            by,
        } => control_socket::answer(settle(svc, &terminal, tsn, outcome, reason, by, peer).await),
        Request::Ej {
            terminal,
            last,
            reveal,
        } => control_socket::answer(journal(svc, &terminal, last, reveal, peer)),
        Request::QueueLs => json!({"ok": true, "data": svc.queue.list()}),
        Request::QueueRetry { terminal } => {
            let n = svc.queue.retry_now(terminal.as_deref());
            svc.forwarder.notify_one();
            json!({"ok": true, "data": {"made_due": n}})
        }
        Request::QueueRequeue {
            terminal,
            seq,
            reason,
            by,
        } => control_socket::answer(requeue(svc, terminal, seq, reason, by, peer).await),
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
            tracing::warn!(target: "audit", terminal = %terminal, version = info.version, kcv = %info.kcv, components = c.len(), peer_uid = peer.uid, peer_pid = peer.pid, "terminal master key entered by custodians");
            // A connected terminal gets its PIN key now; otherwise at its next start-up.
            let pin_key = match svc.registry.command(&terminal, TerminalCommand::LoadPinKey) {
                Ok(()) => "loading".to_owned(),
                Err(e) => format!("at next start-up ({e})"),
            };
            Ok(
                json!({"name": info.name, "version": info.version, "kcv": info.kcv, "pin_key": pin_key, "peer_uid": peer.uid}),
            )
        }),
        Request::KeysLoadZoneMaster { components } => keys_answer(svc, |keys| {
            let (c, k) = parse_components(&components)?;
            let info = keys.load_zone_master(&c, &k).map_err(|e| e.to_string())?;
            tracing::warn!(target: "audit", version = info.version, kcv = %info.kcv, components = c.len(), peer_uid = peer.uid, peer_pid = peer.pid, "zone master key entered by custodians");
            svc.zone_master_loaded.notify_one();
            Ok(
                json!({"name": info.name, "version": info.version, "kcv": info.kcv, "peer_uid": peer.uid}),
            )
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

/// The dispenses in doubt, as stored, with their terminal and age.
fn dispenses(svc: &Services, terminal: Option<&str>) -> Vec<Value> {
    let now_ms = crate::clock::now_ms();
    svc.state
        .all_pending()
        .into_iter()
        .filter(|(t, _)| terminal.is_none_or(|want| want == t))
        .map(|(t, p)| {
            let mut v = json!(PendingRecord::from(&p));
            v["terminal"] = json!(t);
            v["age_ms"] = json!(now_ms.saturating_sub(p.since_ms));
            v["needs_technician"] = json!(p.doubt.needs_operator());
            v
        })
        .collect()
}

/// Lines `atmctl ej` shows unless told `--last`.
const EJ_DEFAULT_LINES: usize = 50;
/// The most lines one `atmctl ej` asks for (a control answer is one JSON line).
const EJ_MAX_LINES: usize = 10_000;

/// `atmctl ej`: the terminal's last journal lines, PAN-like digit runs (13 to 19 digits) masked
/// as a PAN is (`protocols::ndc::mask_pan_runs`, the same as `atmctl ndc decode`) unless
/// `reveal` (which is logged on the `audit` target with who asked).
fn journal(
    svc: &Services,
    terminal: &str,
    last: Option<usize>,
    reveal: bool,
    peer: control_socket::Peer,
) -> Result<Value, String> {
    if svc.registry.view(terminal).is_none() {
        return Err(format!("not found: unknown terminal {terminal}"));
    }
    let last = last.unwrap_or(EJ_DEFAULT_LINES).min(EJ_MAX_LINES);
    if reveal {
        tracing::warn!(target: "audit", terminal, lines = last, peer_uid = peer.uid, peer_pid = peer.pid, "electronic journal shown unmasked (atmctl ej --reveal)");
    }
    let lines = svc
        .state
        .journal(terminal, last)
        .map_err(|e| e.to_string())?;
    Ok(json!(lines
        .into_iter()
        .map(|mut l| {
            if !reveal {
                l.text = protocols::ndc::mask_pan_runs(&l.text);
            }
            l
        })
        .collect::<Vec<_>>()))
}

/// `atmctl dispense settle`: refusals start with `not found:`, `invalid:` or `busy:`.
async fn settle(
    svc: &Services,
    terminal: &str,
    tsn: u16,
    outcome: SettleOutcome,
    reason: String,
    by: Option<String>,
    peer: control_socket::Peer,
) -> Result<Value, String> {
    if svc.registry.view(terminal).is_none() {
        return Err(format!("not found: unknown terminal {terminal}"));
    }
    let id = TerminalId::parse(terminal).map_err(|e| format!("invalid: {e}"))?;
    let word = OperatorSettlement {
        dispensed_minor: outcome.dispensed_minor(),
        reason,
        by: by.clone(),
        // The kernel's word for who connected, beside the name the technician gives.
        peer_uid: peer.uid,
        at_ms: crate::clock::now_ms(),
    };
    let done = svc
        .settle_by_operator(&id, tsn, word)
        .await
        .map_err(|e| e.to_string())?;
    Ok(json!({
        "terminal": terminal,
        "tsn": tsn,
        "settlement": format!("{:?}", done.settlement),
        "advice": done.advice.map(|k| format!("{k:?}")),
        "by": by,
        "peer_uid": peer.uid,
    }))
}

/// A parked advice back into the flow: who (name and uid), why, logged on the audit target.
async fn requeue(
    svc: &Services,
    terminal: String,
    seq: u64,
    reason: String,
    by: Option<String>,
    peer: control_socket::Peer,
) -> Result<Value, String> {
    if reason.trim().is_empty() {
        return Err("invalid: a reason is required".into());
    }
    let id = crate::queue::EntryId {
        partition: terminal,
        seq,
    };
    svc.queue.requeue(&id).await.map_err(|e| match e {
        crate::queue::QueueError::NotFound(_) => format!("not found: no parked advice {id}"),
        other => other.to_string(),
    })?;
    tracing::warn!(target: "audit", entry = %id, %reason, by = by.as_deref().unwrap_or(""), peer_uid = peer.uid, peer_pid = peer.pid, "parked advice requeued by an operator");
    svc.forwarder.notify_one();
    Ok(json!({"requeued": id.to_string(), "by": by, "peer_uid": peer.uid, "reason": reason}))
}

fn keys_answer(svc: &Services, f: impl FnOnce(&PinKeys) -> Result<Value, String>) -> Value {
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
            Component::from_hex(e.component_hex())
                .map_err(|err| format!("component {}: {err}", i + 1))?,
        );
        kcvs.push(
            e.kcv()
                .trim()
                .to_ascii_uppercase()
                .parse::<Kcv>()
                .map_err(|err| format!("component {}: {err}", i + 1))?,
        );
    }
    Ok((components, kcvs))
}
