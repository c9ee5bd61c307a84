//! Use cases: each flow of the wallet route, orchestrating the `Ledger` and `Journal` ports.
//!
//! - `withdrawal`: 0100 → hold; `deposit`: 0200 → credit; `inquiry`: 0100/31 → balance;
//! - `completion`: 0220 → capture of what was dispensed; `reversal`: 0420 → void or compensation;
//! - `deposit_advice`: 0220/21 → a deposit taken offline, journaled and answered at once, credited
//!   by the resumer; `exceptions`: what the ledger refused for good, for an operator;
//! - `drive`: performs the ledger call a pending state owes and journals the result — used inline
//!   and by `resumer`, which finishes unconfirmed work after a restart or an outage;
//! - `reconcile`: the journal's totals beside the ledger's movements;
//! - `network`: 0800 sign-on, echo and the zone PIN key exchange;
//! - `pin`: the PIN step of wallet requests; `zone_keys`: the zone PIN key's lifecycle;
//! - `card_refs`: a card's keyed reference and wallet account, through the key store.
//!
//! Concurrency: requests about one transaction (its original, advices, reversals, replays) are
//! serialized by a striped lock on the original's key; everything else runs in parallel.

mod bank;
pub mod card_refs;
mod completion;
mod deposit;
mod deposit_advice;
pub mod exceptions;
mod inquiry;
pub mod ledger_step;
mod network;
pub mod pin;
pub mod reconcile;
pub mod resumer;
mod reversal;
mod withdrawal;
pub mod zone_keys;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{Mutex, MutexGuard};
use tracing::Instrument;

use crate::domain::issuer::HostTxn;
use crate::domain::{
    CardRef, MessageKey, PinEntry, RecordedReply, Request, ResponseCode, RouteTable, TxnKey,
    WalletAccount,
};
use crate::ports::{IssuerHost, Journal, JournalError, JournalWrite, Ledger};
use card_refs::CardReferences;
use pin::PinGuard;
use zone_keys::ZoneKeys;

const LOCK_STRIPES: usize = 1024;

pub struct Switch<L, J> {
    ledger: Arc<L>,
    journal: Arc<J>,
    routes: RouteTable,
    /// Cards' keyed references and wallet accounts (no request is served without them).
    card_refs: Arc<CardReferences>,
    stripes: Vec<Mutex<()>>,
    /// The zone PIN key exchange (`[keys]`); `None`: 0800/161 is answered 96.
    zone: Option<Arc<ZoneKeys>>,
    /// PIN verification (`[pin]`); `None`: no PIN is checked.
    pins: Option<Arc<PinGuard>>,
    /// Wakes the resumer before its interval: work was journaled that only it performs.
    resume_now: tokio::sync::Notify,
    /// Other banks' hosts (the bank host route), by name.
    issuers: Vec<Arc<dyn IssuerHost>>,
}

impl<L: Ledger, J: Journal> Switch<L, J> {
    pub fn new(
        ledger: Arc<L>,
        journal: Arc<J>,
        routes: RouteTable,
        card_refs: Arc<CardReferences>,
    ) -> Self {
        Self {
            ledger,
            journal,
            routes,
            card_refs,
            stripes: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            zone: None,
            pins: None,
            resume_now: tokio::sync::Notify::new(),
            issuers: Vec::new(),
        }
    }

    /// Adds the bank hosts cards routed `bank-host` are forwarded to.
    pub fn with_issuers(mut self, issuers: Vec<Arc<dyn IssuerHost>>) -> Self {
        self.issuers = issuers;
        self
    }

    /// Asks the resumer for a pass now (a deposit advice owes a credit).
    pub(crate) fn wake_resumer(&self) {
        self.resume_now.notify_one();
    }

    /// Adds the key exchange and PIN verification (both optional features).
    pub fn with_security(
        mut self,
        zone: Option<Arc<ZoneKeys>>,
        pins: Option<Arc<PinGuard>>,
    ) -> Self {
        self.zone = zone;
        self.pins = pins;
        self
    }

    pub fn zone_keys(&self) -> Option<&Arc<ZoneKeys>> {
        self.zone.as_ref()
    }
    pub fn pins(&self) -> Option<&Arc<PinGuard>> {
        self.pins.as_ref()
    }

    /// The bank hosts, by name.
    pub fn issuers(&self) -> &[Arc<dyn IssuerHost>] {
        &self.issuers
    }

    pub fn card_refs(&self) -> &Arc<CardReferences> {
        &self.card_refs
    }

    /// The card's keyed reference. A key store failure is reported as a journal failure: the
    /// request is answered 96 (an advice 91, to be repeated), as when the journal cannot record.
    pub(crate) fn card_ref(&self, pan: &protocols::types::Pan) -> Result<CardRef, JournalError> {
        self.card_refs.card(pan).map_err(|e| JournalError::Storage {
            context: "card reference (key store)".into(),
            source: Box::new(e),
        })
    }

    /// The card's wallet account (its keyed reference), as [`card_ref`](Self::card_ref).
    pub(crate) fn account(
        &self,
        pan: &protocols::types::Pan,
    ) -> Result<WalletAccount, JournalError> {
        self.card_ref(pan).map(|c| WalletAccount::of(&c))
    }

    pub fn journal(&self) -> &Arc<J> {
        &self.journal
    }
    pub fn ledger(&self) -> &Arc<L> {
        &self.ledger
    }

    /// Answers one request. A request answered before gets the recorded answer, without touching
    /// the ledger. A journal failure acknowledges nothing: an advice is answered 91 (not recorded:
    /// the agent repeats it, and whatever the switch did for it is resumed); any other request 96,
    /// which the agent reverses, since the ledger may have acted before the journal failed.
    pub async fn handle(&self, request: Request) -> RecordedReply {
        let is_advice = matches!(
            request,
            Request::Completion { .. } | Request::Reversal { .. } | Request::DepositAdvice { .. }
        );
        match self.handle_inner(request).await {
            Ok(reply) => reply,
            Err(e) if is_advice => {
                tracing::error!(error = %e, "journal failure: advice answered 91, to be repeated");
                RecordedReply::code(ResponseCode::IssuerUnavailable)
            }
            Err(e) => {
                tracing::error!(error = %e, "journal failure: answering 96");
                RecordedReply::code(ResponseCode::SystemError)
            }
        }
    }

    async fn handle_inner(&self, request: Request) -> Result<RecordedReply, JournalError> {
        let span = match request_key(&request) {
            Some(k) => tracing::info_span!("request", terminal = %k.terminal, stan = %k.stan),
            None => tracing::info_span!("request"),
        };
        self.dispatch(request).instrument(span).await
    }

    async fn dispatch(&self, request: Request) -> Result<RecordedReply, JournalError> {
        if let (Some(class), Some(key)) = (request.class(), request_key(&request)) {
            let mk = MessageKey {
                class,
                txn: key.clone(),
            };
            if let Some(recorded) = self.journal.reply(&mk)? {
                tracing::info!(key = %mk.as_string(), code = %recorded.code, "replayed request: recorded answer");
                return Ok(recorded);
            }
        }
        match request {
            Request::NetworkManagement { code, terminal } => {
                Ok(self
                    .network_management(code, terminal.as_ref().map(|t| t.as_str()).unwrap_or("")))
            }
            Request::StatusAdvice { key, detail } => {
                tracing::info!(terminal = %key.terminal, stan = %key.stan, %detail, "terminal status advice");
                Ok(RecordedReply::code(ResponseCode::Approved))
            }
            Request::BalanceInquiry {
                key,
                pan,
                currency,
                pin,
                acceptance,
            } => {
                if let Some(issuer) = self.issuer_for(&pan) {
                    let amount = protocols::types::Amount::new(0, currency);
                    return Ok(self
                        .bank_inquiry(issuer, &key, &pan, amount, pin.as_ref(), &acceptance)
                        .await);
                }
                self.balance_inquiry(&key, &pan, currency, pin.as_ref())
                    .await
            }
            Request::Withdrawal {
                key,
                pan,
                amount,
                pin,
                acceptance,
            } => match self.issuer_for(&pan) {
                Some(issuer) => {
                    let call =
                        bank::BankCall::new(HostTxn::Withdrawal, &key, &pan, amount, pin.as_ref());
                    self.bank_transaction(issuer, call, &acceptance).await
                }
                None => self.withdrawal(key, pan, amount, pin).await,
            },
            Request::Deposit {
                key,
                pan,
                amount,
                pin,
                acceptance,
            } => match self.issuer_for(&pan) {
                Some(issuer) => {
                    let call =
                        bank::BankCall::new(HostTxn::Deposit, &key, &pan, amount, pin.as_ref());
                    self.bank_transaction(issuer, call, &acceptance).await
                }
                None => self.deposit(key, pan, amount, pin).await,
            },
            Request::Completion {
                key,
                original,
                dispensed_minor,
            } => self.completion(key, original, dispensed_minor).await,
            Request::DepositAdvice { key, pan, amount } => {
                self.deposit_advice(key, pan, amount).await
            }
            Request::Reversal {
                key,
                original,
                kind,
                amount,
                dispensed_minor,
                pan,
            } => {
                self.reversal(key, original, kind, amount, dispensed_minor, pan)
                    .await
            }
        }
    }

    /// Serializes everything about one original transaction.
    async fn lock(&self, original: &TxnKey) -> MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        original.hash(&mut h);
        self.stripes[(h.finish() as usize) % LOCK_STRIPES]
            .lock()
            .await
    }

    /// The transaction's lock if nobody holds it now (its stripe's, shared by other keys).
    fn try_lock(&self, original: &TxnKey) -> Option<MutexGuard<'_, ()>> {
        let mut h = DefaultHasher::new();
        original.hash(&mut h);
        self.stripes[(h.finish() as usize) % LOCK_STRIPES]
            .try_lock()
            .ok()
    }

    /// Checks the reply record again under the lock: a concurrent duplicate may have just answered.
    fn recorded(
        &self,
        class: &'static str,
        key: &TxnKey,
    ) -> Result<Option<RecordedReply>, JournalError> {
        self.journal.reply(&MessageKey {
            class,
            txn: key.clone(),
        })
    }

    /// Records a bare response code as the answer to a message (no transaction change).
    async fn answer_code(
        &self,
        class: &'static str,
        key: &TxnKey,
        code: ResponseCode,
    ) -> Result<RecordedReply, JournalError> {
        self.answer(class, key, None, RecordedReply::code(code))
            .await
    }

    /// Records the answer to a message together with the transaction's new state, durably.
    async fn answer(
        &self,
        class: &'static str,
        key: &TxnKey,
        txn: Option<crate::domain::TxnRecord>,
        reply: RecordedReply,
    ) -> Result<RecordedReply, JournalError> {
        let write = JournalWrite {
            txn,
            reply: Some((
                MessageKey {
                    class,
                    txn: key.clone(),
                },
                reply.clone(),
            )),
        };
        self.journal.write(write).await?;
        Ok(reply)
    }
}

/// Where a request that creates a transaction stands once its record is open.
pub(crate) enum Opened<'a> {
    /// Answered without a ledger call (a replay, a card not on the wallet route, a zero amount…).
    Answered(RecordedReply),
    /// Journaled as requested (durably); the guard serializes the transaction until answered.
    /// `resumed`: the record was already there (an earlier attempt crashed or lost its journal
    /// write), so the ledger may hold that attempt's effect whatever this call meets.
    Ready {
        guard: MutexGuard<'a, ()>,
        rec: crate::domain::TxnRecord,
        resumed: bool,
    },
}

impl<L: Ledger, J: Journal> Switch<L, J> {
    /// The common start of a withdrawal and a deposit: route and amount checks, the transaction's
    /// lock, the replay check under it, the PIN step, and the record journaled in its first state
    /// before the ledger is called.
    pub(crate) async fn open_txn(
        &self,
        class: &'static str,
        kind: crate::domain::TxnKind,
        key: &TxnKey,
        pan: &protocols::types::Pan,
        amount: protocols::types::Amount,
        pin: Option<&PinEntry>,
    ) -> Result<Opened<'_>, JournalError> {
        use crate::domain::{Route, TxnKind, TxnRecord};
        if self.routes.route(pan) != Some(Route::Wallet) {
            tracing::warn!("card is not routed to the wallet: declined 14");
            let reply = self
                .answer_code(class, key, ResponseCode::InvalidAccount)
                .await?;
            return Ok(Opened::Answered(reply));
        }
        if amount.minor == 0 {
            let reply = self
                .answer_code(class, key, ResponseCode::InvalidAmount)
                .await?;
            return Ok(Opened::Answered(reply));
        }
        let guard = self.lock(key).await;
        if let Some(recorded) = self.recorded(class, key)? {
            return Ok(Opened::Answered(recorded));
        }
        // Money in needs no PIN: a deposit the agent took while the switch was unreachable
        // arrives later without a PIN block (PIN blocks are never stored), and the cash is
        // already in the terminal. A deposit that carries a PIN block is verified like the rest.
        let pin_needed = kind != TxnKind::Deposit || pin.is_some();
        if pin_needed {
            if let Some(reply) = self.pin_step(Some(class), key, pan, pin).await? {
                return Ok(Opened::Answered(reply));
            }
        }
        let fresh = TxnRecord::new(key, kind, self.account(pan)?.as_str(), amount, now_ms());
        match self.journal.txn(&key.as_string())? {
            // Requested before a crash, never answered: carry on with the same idempotency key.
            Some(rec) if rec.state == fresh.state => Ok(Opened::Ready {
                guard,
                rec,
                resumed: true,
            }),
            Some(rec) => {
                // A reversal got here first, or the record is in another state: never move money again.
                tracing::warn!(
                    state = rec.state.name(),
                    "request for a transaction already in the journal: declined"
                );
                let reply = self
                    .answer_code(class, key, ResponseCode::DoNotHonour)
                    .await?;
                Ok(Opened::Answered(reply))
            }
            None => {
                self.journal
                    .write(JournalWrite {
                        txn: Some(fresh.clone()),
                        reply: None,
                    })
                    .await?;
                Ok(Opened::Ready {
                    guard,
                    rec: fresh,
                    resumed: false,
                })
            }
        }
    }

    /// The common end: the ledger's outcome as the record's next state and the recorded answer,
    /// in one durable write.
    pub(crate) async fn close_txn(
        &self,
        class: &'static str,
        key: &TxnKey,
        mut rec: crate::domain::TxnRecord,
        next: crate::domain::TxnState,
        reply: RecordedReply,
    ) -> Result<RecordedReply, JournalError> {
        if let Err(e) = rec.advance(next, now_ms()) {
            tracing::error!(error = %e, "journal state machine refused the ledger outcome");
            return Ok(RecordedReply::code(ResponseCode::SystemError));
        }
        self.answer(class, key, Some(rec), reply).await
    }
}

fn request_key(request: &Request) -> Option<&TxnKey> {
    match request {
        Request::Withdrawal { key, .. }
        | Request::BalanceInquiry { key, .. }
        | Request::Deposit { key, .. }
        | Request::DepositAdvice { key, .. }
        | Request::Completion { key, .. }
        | Request::Reversal { key, .. } => Some(key),
        _ => None,
    }
}

/// Milliseconds since the epoch, for journal timestamps.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Seconds since the epoch, for key lifetimes.
pub(crate) fn now_unix() -> u64 {
    now_ms() / 1000
}

/// A 6-digit approval code (field 38) derived from the ledger's hold or movement id.
pub(crate) fn approval_code(id: &str) -> String {
    let mut h = DefaultHasher::new();
    id.hash(&mut h);
    format!("{:06}", h.finish() % 1_000_000)
}
