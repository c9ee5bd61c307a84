//! Card references keyed with the switch's card reference key, and the cards' PIN data at rest,
//! end to end: a real switch refuses to start without its key, journals a card by its keyed
//! reference only (never beside its masked PAN), and keeps PVVs sealed in its database across a
//! restart.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use host_switch::cli::control;
use host_switch::config::{BinRuleConfig, KeysConfig, PinConfig};
use host_switch::control_api::Request;
use host_switch::domain::CardRef;
use host_switch::ports::Journal;
use host_switch::runtime;
use keystore::{KeyName, KeyStore, KeyUsage};
use protocols::types::Pan;
use testkit::custodian_keys::CustodianKey;
use testkit::evidence::{bytes_under, holds};

/// A key store in `dir/name` (with its own KEK file) holding no card reference key.
fn empty_store(dir: &Path, name: &str) -> KeysConfig {
    let (_, kek_hex) = keystore::Kek::generate().unwrap();
    let kek = dir.join(format!("{name}.kek"));
    std::fs::write(&kek, kek_hex.as_str()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o600)).unwrap();
    KeysConfig::with_kek_file(dir.join(format!("{name}.json")), kek)
}

#[tokio::test]
async fn a_switch_without_its_card_reference_key_refuses_to_start_and_says_how_to_make_it() {
    let mut lab = Lab::start().await;
    lab.stop_switch().await;
    let command = "host-switch keys generate cardref --usage card_reference --config FILE";

    let mut config = lab.config();
    config.keys = Some(empty_store(lab.dir.path(), "empty"));
    let err = runtime::start(&config).await.err().expect("refused");
    assert!(err.to_string().contains(command), "{err}");

    let mut config = lab.config();
    config.keys = None;
    let err = runtime::start(&config).await.err().expect("refused");
    assert!(err.to_string().contains(command), "{err}");

    // With the key it starts again, and the books still hold.
    lab.start_switch().await;
    lab.assert_books().await;
}

#[tokio::test]
async fn the_journal_knows_a_card_by_its_keyed_reference_only() {
    let lab = Lab::start().await;
    let mut c = lab.client().await;
    let r = c.request(&withdrawal(1, ALICE, 20_000)).await;
    assert_eq!(code(&r), "00");
    let r = c.request(&completion(2, 1, ALICE, 20_000, 20_000)).await;
    assert_eq!(code(&r), "00");

    let pan = Pan::parse(ALICE).unwrap();
    let txns = lab.switch().switch.journal().txns().unwrap();
    assert_eq!(txns.len(), 1);
    assert_eq!(txns[0].account, account(ALICE));
    assert!(txns[0].account.starts_with("cref-"));
    // The keyed reference is not the old unkeyed hash, and the switch's key store makes the
    // same reference as the tests' copy of the key.
    assert_ne!(txns[0].account, CardRef::legacy_for_card(&pan).as_str());
    let made = lab.switch().switch.card_refs().card(&pan).unwrap();
    assert_eq!(made.as_str(), account(ALICE));

    lab.assert_books().await;
    let mut lab = lab;
    lab.stop_switch().await;
    let raw = bytes_under(&lab.journal_path());
    assert!(holds(&raw, account(ALICE)));
    let (masked, legacy) = (pan.masked(), CardRef::legacy_for_card(&pan));
    for clear in [ALICE, masked.as_str(), "pan_masked", legacy.as_str()] {
        assert!(!holds(&raw, clear), "{clear} is in the journal");
    }
}

/// A switch with PIN verification: a PVK and a cards file giving ALICE a Visa PVV.
struct PinFiles {
    keys: KeysConfig,
    cards: PathBuf,
    socket: PathBuf,
    pvv: String,
}

fn pin_files(dir: &Path) -> PinFiles {
    let keys = card_ref_keys(dir);
    let store = runtime::open_key_store(&keys).unwrap();
    let pvk = CustodianKey::generate().unwrap();
    let (c, k) = pvk.components().unwrap();
    store
        .load_components(
            &KeyName::new("pvk/wallet").unwrap(),
            KeyUsage::PinVerification,
            &c,
            &k,
        )
        .unwrap();
    drop(store);
    let pan = Pan::parse(ALICE).unwrap();
    let pvv = keystore::crypto::visa_pvv(&pvk.combined, 1, "1234", &pan).unwrap();
    let cards = dir.join("cards.toml");
    std::fs::write(
        &cards,
        format!(
            "[[card]]\ncard = \"{}\"\npvki = 1\npvv = \"{}\"\n",
            account(ALICE),
            pvv.as_str()
        ),
    )
    .unwrap();
    PinFiles {
        keys,
        cards,
        socket: dir.join("control.sock"),
        pvv: pvv.as_str().to_owned(),
    }
}

#[tokio::test]
async fn pin_data_is_sealed_in_the_database_and_opens_after_a_restart() {
    let keys_dir = tempfile::tempdir().unwrap();
    let files = pin_files(keys_dir.path());
    let mut pin = PinConfig::new(&files.cards);
    pin.bins
        .push(BinRuleConfig::visa_pvv("476173", "pvk/wallet"));
    let mut lab = Lab::start_with(ExtraConfig {
        control_socket: Some(files.socket.clone()),
        keys: Some(files.keys.clone()),
        pin: Some(pin),
        bank: None,
    })
    .await;
    lab.stop_switch().await;

    let raw = bytes_under(&lab.journal_path());
    assert!(holds(&raw, account(ALICE)), "the PIN record is there");
    for clear in [format!("\"pvv\":\"{}\"", files.pvv), "visa_pvv".to_owned()] {
        assert!(!holds(&raw, &clear), "{clear} is in the database in clear");
    }
    // The data protection key was made at the first start, in the switch's store.
    let store = runtime::open_key_store(&files.keys).unwrap();
    let data_key = store
        .current(&KeyName::new("carddata").unwrap())
        .unwrap()
        .expect("data protection key");
    assert_eq!(data_key.usage, KeyUsage::DataProtection);
    drop(store);

    // After a restart the sealed data opens: the operator sees the card's method.
    lab.start_switch().await;
    let socket = files.socket.clone();
    let status =
        tokio::task::spawn_blocking(move || control::send(&socket, &Request::card_status(ALICE)))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(status["card"], account(ALICE).as_str(), "{status}");
    assert_eq!(status["method"], "visa_pvv", "{status}");
    lab.assert_books().await;
}
