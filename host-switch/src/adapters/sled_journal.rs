//! The journal on sled, with group commit.
//!
//! Every write is a single-key insert (see `write`) and then waits for a flush shared with every
//! concurrent writer (the `group-commit` crate). Other durable switch state (the cards' PIN
//! records, `sled_cards`) lives in trees of the same database and shares the same flushes:
//! [`SledDb`] is that database with its committer.

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
    replies: sled::Tree,
    commits: Arc<GroupCommitter>,
    /// Keys of transactions in a pending-outbound state: built by one scan at open, then kept by
    /// every write (the journal is the only writer of its trees).
    pending: Mutex<BTreeSet<String>>,
}

impl SledJournal {
    /// Opens (or creates) the journal at `path` and starts its flusher thread.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        Self::in_db(&SledDb::open(path)?)
    }

    /// The journal's trees in an open database.
    pub fn in_db(db: &SledDb) -> Result<Self, JournalError> {
        let txns = db.db.open_tree("txns").map_err(storage)?;
        let replies = db.db.open_tree("replies").map_err(storage)?;
        let journal = Self {
            txns,
            replies,
            commits: db.commits.clone(),
            pending: Mutex::new(BTreeSet::new()),
        };
        let pending: BTreeSet<String> = journal
            .txns()?
            .into_iter()
            .filter(|r| r.state.is_pending_outbound())
            .map(|r| r.key)
            .collect();
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
        match self.txns.get(key.as_bytes()).map_err(storage)? {
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

    fn txns(&self) -> Result<Vec<TxnRecord>, JournalError> {
        self.txns
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(storage)?;
                decode(&k, &v)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ResponseCode, TxnKey, TxnKind, TxnState, WalletAccount};
    use protocols::types::{Amount, Currency, Pan, Stan, TerminalId};

    fn record(stan: u32) -> (TxnKey, TxnRecord) {
        let key = TxnKey::new(
            TerminalId::parse("ATM1").unwrap(),
            Stan::new(stan).unwrap(),
            "1125114000",
        );
        let pan = Pan::parse("4761739001010010").unwrap();
        let r = TxnRecord::new(
            &key,
            TxnKind::Withdrawal,
            WalletAccount::for_card(&pan).as_str(),
            pan.masked(),
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

    #[test]
    fn corrupt_record_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let j = SledJournal::open(dir.path()).unwrap();
        j.txns.insert(b"bad", b"not json").unwrap();
        assert!(matches!(j.txn("bad"), Err(JournalError::Corrupt { .. })));
    }
}
