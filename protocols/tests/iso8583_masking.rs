//! Card data never reaches a log: `Debug`, `describe()` and unrevealed JSON hide PAN (first 6 /
//! last 4 only), track 1 and 2 and the PIN block, whatever the spec.

use protocols::iso8583::{Message, PinBlock, Spec};
use protocols::types::{Pan, Track2};

const PAN: &str = "4761739001010010";
const TRACK2: &str = "4761739001010010=22122011143804400000";
const TRACK1: &str = "B4761739001010010^DOE/JOHN^22122011000000000000";
const PIN: [u8; 8] = [0x1A, 0x2B, 0x3C, 0x4D, 0x5E, 0x6F, 0x70, 0x81];

fn secrets() -> Vec<String> {
    vec![
        PAN.to_owned(),
        "22122011143804400000".to_owned(),
        "DOE/JOHN".to_owned(),
        "1A2B3C4D5E6F7081".to_owned(),
        "1a2b3c4d5e6f7081".to_owned(),
        String::from_utf8_lossy(&PIN).into_owned(),
        format!("{PIN:?}"),
        "9001010".to_owned(),
    ]
}

fn card_message() -> Message {
    let mut m = Message::new("0100").unwrap();
    m.set_pan(&Pan::parse(PAN).unwrap());
    m.set_track2(&Track2::parse(TRACK2).unwrap());
    m.set_str(45, TRACK1).unwrap();
    m.set_pin_block(&PinBlock::new(PIN));
    m.set_str(3, "010000").unwrap();
    m
}

fn assert_clean(what: &str, text: &str) {
    for s in secrets() {
        assert!(!text.contains(&s), "{what} leaks {s:?}: {text}");
    }
}

#[test]
fn debug_never_shows_card_data() {
    let m = card_message();
    assert_clean("Debug", &format!("{m:?}"));
    assert_clean("pretty Debug", &format!("{m:#?}"));
    assert!(format!("{m:?}").contains("476173******0010"));
    assert_clean("PinBlock Debug", &format!("{:?}", m.pin_block()));
}

#[test]
fn describe_never_shows_card_data() {
    let text = card_message().describe();
    assert_clean("describe", &text);
    assert!(
        text.contains("010000") && text.contains("476173******0010"),
        "{text}"
    );
}

#[test]
fn unpacked_messages_stay_masked_in_both_specs() {
    for spec in [Spec::iso87_binary(), Spec::iso87_ascii()] {
        let mut m = card_message();
        if spec.name() == "iso87-ascii" {
            m.set_pin_block(&PinBlock::new(*b"1A2B3C4D5E6F7081"));
        }
        let back = spec.unpack(&spec.pack(&m).unwrap()).unwrap();
        assert_clean("Debug after unpack", &format!("{back:?}"));
        assert_clean("describe after unpack", &back.describe());
        let json = serde_json::Value::Object(back.to_json(spec, false)).to_string();
        assert_clean("to_json(reveal = false)", &json);
        let revealed = serde_json::Value::Object(back.to_json(spec, true)).to_string();
        assert!(
            revealed.contains(PAN) && revealed.contains("1A2B3C4D5E6F7081"),
            "{revealed}"
        );
    }
}
