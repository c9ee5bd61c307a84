//! The journal on sled, with group commit.
//!
//! Every write is applied atomically (one sled transaction over the `txns` and `replies` trees)
//! and then waits for a flush shared with every concurrent writer (the `group-commit` crate).

use std::path::Path;

use group_commit::{CommitError, GroupCommitter};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::domain::{MessageKey, RecordedReply, TxnRecord};
use crate::ports::{Journal, JournalError, JournalWrite};

pub struct SledJournal {
    txns: sled::Tree,
    replies: sled::Tree,
    commits: GroupCommitter,
}

impl SledJournal {
    /// Opens (or creates) the journal at `path` and starts its flusher thread.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let db = sled::open(path).map_err(|e| JournalError::Storage(format!("open {}: {e}", path.display())))?;
        let txns = db.open_tree("txns").map_err(storage)?;
        let replies = db.open_tree("replies").map_err(storage)?;
        let commits = GroupCommitter::start(db, "journal").map_err(|e| JournalError::Storage(e.to_string()))?;
        Ok(Self { txns, replies, commits })
    }
}

impl From<CommitError> for JournalError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Closed => JournalError::Closed,
            other => JournalError::Storage(other.to_string()),
        }
    }
}

fn storage(e: sled::Error) -> JournalError {
    JournalError::Storage(e.to_string())
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, JournalError> {
    serde_json::from_slice(bytes).map_err(|e| JournalError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

impl Journal for SledJournal {
    fn reply(&self, key: &MessageKey) -> Result<Option<RecordedReply>, JournalError> {
        let k = key.as_string();
        match self.replies.get(k.as_bytes()).map_err(storage)? {
            Some(v) => decode(k.as_bytes(), &v).map(Some),
            None => Ok(None),
        }
    }

    fn txn(&self, key: &str) -> Result<Option<TxnRecord>, JournalError> {
        match self.txns.get(key.as_bytes()).map_err(storage)? {
            Some(v) => decode(key.as_bytes(), &v).map(Some),
            None => Ok(None),
        }
    }

    async fn write(&self, write: JournalWrite) -> Result<(), JournalError> {
        let txn = match &write.txn {
            Some(r) => Some((r.key.clone(), serde_json::to_vec(r).map_err(|e| JournalError::Storage(e.to_string()))?)),
            None => None,
        };
        let reply = match &write.reply {
            Some((k, r)) => Some((k.as_string(), serde_json::to_vec(r).map_err(|e| JournalError::Storage(e.to_string()))?)),
            None => None,
        };
        (&self.txns, &self.replies)
            .transaction(|(t, r)| {
                if let Some((k, v)) = &txn {
                    t.insert(k.as_bytes(), v.as_slice())?;
                }
                if let Some((k, v)) = &reply {
                    r.insert(k.as_bytes(), v.as_slice())?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e: TransactionError<()>| JournalError::Storage(format!("{e:?}")))?;
        Ok(self.commits.durable().await?)
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
        let key = TxnKey::new(TerminalId::parse("ATM1").unwrap(), Stan::new(stan).unwrap(), "1125114000");
        let pan = Pan::parse("4761739001010010").unwrap();
        let r = TxnRecord::new(&key, TxnKind::Withdrawal, WalletAccount::for_card(&pan).as_str(), pan.masked(), Amount::new(100, Currency::EUR), 1);
        (key, r)
    }

    #[tokio::test]
    async fn writes_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (key, mut rec) = record(1);
        {
            let j = SledJournal::open(dir.path()).unwrap();
            j.write(JournalWrite { txn: Some(rec.clone()), reply: None }).await.unwrap();
            rec.advance(TxnState::Held { hold_id: "h".into() }, 2).unwrap();
            let mk = MessageKey { class: "0100", txn: key.clone() };
            j.write(JournalWrite { txn: Some(rec.clone()), reply: Some((mk, RecordedReply::code(ResponseCode::Approved))) })
                .await
                .unwrap();
        }
        let j = SledJournal::open(dir.path()).unwrap();
        assert_eq!(j.txn(&key.as_string()).unwrap(), Some(rec));
        let mk = MessageKey { class: "0100", txn: key };
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
                tokio::spawn(async move { j.write(JournalWrite { txn: Some(record(i).1), reply: None }).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(j.txns().unwrap().len(), 200);
    }

    #[test]
    fn corrupt_record_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let j = SledJournal::open(dir.path()).unwrap();
        j.txns.insert(b"bad", b"not json").unwrap();
        assert!(matches!(j.txn("bad"), Err(JournalError::Corrupt { .. })));
    }
}
