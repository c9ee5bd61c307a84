//! The journal on sled, with group commit.
//!
//! Every write is applied atomically (one sled transaction over the `txns` and `replies` trees)
//! and then waits for a flush. Flushes are done by one flusher thread: it takes every waiter that
//! queued up while the previous flush ran and covers them all with a single `flush()` — on this
//! machine sled manages about 10k flushes a second, so one flush per transaction would cap the
//! switch far below its goal, while sharing them does not.

use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::thread;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use tokio::sync::oneshot;

use crate::domain::{MessageKey, RecordedReply, TxnRecord};
use crate::ports::{Journal, JournalError, JournalWrite};

type FlushWaiter = oneshot::Sender<Result<(), String>>;

/// Upper bound of waiters one flush covers, so a flood cannot grow a batch without limit.
const MAX_FLUSH_BATCH: usize = 4096;

pub struct SledJournal {
    txns: sled::Tree,
    replies: sled::Tree,
    /// `None` only while dropping.
    flush_tx: Option<std_mpsc::SyncSender<FlushWaiter>>,
    flusher: Option<thread::JoinHandle<()>>,
}

impl Drop for SledJournal {
    /// Stops the flusher and waits for it, so the database is closed (and its lock released) when
    /// the journal is gone — a restart in the same process can open it again at once.
    fn drop(&mut self) {
        self.flush_tx.take();
        if let Some(h) = self.flusher.take() {
            let _ = h.join();
        }
    }
}

impl SledJournal {
    /// Opens (or creates) the journal at `path` and starts its flusher thread.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let db = sled::open(path).map_err(|e| JournalError::Storage(format!("open {}: {e}", path.display())))?;
        let txns = db.open_tree("txns").map_err(storage)?;
        let replies = db.open_tree("replies").map_err(storage)?;
        let (flush_tx, flush_rx) = std_mpsc::sync_channel::<FlushWaiter>(MAX_FLUSH_BATCH * 4);
        let flusher_db = db.clone();
        let flusher = thread::Builder::new()
            .name("journal-flush".into())
            .spawn(move || run_flusher(flusher_db, flush_rx))
            .map_err(|e| JournalError::Storage(format!("cannot start flusher thread: {e}")))?;
        Ok(Self { txns, replies, flush_tx: Some(flush_tx), flusher: Some(flusher) })
    }

    async fn durable(&self) -> Result<(), JournalError> {
        let (tx, rx) = oneshot::channel();
        let sender = self.flush_tx.clone().ok_or(JournalError::Closed)?;
        // A full channel means thousands of writers are already waiting: block this one briefly
        // off the runtime threads rather than dropping its durability guarantee.
        match sender.try_send(tx) {
            Ok(()) => {}
            Err(std_mpsc::TrySendError::Full(tx)) => tokio::task::spawn_blocking(move || sender.send(tx))
                .await
                .map_err(|_| JournalError::Closed)?
                .map_err(|_| JournalError::Closed)?,
            Err(std_mpsc::TrySendError::Disconnected(_)) => return Err(JournalError::Closed),
        }
        rx.await.map_err(|_| JournalError::Closed)?.map_err(JournalError::Storage)
    }
}

fn run_flusher(db: sled::Db, rx: std_mpsc::Receiver<FlushWaiter>) {
    while let Ok(first) = rx.recv() {
        let mut waiters = vec![first];
        while waiters.len() < MAX_FLUSH_BATCH {
            match rx.try_recv() {
                Ok(w) => waiters.push(w),
                Err(_) => break,
            }
        }
        let result = db.flush().map(|_| ()).map_err(|e| format!("flush failed: {e}"));
        if let Err(e) = &result {
            tracing::error!(error = %e, waiters = waiters.len(), "journal flush failed");
        }
        for w in waiters {
            let _ = w.send(result.clone());
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
        self.durable().await
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
