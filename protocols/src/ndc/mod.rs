//! NCR NDC messages between an ATM and its host: parse and build, both directions.
//!
//! An agent parses what the terminal sends ([`TerminalMessage`]) and builds what the host sends
//! ([`HostMessage`]); the ATM simulator does the opposite with the same types. Input is one
//! message payload (framing, the 2-byte length, is [`crate::framing`]'s job). Layouts follow
//! `NDC.md`; what differs between terminals (LUNO length, TVN, MAC trailer, amount width, cassette
//! layout, `9`/`B` ready, reject reasons, last transaction status, track 1 id, trailing FS) is in a
//! [`Dialect`] value, never in the code.
//!
//! Reading order: `fields.rs` (FS/GS splitting), [`dialect`], [`error`], [`sensitive`] (masked card
//! data), then one file per message: [`transaction_request`] `11`, [`status`] `12`/`22`/`23`,
//! [`terminal_command`] `1`, [`data_command`] `3` (and [`key_load`], its key change field),
//! [`transaction_reply`] `4`.
//!
//! Guarantees:
//! - Parsing never panics, whatever the bytes; a bad message is an [`NdcError`] naming the class,
//!   the field (name and FS position) and the reason, never the field's contents.
//! - `encode(parse(m)) == m` for canonical messages (every real example in `NDC.md` section 9
//!   except \[EA\]'s trailing FS), and `parse(encode(v)) == v` for every value `encode` accepts;
//!   `encode` refuses values that would not read back (an FS inside a field, a wrong width).
//!   One known exception: see the MAC note below.
//! - Track 1/2/3, PIN buffer A and key change data are masked in `Debug` and in `Serialize` (JSON
//!   for `atmctl ndc decode`); the clear value needs an explicit `expose()`.
//!
//! Covered: transaction request `11` (tracks, opcode, amount, PIN buffer A with `:;<=>?` decoding,
//! buffers B/C, track 1, last transaction status, id buffers, MAC); unsolicited status `12`
//! (typed power-up `B`, cash handler `E`, supervisor `P2x`, others raw); solicited status `22`
//! (`9`, `B` + completion/TSN data, `A`, `C` + reason, `8` device fault with `E` notes, `F`
//! config id / supply counters / config info / others raw); encryptor init `23`; terminal commands
//! `1`; data commands `3` (screens, states, config parameters and FITs raw, config id, enhanced
//! config, date/time, key change `3x`/`4x` kept as modifier + masked data, with [`key_load`]
//! reading and building the extended key change's key field); transaction reply `4`.
//!
//! Not covered (kept raw or rejected): EMV configuration `8` and EJ `6`/`61` (unknown class),
//! interactive transaction response `2` and `1E`/`1B` data commands (raw
//! [`DataCommandData::Other`]), FIT/state field semantics, screen control sequences, config info
//! and `H`..`N` terminal state layouts, coin/deposit tails of the last transaction status, MAC
//! computation and TVN checking (the codec carries the MAC and fixes the bytes it covers, see
//! [`mac`]; computing and checking it is the key store's and the agent's), the TPDU/header of
//! some sites.
//! The MAC is optional per message: in a MAC dialect a last field of exactly 8 hex digits is read
//! as the MAC (so an 8-hex last record without MAC would be misread; `encode` output of such a
//! value reads back differently, and property tests avoid it). An empty last field beyond a
//! message's fixed positions (a trailing FS the dialect does not tolerate, or two) is refused.
//! [`NdcMessage::parse`] reads `11`/`12` as terminal messages; a host terminal command with
//! response flag `1`/`2` needs [`HostMessage::parse`].

pub mod data_command;
pub mod dialect;
pub mod error;
pub(crate) mod fields;
pub mod journal;
pub mod key_load;
pub mod mac;
pub mod sensitive;
pub mod status;
pub mod terminal_command;
pub mod transaction_reply;
pub mod transaction_request;

use serde::Serialize;

pub use data_command::{DataCommand, DataCommandData, NumberedValue, Screen, State};
pub use dialect::{Dialect, ReadyAfterReply, TvnMode};
pub use error::{NdcError, Reason};
pub use journal::{
    JournalAck, JournalBlockHeader, JournalCommand, JournalText, JournalUpload, JOURNAL_HEADER_LEN,
};
pub use key_load::{KeyChangeModifier, KeyLoad, KeyLoadError, KEY_LENGTHS};
pub use mac::{mac_field, parse_mac_field, MAC_FIELD_BYTES};
pub use sensitive::{mask_pan_runs, CardTrack, KeyField, PinBuffer, PinBufferError, TrackKind};
pub use status::{
    CashHandlerStatus, DeviceState, DeviceStatus, DispenseOutcome, EncryptorInit, SolicitedStatus,
    SolicitedStatusInfo, SupplyCounters, TerminalState, UnsolicitedStatus,
};
pub use terminal_command::{Command, TerminalCommand};
pub use transaction_reply::{FunctionId, PrinterData, TransactionReply};
pub use transaction_request::{IdBuffer, LastStatus, LastTransactionStatus, TransactionRequest};

/// A message the terminal sends to the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TerminalMessage {
    TransactionRequest(TransactionRequest),
    UnsolicitedStatus(UnsolicitedStatus),
    SolicitedStatus(SolicitedStatus),
    EncryptorInit(EncryptorInit),
}

/// A message the host sends to the terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum HostMessage {
    TerminalCommand(TerminalCommand),
    DataCommand(DataCommand),
    TransactionReply(TransactionReply),
}

/// Any NDC message, in either direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum NdcMessage {
    Terminal(TerminalMessage),
    Host(HostMessage),
}

/// The first FS field (message class, subclass, response flag), for error messages.
fn first_field(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == fields::FS).next().unwrap_or_default()
}

fn unknown_class(bytes: &[u8]) -> NdcError {
    let f = first_field(bytes);
    NdcError::UnknownClass(fields::latin1(f.get(..8).unwrap_or(f)))
}

impl TerminalMessage {
    /// Parses a terminal → host message (`11`, `12`, `22`, `23`).
    pub fn parse(bytes: &[u8], dialect: &Dialect) -> Result<Self, NdcError> {
        if bytes.is_empty() {
            return Err(NdcError::Empty);
        }
        match first_field(bytes) {
            b"11" => TransactionRequest::parse(bytes, dialect).map(Self::TransactionRequest),
            b"12" => UnsolicitedStatus::parse(bytes, dialect).map(Self::UnsolicitedStatus),
            b"22" => SolicitedStatus::parse(bytes, dialect).map(Self::SolicitedStatus),
            b"23" => EncryptorInit::parse(bytes, dialect).map(Self::EncryptorInit),
            _ => Err(unknown_class(bytes)),
        }
    }

    pub fn encode(&self, dialect: &Dialect) -> Result<Vec<u8>, NdcError> {
        match self {
            Self::TransactionRequest(m) => m.encode(dialect),
            Self::UnsolicitedStatus(m) => m.encode(dialect),
            Self::SolicitedStatus(m) => m.encode(dialect),
            Self::EncryptorInit(m) => m.encode(dialect),
        }
    }

    /// The terminal's logical unit number.
    pub fn luno(&self) -> &str {
        match self {
            Self::TransactionRequest(m) => &m.luno,
            Self::UnsolicitedStatus(m) => &m.luno,
            Self::SolicitedStatus(m) => &m.luno,
            Self::EncryptorInit(m) => &m.luno,
        }
    }
}

impl HostMessage {
    /// Parses a host → terminal message (`1`, `3`, `4`, each with an optional response flag).
    pub fn parse(bytes: &[u8], dialect: &Dialect) -> Result<Self, NdcError> {
        if bytes.is_empty() {
            return Err(NdcError::Empty);
        }
        match first_field(bytes) {
            [b'1', ..] => TerminalCommand::parse(bytes, dialect).map(Self::TerminalCommand),
            [b'3', ..] => DataCommand::parse(bytes, dialect).map(Self::DataCommand),
            [b'4', ..] => TransactionReply::parse(bytes, dialect).map(Self::TransactionReply),
            _ => Err(unknown_class(bytes)),
        }
    }

    pub fn encode(&self, dialect: &Dialect) -> Result<Vec<u8>, NdcError> {
        match self {
            Self::TerminalCommand(m) => m.encode(dialect),
            Self::DataCommand(m) => m.encode(dialect),
            Self::TransactionReply(m) => m.encode(dialect),
        }
    }

    pub fn luno(&self) -> &str {
        match self {
            Self::TerminalCommand(m) => &m.luno,
            Self::DataCommand(m) => &m.luno,
            Self::TransactionReply(m) => &m.luno,
        }
    }
}

impl NdcMessage {
    /// Parses a message in either direction, deciding by its class: `11`/`12`/`22`/`23` are
    /// terminal messages, `1`/`3`/`4` (with or without a response flag) host messages.
    pub fn parse(bytes: &[u8], dialect: &Dialect) -> Result<Self, NdcError> {
        match first_field(bytes) {
            [] if bytes.is_empty() => Err(NdcError::Empty),
            b"11" | b"12" | b"22" | b"23" => {
                TerminalMessage::parse(bytes, dialect).map(Self::Terminal)
            }
            [b'1' | b'3' | b'4', ..] => HostMessage::parse(bytes, dialect).map(Self::Host),
            _ => Err(unknown_class(bytes)),
        }
    }

    pub fn encode(&self, dialect: &Dialect) -> Result<Vec<u8>, NdcError> {
        match self {
            Self::Terminal(m) => m.encode(dialect),
            Self::Host(m) => m.encode(dialect),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_is_decided_by_class() {
        let d = Dialect::basic();
        assert!(matches!(
            NdcMessage::parse(b"22\x1c000\x1c\x1c9", &d),
            Ok(NdcMessage::Terminal(_))
        ));
        assert!(matches!(
            NdcMessage::parse(b"10\x1c000\x1c000\x1c2", &d),
            Ok(NdcMessage::Host(_))
        ));
        assert_eq!(NdcMessage::parse(b"", &d), Err(NdcError::Empty));
        assert_eq!(
            NdcMessage::parse(b"61\x1c000", &d),
            Err(NdcError::UnknownClass("61".into()))
        );
        assert_eq!(
            NdcMessage::parse(b"8\x1c000\x1c1\x1cx", &d),
            Err(NdcError::UnknownClass("8".into()))
        );
    }

    #[test]
    fn errors_name_class_field_and_position() {
        let d = Dialect::ncr_advance();
        let e = TerminalMessage::parse(b"22\x1c001\x1c\x1c\x1c9", &d).unwrap_err();
        assert_eq!(
            e,
            NdcError::Field {
                class: "22",
                field: "LUNO",
                position: 1,
                reason: Reason::BadLength {
                    expected: 9,
                    got: 3
                }
            }
        );
        assert!(e.to_string().contains("LUNO"), "{e}");
    }
}
