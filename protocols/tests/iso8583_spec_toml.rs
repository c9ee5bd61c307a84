//! Specs loaded from TOML: a bank dialect works like a built-in spec, and a bad file says exactly
//! which field and key are wrong.

use protocols::iso8583::{
    ContentClass, Encoding, LenCount, LenType, Message, Pad, Spec, SpecError,
};

const DIALECT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/iso8583/bank_dialect.toml"
);

#[test]
fn bank_dialect_loads_with_ebcdic_and_bcd_fields() {
    let spec = Spec::load(DIALECT).unwrap();
    assert_eq!(spec.name(), "bank-dialect");
    assert_eq!(spec.mti_encoding(), Encoding::Ebcdic);
    let pan = spec.field(2).unwrap();
    assert_eq!(
        (pan.len_type, pan.data_enc, pan.len_enc),
        (LenType::LLVar, Encoding::Bcd, Encoding::Bcd)
    );
    assert_eq!(
        (pan.len_count, pan.pad, pan.header_len()),
        (LenCount::Nibbles, Some(Pad::Left(b'0')), 1)
    );
    assert_eq!(spec.field(35).unwrap().class, ContentClass::Z);
    assert_eq!(spec.field(48).unwrap().header_len(), 3);
    assert_eq!(spec.description(43), "Name/location, binary length");
    assert!(spec.field(5).is_none());
}

#[test]
fn bank_dialect_packs_bcd_and_ebcdic_bytes() {
    let spec = Spec::load(DIALECT).unwrap();
    let mut m = Message::new("0200").unwrap();
    m.set_str(2, "12345")
        .unwrap()
        .set_str(3, "010000")
        .unwrap()
        .set_str(41, "ATM 0001")
        .unwrap();
    let bytes = spec.pack(&m).unwrap();
    let mut expected = vec![0xF0, 0xF2, 0xF0, 0xF0, 0x60, 0, 0, 0, 0, 0x80, 0, 0];
    expected.extend([0x05, 0x01, 0x23, 0x45]); // 5 nibbles, left pad 0
    expected.extend([0x01, 0x00, 0x00]);
    expected.extend([0xC1, 0xE3, 0xD4, 0x40, 0xF0, 0xF0, 0xF0, 0xF1]);
    assert_eq!(bytes, expected);
    assert_eq!(spec.unpack(&bytes).unwrap(), m);
}

#[test]
fn missing_file_names_the_path() {
    let err = Spec::load("/nonexistent/dialect.toml").unwrap_err();
    assert!(
        matches!(&err, SpecError::Io { path, .. } if path == "/nonexistent/dialect.toml"),
        "{err}"
    );
}

fn spec_with(field_line: &str) -> Result<Spec, SpecError> {
    Spec::from_toml_str(&format!(
        "name = \"t\"\nmti_enc = \"ascii\"\nprimary_bitmap_enc = \"ascii\"\n[fields]\n{field_line}\n"
    ))
}

#[test]
fn bad_specs_are_rejected_with_the_field_and_the_reason() {
    let cases: &[(&str, &str)] = &[
        (
            r#"2 = { len_type = "llvar", max_len = 0, class = "n", data_enc = "ascii" }"#,
            "max_len 0",
        ),
        (
            r#"2 = { len_type = "llvar", max_len = 100, class = "n", data_enc = "ascii" }"#,
            "does not fit",
        ),
        (
            r#"2 = { len_type = "llvar", max_len = 300, class = "b", data_enc = "b", len_enc = "b" }"#,
            "does not fit",
        ),
        (
            r#"2 = { len_type = "var", max_len = 19, class = "n", data_enc = "ascii" }"#,
            "len_type \"var\"",
        ),
        (
            r#"2 = { len_type = "fixed", max_len = 19, class = "q", data_enc = "ascii" }"#,
            "class \"q\"",
        ),
        (
            r#"2 = { len_type = "fixed", max_len = 19, class = "n", data_enc = "utf-16" }"#,
            "data_enc \"utf-16\"",
        ),
        (
            r#"2 = { len_type = "fixed", max_len = 8, class = "ans", data_enc = "b" }"#,
            "cannot carry class ans",
        ),
        (
            r#"2 = { len_type = "fixed", max_len = 8, class = "b", data_enc = "ascii" }"#,
            "class b needs",
        ),
        (
            r#"2 = { len_type = "fixed", max_len = 8, class = "n", data_enc = "ascii", len_count = "nibbles" }"#,
            "nibbles",
        ),
        (
            r#"2 = { len_type = "fixed", max_len = 3, class = "n", data_enc = "b", len_count = "nibbles", left_pad = "0", right_pad = "F" }"#,
            "not both",
        ),
        (
            r#"2 = { len_type = "fixed", max_len = 3, class = "n", data_enc = "b", len_count = "nibbles", left_pad = "00" }"#,
            "one hex digit",
        ),
        (
            r#"65 = { len_type = "fixed", max_len = 8, class = "b", data_enc = "b" }"#,
            "tertiary bitmap",
        ),
        (
            r#"1 = { len_type = "fixed", max_len = 8, class = "b", data_enc = "b" }"#,
            "2 to 128",
        ),
        (
            r#"129 = { len_type = "fixed", max_len = 8, class = "b", data_enc = "b" }"#,
            "2 to 128",
        ),
    ];
    for (line, reason) in cases {
        let err = spec_with(line).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, SpecError::Field { .. }), "{line}: {text}");
        assert!(
            text.contains(reason),
            "{line}: expected {reason:?} in {text:?}"
        );
        let key = line.split(' ').next().unwrap();
        assert!(text.contains(&format!("field \"{key}\"")), "{line}: {text}");
    }
}

#[test]
fn unknown_keys_are_rejected() {
    let err = spec_with(r#"2 = { len_type = "llvar", max_len = 19, class = "n", data_enc = "ascii", colour = "red" }"#).unwrap_err();
    assert!(
        matches!(&err, SpecError::Toml(t) if t.contains("colour")),
        "{err}"
    );
    let err = Spec::from_toml_str(
        "name = \"t\"\nmti_enc = \"ascii\"\nprimary_bitmap_enc = \"ascii\"\nheader = 4\n[fields]\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("header"), "{err}");
    let err = Spec::from_toml_str(
        "name = \"t\"\nmti_enc = \"utf8\"\nprimary_bitmap_enc = \"ascii\"\n[fields]\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("mti_enc"), "{err}");
    let err = Spec::from_toml_str(
        "name = \"t\"\nmti_enc = \"ascii\"\nprimary_bitmap_enc = \"bcd\"\n[fields]\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("primary_bitmap_enc"), "{err}");
    assert!(matches!(
        Spec::from_toml_str("not toml ["),
        Err(SpecError::Toml(_))
    ));
}
