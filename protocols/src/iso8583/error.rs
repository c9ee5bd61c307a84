//! Every way an ISO 8583 operation can fail, as values.
//!
//! Each error names the part of the message it is about ([`FieldRef`]) and, when unpacking, the
//! byte offset where the problem starts, so an operator can find it in a hex dump. Nothing in the
//! codec panics on input: every failure ends up as one of these types.

use std::fmt;

use thiserror::Error;

use crate::types::ValueError;

use super::spec::ContentClass;

/// Which part of a message an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldRef {
    Mti,
    PrimaryBitmap,
    SecondaryBitmap,
    /// A data element, 2..=128.
    Field(u8),
}

impl fmt::Display for FieldRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldRef::Mti => f.write_str("MTI"),
            FieldRef::PrimaryBitmap => f.write_str("primary bitmap"),
            FieldRef::SecondaryBitmap => f.write_str("secondary bitmap"),
            FieldRef::Field(n) => write!(f, "field {n}"),
        }
    }
}

/// A message could not be packed: the message breaks the spec.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("cannot pack {at}: {kind}")]
pub struct PackError {
    pub at: FieldRef,
    pub kind: PackErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PackErrorKind {
    #[error("the MTI must be 4 digits")]
    BadMti,
    #[error("the spec does not define this field")]
    UndefinedField,
    #[error("value is {len} {unit}, the field is fixed at {expected}")]
    WrongLength {
        len: usize,
        expected: usize,
        unit: &'static str,
    },
    #[error("value is {len} {unit}, longer than the maximum {max}")]
    TooLong {
        len: usize,
        max: usize,
        unit: &'static str,
    },
    #[error("byte {index} ({byte:#04x}) is not allowed in a field of class {class}")]
    BadContent {
        index: usize,
        byte: u8,
        class: ContentClass,
    },
    #[error("BCD value has an odd number of digits and the spec gives no pad")]
    OddDigits,
}

/// Bytes could not be unpacked into a message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("cannot unpack {at} at byte {offset}: {kind}")]
pub struct UnpackError {
    pub at: FieldRef,
    /// Offset in the input where the offending part starts.
    pub offset: usize,
    pub kind: UnpackErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UnpackErrorKind {
    #[error("truncated: needs {needed} bytes, {remaining} remain")]
    Truncated { needed: usize, remaining: usize },
    #[error("the MTI is not 4 digits")]
    BadMti,
    #[error("the bitmap is not 16 hexadecimal characters")]
    BadBitmap,
    #[error("bit 65 (tertiary bitmap) is set; fields 129-192 are not supported")]
    TertiaryBitmap,
    #[error("the bitmap announces field {0}, which the spec does not define")]
    UndefinedField(u8),
    #[error("the length header is not a decimal number")]
    BadLengthHeader,
    #[error("the length header says {len}, more than the maximum {max}")]
    LengthOverMax { len: usize, max: usize },
    #[error("byte {index} of the value is not valid {encoding}")]
    BadEncoding {
        index: usize,
        encoding: &'static str,
    },
    #[error("byte {index} ({byte:#04x}) of the value is not allowed in a field of class {class}")]
    BadContent {
        index: usize,
        byte: u8,
        class: ContentClass,
    },
    #[error("odd-length BCD value does not carry the expected pad nibble")]
    BadPad,
    #[error("{count} bytes left over after the last field")]
    TrailingBytes { count: usize },
}

/// A field value cannot be read or written as the typed accessor expects.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FieldError {
    #[error("field {0} cannot be set: only 2-64 and 66-128 are data fields")]
    NotSettable(u8),
    #[error("the MTI must be 4 digits, got {0:?}")]
    BadMti(String),
    #[error("field {field}: {source}")]
    Value {
        field: u8,
        #[source]
        source: ValueError,
    },
    #[error("field {field} is malformed: {reason}")]
    Malformed { field: u8, reason: &'static str },
}

/// A spec (TOML) is invalid. Names the field and the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpecError {
    #[error("cannot read spec file {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("spec is not valid TOML for a spec: {0}")]
    Toml(String),
    #[error("spec field {field:?}: {reason}")]
    Field { field: String, reason: String },
    #[error("spec key {key}: {reason}")]
    Key { key: &'static str, reason: String },
}

/// A JSON dictionary (pyiso8583 `decode` layout) does not describe a message for this spec.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JsonError {
    #[error("key \"t\" (the MTI) is missing")]
    MissingMti,
    #[error("unknown key {0:?}: expected \"t\", \"p\", \"1\" or a field number 2-128")]
    UnknownKey(String),
    #[error("key {0:?}: the spec does not define this field")]
    UndefinedField(String),
    #[error("key {0:?}: the value must be a string")]
    NotAString(String),
    #[error("key {0:?}: binary field must be hexadecimal with an even number of digits")]
    BadHex(String),
    #[error(transparent)]
    Field(#[from] FieldError),
}
