//! The field layout of an ISO 8583 dialect, as data.
//!
//! Every host speaks its own dialect of ISO 8583: which fields are fixed or variable, how long they
//! may be, whether lengths and values travel as ASCII, EBCDIC, BCD or raw bytes. A [`Spec`] holds
//! that layout, one [`FieldSpec`] per field, so supporting a new bank host means writing a TOML
//! file, not code. The vocabulary is pyiso8583's (`data_enc`, `len_enc`, `len_type`, `max_len`,
//! `len_count`, `left_pad`/`right_pad`) so its specs transcribe directly; the content `class`
//! (n, an, ans, z, x+n, b) comes from ISO 8583 itself, pyiso8583 has none.
//!
//! The two built-in specs are TOML files generated from pyiso8583 4.0.1's own dictionaries
//! (`specs/*.toml`, see `tests/vectors/iso8583/make_specs.py`) and parsed once, through the same
//! loader a bank dialect goes through.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use serde::Deserialize;

use super::error::SpecError;

/// How a field's length is known: fixed by the spec, or carried in a header of 1 to 4 digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LenType {
    Fixed,
    LVar,
    LLVar,
    LLLVar,
    LLLLVar,
}

impl LenType {
    /// Decimal digits of the length header (0 for fixed fields).
    pub fn digits(self) -> u32 {
        match self {
            LenType::Fixed => 0,
            LenType::LVar => 1,
            LenType::LLVar => 2,
            LenType::LLLVar => 3,
            LenType::LLLLVar => 4,
        }
    }
}

/// How bytes on the wire represent a value or a length header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// ASCII text (pyiso8583 `ascii`).
    Ascii,
    /// EBCDIC text, code page 500 (pyiso8583 `cp500`).
    Ebcdic,
    /// Raw bytes (pyiso8583 `b`): shown as uppercase hex in JSON. As a length header, an unsigned
    /// big-endian integer.
    Binary,
    /// Binary-coded decimal, two digits per byte (pyiso8583 `b` data of class n/z, `bcd` lengths).
    Bcd,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Ascii => "ascii",
            Encoding::Ebcdic => "cp500",
            Encoding::Binary => "b",
            Encoding::Bcd => "bcd",
        }
    }
}

/// What characters a value may hold (ISO 8583 attribute notation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentClass {
    /// Digits only.
    N,
    /// Letters and digits; space is accepted too because hosts space-pad `an` fields (RRN, auth id).
    An,
    /// Printable ASCII, 0x20..=0x7E.
    Ans,
    /// Track 2/3 character set: `0-9 : ; < = > ?` and `D` as separator.
    Z,
    /// `C` (credit) or `D` (debit) followed by digits (ISO `x+n`, fee amounts).
    Xn,
    /// Any byte.
    B,
}

impl ContentClass {
    /// Whether `byte`, at `index` in the value, belongs to the class.
    #[inline]
    pub fn allows(self, index: usize, byte: u8) -> bool {
        match self {
            ContentClass::N => byte.is_ascii_digit(),
            ContentClass::An => byte.is_ascii_alphanumeric() || byte == b' ',
            ContentClass::Ans => (0x20..=0x7E).contains(&byte),
            ContentClass::Z => (0x30..=0x3F).contains(&byte) || byte == b'D',
            ContentClass::Xn => {
                if index == 0 {
                    byte == b'C' || byte == b'D'
                } else {
                    byte.is_ascii_digit()
                }
            }
            ContentClass::B => true,
        }
    }
}

impl fmt::Display for ContentClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContentClass::N => "n",
            ContentClass::An => "an",
            ContentClass::Ans => "ans",
            ContentClass::Z => "z",
            ContentClass::Xn => "x+n",
            ContentClass::B => "b",
        })
    }
}

/// Whether `max_len` and length headers count bytes or nibbles (BCD digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LenCount {
    Bytes,
    Nibbles,
}

/// The nibble that fills an odd-length BCD value to whole bytes, and on which side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pad {
    /// Pad nibble (as an uppercase hex character) before the value.
    Left(u8),
    /// Pad nibble (as an uppercase hex character) after the value.
    Right(u8),
}

/// The layout of one data element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    pub len_type: LenType,
    /// The length of a fixed field, the maximum of a variable one (in `len_count` units).
    pub max_len: u16,
    pub class: ContentClass,
    pub data_enc: Encoding,
    pub len_enc: Encoding,
    pub len_count: LenCount,
    pub pad: Option<Pad>,
}

impl FieldSpec {
    /// Bytes taken by the length header.
    pub fn header_len(&self) -> usize {
        let digits = self.len_type.digits() as usize;
        match self.len_enc {
            Encoding::Ascii | Encoding::Ebcdic => digits,
            Encoding::Binary | Encoding::Bcd => match digits {
                0 => 0,
                1 | 2 => 1,
                _ => 2,
            },
        }
    }

    /// The largest length the header can carry.
    fn header_capacity(&self) -> usize {
        match (self.len_enc, self.header_len()) {
            (_, 0) => usize::MAX,
            (Encoding::Ascii | Encoding::Ebcdic, d) => 10usize.pow(d as u32) - 1,
            (Encoding::Bcd, 1) => 99,
            (Encoding::Bcd, _) => 9_999,
            (Encoding::Binary, 1) => 255,
            (Encoding::Binary, _) => 65_535,
        }
    }
}

/// An ISO 8583 dialect: MTI and bitmap encodings and the layout of fields 2-128.
///
/// Field 1 is the secondary bitmap and bit 65 the tertiary-bitmap indicator (as in pyiso8583);
/// neither is ever a data field.
#[derive(Clone)]
pub struct Spec {
    name: String,
    mti_enc: Encoding,
    primary_bitmap_enc: Encoding,
    secondary_bitmap_enc: Encoding,
    fields: [Option<FieldSpec>; 129],
    descriptions: Vec<String>,
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spec")
            .field("name", &self.name)
            .field(
                "fields",
                &self.fields.iter().filter(|s| s.is_some()).count(),
            )
            .finish_non_exhaustive()
    }
}

static ISO87_ASCII: OnceLock<Spec> = OnceLock::new();
static ISO87_BINARY: OnceLock<Spec> = OnceLock::new();

impl Spec {
    /// pyiso8583 4.0.1 `default_ascii`: ASCII MTI, 16 hex-character bitmaps, every field ASCII.
    /// The dialect between the agent and the switch.
    pub fn iso87_ascii() -> &'static Spec {
        ISO87_ASCII.get_or_init(|| {
            Spec::from_toml_str(include_str!("specs/iso87_ascii.toml"))
                .expect("built-in spec iso87-ascii is valid (tested)")
        })
    }

    /// pyiso8583 4.0.1 `default`: ASCII MTI, 8-byte binary bitmaps, binary fields 52, 55, 64, 96, 128.
    pub fn iso87_binary() -> &'static Spec {
        ISO87_BINARY.get_or_init(|| {
            Spec::from_toml_str(include_str!("specs/iso87_binary.toml"))
                .expect("built-in spec iso87-binary is valid (tested)")
        })
    }

    /// A built-in spec by name: `iso87-ascii` or `iso87-binary`.
    pub fn builtin(name: &str) -> Option<&'static Spec> {
        match name {
            "iso87-ascii" => Some(Self::iso87_ascii()),
            "iso87-binary" => Some(Self::iso87_binary()),
            _ => None,
        }
    }

    /// Reads a spec from a TOML file.
    pub fn load(path: impl AsRef<Path>) -> Result<Spec, SpecError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| SpecError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_toml_str(&text)
    }

    /// Parses and checks a spec. See `specs/iso87_ascii.toml` for the format.
    pub fn from_toml_str(text: &str) -> Result<Spec, SpecError> {
        let raw: RawSpec = toml::from_str(text).map_err(|e| SpecError::Toml(e.to_string()))?;
        raw.into_spec()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn mti_encoding(&self) -> Encoding {
        self.mti_enc
    }

    pub fn primary_bitmap_encoding(&self) -> Encoding {
        self.primary_bitmap_enc
    }

    pub fn secondary_bitmap_encoding(&self) -> Encoding {
        self.secondary_bitmap_enc
    }

    /// The layout of field `n`, if the spec defines it.
    #[inline]
    pub fn field(&self, n: u8) -> Option<&FieldSpec> {
        self.fields.get(usize::from(n)).and_then(Option::as_ref)
    }

    /// The field's description from the spec (`desc`), or "" if none.
    pub fn description(&self, n: u8) -> &str {
        self.descriptions
            .get(usize::from(n))
            .map_or("", String::as_str)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: String,
    mti_enc: String,
    primary_bitmap_enc: String,
    secondary_bitmap_enc: Option<String>,
    fields: BTreeMap<String, RawField>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    len_type: String,
    max_len: i64,
    class: String,
    data_enc: String,
    len_enc: Option<String>,
    len_count: Option<String>,
    left_pad: Option<String>,
    right_pad: Option<String>,
    desc: Option<String>,
}

fn parse_encoding(s: &str) -> Option<Encoding> {
    match s {
        "ascii" => Some(Encoding::Ascii),
        "cp500" | "ebcdic" => Some(Encoding::Ebcdic),
        "b" | "binary" => Some(Encoding::Binary),
        "bcd" => Some(Encoding::Bcd),
        _ => None,
    }
}

impl RawSpec {
    fn into_spec(self) -> Result<Spec, SpecError> {
        let key_err = |key: &'static str, reason: String| SpecError::Key { key, reason };
        let mti_enc = match parse_encoding(&self.mti_enc) {
            Some(Encoding::Bcd) => Encoding::Binary,
            Some(e) => e,
            None => {
                return Err(key_err(
                    "mti_enc",
                    format!("unknown encoding {:?}", self.mti_enc),
                ))
            }
        };
        let bitmap = |key: &'static str, s: &str| match parse_encoding(s) {
            Some(e @ (Encoding::Ascii | Encoding::Ebcdic | Encoding::Binary)) => Ok(e),
            _ => Err(key_err(
                key,
                format!("{s:?}: a bitmap is \"b\", \"ascii\" or \"cp500\""),
            )),
        };
        let primary_bitmap_enc = bitmap("primary_bitmap_enc", &self.primary_bitmap_enc)?;
        let secondary_bitmap_enc = match &self.secondary_bitmap_enc {
            Some(s) => bitmap("secondary_bitmap_enc", s)?,
            None => primary_bitmap_enc,
        };
        if self.name.trim().is_empty() {
            return Err(key_err("name", "must not be empty".into()));
        }
        let mut fields = [None; 129];
        let mut descriptions = vec![String::new(); 129];
        for (key, raw) in self.fields {
            let err = |reason: String| SpecError::Field {
                field: key.clone(),
                reason,
            };
            let n: u8 = match key.parse() {
                Ok(n @ 2..=128) if n != 65 => n,
                Ok(65) => {
                    return Err(err(
                        "bit 65 is the tertiary bitmap indicator, not a data field".into(),
                    ))
                }
                _ => return Err(err("field numbers are 2 to 128".into())),
            };
            let desc = raw.desc.clone().unwrap_or_default();
            fields[usize::from(n)] = Some(raw.into_field_spec().map_err(err)?);
            descriptions[usize::from(n)] = desc;
        }
        Ok(Spec {
            name: self.name,
            mti_enc,
            primary_bitmap_enc,
            secondary_bitmap_enc,
            fields,
            descriptions,
        })
    }
}

impl RawField {
    fn into_field_spec(self) -> Result<FieldSpec, String> {
        let len_type = match self.len_type.as_str() {
            "fixed" => LenType::Fixed,
            "lvar" => LenType::LVar,
            "llvar" => LenType::LLVar,
            "lllvar" => LenType::LLLVar,
            "llllvar" => LenType::LLLLVar,
            other => {
                return Err(format!(
                    "len_type {other:?}: expected \"fixed\", \"lvar\", \"llvar\", \"lllvar\" or \"llllvar\""
                ))
            }
        };
        let max_len = match u16::try_from(self.max_len) {
            Ok(m @ 1..=9_999) => m,
            _ => {
                return Err(format!(
                    "max_len {} must be between 1 and 9999",
                    self.max_len
                ))
            }
        };
        let class = match self.class.as_str() {
            "n" => ContentClass::N,
            "an" => ContentClass::An,
            "ans" => ContentClass::Ans,
            "z" => ContentClass::Z,
            "xn" | "x+n" => ContentClass::Xn,
            "b" => ContentClass::B,
            other => return Err(format!("class {other:?}: expected n, an, ans, z, xn or b")),
        };
        let data_enc = match (parse_encoding(&self.data_enc), class) {
            (None, _) => {
                return Err(format!(
                    "data_enc {:?}: expected ascii, cp500, b or bcd",
                    self.data_enc
                ))
            }
            // pyiso8583 spells BCD data "b": digits packed two per byte.
            (Some(Encoding::Binary), ContentClass::N | ContentClass::Z) => Encoding::Bcd,
            (Some(Encoding::Binary), ContentClass::B) => Encoding::Binary,
            (Some(Encoding::Binary), c) => {
                return Err(format!("data_enc \"b\" cannot carry class {c}"))
            }
            (Some(Encoding::Bcd), ContentClass::N | ContentClass::Z) => Encoding::Bcd,
            (Some(Encoding::Bcd), c) => {
                return Err(format!("data_enc \"bcd\" cannot carry class {c}"))
            }
            (Some(_), ContentClass::B) => return Err("class b needs data_enc \"b\"".into()),
            (Some(e), _) => e,
        };
        let len_enc = match self.len_enc.as_deref() {
            None => Encoding::Ascii,
            Some(s) => parse_encoding(s)
                .ok_or_else(|| format!("len_enc {s:?}: expected ascii, cp500, b or bcd"))?,
        };
        let len_count = match self.len_count.as_deref() {
            None | Some("bytes") => LenCount::Bytes,
            Some("nibbles") if data_enc == Encoding::Bcd => LenCount::Nibbles,
            Some("nibbles") => return Err("len_count \"nibbles\" needs BCD data".into()),
            Some(other) => {
                return Err(format!(
                    "len_count {other:?}: expected \"bytes\" or \"nibbles\""
                ))
            }
        };
        let pad = match (self.left_pad.as_deref(), self.right_pad.as_deref()) {
            (None, None) => None,
            (Some(_), Some(_)) => return Err("give left_pad or right_pad, not both".into()),
            (Some(p), None) => Some(Pad::Left(pad_char(p)?)),
            (None, Some(p)) => Some(Pad::Right(pad_char(p)?)),
        };
        if pad.is_some() && len_count != LenCount::Nibbles {
            return Err("left_pad/right_pad apply only to len_count = \"nibbles\"".into());
        }
        let spec = FieldSpec {
            len_type,
            max_len,
            class,
            data_enc,
            len_enc,
            len_count,
            pad,
        };
        if usize::from(max_len) > spec.header_capacity() {
            return Err(format!(
                "max_len {max_len} does not fit a {}-byte {} length header",
                spec.header_len(),
                len_enc.name()
            ));
        }
        Ok(spec)
    }
}

fn pad_char(p: &str) -> Result<u8, String> {
    match p.as_bytes() {
        [c @ (b'0'..=b'9' | b'A'..=b'F')] => Ok(*c),
        _ => Err(format!("pad {p:?} must be one hex digit 0-9 or A-F")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_specs_parse_and_define_2_to_128_except_65() {
        for spec in [Spec::iso87_ascii(), Spec::iso87_binary()] {
            for n in 2..=128u8 {
                assert_eq!(
                    spec.field(n).is_some(),
                    n != 65,
                    "{} field {n}",
                    spec.name()
                );
            }
            assert!(
                spec.field(1).is_none() && spec.field(129).is_none() && spec.field(0).is_none()
            );
        }
        assert_eq!(
            Spec::builtin("iso87-binary").map(Spec::name),
            Some("iso87-binary")
        );
        assert!(Spec::builtin("iso93").is_none());
    }

    #[test]
    fn binary_spec_has_binary_pin_icc_and_macs() {
        let b = Spec::iso87_binary();
        for n in [52u8, 55, 64, 96, 128] {
            assert_eq!(b.field(n).unwrap().data_enc, Encoding::Binary, "field {n}");
        }
        assert_eq!(b.primary_bitmap_encoding(), Encoding::Binary);
        let a = Spec::iso87_ascii();
        assert_eq!(a.field(52).unwrap().max_len, 16);
        assert_eq!(a.primary_bitmap_encoding(), Encoding::Ascii);
    }

    #[test]
    fn header_lengths_follow_pyiso8583_table() {
        let f = |len_type, len_enc| FieldSpec {
            len_type,
            max_len: 1,
            class: ContentClass::N,
            data_enc: Encoding::Ascii,
            len_enc,
            len_count: LenCount::Bytes,
            pad: None,
        };
        assert_eq!(f(LenType::LLVar, Encoding::Ascii).header_len(), 2);
        assert_eq!(f(LenType::LLLVar, Encoding::Ebcdic).header_len(), 3);
        assert_eq!(f(LenType::LLVar, Encoding::Bcd).header_len(), 1);
        assert_eq!(f(LenType::LLLVar, Encoding::Bcd).header_len(), 2);
        assert_eq!(f(LenType::LVar, Encoding::Binary).header_len(), 1);
        assert_eq!(f(LenType::LLLLVar, Encoding::Binary).header_len(), 2);
        assert_eq!(f(LenType::Fixed, Encoding::Binary).header_len(), 0);
    }

    #[test]
    fn pyiso_b_data_of_class_n_is_bcd() {
        let s = Spec::from_toml_str(
            "name = \"x\"\nmti_enc = \"b\"\nprimary_bitmap_enc = \"b\"\n[fields]\n\
             3 = { len_type = \"fixed\", max_len = 3, class = \"n\", data_enc = \"b\" }\n",
        )
        .unwrap();
        assert_eq!(s.field(3).unwrap().data_enc, Encoding::Bcd);
        assert_eq!(s.mti_encoding(), Encoding::Binary);
    }
}
