//! `host-switch keys load-components`, `generate` and `list`: the key custodians' offline
//! ceremony (components read by `keystore::ceremony`, the key store checks them all again before
//! storing the combined key), the switch's own keys made at random, and what they print.

use keystore::{KeyInfo, KeyLength, KeyName, KeyStore, KeyUsage};

use super::CliError;

/// `generate NAME --usage U`: a random key for the switch's own use, which nobody else needs to
/// hold — a card reference key or a data protection key (keys shared with terminals, peers or the
/// issuer are entered from components). A card reference key gets no second version: every
/// card's reference and wallet account would change with it.
pub fn generate(store: &dyn KeyStore, name: &str, usage: &str) -> Result<KeyInfo, CliError> {
    let name = KeyName::new(name).map_err(|e| CliError::new(e.to_string()))?;
    let usage: KeyUsage = usage
        .parse()
        .map_err(|e: keystore::KeyStoreError| CliError::new(e.to_string()))?;
    if !matches!(usage, KeyUsage::CardReference | KeyUsage::DataProtection) {
        return Err(CliError::new(format!(
            "only card_reference and data_protection keys are generated here; a {usage} key is entered from its custodians' components (load-components)"
        )));
    }
    let current = store
        .current(&name)
        .map_err(|e| CliError::new(e.to_string()))?;
    match current {
        Some(info) if info.usage != usage => {
            return Err(CliError::new(format!(
                "key {name} already exists with usage {}",
                info.usage
            )))
        }
        Some(_) if usage == KeyUsage::CardReference => {
            return Err(CliError::new(format!(
                "card reference key {name} already exists: a new version would change every card's reference and wallet account (see OPERATIONS.md, card references)"
            )))
        }
        _ => {}
    }
    store
        .generate(&name, usage, KeyLength::Bytes32)
        .map_err(|e| CliError::new(e.to_string()))
}

/// What a generation printed: name, version, check value.
pub fn render_generated(info: &KeyInfo) -> String {
    format!(
        "{} v{} generated: usage {}, KCV {}, {} bytes",
        info.name, info.version, info.usage, info.kcv, info.length
    )
}

/// What a load printed: name, version, check value.
pub fn render_loaded(info: &KeyInfo) -> String {
    format!(
        "{} v{} loaded: usage {}, KCV {}, {} bytes",
        info.name, info.version, info.usage, info.kcv, info.length
    )
}

/// One line per key version.
pub fn render_list(keys: &[KeyInfo]) -> String {
    let mut out = String::from(
        "NAME                 VERSION  USAGE             KCV     BYTES  CREATED (UNIX)\n",
    );
    for k in keys {
        out.push_str(&format!(
            "{:<20} {:>7}  {:<16}  {}  {:>5}  {}\n",
            k.name.as_str(),
            k.version,
            k.usage.as_str(),
            k.kcv,
            k.length,
            k.created_unix
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use keystore::{Kek, SoftwareKeyStore};

    #[test]
    fn generate_makes_the_switchs_own_keys_and_one_card_reference_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let kek = Kek::from_hex(&"44".repeat(32)).unwrap();
        let store = SoftwareKeyStore::open(&dir.path().join("k.json"), kek).unwrap();
        let info = generate(&store, "cardref", "card_reference").unwrap();
        assert_eq!((info.version, info.length), (1, 32));
        assert!(render_generated(&info).starts_with("cardref v1 generated: usage card_reference"));
        let err = generate(&store, "cardref", "card_reference").unwrap_err();
        assert!(err.0.contains("already exists"), "{err}");
        assert!(generate(&store, "cardref", "data_protection").is_err());
        assert!(generate(&store, "pvk/x", "pin_verification").is_err());
        assert_eq!(
            generate(&store, "carddata", "data_protection")
                .unwrap()
                .version,
            1
        );
        assert_eq!(
            generate(&store, "carddata", "data_protection")
                .unwrap()
                .version,
            2
        );
    }
}
