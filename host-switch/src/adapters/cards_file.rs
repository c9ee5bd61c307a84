//! The issuer's cards file: each wallet card's PIN verification data, by card reference (no PANs).
//!
//! ```toml
//! [[card]]
//! card = "card-0123456789abcdef01234567"
//! pvki = 1
//! pvv = "1234"
//!
//! [[card]]
//! card = "card-89abcdef0123456789abcdef"
//! offset = "7710"
//! ```
//! Errors name the file, the entry and the key, never a PVV or an offset.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use crate::domain::pin::{CardRef, PinData};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CardsFile {
    #[serde(default)]
    card: Vec<CardEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CardEntry {
    card: String,
    pvki: Option<u8>,
    pvv: Option<String>,
    offset: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("cards file {path}: {reason}")]
pub struct CardsFileError {
    pub path: String,
    pub reason: String,
}

/// Reads and checks the whole file.
pub fn load(path: &Path) -> Result<Vec<(CardRef, PinData)>, CardsFileError> {
    let err = |reason: String| CardsFileError {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    parse(&text).map_err(err)
}

/// Parses the file's text.
pub fn parse(text: &str) -> Result<Vec<(CardRef, PinData)>, String> {
    let file: CardsFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(file.card.len());
    for (i, entry) in file.card.into_iter().enumerate() {
        let at = |reason: String| format!("card[{i}]: {reason}");
        let card = CardRef::parse(&entry.card).map_err(|e| at(format!("card: {e}")))?;
        if !seen.insert(card.clone()) {
            return Err(at(format!("card {card} is listed twice")));
        }
        let data = match (entry.pvki, entry.pvv, entry.offset) {
            (Some(pvki), Some(pvv), None) => PinData::visa_pvv(pvki, &pvv),
            (None, None, Some(offset)) => PinData::ibm3624(&offset),
            _ => Err("give either pvki and pvv (Visa PVV) or offset (IBM 3624)".into()),
        }
        .map_err(|e| at(format!("{card}: {e}")))?;
        out.push((card, data));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "card-0123456789abcdef01234567";

    #[test]
    fn both_methods_are_read() {
        let text = format!(
            "[[card]]\ncard = \"{A}\"\npvki = 1\npvv = \"1234\"\n\n[[card]]\ncard = \"card-89abcdef0123456789abcdef\"\noffset = \"7710\"\n"
        );
        let cards = parse(&text).unwrap();
        assert_eq!(cards.len(), 2);
        assert_eq!(cards[0].1, PinData::visa_pvv(1, "1234").unwrap());
        assert_eq!(cards[1].1, PinData::ibm3624("7710").unwrap());
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_entry_and_key_but_no_digits() {
        let err = parse(&format!(
            "[[card]]\ncard = \"{A}\"\npvv = \"98x6\"\npvki = 1\n"
        ))
        .unwrap_err();
        assert!(err.contains("card[0]") && err.contains("pvv"), "{err}");
        assert!(!err.contains("98x6"), "{err}");
        let err = parse(&format!(
            "[[card]]\ncard = \"{A}\"\noffset = \"1234\"\npvki = 1\n"
        ))
        .unwrap_err();
        assert!(err.contains("either"), "{err}");
        let err = parse("[[card]]\ncard = \"4761739001010010\"\noffset = \"1234\"\n").unwrap_err();
        assert!(err.contains("card reference"), "{err}");
        let err = parse(&format!("[[card]]\ncard = \"{A}\"\nofset = \"1234\"\n")).unwrap_err();
        assert!(err.contains("ofset"), "{err}");
    }
}
