//! The codes of the dialect: what a request is for (field 3's transaction type), which network
//! management function an 0800 asks for (field 70), and how the switch answered (field 39).

use std::fmt;

use crate::iso8583::{Mti, ProcessingCode};

/// The transaction type of a card request (the first two digits of field 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TransactionType {
    /// `01`: cash out of the wallet (a hold, then a capture of what was dispensed).
    Withdrawal,
    /// `21`: cash into the wallet (credited at once).
    Deposit,
    /// `31`: the wallet's balance (field 54 in the answer).
    BalanceInquiry,
}

impl TransactionType {
    pub const ALL: [TransactionType; 3] = [
        TransactionType::Withdrawal,
        TransactionType::Deposit,
        TransactionType::BalanceInquiry,
    ];

    /// The two digits of field 3 that name it.
    pub const fn code(self) -> u8 {
        match self {
            Self::Withdrawal => 1,
            Self::Deposit => 21,
            Self::BalanceInquiry => 31,
        }
    }

    /// The processing code the agent sends: from the default account (10) for money out and
    /// inquiries, to it (10) for deposits.
    pub const fn processing_code(self) -> ProcessingCode {
        let (from_account, to_account) = match self {
            Self::Withdrawal | Self::BalanceInquiry => (10, 0),
            Self::Deposit => (0, 10),
        };
        ProcessingCode {
            transaction_type: self.code(),
            from_account,
            to_account,
        }
    }

    /// The MTI of the request that carries it (how an advice names its original): 0100 for a
    /// withdrawal or an inquiry, 0200 for a deposit.
    pub const fn request_mti(self) -> Mti {
        Mti::from_known_digits(match self {
            Self::Withdrawal | Self::BalanceInquiry => *b"0100",
            Self::Deposit => *b"0200",
        })
    }

    /// The type named by a processing code (accounts are not read: the wallet has one).
    pub fn from_code(transaction_type: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == transaction_type)
    }
}

impl fmt::Display for TransactionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Withdrawal => "withdrawal",
            Self::Deposit => "deposit",
            Self::BalanceInquiry => "balance inquiry",
        })
    }
}

/// Field 70 of an 0800.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetworkCode {
    /// `001`
    SignOn,
    /// `002`
    SignOff,
    /// `161`: the switch's zone PIN key, under the zone master key (fields 48 and 53 in the answer).
    KeyChange,
    /// `301`
    Echo,
    /// Any other code: answered 12 by the switch.
    Other(u16),
}

impl NetworkCode {
    pub const fn code(self) -> u16 {
        match self {
            Self::SignOn => 1,
            Self::SignOff => 2,
            Self::KeyChange => 161,
            Self::Echo => 301,
            Self::Other(c) => c,
        }
    }

    pub const fn from_code(code: u16) -> Self {
        match code {
            1 => Self::SignOn,
            2 => Self::SignOff,
            161 => Self::KeyChange,
            301 => Self::Echo,
            other => Self::Other(other),
        }
    }
}

impl fmt::Display for NetworkCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}", self.code())
    }
}

/// Field 39: how the switch answered.
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
    pub const ALL: [ResponseCode; 14] = [
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
        Self::ALL.into_iter().find(|c| c.code() == code)
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
    fn response_codes_round_trip_and_unknown_is_none() {
        for c in ResponseCode::ALL {
            assert_eq!(ResponseCode::parse(c.code()), Some(c));
        }
        assert_eq!(ResponseCode::parse("99"), None);
    }

    #[test]
    fn processing_codes_are_the_ones_the_agent_always_sent() {
        let pc = |t: TransactionType| t.processing_code().to_string();
        assert_eq!(pc(TransactionType::Withdrawal), "011000");
        assert_eq!(pc(TransactionType::Deposit), "210010");
        assert_eq!(pc(TransactionType::BalanceInquiry), "311000");
        for t in TransactionType::ALL {
            assert_eq!(TransactionType::from_code(t.code()), Some(t));
        }
        assert_eq!(TransactionType::from_code(40), None);
    }

    #[test]
    fn network_codes_keep_unknown_values() {
        for c in [1, 2, 161, 301, 999] {
            assert_eq!(NetworkCode::from_code(c).code(), c);
        }
        assert_eq!(NetworkCode::Echo.to_string(), "301");
    }
}
