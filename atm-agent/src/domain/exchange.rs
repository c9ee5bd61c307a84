//! What the agent asks the switch about a customer and what the switch answers, in the agent's
//! terms: a typed request (transaction type, transaction key, card, amount, PIN) and a typed
//! answer (response code, approval code, balance).
//!
//! The application hands these to the link port (`ports::SwitchLink`) and never sees a field
//! number; the uplink adapter writes them as ISO 8583 (`adapters::switch_messages`). They map one to one
//! onto the messages of `protocols::dialect`.

use protocols::dialect::Acceptance;
use protocols::iso8583::TransmissionDateTime;
use protocols::types::{Amount, Pan, Stan, TerminalId};

use super::pin::ZonePinBlock;

/// What a customer asks for, and how the switch answered: the dialect's own codes, shared with
/// the switch (`protocols::dialect`).
pub use protocols::dialect::{ResponseCode, TransactionType};

/// Whether an answer to a withdrawal or a deposit leaves it unknown if the switch acted on it.
/// 96 (system error) does: the switch may have placed the hold or posted the credit and then
/// failed to journal it, so the agent reverses as after a timeout. Every other decline (51, 05,
/// 14, 55, 61 …) is definite: nothing was done, nothing is owed. A 91 is the switch's own
/// "could not reach the ledger": it voids or compensates on its side (its resumer).
pub fn approval_may_exist(code: &ResponseCode) -> bool {
    matches!(code, ResponseCode::SystemError)
}

/// How the switch finds a transaction again: terminal id, STAN and transmission date-time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionKey {
    pub terminal: TerminalId,
    pub stan: Stan,
    pub transmitted_at: TransmissionDateTime,
}

/// A customer's request for the switch: authorization (withdrawal, inquiry) or deposit.
#[derive(Debug, Clone)]
pub struct CardRequest {
    pub transaction: TransactionType,
    pub key: TransactionKey,
    pub pan: Pan,
    /// Zero for a balance inquiry.
    pub amount: Amount,
    /// The PIN under the zone PIN key, when the terminal sent one and PINs are handled.
    pub pin: Option<ZonePinBlock>,
    /// Where, when and how the card was accepted (fields 12, 13, 14, 22, 32, 35, 37, 42, 43):
    /// the transaction's context and the card read (`domain::acceptance`).
    pub acceptance: Acceptance,
}

/// The switch's answer to a [`CardRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchAnswer {
    pub code: ResponseCode,
    /// Field 38 of an approval (printed on the receipt).
    pub approval_code: Option<String>,
    /// Available balance in minor units (negative: overdrawn), for an inquiry.
    pub available_minor: Option<i64>,
}

impl SwitchAnswer {
    pub fn code(code: ResponseCode) -> Self {
        Self {
            code,
            approval_code: None,
            available_minor: None,
        }
    }
}

/// The zone PIN key as the switch sends it: under the zone master key, with its version, check
/// value and the MAC that binds them (checked by the key store before import).
pub type ZonePinKeyDelivery = keystore::KeyDelivery;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_system_error_leaves_an_approval_possible() {
        for code in ResponseCode::ALL {
            assert_eq!(
                approval_may_exist(&code),
                code == ResponseCode::SystemError,
                "{code}"
            );
        }
    }
}
