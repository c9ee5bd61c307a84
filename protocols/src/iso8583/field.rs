//! One field on the wire: its length header and its value, in every encoding a spec can name.
//!
//! This is where the bytes are: a value is checked against its content class, its length against
//! the spec, and then written as ASCII, EBCDIC, BCD or raw bytes behind an ASCII, EBCDIC, BCD or
//! binary length header — and read back the other way, with every slice access checked, because the
//! bytes come from the network. Values in memory are the logical value: text as ASCII, BCD as its
//! digit string (uppercase hex, exactly what pyiso8583 prints), binary as the raw bytes.

use bytes::{BufMut, BytesMut};

use super::ebcdic;
use super::error::{PackErrorKind, UnpackErrorKind};
use super::spec::{ContentClass, Encoding, FieldSpec, LenCount, LenType, Pad};

/// A failure while decoding a field: the offset in the input where it applies, and what went wrong.
pub(crate) type DecodeFailure = (usize, UnpackErrorKind);

fn unit(spec: &FieldSpec) -> &'static str {
    match spec.len_count {
        LenCount::Nibbles => "nibbles",
        LenCount::Bytes => "bytes",
    }
}

#[inline]
fn is_upper_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'A'..=b'F').contains(&b)
}

#[inline]
fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Index of the first byte of `value` outside `class` (and, for BCD, the nibble alphabet).
/// One loop per class, so the per-byte test is a range check the compiler can vectorise.
#[inline]
fn first_bad(class: ContentClass, bcd: bool, value: &[u8]) -> Option<usize> {
    let bad = match class {
        ContentClass::B => None,
        ContentClass::N => value.iter().position(|b| !b.is_ascii_digit()),
        ContentClass::An => value
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || b == b' ')),
        ContentClass::Ans => value.iter().position(|&b| !(0x20..=0x7E).contains(&b)),
        ContentClass::Z | ContentClass::Xn => value
            .iter()
            .enumerate()
            .position(|(i, &b)| !class.allows(i, b)),
    };
    match bad {
        None if bcd => value.iter().position(|&b| !is_upper_hex(b)),
        other => other,
    }
}

/// Checks a value's characters against the field's class (and, for BCD, the nibble alphabet).
fn check_content(spec: &FieldSpec, value: &[u8]) -> Result<(), PackErrorKind> {
    match first_bad(spec.class, spec.data_enc == Encoding::Bcd, value) {
        None => Ok(()),
        Some(index) => {
            let byte = value.get(index).copied().unwrap_or_default();
            Err(PackErrorKind::BadContent {
                index,
                byte,
                class: spec.class,
            })
        }
    }
}

/// Appends field `value` (header and data) to `out`.
pub(crate) fn encode(
    spec: &FieldSpec,
    value: &[u8],
    out: &mut BytesMut,
) -> Result<(), PackErrorKind> {
    check_content(spec, value)?;
    // The length in the spec's unit, and whether a pad nibble is needed.
    let (count, padded) = match (spec.data_enc, spec.len_count) {
        (Encoding::Bcd, LenCount::Nibbles) => (value.len(), value.len() % 2 == 1),
        (Encoding::Bcd, LenCount::Bytes) => {
            if value.len() % 2 == 1 {
                return Err(PackErrorKind::OddDigits);
            }
            (value.len() / 2, false)
        }
        _ => (value.len(), false),
    };
    let max = usize::from(spec.max_len);
    if spec.len_type == LenType::Fixed {
        if count != max {
            return Err(PackErrorKind::WrongLength {
                len: count,
                expected: max,
                unit: unit(spec),
            });
        }
    } else {
        if count > max {
            return Err(PackErrorKind::TooLong {
                len: count,
                max,
                unit: unit(spec),
            });
        }
        encode_header(spec, count, out);
    }
    match spec.data_enc {
        Encoding::Ascii | Encoding::Binary => out.put_slice(value),
        Encoding::Ebcdic => {
            // Content classes other than b are ASCII subsets, so every byte maps.
            out.extend(value.iter().map(|&b| ebcdic::encode(b).unwrap_or(0x40)));
        }
        Encoding::Bcd => encode_bcd(spec, value, padded, out)?,
    }
    Ok(())
}

fn encode_bcd(
    spec: &FieldSpec,
    value: &[u8],
    padded: bool,
    out: &mut BytesMut,
) -> Result<(), PackErrorKind> {
    fn push_pairs(out: &mut BytesMut, it: &mut dyn Iterator<Item = u8>) {
        while let Some(hi) = it.next() {
            let lo = it.next().unwrap_or(0);
            out.put_u8((hi << 4) | lo);
        }
    }
    let mut nibbles = value.iter().copied().map(nibble);
    if !padded {
        push_pairs(out, &mut nibbles);
        return Ok(());
    }
    match spec.pad {
        Some(Pad::Left(p)) => push_pairs(out, &mut std::iter::once(nibble(p)).chain(nibbles)),
        Some(Pad::Right(p)) => push_pairs(out, &mut nibbles.chain(std::iter::once(nibble(p)))),
        None => return Err(PackErrorKind::OddDigits),
    }
    Ok(())
}

fn encode_header(spec: &FieldSpec, count: usize, out: &mut BytesMut) {
    let width = spec.header_len();
    match spec.len_enc {
        Encoding::Ascii | Encoding::Ebcdic => {
            let mut digits = [0u8; 4];
            let mut v = count;
            for d in digits[..width].iter_mut().rev() {
                *d = b'0' + (v % 10) as u8;
                v /= 10;
            }
            for &d in &digits[..width] {
                let byte = if spec.len_enc == Encoding::Ebcdic {
                    d + 0xC0
                } else {
                    d
                };
                out.put_u8(byte);
            }
        }
        Encoding::Bcd => {
            let mut v = count;
            let mut bytes = [0u8; 2];
            for b in bytes[..width].iter_mut().rev() {
                *b = (((v / 10 % 10) << 4) | (v % 10)) as u8;
                v /= 100;
            }
            out.put_slice(&bytes[..width]);
        }
        Encoding::Binary => {
            let be = (count as u16).to_be_bytes();
            out.put_slice(&be[2 - width..]);
        }
    }
}

/// Reads the field starting at `pos` of `input`, appends its value to `value`, returns the offset
/// just past it.
pub(crate) fn decode(
    spec: &FieldSpec,
    input: &[u8],
    pos: usize,
    value: &mut Vec<u8>,
) -> Result<usize, DecodeFailure> {
    let remaining = input.len().saturating_sub(pos);
    let header_len = spec.header_len();
    let count = if spec.len_type == LenType::Fixed {
        usize::from(spec.max_len)
    } else {
        let header = input.get(pos..pos + header_len).ok_or((
            pos,
            UnpackErrorKind::Truncated {
                needed: header_len,
                remaining,
            },
        ))?;
        let count =
            decode_header(spec.len_enc, header).ok_or((pos, UnpackErrorKind::BadLengthHeader))?;
        let max = usize::from(spec.max_len);
        if count > max {
            return Err((pos, UnpackErrorKind::LengthOverMax { len: count, max }));
        }
        count
    };
    let start = pos + header_len;
    let wire_len = match (spec.data_enc, spec.len_count) {
        (Encoding::Bcd, LenCount::Nibbles) => count.div_ceil(2),
        _ => count,
    };
    let remaining = input.len().saturating_sub(start);
    let data = input.get(start..start + wire_len).ok_or((
        start,
        UnpackErrorKind::Truncated {
            needed: wire_len,
            remaining,
        },
    ))?;
    decode_value(spec, data, count, value).map_err(|kind| (start, kind))?;
    Ok(start + wire_len)
}

fn decode_header(enc: Encoding, header: &[u8]) -> Option<usize> {
    let mut n = 0usize;
    match enc {
        Encoding::Ascii | Encoding::Ebcdic => {
            for &b in header {
                let d = if enc == Encoding::Ebcdic {
                    b.checked_sub(0xF0)?
                } else {
                    b.checked_sub(b'0')?
                };
                if d > 9 {
                    return None;
                }
                n = n * 10 + usize::from(d);
            }
        }
        Encoding::Bcd => {
            for &b in header {
                let (hi, lo) = (b >> 4, b & 0x0F);
                if hi > 9 || lo > 9 {
                    return None;
                }
                n = n * 100 + usize::from(hi) * 10 + usize::from(lo);
            }
        }
        Encoding::Binary => {
            for &b in header {
                n = (n << 8) | usize::from(b);
            }
        }
    }
    Some(n)
}

fn decode_value(
    spec: &FieldSpec,
    data: &[u8],
    count: usize,
    value: &mut Vec<u8>,
) -> Result<(), UnpackErrorKind> {
    let start = value.len();
    match spec.data_enc {
        Encoding::Binary => value.extend_from_slice(data),
        Encoding::Ascii => {
            // Every class but b is an ASCII subset, so the class check below also rejects
            // non-ASCII bytes; only class b (never ASCII-encoded in a valid spec) needs this pass.
            if spec.class == ContentClass::B {
                if let Some(index) = data.iter().position(|b| !b.is_ascii()) {
                    return Err(UnpackErrorKind::BadEncoding {
                        index,
                        encoding: "ASCII",
                    });
                }
            }
            value.extend_from_slice(data);
        }
        Encoding::Ebcdic => {
            for (index, &b) in data.iter().enumerate() {
                let a = ebcdic::decode(b).ok_or(UnpackErrorKind::BadEncoding {
                    index,
                    encoding: "EBCDIC (cp500)",
                })?;
                value.push(a);
            }
        }
        Encoding::Bcd => {
            for &b in data {
                value.push(HEX_UPPER[usize::from(b >> 4)]);
                value.push(HEX_UPPER[usize::from(b & 0x0F)]);
            }
            if spec.len_count == LenCount::Nibbles && count % 2 == 1 {
                // pyiso8583 strips the pad nibble only if it is the expected one.
                match spec.pad {
                    Some(Pad::Left(p)) if value.get(start) == Some(&p) => {
                        value.remove(start);
                    }
                    Some(Pad::Right(p)) if value.last() == Some(&p) => {
                        value.pop();
                    }
                    _ => return Err(UnpackErrorKind::BadPad),
                }
            }
        }
    }
    let class = spec.class;
    let decoded = value.get(start..).unwrap_or_default();
    if let Some(index) = first_bad(class, false, decoded) {
        let byte = decoded.get(index).copied().unwrap_or_default();
        if !byte.is_ascii() {
            // As pyiso8583 ("invalid data"): the byte is not ASCII at all.
            return Err(UnpackErrorKind::BadEncoding {
                index,
                encoding: "ASCII",
            });
        }
        return Err(UnpackErrorKind::BadContent { index, byte, class });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(
        len_type: LenType,
        max_len: u16,
        class: ContentClass,
        data_enc: Encoding,
        len_enc: Encoding,
    ) -> FieldSpec {
        FieldSpec {
            len_type,
            max_len,
            class,
            data_enc,
            len_enc,
            len_count: LenCount::Bytes,
            pad: None,
        }
    }

    fn enc(spec: &FieldSpec, v: &[u8]) -> Result<Vec<u8>, PackErrorKind> {
        let mut out = BytesMut::new();
        encode(spec, v, &mut out).map(|()| out.to_vec())
    }

    fn dec(spec: &FieldSpec, input: &[u8]) -> Result<(Vec<u8>, usize), DecodeFailure> {
        let mut v = Vec::new();
        decode(spec, input, 0, &mut v).map(|end| (v, end))
    }

    fn round_trip(spec: &FieldSpec, v: &[u8], wire: &[u8]) {
        assert_eq!(
            enc(spec, v).unwrap(),
            wire,
            "encode {:?}",
            String::from_utf8_lossy(v)
        );
        assert_eq!(
            dec(spec, wire).unwrap(),
            (v.to_vec(), wire.len()),
            "decode {wire:02X?}"
        );
    }

    use ContentClass::*;
    use Encoding::*;
    use LenType::*;

    #[test]
    fn fixed_ascii() {
        let s = fs(Fixed, 6, N, Ascii, Ascii);
        round_trip(&s, b"010000", b"010000");
        assert_eq!(
            enc(&s, b"01000"),
            Err(PackErrorKind::WrongLength {
                len: 5,
                expected: 6,
                unit: "bytes"
            })
        );
        assert!(matches!(
            enc(&s, b"01000A"),
            Err(PackErrorKind::BadContent {
                index: 5,
                byte: b'A',
                ..
            })
        ));
        assert_eq!(
            dec(&s, b"0100").unwrap_err(),
            (
                0,
                UnpackErrorKind::Truncated {
                    needed: 6,
                    remaining: 4
                }
            )
        );
        assert!(matches!(
            dec(&s, b"01 000"),
            Err((0, UnpackErrorKind::BadContent { index: 2, .. }))
        ));
        assert!(matches!(
            dec(&s, b"01\xC3000"),
            Err((0, UnpackErrorKind::BadEncoding { index: 2, .. }))
        ));
    }

    #[test]
    fn llvar_ascii() {
        let s = fs(LLVar, 19, N, Ascii, Ascii);
        round_trip(&s, b"4761739001010010", b"164761739001010010");
        round_trip(&s, b"", b"00");
        assert!(matches!(
            enc(&s, b"47617390010100101234"),
            Err(PackErrorKind::TooLong {
                len: 20,
                max: 19,
                ..
            })
        ));
        assert_eq!(
            dec(&s, b"20476173900101001012345").unwrap_err().1,
            UnpackErrorKind::LengthOverMax { len: 20, max: 19 }
        );
        assert_eq!(
            dec(&s, b"1A4761").unwrap_err(),
            (0, UnpackErrorKind::BadLengthHeader)
        );
        assert_eq!(
            dec(&s, b"1").unwrap_err(),
            (
                0,
                UnpackErrorKind::Truncated {
                    needed: 2,
                    remaining: 1
                }
            )
        );
        assert_eq!(
            dec(&s, b"164761").unwrap_err(),
            (
                2,
                UnpackErrorKind::Truncated {
                    needed: 16,
                    remaining: 4
                }
            )
        );
    }

    #[test]
    fn lllvar_ascii_and_ans() {
        let s = fs(LLLVar, 999, Ans, Ascii, Ascii);
        round_trip(&s, b"Hello, ATM!", b"011Hello, ATM!");
        assert!(matches!(
            enc(&s, b"tab\t"),
            Err(PackErrorKind::BadContent { index: 3, .. })
        ));
        assert_eq!(
            dec(&s, b"0-1x").unwrap_err().1,
            UnpackErrorKind::BadLengthHeader
        );
    }

    #[test]
    fn binary_fixed_and_lllvar_with_ascii_length() {
        let s = fs(Fixed, 8, B, Binary, Ascii);
        round_trip(
            &s,
            &[0, 1, 2, 0xFF, 0x80, 5, 6, 7],
            &[0, 1, 2, 0xFF, 0x80, 5, 6, 7],
        );
        let s = fs(LLLVar, 255, B, Binary, Ascii);
        round_trip(&s, &[0x9F, 0x26], b"002\x9F\x26");
        assert!(matches!(
            enc(&s, &[0u8; 256]),
            Err(PackErrorKind::TooLong {
                len: 256,
                max: 255,
                ..
            })
        ));
    }

    #[test]
    fn binary_length_headers() {
        let s = fs(LLVar, 255, Ans, Ascii, Binary);
        round_trip(&s, b"ABC", b"\x03ABC");
        let s = fs(LLLVar, 999, Ans, Ascii, Binary);
        round_trip(
            &s,
            &[b'x'; 300],
            &[&[0x01, 0x2C][..], &[b'x'; 300]].concat(),
        );
        assert_eq!(
            dec(&s, &[0x03, 0xE8]).unwrap_err().1,
            UnpackErrorKind::LengthOverMax {
                len: 1000,
                max: 999
            }
        );
    }

    #[test]
    fn bcd_length_headers() {
        let s = fs(LLVar, 99, Ans, Ascii, Bcd);
        round_trip(&s, &[b'y'; 16], &[&[0x16][..], &[b'y'; 16]].concat());
        let s = fs(LLLVar, 999, Ans, Ascii, Bcd);
        round_trip(
            &s,
            &[b'z'; 123],
            &[&[0x01, 0x23][..], &[b'z'; 123]].concat(),
        );
        assert_eq!(
            dec(&s, &[0x01, 0x2A]).unwrap_err().1,
            UnpackErrorKind::BadLengthHeader
        );
    }

    #[test]
    fn ebcdic_data_and_length() {
        let s = fs(LLVar, 20, Ans, Ebcdic, Ebcdic);
        round_trip(&s, b"AB 12", &[0xF0, 0xF5, 0xC1, 0xC2, 0x40, 0xF1, 0xF2]);
        assert_eq!(
            dec(&s, &[0xF0, 0xC1]).unwrap_err().1,
            UnpackErrorKind::BadLengthHeader
        );
        assert!(matches!(
            dec(&s, &[0xF0, 0xF1, 0x41]),
            Err((2, UnpackErrorKind::BadEncoding { index: 0, .. }))
        ));
        let s = fs(Fixed, 3, N, Ebcdic, Ascii);
        round_trip(&s, b"978", &[0xF9, 0xF7, 0xF8]);
        assert!(matches!(
            dec(&s, &[0xF9, 0xC1, 0xF8]),
            Err((0, UnpackErrorKind::BadContent { index: 1, .. }))
        ));
    }

    #[test]
    fn bcd_fixed_bytes() {
        let s = fs(Fixed, 3, N, Bcd, Ascii);
        round_trip(&s, b"012345", &[0x01, 0x23, 0x45]);
        assert_eq!(enc(&s, b"01234"), Err(PackErrorKind::OddDigits));
        assert!(matches!(
            dec(&s, &[0x01, 0x2A, 0x45]),
            Err((0, UnpackErrorKind::BadContent { index: 3, .. }))
        ));
    }

    #[test]
    fn bcd_nibbles_with_pads() {
        let mut s = fs(LLVar, 19, N, Bcd, Bcd);
        s.len_count = LenCount::Nibbles;
        s.pad = Some(Pad::Left(b'0'));
        round_trip(&s, b"12345", &[0x05, 0x01, 0x23, 0x45]);
        round_trip(&s, b"1234", &[0x04, 0x12, 0x34]);
        assert_eq!(
            dec(&s, &[0x05, 0x11, 0x23, 0x45]).unwrap_err().1,
            UnpackErrorKind::BadPad
        );
        s.pad = Some(Pad::Right(b'F'));
        s.class = Z;
        round_trip(&s, b"123D5", &[0x05, 0x12, 0x3D, 0x5F]);
        s.pad = None;
        assert_eq!(enc(&s, b"123"), Err(PackErrorKind::OddDigits));
        let mut fixed = fs(Fixed, 3, N, Bcd, Ascii);
        fixed.len_count = LenCount::Nibbles;
        fixed.pad = Some(Pad::Right(b'0'));
        round_trip(&fixed, b"123", &[0x12, 0x30]);
    }

    #[test]
    fn xn_and_z_classes() {
        let s = fs(Fixed, 9, Xn, Ascii, Ascii);
        round_trip(&s, b"C00000150", b"C00000150");
        assert!(matches!(
            enc(&s, b"X00000150"),
            Err(PackErrorKind::BadContent { index: 0, .. })
        ));
        let s = fs(LLVar, 37, Z, Ascii, Ascii);
        round_trip(
            &s,
            b"4761739001010010=22122011143804400000",
            b"374761739001010010=22122011143804400000",
        );
        assert!(matches!(
            enc(&s, b"4761A"),
            Err(PackErrorKind::BadContent { index: 4, .. })
        ));
    }

    /// Every length type × length encoding × data encoding: round trip, one byte short, over max.
    #[test]
    fn matrix_of_length_types_and_encodings() {
        let data_cases: [(Encoding, ContentClass, &[u8]); 4] = [
            (Ascii, Ans, b"AB 12"),
            (Ebcdic, Ans, b"AB 12"),
            (Bcd, N, b"123456"),
            (Binary, B, &[0, 0xFF, 7]),
        ];
        for len_type in [Fixed, LLVar, LLLVar] {
            for len_enc in [Ascii, Ebcdic, Bcd, Binary] {
                for (data_enc, class, value) in data_cases {
                    let units = if data_enc == Bcd {
                        value.len() / 2
                    } else {
                        value.len()
                    };
                    let max = if len_type == Fixed { units } else { 40 };
                    let s = fs(len_type, max as u16, class, data_enc, len_enc);
                    let what = format!("{len_type:?} len {len_enc:?} data {data_enc:?}");
                    let wire = enc(&s, value).unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(wire.len(), s.header_len() + units, "{what}");
                    assert_eq!(dec(&s, &wire), Ok((value.to_vec(), wire.len())), "{what}");
                    let short = dec(&s, &wire[..wire.len() - 1]).unwrap_err();
                    assert!(
                        matches!(short.1, UnpackErrorKind::Truncated { .. }),
                        "{what}: {short:?}"
                    );
                    if len_type != Fixed {
                        let tight = fs(len_type, units as u16 - 1, class, data_enc, len_enc);
                        let over = dec(&tight, &wire).unwrap_err();
                        assert_eq!(
                            over,
                            (
                                0,
                                UnpackErrorKind::LengthOverMax {
                                    len: units,
                                    max: units - 1
                                }
                            ),
                            "{what}"
                        );
                        assert!(
                            matches!(enc(&tight, value), Err(PackErrorKind::TooLong { .. })),
                            "{what}"
                        );
                    } else {
                        let longer = [value, &value[..2]].concat();
                        assert!(
                            matches!(enc(&s, &longer), Err(PackErrorKind::WrongLength { .. })),
                            "{what}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn decode_respects_start_offset() {
        let s = fs(LLVar, 19, N, Ascii, Ascii);
        let mut v = Vec::new();
        assert_eq!(decode(&s, b"XX0212YY", 2, &mut v), Ok(6));
        assert_eq!(v, b"12");
        assert_eq!(decode(&s, b"XX", 5, &mut v).unwrap_err().0, 5);
    }
}
