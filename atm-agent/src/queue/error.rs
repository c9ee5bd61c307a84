//! Why a queue operation failed, in words an operator understands. The forwarder and the terminal
//! sessions match on these: `Full` means "do not acknowledge the terminal", `NotFound` after a
//! late response is harmless, `Storage`/`Durability` mean the disk is in trouble.

use group_commit::CommitError;

use super::entry::EntryId;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("store-and-forward queue is full ({max_entries} advices held, pending + parked): the switch has not acknowledged for a while")]
    Full { max_entries: usize },
    #[error("invalid queue partition (terminal id) {partition:?}: {reason}")]
    InvalidPartition {
        partition: String,
        reason: &'static str,
    },
    #[error("advice too large to queue: {bytes} bytes encoded (limit {max_bytes})")]
    TooLarge { bytes: usize, max_bytes: usize },
    #[error("queue entry {0} not found (already completed or parked)")]
    NotFound(EntryId),
    #[error("terminal {partition} already has advice {in_flight} in flight; one at a time")]
    Busy {
        partition: String,
        in_flight: EntryId,
    },
    #[error("queue entry {id} is unreadable and was moved to the corrupt tree: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("parked queue entry {id} is unreadable (left where it is): {reason}")]
    UnreadableParked { id: String, reason: String },
    #[error("invalid queue configuration: {0}")]
    Config(String),
    #[error("cannot encode advice for the queue: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("cannot open the queue at {path}: {source}")]
    Open { path: String, source: sled::Error },
    #[error("queue storage error: {0}")]
    Storage(#[from] sled::Error),
    #[error("queue write not made durable: {0}")]
    Durability(#[from] CommitError),
}
