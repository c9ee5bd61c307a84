//! Why a message is not a request or an answer of the dialect. Each error knows the response code
//! the switch answers it with, so a bad request is answered (never dropped) and the reason logged.

use thiserror::Error;

use crate::iso8583::{FieldError, Mti};

use super::codes::ResponseCode;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DialectError {
    #[error("field {field} ({name}) is missing")]
    Missing { field: u8, name: &'static str },
    #[error("field {field} ({name}) is malformed")]
    Malformed {
        field: u8,
        name: &'static str,
        #[source]
        source: FieldError,
    },
    #[error("the card number is not valid")]
    InvalidCard(#[source] FieldError),
    #[error("the amount is not valid")]
    InvalidAmount(#[source] FieldError),
    #[error("neither field 2 (PAN) nor field 35 (track 2) is present")]
    NoCard,
    #[error("field 90 carries no original transmission date-time")]
    NoOriginalTime,
    #[error("transaction type {transaction_type:02} is not served in {mti}")]
    UnservedTransaction { mti: Mti, transaction_type: u8 },
    #[error("MTI {0} is not a request of the dialect")]
    UnservedMti(Mti),
    #[error("MTI {0} is not an answer of the dialect")]
    NotAnAnswer(Mti),
    #[error("response code {0:?} is not one of the dialect")]
    UnknownResponseCode(String),
    #[error("the message cannot be written")]
    Encode(#[source] FieldError),
}

impl DialectError {
    /// The code the switch answers a request with when it cannot be read.
    pub fn answer_code(&self) -> ResponseCode {
        match self {
            Self::InvalidCard(_) => ResponseCode::InvalidAccount,
            Self::InvalidAmount(_) => ResponseCode::InvalidAmount,
            Self::UnservedTransaction { .. } | Self::UnservedMti(_) => {
                ResponseCode::InvalidTransaction
            }
            Self::Missing { .. }
            | Self::Malformed { .. }
            | Self::NoCard
            | Self::NoOriginalTime
            | Self::NotAnAnswer(_)
            | Self::UnknownResponseCode(_) => ResponseCode::FormatError,
            Self::Encode(_) => ResponseCode::SystemError,
        }
    }
}
