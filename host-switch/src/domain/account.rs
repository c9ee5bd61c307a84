//! The wallet account a card belongs to.
//!
//! The switch never sends a clear PAN to the wallet ledger: the ledger knows accounts by the
//! card's keyed reference ([`CardRef`], made with the switch's card reference key by
//! `app::card_refs::CardReferences`). Tests and the lab seed ledger-sim with accounts derived the
//! same way, through a key store holding the same key, so both sides agree.

use std::fmt;

use super::card_ref::CardRef;

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct WalletAccount(String);

impl WalletAccount {
    /// The wallet account of the card whose reference is `card`: the same text.
    pub fn of(card: &CardRef) -> Self {
        Self(card.as_str().to_owned())
    }
    /// The wallet account of the card whose card reference key MAC is `mac`
    /// (`KeyStore::card_reference`).
    pub fn from_mac(mac: &[u8; 32]) -> Self {
        Self::of(&CardRef::from_mac(mac))
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
    fn the_account_is_the_cards_keyed_reference() {
        let card = CardRef::from_mac(&[0x5a; 32]);
        let a = WalletAccount::of(&card);
        assert_eq!(a.as_str(), card.as_str());
        assert_eq!(a, WalletAccount::from_mac(&[0x5a; 32]));
        assert!(a.as_str().starts_with("cref-"));
    }
}
