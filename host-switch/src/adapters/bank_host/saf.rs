//! The switch's store-and-forward queue towards one bank host, in the switch's sled database.
//!
//! - `originals`: the card data of every request sent to the host (PAN, expiry, acceptor; never
//!   track 2 or a PIN), sealed under the data protection key and durable *before* the request
//!   leaves, so a timeout reversal can name the card after a crash.
//! - `queue`: advices (0220 completions, 0420 reversals) in arrival order, each the packed first
//!   send, sealed. One worker sends the oldest, one at a time; every send after the first goes as
//!   a repeat (0221, 0421), and the attempt is counted durably *before* the send, so a crash after
//!   a send makes the next one a repeat too. An entry leaves only on an answer from the host.
//! - `ids`: advice id → its state (queued / acknowledged), so queuing the same advice twice (the
//!   resumer and an agent's repeat) has one effect, and a settled advice is answered at once.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

use super::link::{LinkError, Pool};
use super::messages::{self, OriginalCard};
use crate::adapters::sled_cards::{CardDataSeal, SealedData};
use crate::adapters::sled_journal::SledDb;
use crate::domain::issuer::HostTrace;
use protocols::iso8583::Spec;

/// Bytes as stored: sealed under the data protection key, or clear when the switch runs
/// without one (a lab without `[keys]`: warned at start).
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Stored {
    Sealed(SealedData),
    Clear(Vec<u8>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct QueuedAdvice {
    id: String,
    /// The packed first send (0220 or 0420).
    message: Stored,
    attempts: u32,
    queued_at_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum AdviceState {
    Queued { seq: u64 },
    Acknowledged { code: [u8; 2] },
}

#[derive(Debug, thiserror::Error)]
pub enum SafError {
    #[error("storage: {0}")]
    Storage(String),
    #[error("sealing: {0}")]
    Seal(String),
    #[error("the card data of original {0} is not in the store")]
    NoOriginal(String),
}

impl From<sled::Error> for SafError {
    fn from(e: sled::Error) -> Self {
        Self::Storage(e.to_string())
    }
}

pub struct Saf {
    host: String,
    db: SledDb,
    originals: sled::Tree,
    queue: sled::Tree,
    ids: sled::Tree,
    /// Entries that cannot be read back (a damaged record, a key no longer in the store): kept
    /// for an operator, out of the way of the rest.
    parked: sled::Tree,
    seal: Option<Arc<CardDataSeal>>,
    /// Wakes the worker (new advice) and the waiters (an advice acknowledged).
    queued: Notify,
    acknowledged: Notify,
}

fn original_key(trace: &HostTrace) -> String {
    format!("{}:{:06}:{}", trace.mti, trace.stan, trace.transmitted_at)
}

impl Saf {
    pub fn open(
        db: &SledDb,
        host: &str,
        seal: Option<Arc<CardDataSeal>>,
    ) -> Result<Self, SafError> {
        Ok(Self {
            host: host.to_owned(),
            originals: db.db.open_tree(format!("bank_originals:{host}"))?,
            queue: db.db.open_tree(format!("bank_saf:{host}"))?,
            ids: db.db.open_tree(format!("bank_saf_ids:{host}"))?,
            parked: db.db.open_tree(format!("bank_saf_parked:{host}"))?,
            db: SledDb {
                db: db.db.clone(),
                commits: db.commits.clone(),
            },
            seal,
            queued: Notify::new(),
            acknowledged: Notify::new(),
        })
    }

    fn store(&self, clear: &[u8], aad: &[u8]) -> Result<Stored, SafError> {
        match &self.seal {
            Some(seal) => seal
                .seal_bytes(clear, aad)
                .map(Stored::Sealed)
                .map_err(|e| SafError::Seal(e.to_string())),
            None => Ok(Stored::Clear(clear.to_vec())),
        }
    }

    fn load(&self, stored: &Stored, aad: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, SafError> {
        match (stored, &self.seal) {
            (Stored::Sealed(s), Some(seal)) => seal
                .open_bytes(s, aad)
                .map_err(|e| SafError::Seal(e.to_string())),
            (Stored::Sealed(_), None) => Err(SafError::Seal(
                "sealed entry but no data protection key configured".into(),
            )),
            (Stored::Clear(b), _) => Ok(zeroize::Zeroizing::new(b.clone())),
        }
    }

    async fn durable(&self) -> Result<(), SafError> {
        self.db
            .commits
            .durable()
            .await
            .map_err(|e| SafError::Storage(e.to_string()))
    }

    /// Keeps the card data of a request about to be sent; durable on return.
    pub async fn remember(&self, trace: &HostTrace, card: &OriginalCard) -> Result<(), SafError> {
        let key = original_key(trace);
        let clear = zeroize::Zeroizing::new(
            serde_json::to_vec(card).map_err(|e| SafError::Storage(e.to_string()))?,
        );
        let stored = self.store(&clear, key.as_bytes())?;
        let value = serde_json::to_vec(&stored).map_err(|e| SafError::Storage(e.to_string()))?;
        self.originals.insert(key.as_bytes(), value)?;
        self.durable().await
    }

    /// The card data of an original request.
    pub fn original(&self, trace: &HostTrace) -> Result<OriginalCard, SafError> {
        let key = original_key(trace);
        let value = self
            .originals
            .get(key.as_bytes())?
            .ok_or_else(|| SafError::NoOriginal(key.clone()))?;
        let stored: Stored =
            serde_json::from_slice(&value).map_err(|e| SafError::Storage(e.to_string()))?;
        let clear = self.load(&stored, key.as_bytes())?;
        serde_json::from_slice(&clear).map_err(|e| SafError::Storage(e.to_string()))
    }

    /// Whether the advice `id` is known: `Some(true)` acknowledged, `Some(false)` queued.
    pub fn state(&self, id: &str) -> Result<Option<bool>, SafError> {
        Ok(self.ids.get(id.as_bytes())?.map(|v| {
            matches!(
                serde_json::from_slice::<AdviceState>(&v),
                Ok(AdviceState::Acknowledged { .. })
            )
        }))
    }

    /// Queues the packed advice `message` under `id` once; durable on return.
    pub async fn enqueue(&self, id: &str, message: &[u8]) -> Result<(), SafError> {
        if self.state(id)?.is_some() {
            return Ok(());
        }
        let seq = self.db.db.generate_id()?;
        let entry = QueuedAdvice {
            id: id.to_owned(),
            message: self.store(message, id.as_bytes())?,
            attempts: 0,
            queued_at_ms: crate::app::now_ms(),
        };
        let entry = serde_json::to_vec(&entry).map_err(|e| SafError::Storage(e.to_string()))?;
        let state = serde_json::to_vec(&AdviceState::Queued { seq })
            .map_err(|e| SafError::Storage(e.to_string()))?;
        let mut batch_q = sled::Batch::default();
        batch_q.insert(&seq.to_be_bytes(), entry);
        let mut batch_i = sled::Batch::default();
        batch_i.insert(id.as_bytes(), state);
        use sled::Transactional;
        (&self.queue, &self.ids)
            .transaction(|(q, i)| {
                q.apply_batch(&batch_q)?;
                i.apply_batch(&batch_i)?;
                Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| SafError::Storage(format!("{e:?}")))?;
        self.durable().await?;
        tracing::info!(host = %self.host, advice = %id, "advice queued for the bank host");
        self.queued.notify_one();
        Ok(())
    }

    /// Waits up to `timeout` for the advice `id` to be acknowledged.
    pub async fn wait_acknowledged(&self, id: &str, timeout: Duration) -> Result<bool, SafError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let woken = self.acknowledged.notified();
            if self.state(id)? == Some(true) {
                return Ok(true);
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                return Ok(self.state(id)? == Some(true));
            }
        }
    }

    /// How many advices wait for the host.
    pub fn depth(&self) -> usize {
        self.queue.len()
    }

    /// Sends the queue's advices, oldest first, one at a time, until shutdown.
    pub async fn run(
        self: Arc<Self>,
        pool: Arc<Pool>,
        spec: Arc<Spec>,
        retry_min: Duration,
        retry_max: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let new_backoff = || super::retry_backoff(retry_min, retry_max);
        let mut backoff = new_backoff();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let woken = self.queued.notified();
            let sent = match self.send_oldest(&pool, &spec).await {
                Ok(sent) => sent,
                Err(e) => {
                    tracing::warn!(host = %self.host, error = %e, "advice not delivered yet: will repeat");
                    let wait = backoff.next().unwrap_or(retry_max);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => return,
                    }
                    continue;
                }
            };
            if sent {
                backoff = new_backoff();
                continue;
            }
            // Queue empty: wait for work (or a periodic look, in case a notify was missed).
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(retry_max) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Sends the oldest queued advice; `Ok(false)` when the queue is empty.
    async fn send_oldest(&self, pool: &Pool, spec: &Spec) -> Result<bool, String> {
        let Some((seq_bytes, value)) = self.queue.first().map_err(|e| e.to_string())? else {
            return Ok(false);
        };
        if !pool.is_up() {
            return Err("no signed-on connection".into());
        }
        let readable = serde_json::from_slice::<QueuedAdvice>(&value)
            .map_err(|e| format!("queued advice unreadable: {e}"))
            .and_then(|entry| {
                let clear = self
                    .load(&entry.message, entry.id.as_bytes())
                    .map_err(|e| e.to_string())?;
                let msg = spec
                    .unpack(&clear)
                    .map_err(|e| format!("queued advice does not unpack: {e}"))?;
                Ok((entry, msg))
            });
        let (mut entry, mut msg) = match readable {
            Ok(read) => read,
            Err(reason) => {
                tracing::error!(host = %self.host, %reason, "queued advice cannot be read back: parked for an operator, the queue goes on");
                self.parked
                    .insert(&seq_bytes, value)
                    .and_then(|_| self.queue.remove(&seq_bytes))
                    .map_err(|e| e.to_string())?;
                self.durable().await.map_err(|e| e.to_string())?;
                return Ok(true);
            }
        };
        if entry.attempts > 0 {
            messages::as_repeat(&mut msg);
        }
        // Counted before it leaves: after a crash the next send is a repeat.
        entry.attempts += 1;
        let updated = serde_json::to_vec(&entry).map_err(|e| e.to_string())?;
        self.queue
            .insert(&seq_bytes, updated)
            .map_err(|e| e.to_string())?;
        self.durable().await.map_err(|e| e.to_string())?;
        let mti = msg.mti();
        match pool.exchange(msg).await {
            Ok(answer) => {
                let code = answer.response_code().ok().flatten().unwrap_or("??");
                let b = code.as_bytes();
                let c = [
                    b.first().copied().unwrap_or(b'?'),
                    b.get(1).copied().unwrap_or(b'?'),
                ];
                if code != "00" {
                    tracing::warn!(host = %self.host, advice = %entry.id, %mti, code, "bank host acknowledged the advice with a non-zero code: recorded, not repeated");
                } else {
                    tracing::info!(host = %self.host, advice = %entry.id, %mti, attempts = entry.attempts, "bank host acknowledged the advice");
                }
                let state = serde_json::to_vec(&AdviceState::Acknowledged { code: c })
                    .map_err(|e| e.to_string())?;
                use sled::Transactional;
                (&self.queue, &self.ids)
                    .transaction(|(q, i)| {
                        q.remove(&*seq_bytes)?;
                        i.insert(entry.id.as_bytes(), state.clone())?;
                        Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
                    })
                    .map_err(|e| format!("{e:?}"))?;
                self.durable().await.map_err(|e| e.to_string())?;
                self.acknowledged.notify_waiters();
                Ok(true)
            }
            Err(LinkError::Timeout) => Err(format!("{mti}: no answer in time")),
            Err(e) => Err(format!("{mti}: {e:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(stan: u32) -> HostTrace {
        HostTrace {
            host: "acme".into(),
            stan,
            transmitted_at: "1204103000".into(),
            rrn: format!("120410{stan:06}"),
            mti: "0100".into(),
            local_time: "103000".into(),
            local_date: "1204".into(),
        }
    }

    fn card() -> OriginalCard {
        OriginalCard {
            pan: "5413330089020011".into(),
            expiry: Some("2912".into()),
            entry_mode: Some("901".into()),
            acceptor_id: None,
            acceptor_location: None,
        }
    }

    #[tokio::test]
    async fn an_advice_is_queued_once_and_an_original_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = SledDb::open(dir.path()).unwrap();
        let saf = Saf::open(&db, "acme", None).unwrap();
        assert!(matches!(
            saf.original(&trace(1)),
            Err(SafError::NoOriginal(_))
        ));
        saf.remember(&trace(1), &card()).await.unwrap();
        assert_eq!(saf.original(&trace(1)).unwrap().pan, "5413330089020011");
        assert_eq!(saf.state("reversal:x").unwrap(), None);
        saf.enqueue("reversal:x", b"first").await.unwrap();
        saf.enqueue("reversal:x", b"second").await.unwrap();
        assert_eq!(saf.depth(), 1, "queued once per id");
        assert_eq!(saf.state("reversal:x").unwrap(), Some(false));
        assert!(!saf
            .wait_acknowledged("reversal:x", Duration::ZERO)
            .await
            .unwrap());
        // Reopened (a restart): the queue and the original are still there.
        drop(saf);
        let saf = Saf::open(&db, "acme", None).unwrap();
        assert_eq!(saf.depth(), 1);
        assert!(saf.original(&trace(1)).is_ok());
        // Another host's queue is its own.
        assert_eq!(Saf::open(&db, "beta", None).unwrap().depth(), 0);
    }
}
