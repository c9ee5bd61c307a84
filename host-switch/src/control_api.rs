//! The requests of the switch's control socket, typed once for both ends: the switch parses them
//! (`adapters::control`) and `switchctl` and the tests send them (`cli::control::send`). On the
//! wire: one JSON object per line, tagged by `cmd`:
//! - `{"cmd":"card_status","card":"<card reference or PAN>"}`
//! - `{"cmd":"card_unblock","card":"<card reference or PAN>"}`
//! - `{"cmd":"zpk_rotate"}`
//! - `{"cmd":"keys_list"}`
//! - `{"cmd":"exceptions_list"}`
//! - `{"cmd":"bank_hosts"}`
//! - `{"cmd":"exception_resolve","txn":"<transaction key>","resolution":"retry|write_off","by":"<who>","reason":"<why>"}`
//!
//! A card may be named by its PAN: it is held in a zeroizing buffer and never printed.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

#[derive(Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    CardStatus {
        card: Zeroizing<String>,
    },
    CardUnblock {
        card: Zeroizing<String>,
    },
    ZpkRotate,
    KeysList,
    ExceptionsList,
    /// Every bank host: link signed on, breaker state, advices queued.
    BankHosts,
    ExceptionResolve {
        txn: String,
        resolution: crate::app::exceptions::Resolution,
        by: String,
        reason: String,
    },
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::CardStatus { .. } => "CardStatus { card: **** }",
            Self::CardUnblock { .. } => "CardUnblock { card: **** }",
            Self::ZpkRotate => "ZpkRotate",
            Self::KeysList => "KeysList",
            Self::ExceptionsList => "ExceptionsList",
            Self::BankHosts => "BankHosts",
            Self::ExceptionResolve { .. } => "ExceptionResolve",
        })
    }
}

impl Request {
    pub fn card_status(card: &str) -> Self {
        Self::CardStatus {
            card: Zeroizing::new(card.to_owned()),
        }
    }
    pub fn card_unblock(card: &str) -> Self {
        Self::CardUnblock {
            card: Zeroizing::new(card.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_the_lines_the_switch_always_read_and_never_print_a_card() {
        let r = Request::card_unblock("4761739001010010");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"cmd":"card_unblock","card":"4761739001010010"}"#
        );
        assert!(!format!("{r:?}").contains("4761"));
        assert_eq!(
            serde_json::to_string(&Request::ZpkRotate).unwrap(),
            r#"{"cmd":"zpk_rotate"}"#
        );
    }
}
