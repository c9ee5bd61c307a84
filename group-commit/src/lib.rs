//! # group-commit — many writers, one fsync
//!
//! Both the switch journal and the agent's store-and-forward queue must not acknowledge anything
//! before it is on disk. sled manages about 10k flushes a second on our machines, so one flush
//! per write would cap either far below its goal. A [`GroupCommitter`] runs one flusher thread:
//! every writer applies its write to sled, then waits in [`GroupCommitter::durable`]; the flusher
//! takes every waiter that queued up while the previous flush ran and covers them all with a
//! single `flush()`. A waiter is released only by a flush that *started after* it queued, so its
//! write is included.
//!
//! sled's own `flush()` makes writes survive a process crash but ends in `sync_file_range`, which
//! on Linux neither flushes the drive's cache nor the file's metadata: not enough for a power cut.
//! So after each flush the committer also calls `fdatasync` on sled's data file (an fsync applies to
//! the file, whichever descriptor it comes through). That is a real disk sync per batch, which
//! is exactly what group commit exists to share.
#![forbid(unsafe_code)]

use std::fs::File;
use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::thread;

use tokio::sync::oneshot;

type Waiter = oneshot::Sender<Result<(), String>>;

/// Upper bound of waiters one flush covers, so a flood cannot grow a batch without limit.
pub const MAX_BATCH: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    #[error("flush to disk failed: {0}")]
    Flush(String),
    #[error("the store is shut down")]
    Closed,
    #[error("cannot start the flusher thread: {0}")]
    Spawn(String),
    #[error("cannot open the database file {path} to sync it: {reason}")]
    Open { path: String, reason: String },
}

/// Shares flushes of one sled database between concurrent writers. Dropping it stops the
/// flusher thread and waits for it, so the database can be reopened at once.
pub struct GroupCommitter {
    tx: Option<std_mpsc::SyncSender<Waiter>>,
    flusher: Option<thread::JoinHandle<()>>,
}

impl GroupCommitter {
    /// Starts the flusher thread for `db`, opened at `dir` (named `name` for `top`/`ps`).
    pub fn start(db: sled::Db, dir: &Path, name: &str) -> Result<Self, CommitError> {
        let data = dir.join("db");
        let file = File::open(&data).map_err(|e| CommitError::Open {
            path: data.display().to_string(),
            reason: e.to_string(),
        })?;
        let (tx, rx) = std_mpsc::sync_channel::<Waiter>(MAX_BATCH * 4);
        let flusher = thread::Builder::new()
            .name(format!("{name}-flush"))
            .spawn(move || run(db, file, rx))
            .map_err(|e| CommitError::Spawn(e.to_string()))?;
        Ok(Self {
            tx: Some(tx),
            flusher: Some(flusher),
        })
    }

    /// Returns once everything written to the database before this call is on disk.
    pub async fn durable(&self) -> Result<(), CommitError> {
        let (tx, rx) = oneshot::channel();
        let sender = self.tx.clone().ok_or(CommitError::Closed)?;
        // A full channel means thousands of writers are already waiting: block this one briefly
        // off the runtime threads rather than dropping its durability guarantee.
        match sender.try_send(tx) {
            Ok(()) => {}
            Err(std_mpsc::TrySendError::Full(tx)) => {
                tokio::task::spawn_blocking(move || sender.send(tx))
                    .await
                    .map_err(|_| CommitError::Closed)?
                    .map_err(|_| CommitError::Closed)?
            }
            Err(std_mpsc::TrySendError::Disconnected(_)) => return Err(CommitError::Closed),
        }
        rx.await
            .map_err(|_| CommitError::Closed)?
            .map_err(CommitError::Flush)
    }
}

impl Drop for GroupCommitter {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(h) = self.flusher.take() {
            let _ = h.join();
        }
    }
}

fn run(db: sled::Db, file: File, rx: std_mpsc::Receiver<Waiter>) {
    while let Ok(first) = rx.recv() {
        let mut waiters = vec![first];
        while waiters.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(w) => waiters.push(w),
                Err(_) => break,
            }
        }
        let result = db
            .flush()
            .map_err(|e| e.to_string())
            .and_then(|_| file.sync_data().map_err(|e| format!("fdatasync: {e}")));
        if let Err(e) = &result {
            tracing::error!(error = %e, waiters = waiters.len(), "group flush failed");
        }
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn concurrent_writers_are_all_released_after_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let gc = Arc::new(GroupCommitter::start(db.clone(), dir.path(), "test").unwrap());
        let tasks: Vec<_> = (0u32..500)
            .map(|i| {
                let (db, gc) = (db.clone(), gc.clone());
                tokio::spawn(async move {
                    db.insert(i.to_be_bytes(), &b"v"[..]).unwrap();
                    gc.durable().await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(db.len(), 500);
    }

    #[test]
    fn a_directory_without_a_sled_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let err = GroupCommitter::start(db, other.path(), "test")
            .err()
            .unwrap();
        assert!(matches!(err, CommitError::Open { .. }), "{err}");
    }

    #[tokio::test]
    async fn dropping_releases_the_database_for_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let gc = GroupCommitter::start(db.clone(), dir.path(), "test").unwrap();
            db.insert(b"k", &b"v"[..]).unwrap();
            gc.durable().await.unwrap();
        }
        let db = sled::open(dir.path()).unwrap();
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }
}
