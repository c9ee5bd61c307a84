//! The operator's control socket: a unix domain socket (mode 0600, so only the switch's user and
//! root reach it) speaking one JSON request per line and one JSON answer per line. `switchctl` is
//! its client.
//!
//! Requests: `crate::control_api::Request` (typed once for this server and its clients).
//!
//! Answers: `{"ok":true,"data":…}` or `{"ok":false,"error":"…"}`. A PAN is hashed to the card
//! reference at once; only the reference is logged or answered.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use control_socket::Zeroizing;
use serde_json::{json, Value};
use tokio::net::UnixListener;
use tokio::sync::watch;

use crate::app::exceptions::ExceptionDesk;
use crate::app::pin::PinGuard;
use crate::app::zone_keys::ZoneKeys;
use crate::control_api::Request;
use crate::domain::pin::{CardPinRecord, CardRef};
use crate::domain::{TxnRecord, TxnState};

/// Who an unblock is attributed to in the log.
const WHO: &str = "operator via control socket";

/// What the socket serves: the exceptions desk and the optional PIN and key features.
#[derive(Clone)]
pub struct ControlTarget {
    pub zone: Option<Arc<ZoneKeys>>,
    pub pins: Option<Arc<PinGuard>>,
    pub exceptions: Arc<dyn ExceptionDesk>,
}

/// Binds the socket (replacing a stale one) with mode 0600.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    control_socket::bind(path)
}

/// Serves connections until `shutdown`, then removes the socket file. A connection ends with the
/// switch, so an idle client never keeps the key store open.
pub async fn run(
    target: ControlTarget,
    listener: UnixListener,
    path: PathBuf,
    shutdown: watch::Receiver<bool>,
) {
    control_socket::run(listener, path, shutdown, move |line: Zeroizing<String>| {
        let target = target.clone();
        async move {
            match control_socket::parse::<Request>(&line) {
                Ok(req) => control_socket::answer(answer(&target, req).await),
                Err(bad) => bad,
            }
        }
    })
    .await
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
        Request::ExceptionsList => {
            let list = target.exceptions.exceptions().map_err(|e| e.to_string())?;
            Ok(Value::Array(list.iter().map(exception_json).collect()))
        }
        Request::ExceptionResolve {
            txn,
            resolution,
            by,
            reason,
        } => {
            let rec = target
                .exceptions
                .resolve(&txn, resolution, &by, &reason)
                .await
                .map_err(|e| e.to_string())?;
            Ok(exception_json(&rec))
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

/// An exception as the operator sees it (the card only masked).
fn exception_json(rec: &TxnRecord) -> Value {
    json!({
        "txn": rec.key,
        "kind": rec.kind,
        "card": rec.pan_masked,
        "amount_minor": rec.amount.minor,
        "currency": rec.amount.currency.to_string(),
        "state": rec.state.name(),
        "reason": match &rec.state {
            TxnState::Exception { reason } | TxnState::Resolved { reason, .. } => Some(reason.as_str()),
            _ => None,
        },
        "since_ms": rec.updated_at_ms,
        "notes": rec.operator_notes,
    })
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
