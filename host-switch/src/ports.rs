//! The switch's ports: what the application needs from the outside world, as traits.
//! Adapters (`adapters/`) implement them; `app/` only ever sees these. (The key store's port is
//! `keystore::KeyStore`, shared with the agent.)

use std::future::Future;

use futures::future::BoxFuture;
use protocols::types::Amount;

use crate::domain::pin::{CardPinRecord, CardRef, PinData};
use crate::domain::reconcile::LedgerMovement;
use crate::domain::{MessageKey, RecordedReply, TxnRecord};

/// What the wallet ledger answered, in domain terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("insufficient funds")]
    InsufficientFunds,
    #[error("unknown account")]
    UnknownAccount,
    #[error("ledger refused the request as invalid: {0}")]
    Invalid(String),
    /// Same idempotency key with other content, or an operation the hold's state forbids.
    #[error("ledger conflict: {0}")]
    Conflict(String),
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
    #[error("ledger call timed out after {0} ms")]
    Timeout(u64),
    #[error("ledger circuit breaker is open")]
    BreakerOpen,
}

impl LedgerError {
    /// Whether the call may succeed if tried again later (the switch answers 91 and keeps the work).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::Timeout(_) | Self::BreakerOpen
        )
    }

    /// Whether the ledger may have applied the call although it did not say so (a timeout, a 5xx,
    /// a lost connection, an unreadable answer): its outcome is unknown until the same
    /// idempotency key is asked again. `BreakerOpen` means the call was never sent.
    pub fn may_have_applied(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Timeout(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub hold_id: String,
    pub amount: Amount,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostingKind {
    Credit,
    Debit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub available_minor: i64,
    pub balance_minor: i64,
    pub currency: protocols::types::Currency,
}

/// The wallet ledger. Every call carries an idempotency key: repeating it has no second effect.
pub trait Ledger: Send + Sync + 'static {
    fn hold(
        &self,
        key: &str,
        account: &str,
        amount: Amount,
        reference: &str,
    ) -> impl Future<Output = Result<Hold, LedgerError>> + Send;
    fn capture(
        &self,
        key: &str,
        hold_id: &str,
        amount_minor: u64,
    ) -> impl Future<Output = Result<(), LedgerError>> + Send;
    fn void(
        &self,
        key: &str,
        hold_id: &str,
    ) -> impl Future<Output = Result<(), LedgerError>> + Send;
    fn post(
        &self,
        key: &str,
        kind: PostingKind,
        account: &str,
        amount: Amount,
        reference: &str,
    ) -> impl Future<Output = Result<String, LedgerError>> + Send;
    fn balance(&self, account: &str) -> impl Future<Output = Result<Balance, LedgerError>> + Send;
    /// Every movement the ledger posted, for reconciliation.
    fn movements(&self) -> impl Future<Output = Result<Vec<LedgerMovement>, LedgerError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal storage: {context}")]
    Storage {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    #[error("journal record {key} is corrupt")]
    Corrupt {
        key: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    #[error("journal is shut down")]
    Closed,
}

/// One atomic, durable journal write: a transaction's new state and/or the answer to a message.
#[derive(Debug, Default)]
pub struct JournalWrite {
    pub txn: Option<TxnRecord>,
    pub reply: Option<(MessageKey, RecordedReply)>,
}

/// The durable journal of transactions and answers.
pub trait Journal: Send + Sync + 'static {
    /// The recorded answer to a message, if it was answered before.
    fn reply(&self, key: &MessageKey) -> Result<Option<RecordedReply>, JournalError>;
    /// A transaction by its key text (`TxnKey::as_string`).
    fn txn(&self, key: &str) -> Result<Option<TxnRecord>, JournalError>;
    /// Writes atomically and returns once the write is on disk. Concurrent writers share flushes.
    fn write(&self, write: JournalWrite) -> impl Future<Output = Result<(), JournalError>> + Send;
    /// Every transaction (for reconciliation and the operator's view).
    fn txns(&self) -> Result<Vec<TxnRecord>, JournalError>;
    /// The keys of the transactions whose state owes the ledger work (`is_pending_outbound`),
    /// for the resumer: it must not scan the whole journal every few seconds.
    fn pending_keys(&self) -> Result<Vec<String>, JournalError>;
    /// Moves transactions finished (`TxnState::is_finished`) before `before_ms` out of the hot
    /// journal into its archive, where `txn`, `reply` and `txns` still find them; returns how
    /// many moved. A journal without an archive keeps everything hot.
    fn archive_finished(
        &self,
        before_ms: u64,
    ) -> impl Future<Output = Result<usize, JournalError>> + Send {
        let _ = before_ms;
        async { Ok(0) }
    }
}

/// What provisioning the issuer's cards file changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProvisionReport {
    /// Cards in the file.
    pub cards: usize,
    /// Cards seen for the first time.
    pub added: usize,
    /// Cards no longer in the file: their verification data is dropped, their counters kept.
    pub cleared: usize,
}

/// The wallet cards' PIN records: the issuer's verification data and the wrong-try counters.
/// Object-safe (boxed futures) so the application holds it without another type parameter.
pub trait CardPinStore: Send + Sync + 'static {
    /// One card's record.
    fn card(&self, card: &CardRef) -> Result<Option<CardPinRecord>, JournalError>;
    /// Writes one record; returns once it is on disk (a decline that depends on it may then leave).
    fn save(&self, record: CardPinRecord) -> BoxFuture<'_, Result<(), JournalError>>;
    /// Takes the issuer's verification data for every card in `cards` and drops it for cards no
    /// longer listed, never touching tries or blocked state; durable on return.
    fn provision(
        &self,
        cards: Vec<(CardRef, PinData)>,
    ) -> BoxFuture<'_, Result<ProvisionReport, JournalError>>;
}

/// Another bank's host, reached over ISO 8583 (the bank host route). Object-safe: the switch
/// holds one per `[[bank_hosts]]` entry.
pub trait IssuerHost: Send + Sync + 'static {
    /// The `[[bank_hosts]] name`.
    fn name(&self) -> &str;
    /// A new trace (STAN, RRN, transmission time) for a request to this host. Unique among the
    /// host's requests for at least a day, across restarts.
    fn trace(
        &self,
        txn: crate::domain::issuer::HostTxn,
    ) -> Result<crate::domain::issuer::HostTrace, crate::domain::issuer::IssuerError>;
    /// Whether it is reachable, its breaker, and the advices it has not acknowledged yet.
    fn status(&self) -> crate::domain::issuer::IssuerStatus;
    /// The host's zone PIN key (PIN blocks are translated to it); `None`: PINs cannot be sent.
    fn zpk(&self) -> Option<&keystore::KeyName>;
    /// Sends a request and waits for its answer, within the host's timeout and behind its breaker.
    fn request(
        &self,
        request: crate::domain::issuer::HostRequest,
    ) -> BoxFuture<'_, Result<crate::domain::issuer::HostAnswer, crate::domain::issuer::IssuerError>>;
    /// Queues an advice durably (once per id); `Ok` once the host has acknowledged it. With
    /// `wait`, waits up to the host's timeout for that; without, answers at once. `Err(Queued)`
    /// leaves it queued: it is repeated until acknowledged.
    fn advise(
        &self,
        advice: crate::domain::issuer::HostAdvice,
        wait: bool,
    ) -> BoxFuture<'_, Result<(), crate::domain::issuer::IssuerError>>;
}
