//! The journal on sled, with group commit.
//!
//! Every write is a single-key insert (see `write`) and then waits for a flush shared with every
//! concurrent writer (the `group-commit` crate). Other durable switch state (the cards' PIN
//! records, `sled_cards`) lives in trees of the same database and shares the same flushes:
//! [`SledDb`] is that database with its committer.
//!
//! Trees: `txns` (the hot journal: open transactions and recently finished ones), `archive`
//! (finished transactions past the retention, moved by [`Journal::archive_finished`]), `replies`
//! (answers to advices), and `open` (the keys of transactions in a pending state, so that start-up
//! reads only those, not the history). The `open` index is written so that a crash can only leave
//! it too large, never too small: a key is added before its record becomes pending and removed
//! after its record stops being pending; the resumer re-reads every record under its lock.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use group_commit::{CommitError, GroupCommitter};

use crate::domain::{MessageKey, RecordedReply, TxnRecord};
use crate::ports::{Journal, JournalError, JournalWrite};

/// The switch's sled database and the group committer every writer to it shares.
#[derive(Clone)]
pub struct SledDb {
    pub db: sled::Db,
    pub commits: Arc<GroupCommitter>,
}

impl SledDb {
    /// Opens (or creates) the database at `path` and starts its flusher thread.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let db = sled::open(path).map_err(|e| failed(format!("open {}", path.display()), e))?;
        let commits = GroupCommitter::start(db.clone(), path, "journal")
            .map_err(|e| failed(format!("start the flusher of {}", path.display()), e))?;
        Ok(Self {
            db,
            commits: Arc::new(commits),
        })
    }
}

pub struct SledJournal {
    txns: sled::Tree,
    archive: sled::Tree,
    replies: sled::Tree,
    open: sled::Tree,
    commits: Arc<GroupCommitter>,
    /// Keys of transactions in a pending-outbound state: the `open` tree read at start-up, then
    /// kept by every write (the journal is the only writer of its trees).
    pending: Mutex<BTreeSet<String>>,
}

/// Marks (in the `open` tree) a journal whose index is complete; older journals are scanned once.
const OPEN_INDEX_MARK: &[u8] = b"\0index-v1";

impl SledJournal {
    /// Opens (or creates) the journal at `path` and starts its flusher thread.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        Self::in_db(&SledDb::open(path)?)
    }

    /// The journal's trees in an open database.
    pub fn in_db(db: &SledDb) -> Result<Self, JournalError> {
        let journal = Self {
            txns: db.db.open_tree("txns").map_err(storage)?,
            archive: db.db.open_tree("archive").map_err(storage)?,
            replies: db.db.open_tree("replies").map_err(storage)?,
            open: db.db.open_tree("open").map_err(storage)?,
            commits: db.commits.clone(),
            pending: Mutex::new(BTreeSet::new()),
        };
        let pending = journal.read_open_index()?;
        if !pending.is_empty() {
            tracing::info!(
                pending = pending.len(),
                "journal opened with ledger work to resume"
            );
        }
        *journal.pending.lock().map_err(|_| JournalError::Closed)? = pending;
        Ok(journal)
    }
}

impl SledJournal {
    /// The keys of open transactions: the `open` tree, or, for a journal written before it
    /// existed, one scan of the hot journal that builds it.
    fn read_open_index(&self) -> Result<BTreeSet<String>, JournalError> {
        if self.open.contains_key(OPEN_INDEX_MARK).map_err(storage)? {
            return self
                .open
                .iter()
                .keys()
                .filter(|k| !matches!(k, Ok(k) if k.as_ref() == OPEN_INDEX_MARK))
                .map(|k| {
                    let k = k.map_err(storage)?;
                    String::from_utf8(k.to_vec()).map_err(|e| JournalError::Corrupt {
                        key: String::from_utf8_lossy(&k).into_owned(),
                        source: Box::new(e),
                    })
                })
                .collect();
        }
        let mut pending = BTreeSet::new();
        for kv in self.txns.iter() {
            let (k, v) = kv.map_err(storage)?;
            let rec: TxnRecord = decode(&k, &v)?;
            if rec.state.is_pending_outbound() {
                self.open.insert(k, &[]).map_err(storage)?;
                pending.insert(rec.key);
            }
        }
        self.open.insert(OPEN_INDEX_MARK, &[]).map_err(storage)?;
        self.open.flush().map_err(storage)?;
        tracing::info!(
            open = pending.len(),
            "journal: index of open transactions built (once, from the whole journal)"
        );
        Ok(pending)
    }
}

/// Moves finished records older than `before_ms` from `hot` to `archive`: each is inserted in the
/// archive before it leaves the hot tree, so a crash in between leaves it in both (reads prefer
/// the hot copy; `txns` lists it once). Blocking: runs off the async runtime.
fn move_finished(
    hot: &sled::Tree,
    archive: &sled::Tree,
    before_ms: u64,
) -> Result<usize, JournalError> {
    let mut moved = 0;
    for kv in hot.iter() {
        let (k, v) = kv.map_err(storage)?;
        let rec: TxnRecord = decode(&k, &v)?;
        if rec.state.is_finished() && rec.updated_at_ms < before_ms {
            archive.insert(&k, v.clone()).map_err(storage)?;
            // Only if unchanged meanwhile (a reversal may have just written it).
            if hot
                .compare_and_swap(&k, Some(v), None::<&[u8]>)
                .map_err(storage)?
                .is_ok()
            {
                moved += 1;
            }
        }
    }
    Ok(moved)
}

impl From<CommitError> for JournalError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Closed => JournalError::Closed,
            other => failed("group commit", other),
        }
    }
}

/// A storage failure, `context` saying what was being done, the cause kept.
fn failed(
    context: impl Into<String>,
    e: impl std::error::Error + Send + Sync + 'static,
) -> JournalError {
    JournalError::Storage {
        context: context.into(),
        source: Box::new(e),
    }
}

pub(crate) fn storage(e: sled::Error) -> JournalError {
    failed("sled", e)
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    key: &[u8],
    bytes: &[u8],
) -> Result<T, JournalError> {
    serde_json::from_slice(bytes).map_err(|e| JournalError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source: Box::new(e),
    })
}

/// Message classes whose answer is kept inside the transaction record they created (a deposit
/// advice creates its transaction under its own key; a completion's key never names a record).
const EMBEDDED_CLASSES: [&str; 3] = ["0100", "0200", "0220"];

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, JournalError> {
    serde_json::to_vec(value).map_err(|e| failed("encode a record", e))
}

impl Journal for SledJournal {
    fn reply(&self, key: &MessageKey) -> Result<Option<RecordedReply>, JournalError> {
        let k = key.as_string();
        if let Some(v) = self.replies.get(k.as_bytes()).map_err(storage)? {
            return decode(k.as_bytes(), &v).map(Some);
        }
        if EMBEDDED_CLASSES.contains(&key.class) {
            return Ok(self.txn(&key.txn.as_string())?.and_then(|r| r.answer));
        }
        Ok(None)
    }

    fn txn(&self, key: &str) -> Result<Option<TxnRecord>, JournalError> {
        if let Some(v) = self.txns.get(key.as_bytes()).map_err(storage)? {
            return decode(key.as_bytes(), &v).map(Some);
        }
        match self.archive.get(key.as_bytes()).map_err(storage)? {
            Some(v) => decode(key.as_bytes(), &v).map(Some),
            None => Ok(None),
        }
    }

    /// Every write is one single-key insert where possible: sled writes an atomic multi-key batch
    /// (a transaction, even `apply_batch`) as a buffer of its own, which costs as much as a flush,
    /// while single-key inserts share one. The answer to the request that created a transaction
    /// (0100, 0200, a 0220 deposit advice) therefore lives inside its record. The one write with two keys (a reversal
    /// remembered before its original) inserts the record first: if a crash loses the answer,
    /// the repeated reversal finds the record and is answered the same way again.
    async fn write(&self, write: JournalWrite) -> Result<(), JournalError> {
        let JournalWrite { txn, reply } = write;
        let pending_change = txn
            .as_ref()
            .map(|rec| (rec.key.clone(), rec.state.is_pending_outbound()));
        if let Some((key, true)) = &pending_change {
            // Before the record: a crash may leave the index too large, never too small.
            self.open.insert(key.as_bytes(), &[]).map_err(storage)?;
        }
        match (txn, reply) {
            (Some(mut rec), Some((mk, answer)))
                if EMBEDDED_CLASSES.contains(&mk.class) && mk.txn.as_string() == rec.key =>
            {
                rec.answer = Some(answer);
                self.txns
                    .insert(rec.key.as_bytes(), encode(&rec)?)
                    .map_err(storage)?;
            }
            (txn, reply) => {
                if let Some(rec) = txn {
                    self.txns
                        .insert(rec.key.as_bytes(), encode(&rec)?)
                        .map_err(storage)?;
                }
                if let Some((mk, answer)) = reply {
                    self.replies
                        .insert(mk.as_string().as_bytes(), encode(&answer)?)
                        .map_err(storage)?;
                }
            }
        }
        if let Some((key, false)) = &pending_change {
            self.open.remove(key.as_bytes()).map_err(storage)?;
        }
        self.commits.durable().await?;
        // Updated once durable: a failed write leaves the index as the disk is.
        if let Some((key, is_pending)) = pending_change {
            let mut pending = self.pending.lock().map_err(|_| JournalError::Closed)?;
            if is_pending {
                pending.insert(key);
            } else {
                pending.remove(&key);
            }
        }
        Ok(())
    }

    fn pending_keys(&self) -> Result<Vec<String>, JournalError> {
        Ok(self
            .pending
            .lock()
            .map_err(|_| JournalError::Closed)?
            .iter()
            .cloned()
            .collect())
    }

    /// Every transaction, the archive's included (each once).
    fn txns(&self) -> Result<Vec<TxnRecord>, JournalError> {
        let mut all = Vec::new();
        for kv in self.txns.iter() {
            let (k, v) = kv.map_err(storage)?;
            all.push(decode(&k, &v)?);
        }
        for kv in self.archive.iter() {
            let (k, v) = kv.map_err(storage)?;
            if !self.txns.contains_key(&k).map_err(storage)? {
                all.push(decode(&k, &v)?);
            }
        }
        Ok(all)
    }

    async fn archive_finished(&self, before_ms: u64) -> Result<usize, JournalError> {
        let (hot, archive) = (self.txns.clone(), self.archive.clone());
        let moved = tokio::task::spawn_blocking(move || move_finished(&hot, &archive, before_ms))
            .await
            .map_err(|e| failed("archive task", e))??;
        if moved > 0 {
            self.commits.durable().await?;
            tracing::info!(moved, "journal: finished transactions archived");
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CardRef, ResponseCode, TxnKey, TxnKind, TxnState};
    use protocols::types::{Amount, Currency, Stan, TerminalId};

    fn record(stan: u32) -> (TxnKey, TxnRecord) {
        let key = TxnKey::new(
            TerminalId::parse("ATM1").unwrap(),
            Stan::new(stan).unwrap(),
            "1125114000",
        );
        let r = TxnRecord::new(
            &key,
            TxnKind::Withdrawal,
            CardRef::for_tests(1).as_str(),
            Amount::new(100, Currency::EUR),
            1,
        );
        (key, r)
    }

    #[tokio::test]
    async fn writes_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (key, mut rec) = record(1);
        {
            let j = SledJournal::open(dir.path()).unwrap();
            j.write(JournalWrite {
                txn: Some(rec.clone()),
                reply: None,
            })
            .await
            .unwrap();
            rec.advance(
                TxnState::Held {
                    hold_id: "h".into(),
                },
                2,
            )
            .unwrap();
            let mk = MessageKey {
                class: "0100",
                txn: key.clone(),
            };
            j.write(JournalWrite {
                txn: Some(rec.clone()),
                reply: Some((mk, RecordedReply::code(ResponseCode::Approved))),
            })
            .await
            .unwrap();
        }
        let j = SledJournal::open(dir.path()).unwrap();
        let stored = j.txn(&key.as_string()).unwrap().unwrap();
        assert_eq!(stored.state, rec.state);
        assert_eq!(
            stored.answer.map(|a| a.code),
            Some(ResponseCode::Approved),
            "the 0100's answer lives in its record"
        );
        let mk = MessageKey {
            class: "0100",
            txn: key,
        };
        assert_eq!(j.reply(&mk).unwrap().unwrap().code, ResponseCode::Approved);
        assert_eq!(j.txns().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn concurrent_writers_all_become_durable() {
        let dir = tempfile::tempdir().unwrap();
        let j = std::sync::Arc::new(SledJournal::open(dir.path()).unwrap());
        let tasks: Vec<_> = (1..=200)
            .map(|i| {
                let j = j.clone();
                tokio::spawn(async move {
                    j.write(JournalWrite {
                        txn: Some(record(i).1),
                        reply: None,
                    })
                    .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(j.txns().unwrap().len(), 200);
    }

    #[tokio::test]
    async fn answers_to_other_messages_are_kept_apart() {
        let dir = tempfile::tempdir().unwrap();
        let j = SledJournal::open(dir.path()).unwrap();
        let (key, mut rec) = record(1);
        rec.state = TxnState::ReversedUnseen;
        let reversal = MessageKey {
            class: "0420",
            txn: TxnKey::new(key.terminal.clone(), Stan::new(2).unwrap(), "1125114000"),
        };
        j.write(JournalWrite {
            txn: Some(rec),
            reply: Some((
                reversal.clone(),
                RecordedReply::code(ResponseCode::Approved),
            )),
        })
        .await
        .unwrap();
        assert_eq!(
            j.reply(&reversal).unwrap().map(|r| r.code),
            Some(ResponseCode::Approved)
        );
        assert_eq!(j.txn(&key.as_string()).unwrap().unwrap().answer, None);
        assert_eq!(
            j.reply(&MessageKey {
                class: "0100",
                txn: key
            })
            .unwrap(),
            None,
            "the original was never answered"
        );
    }

    #[tokio::test]
    async fn pending_work_is_indexed_and_rebuilt_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let (key, mut rec) = record(1);
        {
            let j = SledJournal::open(dir.path()).unwrap();
            rec.state = TxnState::CapturePending {
                hold_id: "h".into(),
                amount_minor: 100,
            };
            j.write(JournalWrite {
                txn: Some(rec.clone()),
                reply: None,
            })
            .await
            .unwrap();
            let mut held = record(2).1;
            held.state = TxnState::Held {
                hold_id: "h2".into(),
            };
            j.write(JournalWrite {
                txn: Some(held),
                reply: None,
            })
            .await
            .unwrap();
            assert_eq!(j.pending_keys().unwrap(), vec![key.as_string()]);
        }
        let j = SledJournal::open(dir.path()).unwrap();
        assert_eq!(
            j.pending_keys().unwrap(),
            vec![key.as_string()],
            "rebuilt by the scan at open"
        );
        rec.state = TxnState::Captured {
            hold_id: "h".into(),
            amount_minor: 100,
        };
        j.write(JournalWrite {
            txn: Some(rec),
            reply: None,
        })
        .await
        .unwrap();
        assert!(j.pending_keys().unwrap().is_empty());
    }

    async fn put(j: &SledJournal, rec: &TxnRecord) {
        j.write(JournalWrite {
            txn: Some(rec.clone()),
            reply: None,
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn finished_transactions_move_to_the_archive_and_are_still_found() {
        let dir = tempfile::tempdir().unwrap();
        let j = SledJournal::open(dir.path()).unwrap();
        let (done_key, mut done) = record(1);
        done.state = TxnState::Captured {
            hold_id: "h".into(),
            amount_minor: 100,
        };
        done.answer = Some(RecordedReply::code(ResponseCode::Approved));
        let (_, mut held) = record(2);
        held.state = TxnState::Held {
            hold_id: "h2".into(),
        };
        let (open_key, mut open) = record(3);
        open.state = TxnState::CapturePending {
            hold_id: "h3".into(),
            amount_minor: 100,
        };
        let (_, mut recent) = record(4);
        recent.state = TxnState::Voided;
        recent.updated_at_ms = 10_000;
        for r in [&done, &held, &open, &recent] {
            put(&j, r).await;
        }

        assert_eq!(
            j.archive_finished(5_000).await.unwrap(),
            1,
            "only the old finished one"
        );
        assert!(!j.txns.contains_key(done_key.as_string()).unwrap());
        assert_eq!(j.txn(&done_key.as_string()).unwrap(), Some(done.clone()));
        assert_eq!(
            j.reply(&MessageKey {
                class: "0100",
                txn: done_key.clone()
            })
            .unwrap()
            .map(|r| r.code),
            Some(ResponseCode::Approved),
            "a replay of an archived request still gets its answer"
        );
        let mut keys: Vec<String> = j.txns().unwrap().into_iter().map(|r| r.key).collect();
        keys.sort();
        assert_eq!(keys.len(), 4, "each once: {keys:?}");
        assert_eq!(j.pending_keys().unwrap(), vec![open_key.as_string()]);
        assert_eq!(j.archive_finished(5_000).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn start_up_reads_the_open_transactions_not_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let (open_key, mut open) = record(1);
        open.state = TxnState::VoidPending { hold_id: None };
        {
            let j = SledJournal::open(dir.path()).unwrap();
            put(&j, &open).await;
            for stan in 2..50 {
                let (_, mut r) = record(stan);
                r.state = TxnState::Voided;
                put(&j, &r).await;
            }
            // History the start-up must not decode: a record no version of the switch can read.
            j.txns
                .insert(b"ATM1:999999:1125114000", b"not json")
                .unwrap();
            j.txns.flush().unwrap();
        }
        let j = SledJournal::open(dir.path()).unwrap();
        assert_eq!(j.pending_keys().unwrap(), vec![open_key.as_string()]);
    }

    #[tokio::test]
    async fn a_journal_from_before_the_open_index_builds_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let (open_key, mut open) = record(1);
        open.state = TxnState::CompensationPending { amount_minor: 100 };
        {
            let db = SledDb::open(dir.path()).unwrap();
            let j = SledJournal::in_db(&db).unwrap();
            put(&j, &open).await;
            drop(j);
            db.db.drop_tree("open").unwrap();
            db.db.flush().unwrap();
        }
        let j = SledJournal::open(dir.path()).unwrap();
        assert_eq!(j.pending_keys().unwrap(), vec![open_key.as_string()]);
        assert!(j.open.contains_key(OPEN_INDEX_MARK).unwrap());
    }

    #[test]
    fn corrupt_record_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let j = SledJournal::open(dir.path()).unwrap();
        j.txns.insert(b"bad", b"not json").unwrap();
        assert!(matches!(j.txn("bad"), Err(JournalError::Corrupt { .. })));
    }
}
