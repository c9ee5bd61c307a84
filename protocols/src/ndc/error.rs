//! Why an NDC message could not be parsed or built.
//!
//! Every error names the message class, the field (by name and by its FS position) and a reason an
//! operator can act on. Errors never echo field contents, so a card number or PIN block cannot leak
//! into a log line through an error message.

use thiserror::Error;

/// What was wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq, Error, serde::Serialize)]
pub enum Reason {
    #[error("missing (message truncated)")]
    Missing,
    #[error("bad length: expected {expected} characters, got {got}")]
    BadLength { expected: usize, got: usize },
    #[error("too short: expected at least {min} characters, got {got}")]
    TooShort { min: usize, got: usize },
    #[error("expected decimal digits")]
    NonDigit,
    #[error("expected hexadecimal digits")]
    NonHex,
    #[error("unknown descriptor or code {0:?}")]
    Unknown(char),
    #[error("not enabled by the dialect")]
    NotInDialect,
    #[error("unexpected extra field")]
    Unexpected,
    #[error("contains a separator (FS/GS) that would break the message")]
    ContainsSeparator,
    #[error("character outside the one-byte range")]
    NotSingleByte,
    #[error("value {value} does not fit in {width} digits")]
    TooLarge { value: u64, width: usize },
    #[error("{0}")]
    Invalid(&'static str),
}

/// An NDC message that could not be parsed or encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NdcError {
    #[error("empty NDC message")]
    Empty,
    #[error("unknown NDC message class {0:?}")]
    UnknownClass(String),
    #[error("NDC message {class}: field {field} (FS position {position}): {reason}")]
    Field {
        class: &'static str,
        field: &'static str,
        position: usize,
        reason: Reason,
    },
    #[error("NDC message {class}: cannot encode {field}: {reason}")]
    Encode {
        class: &'static str,
        field: &'static str,
        reason: Reason,
    },
}

impl NdcError {
    /// The reason, for errors about one field.
    pub fn reason(&self) -> Option<&Reason> {
        match self {
            NdcError::Field { reason, .. } | NdcError::Encode { reason, .. } => Some(reason),
            _ => None,
        }
    }
}
