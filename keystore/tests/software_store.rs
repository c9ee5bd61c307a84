//! The software key store as the agent and the switch use it: keys survive a restart, the file is
//! guarded (KEK, lock, tamper checks, mode 0600), and a PIN typed at an ATM travels TPK → ZPK and
//! verifies on the switch.

use std::path::{Path, PathBuf};

use keystore::crypto;
use keystore::{
    Component, Cryptogram, Kcv, Kek, KeyLength, KeyName, KeyRef, KeyStore, KeyStoreError, KeyUsage,
    PinVerdict, PinVerification, SoftwareKeyStore,
};
use protocols::types::Pan;
use zeroize::Zeroizing;

const KEK_A: &str = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";
const KEK_B: &str = "1F1E1D1C1B1A191817161514131211100F0E0D0C0B0A09080706050403020100";
/// The PVK of the psec test vectors (already odd parity, so loading it from components keeps it).
const PVK: &str = "0123456789ABCDEFFEDCBA9876543210";
const ZMK: &str = "4C8A15D3E9B02F7616C4A8E3D97F0B25";
const TMK: &str = "9D3B6E01F4A7C258B0E5139D6B2F7C85";
const TPK: &str = "2A7F1C9E4A3D6E80E5A1C7382C4A8F16";
const CARD_PAN: &str = "1122334455667788";

fn kek(hex: &str) -> Kek {
    Kek::from_hex(hex).unwrap()
}

fn store_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("keys.json")
}

fn open(path: &Path) -> SoftwareKeyStore {
    SoftwareKeyStore::open(path, kek(KEK_A)).unwrap()
}

fn xor_hex(a: &str, b: &str) -> String {
    let (a, b) = (hex::decode(a).unwrap(), hex::decode(b).unwrap());
    hex::encode_upper(a.iter().zip(&b).map(|(x, y)| x ^ y).collect::<Vec<_>>())
}

fn kcv_of(hex_key: &str) -> Kcv {
    crypto::kcv(&hex::decode(hex_key).unwrap()).unwrap()
}

/// Loads `clear` (odd parity, like every key constant here) as the next version of `name` from two custodians' components.
fn load_clear(store: &SoftwareKeyStore, name: &KeyName, usage: KeyUsage, clear: &str) -> KeyRef {
    let c1 = "0F1E2D3C4B5A69788796A5B4C3D2E1F0";
    let c2 = xor_hex(clear, c1);
    let components = [
        Component::from_hex(c1).unwrap(),
        Component::from_hex(&c2).unwrap(),
    ];
    let info = store
        .load_components(name, usage, &components, &[kcv_of(c1), kcv_of(&c2)])
        .unwrap();
    assert_eq!(info.kcv, kcv_of(clear));
    info.key_ref()
}

fn name(s: &str) -> KeyName {
    KeyName::new(s).unwrap()
}

fn pan() -> Pan {
    Pan::parse(CARD_PAN).unwrap()
}

fn visa(pvv: &str) -> PinVerification {
    PinVerification::VisaPvv {
        pvki: 1,
        pvv: pvv.into(),
    }
}

fn ibm(offset: &str) -> PinVerification {
    PinVerification::Ibm3624 {
        offset: offset.into(),
        decimalization: "1234567890123456".into(),
        validation_start: 0,
        validation_len: 16,
        pad: 'F',
    }
}

fn storage_reason(r: Result<SoftwareKeyStore, KeyStoreError>) -> String {
    match r {
        Err(KeyStoreError::Storage { reason, .. }) => reason,
        other => panic!("expected a Storage error, got {other:?}"),
    }
}

#[test]
fn keys_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let before = {
        let store = open(&path);
        store
            .generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Double)
            .unwrap();
        store
            .generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Triple)
            .unwrap();
        load_clear(&store, &KeyName::zone_master(), KeyUsage::ZoneMaster, ZMK);
        store.list().unwrap()
    };
    let store = open(&path);
    assert_eq!(store.list().unwrap(), before);
    let current = store.current(&KeyName::zone_pin()).unwrap().unwrap();
    assert_eq!((current.version, current.length), (2, 24));
    assert_eq!(store.current(&name("nothing")).unwrap(), None);
}

#[test]
fn a_new_store_file_is_created_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let store = open(&path);
    store
        .generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Double)
        .unwrap();
    for p in [path.clone(), dir.path().join("keys.json.lock")] {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
    assert!(!dir.path().join("keys.json.tmp").exists());
}

#[test]
fn a_wrong_kek_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    drop(
        open(&path)
            .generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Double)
            .unwrap(),
    );
    match SoftwareKeyStore::open(&path, kek(KEK_B)) {
        Err(KeyStoreError::Kek(m)) => {
            assert!(m.contains("keys.json") && m.contains("zpk v1"), "{m}")
        }
        other => panic!("expected a Kek error, got {other:?}"),
    }
}

#[test]
fn a_second_open_while_locked_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let first = open(&path);
    let reason = storage_reason(SoftwareKeyStore::open(&path, kek(KEK_A)));
    assert_eq!(reason, "locked by another process (is the daemon running?)");
    drop(first);
    open(&path);
}

#[test]
fn a_record_edited_on_disk_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    {
        let store = open(&path);
        store
            .generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Double)
            .unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let original = text.clone();

    // Usage changed: the wrapped header still says "zone_pin".
    std::fs::write(
        &path,
        text.replace("\"usage\": \"zone_pin\"", "\"usage\": \"mac\""),
    )
    .unwrap();
    let reason = storage_reason(SoftwareKeyStore::open(&path, kek(KEK_A)));
    assert!(
        reason.contains("zpk v1") && reason.contains("edited on disk"),
        "{reason}"
    );

    // Version changed.
    std::fs::write(&path, original.replace("\"version\": 1", "\"version\": 7")).unwrap();
    storage_reason(SoftwareKeyStore::open(&path, kek(KEK_A)));

    // Check value changed.
    let kcv = open_kcv(&original);
    std::fs::write(&path, original.replace(&kcv, "000000")).unwrap();
    storage_reason(SoftwareKeyStore::open(&path, kek(KEK_A)));

    std::fs::write(&path, &original).unwrap();
    open(&path);
}

fn open_kcv(file_text: &str) -> String {
    let doc: serde_json::Value = serde_json::from_str(file_text).unwrap();
    doc["keys"][0]["kcv"].as_str().unwrap().to_owned()
}

#[test]
fn a_component_with_a_wrong_kcv_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let store = open(&path);
    let before = std::fs::read(&path).unwrap();
    let c1 = "0F1E2D3C4B5A69788796A5B4C3D2E1F0";
    let c2 = "F0E1D2C3B4A5968778695A4B3C2D1E0F";
    let components = [
        Component::from_hex(c1).unwrap(),
        Component::from_hex(c2).unwrap(),
    ];
    let wrong = [kcv_of(c1), kcv_of(c1)];
    match store.load_components(
        &KeyName::zone_master(),
        KeyUsage::ZoneMaster,
        &components,
        &wrong,
    ) {
        Err(e @ KeyStoreError::ComponentKcvMismatch { component: 2 }) => {
            // Neither the typed check value nor the one the component gives is quoted.
            let text = e.to_string();
            for kcv in [kcv_of(c1), kcv_of(c2)] {
                assert!(!text.contains(&kcv.to_string()), "{text}");
            }
        }
        other => panic!("expected a ComponentKcvMismatch, got {other:?}"),
    }
    assert!(store.list().unwrap().is_empty());
    assert_eq!(std::fs::read(&path).unwrap(), before);

    let one = [Component::from_hex(c1).unwrap()];
    assert!(matches!(
        store.load_components(
            &KeyName::zone_master(),
            KeyUsage::ZoneMaster,
            &one,
            &[kcv_of(c1)]
        ),
        Err(KeyStoreError::Invalid(_))
    ));
    let ragged = [
        Component::from_hex(c1).unwrap(),
        Component::from_hex(&c2[..16]).unwrap(),
    ];
    assert!(matches!(
        store.load_components(
            &KeyName::zone_master(),
            KeyUsage::ZoneMaster,
            &ragged,
            &[kcv_of(c1), kcv_of(&c2[..16])]
        ),
        Err(KeyStoreError::Invalid(_))
    ));
}

#[test]
fn components_combine_by_xor_into_the_next_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&store_path(&dir));
    let v1 = load_clear(&store, &KeyName::zone_master(), KeyUsage::ZoneMaster, ZMK);
    let v2 = load_clear(&store, &KeyName::zone_master(), KeyUsage::ZoneMaster, TMK);
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(store.info(&v2).unwrap().kcv, kcv_of(TMK));
}

/// The agent (A) and the switch (B) each hold the ZMK, loaded by the same custodians. The switch
/// generates the ZPK and sends it under the ZMK; the agent translates a PIN from the terminal's
/// TPK to the ZPK; the switch verifies it with its PVK.
struct Zone {
    _dir: tempfile::TempDir,
    agent: SoftwareKeyStore,
    switch: SoftwareKeyStore,
    tpk: KeyRef,
    zpk: KeyRef,
    pvk: KeyRef,
}

fn zone() -> Zone {
    let dir = tempfile::tempdir().unwrap();
    let agent = SoftwareKeyStore::open(&dir.path().join("agent.json"), kek(KEK_A)).unwrap();
    let switch = SoftwareKeyStore::open(&dir.path().join("switch.json"), kek(KEK_B)).unwrap();
    let zmk_a = load_clear(&agent, &KeyName::zone_master(), KeyUsage::ZoneMaster, ZMK);
    let zmk_b = load_clear(&switch, &KeyName::zone_master(), KeyUsage::ZoneMaster, ZMK);
    let tpk = load_clear(
        &agent,
        &KeyName::terminal_pin("T1").unwrap(),
        KeyUsage::TerminalPin,
        TPK,
    );
    let pvk = load_clear(&switch, &name("pvk/visa"), KeyUsage::PinVerification, PVK);

    let zpk_b = switch
        .generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Double)
        .unwrap();
    let cryptogram = switch.export_under(&zpk_b.key_ref(), &zmk_b).unwrap();
    let zpk_a = agent
        .import_under(
            &KeyName::zone_pin(),
            zpk_b.version,
            &zmk_a,
            &cryptogram,
            &zpk_b.kcv,
        )
        .unwrap();
    assert_eq!((zpk_a.version, zpk_a.kcv), (zpk_b.version, zpk_b.kcv));
    Zone {
        _dir: dir,
        agent,
        switch,
        tpk,
        zpk: zpk_a.key_ref(),
        pvk,
    }
}

/// What the ATM's PIN pad sends: the PIN under its TPK.
fn pin_pad(pin: &str) -> keystore::EncryptedPinBlock {
    crypto::encrypt_pin(&hex::decode(TPK).unwrap(), pin, &pan()).unwrap()
}

#[test]
fn a_pin_translated_by_the_agent_verifies_on_the_switch() {
    let z = zone();
    // psec vectors: PIN 4524 on this PAN has PVV 8523 (PVKI 1) and IBM 3624 offset 0000.
    let under_zpk = z
        .agent
        .translate_pin_block(&z.tpk, &z.zpk, &pin_pad("4524"), &pan())
        .unwrap();
    for method in [visa("8523"), ibm("0000")] {
        let verdict = z
            .switch
            .verify_pin(&z.zpk, &under_zpk, &pan(), &z.pvk, &method)
            .unwrap();
        assert_eq!(verdict, PinVerdict::Match, "{method:?}");
    }
    let wrong = z
        .agent
        .translate_pin_block(&z.tpk, &z.zpk, &pin_pad("4525"), &pan())
        .unwrap();
    for method in [visa("8523"), ibm("0000")] {
        let verdict = z
            .switch
            .verify_pin(&z.zpk, &wrong, &pan(), &z.pvk, &method)
            .unwrap();
        assert_eq!(verdict, PinVerdict::Mismatch, "{method:?}");
    }
}

#[test]
fn a_pin_block_under_another_key_does_not_decode() {
    let z = zone();
    // Checked: this block, deciphered under TPK, is not a format 0 block for this PAN.
    let other_key = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap();
    let block = crypto::encrypt_pin(&other_key, "4524", &pan()).unwrap();
    let r = z.agent.translate_pin_block(&z.tpk, &z.zpk, &block, &pan());
    assert!(matches!(r, Err(KeyStoreError::PinBlockFormat(_))), "{r:?}");
    // The right block with another PAN does not decode either.
    let other_pan = Pan::parse("4761739001010010").unwrap();
    let r = z
        .agent
        .translate_pin_block(&z.tpk, &z.zpk, &pin_pad("4524"), &other_pan);
    assert!(matches!(r, Err(KeyStoreError::PinBlockFormat(_))), "{r:?}");
}

#[test]
fn keys_are_used_only_for_their_usage() {
    let z = zone();
    let block = pin_pad("4524");
    let r = z.agent.translate_pin_block(
        &z.tpk,
        &KeyRef::new(KeyName::zone_master(), 1),
        &block,
        &pan(),
    );
    assert!(
        matches!(
            r,
            Err(KeyStoreError::WrongUsage {
                needed: KeyUsage::ZonePin,
                actual: KeyUsage::ZoneMaster,
                ..
            })
        ),
        "{r:?}"
    );
    let r = z
        .switch
        .verify_pin(&z.zpk, &block, &pan(), &z.zpk, &visa("8523"));
    assert!(
        matches!(
            r,
            Err(KeyStoreError::WrongUsage {
                needed: KeyUsage::PinVerification,
                ..
            })
        ),
        "{r:?}"
    );
    let r = z.agent.export_under(&z.zpk, &z.tpk);
    assert!(
        matches!(
            r,
            Err(KeyStoreError::NotExportable {
                kek_usage: KeyUsage::TerminalPin,
                ..
            })
        ),
        "{r:?}"
    );
    let zmk = KeyRef::new(KeyName::zone_master(), 1);
    assert!(
        matches!(
            z.agent.export_under(&zmk, &zmk),
            Err(KeyStoreError::NotExportable { .. })
        ),
        "a master key is never exported"
    );
    let r = z
        .agent
        .translate_pin_block(&z.tpk, &KeyRef::new(name("nope"), 1), &block, &pan());
    assert!(matches!(r, Err(KeyStoreError::NotFound(k)) if k == "nope v1"));
}

#[test]
fn a_tpk_exported_under_the_tmk_is_what_the_terminal_deciphers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&store_path(&dir));
    let tmk = load_clear(
        &store,
        &KeyName::terminal_master("T1").unwrap(),
        KeyUsage::TerminalMaster,
        TMK,
    );
    let tpk = store
        .generate(
            &KeyName::terminal_pin("T1").unwrap(),
            KeyUsage::TerminalPin,
            KeyLength::Double,
        )
        .unwrap();
    let cryptogram = store.export_under(&tpk.key_ref(), &tmk).unwrap();
    let mut clear = Zeroizing::new(cryptogram.0.clone());
    crypto::tdes_decrypt_ecb(&hex::decode(TMK).unwrap(), &mut clear).unwrap();
    assert_eq!(crypto::kcv(&clear).unwrap(), tpk.kcv);
    assert!(
        clear.iter().all(|b| b.count_ones() % 2 == 1),
        "generated keys have odd parity"
    );
}

#[test]
fn importing_the_same_version_twice_is_a_no_op_and_other_material_is_a_conflict() {
    let z = zone();
    let zmk = KeyRef::new(KeyName::zone_master(), 1);
    let again = z.switch.export_under(&z.zpk, &zmk).unwrap();
    let info = z.agent.info(&z.zpk).unwrap();
    let same = z
        .agent
        .import_under(&KeyName::zone_pin(), z.zpk.version, &zmk, &again, &info.kcv)
        .unwrap();
    assert_eq!(same, info);

    let other = z
        .switch
        .generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Double)
        .unwrap();
    let other_cryptogram = z.switch.export_under(&other.key_ref(), &zmk).unwrap();
    let r = z.agent.import_under(
        &KeyName::zone_pin(),
        z.zpk.version,
        &zmk,
        &other_cryptogram,
        &other.kcv,
    );
    assert!(matches!(r, Err(KeyStoreError::Conflict(_))), "{r:?}");

    // Versions only go forward: once version 5 is here, a late version 4 is refused.
    let v5 = z
        .agent
        .import_under(&KeyName::zone_pin(), 5, &zmk, &other_cryptogram, &other.kcv)
        .unwrap();
    let r = z
        .agent
        .import_under(&KeyName::zone_pin(), 4, &zmk, &again, &info.kcv);
    assert!(
        matches!(r, Err(KeyStoreError::VersionNotNewer { newest: 5, .. })),
        "{r:?}"
    );
    assert_eq!(v5.version, 5);
    assert_eq!(
        z.agent
            .current(&KeyName::zone_pin())
            .unwrap()
            .unwrap()
            .version,
        5
    );

    let r = z
        .agent
        .import_under(&KeyName::zone_pin(), 6, &zmk, &again, &other.kcv);
    assert!(matches!(r, Err(KeyStoreError::KcvMismatch { .. })), "{r:?}");
    assert!(z.agent.info(&KeyRef::new(KeyName::zone_pin(), 6)).is_err());
    let short = Cryptogram(vec![0; 12]);
    assert!(z
        .agent
        .import_under(&KeyName::zone_pin(), 7, &zmk, &short, &other.kcv)
        .is_err());
}

#[test]
fn a_destroyed_key_stays_gone_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let zpk = {
        let store = open(&path);
        let v1 = store
            .generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Double)
            .unwrap();
        store
            .generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Double)
            .unwrap();
        store.destroy(&v1.key_ref()).unwrap();
        assert!(matches!(
            store.destroy(&v1.key_ref()),
            Err(KeyStoreError::NotFound(_))
        ));
        v1.key_ref()
    };
    let store = open(&path);
    assert!(matches!(store.info(&zpk), Err(KeyStoreError::NotFound(_))));
    let versions: Vec<_> = store.list().unwrap().iter().map(|k| k.version).collect();
    assert_eq!(versions, [2]);
    // The next version follows the newest one still stored.
    let next = store
        .generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Double)
        .unwrap();
    assert_eq!(next.version, 3);
}

#[test]
fn a_failed_write_leaves_the_old_file_and_memory_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let store = open(&path);
    store
        .generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Double)
        .unwrap();
    let before = std::fs::read(&path).unwrap();
    // A directory where the temporary file should go makes the write fail.
    let tmp = dir.path().join("keys.json.tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::write(tmp.join("x"), b"x").unwrap();
    let r = store.generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Double);
    assert!(matches!(r, Err(KeyStoreError::Storage { .. })), "{r:?}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(store.list().unwrap().len(), 1);
    std::fs::remove_dir_all(&tmp).unwrap();
    assert_eq!(
        store
            .generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Double)
            .unwrap()
            .version,
        2
    );
}

/// The documented file format: anyone holding the KEK can find a key's bytes with
/// `crypto::aes_key_unwrap` (how another crate's test looks for key material in logs).
#[test]
fn the_file_format_is_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let store = open(&path);
    load_clear(&store, &KeyName::zone_master(), KeyUsage::ZoneMaster, ZMK);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(doc["format"], 1);
    let record = &doc["keys"][0];
    assert_eq!(record["name"], "zmk");
    assert_eq!(record["usage"], "zone_master");
    assert_eq!(record["version"], 1);
    assert_eq!(record["kcv"], kcv_of(ZMK).to_string());
    assert_eq!(record["length"], 16);
    assert!(record["created_unix"].as_u64().unwrap() > 1_700_000_000);

    let wrapped = hex::decode(record["wrapped"].as_str().unwrap()).unwrap();
    let plain = crypto::aes_key_unwrap(kek(KEK_A).expose(), &wrapped).unwrap();
    assert_eq!(plain.len(), 16 + 16);
    assert_eq!(&plain[..8], &[8, 16, 0, 0, 0, 1, 0, 0]);
    use sha2::Digest;
    assert_eq!(&plain[8..16], &sha2::Sha256::digest(b"zmk")[..8]);
    assert_eq!(hex::encode_upper(&plain[16..]), ZMK);
}

/// Card references are an HMAC under a stored key: stable for one key, different under another,
/// and not the unkeyed hash anyone could compute from a PAN.
#[test]
fn card_references_are_keyed_and_stable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&store_path(&dir));
    let refs = name("cardref");
    let v1 = store
        .generate(&refs, KeyUsage::CardReference, KeyLength::Bytes32)
        .unwrap();
    assert_eq!(v1.length, 32);
    let pan = Pan::parse(CARD_PAN).unwrap();
    let a = store.card_reference(&v1.key_ref(), &pan).unwrap();
    assert_eq!(a, store.card_reference(&v1.key_ref(), &pan).unwrap());
    use sha2::Digest;
    assert_ne!(&a[..], &sha2::Sha256::digest(CARD_PAN.as_bytes())[..]);
    let v2 = store
        .generate(&refs, KeyUsage::CardReference, KeyLength::Bytes32)
        .unwrap();
    assert_ne!(a, store.card_reference(&v2.key_ref(), &pan).unwrap());

    // Survives a restart.
    drop(store);
    let store = open(&store_path(&dir));
    assert_eq!(a, store.card_reference(&v1.key_ref(), &pan).unwrap());

    // A PIN key cannot stand in for it, and it cannot be a DES length.
    let zpk = store
        .generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Double)
        .unwrap();
    assert!(matches!(
        store.card_reference(&zpk.key_ref(), &pan),
        Err(KeyStoreError::WrongUsage { .. })
    ));
    assert!(store
        .generate(&refs, KeyUsage::CardReference, KeyLength::Double)
        .is_err());
    assert!(store
        .generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Bytes32)
        .is_err());
}

/// Sealed card data opens only under its key and with the associated data it was sealed with.
#[test]
fn sealed_data_opens_only_in_its_own_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&store_path(&dir));
    let dek = store
        .generate(&name("dek"), KeyUsage::DataProtection, KeyLength::Bytes32)
        .unwrap()
        .key_ref();
    let sealed = store
        .seal_data(&dek, CARD_PAN.as_bytes(), b"vault/1")
        .unwrap();
    assert!(!sealed
        .windows(CARD_PAN.len())
        .any(|w| w == CARD_PAN.as_bytes()));
    // A fresh nonce every time: the same PAN never seals to the same bytes.
    assert_ne!(
        sealed,
        store
            .seal_data(&dek, CARD_PAN.as_bytes(), b"vault/1")
            .unwrap()
    );
    assert_eq!(
        &store.open_data(&dek, &sealed, b"vault/1").unwrap()[..],
        CARD_PAN.as_bytes()
    );
    assert!(matches!(
        store.open_data(&dek, &sealed, b"vault/2"),
        Err(KeyStoreError::Sealed(_))
    ));
    let mut altered = sealed.clone();
    altered[20] ^= 1;
    assert!(matches!(
        store.open_data(&dek, &altered, b"vault/1"),
        Err(KeyStoreError::Sealed(_))
    ));
    assert!(matches!(
        store.open_data(&dek, &sealed[..10], b"vault/1"),
        Err(KeyStoreError::Sealed(_))
    ));
    let other = store
        .generate(&name("dek"), KeyUsage::DataProtection, KeyLength::Bytes32)
        .unwrap()
        .key_ref();
    assert!(store.open_data(&other, &sealed, b"vault/1").is_err());
}
