//! A card's reference: the token the switch, its journal, its PIN records, the issuer's cards
//! file and the wallet ledger know a card by, so that no PAN is stored or sent anywhere.
//!
//! A reference is `cref-` and 32 lowercase hex digits: the first 16 bytes of HMAC-SHA-256 over the
//! PAN's digits under the switch's card reference key (`KeyStore::card_reference`, see
//! `app::card_refs`). Without that key nobody can tell which PAN a reference stands for, even
//! knowing the masked PAN's first 6 and last 4 digits: the 10^5 or so candidates in between
//! cannot be tested.
//!
//! Before keyed references, a reference was `card-` and the first 24 hex digits of an unkeyed
//! SHA-256 of the PAN: anyone holding one beside a masked PAN could find the card number. Those
//! *legacy* references still parse (old PIN records, an operator naming one), so that the
//! migration (`host-switch cards map-refs`, see OPERATIONS.md) can find them; the switch never
//! makes one for a request, and the issuer's cards file must not use them.

use std::fmt;

use protocols::types::Pan;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Prefix of a keyed reference.
pub const KEYED_PREFIX: &str = "cref-";
/// Prefix of a legacy (unkeyed) reference.
pub const LEGACY_PREFIX: &str = "card-";
/// Hex digits of a keyed reference after its prefix (16 bytes of the MAC).
const KEYED_HEX: usize = 32;
/// Hex digits of a legacy reference after its prefix.
const LEGACY_HEX: usize = 24;

/// A card's reference, keyed (`cref-…`) or legacy (`card-…`). See the module's doc.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CardRef(String);

impl CardRef {
    /// The keyed reference made from the card reference key's MAC of the PAN
    /// (`KeyStore::card_reference`).
    pub fn from_mac(mac: &[u8; 32]) -> Self {
        Self(format!("{KEYED_PREFIX}{}", hex(&mac[..KEYED_HEX / 2])))
    }

    /// The legacy, unkeyed reference of a card (`card-` + 24 hex digits of SHA-256 of the PAN).
    /// Only the migration uses it: to find what was stored or opened under it.
    pub fn legacy_for_card(pan: &Pan) -> Self {
        let digest = Sha256::digest(pan.expose().as_bytes());
        Self(format!("{LEGACY_PREFIX}{}", hex(&digest[..LEGACY_HEX / 2])))
    }

    /// A reference as written in a file or by an operator, keyed or legacy.
    pub fn parse(s: &str) -> Result<Self, String> {
        let well_formed = |prefix: &str, digits: usize| {
            s.len() == prefix.len() + digits
                && s.starts_with(prefix)
                && s[prefix.len()..]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if well_formed(KEYED_PREFIX, KEYED_HEX) || well_formed(LEGACY_PREFIX, LEGACY_HEX) {
            Ok(Self(s.to_owned()))
        } else {
            // The value is not echoed: it might be a PAN typed by mistake.
            Err(format!(
                "not a card reference ({KEYED_PREFIX} and {KEYED_HEX} lowercase hex digits)"
            ))
        }
    }

    /// A keyed reference only: what the issuer's cards file must hold.
    pub fn parse_keyed(s: &str) -> Result<Self, String> {
        let card = Self::parse(s)?;
        if card.is_legacy() {
            return Err(format!(
                "a legacy card reference ({LEGACY_PREFIX}…): the switch knows cards by keyed references ({KEYED_PREFIX}…); rewrite the file with `host-switch cards rewrite-file` (see OPERATIONS.md)"
            ));
        }
        Ok(card)
    }

    /// An operator's way of naming a card: a reference, or a PAN that `derive` turns into the
    /// keyed reference (through the key store; the PAN is not kept).
    pub fn from_operator(
        s: &str,
        derive: impl FnOnce(&Pan) -> Result<CardRef, String>,
    ) -> Result<Self, String> {
        if s.starts_with(KEYED_PREFIX) || s.starts_with(LEGACY_PREFIX) {
            return Self::parse(s);
        }
        match Pan::parse(s) {
            Ok(pan) => derive(&pan),
            Err(_) => Err(format!("not a card reference ({KEYED_PREFIX}…) nor a PAN")),
        }
    }

    /// Whether this is an unkeyed reference from before keyed ones.
    pub fn is_legacy(&self) -> bool {
        self.0.starts_with(LEGACY_PREFIX)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TryFrom<String> for CardRef {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}
impl From<CardRef> for String {
    fn from(c: CardRef) -> String {
        c.0
    }
}
impl fmt::Display for CardRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for CardRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardRef({})", self.0)
    }
}

#[cfg(test)]
impl CardRef {
    /// A keyed reference for unit tests that need one and no key store.
    pub fn for_tests(n: u8) -> Self {
        Self::from_mac(&[n; 32])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pan() -> Pan {
        Pan::parse("4761739001010010").unwrap()
    }

    #[test]
    fn keyed_and_legacy_references_differ_in_their_text_and_both_parse() {
        let keyed = CardRef::from_mac(&[0xab; 32]);
        assert_eq!(keyed.as_str(), format!("cref-{}", "ab".repeat(16)));
        assert!(!keyed.is_legacy());
        let legacy = CardRef::legacy_for_card(&pan());
        assert!(legacy.is_legacy() && legacy.as_str().len() == 29);
        assert!(!legacy.as_str().contains("4761739001010010"));
        for r in [&keyed, &legacy] {
            assert_eq!(&CardRef::parse(r.as_str()).unwrap(), r);
            let json = serde_json::to_string(r).unwrap();
            assert_eq!(&serde_json::from_str::<CardRef>(&json).unwrap(), r);
        }
        assert_eq!(CardRef::parse_keyed(keyed.as_str()).unwrap(), keyed);
        let err = CardRef::parse_keyed(legacy.as_str()).unwrap_err();
        assert!(
            err.contains("legacy") && err.contains("rewrite-file"),
            "{err}"
        );
    }

    #[test]
    fn malformed_references_are_refused_without_echo() {
        for bad in [
            "card-XYZ",
            "cref-0123zz",
            "4761739001010010",
            &"cref-A".repeat(7),
        ] {
            let err = CardRef::parse(bad).unwrap_err();
            assert!(!err.contains(bad), "{err}");
        }
    }

    #[test]
    fn an_operator_names_a_card_by_reference_or_by_pan_derived_through_the_key() {
        let keyed = CardRef::from_mac(&[7; 32]);
        let derived = CardRef::from_operator("4761739001010010", |p| {
            assert_eq!(p.expose(), "4761739001010010");
            Ok(keyed.clone())
        })
        .unwrap();
        assert_eq!(derived, keyed);
        let by_ref =
            CardRef::from_operator(keyed.as_str(), |_| panic!("a reference is not derived"));
        assert_eq!(by_ref.unwrap(), keyed);
        assert!(CardRef::from_operator("hello", |_| panic!()).is_err());
    }
}
