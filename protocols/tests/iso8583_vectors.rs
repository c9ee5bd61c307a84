//! Byte-for-byte interoperability with pyiso8583 4.0.1.
//!
//! `vectors/iso8583/vectors.json` was written by `make_vectors.py` with pyiso8583 itself: for every
//! valid vector we must decode to pyiso8583's dictionary and encode that dictionary back to the same
//! bytes; for every invalid one pyiso8583 raised `DecodeError`, and we must refuse it too, at the
//! same field and byte offset.

use protocols::iso8583::{Encoding, FieldRef, LenType, Message, Spec};
use serde_json::{Map, Value};

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/iso8583/vectors.json"))
        .expect("vectors.json is JSON")
}

fn bank_dialect() -> Spec {
    Spec::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/iso8583/bank_dialect.toml"
    ))
    .expect("bank dialect loads")
}

fn spec_named(name: &str, bank: &'static Spec) -> &'static Spec {
    match name {
        "bank-dialect" => bank,
        other => Spec::builtin(other).expect("known spec"),
    }
}

#[test]
fn every_valid_vector_decodes_to_pyiso_fields_and_encodes_to_pyiso_bytes() {
    let bank: &'static Spec = Box::leak(Box::new(bank_dialect()));
    let doc = vectors();
    let valid = doc["valid"].as_array().expect("valid list");
    assert!(valid.len() >= 31, "{} vectors", valid.len());
    for v in valid {
        let name = format!("{} [{}]", v["name"], v["spec"]);
        let spec = spec_named(v["spec"].as_str().unwrap(), bank);
        let bytes = hex::decode(v["hex"].as_str().unwrap()).unwrap();
        let fields: &Map<String, Value> = v["fields"].as_object().unwrap();

        let msg = spec
            .unpack(&bytes)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&msg.to_json(spec, true), fields, "{name}: decode");

        let built = Message::from_json(fields, spec).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(built, msg, "{name}: from_json");
        assert_eq!(
            spec.pack(&built).unwrap_or_else(|e| panic!("{name}: {e}")),
            bytes,
            "{name}: encode"
        );
    }
}

#[test]
fn every_invalid_vector_is_rejected_where_pyiso_rejects_it() {
    let doc = vectors();
    let invalid = doc["invalid"].as_array().expect("invalid list");
    assert!(invalid.len() >= 20);
    for v in invalid {
        let name = format!("{} [{}]", v["name"], v["spec"]);
        let spec = Spec::builtin(v["spec"].as_str().unwrap()).unwrap();
        let bytes = hex::decode(v["hex"].as_str().unwrap()).unwrap();
        let err = spec.unpack(&bytes).expect_err(&name);
        let at = match v["field"].as_str().unwrap() {
            "t" => FieldRef::Mti,
            "p" => FieldRef::PrimaryBitmap,
            "1" => FieldRef::SecondaryBitmap,
            n => FieldRef::Field(n.parse().unwrap()),
        };
        let pos = v["pos"].as_u64().unwrap() as usize;
        assert_eq!(
            (err.at, err.offset),
            (at, pos),
            "{name}: ours {err}, pyiso8583 {}",
            v["error"]
        );
    }
}

#[test]
fn builtin_specs_transcribe_pyiso8583_faithfully() {
    let dump: Value =
        serde_json::from_str(include_str!("vectors/iso8583/pyiso_specs.json")).unwrap();
    for (ours, theirs) in [
        (Spec::iso87_ascii(), "iso87-ascii"),
        (Spec::iso87_binary(), "iso87-binary"),
    ] {
        let py = &dump[theirs];
        let enc = |e: Encoding| match e {
            Encoding::Binary => "b",
            Encoding::Ascii => "ascii",
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(enc(ours.mti_encoding()), py["t"]["data_enc"]);
        assert_eq!(enc(ours.primary_bitmap_encoding()), py["p"]["data_enc"]);
        assert_eq!(enc(ours.secondary_bitmap_encoding()), py["1"]["data_enc"]);
        for n in (2..=128u8).filter(|&n| n != 65) {
            let f = ours.field(n).unwrap();
            let p = &py[n.to_string()];
            let what = format!("{theirs} field {n}");
            assert_eq!(
                u64::from(f.max_len),
                p["max_len"].as_u64().unwrap(),
                "{what} max_len"
            );
            assert_eq!(
                f.header_len() as u64,
                p["len_type"].as_u64().unwrap(),
                "{what} len_type"
            );
            assert_eq!(enc(f.data_enc), p["data_enc"], "{what} data_enc");
            if f.len_type != LenType::Fixed {
                assert_eq!(enc(f.len_enc), p["len_enc"], "{what} len_enc");
            }
        }
    }
}
