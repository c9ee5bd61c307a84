//! The seam between a terminal's NDC session and the customer flows.
//!
//! A flow (withdrawal, deposit, inquiry, settlement) needs three things from the terminal: what
//! the customer asked ([`CustomerRequest`]), a way to tell the terminal what to do
//! ([`CustomerReply`]), and the terminal's word on the cash afterwards ([`TerminalReport`]). The
//! NDC session provides them by implementing [`Conversation`]; the flows never see an NDC message,
//! a screen number or a field, and a unit test drives them with a scripted terminal.

use std::future::Future;

use protocols::framing::FramingError;
use protocols::ndc::NdcError;
use protocols::types::{Amount, Currency, Pan, TerminalId, Track2};

use crate::domain::dispense::TerminalReport;
use crate::domain::exchange::ResponseCode;
use crate::domain::mix::CassetteStock;
use crate::ports::{QueueError, StoreError};

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionEnd {
    #[error("terminal disconnected")]
    Disconnected,
    #[error("framing error: {0}")]
    Framing(#[source] FramingError),
    #[error("too many malformed messages in a row")]
    TooManyMalformed,
    #[error("terminal did not answer within {0} ms")]
    Timeout(u64),
    #[error("terminal refused {0}")]
    Refused(&'static str),
    #[error("storage: {0}")]
    Storage(#[from] StoreError),
    #[error("store-and-forward queue: {0}")]
    Queue(#[from] QueueError),
    #[error("cannot build an NDC message: {0}")]
    Encode(#[source] NdcError),
    /// The agent is stopping (SIGTERM/SIGINT): the session ends between customers.
    #[error("the agent is stopping")]
    Stopping,
    /// A newer connection of the same terminal replaced this one.
    #[error("replaced by a newer connection of the terminal")]
    Replaced,
}

/// The PIN the terminal sent with a request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PinEntry {
    /// No PIN buffer (or an empty one): the switch decides whether the card needs one.
    Absent,
    /// The PIN block under the terminal PIN key.
    Block([u8; 8]),
    /// A PIN buffer that is not a PIN block in the terminal's character set.
    Unreadable,
}

impl std::fmt::Debug for PinEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Absent => "Absent",
            Self::Block(_) => "Block(****)",
            Self::Unreadable => "Unreadable",
        })
    }
}

/// What the customer asked for, read from the terminal's transaction request.
#[derive(Debug, Clone)]
pub struct CustomerRequest {
    pub pan: Pan,
    /// Track 2 exactly as the terminal read it (field 35 of the online request; never stored).
    /// `None` when the card number came another way.
    pub track2: Option<Track2>,
    /// Zero when the request carries no amount.
    pub amount_minor: u64,
    pub pin: PinEntry,
}

/// Why a customer is turned away; the session shows the profile's screen for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decline {
    CardNotReadable,
    NotSupported,
    /// The cassettes cannot make the amount.
    AmountNotAvailable,
    InvalidAmount,
    /// The switch is unreachable or did not answer, or a PIN cannot be sent yet.
    HostUnavailable,
    /// A balance inquiry got no answer.
    InquiryUnanswered,
    InsufficientFunds,
    WrongPin,
    PinTriesExceeded,
    Declined,
}

impl Decline {
    /// The decline a switch's response code calls for.
    pub fn for_code(code: &ResponseCode) -> Decline {
        match code {
            ResponseCode::InsufficientFunds | ResponseCode::OverLimit => Self::InsufficientFunds,
            ResponseCode::WrongPin => Self::WrongPin,
            ResponseCode::PinTriesExceeded => Self::PinTriesExceeded,
            ResponseCode::IssuerUnavailable | ResponseCode::SystemError => Self::HostUnavailable,
            _ => Self::Declined,
        }
    }
}

/// What the terminal is to do for the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerReply {
    /// Dispense these notes (per cassette type); `tsn` identifies the dispense afterwards.
    Dispense {
        notes: Vec<u32>,
        amount: Amount,
        approval_code: String,
        tsn: u16,
    },
    /// Take the deposit.
    AcceptDeposit {
        amount: Amount,
        tsn: u16,
    },
    /// Show the available balance (`None`: the switch did not say).
    Balance {
        available_minor: Option<i64>,
    },
    Decline(Decline),
}

/// One terminal, as the flows see it.
pub trait Conversation: Send {
    fn terminal_id(&self) -> &TerminalId;
    /// The terminal's currency.
    fn currency(&self) -> Currency;
    /// Notes in each cassette as the agent counts them, and the number of cassette types the
    /// terminal's reply carries.
    fn note_stock(&self) -> (Vec<CassetteStock>, usize);
    /// Takes dispensed notes off the agent's counts (`full`: the whole mix left).
    fn dispensed(&mut self, notes: &[u32], full: bool);
    /// Tells the terminal what to do.
    fn reply(
        &mut self,
        reply: CustomerReply,
    ) -> impl Future<Output = Result<(), SessionEnd>> + Send;
    /// Waits for the terminal's word on the cash after a reply that moved it. `None`: the
    /// terminal went on without one (a power-up, a new customer): the outcome stays in doubt
    /// until its counters or its last transaction status tell it.
    fn report(&mut self)
        -> impl Future<Output = Result<Option<TerminalReport>, SessionEnd>> + Send;
}
