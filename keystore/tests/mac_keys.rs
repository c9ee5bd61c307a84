//! MAC keys in the software store: the NDC message authentication code (ANSI X9.19 retail MAC,
//! see `crypto::retail_mac` and its published known answer) is computed and verified inside the
//! store, under a key of usage `mac` only.

use keystore::{
    Kek, KeyLength, KeyName, KeyRef, KeyStore, KeyStoreError, KeyUsage, SoftwareKeyStore,
};

const KEK: &str = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";
const MESSAGE: &[u8] = b"11\x1c000000001\x1c\x1c0000002A\x1c11\x1c";

fn open(dir: &tempfile::TempDir) -> SoftwareKeyStore {
    SoftwareKeyStore::open(&dir.path().join("keys.json"), Kek::from_hex(KEK).unwrap()).unwrap()
}

#[test]
fn a_generated_mac_key_macs_and_verifies_and_a_changed_byte_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let tak = store
        .generate(
            &KeyName::new("tak/ATM00001").unwrap(),
            KeyUsage::Mac,
            KeyLength::Double,
        )
        .unwrap()
        .key_ref();
    let mac = store.generate_mac(&tak, MESSAGE).unwrap();
    assert_eq!(
        store.generate_mac(&tak, MESSAGE).unwrap(),
        mac,
        "deterministic"
    );
    assert!(store.verify_mac(&tak, MESSAGE, &mac[..4]).unwrap());
    assert!(store.verify_mac(&tak, MESSAGE, &mac).unwrap());
    let mut tampered = MESSAGE.to_vec();
    tampered[15] ^= 0x01;
    assert!(!store.verify_mac(&tak, &tampered, &mac[..4]).unwrap());
    let mut wrong = mac;
    wrong[0] ^= 0x80;
    assert!(!store.verify_mac(&tak, MESSAGE, &wrong[..4]).unwrap());
    assert!(
        store.verify_mac(&tak, MESSAGE, &mac[..2]).is_err(),
        "a MAC shorter than 4 bytes is refused, not compared"
    );
}

#[test]
fn only_a_mac_key_makes_macs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let tpk = store
        .generate(
            &KeyName::new("tpk/ATM00001").unwrap(),
            KeyUsage::TerminalPin,
            KeyLength::Double,
        )
        .unwrap()
        .key_ref();
    assert!(matches!(
        store.generate_mac(&tpk, MESSAGE),
        Err(KeyStoreError::WrongUsage { .. })
    ));
    assert!(matches!(
        store.verify_mac(&tpk, MESSAGE, &[0; 4]),
        Err(KeyStoreError::WrongUsage { .. })
    ));
    let missing = KeyRef::new(KeyName::new("tak/ATM00009").unwrap(), 1);
    assert!(matches!(
        store.generate_mac(&missing, MESSAGE),
        Err(KeyStoreError::NotFound(_))
    ));
}

/// A terminal master key the test knows in clear (odd parity), as two custodians enter it.
const TMK: &str = "9D3B6E01F4A7C258B0E5139D6B2F7C85";

fn load_tmk(store: &SoftwareKeyStore, terminal: &str) -> KeyRef {
    let c1 = "0F1E2D3C4B5A69788796A5B4C3D2E1F0";
    let (a, b) = (hex::decode(TMK).unwrap(), hex::decode(c1).unwrap());
    let c2 = hex::encode_upper(a.iter().zip(&b).map(|(x, y)| x ^ y).collect::<Vec<_>>());
    let kcv = |h: &str| keystore::crypto::kcv(&hex::decode(h).unwrap()).unwrap();
    store
        .load_components(
            &KeyName::terminal_master(terminal).unwrap(),
            KeyUsage::TerminalMaster,
            &[
                keystore::Component::from_hex(c1).unwrap(),
                keystore::Component::from_hex(&c2).unwrap(),
            ],
            &[kcv(c1), kcv(&c2)],
        )
        .unwrap()
        .key_ref()
}

#[test]
fn a_terminal_mac_key_travels_under_its_own_master_key_and_the_terminal_macs_alike() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let tmk = load_tmk(&store, "ATM00001");
    let other_tmk = load_tmk(&store, "ATM00002");
    let tak = store
        .generate(
            &KeyName::new("tak/ATM00001").unwrap(),
            KeyUsage::Mac,
            KeyLength::Double,
        )
        .unwrap();
    assert!(matches!(
        store.export_under(&tak.key_ref(), &other_tmk),
        Err(KeyStoreError::NotExportable { .. })
    ));
    // What the terminal's encryptor does with the key change `45`: decipher under its TMK, then
    // MAC with the published algorithm. Both sides get the same MAC.
    let cryptogram = store.export_under(&tak.key_ref(), &tmk).unwrap();
    let mut clear = cryptogram.0.clone();
    keystore::crypto::tdes_decrypt_ecb(&hex::decode(TMK).unwrap(), &mut clear).unwrap();
    assert_eq!(keystore::crypto::kcv(&clear).unwrap(), tak.kcv);
    assert_eq!(
        store.generate_mac(&tak.key_ref(), MESSAGE).unwrap(),
        keystore::crypto::retail_mac(&clear, MESSAGE).unwrap()
    );
    assert!(
        KeyName::new("tak/ATM00001")
            .and_then(|n| store.generate(&n, KeyUsage::TerminalPin, KeyLength::Double))
            .is_err(),
        "a tak/ name is for MAC keys only"
    );
}
