//! Response codes (field 39) of the agent↔switch dialect (ARCHITECTURE.md).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ResponseCode {
    Approved,
    DoNotHonour,
    InvalidTransaction,
    InvalidAmount,
    InvalidAccount,
    FormatError,
    InsufficientFunds,
    WrongPin,
    SecurityViolation,
    OverLimit,
    PinTriesExceeded,
    IssuerUnavailable,
    Duplicate,
    SystemError,
}

impl ResponseCode {
    pub const fn code(self) -> &'static str {
        match self {
            Self::Approved => "00",
            Self::DoNotHonour => "05",
            Self::InvalidTransaction => "12",
            Self::InvalidAmount => "13",
            Self::InvalidAccount => "14",
            Self::FormatError => "30",
            Self::InsufficientFunds => "51",
            Self::WrongPin => "55",
            Self::SecurityViolation => "58",
            Self::OverLimit => "61",
            Self::PinTriesExceeded => "75",
            Self::IssuerUnavailable => "91",
            Self::Duplicate => "94",
            Self::SystemError => "96",
        }
    }
    pub fn parse(code: &str) -> Option<Self> {
        const ALL: [ResponseCode; 14] = [
            ResponseCode::Approved,
            ResponseCode::DoNotHonour,
            ResponseCode::InvalidTransaction,
            ResponseCode::InvalidAmount,
            ResponseCode::InvalidAccount,
            ResponseCode::FormatError,
            ResponseCode::InsufficientFunds,
            ResponseCode::WrongPin,
            ResponseCode::SecurityViolation,
            ResponseCode::OverLimit,
            ResponseCode::PinTriesExceeded,
            ResponseCode::IssuerUnavailable,
            ResponseCode::Duplicate,
            ResponseCode::SystemError,
        ];
        ALL.into_iter().find(|c| c.code() == code)
    }
    pub fn is_approved(self) -> bool {
        self == Self::Approved
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for c in [
            "00", "05", "12", "13", "14", "30", "51", "55", "58", "61", "75", "91", "94", "96",
        ] {
            assert_eq!(ResponseCode::parse(c).unwrap().code(), c);
        }
        assert_eq!(ResponseCode::parse("99"), None);
    }
}
