//! The switch's journal in memory: a "durable" map of transactions and recorded answers that
//! survives the switch process, with the faults of a real disk.
//!
//! A write either fails and the switch lives on (a storage error; mostly nothing was written,
//! sometimes the write went in and only its flush failed), or is a crash of the switch process: the write reached the disk or did not (the seed
//! says which), and the process dies. Every later call of the dead incarnation fails, so whatever
//! it was doing stops there; the simulation then starts a new switch over the same contents.
//!
//! Each write is checked on its way in: a transaction's new state must be one the state machine
//! allows from its durable state, and a recorded answer never changes. Breaches are kept in
//! `Durable::violations` for the checker, not panicked on here, so the report names the seed.

use std::collections::BTreeMap;
use std::sync::Arc;

use host_switch::domain::{MessageKey, RecordedReply, TxnRecord};
use host_switch::ports::{Journal, JournalError, JournalWrite};

use crate::world::{lock, World};

#[derive(Debug, Default)]
pub struct Durable {
    pub txns: BTreeMap<String, TxnRecord>,
    pub replies: BTreeMap<String, RecordedReply>,
    pub violations: Vec<String>,
}

impl Durable {
    fn apply(&mut self, write: JournalWrite) {
        if let Some(rec) = write.txn {
            match self.txns.get(&rec.key) {
                Some(prev) if !prev.state.may_become(&rec.state) => self.violations.push(format!(
                    "illegal journal transition of {}: {} -> {}",
                    rec.key,
                    prev.state.name(),
                    rec.state.name()
                )),
                // By name: an offline deposit's advice is born `credit_advised` (or `exception`).
                None if !matches!(
                    rec.state.name(),
                    "hold_requested"
                        | "credit_requested"
                        | "reversed_unseen"
                        | "credit_advised"
                        | "exception"
                ) =>
                {
                    self.violations.push(format!(
                        "journal record {} born in state {}",
                        rec.key,
                        rec.state.name()
                    ))
                }
                _ => {}
            }
            self.txns.insert(rec.key.clone(), rec);
        }
        if let Some((mk, reply)) = write.reply {
            let key = mk.as_string();
            if let Some(prev) = self.replies.get(&key) {
                if *prev != reply {
                    self.violations.push(format!(
                        "recorded answer to {key} changed from {} to {}",
                        prev.code, reply.code
                    ));
                }
            }
            self.replies.insert(key, reply);
        }
    }
}

/// The journal as one switch incarnation sees it.
pub struct SimJournal {
    pub world: Arc<World>,
    pub incarnation: u64,
}

/// Of the failed writes that are not crashes, the share that reached the disk all the same.
const WRITTEN_ANYWAY_PERCENT: u32 = 30;

fn storage(context: &str) -> JournalError {
    JournalError::Storage {
        context: context.to_owned(),
        source: Box::new(std::io::Error::other("simulated disk failure")),
    }
}

impl SimJournal {
    fn alive(&self) -> Result<(), JournalError> {
        if self.world.incarnation() == self.incarnation {
            Ok(())
        } else {
            Err(JournalError::Closed)
        }
    }
}

impl Journal for SimJournal {
    fn reply(&self, key: &MessageKey) -> Result<Option<RecordedReply>, JournalError> {
        self.alive()?;
        Ok(lock(&self.world.durable)
            .replies
            .get(&key.as_string())
            .cloned())
    }

    fn txn(&self, key: &str) -> Result<Option<TxnRecord>, JournalError> {
        self.alive()?;
        Ok(lock(&self.world.durable).txns.get(key).cloned())
    }

    async fn write(&self, write: JournalWrite) -> Result<(), JournalError> {
        let plan = self.world.plan();
        // A durable write takes time: other flows may run meanwhile.
        if self.world.strikes(plan.yield_percent) {
            tokio::task::yield_now().await;
        }
        self.alive()?;
        let what = if self.world.tracing {
            describe(&write)
        } else {
            String::new()
        };
        if !self.world.strikes(plan.journal_percent) {
            lock(&self.world.durable).apply(write);
            note!(self.world, "  journal {what}");
            return Ok(());
        }
        if !self.world.rng().chance(plan.crash_percent) {
            // Mostly nothing was written; sometimes the write went in and only making it durable
            // failed (sled's insert, then a failed flush): the switch cannot tell which.
            let written = self.world.rng().chance(WRITTEN_ANYWAY_PERCENT);
            if written {
                lock(&self.world.durable).apply(write);
            }
            note!(
                self.world,
                "  journal {what}: FAILED (written anyway: {written})"
            );
            return Err(storage("simulated write failure"));
        }
        let reached_disk = self.world.rng().chance(50);
        if reached_disk {
            lock(&self.world.durable).apply(write);
        }
        note!(
            self.world,
            "  journal {what}: CRASH of the switch (write on disk: {reached_disk})"
        );
        self.world.crash(self.incarnation);
        Err(storage("simulated crash"))
    }

    fn txns(&self) -> Result<Vec<TxnRecord>, JournalError> {
        self.alive()?;
        Ok(lock(&self.world.durable).txns.values().cloned().collect())
    }

    fn pending_keys(&self) -> Result<Vec<String>, JournalError> {
        self.alive()?;
        Ok(lock(&self.world.durable)
            .txns
            .values()
            .filter(|r| r.state.is_pending_outbound())
            .map(|r| r.key.clone())
            .collect())
    }
}

fn describe(write: &JournalWrite) -> String {
    let txn = write
        .txn
        .as_ref()
        .map(|r| format!("{} := {}", r.key, r.state.name()))
        .unwrap_or_default();
    let reply = write
        .reply
        .as_ref()
        .map(|(mk, r)| format!(" answer {} = {}", mk.as_string(), r.code))
        .unwrap_or_default();
    format!("{txn}{reply}")
}
