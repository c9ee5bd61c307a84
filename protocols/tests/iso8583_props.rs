//! Properties of the codec: packing then unpacking any valid message gives it back, for every
//! spec; unpacking never panics, whatever the bytes; and whatever unpack accepts packs again.

use proptest::collection::vec;
use proptest::prelude::*;
use protocols::iso8583::{ContentClass, Encoding, FieldSpec, LenCount, LenType, Message, Spec};

fn bank_dialect() -> &'static Spec {
    use std::sync::OnceLock;
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        Spec::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/iso8583/bank_dialect.toml"
        ))
        .unwrap()
    })
}

fn specs() -> [&'static Spec; 3] {
    [Spec::iso87_ascii(), Spec::iso87_binary(), bank_dialect()]
}

fn alphabet(f: &FieldSpec) -> &'static [u8] {
    match (f.class, f.data_enc) {
        (ContentClass::Z, Encoding::Bcd) => b"0123456789D",
        (ContentClass::N, _) => b"0123456789",
        (ContentClass::An, _) => b"ABCXYZabcxyz0123456789 ",
        (ContentClass::Ans, _) => b" !\"#$%&'()*+,-./0189:;<=>?@AZ[\\]^_`az{|}~",
        (ContentClass::Z, _) => b"0123456789:;<=>?D",
        (ContentClass::Xn, _) => b"0123456789",
        (ContentClass::B, _) => b"",
    }
}

/// A valid value for field `f`, made from arbitrary `raw` bytes.
fn value_for(f: &FieldSpec, raw: &[u8]) -> Vec<u8> {
    let max = usize::from(f.max_len);
    // Units of the length (bytes or nibbles), then characters held in memory.
    let units = if f.len_type == LenType::Fixed {
        max
    } else {
        raw.len().min(max)
    };
    let chars = match (f.data_enc, f.len_count) {
        (Encoding::Bcd, LenCount::Bytes) => units * 2,
        _ => units,
    };
    let byte = |i: usize| {
        raw.get(i % raw.len().max(1))
            .copied()
            .unwrap_or(i as u8)
            .wrapping_add((i / 7) as u8)
    };
    if f.class == ContentClass::B {
        return (0..chars).map(byte).collect();
    }
    let alpha = alphabet(f);
    let mut v: Vec<u8> = (0..chars)
        .map(|i| alpha[usize::from(byte(i)) % alpha.len()])
        .collect();
    if f.class == ContentClass::Xn {
        if let Some(first) = v.first_mut() {
            *first = if byte(0) % 2 == 0 { b'C' } else { b'D' };
        }
    }
    // Odd BCD values need a pad the spec may not give.
    if f.data_enc == Encoding::Bcd
        && f.len_count == LenCount::Nibbles
        && f.pad.is_none()
        && v.len() % 2 == 1
    {
        v.pop();
    }
    v
}

fn message_for(spec: &Spec, mti: u16, picks: &[(u8, Vec<u8>)]) -> Message {
    let mut m = Message::new(&format!("{:04}", mti % 10_000)).unwrap();
    for (n, raw) in picks {
        if let Some(f) = spec.field(*n) {
            m.set(*n, value_for(f, raw)).unwrap();
        }
    }
    m
}

fn picks() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    vec((2u8..=128, vec(any::<u8>(), 0..48)), 0..24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn unpack_of_pack_is_identity(mti in 0u16..10_000, picks in picks()) {
        for spec in specs() {
            let m = message_for(spec, mti, &picks);
            let bytes = spec.pack(&m).map_err(|e| TestCaseError::fail(format!("{}: {e}", spec.name())))?;
            let back = spec.unpack(&bytes).map_err(|e| TestCaseError::fail(format!("{}: {e}", spec.name())))?;
            prop_assert_eq!(&back, &m, "{}", spec.name());
            prop_assert_eq!(spec.pack(&back).unwrap(), bytes);
            let json = m.to_json(spec, true);
            prop_assert_eq!(Message::from_json(&json, spec).unwrap(), m);
        }
    }

    #[test]
    fn unpack_never_panics_on_any_bytes(data in vec(any::<u8>(), 0..600)) {
        for spec in specs() {
            if let Ok(m) = spec.unpack(&data) {
                let again = spec.pack(&m).expect("what unpack accepts packs");
                prop_assert_eq!(spec.unpack(&again).unwrap(), m);
            }
        }
    }

    #[test]
    fn unpack_never_panics_on_plausible_headers(tail in vec(any::<u8>(), 0..300), bits in any::<u128>()) {
        // Random bitmaps behind a valid MTI reach the field decoders far more often than noise does.
        for (spec, head) in [
            (Spec::iso87_ascii(), format!("0200{:032X}", bits).into_bytes()),
            (Spec::iso87_binary(), [&b"0200"[..], &bits.to_be_bytes()].concat()),
        ] {
            let data = [&head[..], &tail[..]].concat();
            let _ = spec.unpack(&data);
            let _ = spec.unpack(&head[..head.len() - 8]);
        }
    }

    #[test]
    fn truncated_and_bit_flipped_messages_never_panic(
        mti in 0u16..10_000,
        picks in picks(),
        cut in any::<prop::sample::Index>(),
        flips in vec((any::<prop::sample::Index>(), 0u8..8), 1..6),
    ) {
        for spec in specs() {
            let bytes = spec.pack(&message_for(spec, mti, &picks)).unwrap();
            let cut_at = cut.index(bytes.len());
            prop_assert!(spec.unpack(&bytes[..cut_at]).is_err(), "{}: truncation at {cut_at} accepted", spec.name());
            let mut flipped = bytes.clone();
            for (at, bit) in &flips {
                let i = at.index(flipped.len());
                flipped[i] ^= 1 << bit;
            }
            if let Ok(m) = spec.unpack(&flipped) {
                let again = spec.pack(&m).expect("what unpack accepts packs");
                prop_assert_eq!(spec.unpack(&again).unwrap(), m);
            }
        }
    }
}

#[test]
fn every_field_of_every_spec_round_trips_at_its_shortest_and_longest() {
    for spec in specs() {
        for raw in [vec![], vec![0x5Au8; 9_999]] {
            let all: Vec<(u8, Vec<u8>)> = (2..=128).map(|n| (n, raw.clone())).collect();
            let m = message_for(spec, 200, &all);
            assert!(m.len() >= 16, "{}: only {} fields", spec.name(), m.len());
            let bytes = spec
                .pack(&m)
                .unwrap_or_else(|e| panic!("{}: {e}", spec.name()));
            assert_eq!(spec.unpack(&bytes).unwrap(), m, "{}", spec.name());
            // Every cut of the short message; a sample of the long one (each try is linear).
            let step = if bytes.len() > 2_000 { 211 } else { 1 };
            for cut in (0..bytes.len())
                .step_by(step)
                .chain(bytes.len().saturating_sub(40)..bytes.len())
            {
                assert!(
                    spec.unpack(&bytes[..cut]).is_err(),
                    "{}: cut at {cut}",
                    spec.name()
                );
            }
        }
    }
}
