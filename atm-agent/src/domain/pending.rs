//! The "in doubt" record: what a terminal was told to do with cash and has not yet reported on.
//!
//! It is written durably *before* the request leaves for the switch, so that whatever dies
//! afterwards (the agent, the link, the terminal's power), the transaction is settled later from
//! the terminal's own word: completed, or reversed so that no hold or credit is left behind.

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
}
