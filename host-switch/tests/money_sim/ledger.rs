//! A wallet ledger that really keeps books, with ledger-sim's semantics
//! (`simulators/ledger-sim/src/domain.rs` and `store.rs`), and the faults of a real network.
//!
//! Books: accounts with balances and held amounts; holds `held → captured | voided`; postings that
//! move money between a customer and the cash account; an idempotency record per (operation, key)
//! that replays the first answer, or refuses other content under the same key (a conflict).
//! Refusals (insufficient funds, unknown account) are not recorded, as in ledger-sim.
//!
//! Faults, drawn from the seed per call, are the ones the switch's `HttpLedger` can hand back
//! (see `LedgerFault`); the nasty ones apply the operation and then lose the answer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use host_switch::domain::reconcile::{LedgerMovement, MovementKind};
use host_switch::ports::{Balance, Hold, Ledger, LedgerError, PostingKind};
use protocols::types::{Amount, Currency};

use crate::world::{lock, World};

#[derive(Debug, Clone, Default)]
pub struct Account {
    /// Credits minus debits.
    pub balance_minor: i64,
    /// Sum of this account's holds in status `held`.
    pub held_minor: u64,
}

impl Account {
    pub fn available_minor(&self) -> i64 {
        self.balance_minor - self.held_minor as i64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldStatus {
    Held,
    Captured { amount_minor: u64 },
    Voided,
}

#[derive(Debug, Clone)]
pub struct BookHold {
    pub account: String,
    pub amount_minor: u64,
    pub reference: String,
    pub status: HoldStatus,
}

#[derive(Debug, Clone)]
pub struct Movement {
    pub kind: MovementKind,
    pub account: String,
    pub amount_minor: u64,
    pub reference: String,
    pub idempotency_key: String,
}

/// The first answer given under an idempotency key, with the content it was given for.
#[derive(Debug, Clone)]
struct IdemRecord {
    content: String,
    answer: String,
}

#[derive(Debug, Default)]
pub struct Books {
    pub accounts: BTreeMap<String, Account>,
    pub holds: BTreeMap<String, BookHold>,
    pub movements: Vec<Movement>,
    idempotency: BTreeMap<String, IdemRecord>,
    /// What the bank funded the accounts with (the other side of every opening balance).
    pub funded_minor: i64,
    /// The ATM cash clearing account: captures and debits credit it, credits debit it.
    pub cash_minor: i64,
    next_id: u64,
}

impl Books {
    pub fn open(&mut self, account: &str, balance_minor: u64) {
        self.accounts.insert(
            account.to_owned(),
            Account {
                balance_minor: balance_minor as i64,
                held_minor: 0,
            },
        );
        self.funded_minor += balance_minor as i64;
    }

    fn fresh_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }

    /// The recorded answer under `key` for the same content; a conflict for other content.
    fn replay(&self, key: &str, content: &str) -> Result<Option<String>, LedgerError> {
        match self.idempotency.get(key) {
            None => Ok(None),
            Some(r) if r.content == content => Ok(Some(r.answer.clone())),
            Some(_) => Err(LedgerError::Conflict(format!(
                "idempotency key {key:?} was already used with different request content"
            ))),
        }
    }

    fn record(&mut self, key: String, content: String, answer: String) {
        self.idempotency.insert(key, IdemRecord { content, answer });
    }

    pub fn hold(
        &mut self,
        key: &str,
        account: &str,
        amount: Amount,
        reference: &str,
    ) -> Result<Hold, LedgerError> {
        let idem = format!("hold\0{key}");
        let content = format!("{account}|{}|{reference}", amount.minor);
        let hold_id = match self.replay(&idem, &content)? {
            Some(hold_id) => hold_id,
            None => {
                positive(amount.minor)?;
                let acct = self
                    .accounts
                    .get_mut(account)
                    .ok_or(LedgerError::UnknownAccount)?;
                if acct.available_minor() < amount.minor as i64 {
                    return Err(LedgerError::InsufficientFunds);
                }
                acct.held_minor += amount.minor;
                let hold_id = self.fresh_id("hold");
                self.holds.insert(
                    hold_id.clone(),
                    BookHold {
                        account: account.to_owned(),
                        amount_minor: amount.minor,
                        reference: reference.to_owned(),
                        status: HoldStatus::Held,
                    },
                );
                self.record(idem, content, hold_id.clone());
                hold_id
            }
        };
        Ok(Hold { hold_id, amount })
    }

    pub fn capture(
        &mut self,
        key: &str,
        hold_id: &str,
        amount_minor: u64,
    ) -> Result<(), LedgerError> {
        let idem = format!("capture\0{key}");
        let content = format!("{hold_id}|{amount_minor}");
        if self.replay(&idem, &content)?.is_some() {
            return Ok(());
        }
        positive(amount_minor)?;
        // ledger-sim answers 404 for an unknown hold, which the HTTP adapter reads as UnknownAccount.
        let hold = self
            .holds
            .get(hold_id)
            .cloned()
            .ok_or(LedgerError::UnknownAccount)?;
        match hold.status {
            HoldStatus::Voided => {
                return Err(LedgerError::Conflict(format!(
                    "hold {hold_id} is already voided"
                )))
            }
            HoldStatus::Captured { amount_minor: done } if done == amount_minor => {}
            HoldStatus::Captured { amount_minor: done } => {
                return Err(LedgerError::Conflict(format!(
                    "hold {hold_id} is already captured for {done}"
                )))
            }
            HoldStatus::Held if amount_minor > hold.amount_minor => {
                return Err(LedgerError::Invalid(format!(
                    "capture of {amount_minor} exceeds the held {}",
                    hold.amount_minor
                )))
            }
            HoldStatus::Held => {
                let acct = self
                    .accounts
                    .get_mut(&hold.account)
                    .ok_or(LedgerError::UnknownAccount)?;
                acct.held_minor -= hold.amount_minor;
                acct.balance_minor -= amount_minor as i64;
                self.cash_minor += amount_minor as i64;
                self.movements.push(Movement {
                    kind: MovementKind::Capture,
                    account: hold.account.clone(),
                    amount_minor,
                    reference: hold.reference.clone(),
                    idempotency_key: key.to_owned(),
                });
                if let Some(h) = self.holds.get_mut(hold_id) {
                    h.status = HoldStatus::Captured { amount_minor };
                }
            }
        }
        self.record(idem, content, String::new());
        Ok(())
    }

    pub fn void(&mut self, key: &str, hold_id: &str) -> Result<(), LedgerError> {
        let idem = format!("void\0{key}");
        if self.replay(&idem, hold_id)?.is_some() {
            return Ok(());
        }
        let hold = self
            .holds
            .get(hold_id)
            .cloned()
            .ok_or(LedgerError::UnknownAccount)?;
        match hold.status {
            HoldStatus::Voided => {}
            HoldStatus::Captured { amount_minor } => {
                return Err(LedgerError::Conflict(format!(
                    "hold {hold_id} is already captured for {amount_minor}"
                )))
            }
            HoldStatus::Held => {
                let acct = self
                    .accounts
                    .get_mut(&hold.account)
                    .ok_or(LedgerError::UnknownAccount)?;
                acct.held_minor -= hold.amount_minor;
                if let Some(h) = self.holds.get_mut(hold_id) {
                    h.status = HoldStatus::Voided;
                }
            }
        }
        self.record(idem, hold_id.to_owned(), String::new());
        Ok(())
    }

    pub fn post(
        &mut self,
        key: &str,
        kind: PostingKind,
        account: &str,
        amount: Amount,
        reference: &str,
    ) -> Result<String, LedgerError> {
        let idem = format!("transaction\0{key}");
        let content = format!("{account}|{kind:?}|{}|{reference}", amount.minor);
        if let Some(movement_id) = self.replay(&idem, &content)? {
            return Ok(movement_id);
        }
        positive(amount.minor)?;
        let acct = self
            .accounts
            .get_mut(account)
            .ok_or(LedgerError::UnknownAccount)?;
        let (signed, movement_kind) = match kind {
            PostingKind::Credit => (amount.minor as i64, MovementKind::Credit),
            // A debit never takes the customer below what is available (holds count).
            PostingKind::Debit if acct.available_minor() < amount.minor as i64 => {
                return Err(LedgerError::InsufficientFunds)
            }
            PostingKind::Debit => (-(amount.minor as i64), MovementKind::Debit),
        };
        acct.balance_minor += signed;
        self.cash_minor -= signed;
        self.movements.push(Movement {
            kind: movement_kind,
            account: account.to_owned(),
            amount_minor: amount.minor,
            reference: reference.to_owned(),
            idempotency_key: key.to_owned(),
        });
        let movement_id = self.fresh_id("mv");
        self.record(idem, content, movement_id.clone());
        Ok(movement_id)
    }
}

fn positive(minor: u64) -> Result<(), LedgerError> {
    if minor == 0 {
        return Err(LedgerError::Invalid(
            "amount_minor must be at least 1".into(),
        ));
    }
    Ok(())
}

/// What goes wrong with one ledger call, as the switch's port sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerFault {
    /// Connection refused or a 5xx before the books changed.
    UnavailableBefore,
    /// The breaker refused the call: nothing was sent.
    BreakerOpen,
    /// The books changed, the answer was lost: a timeout.
    AppliedThenTimeout,
    /// The books changed, then a 5xx or a connection reset on the way back.
    AppliedThenUnavailable,
    /// The adapter's first attempt changed the books and timed out; that failure opened the
    /// breaker, which refused the retry. The port's contract (`LedgerError::may_have_applied`)
    /// says the caller then gets the ambiguous error, never `BreakerOpen` ("not sent"); with
    /// `MONEY_SIM_BREAKER_HIDES_AMBIGUITY=1` the fake answers `BreakerOpen` instead, as
    /// `HttpLedger` did before that contract (defect 1 of issue 12).
    AppliedThenBreakerRefusedRetry,
}

impl LedgerFault {
    const ALL: [LedgerFault; 5] = [
        LedgerFault::UnavailableBefore,
        LedgerFault::BreakerOpen,
        LedgerFault::AppliedThenTimeout,
        LedgerFault::AppliedThenUnavailable,
        LedgerFault::AppliedThenBreakerRefusedRetry,
    ];

    fn applies(self) -> bool {
        !matches!(self, Self::UnavailableBefore | Self::BreakerOpen)
    }

    fn error(self, breaker_hides_ambiguity: bool) -> LedgerError {
        match self {
            Self::UnavailableBefore => {
                LedgerError::Unavailable("connection refused (simulated)".into())
            }
            Self::BreakerOpen => LedgerError::BreakerOpen,
            Self::AppliedThenBreakerRefusedRetry if breaker_hides_ambiguity => {
                LedgerError::BreakerOpen
            }
            Self::AppliedThenTimeout | Self::AppliedThenBreakerRefusedRetry => {
                LedgerError::Timeout(3000)
            }
            Self::AppliedThenUnavailable => {
                LedgerError::Unavailable("HTTP 503 after commit (simulated)".into())
            }
        }
    }
}

/// The ledger as one switch incarnation sees it.
pub struct SimLedger {
    world: Arc<World>,
    incarnation: u64,
    /// The switch process's breaker, as far as the fake can tell: calls it still refuses. A run
    /// of failures opens it for a few calls, so a retry right after an ambiguous failure is often
    /// refused, as it is in production. A new process starts with it closed.
    breaker_refusals: AtomicU32,
}

/// Calls a freshly opened breaker refuses, at most.
const BREAKER_REFUSALS_MAX: u64 = 6;
/// Chance that a failure opens the breaker.
const BREAKER_OPENS_PERCENT: u32 = 30;

impl SimLedger {
    pub fn new(world: Arc<World>, incarnation: u64) -> Self {
        Self {
            world,
            incarnation,
            breaker_refusals: AtomicU32::new(0),
        }
    }

    /// The fault this call meets, if any: the breaker while it is open, else the seed's draw; a
    /// failure may open the breaker for the next few calls.
    fn draw_fault(&self, ledger_percent: u32) -> Option<LedgerFault> {
        if self.world.plan().healed {
            return None;
        }
        let refusals = self.breaker_refusals.load(Ordering::SeqCst);
        if refusals > 0 {
            self.breaker_refusals.store(refusals - 1, Ordering::SeqCst);
            return Some(LedgerFault::BreakerOpen);
        }
        if !self.world.rng().chance(ledger_percent) {
            return None;
        }
        let mut rng = self.world.rng();
        let fault = *rng.pick(&LedgerFault::ALL);
        if rng.chance(BREAKER_OPENS_PERCENT) {
            let calls = 1 + rng.below(BREAKER_REFUSALS_MAX) as u32;
            self.breaker_refusals.store(calls, Ordering::SeqCst);
        }
        Some(fault)
    }

    /// One call: maybe yield, draw a fault, apply (unless the fault strikes first or this switch
    /// process is dead), maybe yield again, then answer or lose the answer.
    async fn call<T: std::fmt::Debug>(
        &self,
        what: impl FnOnce() -> String,
        op: impl FnOnce(&mut Books) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        let plan = self.world.plan();
        if self.world.strikes(plan.yield_percent) {
            tokio::task::yield_now().await;
        }
        if self.world.incarnation() != self.incarnation {
            return Err(LedgerError::Unavailable(
                "the switch process is gone".into(),
            ));
        }
        let fault = self.draw_fault(plan.ledger_percent);
        let outcome = match fault {
            Some(f) if !f.applies() => None,
            _ => Some(op(&mut lock(&self.world.books))),
        };
        if self.world.strikes(plan.yield_percent) {
            tokio::task::yield_now().await;
        }
        match (fault, outcome) {
            (Some(f), outcome) => {
                note!(
                    self.world,
                    "  ledger {}: {f:?} (applied: {outcome:?})",
                    what()
                );
                Err(f.error(plan.breaker_hides_ambiguity))
            }
            (None, Some(outcome)) => {
                note!(self.world, "  ledger {} -> {outcome:?}", what());
                outcome
            }
            (None, None) => unreachable!("no fault means the operation ran"),
        }
    }
}

impl Ledger for SimLedger {
    async fn hold(
        &self,
        key: &str,
        account: &str,
        amount: Amount,
        reference: &str,
    ) -> Result<Hold, LedgerError> {
        self.call(
            || format!("hold {key} {}", amount.minor),
            |b| b.hold(key, account, amount, reference),
        )
        .await
    }

    async fn capture(
        &self,
        key: &str,
        hold_id: &str,
        amount_minor: u64,
    ) -> Result<(), LedgerError> {
        self.call(
            || format!("capture {key} {hold_id} {amount_minor}"),
            |b| b.capture(key, hold_id, amount_minor),
        )
        .await
    }

    async fn void(&self, key: &str, hold_id: &str) -> Result<(), LedgerError> {
        self.call(|| format!("void {key} {hold_id}"), |b| b.void(key, hold_id))
            .await
    }

    async fn post(
        &self,
        key: &str,
        kind: PostingKind,
        account: &str,
        amount: Amount,
        reference: &str,
    ) -> Result<String, LedgerError> {
        self.call(
            || format!("{kind:?} {key} {}", amount.minor),
            |b| b.post(key, kind, account, amount, reference),
        )
        .await
    }

    async fn balance(&self, account: &str) -> Result<Balance, LedgerError> {
        self.call(
            || format!("balance {account}"),
            |b| {
                let a = b.accounts.get(account).ok_or(LedgerError::UnknownAccount)?;
                Ok(Balance {
                    available_minor: a.available_minor(),
                    balance_minor: a.balance_minor,
                    currency: Currency::EUR,
                })
            },
        )
        .await
    }

    async fn movements(&self) -> Result<Vec<LedgerMovement>, LedgerError> {
        Ok(lock(&self.world.books)
            .movements
            .iter()
            .map(|m| LedgerMovement {
                kind: m.kind,
                amount_minor: m.amount_minor,
                reference: m.reference.clone(),
            })
            .collect())
    }
}
