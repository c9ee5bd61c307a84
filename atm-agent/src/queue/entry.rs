//! What the queue hands out: [`EntryId`] (which advice), [`Entry`] (an advice to send, for the
//! forwarder) and [`EntryView`] (a read-only line for `atmctl queue ls --json`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Names one queued advice: its partition (terminal id) and its sequence number. The sequence is
/// unique within a queue and grows with every enqueue, so per partition it is the FIFO order.
/// Printed and parsed as `PARTITION/SEQ` (e.g. `ATM00001/42`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct EntryId {
    pub partition: String,
    pub seq: u64,
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.partition, self.seq)
    }
}

impl FromStr for EntryId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (partition, seq) = s
            .rsplit_once('/')
            .ok_or_else(|| format!("entry id {s:?}: expected PARTITION/SEQ"))?;
        let seq = seq
            .parse()
            .map_err(|_| format!("entry id {s:?}: sequence is not a number"))?;
        if partition.is_empty() {
            return Err(format!("entry id {s:?}: empty partition"));
        }
        Ok(Self {
            partition: partition.to_string(),
            seq,
        })
    }
}

impl From<EntryId> for String {
    fn from(id: EntryId) -> Self {
        id.to_string()
    }
}

impl TryFrom<String> for EntryId {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// An advice the forwarder may send now (from [`super::SafQueue::due`]) or is sending (from
/// [`super::SafQueue::begin_attempt`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<T> {
    pub id: EntryId,
    pub partition: String,
    pub seq: u64,
    pub payload: T,
    /// Sends begun so far (durably counted). From `begin_attempt` it includes the send just begun.
    pub attempts: u32,
    /// This send (from `begin_attempt`) or the next one (from `due`) is a resend: flag it as a
    /// repeat (0221/0421). Derived from the persisted attempt count, so the two cannot disagree.
    pub repeat: bool,
    pub enqueued_at_ms: u64,
    pub next_attempt_at_ms: u64,
    pub last_error: Option<String>,
}

/// Where an advice stands, for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryState {
    /// Waiting for its turn or for its next attempt.
    Pending,
    /// Sent (or being sent), waiting for the switch's answer.
    InFlight,
    /// Taken out of the flow (too old, too many failures, or by hand); needs an operator.
    Parked,
}

/// One line of `atmctl queue ls --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryView {
    pub id: EntryId,
    pub partition: String,
    pub seq: u64,
    pub attempts: u32,
    pub repeat: bool,
    pub age_ms: u64,
    pub state: EntryState,
    pub next_attempt_at_ms: u64,
    pub last_error: Option<String>,
    /// Why it was parked (parked entries only).
    pub parked_reason: Option<String>,
    /// The stored payload as JSON (the payload type never carries PAN, track data or PIN).
    pub payload: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_print_and_parse_as_partition_slash_seq() {
        let id = EntryId {
            partition: "ATM/0001".into(),
            seq: 42,
        };
        assert_eq!(id.to_string(), "ATM/0001/42");
        assert_eq!("ATM/0001/42".parse::<EntryId>().unwrap(), id);
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"ATM/0001/42\"");
        assert!("ATM0001".parse::<EntryId>().is_err());
        assert!("/4".parse::<EntryId>().is_err());
    }
}
