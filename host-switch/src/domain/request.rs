//! What a terminal asks of the switch, in domain terms. The ISO 8583 adapter turns messages into
//! these (and answers into messages), so the application never touches a field number.

use keystore::{EncryptedPinBlock, KeyVersion};
use protocols::dialect::{Acceptance, NetworkCode};
use protocols::types::{Amount, Currency, Pan, TerminalId};

use super::{TxnKey, TxnKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// 0800: sign-on (001), sign-off (002), echo (301), zone PIN key change (161).
    NetworkManagement {
        code: NetworkCode,
        /// Field 41 when present (for logs).
        terminal: Option<TerminalId>,
    },
    /// 0100 with processing code 01: reserve cash on the wallet.
    Withdrawal {
        key: TxnKey,
        pan: Pan,
        amount: Amount,
        pin: Option<PinEntry>,
        /// Where and how the card was accepted: forwarded to a bank host, unused on the wallet.
        acceptance: Acceptance,
    },
    /// 0100 with processing code 31.
    BalanceInquiry {
        key: TxnKey,
        pan: Pan,
        currency: Currency,
        pin: Option<PinEntry>,
        /// Where and how the card was accepted: forwarded to a bank host, unused on the wallet.
        acceptance: Acceptance,
    },
    /// 0200 with processing code 21: credit at once.
    Deposit {
        key: TxnKey,
        pan: Pan,
        amount: Amount,
        pin: Option<PinEntry>,
        /// Where and how the card was accepted: forwarded to a bank host, unused on the wallet.
        acceptance: Acceptance,
    },
    /// 0220/0221 with processing code 21 and no original: a deposit the terminal took while the
    /// switch was unreachable. Journaled, answered at once, credited by the resumer.
    DepositAdvice {
        key: TxnKey,
        pan: Pan,
        amount: Amount,
    },
    /// 0220/0221: the cash actually dispensed for an approved withdrawal.
    Completion {
        key: TxnKey,
        original: TxnKey,
        dispensed_minor: u64,
    },
    /// 0420/0421: undo the original; `dispensed_minor` > 0 is a partial reversal (field 95).
    Reversal {
        key: TxnKey,
        original: TxnKey,
        kind: TxnKind,
        amount: Amount,
        dispensed_minor: u64,
        pan: Option<Pan>,
    },
    /// 0820: a terminal's status (faults, supplies), for the fleet view.
    StatusAdvice { key: TxnKey, detail: String },
}

impl Request {
    /// The message class used to record the answer (`None`: answers are not recorded).
    pub fn class(&self) -> Option<&'static str> {
        match self {
            Self::Withdrawal { .. } => Some("0100"),
            Self::Deposit { .. } => Some("0200"),
            Self::Completion { .. } | Self::DepositAdvice { .. } => Some("0220"),
            Self::Reversal { .. } => Some("0420"),
            Self::NetworkManagement { .. }
            | Self::BalanceInquiry { .. }
            | Self::StatusAdvice { .. } => None,
        }
    }
}

/// The PIN a request carries: field 52 (the block enciphered under the zone PIN key) and field 53
/// (the ZPK version it is under). `Debug` never shows the block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinEntry {
    Block {
        block: EncryptedPinBlock,
        /// `None` when field 53 is missing or not a version number.
        zpk_version: Option<KeyVersion>,
    },
    /// Field 52 is present but is not 16 hex digits.
    Unreadable,
}
