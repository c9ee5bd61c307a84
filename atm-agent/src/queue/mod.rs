//! # The store-and-forward (SAF) queue
//!
//! Every completion advice (0220), reversal (0420) and status advice (0820) the agent owes the
//! switch waits here until the switch acknowledges it. The semantics are jPOS's SAF, made
//! crash-proof (see ARCHITECTURE.md, "Matching, store-and-forward and breakers"):
//!
//! - **Durable before acknowledged.** [`SafQueue::enqueue`] returns only once the advice is on
//!   disk (group commit: many terminals share one fsync); only then is the terminal acknowledged.
//! - **FIFO per terminal, one in flight per terminal.** Entries are keyed by partition (the
//!   terminal id) and a growing sequence; [`SafQueue::due`] offers only the head of a partition
//!   that has nothing in flight.
//! - **Leaves only on a valid response.** [`SafQueue::complete`] on 00; a final decline is
//!   [`SafQueue::park`]ed with its reason (never deleted); anything else is
//!   [`SafQueue::retry_later`] with exponential backoff and jitter. A 91 or a timeout does not
//!   count against `park_after_failures`.
//! - **Repeats are flagged, even across a crash.** [`SafQueue::begin_attempt`] counts the attempt
//!   on disk *before* the send, so any later send (after a `kill -9` too) has `repeat == true`
//!   and goes out as 0221/0421.
//! - **Nothing dropped silently.** Too old or too often refused: parked (a separate tree) and
//!   logged at error level. Unreadable records move to a `corrupt` tree; neither blocks the
//!   terminal's later advices.
//! - **Bounded.** `max_entries` (pending + parked), 64-byte partitions, 64 KiB records.
//!
//! After a restart nothing is in flight: whatever is still queued is offered again, once.
//!
//! The payload type `T` describes the advice. It must never carry a clear PAN, track data or a
//! PIN block: it is stored as plain JSON and printed by `atmctl queue ls --json`.
//!
//! ## The forwarder loop
//!
//! ```ignore
//! loop {
//!     for entry in queue.claim_due(clock.now_ms(), free) { // heads that may go now, claimed
//!         // one task per partition is fine: a partition has at most one entry in flight
//!         let entry = queue.begin_attempt(&entry.id).await?; // durable: attempts+1, in flight
//!         let mti = entry.payload.mti(entry.repeat);          // 0221/0421 when repeat
//!         match send_with_timeout(&entry).await {
//!             Ok(rc) if rc == "00" => queue.complete(&entry.id).await?,
//!             Ok(rc) if is_final_decline(rc) => queue.park(&entry.id, "declined: …").await?,
//!             Ok(rc) if rc == "91" => { queue.retry_later(&entry.id, "91", false).await?; }
//!             Err(Timeout) => { queue.retry_later(&entry.id, "timeout", false).await?; }
//!             Ok(rc) => { queue.retry_later(&entry.id, &format!("response {rc}"), true).await?; }
//!         }
//!     }
//!     sleep(poll_interval).await; // or wake on enqueue
//! }
//! ```
//!
//! ## Files
//! - `saf.rs`: [`SafQueue`]: opening, `enqueue` and the forwarder's calls.
//! - `operator.rs`: `list`, the counters and `retry_now` (for `atmctl queue`).
//! - `storage.rs`: sled plumbing: partition heads, quarantine, moves between trees.
//! - `record.rs`: the key and value format on disk.
//! - `entry.rs`: [`EntryId`], [`Entry`], [`EntryView`].
//! - `config.rs`, `backoff.rs`, `clock.rs`, `error.rs`: settings, retry delays, time, errors.

mod backoff;
mod clock;
mod config;
mod entry;
mod error;
mod operator;
mod record;
mod saf;
mod storage;
#[cfg(test)]
mod tests;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{QueueConfig, MAX_ENTRIES_LIMIT};
pub use entry::{Entry, EntryId, EntryState, EntryView};
pub use error::QueueError;
pub use record::{MAX_PARTITION_BYTES, MAX_RECORD_BYTES};
pub(crate) use saf::open_sled;
pub use saf::{RetryOutcome, SafQueue};
