//! Card data must never leave the codec in clear through `Debug` or `serde_json`: `atmctl ndc
//! decode` prints the JSON of live messages and logs print `Debug`.

// Wrapped in `mod ndc` so that `cargo test -p protocols ndc` selects these tests.
mod ndc {
    use protocols::ndc::*;

    const REQUEST: &[u8] = b"11\x1C001000001\x1C\x1C01A468E4\x1C14\x1C;502265400089000092=2708620951?\x1C;0150226540008900009200=27086209510000000000\x1C DA   AD\x1C000000010000\x1C84163:=3395289;7\x1C\x1C\x1C1%B502265400089000092^DOE/JOHN^2708620951?\x1C21641100000000000000000000\x1C766A0E2F";
    const CLEAR: &[&str] = &[
        "502265400089000092",
        "2708620951",
        "84163:=3395289;7",
        "84163AD3395289B7",
        "DOE/JOHN",
        "0150226540008900009200",
    ];

    #[test]
    fn debug_and_json_of_a_transaction_request_hide_tracks_and_pin() {
        let d = Dialect::ncr_advance();
        let m = NdcMessage::parse(REQUEST, &d).unwrap();
        let debug = format!("{m:?}");
        let pretty = format!("{m:#?}");
        let json = serde_json::to_string(&m).unwrap();
        for out in [&debug, &pretty, &json] {
            for clear in CLEAR {
                assert!(!out.contains(clear), "{clear} leaked into {out}");
            }
        }
        assert!(
            json.contains("\"track2\":\"502265********0092=****\""),
            "{json}"
        );
        assert!(json.contains("\"pin_buffer_a\":\"****\""), "{json}");
        assert!(
            json.contains("502265********0092^****"),
            "track 1 shows the masked PAN: {json}"
        );
        // The clear values are still there for whoever asks explicitly.
        let NdcMessage::Terminal(TerminalMessage::TransactionRequest(r)) = m else {
            panic!()
        };
        assert_eq!(
            r.track2.unwrap().expose(),
            ";502265400089000092=2708620951?"
        );
        assert_eq!(r.pin_buffer_a.unwrap().expose(), "84163:=3395289;7");
        assert!(r.track3.unwrap().expose().starts_with(";01502265"));
    }

    #[test]
    fn debug_and_json_of_a_key_change_show_only_the_key_length() {
        let d = Dialect::basic();
        let key = format!("030{}", "201".repeat(16));
        let bytes = format!("3\x1c001\x1c\x1c42\x1c{key}");
        let m = NdcMessage::parse(bytes.as_bytes(), &d).unwrap();
        let debug = format!("{m:?}");
        let pretty = format!("{m:#?}");
        let json = serde_json::to_string(&m).unwrap();
        for out in [&debug, &pretty, &json] {
            assert!(!out.contains("201201"), "key data leaked into {out}");
            assert!(out.contains("len=030 ****"), "{out}");
        }
        let NdcMessage::Host(HostMessage::DataCommand(c)) = m else {
            panic!()
        };
        let (_, k) = c.data.extended_key_load().unwrap();
        assert_eq!(k.unwrap().key_bytes(), &[201u8; 16][..]);
    }

    #[test]
    fn errors_do_not_echo_field_contents() {
        let d = Dialect::ncr_advance();
        let bad = b"11\x1C001000001\x1C\x1C\x1C14\x1C;502265400089000092=2708620951?\x1C\x1C DA   AD\x1C0000000100XX";
        let e = NdcMessage::parse(bad, &d).unwrap_err().to_string();
        assert!(e.contains("amount"), "{e}");
        assert!(!e.contains("502265400089000092"), "{e}");
    }

    /// Debug, pretty Debug and JSON of a message.
    fn shown(m: &NdcMessage) -> [String; 3] {
        [
            format!("{m:?}"),
            format!("{m:#?}"),
            serde_json::to_string(m).unwrap(),
        ]
    }

    const PAN: &str = "4761739001010010";

    #[test]
    fn journal_lines_with_a_pan_are_masked_and_the_rest_stays_readable() {
        let d = Dialect::basic();
        let raw = format!(
            "61\x1c\x1c\x1c\x1c000001261204101500000100000150050CARD {PAN}\r\nAMOUNT 000000005000\r\nOK\r\n"
        );
        let m = NdcMessage::decode(raw.as_bytes(), &d);
        assert!(matches!(
            m,
            NdcMessage::Terminal(TerminalMessage::JournalUpload(_))
        ));
        for out in shown(&m) {
            assert!(!out.contains(PAN), "PAN leaked into {out}");
            assert!(out.contains("476173******0010"), "{out}");
            assert!(
                out.contains("AMOUNT 000000005000"),
                "a 12-digit amount is not a PAN: {out}"
            );
        }
        let NdcMessage::Terminal(TerminalMessage::JournalUpload(u)) = m else {
            panic!()
        };
        assert!(u.text.expose().contains(PAN));
        assert!(!format!("{}", u.text).contains(PAN), "Display masks too");
    }

    #[test]
    fn unknown_and_unreadable_messages_do_not_show_card_data() {
        let d = Dialect::basic();
        // A request that does not read (bad MCN field) falls back to raw fields: everything
        // after the MCN is hidden, not only PAN-like runs.
        let raw = format!("11\x1c001\x1c\x1c\x1cXYZ\x1c;{PAN}=3012?\x1c\x1c0:1;2<3=4>5?6789");
        let m = NdcMessage::decode(raw.as_bytes(), &d);
        assert!(matches!(m, NdcMessage::Unknown(_)), "{m:?}");
        for out in shown(&m) {
            assert!(
                !out.contains(PAN) && !out.contains("0:1;2<3=4>5?6789"),
                "{out}"
            );
        }
        let raw = format!("51\x1c001\x1cPAN {PAN}");
        for out in shown(&NdcMessage::decode(raw.as_bytes(), &d)) {
            assert!(!out.contains(PAN), "{out}");
        }
    }

    #[test]
    fn reply_printer_data_and_track_writes_are_masked() {
        let d = Dialect::basic();
        let raw = format!(
            "4\x1c001\x1c\x1c125\x1c00000100\x1c00082068\x1c102CARD {PAN}\nAUTH 123456\x1cL;{PAN}=3012?"
        );
        let m = NdcMessage::decode(raw.as_bytes(), &d);
        assert!(
            matches!(m, NdcMessage::Host(HostMessage::TransactionReply(_))),
            "{m:?}"
        );
        for out in shown(&m) {
            assert!(!out.contains(PAN), "{out}");
            assert!(out.contains("AUTH 123456"), "{out}");
        }
    }
}
