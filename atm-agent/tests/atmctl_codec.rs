//! `atmctl iso8583` and `atmctl ndc` as a technician uses them: real process, real exit codes.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const WITHDRAWAL_HEX: &str = "3031303037323230303030303230383039303030313634373631373339303031303130303130303131303030303030303030303032303030313132353131343030303030303132333337343736313733393030313031303031303D323831323230313131343338303434303030303041544D303030303139373830313233343536373839414243444546";

fn atmctl(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_atmctl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn decode_masks_card_data_unless_revealed() {
    let masked = json(&atmctl(
        &["iso8583", "decode", "--spec", "iso87-ascii", WITHDRAWAL_HEX],
        "",
    ));
    assert_eq!(masked["t"], "0100");
    assert_eq!(masked["2"], "476173******0010");
    assert_eq!(masked["52"], "****");
    assert!(!masked.to_string().contains("4761739001010010"));
    let clear = json(&atmctl(
        &[
            "iso8583",
            "decode",
            "--spec",
            "iso87-ascii",
            "--reveal",
            WITHDRAWAL_HEX,
        ],
        "",
    ));
    assert_eq!(clear["2"], "4761739001010010");
    assert_eq!(clear["52"], "0123456789ABCDEF");
}

/// A key change answer (0810, 70 = 161) carries the zone PIN key under the ZMK in field 48.
#[test]
fn decode_masks_the_key_of_a_key_change_answer_unless_revealed() {
    let key = "8A1B2C3D4E5F60718293A4B5C6D7E8F908D7B41122334455667788";
    let input =
        format!(r#"{{"t":"0810","39":"00","48":"{key}","53":"0000000000000003","70":"161"}}"#);
    let out = atmctl(&["iso8583", "encode"], &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hex = String::from_utf8(out.stdout).unwrap();
    let masked = json(&atmctl(&["iso8583", "decode", hex.trim()], ""));
    assert_eq!(masked["48"], "****");
    assert_eq!(masked["53"], "0000000000000003");
    let clear = json(&atmctl(&["iso8583", "decode", "--reveal", hex.trim()], ""));
    assert_eq!(clear["48"], key);
}

#[test]
fn encode_reverses_decode_for_both_builtin_specs() {
    for spec in ["iso87-ascii", "iso87-binary"] {
        let input = r#"{"t":"0200","2":"4761739001010010","3":"210010","4":"000000005000","11":"000042","41":"ATM00001","49":"978","52":"0123456789ABCDEF"}"#;
        let out = atmctl(&["iso8583", "encode", "--spec", spec], input);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let hex = String::from_utf8(out.stdout).unwrap();
        assert!(hex
            .trim()
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
        let back = json(&atmctl(
            &["iso8583", "decode", "--spec", spec, "--reveal", hex.trim()],
            "",
        ));
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(input).unwrap(),
            "{spec}"
        );
    }
}

#[test]
fn bad_input_exits_2_with_one_line() {
    for (args, stdin) in [
        (
            vec!["iso8583", "decode", "--spec", "iso87-ascii", "30313030"],
            "",
        ),
        (vec!["iso8583", "decode", "--spec", "iso87-ascii", "zz"], ""),
        (
            vec!["iso8583", "decode", "--spec", "no-such-spec", "30313030"],
            "",
        ),
        (
            vec!["iso8583", "encode", "--spec", "iso87-ascii"],
            "not json",
        ),
        (
            vec!["iso8583", "encode", "--spec", "iso87-ascii"],
            r#"{"t":"0100","3":"ABC"}"#,
        ),
        // Any NDC bytes decode (a truncated `11` shows as an unknown message); only input that
        // is not hex, or nothing, is bad input.
        (vec!["ndc", "decode", "3131zz"], ""),
        (
            vec!["ndc", "decode", "--dialect", "no-such-dialect", "3131"],
            "",
        ),
    ] {
        let out = atmctl(&args, stdin);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("atmctl: "), "{err}");
    }
}

#[test]
fn ndc_decode_shows_any_message_even_one_it_does_not_type() {
    let hex: String = b"11"
        .iter()
        .chain(b"\x1c001")
        .map(|b| format!("{b:02X}"))
        .collect();
    let out = json(&atmctl(&["ndc", "decode", "--dialect", "basic", &hex], ""));
    assert_eq!(out["Unknown"]["class"], "11", "{out}");
    let hex: String =
        b"61\x1c\x1c\x1c\x1c000001181011124235279606279633027gooffline\r\nGoOutOfService\r\n"
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
    let out = json(&atmctl(&["ndc", "decode", &hex], ""));
    assert_eq!(
        out["Terminal"]["JournalUpload"]["header"]["last_char"], 279_633,
        "{out}"
    );
}

/// A PIN change request: the new PIN's block in buffer B, its confirmation in C, smart card data
/// in id buffer `5`. Masked unless `--reveal`.
#[test]
fn ndc_decode_masks_buffers_b_and_c_and_id_buffers_unless_revealed() {
    let msg = b"11\x1C777\x1C\x1C\x1C1?\x1C;4761739001010010=2812201?\x1C\x1CA       \x1C000000000000\x1C;>:>:=>:>:>:>:>:\x1C3;1=07>9:0<4=2?8\x1C9876543210123456\x1C\x1C5CAM9F2608A1B2C3D4E5F60718";
    let hex: String = msg.iter().map(|b| format!("{b:02X}")).collect();
    let secrets = ["3;1=07>9:0<4=2?8", "9876543210123456", "9F2608A1B2C3D4"];
    let masked = json(&atmctl(&["ndc", "decode", "--dialect", "basic", &hex], "")).to_string();
    for s in secrets {
        assert!(!masked.contains(s), "{s} in {masked}");
    }
    assert!(masked.contains("**** (16 characters)"), "{masked}");
    let revealed = json(&atmctl(
        &["ndc", "decode", "--dialect", "basic", "--reveal", &hex],
        "",
    ))
    .to_string();
    for s in secrets.iter().chain(&["4761739001010010"]) {
        assert!(revealed.contains(s), "{s} not in {revealed}");
    }
}

#[test]
fn ndc_decode_prints_json_with_track_and_pin_masked() {
    let msg = b"11\x1C777\x1C\x1C\x1C1?\x1C;4761739001010010=2812201?\x1C\x1CA       \x1C000000001337\x1C;>:>:=>:>:>:>:>:\x1C\x1C\x1C";
    let hex: String = msg.iter().map(|b| format!("{b:02X}")).collect();
    let out = json(&atmctl(&["ndc", "decode", "--dialect", "basic", &hex], ""));
    let text = out.to_string();
    assert!(text.contains("TransactionRequest"), "{text}");
    assert!(!text.contains("4761739001010010"), "{text}");
    assert!(text.contains("476173******0010"), "{text}");
}
