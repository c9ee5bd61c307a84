//! What the agent asks the switch about a customer and what the switch answers, in the agent's
//! terms: a typed request (transaction type, transaction key, card, amount, PIN) and a typed
//! answer (response code, approval code, balance).
//!
//! The application hands these to the link port (`ports::SwitchLink`) and never sees a field
//! number; the uplink adapter writes them as ISO 8583 (`adapters::switch_messages`). They mirror
//! the agent ↔ switch dialect of ARCHITECTURE.md so that the adapter can map them one to one.

use std::fmt;

use keystore::{Cryptogram, Kcv, KeyVersion};
use protocols::iso8583::TransmissionDateTime;
use protocols::types::{Amount, Pan, Stan, TerminalId};

use super::pin::ZonePinBlock;

/// What a customer asks for (the transaction type of the processing code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionType {
    Withdrawal,
    Deposit,
    BalanceInquiry,
}

impl TransactionType {
    /// The processing code (field 3) the switch knows this transaction by; advices store it.
    pub fn processing_code(self) -> &'static str {
        match self {
            Self::Withdrawal => "011000",
            Self::Deposit => "210010",
            Self::BalanceInquiry => "311000",
        }
    }

    /// The MTI of the original request (how an advice names the transaction it completes).
    pub fn request_mti(self) -> &'static str {
        match self {
            Self::Withdrawal | Self::BalanceInquiry => "0100",
            Self::Deposit => "0200",
        }
    }
}

/// How the switch finds a transaction again: terminal id, STAN and transmission date-time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionKey {
    pub terminal: TerminalId,
    pub stan: Stan,
    pub transmitted_at: TransmissionDateTime,
}

/// A customer's request for the switch: authorization (withdrawal, inquiry) or deposit.
#[derive(Debug, Clone)]
pub struct CardRequest {
    pub transaction: TransactionType,
    pub key: TransactionKey,
    pub pan: Pan,
    /// Zero for a balance inquiry.
    pub amount: Amount,
    /// The PIN under the zone PIN key, when the terminal sent one and PINs are handled.
    pub pin: Option<ZonePinBlock>,
}

/// The switch's response code (field 39), as far as the agent tells them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseCode {
    Approved,
    InsufficientFunds,
    OverLimit,
    WrongPin,
    PinTriesExceeded,
    /// 91: the issuer or the ledger cannot be reached (or a breaker is open).
    IssuerUnavailable,
    /// 96: the switch failed; an advice answered so is retried.
    SystemError,
    /// Any other code: a final decline.
    Declined(String),
}

impl ResponseCode {
    /// The code as ISO 8583 field 39 carries it.
    pub fn parse(code: &str) -> ResponseCode {
        match code {
            "00" => Self::Approved,
            "51" => Self::InsufficientFunds,
            "61" => Self::OverLimit,
            "55" => Self::WrongPin,
            "75" => Self::PinTriesExceeded,
            "91" => Self::IssuerUnavailable,
            "96" => Self::SystemError,
            other => Self::Declined(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Approved => "00",
            Self::InsufficientFunds => "51",
            Self::OverLimit => "61",
            Self::WrongPin => "55",
            Self::PinTriesExceeded => "75",
            Self::IssuerUnavailable => "91",
            Self::SystemError => "96",
            Self::Declined(code) => code,
        }
    }

    pub fn is_approved(&self) -> bool {
        *self == Self::Approved
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The switch's answer to a [`CardRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchAnswer {
    pub code: ResponseCode,
    /// Field 38 of an approval (printed on the receipt).
    pub approval_code: Option<String>,
    /// Available balance in minor units (negative: overdrawn), for an inquiry.
    pub available_minor: Option<i64>,
}

impl SwitchAnswer {
    pub fn code(code: ResponseCode) -> Self {
        Self {
            code,
            approval_code: None,
            available_minor: None,
        }
    }
}

/// The zone PIN key as the switch sends it: under the zone master key, with its check value.
#[derive(Debug, Clone)]
pub struct ZonePinKeyDelivery {
    pub version: KeyVersion,
    pub cryptogram: Cryptogram,
    pub kcv: Kcv,
}
