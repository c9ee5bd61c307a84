//! Key hygiene in the software store (issue 14): weak keys refused where keys come in, terminal
//! and zone keys told apart, keys travelling only in named pairs, custodians' typing never quoted,
//! versions that never go backwards, and key store files written before all this still opening.

use std::path::Path;

use keystore::crypto;
use keystore::{
    Component, Cryptogram, Kcv, Kek, KeyDelivery, KeyLength, KeyName, KeyRef, KeyStore,
    KeyStoreError, KeyUsage, SoftwareKeyStore, Weakness,
};
use protocols::types::Pan;

const KEK: &str = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";
const ZMK: &str = "4C8A15D3E9B02F7616C4A8E3D97F0B25";
const TMK: &str = "9D3B6E01F4A7C258B0E5139D6B2F7C85";
const TPK: &str = "2A7F1C9E4A3D6E80E5A1C7382C4A8F16";
const PVK: &str = "0123456789ABCDEFFEDCBA9876543210";
/// A component every test XORs with, so the other component is `clear ^ C1`.
const C1: &str = "0F1E2D3C4B5A69788796A5B4C3D2E1F0";
const C1_TRIPLE: &str = "0F1E2D3C4B5A69788796A5B4C3D2E1F00F1E2D3C4B5A6979";

fn open(path: &Path) -> SoftwareKeyStore {
    SoftwareKeyStore::open(path, Kek::from_hex(KEK).unwrap()).unwrap()
}

fn store() -> (tempfile::TempDir, SoftwareKeyStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("keys.json"));
    (dir, store)
}

fn name(s: &str) -> KeyName {
    KeyName::new(s).unwrap()
}

fn xor_hex(a: &str, b: &str) -> String {
    let (a, b) = (hex::decode(a).unwrap(), hex::decode(b).unwrap());
    hex::encode_upper(a.iter().zip(&b).map(|(x, y)| x ^ y).collect::<Vec<_>>())
}

fn kcv_of(hex_key: &str) -> Kcv {
    crypto::kcv(&hex::decode(hex_key).unwrap()).unwrap()
}

/// Loads the key whose components are `parts`, each with its right check value.
fn load_parts(
    store: &SoftwareKeyStore,
    key: &str,
    usage: KeyUsage,
    parts: &[&str],
) -> Result<keystore::KeyInfo, KeyStoreError> {
    let components: Vec<Component> = parts
        .iter()
        .map(|p| Component::from_hex(p).unwrap())
        .collect();
    let kcvs: Vec<Kcv> = parts.iter().map(|p| kcv_of(p)).collect();
    store.load_components(&name(key), usage, &components, &kcvs)
}

/// Loads `clear` from two components.
fn load_clear(store: &SoftwareKeyStore, key: &str, usage: KeyUsage, clear: &str) -> KeyRef {
    let c1 = if clear.len() == 48 { C1_TRIPLE } else { C1 };
    load_parts(store, key, usage, &[c1, &xor_hex(clear, c1)])
        .unwrap()
        .key_ref()
}

fn weakness<T: std::fmt::Debug>(r: Result<T, KeyStoreError>) -> Weakness {
    match r {
        Err(e @ KeyStoreError::WeakKey { .. }) => {
            let text = e.to_string();
            assert_no_material(&text, &[C1, C1_TRIPLE, ZMK, TMK, TPK, PVK]);
            match e {
                KeyStoreError::WeakKey { weakness, .. } => weakness,
                _ => unreachable!(),
            }
        }
        other => panic!("expected a WeakKey error, got {other:?}"),
    }
}

/// No 16 hex digits of key material (nor 6 of a check value taken from `secrets`) in `text`.
fn assert_no_material(text: &str, secrets: &[&str]) {
    for secret in secrets {
        for window in 0..=secret.len().saturating_sub(16) {
            let piece = &secret[window..(window + 16).min(secret.len())];
            assert!(
                !text.to_uppercase().contains(piece),
                "{text} quotes key material"
            );
        }
    }
}

// ---- Finding 1: weak keys ------------------------------------------------------------------

#[test]
fn single_des_components_are_refused_for_master_pin_and_pvk_keys() {
    let (_dir, store) = store();
    let single = ["0123456789ABCDEF", "FEDCBA9876543210"];
    for (key, usage) in [
        ("zmk", KeyUsage::ZoneMaster),
        ("tmk/T1", KeyUsage::TerminalMaster),
        ("zpk", KeyUsage::ZonePin),
        ("tpk/T1", KeyUsage::TerminalPin),
        ("pvk/visa", KeyUsage::PinVerification),
    ] {
        let r = load_parts(&store, key, usage, &single);
        assert_eq!(weakness(r), Weakness::SingleDes, "{key}");
    }
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn identical_components_are_refused() {
    let (_dir, store) = store();
    let other = xor_hex(ZMK, C1);
    // Two of three alike: their XOR cancels out, leaving the third custodian's component alone.
    let r = load_parts(&store, "zmk", KeyUsage::ZoneMaster, &[C1, &other, C1]);
    assert_eq!(weakness(r), Weakness::IdenticalComponents);
    // Parity bits do not make two components different keys.
    let mut flipped = hex::decode(C1).unwrap();
    flipped[0] ^= 1;
    let flipped = hex::encode_upper(flipped);
    let r = load_parts(
        &store,
        "pvk/visa",
        KeyUsage::PinVerification,
        &[C1, &flipped],
    );
    assert!(matches!(r, Err(KeyStoreError::WeakKey { .. })), "{r:?}");
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn keys_with_equal_halves_or_parts_are_refused() {
    let (_dir, store) = store();
    // K1 == K2: a double-length key that is single DES.
    let equal_halves = "0123456789ABCDEF0123456789ABCDEF";
    let r = load_parts(
        &store,
        "zmk",
        KeyUsage::ZoneMaster,
        &[C1, &xor_hex(equal_halves, C1)],
    );
    assert_eq!(weakness(r), Weakness::EqualHalves);
    // Triple length: any two of the three parts equal (K1 == K3 here, K2 == K3 next).
    for clear in [
        "0123456789ABCDEFFEDCBA98765432100123456789ABCDEF",
        "0123456789ABCDEFFEDCBA9876543210FEDCBA9876543210",
    ] {
        let r = load_parts(
            &store,
            "pvk/visa",
            KeyUsage::PinVerification,
            &[C1_TRIPLE, &xor_hex(clear, C1_TRIPLE)],
        );
        assert_eq!(weakness(r), Weakness::EqualParts, "{clear}");
    }
    // A DES weak key as one half.
    let weak_half = "0101010101010101FEDCBA9876543210";
    let r = load_parts(
        &store,
        "tmk/T1",
        KeyUsage::TerminalMaster,
        &[C1, &xor_hex(weak_half, C1)],
    );
    assert_eq!(weakness(r), Weakness::DesWeakKey);
    assert!(store.list().unwrap().is_empty());
    // A good triple-length key goes in.
    load_clear(
        &store,
        "pvk/visa",
        KeyUsage::PinVerification,
        "0123456789ABCDEFFEDCBA987654321089ABCDEF01234567",
    );
}

#[test]
fn a_wrapping_key_shorter_than_the_key_it_wraps_is_refused() {
    let (_dir, store) = store();
    let tmk = load_clear(&store, "tmk/T1", KeyUsage::TerminalMaster, TMK);
    let tpk = store
        .generate(
            &KeyName::terminal_pin("T1").unwrap(),
            KeyUsage::TerminalPin,
            KeyLength::Triple,
        )
        .unwrap();
    assert_eq!(
        weakness(store.export_under(&tpk.key_ref(), &tmk)),
        Weakness::ShorterWrappingKey
    );
    // Import: 24 bytes under a 16-byte zone master key.
    let zmk = load_clear(&store, "zmk", KeyUsage::ZoneMaster, ZMK);
    let r = store.import_under(
        &KeyName::zone_pin(),
        1,
        &zmk,
        &Cryptogram(vec![0x11; 24]),
        &kcv_of(TPK),
    );
    assert_eq!(weakness(r), Weakness::ShorterWrappingKey);
}

#[test]
fn a_single_des_or_equal_halves_key_is_not_imported() {
    let (_dir, store) = store();
    let zmk = load_clear(&store, "zmk", KeyUsage::ZoneMaster, ZMK);
    let zmk_clear = hex::decode(ZMK).unwrap();
    for clear in ["0123456789ABCDEF", "0123456789ABCDEF0123456789ABCDEF"] {
        let mut cryptogram = hex::decode(clear).unwrap();
        crypto::tdes_encrypt_ecb(&zmk_clear, &mut cryptogram).unwrap();
        let r = store.import_under(
            &KeyName::zone_pin(),
            1,
            &zmk,
            &Cryptogram(cryptogram),
            &kcv_of(clear),
        );
        assert!(matches!(r, Err(KeyStoreError::WeakKey { .. })), "{r:?}");
    }
    assert!(store.current(&KeyName::zone_pin()).unwrap().is_none());
}

// ---- Finding 2: usages and named pairs -----------------------------------------------------

#[test]
fn terminal_and_zone_keys_cannot_stand_in_for_each_other() {
    let (_dir, store) = store();
    let tmk = load_clear(&store, "tmk/T1", KeyUsage::TerminalMaster, TMK);
    let zmk = load_clear(&store, "zmk", KeyUsage::ZoneMaster, ZMK);
    let tpk = load_clear(&store, "tpk/T1", KeyUsage::TerminalPin, TPK);
    let zpk = store
        .generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Double)
        .unwrap()
        .key_ref();
    let pan = Pan::parse("1122334455667788").unwrap();
    let block = crypto::encrypt_pin(&hex::decode(TPK).unwrap(), "4524", &pan).unwrap();
    // A PIN leaves the agent under the zone PIN key only, never under another terminal key.
    let r = store.translate_pin_block(&zpk, &tpk, &block, &pan);
    assert!(
        matches!(
            r,
            Err(KeyStoreError::WrongUsage {
                actual: KeyUsage::TerminalPin,
                needed: KeyUsage::ZonePin,
                ..
            })
        ),
        "{r:?}"
    );
    store.translate_pin_block(&tpk, &zpk, &block, &pan).unwrap();
    // The zone PIN key does not travel under a terminal master key, nor a TPK under the ZMK.
    for (key, kek) in [(&zpk, &tmk), (&tpk, &zmk)] {
        let r = store.export_under(key, kek);
        assert!(
            matches!(r, Err(KeyStoreError::NotExportable { .. })),
            "{key} under {kek}: {r:?}"
        );
    }
    // Names say which terminal a key is for; a zone usage cannot take a terminal key's name.
    let r = load_parts(
        &store,
        "tmk/T2",
        KeyUsage::ZoneMaster,
        &[C1, &xor_hex(ZMK, C1)],
    );
    assert!(matches!(r, Err(KeyStoreError::Invalid(_))), "{r:?}");
    let r = store.generate(&name("zpk2"), KeyUsage::TerminalPin, KeyLength::Double);
    assert!(matches!(r, Err(KeyStoreError::Invalid(_))), "{r:?}");
    // A new version keeps its name's usage.
    let r = load_parts(
        &store,
        "zmk",
        KeyUsage::PinVerification,
        &[C1, &xor_hex(PVK, C1)],
    );
    assert!(matches!(r, Err(KeyStoreError::Invalid(_))), "{r:?}");
}

#[test]
fn keys_travel_only_in_named_pairs() {
    let (_dir, store) = store();
    let tmk1 = load_clear(&store, "tmk/T1", KeyUsage::TerminalMaster, TMK);
    let tmk2 = load_clear(&store, "tmk/T2", KeyUsage::TerminalMaster, ZMK);
    let zmk = load_clear(&store, "zmk", KeyUsage::ZoneMaster, ZMK);
    let tpk1 = store
        .generate(
            &KeyName::terminal_pin("T1").unwrap(),
            KeyUsage::TerminalPin,
            KeyLength::Double,
        )
        .unwrap()
        .key_ref();
    let zpk = store
        .generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Double)
        .unwrap()
        .key_ref();
    let pvk = load_clear(&store, "pvk/visa", KeyUsage::PinVerification, PVK);
    let cardref = store
        .generate(
            &name("cardref"),
            KeyUsage::CardReference,
            KeyLength::Bytes32,
        )
        .unwrap()
        .key_ref();
    let dek = store
        .generate(&name("dek"), KeyUsage::DataProtection, KeyLength::Bytes32)
        .unwrap()
        .key_ref();

    store.export_under(&tpk1, &tmk1).unwrap();
    store.export_under(&zpk, &zmk).unwrap();
    let refused = [
        (&tpk1, &tmk2, "another terminal's master key"),
        (&pvk, &zmk, "a PVK is never exported"),
        (&pvk, &tmk1, "a PVK is never exported"),
        (&cardref, &zmk, "a card reference key is never exported"),
        (&dek, &zmk, "a data protection key is never exported"),
        (&zmk, &zmk, "a master key is never exported"),
        (&tmk1, &zmk, "a master key is never exported"),
    ];
    for (key, kek, why) in refused {
        let r = store.export_under(key, kek);
        assert!(
            matches!(r, Err(KeyStoreError::NotExportable { .. })),
            "{why}: {r:?}"
        );
    }
    // The card reference and data protection keys still do their work.
    let pan = Pan::parse("1122334455667788").unwrap();
    store.card_reference(&cardref, &pan).unwrap();
    let sealed = store.seal_data(&dek, b"data", b"aad").unwrap();
    assert_eq!(
        &store.open_data(&dek, &sealed, b"aad").unwrap()[..],
        b"data"
    );
}

#[test]
fn an_imported_keys_usage_follows_its_wrapping_key() {
    let dir = tempfile::tempdir().unwrap();
    let switch = open(&dir.path().join("switch.json"));
    let agent = open(&dir.path().join("agent.json"));
    let zmk_s = load_clear(&switch, "zmk", KeyUsage::ZoneMaster, ZMK);
    let zmk_a = load_clear(&agent, "zmk", KeyUsage::ZoneMaster, ZMK);
    let tmk_a = load_clear(&agent, "tmk/T1", KeyUsage::TerminalMaster, ZMK);
    let zpk = switch
        .generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Double)
        .unwrap();
    let cryptogram = switch.export_under(&zpk.key_ref(), &zmk_s).unwrap();
    // Under a terminal master key, the zone PIN key's name is refused: the pair decides.
    let r = agent.import_under(&KeyName::zone_pin(), 1, &tmk_a, &cryptogram, &zpk.kcv);
    assert!(matches!(r, Err(KeyStoreError::WrongUsage { .. })), "{r:?}");
    let r = agent.import_under(
        &KeyName::terminal_pin("T2").unwrap(),
        1,
        &tmk_a,
        &cryptogram,
        &zpk.kcv,
    );
    assert!(
        matches!(r, Err(KeyStoreError::NotExportable { .. })),
        "{r:?}"
    );
    let info = agent
        .import_under(&KeyName::zone_pin(), 1, &zmk_a, &cryptogram, &zpk.kcv)
        .unwrap();
    assert_eq!(info.usage, KeyUsage::ZonePin);
}

// ---- Finding 3: key entry ------------------------------------------------------------------

#[test]
fn key_entry_errors_never_quote_what_was_typed() {
    // A component typed where the check value goes, and a check value of the wrong length.
    let typed = format!("{C1} {C1}\n");
    let err = keystore::ceremony::read_components(typed.as_bytes(), None).unwrap_err();
    assert_no_material(&err, &[C1]);
    let err = C1[..7].parse::<Kcv>().unwrap_err().to_string();
    assert!(!err.contains(&C1[..7]), "{err}");
    // A component with a typo: neither its check value nor the one typed is repeated.
    let mut typo = C1.to_owned();
    typo.replace_range(0..1, "1");
    let line = format!("{typo} {}\n", kcv_of(C1));
    let err = keystore::ceremony::read_components(line.as_bytes(), None).unwrap_err();
    assert!(!err.contains(&kcv_of(C1).to_string()), "{err}");
    assert!(!err.contains(&kcv_of(&typo).to_string()), "{err}");
    assert_no_material(&err, &[&typo]);
    // A bad hex digit.
    let err = Component::from_hex(&format!("{}Z", &C1[..31]))
        .unwrap_err()
        .to_string();
    assert_no_material(&err, &[C1]);
    assert!(!err.contains(&C1[..12]), "{err}");
}

#[test]
fn components_shorter_than_the_key_are_refused() {
    let (_dir, store) = store();
    load_clear(
        &store,
        "pvk/visa",
        KeyUsage::PinVerification,
        "0123456789ABCDEFFEDCBA987654321089ABCDEF01234567",
    );
    // The next version of a triple-length key from double-length components: refused.
    let r = load_parts(
        &store,
        "pvk/visa",
        KeyUsage::PinVerification,
        &[C1, &xor_hex(PVK, C1)],
    );
    assert!(matches!(r, Err(KeyStoreError::Invalid(_))), "{r:?}");
    assert_eq!(store.list().unwrap().len(), 1);
}

// ---- Finding 4: versions bound to deliveries -----------------------------------------------

struct Zone {
    _dir: tempfile::TempDir,
    switch: SoftwareKeyStore,
    agent: SoftwareKeyStore,
    zmk: KeyRef,
}

fn zone() -> Zone {
    let dir = tempfile::tempdir().unwrap();
    let switch = open(&dir.path().join("switch.json"));
    let agent = open(&dir.path().join("agent.json"));
    let zmk = load_clear(&switch, "zmk", KeyUsage::ZoneMaster, ZMK);
    load_clear(&agent, "zmk", KeyUsage::ZoneMaster, ZMK);
    Zone {
        _dir: dir,
        switch,
        agent,
        zmk,
    }
}

impl Zone {
    fn rotate(&self) -> KeyDelivery {
        let zpk = self
            .switch
            .generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Double)
            .unwrap();
        self.switch
            .export_delivery(&zpk.key_ref(), &self.zmk)
            .unwrap()
    }
    fn receive(&self, d: &KeyDelivery) -> Result<keystore::KeyInfo, KeyStoreError> {
        self.agent
            .import_delivery(&KeyName::zone_pin(), &self.zmk, d)
    }
}

#[test]
fn a_delivery_replayed_after_its_key_was_destroyed_is_refused() {
    let z = zone();
    let v1 = z.rotate();
    z.receive(&v1).unwrap();
    z.receive(&v1).unwrap();
    let v2 = z.rotate();
    z.receive(&v2).unwrap();
    z.agent
        .destroy(&KeyRef::new(KeyName::zone_pin(), v1.version))
        .unwrap();
    let r = z.receive(&v1);
    assert!(
        matches!(r, Err(KeyStoreError::VersionNotNewer { newest: 2, .. })),
        "{r:?}"
    );
    // Still refused after a restart: the high-water mark is on disk.
    let path = z._dir.path().join("agent.json");
    drop(z.agent);
    let agent = open(&path);
    let r = agent.import_delivery(&KeyName::zone_pin(), &z.zmk, &v1);
    assert!(
        matches!(r, Err(KeyStoreError::VersionNotNewer { .. })),
        "{r:?}"
    );
    assert_eq!(
        agent
            .current(&KeyName::zone_pin())
            .unwrap()
            .unwrap()
            .version,
        2
    );
}

#[test]
fn a_delivery_whose_version_was_edited_in_transit_is_refused() {
    let z = zone();
    let v1 = z.rotate();
    // The old key presented as a newer version: the MAC covers the version.
    let edited = KeyDelivery {
        version: 9,
        ..v1.clone()
    };
    let r = z.receive(&edited);
    assert!(matches!(r, Err(KeyStoreError::DeliveryMac { .. })), "{r:?}");
    // A cryptogram moved under another delivery's version and MAC.
    let v2 = z.rotate();
    let moved = KeyDelivery {
        cryptogram: v1.cryptogram.clone(),
        kcv: v1.kcv,
        ..v2.clone()
    };
    let r = z.receive(&moved);
    assert!(matches!(r, Err(KeyStoreError::DeliveryMac { .. })), "{r:?}");
    assert!(z.agent.current(&KeyName::zone_pin()).unwrap().is_none());
    // The body round-trips as text, and one without a MAC is refused.
    let text = v2.body();
    assert_eq!(KeyDelivery::from_body(v2.version, &text).unwrap(), v2);
    assert!(KeyDelivery::from_body(2, &text[..38]).is_err());
    z.receive(&v2).unwrap();
}

#[test]
fn a_destroyed_version_is_never_made_again() {
    let (_dir, store) = store();
    let tmk = load_clear(&store, "tmk/T1", KeyUsage::TerminalMaster, TMK);
    let tpk = KeyName::terminal_pin("T1").unwrap();
    let v1 = store
        .generate(&tpk, KeyUsage::TerminalPin, KeyLength::Double)
        .unwrap();
    let v2 = store
        .generate(&tpk, KeyUsage::TerminalPin, KeyLength::Double)
        .unwrap();
    // The terminal refused v2: it is destroyed, and the next key is v3, not a second v2.
    store.destroy(&v2.key_ref()).unwrap();
    let v3 = store
        .generate(&tpk, KeyUsage::TerminalPin, KeyLength::Double)
        .unwrap();
    assert_eq!((v1.version, v3.version), (1, 3));
    store.export_under(&v3.key_ref(), &tmk).unwrap();
}

// ---- Compatibility: files written before the usages were split ----------------------------

/// One record as the code before this change wrote it (the documented format 1: usage `master`
/// = header code 1, `pin` = 2, `pin_verification` = 4; no `high_water`).
fn old_record(name: &str, usage: &str, code: u8, version: u32, clear: &str) -> serde_json::Value {
    use sha2::Digest;
    let key = hex::decode(clear).unwrap();
    let mut plain = vec![code, key.len() as u8];
    plain.extend_from_slice(&version.to_be_bytes());
    plain.extend_from_slice(&[0, 0]);
    plain.extend_from_slice(&sha2::Sha256::digest(name.as_bytes())[..8]);
    plain.extend_from_slice(&key);
    let kek = Kek::from_hex(KEK).unwrap();
    let wrapped = crypto::aes_key_wrap(kek.expose(), &plain).unwrap();
    serde_json::json!({
        "name": name, "usage": usage, "version": version, "kcv": kcv_of(clear).to_string(),
        "length": key.len(), "created_unix": 1767225600u64,
        "wrapped": hex::encode_upper(wrapped),
    })
}

#[test]
fn a_key_store_file_written_by_the_old_code_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let zpk_clear = "6D1C3B5E8A0F2C4913B5C7E9F1A3D5E7";
    let doc = serde_json::json!({"format": 1, "keys": [
        old_record("pvk/visa", "pin_verification", 4, 1, PVK),
        old_record("tmk/T1", "master", 1, 1, TMK),
        old_record("tpk/T1", "pin", 2, 2, TPK),
        old_record("zmk", "master", 1, 1, ZMK),
        old_record("zpk", "pin", 2, 3, zpk_clear),
    ]});
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

    let store = open(&path);
    let usages: Vec<(String, KeyUsage)> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|k| (k.name.to_string(), k.usage))
        .collect();
    assert_eq!(
        usages,
        [
            ("pvk/visa".to_owned(), KeyUsage::PinVerification),
            ("tmk/T1".to_owned(), KeyUsage::TerminalMaster),
            ("tpk/T1".to_owned(), KeyUsage::TerminalPin),
            ("zmk".to_owned(), KeyUsage::ZoneMaster),
            ("zpk".to_owned(), KeyUsage::ZonePin),
        ]
    );
    // The old keys work as before: a PIN travels TPK → ZPK, the TPK goes under its TMK.
    let tpk = KeyRef::new(KeyName::terminal_pin("T1").unwrap(), 2);
    let zpk = KeyRef::new(KeyName::zone_pin(), 3);
    let pan = Pan::parse("1122334455667788").unwrap();
    let block = crypto::encrypt_pin(&hex::decode(TPK).unwrap(), "4524", &pan).unwrap();
    store.translate_pin_block(&tpk, &zpk, &block, &pan).unwrap();
    store
        .export_under(&tpk, &KeyRef::new(name("tmk/T1"), 1))
        .unwrap();
    // A new version is stored with today's usage; the old records stay as they were written
    // (their header binds the old code) and the file still opens.
    let v4 = store
        .generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Double)
        .unwrap();
    assert_eq!(v4.version, 4);
    drop(store);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"usage\": \"pin\""), "{text}");
    assert!(text.contains("\"usage\": \"zone_pin\""), "{text}");
    let store = open(&path);
    assert_eq!(store.list().unwrap().len(), 6);
    // An old record's usage edited on disk is still caught by its header.
    drop(store);
    std::fs::write(
        &path,
        text.replacen("\"usage\": \"master\"", "\"usage\": \"pin\"", 1),
    )
    .unwrap();
    assert!(matches!(
        SoftwareKeyStore::open(&path, Kek::from_hex(KEK).unwrap()),
        Err(KeyStoreError::Storage { .. })
    ));
}

#[test]
fn the_old_usage_words_are_refused_on_the_command_line() {
    for old in ["master", "pin"] {
        let err = old.parse::<KeyUsage>().unwrap_err().to_string();
        assert!(err.contains("terminal_") && err.contains("zone_"), "{err}");
    }
    assert_eq!(
        "zone_master".parse::<KeyUsage>().unwrap(),
        KeyUsage::ZoneMaster
    );
}
