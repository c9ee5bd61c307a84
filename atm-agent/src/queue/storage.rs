//! The sled plumbing under [`SafQueue`]: finding partition heads, reading a record (and
//! quarantining it when it no longer decodes), and moving an entry between trees in one
//! transaction so a crash leaves it in exactly one of them.

use std::ops::Bound;
use std::sync::atomic::Ordering;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::entry::EntryId;
use super::error::QueueError;
use super::record::{self, Parked, Record};
use super::saf::{decrement, SafQueue};

impl<T> SafQueue<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// The head (first key) of every partition, by skipping from one partition to the next.
    pub(super) fn heads(&self) -> Vec<sled::Result<(sled::IVec, sled::IVec)>> {
        let mut out = Vec::new();
        let mut cursor: Bound<Vec<u8>> = Bound::Unbounded;
        for _ in 0..=self.pending_len.load(Ordering::SeqCst) {
            let Some(kv) = self
                .pending
                .range::<Vec<u8>, _>((cursor.clone(), Bound::Unbounded))
                .next()
            else {
                break;
            };
            cursor = match &kv {
                Ok((key, _)) => match record::decode_key(key) {
                    Some((partition, _)) => Bound::Included(record::partition_end(&partition)),
                    None => Bound::Excluded(key.to_vec()),
                },
                Err(_) => {
                    out.push(kv);
                    break;
                }
            };
            out.push(kv);
        }
        out
    }

    /// Reads and decodes a pending record; an undecodable one is quarantined.
    pub(super) fn read_pending<P: DeserializeOwned>(
        &self,
        key: &[u8],
        id: &EntryId,
    ) -> Result<Record<P>, QueueError> {
        let bytes = self
            .pending
            .get(key)?
            .ok_or_else(|| QueueError::NotFound(id.clone()))?;
        record::decode(&bytes).map_err(|reason| {
            self.quarantine(key, &bytes, &reason);
            QueueError::Corrupt {
                id: id.to_string(),
                reason,
            }
        })
    }

    /// Moves a record from pending to parked in one transaction and raises it. On failure the
    /// entry stays pending and the error is logged.
    pub(super) fn park_record<P: Serialize>(
        &self,
        key: &[u8],
        mut rec: Record<P>,
        reason: String,
        now_ms: u64,
    ) -> Result<(), QueueError> {
        let entry = record::describe_key(key);
        let age_ms = now_ms.saturating_sub(rec.enqueued_at_ms);
        let attempts = rec.attempts;
        rec.parked = Some(Parked {
            reason: reason.clone(),
            parked_at_ms: now_ms,
        });
        let moved = record::encode(&rec)
            .and_then(|bytes| move_record(&self.pending, &self.parked, key, &bytes));
        match moved {
            Ok(()) => {
                decrement(&self.pending_len);
                self.parked_len.fetch_add(1, Ordering::SeqCst);
                tracing::error!(%entry, %reason, age_ms, attempts, "advice parked: needs an operator (atmctl queue ls)");
                Ok(())
            }
            Err(e) => {
                tracing::error!(%entry, error = %e, "cannot park advice; it stays pending");
                Err(e)
            }
        }
    }

    /// Moves an undecodable record, byte for byte, to the corrupt tree so it blocks nothing.
    /// Returns whether it moved.
    pub(super) fn quarantine(&self, key: &[u8], bytes: &[u8], reason: &str) -> bool {
        let entry = record::describe_key(key);
        match move_record(&self.pending, &self.corrupt, key, bytes) {
            Ok(()) => {
                decrement(&self.pending_len);
                tracing::error!(%entry, %reason, "unreadable advice moved to the corrupt tree");
                true
            }
            Err(e) => {
                tracing::error!(%entry, %reason, error = %e, "unreadable advice could not be quarantined");
                false
            }
        }
    }
}

/// Removes `key` from `from` and stores `bytes` under it in `to`, atomically (also across a crash).
pub(super) fn move_record(
    from: &sled::Tree,
    to: &sled::Tree,
    key: &[u8],
    bytes: &[u8],
) -> Result<(), QueueError> {
    (from, to)
        .transaction(|(from, to)| {
            from.remove(key)?;
            to.insert(key, bytes)?;
            Ok::<_, ConflictableTransactionError<()>>(())
        })
        .map_err(|e| match e {
            TransactionError::Storage(e) => QueueError::Storage(e),
            TransactionError::Abort(()) => {
                QueueError::Storage(sled::Error::ReportableBug("transaction aborted".into()))
            }
        })
}

/// Counts a tree's entries and finds the highest sequence among its keys.
pub(super) fn scan_keys(tree: &sled::Tree) -> Result<(usize, Option<u64>), QueueError> {
    let mut count = 0;
    let mut max_seq = None;
    for key in tree.iter().keys() {
        let key = key?;
        count += 1;
        if let Some((_, seq)) = record::decode_key(&key) {
            max_seq = max_seq.max(Some(seq));
        }
    }
    Ok((count, max_seq))
}
