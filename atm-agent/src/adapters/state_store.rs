//! The agent's own durable state (sled): STAN and TSN counters per terminal, the dispenses whose
//! outcome the terminal has not yet told (the "in doubt" record that survives a crash or a power
//! failure of either side), and the card vault: the card numbers of deposits taken while the
//! switch was unreachable, kept apart from the queue (which technicians list) until advised.
//!
//! Counters are reserved in blocks: the ceiling is made durable before any number under it is
//! used, so after a crash numbers are skipped, never reused — a reused STAN on the same day would
//! make the switch answer with another transaction's recorded reply.

use std::collections::HashMap;
use std::path::Path;

use group_commit::GroupCommitter;
use protocols::types::Pan;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

const BLOCK: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("agent state storage: {0}")]
    Storage(String),
}

fn storage(e: impl std::fmt::Display) -> StateError {
    StateError::Storage(e.to_string())
}

/// What the terminal was told to do with cash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Purpose {
    /// Dispense for a withdrawal the switch approved.
    Withdrawal,
    /// Take a deposit the switch already credited (reverse it if the terminal does not).
    OnlineDeposit,
    /// Take a deposit while the switch is unreachable (advise it once taken).
    StoredDeposit,
}

/// A dispense (or deposit) the terminal was told to do and has not reported on yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDispense {
    pub purpose: Purpose,
    /// Only for a stored deposit: its card number's place in the vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_ref: Option<String>,
    pub tsn: u16,
    pub stan: u32,
    pub transmitted_at: String,
    pub processing_code: String,
    pub amount_minor: u64,
    pub currency: u16,
    pub notes: Vec<u32>,
    pub since_ms: u64,
}

/// The terminal PIN key a terminal confirmed it holds (its version in the key store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedPinKey {
    pub version: u32,
    pub kcv: String,
    pub loaded_at_ms: u64,
}

#[derive(Default)]
struct Counter {
    next: u32,
    ceiling: u32,
}

pub struct StateStore {
    counters: sled::Tree,
    pending: sled::Tree,
    cards: sled::Tree,
    pin_keys: sled::Tree,
    commits: GroupCommitter,
    live: Mutex<HashMap<String, Counter>>,
}

impl StateStore {
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let db = sled::open(path)
            .map_err(|e| StateError::Storage(format!("open {}: {e}", path.display())))?;
        let counters = db.open_tree("counters").map_err(storage)?;
        let pending = db.open_tree("pending_dispenses").map_err(storage)?;
        let cards = db.open_tree("card_vault").map_err(storage)?;
        let pin_keys = db.open_tree("terminal_pin_keys").map_err(storage)?;
        let commits = GroupCommitter::start(db, path, "agent-state").map_err(storage)?;
        Ok(Self {
            counters,
            pending,
            cards,
            pin_keys,
            commits,
            live: Mutex::new(HashMap::new()),
        })
    }

    /// The next value of counter `name` for `terminal`, in `1..=max`, wrapping.
    async fn next(&self, terminal: &str, name: &str, max: u32) -> Result<u32, StateError> {
        let key = format!("{name}:{terminal}");
        let mut live = self.live.lock().await;
        if !live.contains_key(&key) {
            let ceiling = match self.counters.get(key.as_bytes()).map_err(storage)? {
                Some(v) => v.as_ref().try_into().map(u32::from_be_bytes).unwrap_or(0),
                None => 0,
            };
            live.insert(
                key.clone(),
                Counter {
                    next: ceiling,
                    ceiling,
                },
            );
        }
        let counter = live
            .get_mut(&key)
            .ok_or_else(|| storage("counter vanished"))?;
        counter.next = if counter.next >= max {
            1
        } else {
            counter.next + 1
        };
        if counter.next == 1 || counter.next > counter.ceiling {
            // Wrapped or past the reservation: reserve the next block, durably, before use.
            counter.ceiling = counter.next.saturating_add(BLOCK).min(max);
            self.counters
                .insert(key.as_bytes(), &counter.ceiling.to_be_bytes())
                .map_err(storage)?;
            self.commits.durable().await.map_err(storage)?;
        }
        Ok(counter.next)
    }

    pub async fn next_stan(&self, terminal: &str) -> Result<u32, StateError> {
        self.next(terminal, "stan", 999_999).await
    }

    pub async fn next_tsn(&self, terminal: &str) -> Result<u16, StateError> {
        self.next(terminal, "tsn", 9_999).await.map(|v| v as u16)
    }

    /// Records a dispense in doubt, durably, before the terminal is told to dispense.
    pub async fn put_pending(&self, terminal: &str, p: &PendingDispense) -> Result<(), StateError> {
        let v = serde_json::to_vec(p).map_err(storage)?;
        self.pending
            .insert(terminal.as_bytes(), v)
            .map_err(storage)?;
        self.commits.durable().await.map_err(storage)
    }

    pub fn pending(&self, terminal: &str) -> Result<Option<PendingDispense>, StateError> {
        match self.pending.get(terminal.as_bytes()).map_err(storage)? {
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(storage),
            None => Ok(None),
        }
    }

    /// Forgets the terminal's dispense once its outcome has been queued.
    pub async fn clear_pending(&self, terminal: &str) -> Result<(), StateError> {
        self.pending.remove(terminal.as_bytes()).map_err(storage)?;
        self.commits.durable().await.map_err(storage)
    }

    /// Keeps a card number under `reference`, durably, until its stored deposit is advised.
    pub async fn put_card(&self, reference: &str, pan: &Pan) -> Result<(), StateError> {
        self.cards
            .insert(reference.as_bytes(), pan.expose().as_bytes())
            .map_err(storage)?;
        self.commits.durable().await.map_err(storage)
    }

    pub fn card(&self, reference: &str) -> Result<Option<Pan>, StateError> {
        match self.cards.get(reference.as_bytes()).map_err(storage)? {
            Some(v) => Pan::parse(&String::from_utf8_lossy(&v))
                .map(Some)
                .map_err(storage),
            None => Ok(None),
        }
    }

    pub async fn remove_card(&self, reference: &str) -> Result<(), StateError> {
        self.cards.remove(reference.as_bytes()).map_err(storage)?;
        self.commits.durable().await.map_err(storage)
    }

    /// Records, durably, which terminal PIN key version `terminal` holds.
    pub async fn put_pin_key(&self, terminal: &str, key: &LoadedPinKey) -> Result<(), StateError> {
        let v = serde_json::to_vec(key).map_err(storage)?;
        self.pin_keys
            .insert(terminal.as_bytes(), v)
            .map_err(storage)?;
        self.commits.durable().await.map_err(storage)
    }

    pub fn pin_key(&self, terminal: &str) -> Result<Option<LoadedPinKey>, StateError> {
        match self.pin_keys.get(terminal.as_bytes()).map_err(storage)? {
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(storage),
            None => Ok(None),
        }
    }

    /// Every dispense still in doubt, by terminal.
    pub fn all_pending(&self) -> Vec<(String, PendingDispense)> {
        self.pending
            .iter()
            .filter_map(|kv| kv.ok())
            .filter_map(|(k, v)| {
                Some((
                    String::from_utf8_lossy(&k).into_owned(),
                    serde_json::from_slice(&v).ok()?,
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stans_are_never_reused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let first: Vec<u32> = {
            let s = StateStore::open(dir.path()).unwrap();
            let mut v = Vec::new();
            for _ in 0..5 {
                v.push(s.next_stan("ATM1").await.unwrap());
            }
            v
        };
        assert_eq!(first, vec![1, 2, 3, 4, 5]);
        let s = StateStore::open(dir.path()).unwrap();
        let after = s.next_stan("ATM1").await.unwrap();
        assert!(after > 5, "restart skips the reserved block, got {after}");
        assert_eq!(
            s.next_stan("ATM2").await.unwrap(),
            1,
            "counters are per terminal"
        );
    }

    #[tokio::test]
    async fn tsn_wraps_at_9999() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        s.live.lock().await.insert(
            "tsn:T".into(),
            Counter {
                next: 9_998,
                ceiling: 9_999,
            },
        );
        assert_eq!(s.next_tsn("T").await.unwrap(), 9_999);
        assert_eq!(s.next_tsn("T").await.unwrap(), 1);
    }

    #[tokio::test]
    async fn pending_dispense_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = PendingDispense {
            purpose: Purpose::Withdrawal,
            card_ref: None,
            tsn: 7,
            stan: 12,
            transmitted_at: "1125114000".into(),
            processing_code: "011000".into(),
            amount_minor: 5000,
            currency: 978,
            notes: vec![0, 0, 1, 0],
            since_ms: 1,
        };
        {
            let s = StateStore::open(dir.path()).unwrap();
            s.put_pending("ATM1", &p).await.unwrap();
        }
        let s = StateStore::open(dir.path()).unwrap();
        assert_eq!(s.pending("ATM1").unwrap(), Some(p));
        assert_eq!(s.all_pending().len(), 1);
        s.clear_pending("ATM1").await.unwrap();
        assert_eq!(s.pending("ATM1").unwrap(), None);
    }
}
