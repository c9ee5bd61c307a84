//! The lab as the field technician and the operator at the end of a run.
//!
//! A real ATM network learns what a terminal paid out in an `E3`, an `E5`, a fault without counts
//! or a power loss from the technician who opens the safe; the lab knows it from its terminals'
//! truth ledgers ([`atm_sim::truth`]). For every dispense (or deposit) the agent still holds in
//! doubt once the terminals have had their closing word, it does what a technician does with
//! `atmctl`:
//!
//! ```text
//! atmctl dispense ls --json
//! atmctl dispense settle ATM TSN --dispensed AMOUNT_MINOR --reason TEXT
//! atmctl dispense settle ATM TSN --nothing --reason TEXT
//! ```
//!
//! with `atmctl`'s own request types over the agent's control socket (as the lab enters keys).
//! Afterwards it reads, as an operator would, what is left for a person: the switch's unresolved
//! exceptions (`switchctl exceptions ls --json`) and the agent's parked advices (`atmctl queue ls
//! --json`). The verdict fails on any of them.
//!
//! [`decide`] is pure: what the truth says for one record.

use std::path::{Path, PathBuf};
use std::time::Duration;

use atm_agent::control_api::{Request as AgentRequest, SettleOutcome};
use atm_sim::truth::{self, TruthRecord};
use atm_sim::Kind;
use serde::Serialize;
use serde_json::Value;

/// Who the agent's journal names for the lab's settlements (`atmctl --by`).
pub const TECHNICIAN: &str = "atm-lab";
/// The reason given with `--nothing`.
pub const REASON_NOTHING: &str = "lab: terminal truth says nothing left";
/// The reason given with `--dispensed`.
pub const REASON_DISPENSED: &str = "lab: terminal truth ledger counted the notes delivered";
/// Rounds of list-and-settle (a record being settled by the agent itself is retried).
const ROUNDS_MAX: usize = 10;

/// One dispense (or deposit) in doubt, as `atmctl dispense ls --json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InDoubt {
    pub terminal: String,
    pub tsn: u16,
    pub stan: u64,
    /// `Withdrawal`, `OnlineDeposit` or `StoredDeposit`.
    pub purpose: String,
    pub amount_minor: u64,
    /// `awaiting`, `unreported` or `uncounted` (and what the terminal reported, for the last).
    pub doubt: String,
}

impl InDoubt {
    /// One entry of the agent's list; `None` when it lacks the terminal or the TSN.
    pub fn from_json(v: &Value) -> Option<Self> {
        let doubt = match (v["doubt"]["kind"].as_str(), v["doubt"]["report"].as_str()) {
            (Some(k), Some(r)) => format!("{k} ({r})"),
            (Some(k), None) => k.to_owned(),
            (None, _) => "awaiting".to_owned(),
        };
        Some(InDoubt {
            terminal: v["terminal"].as_str()?.to_owned(),
            tsn: u16::try_from(v["tsn"].as_u64()?).ok()?,
            stan: v["stan"].as_u64().unwrap_or(0),
            purpose: v["purpose"].as_str().unwrap_or("Withdrawal").to_owned(),
            amount_minor: v["amount_minor"].as_u64().unwrap_or(0),
            doubt,
        })
    }

    pub fn is_deposit(&self) -> bool {
        self.purpose.contains("Deposit")
    }

    pub fn describe(&self) -> String {
        format!(
            "{} TSN {} STAN {} {} {} ({})",
            self.terminal, self.tsn, self.stan, self.purpose, self.amount_minor, self.doubt
        )
    }
}

/// What the technician tells the agent for one record: `Some(amount)` left the ATM (or was
/// taken, for a deposit), `None` for nothing.
///
/// A withdrawal: what the truth ledger says reached the customer for the reply with that TSN
/// (0, or no reply with that TSN ever acted on: nothing). A deposit: the deposit the terminal
/// took in for that TSN, whole, or nothing.
pub fn decide(record: &InDoubt, truth: &[TruthRecord]) -> Option<u64> {
    let minor = if record.is_deposit() {
        truth
            .iter()
            .rev()
            .find(|r| r.kind == Kind::Deposit && r.tsn == Some(record.tsn))
            .map_or(0, |r| r.deposited_minor)
    } else {
        truth::dispensed_for_tsn(truth, record.tsn)
    };
    (minor > 0).then_some(minor)
}

/// What the technician did, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Visit {
    /// One line per record settled: the record and the word given.
    pub settled: Vec<String>,
    /// Records the agent settled itself before the technician's word reached it.
    pub settled_by_agent: usize,
    /// Settlements the agent refused, with its reason (the verdict names them).
    pub refused: Vec<String>,
}

/// Settles every dispense the agent holds in doubt from `truth_by_terminal` (terminal id → its
/// truth records), round after round until the list is empty or only refused records are left.
pub async fn visit(socket: &Path, truth_by_terminal: &[(String, Vec<TruthRecord>)]) -> Visit {
    let mut visit = Visit::default();
    let mut refused_keys: Vec<(String, u16)> = Vec::new();
    for _ in 0..ROUNDS_MAX {
        let Ok(list) = list_in_doubt(socket).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let todo: Vec<InDoubt> = list
            .into_iter()
            .filter(|r| !refused_keys.contains(&(r.terminal.clone(), r.tsn)))
            .collect();
        if todo.is_empty() {
            break;
        }
        let mut busy = false;
        for record in todo {
            let truth = truth_by_terminal
                .iter()
                .find(|(t, _)| *t == record.terminal)
                .map(|(_, r)| r.as_slice())
                .unwrap_or_default();
            let word = decide(&record, truth);
            match settle(socket, &record, word).await {
                Ok(()) => visit.settled.push(format!(
                    "{}: {}",
                    record.describe(),
                    match word {
                        Some(m) => format!("--dispensed {m}"),
                        None => "--nothing".to_owned(),
                    }
                )),
                Err(e) if e.contains("not found:") => visit.settled_by_agent += 1,
                Err(e) if e.contains("busy:") => busy = true,
                Err(e) => {
                    visit
                        .refused
                        .push(format!("{}: refused: {e}", record.describe()));
                    refused_keys.push((record.terminal.clone(), record.tsn));
                }
            }
        }
        if busy {
            // The agent is settling a record itself right now; ask again shortly.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    visit
}

/// `atmctl dispense ls --json`.
pub async fn list_in_doubt(socket: &Path) -> Result<Vec<InDoubt>, String> {
    let data = agent_request(socket, AgentRequest::DispenseLs { terminal: None }).await?;
    Ok(data
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(InDoubt::from_json)
        .collect())
}

/// `atmctl dispense settle ATM TSN --dispensed AMOUNT | --nothing --reason TEXT --by atm-lab`.
async fn settle(socket: &Path, record: &InDoubt, word: Option<u64>) -> Result<(), String> {
    let (outcome, reason) = match word {
        Some(amount_minor) => (SettleOutcome::Dispensed { amount_minor }, REASON_DISPENSED),
        None => (SettleOutcome::Nothing, REASON_NOTHING),
    };
    agent_request(
        socket,
        AgentRequest::DispenseSettle {
            terminal: record.terminal.clone(),
            tsn: record.tsn,
            outcome,
            reason: reason.to_owned(),
            by: Some(TECHNICIAN.to_owned()),
        },
    )
    .await
    .map(|_| ())
}

/// `atmctl queue ls --json`: the parked advices, one line each.
pub async fn parked_advices(socket: &Path) -> Result<Vec<String>, String> {
    let data = agent_request(socket, AgentRequest::QueueLs).await?;
    let entries: Vec<atm_agent::queue::EntryView> =
        serde_json::from_value(data).map_err(|e| format!("atmctl queue ls: {e}"))?;
    Ok(entries
        .iter()
        .filter(|e| e.state == atm_agent::queue::EntryState::Parked)
        .map(|e| {
            format!(
                "{} #{} {} parked: {}",
                e.partition,
                e.seq,
                e.payload["kind"].as_str().unwrap_or("advice"),
                e.parked_reason.as_deref().unwrap_or("no reason given")
            )
        })
        .collect())
}

/// `switchctl exceptions ls --json`: the switch's unresolved exceptions, one line each.
pub async fn exceptions(switch_socket: &Path) -> Result<Vec<String>, String> {
    let socket = switch_socket.to_owned();
    let data = tokio::task::spawn_blocking(move || {
        host_switch::cli::control::send(&socket, &host_switch::control_api::Request::ExceptionsList)
            .map_err(|e| format!("switchctl exceptions ls: {e}"))
    })
    .await
    .map_err(|e| e.to_string())??;
    Ok(data
        .as_array()
        .into_iter()
        .flatten()
        .map(host_switch::cli::control::render_exception)
        .collect())
}

async fn agent_request(socket: &Path, request: AgentRequest) -> Result<Value, String> {
    let socket: PathBuf = socket.to_owned();
    tokio::task::spawn_blocking(move || {
        atm_agent::cli::control::send(&socket, &request).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use atm_sim::truth::Reported;

    fn truth(kind: Kind, tsn: Option<u16>, dispensed: u64, deposited: u64) -> TruthRecord {
        TruthRecord {
            luno: "001".into(),
            seq: 0,
            kind,
            tsn,
            mcn: Some('1'),
            requested_minor: 8000,
            fault: None,
            reported: Reported::UnknownWithoutCounts,
            notes_picked: Vec::new(),
            notes_diverted: Vec::new(),
            notes_delivered: Vec::new(),
            dispensed_minor: dispensed,
            deposited_minor: deposited,
        }
    }

    fn in_doubt(purpose: &str, tsn: u16) -> InDoubt {
        InDoubt::from_json(&serde_json::json!({
            "terminal": "ATM00001", "tsn": tsn, "stan": 12, "purpose": purpose,
            "amount_minor": 8000, "doubt": {"kind": "uncounted", "report": "E3"},
        }))
        .unwrap()
    }

    #[test]
    fn the_technician_settles_with_what_the_customer_really_got() {
        let t = [
            truth(Kind::Withdrawal, Some(4), 8000, 0),
            truth(Kind::Withdrawal, Some(5), 4000, 0),
            truth(Kind::Withdrawal, Some(6), 0, 0),
            truth(Kind::Deposit, Some(7), 0, 3000),
        ];
        assert_eq!(decide(&in_doubt("Withdrawal", 5), &t), Some(4000));
        assert_eq!(
            decide(&in_doubt("Withdrawal", 6), &t),
            None,
            "0 is --nothing"
        );
        assert_eq!(
            decide(&in_doubt("Withdrawal", 9), &t),
            None,
            "a reply the terminal never acted on: nothing left"
        );
        assert_eq!(decide(&in_doubt("OnlineDeposit", 7), &t), Some(3000));
        assert_eq!(decide(&in_doubt("StoredDeposit", 4), &t), None);
        let r = in_doubt("Withdrawal", 5);
        assert_eq!(r.doubt, "uncounted (E3)");
        assert_eq!(
            r.describe(),
            "ATM00001 TSN 5 STAN 12 Withdrawal 8000 (uncounted (E3))"
        );
    }
}
