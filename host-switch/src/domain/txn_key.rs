//! How a transaction and a message are identified.
//!
//! ARCHITECTURE.md: a transaction is identified by terminal id (41), STAN (11) and transmission
//! date-time (7). A *message* additionally carries its MTI class, so that a reversal is never
//! confused with the original it reverses (jPOS QMUX keys on MTI class + 41 + 11).

use std::fmt;

use protocols::types::{Stan, TerminalId};

/// Identity of one customer transaction (the original request), e.g. `ATM00001:000123:1125114000`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxnKey {
    pub terminal: TerminalId,
    pub stan: Stan,
    /// Field 7, `MMDDhhmmss`, exactly as the terminal sent it.
    pub transmitted_at: String,
}

impl TxnKey {
    pub fn new(terminal: TerminalId, stan: Stan, transmitted_at: impl Into<String>) -> Self {
        Self {
            terminal,
            stan,
            transmitted_at: transmitted_at.into(),
        }
    }

    /// The stable text form, used as the journal key and inside ledger idempotency keys.
    pub fn as_string(&self) -> String {
        format!("{}:{}:{}", self.terminal, self.stan, self.transmitted_at)
    }

    /// Idempotency key of one ledger operation on this transaction (`hold`, `capture`, `void`, …).
    /// The same operation on the same transaction always carries the same key, so a retry after a
    /// crash or a timeout can never post twice.
    pub fn ledger_key(&self, operation: &str) -> String {
        format!("{operation}:{}", self.as_string())
    }
}

impl fmt::Display for TxnKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}
impl fmt::Debug for TxnKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxnKey({self})")
    }
}

/// Identity of one request message: its MTI class (`01`, `02`, `022`, `04`, …) and its own key.
/// A repeat (0221, 0421) has the class of its first send, so it finds the recorded answer.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct MessageKey {
    pub class: &'static str,
    pub txn: TxnKey,
}

impl MessageKey {
    /// The class of a request MTI, or `None` for an MTI this switch does not answer.
    pub fn class_of(mti: &str) -> Option<&'static str> {
        Some(match mti {
            "0100" | "0101" => "0100",
            "0200" | "0201" => "0200",
            "0220" | "0221" => "0220",
            "0420" | "0421" => "0420",
            "0800" => "0800",
            "0820" => "0820",
            _ => return None,
        })
    }
    pub fn as_string(&self) -> String {
        format!("{}:{}", self.class, self.txn.as_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TxnKey {
        TxnKey::new(
            TerminalId::parse("ATM00001").unwrap(),
            Stan::new(123).unwrap(),
            "1125114000",
        )
    }

    #[test]
    fn txn_key_text_form_is_stable() {
        assert_eq!(key().as_string(), "ATM00001:000123:1125114000");
        assert_eq!(key().ledger_key("hold"), "hold:ATM00001:000123:1125114000");
    }

    #[test]
    fn repeats_share_the_class_of_their_first_send() {
        assert_eq!(MessageKey::class_of("0421"), MessageKey::class_of("0420"));
        assert_eq!(MessageKey::class_of("0221"), Some("0220"));
        assert_eq!(MessageKey::class_of("0110"), None);
        let m = MessageKey {
            class: "0420",
            txn: key(),
        };
        assert_eq!(m.as_string(), "0420:ATM00001:000123:1125114000");
    }
}
