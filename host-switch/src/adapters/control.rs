//! The operator's control socket: a unix domain socket (mode 0600, so only the switch's user and
//! root reach it) speaking one JSON request per line and one JSON answer per line. `switchctl` is
//! its client.
//!
//! Requests: `crate::control_api::Request` (typed once for this server and its clients).
//!
//! Answers: `{"ok":true,"data":…}` or `{"ok":false,"error":"…"}`. A PAN is turned into the card's
//! keyed reference at once; only the reference is logged or answered.
//!
//! Every decision (a card unblocked, a zone PIN key rotated, an exception resolved) is logged on
//! the `audit` target with the connecting process's uid and pid as the kernel gives them
//! (`SO_PEERCRED`), beside the name the operator typed: a name can be anything, the uid cannot.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use control_socket::{Peer, Zeroizing};
use serde_json::{json, Value};
use tokio::net::UnixListener;
use tokio::sync::watch;

use crate::app::exceptions::ExceptionDesk;
use crate::app::pin::PinGuard;
use crate::app::zone_keys::ZoneKeys;
use crate::control_api::Request;
use crate::domain::pin::CardPinRecord;
use crate::domain::{TxnRecord, TxnState};

/// Who a decision is attributed to where only a text is kept (the PIN step's and the key
/// lifecycle's own log lines): the control socket and the peer's uid and pid.
fn who(peer: Peer) -> String {
    format!(
        "operator via control socket (uid {}, pid {})",
        show(peer.uid),
        show(peer.pid)
    )
}

fn show<T: std::fmt::Display>(id: Option<T>) -> String {
    id.map_or_else(|| "unknown".to_owned(), |v| v.to_string())
}

/// What the socket serves: the exceptions desk and the optional PIN and key features.
#[derive(Clone)]
pub struct ControlTarget {
    pub zone: Option<Arc<ZoneKeys>>,
    pub pins: Option<Arc<PinGuard>>,
    pub exceptions: Arc<dyn ExceptionDesk>,
    /// The bank hosts (the bank host route), for their status.
    pub bank_hosts: Vec<Arc<dyn crate::ports::IssuerHost>>,
}

/// Binds the socket with mode 0600 (replacing a stale socket, never anything else).
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
    control_socket::run_with_peer(
        listener,
        path,
        shutdown,
        move |line: Zeroizing<String>, peer: Peer| {
            let target = target.clone();
            async move {
                match control_socket::parse::<Request>(&line) {
                    Ok(req) => control_socket::answer(answer(&target, req, peer).await),
                    Err(bad) => bad,
                }
            }
        },
    )
    .await
}

async fn answer(target: &ControlTarget, req: Request, peer: Peer) -> Result<Value, String> {
    match req {
        Request::CardStatus { card } => {
            let pins = pins(target)?;
            let card = pins.card_from_operator(&card)?;
            let record = pins.status(&card).map_err(|e| e.to_string())?;
            Ok(card_json(&record, pins.max_tries()))
        }
        Request::CardUnblock { card } => {
            let pins = pins(target)?;
            let card = pins.card_from_operator(&card)?;
            let (before, after) = pins
                .unblock(&card, &who(peer))
                .await
                .map_err(|e| e.to_string())?;
            tracing::warn!(target: "audit", card = %card, was_blocked = before.is_blocked(), peer_uid = peer.uid, peer_pid = peer.pid, "card PIN unblocked by an operator");
            let mut data = card_json(&after, pins.max_tries());
            data["was_blocked"] = json!(before.is_blocked());
            data["peer_uid"] = json!(peer.uid);
            Ok(data)
        }
        Request::ZpkRotate => {
            let info = zone(target)?
                .rotate(&who(peer))
                .await
                .map_err(|e| e.to_string())?;
            tracing::warn!(target: "audit", zpk_version = info.version, kcv = %info.kcv, peer_uid = peer.uid, peer_pid = peer.pid, "zone PIN key rotated by an operator");
            serde_json::to_value(info).map_err(|e| e.to_string())
        }
        Request::KeysList => {
            let keys = zone(target)?.list().map_err(|e| e.to_string())?;
            serde_json::to_value(keys).map_err(|e| e.to_string())
        }
        Request::BankHosts => Ok(Value::Array(
            target
                .bank_hosts
                .iter()
                .map(|h| {
                    let st = h.status();
                    serde_json::json!({
                        "name": h.name(),
                        "connected": st.connected,
                        "breaker": format!("{:?}", st.breaker).to_lowercase(),
                        "queued_advices": st.queued_advices,
                    })
                })
                .collect(),
        )),
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
            tracing::warn!(target: "audit", txn = %rec.key, ?resolution, by = %by, reason = %reason, peer_uid = peer.uid, peer_pid = peer.pid, "exception resolved by an operator");
            let mut data = exception_json(&rec);
            data["peer_uid"] = json!(peer.uid);
            Ok(data)
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

/// An exception as the operator sees it (the card as its reference, its wallet account).
fn exception_json(rec: &TxnRecord) -> Value {
    json!({
        "txn": rec.key,
        "kind": rec.kind,
        "card": rec.account,
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

#[cfg(test)]
mod tests {
    use futures::future::BoxFuture;
    use protocols::types::{Amount, Currency, Stan, TerminalId};

    use super::*;
    use crate::app::exceptions::{Resolution, ResolveError};
    use crate::domain::{TxnKey, TxnKind};
    use crate::ports::JournalError;

    /// A desk that resolves whatever it is asked to: what is tested is the socket's record.
    struct Desk;

    impl ExceptionDesk for Desk {
        fn exceptions(&self) -> Result<Vec<TxnRecord>, JournalError> {
            Ok(Vec::new())
        }

        fn resolve<'a>(
            &'a self,
            _key: &'a str,
            _resolution: Resolution,
            _by: &'a str,
            reason: &'a str,
        ) -> BoxFuture<'a, Result<TxnRecord, ResolveError>> {
            Box::pin(async move {
                let key = TxnKey::new(
                    TerminalId::parse("ATM00001").unwrap(),
                    Stan::new(7).unwrap(),
                    "1204010203",
                );
                let mut rec = TxnRecord::new(
                    &key,
                    TxnKind::Deposit,
                    "acct",
                    Amount::new(5000, Currency::EUR),
                    0,
                );
                rec.state = TxnState::Resolved {
                    by: "ana".into(),
                    reason: reason.to_owned(),
                };
                Ok(rec)
            })
        }
    }

    #[tokio::test]
    async fn a_resolved_exception_is_audited_with_the_peers_uid_and_pid() {
        let logs = testkit::evidence::CapturedLogs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let target = ControlTarget {
            zone: None,
            pins: None,
            exceptions: Arc::new(Desk),
            bank_hosts: Vec::new(),
        };
        let request = Request::ExceptionResolve {
            txn: "ATM00001:000007:1204010203".into(),
            resolution: Resolution::WriteOff,
            by: "ana".into(),
            reason: "account closed".into(),
        };
        let peer = Peer {
            uid: Some(1042),
            pid: Some(31337),
        };
        let data = answer(&target, request, peer).await.unwrap();
        assert_eq!(data["peer_uid"], 1042);
        let text = logs.text();
        let line = text
            .lines()
            .find(|l| l.contains("exception resolved by an operator"))
            .unwrap_or_else(|| panic!("no audit line in {text}"));
        assert!(line.contains("audit"), "{line}");
        assert!(line.contains("peer_uid=1042"), "{line}");
        assert!(line.contains("peer_pid=31337"), "{line}");
        assert!(line.contains("by=ana"), "{line}");
    }

    #[test]
    fn the_text_a_decision_is_attributed_to_names_the_peer() {
        let who = who(Peer {
            uid: Some(0),
            pid: Some(42),
        });
        assert_eq!(who, "operator via control socket (uid 0, pid 42)");
        assert!(super::who(Peer::default()).contains("uid unknown"));
    }
}
