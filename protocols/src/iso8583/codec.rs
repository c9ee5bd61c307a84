//! Whole messages on the wire: MTI, primary and secondary bitmaps, then the fields in order.
//!
//! The bitmap is the message's presence mask, so packing is one pass over the present fields and
//! unpacking one pass over the input. Unpacking checks every bitmap bit against the spec before it
//! reads a field, and the whole input must be consumed: trailing bytes are an error, as in
//! pyiso8583.

use bytes::{BufMut, BytesMut};

use super::ebcdic;
use super::error::{FieldRef, PackError, PackErrorKind, UnpackError, UnpackErrorKind};
use super::field;
use super::message::{bit, Message};
use super::mti::Mti;
use super::spec::{Encoding, Spec};

const SECONDARY_FIELDS: u128 = u64::MAX as u128;

impl Spec {
    /// Packs `msg` into a new buffer.
    pub fn pack(&self, msg: &Message) -> Result<Vec<u8>, PackError> {
        let mut buf = BytesMut::new();
        self.pack_into(msg, &mut buf)?;
        Ok(buf.to_vec())
    }

    /// Appends the packed `msg` to `buf`; on error `buf` is left as it was.
    pub fn pack_into(&self, msg: &Message, buf: &mut BytesMut) -> Result<(), PackError> {
        let start = buf.len();
        let result = self.pack_inner(msg, buf);
        if result.is_err() {
            buf.truncate(start);
        }
        result
    }

    fn pack_inner(&self, msg: &Message, buf: &mut BytesMut) -> Result<(), PackError> {
        buf.reserve(msg.encoded_len_hint());
        let mti = msg.mti();
        match self.mti_encoding() {
            Encoding::Ascii => buf.put_slice(mti.as_bytes()),
            Encoding::Ebcdic => buf.extend(mti.as_bytes().iter().map(|&d| d + 0xC0)),
            Encoding::Binary | Encoding::Bcd => {
                let d = mti.as_bytes().map(|c| c - b'0');
                buf.put_slice(&[(d[0] << 4) | d[1], (d[2] << 4) | d[3]]);
            }
        }
        let mut present = msg.presence();
        if present & SECONDARY_FIELDS != 0 {
            present |= bit(1);
        }
        let [primary, secondary] = [(present >> 64) as u64, present as u64];
        put_bitmap(buf, self.primary_bitmap_encoding(), primary);
        if present & bit(1) != 0 {
            put_bitmap(buf, self.secondary_bitmap_encoding(), secondary);
        }
        for (n, value) in msg.iter() {
            let at = FieldRef::Field(n);
            let spec = self.field(n).ok_or(PackError {
                at,
                kind: PackErrorKind::UndefinedField,
            })?;
            field::encode(spec, value, buf).map_err(|kind| PackError { at, kind })?;
        }
        Ok(())
    }

    /// Unpacks one whole message; every byte of `input` must belong to it.
    pub fn unpack(&self, input: &[u8]) -> Result<Message, UnpackError> {
        let mut pos = 0;
        let mti = self.read_mti(input, &mut pos)?;
        let primary_at = pos;
        let primary = read_bitmap(
            input,
            &mut pos,
            self.primary_bitmap_encoding(),
            FieldRef::PrimaryBitmap,
        )?;
        let mut present = u128::from(primary) << 64;
        let secondary_at = pos;
        if present & bit(1) != 0 {
            let secondary = read_bitmap(
                input,
                &mut pos,
                self.secondary_bitmap_encoding(),
                FieldRef::SecondaryBitmap,
            )?;
            present |= u128::from(secondary);
            if present & bit(65) != 0 {
                return Err(UnpackError {
                    at: FieldRef::SecondaryBitmap,
                    offset: secondary_at,
                    kind: UnpackErrorKind::TertiaryBitmap,
                });
            }
        }
        present &= !bit(1);
        // Every announced field must exist before any is read.
        let mut check = present;
        while check != 0 {
            let n = check.leading_zeros() as u8 + 1;
            check &= !bit(n);
            if self.field(n).is_none() {
                let (at, offset) = if n > 64 {
                    (FieldRef::SecondaryBitmap, secondary_at)
                } else {
                    (FieldRef::PrimaryBitmap, primary_at)
                };
                return Err(UnpackError {
                    at,
                    offset,
                    kind: UnpackErrorKind::UndefinedField(n),
                });
            }
        }
        let mut msg = Message::with_capacity(mti, input.len().saturating_sub(pos) + 16);
        while present != 0 {
            let n = present.leading_zeros() as u8 + 1;
            present &= !bit(n);
            let at = FieldRef::Field(n);
            let spec = self.field(n).ok_or(UnpackError {
                at,
                offset: pos,
                kind: UnpackErrorKind::UndefinedField(n),
            })?;
            let start = msg.buffer().len();
            pos = field::decode(spec, input, pos, msg.buffer())
                .map_err(|(offset, kind)| UnpackError { at, offset, kind })?;
            let len = msg.buffer().len() - start;
            msg.record(n, start, len);
        }
        if pos != input.len() {
            let at = msg
                .field_numbers()
                .last()
                .map_or(FieldRef::PrimaryBitmap, FieldRef::Field);
            let kind = UnpackErrorKind::TrailingBytes {
                count: input.len() - pos,
            };
            return Err(UnpackError {
                at,
                offset: pos,
                kind,
            });
        }
        Ok(msg)
    }

    fn read_mti(&self, input: &[u8], pos: &mut usize) -> Result<Mti, UnpackError> {
        let err = |kind| UnpackError {
            at: FieldRef::Mti,
            offset: 0,
            kind,
        };
        let width = match self.mti_encoding() {
            Encoding::Binary | Encoding::Bcd => 2,
            _ => 4,
        };
        let raw = input.get(..width).ok_or(err(UnpackErrorKind::Truncated {
            needed: width,
            remaining: input.len(),
        }))?;
        let mut digits = [0u8; 4];
        match self.mti_encoding() {
            Encoding::Binary | Encoding::Bcd => {
                for (i, b) in raw.iter().enumerate() {
                    let (hi, lo) = (b >> 4, b & 0x0F);
                    digits[2 * i] = if hi < 10 { b'0' + hi } else { b'X' };
                    digits[2 * i + 1] = if lo < 10 { b'0' + lo } else { b'X' };
                }
            }
            enc => {
                for (d, &b) in digits.iter_mut().zip(raw) {
                    *d = if enc == Encoding::Ebcdic {
                        ebcdic::decode(b).unwrap_or(b'X')
                    } else {
                        b
                    };
                }
            }
        }
        *pos = width;
        Mti::from_digits(digits).ok_or(err(UnpackErrorKind::BadMti))
    }
}

fn put_bitmap(buf: &mut BytesMut, enc: Encoding, bits: u64) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    match enc {
        Encoding::Binary | Encoding::Bcd => buf.put_u64(bits),
        Encoding::Ascii | Encoding::Ebcdic => {
            for i in (0..16).rev() {
                let c = HEX[((bits >> (i * 4)) & 0xF) as usize];
                buf.put_u8(if enc == Encoding::Ebcdic {
                    ebcdic::encode(c).unwrap_or(0)
                } else {
                    c
                });
            }
        }
    }
}

fn read_bitmap(
    input: &[u8],
    pos: &mut usize,
    enc: Encoding,
    at: FieldRef,
) -> Result<u64, UnpackError> {
    let offset = *pos;
    let err = |kind| UnpackError { at, offset, kind };
    let width = match enc {
        Encoding::Binary | Encoding::Bcd => 8,
        _ => 16,
    };
    let remaining = input.len().saturating_sub(offset);
    let raw = input
        .get(offset..offset + width)
        .ok_or(err(UnpackErrorKind::Truncated {
            needed: width,
            remaining,
        }))?;
    let bits = match enc {
        Encoding::Binary | Encoding::Bcd => {
            let mut b = [0u8; 8];
            b.copy_from_slice(raw);
            u64::from_be_bytes(b)
        }
        enc => {
            let mut bits = 0u64;
            for &b in raw {
                let c = if enc == Encoding::Ebcdic {
                    ebcdic::decode(b).unwrap_or(b'X')
                } else {
                    b
                };
                // pyiso8583 uses bytes.fromhex, which accepts lowercase too.
                let v = (c as char)
                    .to_digit(16)
                    .ok_or(err(UnpackErrorKind::BadBitmap))?;
                bits = (bits << 4) | u64::from(v);
            }
            bits
        }
    };
    *pos = offset + width;
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ascii() -> &'static Spec {
        Spec::iso87_ascii()
    }

    #[test]
    fn pyiso8583_docstring_example_decodes() {
        let m = ascii()
            .unpack(b"02004010100000000000161234567890123456123456111")
            .unwrap();
        assert_eq!(m.mti().as_str(), "0200");
        assert_eq!(m.get_str(2), Some("1234567890123456"));
        assert_eq!(m.get_str(12), Some("123456"));
        assert_eq!(m.get_str(20), Some("111"));
        assert_eq!(
            ascii().pack(&m).unwrap(),
            b"02004010100000000000161234567890123456123456111"
        );
    }

    #[test]
    fn pyiso8583_encode_example() {
        let mut m = Message::new("0210").unwrap();
        m.set_str(3, "111111").unwrap().set_str(39, "05").unwrap();
        assert_eq!(ascii().pack(&m).unwrap(), b"0210200000000200000011111105");
    }

    #[test]
    fn secondary_bitmap_is_added_for_fields_65_to_128() {
        let mut m = Message::new("0800").unwrap();
        m.set_str(70, "301").unwrap();
        let packed = ascii().pack(&m).unwrap();
        assert_eq!(packed, b"080080000000000000000400000000000000301");
        assert_eq!(ascii().unpack(&packed).unwrap(), m);
        let bin = Spec::iso87_binary().pack(&m).unwrap();
        assert_eq!(
            bin,
            [&b"0800\x80"[..], &[0; 7], &[4], &[0; 7], b"301"].concat()
        );
        assert_eq!(Spec::iso87_binary().unpack(&bin).unwrap(), m);
    }

    #[test]
    fn unpack_errors_name_field_and_offset() {
        let s = ascii();
        let e = |input: &[u8]| s.unpack(input).unwrap_err();
        assert_eq!(
            e(b"02").kind,
            UnpackErrorKind::Truncated {
                needed: 4,
                remaining: 2
            }
        );
        assert_eq!(e(b"02X0").kind, UnpackErrorKind::BadMti);
        assert_eq!(e(b"0200ZZ").at, FieldRef::PrimaryBitmap);
        assert_eq!(e(b"0200G000000000000000").kind, UnpackErrorKind::BadBitmap);
        let t = e(b"02002000000000000000");
        assert_eq!((t.at, t.offset), (FieldRef::Field(3), 20));
        let t = e(b"0200200000000000000012345");
        assert_eq!(
            (t.at, t.offset, t.kind),
            (
                FieldRef::Field(3),
                20,
                UnpackErrorKind::Truncated {
                    needed: 6,
                    remaining: 5
                }
            )
        );
        let t = e(b"02002000000000000000123456X");
        assert_eq!(
            (t.at, t.offset, t.kind),
            (
                FieldRef::Field(3),
                26,
                UnpackErrorKind::TrailingBytes { count: 1 }
            )
        );
        let t = e(b"020080000000000000008000000000000000");
        assert_eq!(
            (t.at, t.kind),
            (FieldRef::SecondaryBitmap, UnpackErrorKind::TertiaryBitmap)
        );
        assert!(e(b"").to_string().contains("MTI"));
    }

    #[test]
    fn unpack_rejects_bits_the_spec_does_not_define() {
        let spec = Spec::from_toml_str(
            "name = \"tiny\"\nmti_enc = \"ascii\"\nprimary_bitmap_enc = \"ascii\"\n[fields]\n\
             3 = { len_type = \"fixed\", max_len = 6, class = \"n\", data_enc = \"ascii\" }\n",
        )
        .unwrap();
        let t = spec.unpack(b"02006000000000000000").unwrap_err();
        assert_eq!(
            (t.at, t.offset, t.kind),
            (
                FieldRef::PrimaryBitmap,
                4,
                UnpackErrorKind::UndefinedField(2)
            )
        );
        let mut m = Message::new("0200").unwrap();
        m.set_str(4, "000000000100").unwrap();
        assert_eq!(
            spec.pack(&m).unwrap_err(),
            PackError {
                at: FieldRef::Field(4),
                kind: PackErrorKind::UndefinedField
            }
        );
    }

    #[test]
    fn pack_into_leaves_buffer_untouched_on_error() {
        let mut m = Message::new("0200").unwrap();
        m.set_str(3, "12345X").unwrap();
        let mut buf = BytesMut::from(&b"head"[..]);
        let err = ascii().pack_into(&m, &mut buf).unwrap_err();
        assert_eq!(err.at, FieldRef::Field(3));
        assert!(err.to_string().contains("field 3"), "{err}");
        assert_eq!(&buf[..], b"head");
    }

    #[test]
    fn bcd_mti_and_ebcdic_bitmap() {
        let spec = Spec::from_toml_str(
            "name = \"ibm\"\nmti_enc = \"b\"\nprimary_bitmap_enc = \"cp500\"\n[fields]\n\
             3 = { len_type = \"fixed\", max_len = 3, class = \"n\", data_enc = \"b\" }\n",
        )
        .unwrap();
        let mut m = Message::new("0200").unwrap();
        m.set_str(3, "012345").unwrap();
        let packed = spec.pack(&m).unwrap();
        let mut expected = vec![0x02, 0x00, 0xF2];
        expected.extend([0xF0; 15]);
        expected.extend([0x01, 0x23, 0x45]);
        assert_eq!(packed, expected);
        assert_eq!(spec.unpack(&packed).unwrap(), m);
        assert_eq!(
            spec.unpack(&[0x0A, 0x00]).unwrap_err().kind,
            UnpackErrorKind::BadMti
        );
    }
}
