//! NCR NDC messages between an ATM and its host: parse and build, both directions.
//!
//! An agent parses what the terminal sends ([`TerminalMessage`]) and builds what the host sends
//! ([`HostMessage`]); the ATM simulator does the opposite with the same types. Input is one
//! message payload (framing, the 2-byte length, is [`crate::framing`]'s job). Layouts follow
//! `NDC.md`; what differs between terminals (TVN, MAC trailer, amount width, cassette layout,
//! `9`/`B` ready, reject reasons, last transaction status, track 1 id, the LUNO length we write)
//! is in a [`Dialect`] value, never in the code.
//!
//! Reading order: `fields.rs` (FS/GS splitting, the tolerant LUNO/TVN/trailing FS reading),
//! [`dialect`], [`error`], [`sensitive`] (masked card data), then one file per message:
//! [`transaction_request`] `11`, [`status`] `12`/`22`/`23`, [`journal`] `61`/`6`,
//! [`terminal_command`] `1`, [`data_command`] `3` (and [`key_load`], its key change field),
//! [`transaction_reply`] `4`, [`emv`] `8`, [`unknown`] anything else.
//!
//! Guarantees:
//! - Real traffic reads, in every dialect: a LUNO of any 0 to 9 printable characters (empty in
//!   host messages and EJ uploads), any number of trailing FS (counted in `trailing_fs`), fields
//!   after the last one a message knows (kept in `extra`, before the MAC), TVN and sequence
//!   fields kept as sent, hex or not (a last field that is not 8 hex digits is not a MAC).
//! - Decode then encode gives back the same bytes: [`NdcMessage::decode`] (and the
//!   direction-specific `decode`s) never fail and return the typed message when it encodes to
//!   exactly the input, else [`UnknownMessage`] with the raw fields. `parse` returns the typed
//!   message, or an [`NdcError`] naming the class, the field (name and FS position) and the
//!   reason (never the field's contents) for a known class that does not read; an unknown class
//!   is `Ok(…::Unknown)`, never an error. `parse(encode(v)) == v` for every value `encode`
//!   accepts; `encode` refuses values that would not read back (an FS inside a field, a wrong
//!   width, an empty last extra field without MAC).
//! - Parsing never panics, whatever the bytes.
//! - Track 1/2/3, PIN buffer A, buffers B/C, a request's id buffers and key change data are
//!   masked in `Debug` and in `Serialize` (JSON for `atmctl ndc decode`); PAN-like digit runs
//!   (13 to 19 digits) are masked in journal text, a reply's screen update, printer data and id
//!   buffers, and raw fields. The clear value needs an explicit `expose()` (or the pub field).
//!
//! Covered: transaction request `11` (tracks, opcode, amount, PIN buffer A with `:;<=>?` decoding,
//! buffers B/C, track 1, last transaction status, id buffers, MAC); unsolicited status `12`
//! (typed power-up `B`, cash handler `E`, supervisor `P2x`, others raw); solicited status `22`
//! (`9`, `B` + completion/TSN data, `A`, `C` + reason, `8` device fault with `E` notes, `F`
//! config id / supply counters / config info / others raw); encryptor data `23` (new key KVV,
//! key read KVVs); EJ upload `61` (block header, journal text); terminal commands `1`; data
//! commands `3` (screens, states, config parameters and FITs raw, config id, enhanced config,
//! date/time, key change `3x`/`4x` kept as modifier + masked data, with [`key_load`] reading
//! and building the extended key change's key field; a key read `4H` without data raw);
//! transaction reply `4`; EJ command `6` (acknowledge, acknowledge and stop, options raw); EMV
//! configuration `8` (table id, records raw); any other class raw.
//!
//! Not covered (kept raw): interactive transaction response `2` and `1E`/`1B` data commands
//! ([`DataCommandData::Other`]), FIT/state field semantics, screen control sequences, config info
//! and `H`..`N` terminal state layouts, coin/deposit tails of the last transaction status, EMV
//! record layouts, MAC computation and TVN checking (the codec carries the MAC and fixes the
//! bytes it covers, see [`mac`]; computing and checking it is the key store's and the agent's),
//! the TPDU/header of some sites. A `22`'s TVN slot is read from the message (a descriptor is
//! one character or `B` + GS data), whatever the dialect says, and written back as read.
//! The MAC is optional per message: in a MAC dialect a last field of exactly 8 hex digits is read
//! as the MAC (so an 8-hex last record without MAC would be read as a MAC; it is written back the
//! same, so bytes still round-trip). [`NdcMessage::parse`] reads `11`/`12` as terminal messages;
//! a host terminal command with response flag `1`/`2` needs [`HostMessage::parse`].

pub mod data_command;
pub mod dialect;
pub mod emv;
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
pub mod unknown;

use serde::Serialize;

pub use data_command::{DataCommand, DataCommandData, NumberedValue, Screen, State};
pub use dialect::{Dialect, ReadyAfterReply, TvnMode};
pub use emv::{EmvConfiguration, EmvTable};
pub use error::{NdcError, Reason};
pub use journal::{
    JournalAck, JournalBlockHeader, JournalCommand, JournalText, JournalUpload, JOURNAL_HEADER_LEN,
    JOURNAL_MAX_CHAR,
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
pub use unknown::UnknownMessage;

/// A message the terminal sends to the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TerminalMessage {
    TransactionRequest(TransactionRequest),
    UnsolicitedStatus(UnsolicitedStatus),
    SolicitedStatus(SolicitedStatus),
    /// `23`: a key change's new check value, or a key read's check values.
    EncryptorInit(EncryptorInit),
    /// `61`: a block of the electronic journal.
    JournalUpload(JournalUpload),
    /// Any other class: raw fields, to log and count (never an error that ends a connection).
    Unknown(UnknownMessage),
}

/// A message the host sends to the terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum HostMessage {
    TerminalCommand(TerminalCommand),
    DataCommand(DataCommand),
    TransactionReply(TransactionReply),
    /// `6`: EJ acknowledgement or other EJ command.
    Journal(JournalAck),
    /// `8`: EMV configuration.
    EmvConfiguration(EmvConfiguration),
    /// Any other class, raw.
    Unknown(UnknownMessage),
}

/// Any NDC message, in either direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum NdcMessage {
    Terminal(TerminalMessage),
    Host(HostMessage),
    /// A class of neither direction, raw.
    Unknown(UnknownMessage),
}

/// The first FS field (message class, subclass, response flag).
fn first_field(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == fields::FS).next().unwrap_or_default()
}

/// Terminal → host classes.
const TERMINAL_CLASSES: [&[u8]; 5] = [b"11", b"12", b"22", b"23", b"61"];

fn is_host_class(f: &[u8]) -> bool {
    matches!(
        f,
        [b'1' | b'3' | b'4' | b'6' | b'8'] | [b'1' | b'3' | b'4' | b'6' | b'8', 0x20..=0x7E]
    )
}

/// The typed reading when it gives back exactly `bytes`, else `None`.
fn exact<T>(
    bytes: &[u8],
    parsed: Result<T, NdcError>,
    encode: impl Fn(&T) -> Result<Vec<u8>, NdcError>,
) -> Option<T> {
    parsed.ok().filter(|m| encode(m).is_ok_and(|b| b == bytes))
}

impl TerminalMessage {
    /// Parses a terminal → host message (`11`, `12`, `22`, `23`, `61`); any other class is
    /// [`TerminalMessage::Unknown`]. A known class that does not parse is an error naming the
    /// field (the agent declines an unreadable request from what it can still read).
    pub fn parse(bytes: &[u8], dialect: &Dialect) -> Result<Self, NdcError> {
        if bytes.is_empty() {
            return Err(NdcError::Empty);
        }
        match first_field(bytes) {
            b"11" => TransactionRequest::parse(bytes, dialect).map(Self::TransactionRequest),
            b"12" => UnsolicitedStatus::parse(bytes, dialect).map(Self::UnsolicitedStatus),
            b"22" => SolicitedStatus::parse(bytes, dialect).map(Self::SolicitedStatus),
            b"23" => EncryptorInit::parse(bytes, dialect).map(Self::EncryptorInit),
            b"61" => JournalUpload::parse(bytes, dialect).map(Self::JournalUpload),
            _ => Ok(Self::Unknown(UnknownMessage::parse(bytes))),
        }
    }

    /// Reads any bytes, never failing: the typed message when its encoding is exactly `bytes`,
    /// otherwise [`TerminalMessage::Unknown`] with the raw fields. `decode(b).encode() == b`.
    pub fn decode(bytes: &[u8], dialect: &Dialect) -> Self {
        exact(bytes, Self::parse(bytes, dialect), |m| m.encode(dialect))
            .unwrap_or_else(|| Self::Unknown(UnknownMessage::parse(bytes)))
    }

    pub fn encode(&self, dialect: &Dialect) -> Result<Vec<u8>, NdcError> {
        match self {
            Self::TransactionRequest(m) => m.encode(dialect),
            Self::UnsolicitedStatus(m) => m.encode(dialect),
            Self::SolicitedStatus(m) => m.encode(dialect),
            Self::EncryptorInit(m) => m.encode(dialect),
            Self::JournalUpload(m) => m.encode(dialect),
            Self::Unknown(m) => m.encode(),
        }
    }

    /// The terminal's logical unit number, as sent.
    pub fn luno(&self) -> &str {
        match self {
            Self::TransactionRequest(m) => &m.luno,
            Self::UnsolicitedStatus(m) => &m.luno,
            Self::SolicitedStatus(m) => &m.luno,
            Self::EncryptorInit(m) => &m.luno,
            Self::JournalUpload(m) => &m.luno,
            Self::Unknown(m) => m.luno(),
        }
    }
}

impl HostMessage {
    /// Parses a host → terminal message (`1`, `3`, `4`, `6`, `8`, each with an optional
    /// response flag); any other class is [`HostMessage::Unknown`].
    pub fn parse(bytes: &[u8], dialect: &Dialect) -> Result<Self, NdcError> {
        if bytes.is_empty() {
            return Err(NdcError::Empty);
        }
        let class = first_field(bytes);
        if !is_host_class(class) {
            return Ok(Self::Unknown(UnknownMessage::parse(bytes)));
        }
        match class {
            [b'1', ..] => TerminalCommand::parse(bytes, dialect).map(Self::TerminalCommand),
            [b'3', ..] => DataCommand::parse(bytes, dialect).map(Self::DataCommand),
            [b'4', ..] => TransactionReply::parse(bytes, dialect).map(Self::TransactionReply),
            [b'6', ..] => JournalAck::parse(bytes, dialect).map(Self::Journal),
            [b'8', ..] => EmvConfiguration::parse(bytes, dialect).map(Self::EmvConfiguration),
            _ => Ok(Self::Unknown(UnknownMessage::parse(bytes))),
        }
    }

    /// Reads any bytes, never failing (see [`TerminalMessage::decode`]).
    pub fn decode(bytes: &[u8], dialect: &Dialect) -> Self {
        exact(bytes, Self::parse(bytes, dialect), |m| m.encode(dialect))
            .unwrap_or_else(|| Self::Unknown(UnknownMessage::parse(bytes)))
    }

    pub fn encode(&self, dialect: &Dialect) -> Result<Vec<u8>, NdcError> {
        match self {
            Self::TerminalCommand(m) => m.encode(dialect),
            Self::DataCommand(m) => m.encode(dialect),
            Self::TransactionReply(m) => m.encode(dialect),
            Self::Journal(m) => m.encode(dialect),
            Self::EmvConfiguration(m) => m.encode(dialect),
            Self::Unknown(m) => m.encode(),
        }
    }

    pub fn luno(&self) -> &str {
        match self {
            Self::TerminalCommand(m) => &m.luno,
            Self::DataCommand(m) => &m.luno,
            Self::TransactionReply(m) => &m.luno,
            Self::Journal(m) => &m.luno,
            Self::EmvConfiguration(m) => &m.luno,
            Self::Unknown(m) => m.luno(),
        }
    }
}

impl NdcMessage {
    /// Parses a message in either direction, deciding by its class: `11`/`12`/`22`/`23`/`61`
    /// are terminal messages, `1`/`3`/`4`/`6`/`8` (with or without a response flag) host
    /// messages, anything else [`NdcMessage::Unknown`].
    pub fn parse(bytes: &[u8], dialect: &Dialect) -> Result<Self, NdcError> {
        let class = first_field(bytes);
        if bytes.is_empty() {
            Err(NdcError::Empty)
        } else if TERMINAL_CLASSES.contains(&class) {
            TerminalMessage::parse(bytes, dialect).map(Self::Terminal)
        } else if is_host_class(class) {
            HostMessage::parse(bytes, dialect).map(Self::Host)
        } else {
            Ok(Self::Unknown(UnknownMessage::parse(bytes)))
        }
    }

    /// Reads any bytes in either direction, never failing: typed when the typed message encodes
    /// to exactly `bytes`, [`NdcMessage::Unknown`] otherwise. `decode(b).encode() == b` always.
    pub fn decode(bytes: &[u8], dialect: &Dialect) -> Self {
        exact(bytes, Self::parse(bytes, dialect), |m| m.encode(dialect))
            .unwrap_or_else(|| Self::Unknown(UnknownMessage::parse(bytes)))
    }

    pub fn encode(&self, dialect: &Dialect) -> Result<Vec<u8>, NdcError> {
        match self {
            Self::Terminal(m) => m.encode(dialect),
            Self::Host(m) => m.encode(dialect),
            Self::Unknown(m) => m.encode(),
        }
    }

    /// The LUNO, as sent.
    pub fn luno(&self) -> &str {
        match self {
            Self::Terminal(m) => m.luno(),
            Self::Host(m) => m.luno(),
            Self::Unknown(m) => m.luno(),
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
        assert!(matches!(
            NdcMessage::parse(b"61\x1c000\x1c\x1c\x1cx", &d),
            Ok(NdcMessage::Terminal(TerminalMessage::JournalUpload(_)))
        ));
        assert!(matches!(
            NdcMessage::parse(b"8\x1c000\x1c1\x1cx", &d),
            Ok(NdcMessage::Host(HostMessage::EmvConfiguration(_)))
        ));
        assert!(matches!(
            NdcMessage::parse(b"99\x1c000\x1cx", &d),
            Ok(NdcMessage::Unknown(_))
        ));
    }

    #[test]
    fn errors_name_class_field_and_position() {
        let d = Dialect::ncr_advance();
        let e = TerminalMessage::parse(b"22\x1c0010000010\x1c\x1c\x1c9", &d).unwrap_err();
        assert_eq!(
            e,
            NdcError::Field {
                class: "22",
                field: "LUNO",
                position: 1,
                reason: Reason::BadLength {
                    expected: 9,
                    got: 10
                }
            }
        );
        assert!(e.to_string().contains("LUNO"), "{e}");
    }
}
