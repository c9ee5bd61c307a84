//! The issuer's cards file: each wallet card's PIN verification data, by keyed card reference
//! (no PANs; see `domain::card_ref`).
//!
//! ```toml
//! [[card]]
//! card = "cref-0123456789abcdef0123456789abcdef"
//! pvki = 1
//! pvv = "1234"
//!
//! [[card]]
//! card = "cref-89abcdef0123456789abcdef01234567"
//! offset = "7710"
//! ```
//! Errors name the file, the line and the key, never what the line holds: a PVV, an offset or a
//! PAN written where a reference belongs must not end up in a log. A file still written with
//! legacy `card-…` references is refused with the command that rewrites it
//! ([`rewrite_refs`], `host-switch cards rewrite-file`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::domain::pin::{CardRef, PinData};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CardsFile {
    #[serde(default)]
    card: Vec<Spanned<CardEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CardEntry {
    card: Spanned<String>,
    pvki: Option<Spanned<u8>>,
    pvv: Option<Spanned<String>>,
    offset: Option<Spanned<String>>,
}

/// The keys an entry may have, named in an error about an unknown one.
const KEYS: &str = "card, pvki, pvv, offset";

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

/// Parses the file's text; an error says `line N, KEY: reason`.
pub fn parse(text: &str) -> Result<Vec<(CardRef, PinData)>, String> {
    let file: CardsFile = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
    let mut seen = BTreeMap::new();
    let mut out = Vec::with_capacity(file.card.len());
    for entry in file.card {
        let entry_line = line_of(text, entry.span().start);
        let entry = entry.into_inner();
        let card_line = line_of(text, entry.card.span().start);
        let card = CardRef::parse_keyed(entry.card.get_ref())
            .map_err(|e| format!("line {card_line}, card: {e}"))?;
        if let Some(first) = seen.insert(card.clone(), card_line) {
            return Err(format!(
                "line {card_line}, card: the same card as on line {first} (a card is listed once)"
            ));
        }
        let data = entry_data(text, entry_line, entry)?;
        out.push((card, data));
    }
    Ok(out)
}

fn entry_data(text: &str, entry_line: usize, entry: CardEntry) -> Result<PinData, String> {
    let at = |key: &str, span: std::ops::Range<usize>, e: String| {
        format!("line {}, {key}: {e}", line_of(text, span.start))
    };
    match (entry.pvki, entry.pvv, entry.offset) {
        (Some(pvki), Some(pvv), None) => {
            let (pvki_span, pvv_span) = (pvki.span(), pvv.span());
            PinData::visa_pvv(*pvki.get_ref(), pvv.get_ref()).map_err(|e| {
                if e.starts_with("pvki") {
                    at("pvki", pvki_span, e)
                } else {
                    at("pvv", pvv_span, e)
                }
            })
        }
        (None, None, Some(offset)) => {
            let span = offset.span();
            PinData::ibm3624(offset.get_ref()).map_err(|e| at("offset", span, e))
        }
        _ => Err(format!(
            "line {entry_line}, [[card]]: give either pvki and pvv (Visa PVV) or offset (IBM 3624)"
        )),
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// A TOML error in our words: toml's own message quotes the line (and a value of the wrong type),
/// which may be a PVV, an offset or a PAN.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let line = e.span().map(|s| line_of(text, s.start));
    let message = e.message();
    let reason = if message.starts_with("unknown field") {
        format!("unknown key (an entry has {KEYS})")
    } else if let Some(key) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
        .filter(|k| KEYS.split(", ").any(|known| known == *k))
    {
        format!("missing key {key}")
    } else if message.starts_with("invalid type") || message.starts_with("invalid value") {
        "a value of the wrong type (card, pvv and offset are strings, pvki a number 0-9)".to_owned()
    } else {
        "not valid TOML here".to_owned()
    };
    let key = line
        .and_then(|n| text.lines().nth(n - 1))
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim())
        .filter(|k| KEYS.split(", ").any(|known| known == *k));
    match (line, key) {
        (Some(n), Some(k)) => format!("line {n}, {k}: {reason}"),
        (Some(n), None) => format!("line {n}: {reason}"),
        (None, _) => reason,
    }
}

/// The issuer's cards file with each legacy reference replaced by its keyed one from `map`
/// (`legacy keyed` pairs, as `host-switch cards map-refs` prints them); everything else is kept
/// as written. Refuses a legacy reference the map does not have (naming its line, not the
/// reference), so a rewritten file never keeps one.
pub fn rewrite_refs(text: &str, map: &BTreeMap<CardRef, CardRef>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let Some((key, value)) = line.split_once('=') else {
            out.push_str(line);
            continue;
        };
        if key.trim() != "card" {
            out.push_str(line);
            continue;
        }
        let written = value.trim().trim_matches('"');
        match CardRef::parse(written) {
            Ok(card) if card.is_legacy() => {
                let keyed = map.get(&card).ok_or_else(|| {
                    format!(
                        "line {}, card: a legacy reference the map does not have (add its PAN to the input of `host-switch cards map-refs`)",
                        i + 1
                    )
                })?;
                out.push_str(&line.replacen(written, keyed.as_str(), 1));
            }
            _ => out.push_str(line),
        }
    }
    Ok(out)
}

/// Reads a migration map: one `legacy keyed` pair per line (blank lines and `#` comments
/// ignored). An error names the line, not its content.
pub fn parse_map(text: &str) -> Result<BTreeMap<CardRef, CardRef>, String> {
    let mut map = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| format!("map line {}: {what}", i + 1);
        let mut fields = line.split_whitespace();
        let (Some(legacy), Some(keyed), None) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(bad("expected `LEGACY_REF KEYED_REF`"));
        };
        let legacy = CardRef::parse(legacy)
            .ok()
            .filter(CardRef::is_legacy)
            .ok_or_else(|| bad("the first reference is not a legacy card-… one"))?;
        let keyed = CardRef::parse_keyed(keyed)
            .map_err(|_| bad("the second reference is not a keyed cref-… one"))?;
        map.insert(legacy, keyed);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "cref-0123456789abcdef0123456789abcdef";
    const B: &str = "cref-89abcdef0123456789abcdef01234567";
    const PAN: &str = "4761739001010010";

    #[test]
    fn both_methods_are_read() {
        let text = format!(
            "[[card]]\ncard = \"{A}\"\npvki = 1\npvv = \"1234\"\n\n[[card]]\ncard = \"{B}\"\noffset = \"7710\"\n"
        );
        let cards = parse(&text).unwrap();
        assert_eq!(cards.len(), 2);
        assert_eq!(cards[0].1, PinData::visa_pvv(1, "1234").unwrap());
        assert_eq!(cards[1].1, PinData::ibm3624("7710").unwrap());
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_line_and_key_but_never_quote_the_line() {
        let cases = [
            // A value of the wrong type: toml's own message quotes it.
            (
                format!("[[card]]\ncard = \"{A}\"\npvki = \"{PAN}\"\npvv = \"1234\"\n"),
                "line 3, pvki",
            ),
            // A broken line: toml's own message prints it.
            (
                format!("[[card]]\ncard = \"{PAN}\npvv = \"1234\"\n"),
                "line 2",
            ),
            (
                format!("[[card]]\ncard = \"{A}\"\npvv = \"98x6{PAN}\"\npvki = 1\n"),
                "line 3, pvv",
            ),
            (
                format!("[[card]]\ncard = \"{PAN}\"\noffset = \"1234\"\n"),
                "line 2, card",
            ),
            (
                format!("[[card]]\ncard = \"{A}\"\n{PAN} = \"1234\"\n"),
                "line 3",
            ),
            (
                format!("[[card]]\ncard = \"{A}\"\noffset = \"{PAN}123\"\n"),
                "line 3, offset",
            ),
            (
                format!("[[card]]\ncard = \"{A}\"\noffset = \"1234\"\npvki = 1\n"),
                "line 1, [[card]]",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(expected), "{expected:?} not in {err:?}");
            for secret in [PAN, "98x6", "1234", A] {
                assert!(!err.contains(secret), "{secret} quoted in {err:?}");
            }
        }
        let twice = format!("[[card]]\ncard = \"{A}\"\noffset = \"1234\"\n[[card]]\ncard = \"{A}\"\noffset = \"5678\"\n");
        let err = parse(&twice).unwrap_err();
        assert!(
            err.contains("line 5, card") && err.contains("line 2") && !err.contains(A),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cards.toml");
        std::fs::write(&path, format!("[[card]]\ncard = \"{PAN}\n")).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains("cards.toml") && err.contains("line 2") && !err.contains(PAN),
            "{err}"
        );
    }

    #[test]
    fn legacy_references_are_refused_and_rewritten_with_the_map() {
        let pan = protocols::types::Pan::parse(PAN).unwrap();
        let legacy = CardRef::legacy_for_card(&pan);
        let text = format!("# issuer\n[[card]]\ncard = \"{legacy}\"\npvki = 1\npvv = \"1234\"\n");
        let err = parse(&text).unwrap_err();
        assert!(
            err.contains("line 3, card") && err.contains("rewrite-file"),
            "{err}"
        );
        let map = parse_map(&format!("# map\n{legacy} {A}\n\n")).unwrap();
        let rewritten = rewrite_refs(&text, &map).unwrap();
        assert_eq!(rewritten, text.replace(legacy.as_str(), A));
        assert_eq!(parse(&rewritten).unwrap()[0].0.as_str(), A);
        let err = rewrite_refs(&text, &BTreeMap::new()).unwrap_err();
        assert!(
            err.contains("line 3") && !err.contains(legacy.as_str()),
            "{err}"
        );
        assert!(parse_map(&format!("{A} {legacy}\n")).is_err());
        assert!(parse_map("one\n").unwrap_err().contains("map line 1"));
    }
}
