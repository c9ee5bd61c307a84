//! The bank host route in domain terms: what the switch asks another bank's host, what it answers,
//! and the trace that ties a host's transaction to ours.
//!
//! A card whose range routes to a bank host is authorized by that host, not by the wallet: the
//! saga is the same (`TxnState`), only the calls change. A hold is an 0100 authorization; a
//! capture is an 0220 completion advice; a void or a compensation is an 0420 reversal; a deposit
//! is an 0200 financial request. Advices are store-and-forward: queued durably, repeated (0221,
//! 0421) until the host acknowledges them.

use keystore::EncryptedPinBlock;
use protocols::dialect::{Acceptance, Balances};
use protocols::types::{Amount, Pan, TerminalId};
use serde::{Deserialize, Serialize};

use super::ResponseCode;

/// How our request is known at the host: the STAN and transmission time the switch gave it, its
/// retrieval reference and MTI, journaled with the transaction *before* the host is asked, so a
/// timeout reversal (field 90) names exactly what was sent. Holds no card data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostTrace {
    /// The `[[bank_hosts]] name`.
    pub host: String,
    /// Field 11 of the request to the host.
    pub stan: u32,
    /// Field 7 of the request to the host, `MMDDhhmmss` (UTC).
    pub transmitted_at: String,
    /// Field 37, 12 characters.
    pub rrn: String,
    /// The request's MTI ("0100" or "0200").
    pub mti: String,
    /// Fields 12 and 13 of the request (`hhmmss`, `MMDD`), repeated in its advices.
    pub local_time: String,
    pub local_date: String,
}

/// What kind of request goes to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostTxn {
    /// 0100, processing code 01: an authorization; the cash leaves after it, the completion follows.
    Withdrawal,
    /// 0100, processing code 31.
    BalanceInquiry,
    /// 0200, processing code 21: the host credits at once.
    Deposit,
}

impl HostTxn {
    pub fn mti(self) -> &'static str {
        match self {
            Self::Withdrawal | Self::BalanceInquiry => "0100",
            Self::Deposit => "0200",
        }
    }
}

/// One request to a bank host. `Debug` masks the card (Pan, Track2 and Expiry mask themselves)
/// and never shows the PIN block.
#[derive(Debug, Clone)]
pub struct HostRequest {
    pub txn: HostTxn,
    pub trace: HostTrace,
    pub terminal: TerminalId,
    pub pan: Pan,
    pub acceptance: Acceptance,
    /// Zero for a balance inquiry.
    pub amount: Amount,
    /// The PIN block translated to the host's zone PIN key.
    pub pin: Option<EncryptedPinBlock>,
}

/// What the host answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAnswer {
    /// The host's field 39, as the dialect knows it (codes it does not know read as 05).
    pub code: ResponseCode,
    /// Field 38.
    pub approval_code: Option<String>,
    /// Field 54 of an inquiry.
    pub balances: Option<Balances>,
}

/// An advice that settles an earlier request at the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdviceKind {
    /// 0220 (0221): the withdrawal's cash left; field 95 when it was a partial dispense.
    Completion,
    /// 0420 (0421): undo the original, wholly or down to field 95's actual amount.
    Reversal,
}

/// One advice to a bank host, queued durably until acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAdvice {
    /// Unique per advice and stable across retries: `"<operation>:<txn key>"`. Queuing the same
    /// id again has no second effect.
    pub id: String,
    pub kind: AdviceKind,
    pub original: HostTrace,
    pub original_txn: HostTxn,
    pub terminal: TerminalId,
    /// Field 4: the original amount.
    pub amount: Amount,
    /// Field 95's actual amount: what stands after the advice (dispensed for a completion, kept
    /// for a partial reversal). `None`: the whole amount (completion) or nothing (reversal).
    pub actual_minor: Option<u64>,
}

/// A bank host as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerStatus {
    /// A connection is signed on.
    pub connected: bool,
    pub breaker: crate::breaker::BreakerState,
    /// Advices (0220, 0420) queued and not acknowledged yet.
    pub queued_advices: usize,
}

/// Why a call to a bank host did not get an answer. [`may_have_applied`](Self::may_have_applied)
/// says whether the host may hold the transaction although it did not say so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerError {
    #[error("no bank host named {0:?} is configured")]
    UnknownHost(String),
    #[error("bank host {0} circuit breaker is open")]
    BreakerOpen(String),
    #[error("bank host {host}: no signed-on connection ({reason})")]
    NotConnected { host: String, reason: String },
    #[error("bank host {host}: no answer within {ms} ms")]
    Timeout { host: String, ms: u64 },
    #[error("bank host {host}: connection lost after the request left ({reason})")]
    ConnectionLost { host: String, reason: String },
    #[error("bank host {host}: the answer does not read ({reason})")]
    BadAnswer { host: String, reason: String },
    #[error("bank host {host}: advice {id} is queued, not acknowledged yet")]
    Queued { host: String, id: String },
    #[error("bank host {host}: store-and-forward queue: {reason}")]
    Storage { host: String, reason: String },
}

impl IssuerError {
    /// The request may have reached the host and been applied: its outcome is unknown and is
    /// settled by a reversal, never by a decline.
    pub fn may_have_applied(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. } | Self::ConnectionLost { .. } | Self::BadAnswer { .. }
        )
    }
}
