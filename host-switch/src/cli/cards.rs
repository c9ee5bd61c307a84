//! `host-switch cards …`: the move from legacy (unkeyed) to keyed card references, offline (the
//! switch stopped: it locks the key store and the database).
//!
//! 1. `map-refs` reads the issuer's PANs on stdin, one per line, and prints `LEGACY KEYED` per
//!    card: the map the wallet renames its accounts with, and the two commands below read.
//! 2. `rewrite-file` prints the issuer's cards file with its legacy references replaced.
//! 3. `rekey-pins` moves the switch's PIN records (counters, blocks) to the keyed references.
//!
//! No PAN is printed or quoted in an error: an error names the input line.

use crate::adapters::cards_file;
use crate::app::card_refs::CardReferences;
use crate::cli::CliError;
use protocols::types::Pan;

/// `map-refs`: one `LEGACY KEYED` line per PAN of `input` (blank lines and `#` comments skipped).
pub fn map_refs(refs: &CardReferences, input: &str) -> Result<String, CliError> {
    let mut out = String::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let pan = Pan::parse(line)
            .map_err(|_| CliError::new(format!("stdin line {}: not a PAN", i + 1)))?;
        let (legacy, keyed) = refs
            .migration_pair(&pan)
            .map_err(|e| CliError::new(format!("stdin line {}: {e}", i + 1)))?;
        out.push_str(&format!("{legacy} {keyed}\n"));
    }
    Ok(out)
}

/// `rewrite-file`: the cards file `text` with legacy references replaced through `map_text`,
/// checked as the switch will read it.
pub fn rewrite_file(text: &str, map_text: &str) -> Result<String, CliError> {
    let map = cards_file::parse_map(map_text).map_err(CliError::new)?;
    let out = cards_file::rewrite_refs(text, &map).map_err(CliError::new)?;
    cards_file::parse(&out).map_err(|e| CliError::new(format!("the rewritten file: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keystore::{Kek, KeyLength, KeyName, KeyStore, KeyUsage, SoftwareKeyStore};
    use std::sync::Arc;

    #[test]
    fn the_map_pairs_each_pan_with_its_legacy_and_keyed_reference() {
        let dir = tempfile::tempdir().unwrap();
        let kek = Kek::from_hex(&"33".repeat(32)).unwrap();
        let store = SoftwareKeyStore::open(&dir.path().join("k.json"), kek).unwrap();
        let name = KeyName::new("cardref").unwrap();
        store
            .generate(&name, KeyUsage::CardReference, KeyLength::Bytes32)
            .unwrap();
        let refs = CardReferences::open(Arc::new(store), &name).unwrap();
        let out = map_refs(&refs, "# issuer\n4761739001010010\n\n4761739001010028\n").unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        let pan = Pan::parse("4761739001010010").unwrap();
        assert_eq!(
            lines[0],
            format!(
                "{} {}",
                crate::domain::CardRef::legacy_for_card(&pan),
                refs.card(&pan).unwrap()
            )
        );
        let err = map_refs(&refs, "4761739001010010\n4761739x01010010\n").unwrap_err();
        assert!(
            err.0.contains("line 2") && !err.0.contains("4761739x"),
            "{err}"
        );
        let legacy = crate::domain::CardRef::legacy_for_card(&pan);
        let file = format!("[[card]]\ncard = \"{legacy}\"\noffset = \"7710\"\n");
        let rewritten = rewrite_file(&file, &out).unwrap();
        assert!(rewritten.contains(refs.card(&pan).unwrap().as_str()));
        assert!(!rewritten.contains(legacy.as_str()));
    }
}
