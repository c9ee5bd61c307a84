//! What the operator sees and does through `atmctl queue`: `ls` ([`SafQueue::list`] and the
//! counters), `retry` ([`SafQueue::retry_now`]) and `requeue` ([`SafQueue::requeue`]: a parked
//! advice back into the flow). Nothing here is on the forwarder's path.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::entry::{EntryId, EntryState, EntryView};
use super::error::QueueError;
use super::record;
use super::saf::SafQueue;
use super::storage::move_record;

impl<T> SafQueue<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Makes the waiting head of every partition (or of one) due now, for `atmctl queue retry`.
    /// Advices in flight are left alone. Returns how many were rescheduled. The new schedule is
    /// flushed with the next durable write; lost in a crash, the old backoff applies.
    pub fn retry_now(&self, partition: Option<&str>) -> usize {
        let state = self.lock();
        let heads = match partition {
            Some(p) => self
                .pending
                .scan_prefix(record::partition_prefix(p))
                .next()
                .into_iter()
                .collect(),
            None => self.heads(),
        };
        let mut rescheduled = 0;
        for head in heads {
            let Ok((key, value)) = head else { continue };
            let Some((partition, _)) = record::decode_key(&key) else {
                continue;
            };
            if state.in_flight.contains_key(&partition) {
                continue;
            }
            // An unreadable head is left for `due` to quarantine.
            let Ok(mut rec) = record::decode::<Value>(&value) else {
                continue;
            };
            if rec.next_attempt_at_ms == 0 {
                continue;
            }
            rec.next_attempt_at_ms = 0;
            match record::encode(&rec).map(|bytes| self.pending.insert(&key, bytes)) {
                Ok(Ok(_)) => rescheduled += 1,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, entry = %record::describe_key(&key), "retry_now: cannot reschedule")
                }
                Err(e) => {
                    tracing::error!(error = %e, entry = %record::describe_key(&key), "retry_now: cannot reschedule")
                }
            }
        }
        rescheduled
    }

    /// Puts a parked advice back where it was in its terminal's queue, due now, with its failure
    /// count cleared (its attempts are kept: the next send is a repeat). Durable on return.
    /// `NotFound` when no parked advice has that id.
    pub async fn requeue(&self, id: &EntryId) -> Result<(), QueueError> {
        {
            let _state = self.lock();
            let key = record::encode_key(&id.partition, id.seq);
            let bytes = self
                .parked
                .get(&key)?
                .ok_or_else(|| QueueError::NotFound(id.clone()))?;
            let mut rec: record::Record<Value> =
                record::decode(&bytes).map_err(|reason| QueueError::UnreadableParked {
                    id: id.to_string(),
                    reason,
                })?;
            let reason = rec.parked.take().map(|p| p.reason).unwrap_or_default();
            rec.counted_failures = 0;
            rec.next_attempt_at_ms = 0;
            let bytes = record::encode(&rec)?;
            move_record(&self.parked, &self.pending, &key, &bytes)?;
            self.parked_len.fetch_sub(1, Ordering::SeqCst);
            self.pending_len.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(entry = %id, parked_because = %reason, "parked advice put back in the queue by an operator");
        }
        self.committer.durable().await?;
        Ok(())
    }

    /// Every advice held, pending then parked, in key order (for `atmctl queue ls --json`).
    pub fn list(&self) -> Vec<EntryView> {
        let now_ms = self.clock.now_ms();
        let in_flight: HashMap<String, u64> = self
            .lock()
            .in_flight
            .iter()
            .map(|(p, f)| (p.clone(), f.seq))
            .collect();
        let mut out = Vec::new();
        for (tree, parked) in [(&self.pending, false), (&self.parked, true)] {
            for kv in tree.iter() {
                let Ok((key, value)) = kv else { break };
                let (Some((partition, seq)), Ok(rec)) =
                    (record::decode_key(&key), record::decode::<Value>(&value))
                else {
                    tracing::warn!(entry = %record::describe_key(&key), "queue ls: unreadable record skipped");
                    continue;
                };
                let state = match (parked, in_flight.get(&partition) == Some(&seq)) {
                    (true, _) => EntryState::Parked,
                    (false, true) => EntryState::InFlight,
                    (false, false) => EntryState::Pending,
                };
                out.push(EntryView {
                    id: EntryId {
                        partition: partition.clone(),
                        seq,
                    },
                    partition,
                    seq,
                    attempts: rec.attempts,
                    repeat: rec.attempts > 0,
                    age_ms: now_ms.saturating_sub(rec.enqueued_at_ms),
                    state,
                    next_attempt_at_ms: rec.next_attempt_at_ms,
                    last_error: rec.last_error,
                    parked_reason: rec.parked.map(|p| p.reason),
                    payload: rec.payload,
                });
            }
        }
        out
    }

    /// Advices still owed to the switch (including those in flight).
    pub fn len(&self) -> usize {
        self.pending_len.load(Ordering::SeqCst)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Advices parked for an operator.
    pub fn parked_len(&self) -> usize {
        self.parked_len.load(Ordering::SeqCst)
    }

    /// Records quarantined because they no longer decode.
    pub fn corrupt_len(&self) -> usize {
        self.corrupt.len()
    }
}
