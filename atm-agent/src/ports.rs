//! The agent's ports: what the application (`app/`) needs from the outside world, as traits.
//!
//! Adapters (`adapters/`) implement them, `runtime` chooses which; `app/` only ever sees these
//! traits and the domain's values, so every flow can be run over in-memory fakes in a unit test.
//!
//! - [`SwitchLink`]: the link to the switch (typed requests and answers; the ISO 8583 mapping is
//!   the adapter's business);
//! - [`TerminalStore`]: the agent's own durable state per terminal: STAN and TSN counters, the
//!   dispense in doubt, the card vault, the PIN key a terminal holds;
//! - [`AdviceQueue`]: the durable store-and-forward queue of advices;
//! - [`KeyStore`]: keys and PIN blocks (the `keystore` crate's port, shared with the switch).

use std::future::Future;
use std::time::Duration;

use protocols::types::{Pan, Stan, TerminalId};
use tokio::sync::watch;

pub use keystore::KeyStore;

use crate::domain::advice::Advice;
use crate::domain::exchange::{CardRequest, ResponseCode, SwitchAnswer, ZonePinKeyDelivery};
use crate::domain::pending::{OperatorSettlement, PendingDispense};
use crate::domain::pin::LoadedPinKey;
pub use crate::queue::{Entry, EntryId, QueueError, RetryOutcome};

/// A boxed cause, so that ports name no adapter's error type yet keep the chain.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a request to the switch got no answer. The caller learns whether the switch may have
/// received (and acted on) it: a withdrawal in that state must be reversed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the switch is unreachable: request not sent")]
    Down,
    #[error("connection to the switch lost after the request was sent")]
    Lost,
    #[error("no answer from the switch within {0} ms")]
    Timeout(u64),
    /// Another request with the same terminal and STAN waits for its answer.
    #[error("a request with the same key is already in flight: {0}")]
    InFlight(String),
    /// The request cannot be written as a message of the dialect: it will never go.
    #[error("request cannot be encoded: {0}")]
    Encode(#[source] Cause),
    /// An answer came that is not one of the dialect (a code or field the agent cannot read):
    /// what the switch did is unknown.
    #[error("unreadable answer from the switch")]
    Unreadable(#[source] Cause),
    /// The switch answered, but not with what the request needed.
    #[error("unexpected answer from the switch: {0}")]
    Answer(String),
}

impl LinkError {
    /// Whether the switch may have received (and acted on) the request.
    pub fn maybe_delivered(&self) -> bool {
        matches!(self, Self::Lost | Self::Timeout(_) | Self::Unreadable(_))
    }
}

/// The link to the switch, shared by every terminal of this agent.
pub trait SwitchLink: Send + Sync + 'static {
    /// Whether the link is signed on (requests would be sent).
    fn is_up(&self) -> bool;
    /// Watches the link state (true = signed on).
    fn link_state(&self) -> watch::Receiver<bool>;
    /// Sends a customer's request and waits for the switch's answer.
    fn request(
        &self,
        request: &CardRequest,
        timeout: Duration,
    ) -> impl Future<Output = Result<SwitchAnswer, LinkError>> + Send;
    /// Sends a queued advice (`repeat`: a resend, 0221/0421) and returns the switch's code.
    /// `card`: the card number of a stored deposit, from the vault.
    fn advise(
        &self,
        advice: &Advice,
        repeat: bool,
        card: Option<&Pan>,
        timeout: Duration,
    ) -> impl Future<Output = Result<ResponseCode, LinkError>> + Send;
    /// Watches the zone PIN key version the switch announces at sign-on and in echoes.
    fn announced_zone_key(&self) -> watch::Receiver<Option<u32>>;
    /// Whether a deposit with this card may be taken while the switch is unreachable: only for
    /// the card ranges the switch said it credits (field 63 of its last sign-on or echo answer),
    /// so no cash is taken that nobody can credit. Before any such answer: none.
    fn takes_deposit_offline(&self, pan: &Pan) -> bool;
    /// Asks the switch for its current zone PIN key (under the zone master key).
    fn zone_pin_key(&self) -> impl Future<Output = Result<ZonePinKeyDelivery, LinkError>> + Send;
}

/// Why the agent's own state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the agent state at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: Cause,
    },
    #[error("agent state storage: {0}")]
    Storage(#[source] Cause),
    #[error("agent state record {key} is unreadable: {source}")]
    Corrupt {
        key: String,
        #[source]
        source: Cause,
    },
}

/// The agent's durable state per terminal. Every write is durable when its future completes.
pub trait TerminalStore: Send + Sync + 'static {
    /// The terminal's next STAN; never reused, even across a crash.
    fn next_stan(
        &self,
        terminal: &TerminalId,
    ) -> impl Future<Output = Result<Stan, StoreError>> + Send;
    /// The terminal's next transaction serial number (1..=9999, wrapping).
    fn next_tsn(
        &self,
        terminal: &TerminalId,
    ) -> impl Future<Output = Result<u16, StoreError>> + Send;
    /// Records a dispense in doubt before the terminal is told to dispense, or updates it: one
    /// record per transaction, named by terminal and TSN (`next_tsn` never hands out the TSN of
    /// a record still held, so a new transaction never replaces one).
    fn put_pending(
        &self,
        terminal: &TerminalId,
        pending: &PendingDispense,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The record of the terminal's transaction `tsn`.
    fn pending(
        &self,
        terminal: &TerminalId,
        tsn: u16,
    ) -> Result<Option<PendingDispense>, StoreError>;
    /// Every record of the terminal, oldest first.
    fn pending_of(&self, terminal: &TerminalId) -> Result<Vec<PendingDispense>, StoreError>;
    /// Forgets the record of transaction `tsn` once its outcome has been queued.
    fn clear_pending(
        &self,
        terminal: &TerminalId,
        tsn: u16,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every dispense still in doubt, by terminal.
    fn all_pending(&self) -> Vec<(String, PendingDispense)>;
    /// Journals a technician's settlement of a record, durably, before its advice is queued.
    fn log_operator_settlement(
        &self,
        terminal: &TerminalId,
        pending: &PendingDispense,
        settlement: &OperatorSettlement,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Keeps a card number under `reference` until its stored deposit is advised.
    fn put_card(
        &self,
        reference: &str,
        pan: &Pan,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn card(&self, reference: &str) -> Result<Option<Pan>, StoreError>;
    fn remove_card(&self, reference: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records which terminal PIN key version the terminal holds.
    fn put_pin_key(
        &self,
        terminal: &TerminalId,
        key: &LoadedPinKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn pin_key(&self, terminal: &TerminalId) -> Result<Option<LoadedPinKey>, StoreError>;
    /// Records why the agent holds the terminal out of service (`None`: the hold is released),
    /// durably: a restart of the agent must not put a suspect terminal back in service.
    fn put_hold(
        &self,
        terminal: &TerminalId,
        reason: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every terminal held out of service, with the reason.
    fn holds(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// Appends the lines of one upload block of the terminal's electronic journal, stored at
    /// `at_ms`; returns once they are durable (only then may the block be acknowledged). A block
    /// whose `block_end` (its last character number) is the last one stored is the same block
    /// sent again: nothing is stored. Keeps at most the store's limit of lines per terminal, the
    /// oldest removed beyond it.
    fn append_journal(
        &self,
        terminal: &TerminalId,
        at_ms: u64,
        block_end: Option<u32>,
        lines: &[String],
    ) -> impl Future<Output = Result<JournalAppend, StoreError>> + Send;
    /// The terminal's last `last` journal lines, oldest first.
    fn journal(
        &self,
        terminal: &str,
        last: usize,
    ) -> Result<Vec<crate::domain::journal::JournalLine>, StoreError>;
}

/// What [`TerminalStore::append_journal`] did with a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalAppend {
    /// Stored; `removed` old lines went to keep within the limit.
    Stored { removed: u64 },
    /// The block was the last one stored (sent again): nothing stored.
    AlreadyStored,
}

/// The store-and-forward queue of advices: durable, FIFO per terminal, one in flight per
/// terminal (semantics in `crate::queue`).
pub trait AdviceQueue: Send + Sync + 'static {
    /// Queues an advice; returns once it is durable (only then may the terminal be answered).
    /// Idempotent on the advice's own key (terminal, STAN, transmission time): queuing the same
    /// advice again (a settlement replayed after a crash) queues nothing new.
    fn enqueue(
        &self,
        terminal: &TerminalId,
        advice: Advice,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
    /// At most `max` heads that may be sent now, each claimed (in flight) so that no other
    /// pass picks it: each must be begun (`begin_attempt`) or released.
    fn claim_due(&self, now_ms: u64, max: usize) -> Vec<Entry<Advice>>;
    /// Gives back a claimed advice that was not begun.
    fn release(&self, id: &EntryId);
    /// Counts the attempt durably before the send (so a later send is a repeat).
    fn begin_attempt(
        &self,
        id: &EntryId,
    ) -> impl Future<Output = Result<Entry<Advice>, QueueError>> + Send;
    /// The switch acknowledged it (00).
    fn complete(&self, id: &EntryId) -> impl Future<Output = Result<(), QueueError>> + Send;
    fn retry_later(
        &self,
        id: &EntryId,
        error: &str,
        counts_against_limit: bool,
    ) -> impl Future<Output = Result<RetryOutcome, QueueError>> + Send;
    /// Gives up on an advice that can never be sent, visibly (an operator sees it).
    fn park(
        &self,
        id: &EntryId,
        reason: &str,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}
