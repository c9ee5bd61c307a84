//! [`SafQueue`]: the store-and-forward queue itself, on three sled trees.
//!
//! - `saf.pending`: advices still owed to the switch, FIFO per partition (see `record.rs`).
//! - `saf.parked`: advices taken out of the flow for an operator; same key, so a future
//!   "requeue" puts them back in their original place.
//! - `saf.corrupt`: records that no longer decode, kept byte for byte for a post-mortem.
//! - `saf.once`: for advices queued with [`SafQueue::enqueue_once`], the caller's key → the
//!   sequence, written in the same transaction as the advice, so a replayed enqueue (a settlement
//!   re-run after a crash) finds it instead of queuing it twice. Removed when the advice completes.
//!
//! Durability: every call that changes what must be sent (`enqueue`, `begin_attempt`,
//! `complete`, `retry_later`, `park`) writes to sled and then waits on the shared
//! [`GroupCommitter`] before returning. Moves between trees are sled transactions, so a crash
//! leaves an entry in exactly one tree. What `due` and `retry_now` change on their own (parking
//! by age, quarantining a corrupt record, a rescheduled attempt) is made durable by the next flush;
//! lost in a crash, it is simply done again.
//!
//! In memory only: which partitions have an advice in flight (nothing is in flight after a
//! restart) and the counters behind `len`/`parked_len` and the `max_entries` bound.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use group_commit::GroupCommitter;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::backoff::{backoff_ms, Jitter};
use super::clock::{Clock, SystemClock};
use super::config::QueueConfig;
use super::entry::{Entry, EntryId};
use super::error::QueueError;
use super::record::{self, Record};
use super::storage::scan_keys;

/// What [`SafQueue::retry_later`] did with the advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// It will be due again at this time.
    Scheduled { next_attempt_at_ms: u64 },
    /// It reached `park_after_failures` and was parked for an operator.
    Parked,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct InFlight {
    pub(super) seq: u64,
    /// Set by `begin_attempt`, which already counted the attempt on disk.
    pub(super) begun: bool,
}

#[derive(Default)]
pub(super) struct State {
    /// partition -> the one advice of that partition in flight.
    pub(super) in_flight: HashMap<String, InFlight>,
}

/// A durable FIFO-per-terminal queue of advices for the switch. `T` is the advice description;
/// it must never carry a clear PAN, track data or a PIN block (it is stored on disk as JSON and
/// shown by `atmctl queue ls --json`).
pub struct SafQueue<T> {
    pub(super) pending: sled::Tree,
    pub(super) parked: sled::Tree,
    pub(super) corrupt: sled::Tree,
    pub(super) once: sled::Tree,
    pub(super) committer: Arc<GroupCommitter>,
    pub(super) config: QueueConfig,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) jitter: Jitter,
    pub(super) next_seq: AtomicU64,
    pub(super) pending_len: AtomicUsize,
    pub(super) parked_len: AtomicUsize,
    /// Guards the in-flight map and serialises read-modify-write of records. Never held across
    /// an `.await`.
    pub(super) state: Mutex<State>,
    _payload: PhantomData<fn() -> T>,
}

impl<T> SafQueue<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Opens (or creates) the queue database at `path`, with its own flusher thread.
    pub fn open(path: impl AsRef<Path>, config: QueueConfig) -> Result<Self, QueueError> {
        Self::open_with_clock(path, config, Arc::new(SystemClock))
    }

    /// [`SafQueue::open`] with another clock (tests, simulations).
    pub fn open_with_clock(
        path: impl AsRef<Path>,
        config: QueueConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, QueueError> {
        config.validate()?;
        let path = path.as_ref();
        let db = open_db(path)?;
        let committer = Arc::new(GroupCommitter::start(db.clone(), path, "saf")?);
        Self::with_db(&db, committer, config, clock)
    }

    /// Opens the queue's trees in a database shared with other agent state, sharing its flusher
    /// (so terminal state and advices written together cost one fsync).
    pub fn with_db(
        db: &sled::Db,
        committer: Arc<GroupCommitter>,
        config: QueueConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, QueueError> {
        config.validate()?;
        let pending = db.open_tree("saf.pending")?;
        let parked = db.open_tree("saf.parked")?;
        let corrupt = db.open_tree("saf.corrupt")?;
        let once = db.open_tree("saf.once")?;
        let (pending_len, max_pending) = scan_keys(&pending)?;
        let (parked_len, max_parked) = scan_keys(&parked)?;
        let (_, max_corrupt) = scan_keys(&corrupt)?;
        // Sequences must grow across restarts (FIFO) and should not be reused (ids in logs):
        // start above every stored key and above sled's crash-safe id generator.
        let floor = max_pending
            .max(max_parked)
            .max(max_corrupt)
            .map_or(0, |m| m.saturating_add(1));
        let next_seq = floor.max(db.generate_id()?);
        tracing::info!(
            pending = pending_len,
            parked = parked_len,
            next_seq,
            "store-and-forward queue opened"
        );
        Ok(Self {
            pending,
            parked,
            corrupt,
            once,
            committer,
            config,
            clock,
            jitter: Jitter::seeded(),
            next_seq: AtomicU64::new(next_seq),
            pending_len: AtomicUsize::new(pending_len),
            parked_len: AtomicUsize::new(parked_len),
            state: Mutex::new(State::default()),
            _payload: PhantomData,
        })
    }

    /// Queues an advice for `partition` (the terminal id). Returns once it is on disk: only then
    /// may the terminal be acknowledged.
    pub async fn enqueue(&self, partition: &str, payload: T) -> Result<EntryId, QueueError> {
        record::validate_partition(partition)?;
        let bytes = record::encode(&Record::new(payload, self.clock.now_ms()))?;
        self.reserve_slot()?;
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = self
            .pending
            .insert(record::encode_key(partition, seq), bytes)
        {
            decrement(&self.pending_len);
            return Err(e.into());
        }
        // On a flush error the advice stays queued (it may reach the disk later): sending an
        // advice the terminal was not acknowledged for is safe, the switch is idempotent.
        self.committer.durable().await?;
        Ok(EntryId {
            partition: partition.to_string(),
            seq,
        })
    }

    /// Queues an advice for `partition` once: if an advice with `once_key` is still held
    /// (pending or parked), returns it instead. A settlement re-run after a crash (the advice
    /// queued, the record that owed it not yet cleared) therefore queues nothing new. Returns once
    /// the advice is on disk.
    pub async fn enqueue_once(
        &self,
        partition: &str,
        once_key: &str,
        payload: T,
    ) -> Result<EntryId, QueueError> {
        use sled::Transactional;
        record::validate_partition(partition)?;
        let index = record::encode_once_key(partition, once_key);
        if let Some(seq) = self.once.get(&index)? {
            let seq = seq
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(u64::MAX);
            let key = record::encode_key(partition, seq);
            if self.pending.contains_key(&key)? || self.parked.contains_key(&key)? {
                tracing::info!(%partition, once_key, seq, "advice already queued: not queued twice");
                self.committer.durable().await?;
                return Ok(EntryId {
                    partition: partition.to_string(),
                    seq,
                });
            }
        }
        let mut rec = Record::new(payload, self.clock.now_ms());
        rec.once_key = Some(once_key.to_owned());
        let bytes = record::encode(&rec)?;
        self.reserve_slot()?;
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        let key = record::encode_key(partition, seq);
        let written = (&self.pending, &self.once).transaction(|(pending, once)| {
            pending.insert(key.as_slice(), bytes.as_slice())?;
            once.insert(index.as_slice(), &seq.to_be_bytes())?;
            Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
        });
        if let Err(e) = written {
            decrement(&self.pending_len);
            return Err(match e {
                sled::transaction::TransactionError::Storage(e) => QueueError::Storage(e),
                sled::transaction::TransactionError::Abort(()) => {
                    QueueError::Storage(sled::Error::ReportableBug("transaction aborted".into()))
                }
            });
        }
        self.committer.durable().await?;
        Ok(EntryId {
            partition: partition.to_string(),
            seq,
        })
    }

    /// The head advice of every partition that may be sent now: not parked, nothing of its
    /// partition in flight, next attempt due at `now_ms`. On the way, heads older than
    /// `park_after_age_ms` are parked and unreadable heads quarantined, so neither blocks its
    /// partition.
    pub fn due(&self, now_ms: u64) -> Vec<Entry<T>> {
        let state = self.lock();
        self.heads_due(&state, now_ms)
    }

    /// [`SafQueue::due`], at most `max` of them, each marked in flight under the same lock, so
    /// that no other pass of the forwarder can pick the same advice before its
    /// [`SafQueue::begin_attempt`]. Each claimed advice must be begun (or [`SafQueue::release`]d).
    pub fn claim_due(&self, now_ms: u64, max: usize) -> Vec<Entry<T>> {
        let mut state = self.lock();
        let mut due = self.heads_due(&state, now_ms);
        due.truncate(max);
        for e in &due {
            state.in_flight.insert(
                e.partition.clone(),
                InFlight {
                    seq: e.seq,
                    begun: false,
                },
            );
        }
        due
    }

    /// Gives back a claimed advice that was not begun: its partition may be offered again.
    pub fn release(&self, id: &EntryId) {
        let mut state = self.lock();
        if state
            .in_flight
            .get(&id.partition)
            .is_some_and(|f| f.seq == id.seq && !f.begun)
        {
            state.in_flight.remove(&id.partition);
        }
    }

    fn heads_due(&self, state: &State, now_ms: u64) -> Vec<Entry<T>> {
        let mut out = Vec::new();
        let mut cursor: Bound<Vec<u8>> = Bound::Unbounded;
        // Each turn removes an entry or moves past a partition: bounded by the entries held.
        let max_turns = self
            .pending_len
            .load(Ordering::SeqCst)
            .saturating_mul(2)
            .saturating_add(16);
        for _ in 0..max_turns {
            let next = match self
                .pending
                .range::<Vec<u8>, _>((cursor.clone(), Bound::Unbounded))
                .next()
            {
                None => break,
                Some(Ok(kv)) => kv,
                Some(Err(e)) => {
                    tracing::error!(error = %e, "store-and-forward queue: cannot read pending advices");
                    break;
                }
            };
            let (key, value) = next;
            let Some((partition, seq)) = record::decode_key(&key) else {
                // A foreign key has no partition to block; skip it even if the move fails.
                self.quarantine(&key, &value, "key not written by this queue");
                cursor = Bound::Excluded(key.to_vec());
                continue;
            };
            if state.in_flight.contains_key(&partition) {
                cursor = Bound::Included(record::partition_end(&partition));
                continue;
            }
            let rec: Record<T> = match record::decode(&value) {
                Ok(rec) => rec,
                Err(reason) => {
                    // Only look behind the head once it is really gone, or FIFO would break.
                    cursor = match self.quarantine(&key, &value, &reason) {
                        true => Bound::Excluded(key.to_vec()),
                        false => Bound::Included(record::partition_end(&partition)),
                    };
                    continue;
                }
            };
            let age_ms = now_ms.saturating_sub(rec.enqueued_at_ms);
            if age_ms > self.config.park_after_age_ms {
                let reason = format!(
                    "older than park_after_age_ms ({age_ms} ms > {} ms)",
                    self.config.park_after_age_ms
                );
                cursor = match self.park_record(&key, rec, reason, now_ms) {
                    Ok(()) => Bound::Excluded(key.to_vec()),
                    Err(_) => Bound::Included(record::partition_end(&partition)),
                };
                continue;
            }
            if rec.next_attempt_at_ms <= now_ms {
                out.push(entry(partition.clone(), seq, rec, None));
            }
            cursor = Bound::Included(record::partition_end(&partition));
        }
        out
    }

    /// Marks an advice as in flight (memory only) without counting an attempt on disk. Prefer
    /// [`SafQueue::begin_attempt`], which makes the repeat flag survive a crash.
    pub fn mark_in_flight(&self, id: &EntryId) -> Result<(), QueueError> {
        let mut state = self.lock();
        check_not_busy(&state, id)?;
        if !self
            .pending
            .contains_key(record::encode_key(&id.partition, id.seq))?
        {
            return Err(QueueError::NotFound(id.clone()));
        }
        state
            .in_flight
            .entry(id.partition.clone())
            .or_insert(InFlight {
                seq: id.seq,
                begun: false,
            });
        Ok(())
    }

    /// Starts a send: durably counts the attempt (so the next send after a crash is a repeat),
    /// marks the advice in flight, and returns it with `repeat` set for this send.
    ///
    /// Refused while the same advice is already begun (`Busy`): a send is never doubled by two
    /// passes that both saw it due. If it fails before the send, a claim on it is released.
    pub async fn begin_attempt(&self, id: &EntryId) -> Result<Entry<T>, QueueError> {
        let begun = {
            let mut state = self.lock();
            check_not_begun(&state, id)?;
            let key = record::encode_key(&id.partition, id.seq);
            let counted = self.read_pending::<T>(&key, id).and_then(|mut rec| {
                rec.attempts = rec.attempts.saturating_add(1);
                self.pending.insert(&key, record::encode(&rec)?)?;
                Ok(rec)
            });
            let rec = match counted {
                Ok(rec) => rec,
                Err(e) => {
                    clear_in_flight(&mut state, id);
                    return Err(e);
                }
            };
            let attempts_before = rec.attempts - 1;
            state.in_flight.insert(
                id.partition.clone(),
                InFlight {
                    seq: id.seq,
                    begun: true,
                },
            );
            entry(id.partition.clone(), id.seq, rec, Some(attempts_before > 0))
        };
        // If the flush fails or this future is dropped, the advice must not stay "in flight".
        let guard = InFlightGuard {
            queue: self,
            id,
            armed: true,
        };
        self.committer.durable().await?;
        guard.disarm();
        Ok(begun)
    }

    /// The switch acknowledged it (00): the advice leaves the queue.
    pub async fn complete(&self, id: &EntryId) -> Result<(), QueueError> {
        {
            let mut state = self.lock();
            clear_in_flight(&mut state, id);
            let Some(removed) = self
                .pending
                .remove(record::encode_key(&id.partition, id.seq))?
            else {
                return Err(QueueError::NotFound(id.clone()));
            };
            decrement(&self.pending_len);
            if let Some(once_key) = record::decode::<Value>(&removed)
                .ok()
                .and_then(|r| r.once_key)
            {
                self.once
                    .remove(record::encode_once_key(&id.partition, &once_key))?;
            }
        }
        self.committer.durable().await?;
        Ok(())
    }

    /// The send failed: records `error`, schedules the next attempt with backoff and jitter and
    /// releases the partition. A 91 or a timeout passes `counts_against_limit: false`: it still
    /// backs off but never parks the advice; other failures park it at `park_after_failures`.
    pub async fn retry_later(
        &self,
        id: &EntryId,
        error: &str,
        counts_against_limit: bool,
    ) -> Result<RetryOutcome, QueueError> {
        let outcome = {
            let mut state = self.lock();
            let began = clear_in_flight(&mut state, id).is_some_and(|f| f.begun);
            let key = record::encode_key(&id.partition, id.seq);
            let mut rec: Record<Value> = self.read_pending(&key, id)?;
            if !began {
                // Sent without begin_attempt: count the send now so the next one is a repeat.
                rec.attempts = rec.attempts.saturating_add(1);
            }
            rec.last_error = Some(record::truncate_error(error));
            if counts_against_limit {
                rec.counted_failures = rec.counted_failures.saturating_add(1);
            }
            let now_ms = self.clock.now_ms();
            if counts_against_limit && rec.counted_failures >= self.config.park_after_failures {
                let reason = format!(
                    "{} failures counted against the limit, last: {}",
                    rec.counted_failures, error
                );
                self.park_record(&key, rec, record::truncate_error(&reason), now_ms)?;
                RetryOutcome::Parked
            } else {
                let delay_ms = backoff_ms(
                    rec.attempts,
                    self.config.retry_backoff_min_ms,
                    self.config.retry_backoff_max_ms,
                    self.jitter.next_u64(),
                );
                rec.next_attempt_at_ms = now_ms.saturating_add(delay_ms);
                self.pending.insert(&key, record::encode(&rec)?)?;
                RetryOutcome::Scheduled {
                    next_attempt_at_ms: rec.next_attempt_at_ms,
                }
            }
        };
        self.committer.durable().await?;
        Ok(outcome)
    }

    /// Takes an advice out of the flow for an operator (never dropped): it moves to the parked
    /// tree and is logged at error level.
    pub async fn park(&self, id: &EntryId, reason: &str) -> Result<(), QueueError> {
        {
            let mut state = self.lock();
            clear_in_flight(&mut state, id);
            let key = record::encode_key(&id.partition, id.seq);
            let rec: Record<Value> = self.read_pending(&key, id)?;
            self.park_record(
                &key,
                rec,
                record::truncate_error(reason),
                self.clock.now_ms(),
            )?;
        }
        self.committer.durable().await?;
        Ok(())
    }

    /// Writes raw bytes into the pending tree, as a damaged disk or a foreign writer would.
    #[cfg(test)]
    pub(super) fn insert_raw_for_test(&self, key: &[u8], value: &[u8]) {
        if self.pending.insert(key, value).ok().flatten().is_none() {
            self.pending_len.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one map insert.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a new advice against `max_entries` (pending + parked), or refuses it.
    fn reserve_slot(&self) -> Result<(), QueueError> {
        let max = self.config.max_entries;
        self.pending_len
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |pending| {
                (pending + self.parked_len.load(Ordering::SeqCst) < max).then_some(pending + 1)
            })
            .map(|_| ())
            .map_err(|_| QueueError::Full { max_entries: max })
    }
}

/// How long `open` waits for a just-dropped handle's file lock (see [`open_db`]).
const LOCK_WAIT_MS_MAX: u64 = 2_000;
const LOCK_RETRY_MS: u64 = 20;

/// Opens the sled database. sled's background I/O threads may hold the file lock for a moment
/// after the last handle of a previous open was dropped (seen right after a quarantine), so a
/// lock conflict is retried briefly before it is reported. Blocking: call at start-up.
fn open_db(path: &Path) -> Result<sled::Db, QueueError> {
    open_sled(path).map_err(|source| QueueError::Open {
        path: path.display().to_string(),
        source,
    })
}

/// Opens a sled database, waiting briefly for a just-dropped handle's file lock (see
/// [`open_db`]); the agent's state store opens its database the same way.
pub(crate) fn open_sled(path: &Path) -> Result<sled::Db, sled::Error> {
    let mut waited_ms = 0;
    loop {
        match sled::open(path) {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e))
                if waited_ms < LOCK_WAIT_MS_MAX && e.to_string().contains("acquire lock") =>
            {
                std::thread::sleep(std::time::Duration::from_millis(LOCK_RETRY_MS));
                waited_ms += LOCK_RETRY_MS;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Builds the forwarder's view of a record. `repeat` defaults to "the next send is a resend".
fn entry<T>(partition: String, seq: u64, rec: Record<T>, repeat: Option<bool>) -> Entry<T> {
    Entry {
        id: EntryId {
            partition: partition.clone(),
            seq,
        },
        partition,
        seq,
        repeat: repeat.unwrap_or(rec.attempts > 0),
        payload: rec.payload,
        attempts: rec.attempts,
        enqueued_at_ms: rec.enqueued_at_ms,
        next_attempt_at_ms: rec.next_attempt_at_ms,
        last_error: rec.last_error,
    }
}

/// Counters never wrap: a miscount (a record vanished under us) must not turn into "full".
pub(super) fn decrement(counter: &AtomicUsize) {
    let _ = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
        Some(n.saturating_sub(1))
    });
}

fn check_not_busy(state: &State, id: &EntryId) -> Result<(), QueueError> {
    match state.in_flight.get(&id.partition) {
        Some(f) if f.seq != id.seq => Err(QueueError::Busy {
            partition: id.partition.clone(),
            in_flight: EntryId {
                partition: id.partition.clone(),
                seq: f.seq,
            },
        }),
        _ => Ok(()),
    }
}

/// Like [`check_not_busy`], and the advice itself must not be begun already.
fn check_not_begun(state: &State, id: &EntryId) -> Result<(), QueueError> {
    check_not_busy(state, id)?;
    match state.in_flight.get(&id.partition) {
        Some(f) if f.begun => Err(QueueError::Busy {
            partition: id.partition.clone(),
            in_flight: id.clone(),
        }),
        _ => Ok(()),
    }
}

fn clear_in_flight(state: &mut State, id: &EntryId) -> Option<InFlight> {
    match state.in_flight.get(&id.partition) {
        Some(f) if f.seq == id.seq => state.in_flight.remove(&id.partition),
        _ => None,
    }
}

/// Clears the in-flight mark of a `begin_attempt` that did not complete (flush error, or the
/// caller dropped the future), so the partition is not blocked until the next restart.
struct InFlightGuard<'a, T> {
    queue: &'a SafQueue<T>,
    id: &'a EntryId,
    armed: bool,
}

impl<T> InFlightGuard<'_, T> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl<T> Drop for InFlightGuard<'_, T> {
    fn drop(&mut self) {
        if self.armed {
            let mut state = self
                .queue
                .state
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            clear_in_flight(&mut state, self.id);
        }
    }
}
