//! The "in doubt" record: what a terminal was told to do with cash and has not yet reported on.
//!
//! It is written durably *before* the request leaves for the switch, so that whatever dies
//! afterwards (the agent, the link, the terminal's power), the transaction is settled later from
//! the terminal's own word: completed, or reversed so that no hold or credit is left behind.
//!
//! There is one record per transaction, named by its terminal and transaction serial number
//! (TSN): the next customer never replaces one. A record whose outcome the terminal cannot tell
//! ([`Doubt::Uncounted`]) or did not tell before going on ([`Doubt::Unreported`]) waits for a
//! technician (`atmctl dispense settle`), whose word is an [`OperatorSettlement`].

use protocols::dialect::Acceptance;
use protocols::iso8583::TransmissionDateTime;
use protocols::types::{Amount, Stan};

use super::exchange::TransactionType;

/// What the terminal was told to do with cash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Purpose {
    /// Dispense for a withdrawal the switch approved.
    Withdrawal,
    /// Take a deposit the switch already credited (reverse it if the terminal does not).
    OnlineDeposit,
    /// Take a deposit while the switch is unreachable (advise it once taken).
    StoredDeposit,
}

impl Purpose {
    /// The transaction the switch knows it as.
    pub fn transaction(self) -> TransactionType {
        match self {
            Purpose::Withdrawal => TransactionType::Withdrawal,
            Purpose::OnlineDeposit | Purpose::StoredDeposit => TransactionType::Deposit,
        }
    }
}

/// How much the agent knows about a record's outcome, which says who may settle it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Doubt {
    /// The terminal was told and has not reported yet: its next word settles it (its status, or
    /// after a power failure its last transaction status or supply counters).
    #[default]
    Awaiting,
    /// The terminal went on to the next customer without reporting: only its own counters for
    /// this TSN, or a technician, can settle it (another TSN in its counters says nothing here).
    Unreported,
    /// The terminal reported an outcome nobody can count (`E3`, `E5`, a fault without counts,
    /// another device's fault): only a technician settles it.
    Uncounted { report: String },
}

impl Doubt {
    /// Whether it waits for a technician rather than the terminal.
    pub fn needs_operator(&self) -> bool {
        !matches!(self, Doubt::Awaiting)
    }
}

/// A technician's word on a record (`atmctl dispense settle`): who, when, why and what left.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OperatorSettlement {
    /// What the technician found: `Some(amount)` in minor units dispensed (or taken, for a
    /// deposit), `None` for nothing.
    pub dispensed_minor: Option<u64>,
    pub reason: String,
    /// The name the technician gave (`--by`).
    pub by: Option<String>,
    /// The control socket peer's user id, when the socket tells it.
    pub peer_uid: Option<u32>,
    pub at_ms: u64,
}

/// A dispense (or deposit) the terminal was told to do and has not reported on yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDispense {
    pub purpose: Purpose,
    /// Only for a stored deposit: its card number's place in the vault.
    pub card_ref: Option<String>,
    /// The transaction serial number the terminal reports back after a power failure.
    pub tsn: u16,
    /// The original request's STAN and transmission time (how completion and reversal name it).
    pub stan: Stan,
    pub transmitted_at: TransmissionDateTime,
    pub amount: Amount,
    /// Notes per cassette type the terminal was told to dispense (empty for a deposit).
    pub notes: Vec<u32>,
    pub since_ms: u64,
    /// What is known of its outcome.
    pub doubt: Doubt,
    /// The STAN and transmission time of the advice its settlement owes, chosen when the record
    /// is made: settling it again after a crash (the advice queued, the record not yet cleared)
    /// produces the same advice, which the queue holds once. `None` in records of earlier agents.
    pub advice_key: Option<(Stan, TransmissionDateTime)>,
    /// The transaction's acceptance context (local time, acquirer, RRN, acceptor), never card
    /// data: its advices carry the same. Empty in records of earlier agents.
    pub acceptance: Acceptance,
}
