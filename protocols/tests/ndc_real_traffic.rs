//! Real-traffic NDC messages of every category, both directions (`vectors/ndc/real_traffic.txt`):
//! each decodes to its kind whatever the reader's dialect says about LUNO length, trailing FS,
//! TVN and extra fields, and encodes back to exactly the same bytes.

mod ndc {
    use protocols::ndc::*;

    struct Vector {
        line: usize,
        dialect: Dialect,
        kind: String,
        bytes: Vec<u8>,
    }

    fn unescape(s: &str) -> Vec<u8> {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match (b[i], b.get(i + 1)) {
                (b'\\', Some(b'x')) => {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 4;
                }
                (b'\\', Some(b'r')) => {
                    out.push(b'\r');
                    i += 2;
                }
                (b'\\', Some(b'n')) => {
                    out.push(b'\n');
                    i += 2;
                }
                (b'\\', Some(b'\\')) => {
                    out.push(b'\\');
                    i += 2;
                }
                (c, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        out
    }

    fn vectors() -> Vec<Vector> {
        include_str!("vectors/ndc/real_traffic.txt")
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|(n, l)| {
                let mut parts = l.splitn(3, ' ');
                let (d, kind, msg) = (
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                );
                Vector {
                    line: n + 1,
                    dialect: Dialect::by_name(d).unwrap(),
                    kind: kind.to_owned(),
                    bytes: unescape(msg),
                }
            })
            .collect()
    }

    fn kind(m: &NdcMessage) -> &'static str {
        match m {
            NdcMessage::Terminal(t) => match t {
                TerminalMessage::TransactionRequest(_) => "request",
                TerminalMessage::UnsolicitedStatus(_) => "unsolicited",
                TerminalMessage::SolicitedStatus(_) => "solicited",
                TerminalMessage::EncryptorInit(_) => "encryptor",
                TerminalMessage::JournalUpload(_) => "journal-upload",
                TerminalMessage::Unknown(_) => "unknown",
            },
            NdcMessage::Host(h) => match h {
                HostMessage::TerminalCommand(_) => "command",
                HostMessage::DataCommand(_) => "data",
                HostMessage::TransactionReply(_) => "reply",
                HostMessage::Journal(_) => "journal-command",
                HostMessage::EmvConfiguration(_) => "emv",
                HostMessage::Unknown(_) => "unknown",
            },
            NdcMessage::Unknown(_) => "unknown",
        }
    }

    #[test]
    fn every_real_message_decodes_to_its_kind_and_encodes_to_the_same_bytes() {
        let vs = vectors();
        assert!(vs.len() >= 50, "{} vectors", vs.len());
        for v in &vs {
            let shown = String::from_utf8_lossy(&v.bytes);
            let m = NdcMessage::decode(&v.bytes, &v.dialect);
            assert_eq!(kind(&m), v.kind, "line {}: {shown:?} read as {m:?}", v.line);
            assert_eq!(
                m.encode(&v.dialect).unwrap(),
                v.bytes,
                "line {}: {shown:?}",
                v.line
            );
            // The fallible parse agrees with decode on every vector (none needs the raw form).
            assert_eq!(
                NdcMessage::parse(&v.bytes, &v.dialect).ok(),
                Some(m),
                "line {}",
                v.line
            );
        }
    }

    #[test]
    fn every_category_and_both_directions_are_covered() {
        let kinds: std::collections::BTreeSet<_> = vectors().into_iter().map(|v| v.kind).collect();
        for k in [
            "request",
            "unsolicited",
            "solicited",
            "encryptor",
            "journal-upload",
            "command",
            "data",
            "reply",
            "journal-command",
            "emv",
            "unknown",
        ] {
            assert!(kinds.contains(k), "no vector of kind {k}");
        }
    }

    #[test]
    fn every_real_message_reads_in_the_other_dialect_too() {
        // Decoding never fails and always gives the bytes back, whichever dialect reads it.
        for v in vectors() {
            for d in [Dialect::basic(), Dialect::ncr_advance()] {
                let m = NdcMessage::decode(&v.bytes, &d);
                assert_eq!(m.encode(&d).unwrap(), v.bytes, "line {}", v.line);
            }
        }
    }

    #[test]
    fn lunos_of_3_and_9_characters_and_empty_ones_are_kept() {
        let adv = Dialect::ncr_advance();
        let basic = Dialect::basic();
        let m = TerminalMessage::parse(b"22\x1c001\x1c\x1c\x1c9", &adv).unwrap();
        assert_eq!(m.luno(), "001");
        let m = TerminalMessage::parse(b"12\x1c001000001\x1c\x1cB0022", &basic).unwrap();
        assert_eq!(m.luno(), "001000001");
        let m = HostMessage::parse(b"1\x1c\x1c\x1c3", &adv).unwrap();
        assert_eq!(m.luno(), "");
        // Longer than 9 characters is not a LUNO.
        assert!(TerminalMessage::parse(b"12\x1c0010000012\x1c\x1cB0022", &basic).is_err());
    }

    #[test]
    fn journal_upload_and_its_acknowledgement() {
        let d = Dialect::basic();
        let raw =
            b"61\x1c\x1c\x1c\x1c000001181011124235279606279633027gooffline\r\nGoOutOfService\r\n";
        let TerminalMessage::JournalUpload(u) = TerminalMessage::parse(raw, &d).unwrap() else {
            panic!("not an EJ upload")
        };
        let h = u.header.as_ref().unwrap();
        assert_eq!(
            (h.previous_last_char, h.last_char, h.block_length),
            (279_606, 279_633, 27)
        );
        let ack = u.ack().unwrap();
        assert_eq!(ack.acknowledged(), Some(279_633));
        assert_eq!(
            HostMessage::Journal(ack).encode(&d).unwrap(),
            b"6\x1c\x1c\x1c1279633"
        );
    }

    #[test]
    fn key_read_reply_gives_the_check_values() {
        let d = Dialect::ncr_advance();
        let raw = b"23\x1c001000001\x1c\x1c4\x1c08D7B4C0FFEE112233445566";
        let TerminalMessage::EncryptorInit(e) = TerminalMessage::parse(raw, &d).unwrap() else {
            panic!()
        };
        assert_eq!(
            e.key_check_values().unwrap(),
            ["08D7B4", "C0FFEE", "112233", "445566"]
        );
        assert_eq!(e.new_key_check_value(), None);
        let e = EncryptorInit::new("001", "3", "02A68B");
        assert_eq!(e.new_key_check_value(), Some("02A68B"));
        assert_eq!(e.key_check_values(), None);
    }

    #[test]
    fn emv_configuration_keeps_its_table_and_records() {
        let d = Dialect::basic();
        let raw = b"8\x1c001\x1c5\x1c07A0000000041010\x1c07A0000000031010";
        let HostMessage::EmvConfiguration(m) = HostMessage::parse(raw, &d).unwrap() else {
            panic!()
        };
        assert_eq!(m.table(), Some(EmvTable::Application));
        assert_eq!(m.records, ["07A0000000041010", "07A0000000031010"]);
        let built = EmvConfiguration::new("001", EmvTable::Application, m.records.clone());
        assert_eq!(built.encode(&d).unwrap(), raw);
    }

    #[test]
    fn extra_fields_and_trailing_fs_are_kept_on_typed_messages() {
        let d = Dialect::basic();
        let TerminalMessage::SolicitedStatus(s) =
            TerminalMessage::parse(b"22\x1c001\x1c\x1c9\x1cEXTRA\x1c\x1c", &d).unwrap()
        else {
            panic!()
        };
        assert_eq!(s.info, SolicitedStatusInfo::Ready);
        assert_eq!(
            (s.extra.as_slice(), s.trailing_fs),
            (&["EXTRA".to_owned()][..], 2)
        );
        let HostMessage::TerminalCommand(c) =
            HostMessage::parse(b"1\x1c001\x1c\x1c1\x1cX", &d).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (c.command, c.extra),
            (Command::GoInService, vec!["X".to_owned()])
        );
    }

    #[test]
    fn a_tvn_or_mac_that_is_not_hex_is_kept_not_fatal() {
        let d = Dialect::ncr_advance();
        let TerminalMessage::SolicitedStatus(s) =
            TerminalMessage::parse(b"22\x1c001000001\x1c\x1cNOTAHEX!\x1c9\x1cBADMAC!!", &d)
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(s.tvn.as_deref(), Some("NOTAHEX!"));
        // Not 8 hex digits, so not a MAC: an extra field, and MAC checking finds no MAC.
        assert_eq!((s.mac, s.extra), (None, vec!["BADMAC!!".to_owned()]));
    }

    #[test]
    fn unknown_classes_are_messages_not_errors() {
        let d = Dialect::basic();
        let m = TerminalMessage::parse(b"51\x1c001\x1c\x1cdata", &d).unwrap();
        let TerminalMessage::Unknown(u) = &m else {
            panic!()
        };
        assert_eq!(
            (u.class.as_str(), u.luno(), u.fields.len()),
            ("51", "001", 2)
        );
        assert_eq!(m.encode(&d).unwrap(), b"51\x1c001\x1c\x1cdata");
        // A known class that does not read at all is still an error from parse (the agent
        // declines such a request), and raw from decode.
        let bad = b"11\x1c001\x1c\x1c\x1cXYZ";
        assert!(TerminalMessage::parse(bad, &d).is_err());
        assert!(matches!(
            TerminalMessage::decode(bad, &d),
            TerminalMessage::Unknown(_)
        ));
    }
}
