//! The wallet account a card belongs to.
//!
//! The switch never sends a clear PAN to the wallet ledger: the ledger knows accounts by a card
//! token, derived here as the first 24 hex digits of SHA-256 over the PAN, prefixed `card-`.
//! The same function seeds ledger-sim in tests and in the lab, so both sides agree.

use std::fmt;

use protocols::types::Pan;
use sha2::{Digest, Sha256};

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct WalletAccount(String);

impl WalletAccount {
    /// The wallet account of a card.
    pub fn for_card(pan: &Pan) -> Self {
        let digest = Sha256::digest(pan.expose().as_bytes());
        let mut token = String::with_capacity(29);
        token.push_str("card-");
        for b in &digest[..12] {
            token.push_str(&format!("{b:02x}"));
        }
        Self(token)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WalletAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for WalletAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WalletAccount({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_stable_and_hides_the_pan() {
        let pan = Pan::parse("4761739001010010").unwrap();
        let a = WalletAccount::for_card(&pan);
        assert_eq!(a, WalletAccount::for_card(&pan));
        assert!(a.as_str().starts_with("card-"));
        assert_eq!(a.as_str().len(), 29);
        assert!(!a.as_str().contains("4761739001010010"));
    }
}
