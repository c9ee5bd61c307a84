//! Terminal command `1` (host → terminal): put the terminal in or out of service, ask for its
//! configuration id, counters or configuration, set the clock.
//!
//! `1[flag] FS luno FS [seq] FS <code>[<modifier>] [FS mac]`. The terminal answers with a `22`
//! (`9`, `A`/`C`, or `F` terminal state).

use serde::Serialize;

use super::dialect::Dialect;
use super::error::{NdcError, Reason};
use super::fields::{host_class, is_zero, latin1, Reader, Writer};

/// The command code and its modifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Command {
    /// `1`
    GoInService,
    /// `2[modifier]`: `0`/none normal out-of-service screen, `1` temporary screen.
    GoOutOfService { modifier: Option<char> },
    /// `3`
    SendConfigurationId,
    /// `4[modifier]`: basic or extended counters (modifier values differ by vendor).
    SendSupplyCounters { modifier: Option<char> },
    /// `5<data>`
    SendTallyInformation { data: String },
    /// `6<data>`
    SendErrorLogInformation { data: String },
    /// `7[modifier]`: none = all, `1` hardware config … `8` deposit definitions.
    SendConfigurationInformation { modifier: Option<char> },
    /// `8`
    SendDateTime,
    /// `F`
    Disconnect,
    /// `G`: keep the connection alive.
    NoOp,
    /// Any other code (or a known code with an unexpected modifier), raw.
    Other { code: char, data: String },
}

impl Command {
    fn parse(f: &[u8]) -> Option<Self> {
        let (&code, rest) = f.split_first()?;
        let one = match rest {
            [] => Some(None),
            [m] => Some(Some(char::from(*m))),
            _ => None,
        };
        Some(match (code, rest, one) {
            (b'1', [], _) => Self::GoInService,
            (b'2', _, Some(modifier)) => Self::GoOutOfService { modifier },
            (b'3', [], _) => Self::SendConfigurationId,
            (b'4', _, Some(modifier)) => Self::SendSupplyCounters { modifier },
            (b'5', data, _) => Self::SendTallyInformation { data: latin1(data) },
            (b'6', data, _) => Self::SendErrorLogInformation { data: latin1(data) },
            (b'7', _, Some(modifier)) => Self::SendConfigurationInformation { modifier },
            (b'8', [], _) => Self::SendDateTime,
            (b'F', [], _) => Self::Disconnect,
            (b'G', [], _) => Self::NoOp,
            (c, data, _) => Self::Other {
                code: char::from(c),
                data: latin1(data),
            },
        })
    }

    fn encode(&self, w: &mut Writer) -> Result<(), NdcError> {
        let (code, tail): (char, String) = match self {
            Self::GoInService => ('1', String::new()),
            Self::GoOutOfService { modifier } => {
                ('2', modifier.map(String::from).unwrap_or_default())
            }
            Self::SendConfigurationId => ('3', String::new()),
            Self::SendSupplyCounters { modifier } => {
                ('4', modifier.map(String::from).unwrap_or_default())
            }
            Self::SendTallyInformation { data } => ('5', data.clone()),
            Self::SendErrorLogInformation { data } => ('6', data.clone()),
            Self::SendConfigurationInformation { modifier } => {
                ('7', modifier.map(String::from).unwrap_or_default())
            }
            Self::SendDateTime => ('8', String::new()),
            Self::Disconnect => ('F', String::new()),
            Self::NoOp => ('G', String::new()),
            Self::Other { code, data } => {
                let typed = Self::parse(format!("{code}{data}").as_bytes());
                if !matches!(typed, Some(Self::Other { .. })) {
                    return Err(w.err(
                        "command code",
                        Reason::Invalid("this code has a typed variant"),
                    ));
                }
                (*code, data.clone())
            }
        };
        w.ch("command code", code)?
            .text("command modifier", &tail)?;
        Ok(())
    }
}

/// Terminal command `1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TerminalCommand {
    pub response_flag: Option<char>,
    pub luno: String,
    /// Message sequence number (3 digits), or empty.
    pub sequence: String,
    pub command: Command,
    /// Fields after the command, kept as sent and written back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<String>,
    pub mac: Option<String>,
    /// Empty fields after the last one (trailing FS), written back by `encode`.
    #[serde(skip_serializing_if = "is_zero")]
    pub trailing_fs: usize,
}

impl TerminalCommand {
    pub fn new(luno: impl Into<String>, command: Command) -> Self {
        Self {
            response_flag: None,
            luno: luno.into(),
            sequence: String::new(),
            command,
            extra: Vec::new(),
            mac: None,
            trailing_fs: 0,
        }
    }

    pub fn parse(bytes: &[u8], dialect: &Dialect) -> Result<Self, NdcError> {
        let mut r = Reader::new("1", bytes, dialect);
        let response_flag = host_class(&r, b'1', dialect)?;
        let trailing_fs = r.take_trailing(4);
        let mac = r.take_mac(4, dialect);
        let luno = r.luno(1, dialect)?;
        let sequence = r.sequence(2)?;
        let f = r.req(3, "command code")?;
        let command = Command::parse(f).ok_or_else(|| r.err(3, "command code", Reason::Missing))?;
        r.end(4)?;
        Ok(Self {
            response_flag,
            luno,
            sequence,
            command,
            extra: r.extras(),
            mac,
            trailing_fs,
        })
    }

    pub fn encode(&self, dialect: &Dialect) -> Result<Vec<u8>, NdcError> {
        let mut w = Writer::new("1");
        w.host_class('1', self.response_flag, dialect)?
            .fs()
            .luno(&self.luno, dialect)?;
        w.fs().sequence(&self.sequence)?.fs();
        self.command.encode(&mut w)?;
        w.extra(&self.extra, &self.mac)?
            .mac(&self.mac, dialect)?
            .trailing(self.trailing_fs);
        Ok(w.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_with_unexpected_modifiers_stay_raw() {
        let d = Dialect::basic();
        let c = TerminalCommand::parse(b"1\x1c000\x1c\x1c1X", &d).unwrap();
        assert_eq!(
            c.command,
            Command::Other {
                code: '1',
                data: "X".into()
            }
        );
        assert_eq!(c.encode(&d).unwrap(), b"1\x1c000\x1c\x1c1X");
        let typed_as_raw = TerminalCommand::new(
            "000",
            Command::Other {
                code: '1',
                data: String::new(),
            },
        );
        assert!(typed_as_raw.encode(&d).is_err());
    }

    #[test]
    fn response_flag_required_when_dialect_says_so() {
        let d = Dialect {
            host_response_flag: true,
            ..Dialect::basic()
        };
        assert!(TerminalCommand::parse(b"1\x1c000\x1c\x1c1", &d).is_err());
        assert!(TerminalCommand::new("000", Command::GoInService)
            .encode(&d)
            .is_err());
        let c = TerminalCommand::parse(b"10\x1c000\x1c\x1c71", &d).unwrap();
        assert_eq!(
            c.command,
            Command::SendConfigurationInformation {
                modifier: Some('1')
            }
        );
    }
}
