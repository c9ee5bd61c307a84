//! What the PIN path costs per transaction: the agent's translate (terminal PIN key → zone PIN
//! key) and the switch's verify (Visa PVV, IBM 3624), each one `KeyStore` call on the software
//! store, beside the same run's baselines: one 3DES block with a key already in hand (the floor of
//! any call that deciphers a block), and a key unwrap (what the store does per key it names).
//!
//! The `card data` group: what every request pays for its keyed card reference (HMAC-SHA-256
//! inside the store) beside the unkeyed SHA-256 it replaced, and sealing/opening a card number
//! (AES-256-GCM) as the agent's vault and the switch's PIN records do.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use keystore::{
    crypto, Component, EncryptedPinBlock, Kcv, KeyLength, KeyName, KeyStore, KeyUsage,
    PinVerification, SoftwareKeyStore,
};
use protocols::types::Pan;

const PAN: &str = "4761739001010010";
const PIN: &str = "1357";

fn load(store: &SoftwareKeyStore, name: &str, usage: KeyUsage, parts: [&str; 2]) {
    let c: Vec<Component> = parts
        .iter()
        .map(|p| Component::from_hex(p).unwrap())
        .collect();
    let k: Vec<Kcv> = c.iter().map(|c| crypto::kcv(c.expose()).unwrap()).collect();
    store
        .load_components(&KeyName::new(name).unwrap(), usage, &c, &k)
        .unwrap();
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let kek = keystore::Kek::generate().unwrap().0;
    let store = SoftwareKeyStore::open(&dir.path().join("keys.json"), kek).unwrap();
    let pan = Pan::parse(PAN).unwrap();
    load(
        &store,
        "tmk/ATM00001",
        KeyUsage::TerminalMaster,
        [
            "0123456789ABCDEFFEDCBA9876543210",
            "1111111111111111AAAAAAAAAAAAAAAA",
        ],
    );
    load(
        &store,
        "pvk/bench",
        KeyUsage::PinVerification,
        [
            "0123456789ABCDEFFEDCBA9876543210",
            "2222222222222222BBBBBBBBBBBBBBBB",
        ],
    );
    let tpk = store
        .generate(
            &KeyName::terminal_pin("ATM00001").unwrap(),
            KeyUsage::TerminalPin,
            KeyLength::Double,
        )
        .unwrap();
    let zpk = store
        .generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Double)
        .unwrap();
    let pvk = store
        .current(&KeyName::new("pvk/bench").unwrap())
        .unwrap()
        .unwrap();

    // The terminal's PIN block: the test cannot read the TPK, so it goes through the TMK the
    // way the terminal gets it (exported under the master key, deciphered with the clear TMK).
    let tmk_clear = {
        let a = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let b = hex::decode("1111111111111111AAAAAAAAAAAAAAAA").unwrap();
        let mut k: Vec<u8> = a.iter().zip(&b).map(|(x, y)| x ^ y).collect();
        crypto::set_odd_parity(&mut k);
        k
    };
    let tmk = store
        .current(&KeyName::terminal_master("ATM00001").unwrap())
        .unwrap()
        .unwrap();
    let mut tpk_clear = store
        .export_under(&tpk.key_ref(), &tmk.key_ref())
        .unwrap()
        .0;
    crypto::tdes_decrypt_ecb(&tmk_clear, &mut tpk_clear).unwrap();
    let from_terminal = crypto::encrypt_pin(&tpk_clear, PIN, &pan).unwrap();

    let pvk_clear = {
        let a = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let b = hex::decode("2222222222222222BBBBBBBBBBBBBBBB").unwrap();
        let mut k: Vec<u8> = a.iter().zip(&b).map(|(x, y)| x ^ y).collect();
        crypto::set_odd_parity(&mut k);
        k
    };
    let pvv = PinVerification::VisaPvv {
        pvki: 1,
        pvv: crypto::visa_pvv(&pvk_clear, 1, PIN, &pan)
            .unwrap()
            .to_string(),
    };
    let ibm = PinVerification::Ibm3624 {
        offset: crypto::ibm3624_offset(&pvk_clear, PIN, &pan, "0123456789012345", 4, 11, 'F')
            .unwrap()
            .to_string(),
        decimalization: "0123456789012345".into(),
        validation_start: 4,
        validation_len: 11,
        pad: 'F',
    };
    let to_switch = store
        .translate_pin_block(&tpk.key_ref(), &zpk.key_ref(), &from_terminal, &pan)
        .unwrap();

    let mut g = c.benchmark_group("pin");
    g.bench_function("baseline: one 3DES block, key in hand", |b| {
        b.iter(|| {
            let mut block = black_box(from_terminal.0);
            crypto::tdes_decrypt_ecb(black_box(&tpk_clear), &mut block).unwrap();
            block
        })
    });
    g.bench_function("baseline: AES key unwrap of one stored key", |b| {
        let kek = [7u8; 32];
        let wrapped = crypto::aes_key_wrap(&kek, &[1u8; 32]).unwrap();
        b.iter(|| crypto::aes_key_unwrap(black_box(&kek), black_box(&wrapped)).unwrap())
    });
    g.bench_function("agent: translate TPK -> ZPK", |b| {
        b.iter(|| {
            store
                .translate_pin_block(
                    &tpk.key_ref(),
                    &zpk.key_ref(),
                    black_box(&from_terminal),
                    &pan,
                )
                .unwrap()
        })
    });
    g.bench_function("switch: verify Visa PVV", |b| {
        b.iter(|| {
            store
                .verify_pin(
                    &zpk.key_ref(),
                    black_box(&to_switch),
                    &pan,
                    &pvk.key_ref(),
                    &pvv,
                )
                .unwrap()
        })
    });
    g.bench_function("switch: verify IBM 3624 offset", |b| {
        b.iter(|| {
            store
                .verify_pin(
                    &zpk.key_ref(),
                    black_box(&to_switch),
                    &pan,
                    &pvk.key_ref(),
                    &ibm,
                )
                .unwrap()
        })
    });
    g.finish();
    let _: EncryptedPinBlock = to_switch;

    let cref = store
        .generate(
            &KeyName::new("cardref").unwrap(),
            KeyUsage::CardReference,
            KeyLength::Bytes32,
        )
        .unwrap()
        .key_ref();
    let dpk = store
        .generate(
            &KeyName::new("carddata").unwrap(),
            KeyUsage::DataProtection,
            KeyLength::Bytes32,
        )
        .unwrap()
        .key_ref();
    let sealed = store
        .seal_data(&dpk, PAN.as_bytes(), b"ATM00001:000123")
        .unwrap();
    let mut g = c.benchmark_group("card data");
    g.bench_function(
        "baseline: unkeyed SHA-256 of the PAN (the old reference)",
        |b| {
            use sha2::Digest;
            b.iter(|| sha2::Sha256::digest(black_box(PAN).as_bytes()))
        },
    );
    g.bench_function(
        "switch: keyed card reference (HMAC-SHA-256 in the store)",
        |b| b.iter(|| store.card_reference(&cref, black_box(&pan)).unwrap()),
    );
    g.bench_function("agent/switch: seal a card number (AES-256-GCM)", |b| {
        b.iter(|| {
            store
                .seal_data(&dpk, black_box(PAN.as_bytes()), b"ATM00001:000123")
                .unwrap()
        })
    });
    g.bench_function("agent/switch: open a sealed card number", |b| {
        b.iter(|| {
            store
                .open_data(&dpk, black_box(&sealed), b"ATM00001:000123")
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
