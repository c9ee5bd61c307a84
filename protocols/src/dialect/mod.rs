//! # The agent ↔ switch dialect, defined once
//!
//! The agent and the switch speak ISO 8583:1987 in the `iso87-ascii` layout (docs/ARCHITECTURE.md,
//! "The agent ↔ switch dialect"). Which fields each message carries, what the processing and
//! response codes mean, and how a key is written into field 53 is a contract between two daemons,
//! so it lives here, in one place, as types: the agent builds a [`Request`] and sends
//! [`Request::to_message`]; the switch reads it back with [`Request::from_message`] and answers
//! with [`Answer::to_message`]; the agent reads that with [`Answer::from_message`]. The load
//! generator and the test kits use the same functions, so the two daemons cannot drift apart
//! without a round-trip test noticing (`tests/dialect_props.rs`).
//!
//! Layout:
//! - [`codes`]: transaction types (processing code, field 3), network management codes (field 70),
//!   response codes (field 39).
//! - [`request`]: what a terminal's agent asks of the switch: network management, withdrawal,
//!   balance inquiry, deposit, completion advice, reversal advice, status advice.
//! - [`answer`]: what the switch answers: the code, and what an approval adds (approval code,
//!   balances, zone PIN key version and cryptogram).
//! - [`error`]: why a message is not a request or answer of the dialect, with the response code to
//!   answer it with.

pub mod acceptance;
pub mod answer;
pub mod codes;
pub mod error;
pub mod request;

pub use acceptance::{
    valid_acceptor_id, valid_acceptor_location, valid_acquirer_id, valid_track2_field, Acceptance,
    EntryMode, Expiry, MERCHANT_TYPE_ATM,
};
pub use answer::{Answer, Balances, OfflineDeposits};
pub use codes::{NetworkCode, ResponseCode, TransactionType};
pub use error::DialectError;
pub use request::{
    Advice, CardRequest, MessageKey, NetworkRequest, OriginalKey, PinField, Request, StatusAdvice,
};

/// Field 53 as the dialect writes a key version: 16 digits, zero-filled.
pub fn key_version_field(version: u32) -> String {
    format!("{version:016}")
}

/// Field 53 read back: `None` when it is empty, not digits, zero or over `u32`.
pub fn parse_key_version_field(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>()
        .ok()
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_versions_are_sixteen_digits_and_zero_is_none() {
        assert_eq!(key_version_field(3), "0000000000000003");
        assert_eq!(parse_key_version_field("0000000000000003"), Some(3));
        assert_eq!(parse_key_version_field("0000000000000000"), None);
        assert_eq!(parse_key_version_field("00000000000000x3"), None);
        assert_eq!(parse_key_version_field(""), None);
        assert_eq!(parse_key_version_field("99999999999999999"), None);
    }
}
