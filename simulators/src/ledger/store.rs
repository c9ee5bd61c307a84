//! Durable state of the ledger, in sled.
//!
//! Trees (all values JSON, small and bounded):
//! - `accounts`: account id → [`Account`] (customer and internal accounts alike);
//! - `holds`: hold id → [`Hold`];
//! - `movements`: movement number (u64, big-endian, so iteration is in posting order) → [`Movement`];
//! - `movements_by_reference`: reference ‖ 0x00 ‖ movement number → () (the `?reference=` index);
//! - `idempotency`: operation ‖ 0x00 ‖ client key → [`IdempotencyRecord`] (digest of the request
//!   content and the recorded answer).
//!
//! Every operation is one multi-tree sled transaction, so an effect and its idempotency record
//! commit together or not at all; sled retries a transaction that met a concurrent writer.
//! Durability: after the commit, the caller waits for a *group flush* — one fsync covers every
//! transaction committed before it started, so concurrent requests share flushes instead of
//! queueing behind one lock. Nothing is answered before that flush.
//!
//! The blocking work (transactions, scans, fsync) runs on tokio's blocking pool, never on the
//! runtime threads.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
    TransactionalTree,
};
use tokio::sync::{watch, Notify};

use super::domain::{
    self, Account, AmountMinor, CaptureEffect, Currency, CustomerAccount, DomainError, Hold,
    HoldStatus, IdempotencyKey, Movement, MovementKind, Reference, Transaction, TransactionKind,
    VoidEffect,
};

/// Most movements one `list_movements` call returns.
pub const MOVEMENTS_PAGE_MAX: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Rejected(#[from] DomainError),
    #[error("storage error: {0}")]
    Storage(#[from] sled::Error),
    #[error("stored record {what} could not be read: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("the write could not be made durable: {0}")]
    Durability(String),
    #[error("the storage worker failed: {0}")]
    Worker(String),
}

type TxResult<T> = ConflictableTransactionResult<T, StoreError>;

fn abort<T>(error: impl Into<StoreError>) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(error.into()))
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

/// One page of movements, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovementPage {
    pub movements: Vec<Movement>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

pub struct Store {
    db: sled::Db,
    accounts: sled::Tree,
    holds: sled::Tree,
    movements: sled::Tree,
    by_reference: sled::Tree,
    idempotency: sled::Tree,
    /// Writers share it during a transaction; the invariant check takes it alone, so that its
    /// scans see the books between transactions, never halfway through one.
    books: RwLock<()>,
    flush: Arc<GroupFlush>,
}

impl Store {
    /// Opens (or creates) the database at `path`. Blocking.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(path).open()?;
        Ok(Store {
            accounts: db.open_tree("accounts")?,
            holds: db.open_tree("holds")?,
            movements: db.open_tree("movements")?,
            by_reference: db.open_tree("movements_by_reference")?,
            idempotency: db.open_tree("idempotency")?,
            db,
            books: RwLock::new(()),
            flush: Arc::new(GroupFlush::new()),
        })
    }

    /// The group-flush worker; it runs until `shutdown` turns true, then flushes a last time.
    pub fn spawn_flusher(&self, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(GroupFlush::run(
            self.flush.clone(),
            self.db.clone(),
            shutdown,
        ))
    }

    /// Runs a blocking write on the blocking pool, then waits until it is on disk.
    pub async fn write<T, F>(self: &Arc<Self>, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let value = self.read(op).await?;
        // Replays wait too: the record they read may still be waiting for its own flush.
        self.flush.durable().await?;
        Ok(value)
    }

    /// Runs a blocking read on the blocking pool.
    pub async fn read<T, F>(self: &Arc<Self>, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || op(&store))
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    /// Flushes everything now (shutdown, tests). Blocking.
    pub fn flush_now(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn transact<T>(&self, body: impl Fn(&Trees<'_>) -> TxResult<T>) -> Result<T, StoreError> {
        let _books = self
            .books
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let trees = (
            &self.accounts,
            &self.holds,
            &self.movements,
            &self.by_reference,
            &self.idempotency,
        );
        sled::Transactional::transaction(&trees, |(accounts, holds, movements, by_ref, idem)| {
            body(&Trees {
                accounts,
                holds,
                movements,
                by_ref,
                idem,
            })
        })
        .map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => StoreError::Storage(e),
        })
    }

    fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    // -----------------------------------------------------------------------------------------
    // Operations (blocking; call through `write`/`read`)
    // -----------------------------------------------------------------------------------------

    /// Opens a customer account with an opening balance funded from `funding:<CUR>`. Opening an
    /// account that exists in the same currency changes nothing and returns it (`replayed`).
    pub fn open_account(
        &self,
        cmd: &OpenAccount,
        now: &str,
    ) -> Result<Recorded<Balance>, StoreError> {
        let n = self.next_id()?;
        self.transact(|t| {
            if let Some(existing) = t.get::<Account>(t.accounts, cmd.account.as_str())? {
                if existing.currency != cmd.currency {
                    return abort(DomainError::AccountExists {
                        account: existing.account,
                        currency: existing.currency,
                    });
                }
                return Ok(Recorded {
                    value: balance_of(&existing),
                    replayed: true,
                });
            }
            let mut customer = Account::new(cmd.account.as_str(), cmd.currency);
            if cmd.balance_minor > 0 {
                let amount = AmountMinor::new(cmd.balance_minor).or_else(abort)?;
                let funding_id = domain::funding_account(cmd.currency);
                let mut funding = t.account_or_new(&funding_id, cmd.currency)?;
                domain::post(&mut funding, &mut customer, amount).or_else(abort)?;
                t.put(t.accounts, funding_id.as_bytes(), &funding)?;
                t.put_movement(
                    n,
                    &Movement {
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
                    },
                )?;
            }
            t.put(t.accounts, customer.account.as_bytes(), &customer)?;
            Ok(Recorded {
                value: balance_of(&customer),
                replayed: false,
            })
        })
    }

    pub fn place_hold(&self, cmd: &NewHold, now: &str) -> Result<Recorded<Hold>, StoreError> {
        let digest = digest(&[
            cmd.account.as_str(),
            &cmd.amount.get().to_string(),
            cmd.currency.as_str(),
            cmd.reference.as_str(),
        ]);
        let n = self.next_id()?;
        self.transact(|t| {
            let idem_key = idempotency_key("hold", &cmd.key);
            if let Some(hold) = t.replay::<Hold>(&idem_key, &digest, &cmd.key)? {
                return Ok(Recorded {
                    value: hold,
                    replayed: true,
                });
            }
            let mut account = t.customer(cmd.account.as_str())?;
            domain::place_hold(&mut account, cmd.amount, cmd.currency).or_else(abort)?;
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
            t.put(t.accounts, account.account.as_bytes(), &account)?;
            t.put(t.holds, hold.hold_id.as_bytes(), &hold)?;
            t.record(&idem_key, &digest, &hold)?;
            Ok(Recorded {
                value: hold,
                replayed: false,
            })
        })
    }

    pub fn capture_hold(&self, cmd: &CaptureHold, now: &str) -> Result<Recorded<Hold>, StoreError> {
        let digest = digest(&[&cmd.hold_id, &cmd.amount.get().to_string()]);
        let n = self.next_id()?;
        self.transact(|t| {
            let idem_key = idempotency_key("capture", &cmd.key);
            if let Some(hold) = t.replay::<Hold>(&idem_key, &digest, &cmd.key)? {
                return Ok(Recorded {
                    value: hold,
                    replayed: true,
                });
            }
            let mut hold = t.hold(&cmd.hold_id)?;
            let mut customer = t.customer(&hold.account)?;
            let cash_id = domain::cash_account(hold.currency);
            let mut cash = t.account_or_new(&cash_id, hold.currency)?;
            let effect = domain::capture_hold(&mut hold, &mut customer, &mut cash, cmd.amount)
                .or_else(abort)?;
            if effect == CaptureEffect::Captured {
                t.put(t.accounts, customer.account.as_bytes(), &customer)?;
                t.put(t.accounts, cash_id.as_bytes(), &cash)?;
                t.put(t.holds, hold.hold_id.as_bytes(), &hold)?;
                t.put_movement(
                    n,
                    &Movement {
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
                    },
                )?;
            }
            t.record(&idem_key, &digest, &hold)?;
            Ok(Recorded {
                value: hold,
                replayed: effect == CaptureEffect::AlreadyCaptured,
            })
        })
    }

    pub fn void_hold(&self, cmd: &VoidHold) -> Result<Recorded<Hold>, StoreError> {
        let digest = digest(&[&cmd.hold_id]);
        self.transact(|t| {
            let idem_key = idempotency_key("void", &cmd.key);
            if let Some(hold) = t.replay::<Hold>(&idem_key, &digest, &cmd.key)? {
                return Ok(Recorded {
                    value: hold,
                    replayed: true,
                });
            }
            let mut hold = t.hold(&cmd.hold_id)?;
            let mut customer = t.customer(&hold.account)?;
            let effect = domain::void_hold(&mut hold, &mut customer).or_else(abort)?;
            if effect == VoidEffect::Voided {
                t.put(t.accounts, customer.account.as_bytes(), &customer)?;
                t.put(t.holds, hold.hold_id.as_bytes(), &hold)?;
            }
            t.record(&idem_key, &digest, &hold)?;
            Ok(Recorded {
                value: hold,
                replayed: effect == VoidEffect::AlreadyVoided,
            })
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
        let n = self.next_id()?;
        self.transact(|t| {
            let idem_key = idempotency_key("transaction", &cmd.key);
            if let Some(txn) = t.replay::<Transaction>(&idem_key, &digest, &cmd.key)? {
                return Ok(Recorded {
                    value: txn,
                    replayed: true,
                });
            }
            let mut customer = t.customer(cmd.account.as_str())?;
            let cash_id = domain::cash_account(cmd.currency);
            let mut cash = t.account_or_new(&cash_id, cmd.currency)?;
            domain::apply_transaction(cmd.kind, &mut customer, &mut cash, cmd.amount, cmd.currency)
                .or_else(abort)?;
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
            t.put_movement(
                n,
                &Movement {
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
                },
            )?;
            t.put(t.accounts, customer.account.as_bytes(), &customer)?;
            t.put(t.accounts, cash_id.as_bytes(), &cash)?;
            t.record(&idem_key, &digest, &txn)?;
            Ok(Recorded {
                value: txn,
                replayed: false,
            })
        })
    }

    pub fn balance(&self, account: &str) -> Result<Balance, StoreError> {
        match self.accounts.get(account.as_bytes())? {
            Some(bytes) => Ok(balance_of(&decode::<Account>(&bytes, account)?)),
            None => Err(DomainError::UnknownAccount(account.chars().take(70).collect()).into()),
        }
    }

    pub fn hold(&self, hold_id: &str) -> Result<Hold, StoreError> {
        match self.holds.get(hold_id.as_bytes())? {
            Some(bytes) => decode(&bytes, hold_id),
            None => Err(DomainError::UnknownHold(hold_id.chars().take(70).collect()).into()),
        }
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
        let mut numbers = Vec::with_capacity(limit.min(1024) + 1);
        match reference {
            Some(reference) => {
                let mut prefix = reference.as_bytes().to_vec();
                prefix.push(0);
                for entry in self.by_reference.scan_prefix(&prefix) {
                    let (key, _) = entry?;
                    let n =
                        u64_suffix(&key).ok_or_else(|| corrupt("movements_by_reference", "key"))?;
                    if n >= first {
                        numbers.push(n);
                    }
                    if numbers.len() > limit {
                        break;
                    }
                }
            }
            None => {
                for entry in self.movements.range(first.to_be_bytes()..).keys() {
                    let key = entry?;
                    numbers.push(u64_suffix(&key).ok_or_else(|| corrupt("movements", "key"))?);
                    if numbers.len() > limit {
                        break;
                    }
                }
            }
        }
        let more = numbers.len() > limit;
        numbers.truncate(limit);
        let mut movements = Vec::with_capacity(numbers.len());
        for n in numbers {
            let bytes = self
                .movements
                .get(n.to_be_bytes())?
                .ok_or_else(|| corrupt(&movement_id(n), "missing"))?;
            movements.push(decode::<Movement>(&bytes, &movement_id(n))?);
        }
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

    /// Checks the books with every writer held off, so the scans see one consistent state.
    pub fn invariants(&self) -> Result<Invariants, StoreError> {
        let _books = self
            .books
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut accounts = Vec::new();
        for entry in self.accounts.iter() {
            let (key, value) = entry?;
            accounts.push(decode::<Account>(&value, &String::from_utf8_lossy(&key))?);
        }
        let mut held_by_account: BTreeMap<String, u64> = BTreeMap::new();
        let mut holds = 0u64;
        for entry in self.holds.iter() {
            let (key, value) = entry?;
            let hold = decode::<Hold>(&value, &String::from_utf8_lossy(&key))?;
            holds += 1;
            if hold.status == HoldStatus::Held {
                *held_by_account.entry(hold.account).or_default() += hold.amount_minor;
            }
        }
        let mut captures_by_hold: BTreeMap<String, u64> = BTreeMap::new();
        let mut movements = 0u64;
        for entry in self.movements.iter() {
            let (key, value) = entry?;
            let movement = decode::<Movement>(&value, &format!("{key:?}"))?;
            movements += 1;
            if let (MovementKind::Capture, Some(hold_id)) = (movement.kind, movement.hold_id) {
                *captures_by_hold.entry(hold_id).or_default() += 1;
            }
        }
        let sums = domain::sum_by_currency(&accounts);
        let holds_captured_twice = captures_by_hold.values().filter(|&&c| c > 1).count() as u64;
        let held_minor_mismatches = accounts
            .iter()
            .filter(|a| a.held_minor != held_by_account.get(&a.account).copied().unwrap_or(0))
            .count() as u64;
        let ok = sums.values().all(|&s| s == 0)
            && holds_captured_twice == 0
            && held_minor_mismatches == 0;
        Ok(Invariants {
            sum_minor_by_currency: sums,
            holds_captured_twice,
            held_minor_mismatches,
            accounts: accounts.len() as u64,
            holds,
            movements,
            ok,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Transaction helpers
// ---------------------------------------------------------------------------------------------

struct Trees<'a> {
    accounts: &'a TransactionalTree,
    holds: &'a TransactionalTree,
    movements: &'a TransactionalTree,
    by_ref: &'a TransactionalTree,
    idem: &'a TransactionalTree,
}

impl Trees<'_> {
    fn get<T: DeserializeOwned>(&self, tree: &TransactionalTree, key: &str) -> TxResult<Option<T>> {
        match tree.get(key.as_bytes())? {
            Some(bytes) => decode(&bytes, key).map(Some).or_else(abort),
            None => Ok(None),
        }
    }

    fn put<T: Serialize>(&self, tree: &TransactionalTree, key: &[u8], value: &T) -> TxResult<()> {
        let bytes = serde_json::to_vec(value)
            .or_else(|e| abort(corrupt(&String::from_utf8_lossy(key), &e.to_string())))?;
        tree.insert(key, bytes)?;
        Ok(())
    }

    fn customer(&self, account: &str) -> TxResult<Account> {
        match self.get::<Account>(self.accounts, account)? {
            Some(found) => Ok(found),
            None => abort(DomainError::UnknownAccount(account.to_owned())),
        }
    }

    fn account_or_new(&self, account: &str, currency: Currency) -> TxResult<Account> {
        Ok(self
            .get::<Account>(self.accounts, account)?
            .unwrap_or_else(|| Account::new(account, currency)))
    }

    fn hold(&self, hold_id: &str) -> TxResult<Hold> {
        match self.get::<Hold>(self.holds, hold_id)? {
            Some(found) => Ok(found),
            None => abort(DomainError::UnknownHold(hold_id.chars().take(70).collect())),
        }
    }

    fn put_movement(&self, n: u64, movement: &Movement) -> TxResult<()> {
        self.put(self.movements, &n.to_be_bytes(), movement)?;
        let mut index_key = movement.reference.as_bytes().to_vec();
        index_key.push(0);
        index_key.extend_from_slice(&n.to_be_bytes());
        self.by_ref.insert(index_key, &[][..])?;
        Ok(())
    }

    /// The recorded answer for this key, if the same content came before; a conflict if other
    /// content came with the same key; `None` for a new key.
    fn replay<T: DeserializeOwned>(
        &self,
        idem_key: &str,
        digest: &str,
        client_key: &IdempotencyKey,
    ) -> TxResult<Option<T>> {
        let Some(record) = self.get::<IdempotencyRecord>(self.idem, idem_key)? else {
            return Ok(None);
        };
        if record.digest != digest {
            return abort(DomainError::IdempotencyConflict(
                client_key.as_str().to_owned(),
            ));
        }
        serde_json::from_value(record.response)
            .map(Some)
            .or_else(|e| abort(corrupt(idem_key, &e.to_string())))
    }

    fn record<T: Serialize>(&self, idem_key: &str, digest: &str, response: &T) -> TxResult<()> {
        let response =
            serde_json::to_value(response).or_else(|e| abort(corrupt(idem_key, &e.to_string())))?;
        let record = IdempotencyRecord {
            digest: digest.to_owned(),
            response,
        };
        self.put(self.idem, idem_key.as_bytes(), &record)
    }
}

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

// ---------------------------------------------------------------------------------------------
// Group flush
// ---------------------------------------------------------------------------------------------

/// Shares one fsync among every writer that committed before it started.
///
/// A writer takes a ticket after its commit and waits until the flushed ticket count reaches it;
/// the worker reads the ticket count, flushes, then publishes it. Because the count is read
/// before the flush starts, every ticket it covers belongs to a commit the flush includes.
struct GroupFlush {
    tickets: AtomicU64,
    wake: Notify,
    /// (tickets covered by the last flush, its error if it failed)
    flushed: watch::Sender<(u64, Option<Arc<str>>)>,
}

impl GroupFlush {
    fn new() -> Self {
        GroupFlush {
            tickets: AtomicU64::new(0),
            wake: Notify::new(),
            flushed: watch::Sender::new((0, None)),
        }
    }

    async fn durable(&self) -> Result<(), StoreError> {
        let mut flushed = self.flushed.subscribe();
        let ticket = self.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake.notify_one();
        let state = flushed
            .wait_for(|(done, _)| *done >= ticket)
            .await
            .map_err(|_| StoreError::Durability("the flush worker has stopped".into()))?;
        match &state.1 {
            None => Ok(()),
            Some(error) => Err(StoreError::Durability(error.to_string())),
        }
    }

    async fn run(this: Arc<Self>, db: sled::Db, mut shutdown: watch::Receiver<bool>) {
        loop {
            let stopping = tokio::select! {
                _ = this.wake.notified() => false,
                _ = shutdown.wait_for(|stop| *stop) => true,
            };
            let target = this.tickets.load(Ordering::SeqCst);
            if target > this.flushed.borrow().0 || stopping {
                let db = db.clone();
                let result = match tokio::task::spawn_blocking(move || db.flush()).await {
                    Ok(Ok(_)) => None,
                    Ok(Err(e)) => Some(Arc::from(e.to_string())),
                    Err(e) => Some(Arc::from(e.to_string())),
                };
                if let Some(error) = &result {
                    tracing::error!(%error, "ledger flush failed");
                }
                this.flushed.send_replace((target, result));
            }
            if stopping {
                return;
            }
        }
    }
}
