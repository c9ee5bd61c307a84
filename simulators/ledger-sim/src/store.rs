//! State of the ledger: the books in memory, every change appended to sled as one record.
//!
//! The books (accounts, holds, movements, the `?reference=` index and idempotency records) live
//! in memory behind one [`Mutex`], held only while an operation validates and applies itself,
//! never across an await. Every operation that changes something appends exactly ONE record to
//! the sled tree `ops`, keyed by a monotonic u64 (big-endian, so iteration is in apply order),
//! holding the operation's complete effect: the new versions of the touched accounts and hold,
//! the movement (numbered by the record's key) and the idempotency record. A single-key insert
//! shares sled's I/O buffer and flush with its neighbours, where a multi-tree transaction costs a
//! buffer of its own. The record is inserted under the lock, before memory changes: log order is
//! apply order, and a failed insert leaves memory untouched and answers an error. Refusals write
//! nothing. On open, the `ops` tree is replayed in order to rebuild the books.
//!
//! Durability: after the insert, the caller waits for a *group commit* (the workspace's
//! `group-commit` crate, as the switch journal and the agent's queue do): one sled flush plus an
//! `fdatasync` of the data file covers every record inserted before it started, so concurrent
//! requests share flushes. Nothing is answered before that flush.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use group_commit::GroupCommitter;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::domain::{
    self, Account, AmountMinor, CaptureEffect, Currency, CustomerAccount, DomainError, Hold,
    HoldStatus, IdempotencyKey, Movement, MovementKind, Reference, Transaction, TransactionKind,
    VoidEffect,
};

/// Most movements one `list_movements` call returns.
pub const MOVEMENTS_PAGE_MAX: usize = 10_000;
/// Most holds one `holds` call returns.
pub const HOLDS_PAGE_MAX: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Rejected(#[from] DomainError),
    #[error("storage error: {0}")]
    Storage(#[from] sled::Error),
    #[error("stored record {what} could not be read: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("the write could not be made durable")]
    Durability(#[source] group_commit::CommitError),
    #[error("the storage worker failed")]
    Worker(#[source] tokio::task::JoinError),
}

/// An answer and whether it was replayed (no new effect) rather than freshly applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded<T> {
    pub value: T,
    pub replayed: bool,
}

/// What the idempotency tree keeps per (operation, key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// SHA-256 (hex) of the canonical request content.
    pub digest: String,
    /// The answer given the first time.
    pub response: serde_json::Value,
}

// ---------------------------------------------------------------------------------------------
// Commands: validated requests, as the HTTP layer hands them over.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct NewHold {
    pub key: IdempotencyKey,
    pub account: CustomerAccount,
    pub amount: AmountMinor,
    pub currency: Currency,
    pub reference: Reference,
}

#[derive(Debug, Clone)]
pub struct CaptureHold {
    pub key: IdempotencyKey,
    pub hold_id: String,
    pub amount: AmountMinor,
}

#[derive(Debug, Clone)]
pub struct VoidHold {
    pub key: IdempotencyKey,
    pub hold_id: String,
}

#[derive(Debug, Clone)]
pub struct NewTransaction {
    pub key: IdempotencyKey,
    pub account: CustomerAccount,
    pub kind: TransactionKind,
    pub amount: AmountMinor,
    pub currency: Currency,
    pub reference: Reference,
}

#[derive(Debug, Clone)]
pub struct OpenAccount {
    pub account: CustomerAccount,
    pub currency: Currency,
    /// Opening balance, funded from `funding:<CUR>`; 0 opens an empty account.
    pub balance_minor: u64,
}

/// Result of the consistency check behind `GET /admin/invariants`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invariants {
    /// Sum of signed balances over all accounts, per currency: zero when the books balance.
    pub sum_minor_by_currency: BTreeMap<String, i128>,
    /// Holds with more than one capture movement.
    pub holds_captured_twice: u64,
    /// Accounts whose `held_minor` differs from the sum of their open holds.
    pub held_minor_mismatches: u64,
    pub accounts: u64,
    pub holds: u64,
    /// Holds still open (status `held`: neither captured nor voided). Not a broken invariant —
    /// a hold is open between authorization and completion — but once every client has
    /// finished its work, each one is money reserved that nobody will release.
    #[serde(default)]
    pub open_holds: u64,
    pub movements: u64,
    pub ok: bool,
}

/// Balance view of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub account: String,
    pub currency: Currency,
    pub balance_minor: i64,
    pub held_minor: u64,
    pub available_minor: i64,
}

/// Holds in the order they were placed, as `GET /admin/holds` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldList {
    /// At most the `limit` asked for, oldest first.
    pub holds: Vec<Hold>,
    /// How many holds match in all (more than `holds.len()` when the limit cut the list).
    pub count: u64,
}

/// One page of movements, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovementPage {
    pub movements: Vec<Movement>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The books in memory, and the log record of one operation
// ---------------------------------------------------------------------------------------------

/// Everything the ledger knows, rebuilt from `ops` on open.
#[derive(Default)]
struct Books {
    accounts: HashMap<String, Account>,
    holds: HashMap<String, Hold>,
    /// Movement number → movement, in posting order.
    movements: BTreeMap<u64, Movement>,
    /// Reference → movement numbers, ascending (numbers are appended in log order).
    by_reference: HashMap<String, Vec<u64>>,
    /// operation ‖ 0x00 ‖ client key → record.
    idempotency: HashMap<String, IdempotencyRecord>,
    /// Key of the next `ops` record; also the number behind `hold-N`, `txn-N` and `mv-N`.
    next: u64,
}

/// The complete effect of one operation: one value in the `ops` tree.
#[derive(Debug, Default, Serialize, Deserialize)]
struct OpRecord {
    /// New versions of the accounts the operation touched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    accounts: Vec<Account>,
    /// New version of the hold it created or changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hold: Option<Hold>,
    /// The movement it posted; its number is the record's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    movement: Option<Movement>,
    /// (idempotency key, record) it recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idempotency: Option<(String, IdempotencyRecord)>,
}

impl Books {
    fn apply(&mut self, n: u64, op: OpRecord) {
        for account in op.accounts {
            self.accounts.insert(account.account.clone(), account);
        }
        if let Some(hold) = op.hold {
            self.holds.insert(hold.hold_id.clone(), hold);
        }
        if let Some(movement) = op.movement {
            self.by_reference
                .entry(movement.reference.clone())
                .or_default()
                .push(n);
            self.movements.insert(n, movement);
        }
        if let Some((key, record)) = op.idempotency {
            self.idempotency.insert(key, record);
        }
        self.next = self.next.max(n.saturating_add(1));
    }

    fn customer(&self, account: &str) -> Result<Account, StoreError> {
        match self.accounts.get(account) {
            Some(found) => Ok(found.clone()),
            None => Err(DomainError::UnknownAccount(account.chars().take(70).collect()).into()),
        }
    }

    fn account_or_new(&self, account: &str, currency: Currency) -> Account {
        self.accounts
            .get(account)
            .cloned()
            .unwrap_or_else(|| Account::new(account, currency))
    }

    fn hold(&self, hold_id: &str) -> Result<Hold, StoreError> {
        match self.holds.get(hold_id) {
            Some(found) => Ok(found.clone()),
            None => Err(DomainError::UnknownHold(hold_id.chars().take(70).collect()).into()),
        }
    }

    /// The recorded answer for this key, if the same content came before; a conflict if other
    /// content came with the same key; `None` for a new key.
    fn replay<T: DeserializeOwned>(
        &self,
        idem_key: &str,
        digest: &str,
        client_key: &IdempotencyKey,
    ) -> Result<Option<T>, StoreError> {
        let Some(record) = self.idempotency.get(idem_key) else {
            return Ok(None);
        };
        if record.digest != digest {
            return Err(DomainError::IdempotencyConflict(client_key.as_str().to_owned()).into());
        }
        T::deserialize(&record.response)
            .map(Some)
            .map_err(|e| corrupt(idem_key, &e.to_string()))
    }
}

fn record<T: Serialize>(
    idem_key: String,
    digest: &str,
    response: &T,
) -> Result<(String, IdempotencyRecord), StoreError> {
    let response =
        serde_json::to_value(response).map_err(|e| corrupt(&idem_key, &e.to_string()))?;
    Ok((
        idem_key,
        IdempotencyRecord {
            digest: digest.to_owned(),
            response,
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

pub struct Store {
    db: sled::Db,
    /// Operation number (u64, big-endian) → [`OpRecord`] (JSON).
    ops: sled::Tree,
    books: Mutex<Books>,
    /// Shares one flush and fdatasync among concurrent writers; dropping it stops its thread.
    commit: GroupCommitter,
}

impl Store {
    /// Opens (or creates) the database at `path` and replays its log. Blocking.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(path).open()?;
        let ops = db.open_tree("ops")?;
        // Databases of the earlier per-tree format (one transaction over five trees per
        // operation) are not read: opening one as empty would fund the seeds a second time.
        if ops.is_empty() && db.tree_names().iter().any(|name| &name[..] == b"accounts") {
            let legacy = db.open_tree("accounts")?;
            if !legacy.is_empty() {
                return Err(corrupt(
                    &path.display().to_string(),
                    "written by an older ledger-sim (per-tree format): use a new --db path",
                ));
            }
        }
        let mut books = Books::default();
        for entry in ops.iter() {
            let (key, value) = entry?;
            let n = u64_suffix(&key)
                .filter(|_| key.len() == 8)
                .ok_or_else(|| corrupt("ops", "key"))?;
            let op = decode::<OpRecord>(&value, &format!("op {n}"))?;
            books.apply(n, op);
        }
        let commit =
            GroupCommitter::start(db.clone(), path, "ledger").map_err(StoreError::Durability)?;
        Ok(Store {
            db,
            ops,
            books: Mutex::new(books),
            commit,
        })
    }

    /// Runs a write (an in-memory apply and at most one single-key insert, both short), then
    /// waits until it is on disk.
    pub async fn write<T, F>(self: &Arc<Self>, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let value = op(self)?;
        // Replays wait too: the record they read may still be waiting for its own flush.
        self.commit
            .durable()
            .await
            .map_err(StoreError::Durability)?;
        Ok(value)
    }

    /// Runs a read on the blocking pool (pages and the invariant check may be long).
    pub async fn read<T, F>(self: &Arc<Self>, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || op(&store))
            .await
            .map_err(StoreError::Worker)?
    }

    /// Flushes everything now (shutdown, tests). Blocking.
    pub fn flush_now(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn books(&self) -> MutexGuard<'_, Books> {
        self.books
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends `op` as record `n` (= `books.next`), then applies it to memory. Called with the
    /// books locked, so the log order is the apply order; if the insert fails, memory is left
    /// as it was and the caller answers an error.
    fn commit(&self, books: &mut Books, n: u64, op: OpRecord) -> Result<(), StoreError> {
        debug_assert_eq!(n, books.next);
        let bytes =
            serde_json::to_vec(&op).map_err(|e| corrupt(&format!("op {n}"), &e.to_string()))?;
        if let Err(error) = self.ops.insert(n.to_be_bytes(), bytes) {
            tracing::error!(%error, op = n, "ledger log append failed");
            return Err(error.into());
        }
        books.apply(n, op);
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Operations (call writes through `write`, reads through `read`)
    // -----------------------------------------------------------------------------------------

    /// Opens a customer account with an opening balance funded from `funding:<CUR>`. Opening an
    /// account that exists in the same currency changes nothing and returns it (`replayed`).
    pub fn open_account(
        &self,
        cmd: &OpenAccount,
        now: &str,
    ) -> Result<Recorded<Balance>, StoreError> {
        let mut books = self.books();
        if let Some(existing) = books.accounts.get(cmd.account.as_str()) {
            if existing.currency != cmd.currency {
                return Err(DomainError::AccountExists {
                    account: existing.account.clone(),
                    currency: existing.currency,
                }
                .into());
            }
            return Ok(Recorded {
                value: balance_of(existing),
                replayed: true,
            });
        }
        let n = books.next;
        let mut op = OpRecord::default();
        let mut customer = Account::new(cmd.account.as_str(), cmd.currency);
        if cmd.balance_minor > 0 {
            let amount = AmountMinor::new(cmd.balance_minor)?;
            let funding_id = domain::funding_account(cmd.currency);
            let mut funding = books.account_or_new(&funding_id, cmd.currency);
            domain::post(&mut funding, &mut customer, amount)?;
            op.movement = Some(Movement {
                movement_id: movement_id(n),
                kind: MovementKind::Funding,
                debit_account: funding.account.clone(),
                credit_account: customer.account.clone(),
                amount_minor: amount.get(),
                currency: cmd.currency,
                reference: format!("open:{}", customer.account),
                idempotency_key: format!("open:{}", customer.account),
                hold_id: None,
                transaction_id: None,
                at: now.to_owned(),
            });
            op.accounts.push(funding);
        }
        let value = balance_of(&customer);
        op.accounts.push(customer);
        self.commit(&mut books, n, op)?;
        Ok(Recorded {
            value,
            replayed: false,
        })
    }

    pub fn place_hold(&self, cmd: &NewHold, now: &str) -> Result<Recorded<Hold>, StoreError> {
        let digest = digest(&[
            cmd.account.as_str(),
            &cmd.amount.get().to_string(),
            cmd.currency.as_str(),
            cmd.reference.as_str(),
        ]);
        let idem_key = idempotency_key("hold", &cmd.key);
        let mut books = self.books();
        if let Some(hold) = books.replay::<Hold>(&idem_key, &digest, &cmd.key)? {
            return Ok(Recorded {
                value: hold,
                replayed: true,
            });
        }
        let n = books.next;
        let mut account = books.customer(cmd.account.as_str())?;
        domain::place_hold(&mut account, cmd.amount, cmd.currency)?;
        let hold = Hold {
            hold_id: format!("hold-{n}"),
            account: account.account.clone(),
            amount_minor: cmd.amount.get(),
            currency: cmd.currency,
            reference: cmd.reference.as_str().to_owned(),
            status: HoldStatus::Held,
            captured_minor: 0,
            created_at: now.to_owned(),
        };
        let op = OpRecord {
            accounts: vec![account],
            idempotency: Some(record(idem_key, &digest, &hold)?),
            hold: Some(hold.clone()),
            movement: None,
        };
        self.commit(&mut books, n, op)?;
        Ok(Recorded {
            value: hold,
            replayed: false,
        })
    }

    pub fn capture_hold(&self, cmd: &CaptureHold, now: &str) -> Result<Recorded<Hold>, StoreError> {
        let digest = digest(&[&cmd.hold_id, &cmd.amount.get().to_string()]);
        let idem_key = idempotency_key("capture", &cmd.key);
        let mut books = self.books();
        if let Some(hold) = books.replay::<Hold>(&idem_key, &digest, &cmd.key)? {
            return Ok(Recorded {
                value: hold,
                replayed: true,
            });
        }
        let n = books.next;
        let mut hold = books.hold(&cmd.hold_id)?;
        let mut customer = books.customer(&hold.account)?;
        let cash_id = domain::cash_account(hold.currency);
        let mut cash = books.account_or_new(&cash_id, hold.currency);
        let effect = domain::capture_hold(&mut hold, &mut customer, &mut cash, cmd.amount)?;
        let mut op = OpRecord {
            idempotency: Some(record(idem_key, &digest, &hold)?),
            ..OpRecord::default()
        };
        if effect == CaptureEffect::Captured {
            op.movement = Some(Movement {
                movement_id: movement_id(n),
                kind: MovementKind::Capture,
                debit_account: customer.account.clone(),
                credit_account: cash_id.clone(),
                amount_minor: cmd.amount.get(),
                currency: hold.currency,
                reference: hold.reference.clone(),
                idempotency_key: cmd.key.as_str().to_owned(),
                hold_id: Some(hold.hold_id.clone()),
                transaction_id: None,
                at: now.to_owned(),
            });
            op.accounts = vec![customer, cash];
            op.hold = Some(hold.clone());
        }
        self.commit(&mut books, n, op)?;
        Ok(Recorded {
            value: hold,
            replayed: effect == CaptureEffect::AlreadyCaptured,
        })
    }

    pub fn void_hold(&self, cmd: &VoidHold) -> Result<Recorded<Hold>, StoreError> {
        let digest = digest(&[&cmd.hold_id]);
        let idem_key = idempotency_key("void", &cmd.key);
        let mut books = self.books();
        if let Some(hold) = books.replay::<Hold>(&idem_key, &digest, &cmd.key)? {
            return Ok(Recorded {
                value: hold,
                replayed: true,
            });
        }
        let n = books.next;
        let mut hold = books.hold(&cmd.hold_id)?;
        let mut customer = books.customer(&hold.account)?;
        let effect = domain::void_hold(&mut hold, &mut customer)?;
        let mut op = OpRecord {
            idempotency: Some(record(idem_key, &digest, &hold)?),
            ..OpRecord::default()
        };
        if effect == VoidEffect::Voided {
            op.accounts = vec![customer];
            op.hold = Some(hold.clone());
        }
        self.commit(&mut books, n, op)?;
        Ok(Recorded {
            value: hold,
            replayed: effect == VoidEffect::AlreadyVoided,
        })
    }

    pub fn post_transaction(
        &self,
        cmd: &NewTransaction,
        now: &str,
    ) -> Result<Recorded<Transaction>, StoreError> {
        let kind = match cmd.kind {
            TransactionKind::Credit => "credit",
            TransactionKind::Debit => "debit",
        };
        let digest = digest(&[
            cmd.account.as_str(),
            kind,
            &cmd.amount.get().to_string(),
            cmd.currency.as_str(),
            cmd.reference.as_str(),
        ]);
        let idem_key = idempotency_key("transaction", &cmd.key);
        let mut books = self.books();
        if let Some(txn) = books.replay::<Transaction>(&idem_key, &digest, &cmd.key)? {
            return Ok(Recorded {
                value: txn,
                replayed: true,
            });
        }
        let n = books.next;
        let mut customer = books.customer(cmd.account.as_str())?;
        let cash_id = domain::cash_account(cmd.currency);
        let mut cash = books.account_or_new(&cash_id, cmd.currency);
        domain::apply_transaction(cmd.kind, &mut customer, &mut cash, cmd.amount, cmd.currency)?;
        let txn = Transaction {
            transaction_id: format!("txn-{n}"),
            movement_id: movement_id(n),
            account: customer.account.clone(),
            kind: cmd.kind,
            amount_minor: cmd.amount.get(),
            currency: cmd.currency,
            reference: cmd.reference.as_str().to_owned(),
            created_at: now.to_owned(),
        };
        let (debit, credit, movement_kind) = match cmd.kind {
            TransactionKind::Credit => (&cash_id, &customer.account, MovementKind::Credit),
            TransactionKind::Debit => (&customer.account, &cash_id, MovementKind::Debit),
        };
        let movement = Movement {
            movement_id: txn.movement_id.clone(),
            kind: movement_kind,
            debit_account: debit.clone(),
            credit_account: credit.clone(),
            amount_minor: cmd.amount.get(),
            currency: cmd.currency,
            reference: txn.reference.clone(),
            idempotency_key: cmd.key.as_str().to_owned(),
            hold_id: None,
            transaction_id: Some(txn.transaction_id.clone()),
            at: now.to_owned(),
        };
        let op = OpRecord {
            accounts: vec![customer, cash],
            hold: None,
            movement: Some(movement),
            idempotency: Some(record(idem_key, &digest, &txn)?),
        };
        self.commit(&mut books, n, op)?;
        Ok(Recorded {
            value: txn,
            replayed: false,
        })
    }

    pub fn balance(&self, account: &str) -> Result<Balance, StoreError> {
        match self.books().accounts.get(account) {
            Some(found) => Ok(balance_of(found)),
            None => Err(DomainError::UnknownAccount(account.chars().take(70).collect()).into()),
        }
    }

    pub fn hold(&self, hold_id: &str) -> Result<Hold, StoreError> {
        self.books().hold(hold_id)
    }

    /// Movements in posting order, after movement number `after` (exclusive), at most `limit`.
    pub fn list_movements(
        &self,
        reference: Option<&str>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<MovementPage, StoreError> {
        let limit = limit.clamp(1, MOVEMENTS_PAGE_MAX);
        let first = after.map_or(0, |n| n.saturating_add(1));
        let books = self.books();
        let mut movements: Vec<Movement> = match reference {
            Some(reference) => {
                let numbers = books
                    .by_reference
                    .get(reference)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let start = numbers.partition_point(|&n| n < first);
                numbers[start..]
                    .iter()
                    .take(limit + 1)
                    .map(|n| {
                        books
                            .movements
                            .get(n)
                            .cloned()
                            .ok_or_else(|| corrupt(&movement_id(*n), "missing"))
                    })
                    .collect::<Result<_, _>>()?
            }
            None => books
                .movements
                .range(first..)
                .take(limit + 1)
                .map(|(_, m)| m.clone())
                .collect(),
        };
        drop(books);
        let more = movements.len() > limit;
        movements.truncate(limit);
        let next_after = if more {
            movements.last().map(|m| m.movement_id.clone())
        } else {
            None
        };
        Ok(MovementPage {
            movements,
            next_after,
        })
    }

    /// The holds in `status` (all when `None`), oldest first, at most `limit` of them.
    pub fn holds(&self, status: Option<HoldStatus>, limit: usize) -> Result<HoldList, StoreError> {
        let limit = limit.clamp(1, HOLDS_PAGE_MAX);
        let books = self.books();
        let mut matching: Vec<(u64, &Hold)> = books
            .holds
            .values()
            .filter(|h| status.is_none_or(|s| h.status == s))
            .map(|h| (hold_number(&h.hold_id), h))
            .collect();
        let count = matching.len() as u64;
        matching.sort_unstable_by_key(|(n, _)| *n);
        let holds = matching
            .into_iter()
            .take(limit)
            .map(|(_, h)| h.clone())
            .collect();
        Ok(HoldList { holds, count })
    }

    /// Checks the books, with every writer held off so it sees one consistent state.
    pub fn invariants(&self) -> Result<Invariants, StoreError> {
        let books = self.books();
        let mut held_by_account: BTreeMap<&str, u64> = BTreeMap::new();
        let mut open_holds = 0u64;
        for hold in books.holds.values() {
            if hold.status == HoldStatus::Held {
                *held_by_account.entry(hold.account.as_str()).or_default() += hold.amount_minor;
                open_holds += 1;
            }
        }
        let mut captures_by_hold: BTreeMap<&str, u64> = BTreeMap::new();
        for movement in books.movements.values() {
            if let (MovementKind::Capture, Some(hold_id)) = (movement.kind, &movement.hold_id) {
                *captures_by_hold.entry(hold_id.as_str()).or_default() += 1;
            }
        }
        let sums = domain::sum_by_currency(books.accounts.values());
        let holds_captured_twice = captures_by_hold.values().filter(|&&c| c > 1).count() as u64;
        let held_minor_mismatches = books
            .accounts
            .values()
            .filter(|a| {
                a.held_minor
                    != held_by_account
                        .get(a.account.as_str())
                        .copied()
                        .unwrap_or(0)
            })
            .count() as u64;
        let ok = sums.values().all(|&s| s == 0)
            && holds_captured_twice == 0
            && held_minor_mismatches == 0;
        Ok(Invariants {
            sum_minor_by_currency: sums,
            holds_captured_twice,
            held_minor_mismatches,
            accounts: books.accounts.len() as u64,
            holds: books.holds.len() as u64,
            open_holds,
            movements: books.movements.len() as u64,
            ok,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn idempotency_key(operation: &str, key: &IdempotencyKey) -> String {
    format!("{operation}\u{0}{}", key.as_str())
}

/// SHA-256 over the request fields, each followed by a 0x00 (no field may contain one).
fn digest(fields: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for field in fields {
        hasher.update(field.as_bytes());
        hasher.update([0u8]);
    }
    hex::encode(hasher.finalize())
}

fn movement_id(n: u64) -> String {
    format!("mv-{n}")
}

/// The number inside a hold id (`hold-42` → 42), for ordering; ids of another shape sort last.
fn hold_number(id: &str) -> u64 {
    id.strip_prefix("hold-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// The number inside a movement id (`mv-42` → 42).
pub fn parse_movement_id(id: &str) -> Option<u64> {
    id.strip_prefix("mv-")?.parse().ok()
}

fn u64_suffix(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

fn balance_of(account: &Account) -> Balance {
    Balance {
        account: account.account.clone(),
        currency: account.currency,
        balance_minor: account.balance_minor,
        held_minor: account.held_minor,
        available_minor: account.available_minor(),
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(what, &e.to_string()))
}

fn corrupt(what: &str, reason: &str) -> StoreError {
    StoreError::Corrupt {
        what: what.chars().take(80).collect(),
        reason: reason.to_owned(),
    }
}
