//! Card references made with the switch's card reference key (`[card_refs] key`, usage
//! `card_reference`): every request's card becomes its keyed [`CardRef`] and wallet account here,
//! through the key store, so the key never leaves it.
//!
//! The key is looked up once, at start: a switch without it refuses to start (it could not name
//! a single account), with the command that creates it in the error. References are stable only
//! as long as the key is: a new version of it would give every card a new reference and a new
//! wallet account, so the switch takes the newest version and `host-switch keys generate` refuses
//! to make a second one (see OPERATIONS.md).

use std::sync::Arc;

use keystore::{KeyInfo, KeyName, KeyRef, KeyStore, KeyStoreError, KeyUsage};
use protocols::types::Pan;

use crate::domain::{CardRef, WalletAccount};

/// Why card references cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum CardRefError {
    #[error("no card reference key {name} in the key store: create it with `host-switch keys generate {name} --usage card_reference --config FILE` while the switch is stopped (see OPERATIONS.md, card references)")]
    Missing { name: String },
    #[error("key {name} has usage {actual}, card references need a card_reference key (`[card_refs] key` names another key?)")]
    WrongUsage { name: String, actual: KeyUsage },
    #[error("card reference key {key}")]
    KeyStore {
        key: String,
        #[source]
        source: KeyStoreError,
    },
}

/// Makes keyed card references and wallet accounts.
pub struct CardReferences {
    keys: Arc<dyn KeyStore>,
    key: KeyRef,
}

impl CardReferences {
    /// The newest version of `name`, which must exist and be a card reference key.
    pub fn open(keys: Arc<dyn KeyStore>, name: &KeyName) -> Result<Self, CardRefError> {
        let info = keys
            .current(name)
            .map_err(|source| CardRefError::KeyStore {
                key: name.to_string(),
                source,
            })?
            .ok_or_else(|| CardRefError::Missing {
                name: name.to_string(),
            })?;
        Self::with_key(keys, &info)
    }

    fn with_key(keys: Arc<dyn KeyStore>, info: &KeyInfo) -> Result<Self, CardRefError> {
        if info.usage != KeyUsage::CardReference {
            return Err(CardRefError::WrongUsage {
                name: info.name.to_string(),
                actual: info.usage,
            });
        }
        Ok(Self {
            keys,
            key: info.key_ref(),
        })
    }

    /// The key (name and version) references are made with.
    pub fn key(&self) -> &KeyRef {
        &self.key
    }

    /// The card's keyed reference.
    pub fn card(&self, pan: &Pan) -> Result<CardRef, CardRefError> {
        self.keys
            .card_reference(&self.key, pan)
            .map(|mac| CardRef::from_mac(&mac))
            .map_err(|source| CardRefError::KeyStore {
                key: self.key.to_string(),
                source,
            })
    }

    /// The card's wallet account (the same token as its reference).
    pub fn account(&self, pan: &Pan) -> Result<WalletAccount, CardRefError> {
        self.card(pan).map(|c| WalletAccount::of(&c))
    }

    /// An operator's card: a reference as typed, or a PAN derived to its keyed reference.
    pub fn from_operator(&self, s: &str) -> Result<CardRef, String> {
        CardRef::from_operator(s, |pan| self.card(pan).map_err(|e| e.to_string()))
    }

    /// One line of the migration map: the card's legacy (unkeyed) reference and its keyed one.
    pub fn migration_pair(&self, pan: &Pan) -> Result<(CardRef, CardRef), CardRefError> {
        Ok((CardRef::legacy_for_card(pan), self.card(pan)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keystore::{Kek, KeyLength, SoftwareKeyStore};
    use sha2::{Digest, Sha256};

    fn store(dir: &std::path::Path, name: &str) -> Arc<dyn KeyStore> {
        let kek = Kek::from_hex(&"11".repeat(32)).unwrap();
        Arc::new(SoftwareKeyStore::open(&dir.join(name), kek).unwrap())
    }

    fn pan() -> Pan {
        Pan::parse("4761739001010010").unwrap()
    }

    #[test]
    fn a_reference_cannot_be_computed_without_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let name = KeyName::new("cardref").unwrap();
        let (a, b) = (store(dir.path(), "a.json"), store(dir.path(), "b.json"));
        for s in [&a, &b] {
            s.generate(&name, KeyUsage::CardReference, KeyLength::Bytes32)
                .unwrap();
        }
        let refs_a = CardReferences::open(a, &name).unwrap();
        let refs_b = CardReferences::open(b, &name).unwrap();
        let card = refs_a.card(&pan()).unwrap();
        assert_eq!(card, refs_a.card(&pan()).unwrap(), "stable under one key");
        assert!(card.as_str().starts_with("cref-"));
        assert_ne!(
            card,
            refs_b.card(&pan()).unwrap(),
            "another key, another reference"
        );
        // Neither the old unkeyed token nor any plain SHA-256 of the PAN gives it.
        let sha: String = Sha256::digest(pan().expose().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!sha.contains(&card.as_str()[5..]));
        assert_ne!(card, CardRef::legacy_for_card(&pan()));
        assert_eq!(refs_a.account(&pan()).unwrap().as_str(), card.as_str());
        let (legacy, keyed) = refs_a.migration_pair(&pan()).unwrap();
        assert_eq!((legacy.is_legacy(), keyed), (true, card.clone()));
        assert_eq!(refs_a.from_operator("4761739001010010").unwrap(), card);
    }

    #[test]
    fn without_the_key_or_with_another_usage_nothing_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "a.json");
        let name = KeyName::new("cardref").unwrap();
        let err = CardReferences::open(s.clone(), &name).err().unwrap();
        assert!(
            err.to_string()
                .contains("host-switch keys generate cardref --usage card_reference --config FILE"),
            "{err}"
        );
        s.generate(&name, KeyUsage::DataProtection, KeyLength::Bytes32)
            .unwrap();
        let err = CardReferences::open(s, &name).err().unwrap();
        assert!(matches!(err, CardRefError::WrongUsage { .. }), "{err}");
    }
}
