//! Property tests for the key material codecs: the extended key change's key field
//! (`encode_field`/`parse_field`) and PIN buffer A as an 8-byte block.

// Wrapped in `mod ndc` so that `cargo test -p protocols ndc` selects these tests.
mod ndc {
    use proptest::collection::vec;
    use proptest::prelude::*;
    use protocols::ndc::*;

    fn key_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::sample::select(KEY_LENGTHS.to_vec()).prop_flat_map(|n| vec(any::<u8>(), n))
    }

    /// Strings that look like key fields: a hex-ish prefix and digits, with the odd intruder.
    fn key_field_like() -> impl Strategy<Value = String> {
        (
            "[0-9A-Fa-fG ]{0,3}",
            "[0-9]{0,80}",
            "[0-9:x\u{e9}\u{1c}]{0,2}",
        )
            .prop_map(|(len, digits, tail)| format!("{len}{digits}{tail}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn key_field_encode_then_parse_is_identity(bytes in key_bytes()) {
            let key = KeyLoad::new(bytes.clone()).expect("8, 16 or 24 bytes");
            let field = key.encode_field();
            prop_assert_eq!(field.len(), 3 + 3 * bytes.len());
            prop_assert_eq!(&field[..3], format!("{:03X}", 3 * bytes.len()));
            let back = KeyLoad::parse_field(&field).expect("own encoding parses");
            prop_assert_eq!(back.key_bytes(), &bytes[..]);
            prop_assert_eq!(back, key);
        }

        #[test]
        fn key_change_command_round_trips(bytes in key_bytes(), adv in any::<bool>()) {
            let d = if adv { Dialect::ncr_advance() } else { Dialect::basic() };
            let luno = if adv { "001000001" } else { "001" };
            let key = KeyLoad::new(bytes).expect("key length");
            let cmd = DataCommand::extended_key_change(luno, KeyChangeModifier::CommsPin, &key);
            let back = DataCommand::parse(&cmd.encode(&d).expect("encode"), &d).expect("parse");
            let (modifier, read) = back.data.extended_key_load().expect("a key change");
            prop_assert_eq!(modifier, Some(KeyChangeModifier::CommsPin));
            prop_assert_eq!(read, Ok(key));
        }

        #[test]
        fn key_field_parse_of_any_string_never_panics(s in any::<String>()) {
            if let Ok(k) = KeyLoad::parse_field(&s) {
                prop_assert_eq!(KeyLoad::parse_field(&k.encode_field()), Ok(k));
            }
        }

        #[test]
        fn key_field_parse_of_field_like_strings_never_panics(s in key_field_like()) {
            match KeyLoad::parse_field(&s) {
                Ok(k) => {
                    prop_assert!(KEY_LENGTHS.contains(&k.key_bytes().len()));
                    prop_assert_eq!(k.encode_field().to_ascii_uppercase(), s.to_ascii_uppercase());
                }
                Err(e) => {
                    // Errors never echo the digits.
                    let text = e.to_string();
                    if let Some(digits) = s.get(3..9) {
                        prop_assert!(!text.contains(digits), "{}", text);
                    }
                }
            }
        }

        #[test]
        fn pin_buffer_bytes_round_trip(block in any::<[u8; 8]>()) {
            let p = PinBuffer::from_bytes(&block);
            prop_assert_eq!(p.expose().len(), 16);
            prop_assert!(p.expose().bytes().all(|b| (b'0'..=b'?').contains(&b)));
            prop_assert_eq!(p.to_bytes(), Ok(block));
            let hex = p.to_hex_digits().expect("terminal charset");
            prop_assert_eq!(&hex, &hex::encode_upper(block));
            prop_assert_eq!(PinBuffer::new(hex).to_bytes(), Ok(block));
        }

        #[test]
        fn pin_buffer_decoding_of_any_string_never_panics(s in any::<String>()) {
            if let Ok(block) = PinBuffer::new(s.clone()).to_bytes() {
                prop_assert_eq!(s.chars().count(), 16);
                prop_assert_eq!(
                    PinBuffer::from_bytes(&block).to_hex_digits(),
                    Some(hex::encode_upper(block))
                );
            }
        }
    }
}
