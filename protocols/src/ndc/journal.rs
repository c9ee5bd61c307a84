//! Electronic journal (EJ): the terminal uploads its journal to the host in blocks (`61`), and
//! the host acknowledges each block (`6` command `1`) so that the terminal can drop what the host
//! holds and send the next one.
//!
//! Upload, terminal → host:
//!
//! ```text
//! 61 FS luno FS FS FS <machine 6><date YYMMDD><time HHMMSS><previous last 6><last 6><length 3><journal text>
//!    [FS extra ...] [FS mac]
//! ```
//!
//! The terminal counts the characters of its journal: a block says where the previous block ended
//! (`previous last`), where this one ends (`last`) and how many characters it carries (`length`,
//! which is `last - previous last` for a well-behaved terminal). The journal text is lines
//! separated by CR LF (or LF).
//!
//! Acknowledgement and other EJ commands, host → terminal:
//!
//! ```text
//! 6[flag] FS luno FS [seq] FS <command>[<data>] [FS ...] [FS mac]
//!   1<last 6>             acknowledge: the host holds everything up to that character
//!   2<last 6>             acknowledge and stop uploading
//!   3<options> [FS timers] EJ options and timers, raw
//! ```
//!
//! Both are read leniently like every NDC message here: any LUNO of 0 to 9 printable characters,
//! a block header that does not read is kept as text ([`JournalUpload::header`] is then `None`),
//! extra fields and trailing FS are kept, and `encode(parse(m)) == m`.
//!
//! Journal text is customer data: it may print a card number. `Debug` and `Serialize` of
//! [`JournalText`] mask every PAN-like run of 13 to 19 digits ([`mask_pan_runs`]); the clear
//! text is [`JournalText::expose`].

use std::fmt;

use serde::{Serialize, Serializer};

use super::dialect::Dialect;
use super::error::{NdcError, Reason};
use super::fields::{host_class, is_digits, latin1, Reader, Writer};
use super::sensitive::mask_pan_runs;

/// Width of the block header in front of the journal text.
pub const JOURNAL_HEADER_LEN: usize = 33;

/// Largest character number a block header can carry (6 digits).
pub const JOURNAL_MAX_CHAR: u32 = 999_999;

/// Journal text (clear inside; masked in `Debug`, `Display` and `Serialize`).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct JournalText(String);

impl JournalText {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The clear text, as the terminal sent it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The text with PAN-like digit runs masked.
    pub fn masked(&self) -> String {
        mask_pan_runs(&self.0)
    }

    /// The clear lines (split on LF, a CR before it dropped); a final line without LF is a line.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.0.lines()
    }

    pub fn len(&self) -> usize {
        self.0.chars().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for JournalText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.masked())
    }
}

impl fmt::Display for JournalText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl Serialize for JournalText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

/// The 33-character header of an upload block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalBlockHeader {
    /// The terminal's machine number (6 characters, as sent).
    pub machine_number: String,
    /// Date of the block, `YYMMDD` as sent.
    pub date: String,
    /// Time of the block, `HHMMSS` as sent.
    pub time: String,
    /// Number of the last character of the previous block (what the host should already hold).
    pub previous_last_char: u32,
    /// Number of the last character of this block: what the host acknowledges.
    pub last_char: u32,
    /// Characters in this block, as the terminal counted them (3 digits).
    pub block_length: u32,
}

impl JournalBlockHeader {
    fn parse(f: &[u8]) -> Option<Self> {
        let h = f.get(..JOURNAL_HEADER_LEN)?;
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let d = h.get(r)?;
            is_digits(d).then(|| d.iter().fold(0u32, |a, b| a * 10 + u32::from(b - b'0')))
        };
        let printable = |r: std::ops::Range<usize>| -> Option<String> {
            let t = h.get(r)?;
            t.iter()
                .all(|b| (0x20..0x7F).contains(b))
                .then(|| latin1(t))
        };
        Some(Self {
            machine_number: printable(0..6)?,
            date: printable(6..12)?,
            time: printable(12..18)?,
            previous_last_char: num(18..24)?,
            last_char: num(24..30)?,
            block_length: num(30..33)?,
        })
    }

    fn encode(&self, w: &mut Writer) -> Result<(), NdcError> {
        for (field, v) in [
            ("machine number", &self.machine_number),
            ("journal date", &self.date),
            ("journal time", &self.time),
        ] {
            let b = v.as_bytes();
            if b.len() != 6 || !b.iter().all(|c| (0x20..0x7F).contains(c)) {
                return Err(w.err(field, Reason::Invalid("must be 6 printable characters")));
            }
            w.text(field, v)?;
        }
        w.num(
            "previous last character",
            u64::from(self.previous_last_char),
            6,
        )?
        .num("last character", u64::from(self.last_char), 6)?
        .num("block length", u64::from(self.block_length), 3)?;
        Ok(())
    }
}

/// Electronic journal upload `61` (terminal → host): one block of journal text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalUpload {
    /// The LUNO as sent (real terminals often leave it empty in `61`).
    pub luno: String,
    /// Fields 2 and 3, empty in every capture; kept as sent.
    #[serde(skip_serializing_if = "all_empty")]
    pub reserved: [String; 2],
    /// The block header; `None` when field 4 does not start with one (then `text` holds the
    /// whole field).
    pub header: Option<JournalBlockHeader>,
    /// The journal text after the header.
    pub text: JournalText,
    /// Fields after the journal data, kept as sent.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<String>,
    pub mac: Option<String>,
    /// Empty fields after the last one (trailing FS), written back by `encode`.
    #[serde(skip_serializing_if = "is_zero")]
    pub trailing_fs: usize,
}

fn all_empty(r: &[String; 2]) -> bool {
    r.iter().all(String::is_empty)
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl JournalUpload {
    /// A block with a header: `previous_last_char` is where the previous block ended; the
    /// block's length and last character are computed from `text`.
    pub fn new(
        luno: impl Into<String>,
        machine_number: impl Into<String>,
        date_yymmdd: impl Into<String>,
        time_hhmmss: impl Into<String>,
        previous_last_char: u32,
        text: impl Into<String>,
    ) -> Self {
        let text = JournalText::new(text);
        let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
        Self {
            luno: luno.into(),
            reserved: Default::default(),
            header: Some(JournalBlockHeader {
                machine_number: machine_number.into(),
                date: date_yymmdd.into(),
                time: time_hhmmss.into(),
                previous_last_char,
                last_char: previous_last_char.saturating_add(len),
                block_length: len,
            }),
            text,
            extra: Vec::new(),
            mac: None,
            trailing_fs: 0,
        }
    }

    /// The character number to acknowledge for this block (`None` without a header).
    pub fn last_char(&self) -> Option<u32> {
        self.header.as_ref().map(|h| h.last_char)
    }

    /// The acknowledgement of this block (`6 FS luno FS FS 1<last char>`), in the block's
    /// LUNO; `None` when the block has no header to acknowledge.
    pub fn ack(&self) -> Option<JournalAck> {
        self.last_char()
            .map(|last| JournalAck::acknowledge(self.luno.clone(), last))
    }

    pub fn parse(bytes: &[u8], dialect: &Dialect) -> Result<Self, NdcError> {
        let mut r = Reader::new_exact("61", bytes);
        if r.get(0) != Some(b"61") {
            return Err(r.err(0, "message class", Reason::Invalid("expected 61")));
        }
        let trailing_fs = r.take_trailing(5);
        let mac = r.take_mac(5, dialect);
        let luno = r.luno_any(1)?;
        let reserved = [r.text(2, "reserved")?, r.text(3, "reserved")?];
        let data = r.req(4, "journal data")?;
        let (header, text) = match JournalBlockHeader::parse(data) {
            Some(h) => (Some(h), data.get(JOURNAL_HEADER_LEN..).unwrap_or_default()),
            None => (None, data),
        };
        Ok(Self {
            luno,
            reserved,
            header,
            text: JournalText(latin1(text)),
            extra: r.extra(5),
            mac,
            trailing_fs,
        })
    }

    pub fn encode(&self, dialect: &Dialect) -> Result<Vec<u8>, NdcError> {
        let mut w = Writer::new("61");
        w.text("message class", "61")?.fs().luno_any(&self.luno)?;
        for f in &self.reserved {
            w.fs().text("reserved", f)?;
        }
        w.fs();
        match &self.header {
            Some(h) => h.encode(&mut w)?,
            None if JournalBlockHeader::parse(self.text.0.as_bytes()).is_some() => {
                return Err(w.err(
                    "journal data",
                    Reason::Invalid("text starts like a block header but header is None"),
                ))
            }
            None => {}
        }
        w.text("journal data", &self.text.0)?;
        w.extra(&self.extra, &self.mac)?.mac(&self.mac, dialect)?;
        w.trailing(self.trailing_fs);
        Ok(w.finish())
    }
}

/// What an EJ command `6` asks of the terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum JournalCommand {
    /// `1<last char>`: the host holds the journal up to and including this character.
    Acknowledge { last_char: u32 },
    /// `2<last char>`: acknowledge, and stop uploading.
    AcknowledgeAndStop { last_char: u32 },
    /// `3<options>`: EJ options and timers (the timers follow in the extra fields), raw.
    Options { options: String },
    /// Any other command (or `1`/`2` without 6 digits), raw.
    Other { code: char, data: String },
}

impl JournalCommand {
    fn parse(f: &[u8]) -> Option<Self> {
        let (&code, rest) = f.split_first()?;
        let last = || {
            (rest.len() == 6 && is_digits(rest))
                .then(|| rest.iter().fold(0u32, |a, b| a * 10 + u32::from(b - b'0')))
        };
        Some(match code {
            b'1' if last().is_some() => Self::Acknowledge {
                last_char: last().unwrap_or_default(),
            },
            b'2' if last().is_some() => Self::AcknowledgeAndStop {
                last_char: last().unwrap_or_default(),
            },
            b'3' => Self::Options {
                options: latin1(rest),
            },
            c => Self::Other {
                code: char::from(c),
                data: latin1(rest),
            },
        })
    }

    fn encode(&self, w: &mut Writer) -> Result<(), NdcError> {
        match self {
            Self::Acknowledge { last_char } => {
                w.ch("EJ command", '1')?
                    .num("last character", u64::from(*last_char), 6)?;
            }
            Self::AcknowledgeAndStop { last_char } => {
                w.ch("EJ command", '2')?
                    .num("last character", u64::from(*last_char), 6)?;
            }
            Self::Options { options } => {
                w.ch("EJ command", '3')?.text("EJ options", options)?;
            }
            Self::Other { code, data } => {
                let raw = format!("{code}{data}");
                if !matches!(Self::parse(raw.as_bytes()), Some(Self::Other { .. })) {
                    return Err(w.err(
                        "EJ command",
                        Reason::Invalid("this command has a typed variant"),
                    ));
                }
                w.text("EJ command", &raw)?;
            }
        }
        Ok(())
    }
}

/// EJ command `6` (host → terminal), most often the acknowledgement of an upload block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalAck {
    pub response_flag: Option<char>,
    /// The LUNO as sent or to send (may be empty).
    pub luno: String,
    /// Field 2 (a message sequence number where a host uses one), as sent.
    pub sequence: String,
    pub command: JournalCommand,
    /// Fields after the command (the timers of an options command), kept as sent.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<String>,
    pub mac: Option<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub trailing_fs: usize,
}

impl JournalAck {
    /// `6 FS luno FS FS 1<last char>`: acknowledge everything up to `last_char`.
    pub fn acknowledge(luno: impl Into<String>, last_char: u32) -> Self {
        Self::new(luno, JournalCommand::Acknowledge { last_char })
    }

    pub fn new(luno: impl Into<String>, command: JournalCommand) -> Self {
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

    /// The acknowledged character number, for `1` and `2`.
    pub fn acknowledged(&self) -> Option<u32> {
        match self.command {
            JournalCommand::Acknowledge { last_char }
            | JournalCommand::AcknowledgeAndStop { last_char } => Some(last_char),
            _ => None,
        }
    }

    pub fn parse(bytes: &[u8], dialect: &Dialect) -> Result<Self, NdcError> {
        let mut r = Reader::new_exact("6", bytes);
        let response_flag = host_class(&r, b'6', dialect)?;
        let trailing_fs = r.take_trailing(4);
        let mac = r.take_mac(4, dialect);
        let luno = r.luno_any(1)?;
        let sequence = r.text(2, "sequence number")?;
        let f = r.req(3, "EJ command")?;
        let command =
            JournalCommand::parse(f).ok_or_else(|| r.err(3, "EJ command", Reason::Missing))?;
        Ok(Self {
            response_flag,
            luno,
            sequence,
            command,
            extra: r.extra(4),
            mac,
            trailing_fs,
        })
    }

    pub fn encode(&self, dialect: &Dialect) -> Result<Vec<u8>, NdcError> {
        let mut w = Writer::new("6");
        w.host_class('6', self.response_flag, dialect)?
            .fs()
            .luno_any(&self.luno)?
            .fs()
            .text("sequence number", &self.sequence)?
            .fs();
        self.command.encode(&mut w)?;
        w.extra(&self.extra, &self.mac)?.mac(&self.mac, dialect)?;
        w.trailing(self.trailing_fs);
        Ok(w.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A block as a real terminal sends it (empty LUNO): 27 characters, 279606 → 279633.
    const UPLOAD: &[u8] =
        b"61\x1c\x1c\x1c\x1c000001181011124235279606279633027gooffline\r\nGoOutOfService\r\n";

    #[test]
    fn upload_block_reads_header_and_lines_and_encodes_back() {
        let d = Dialect::basic();
        let u = JournalUpload::parse(UPLOAD, &d).unwrap();
        let h = u.header.clone().unwrap();
        assert_eq!(h.machine_number, "000001");
        assert_eq!((h.date.as_str(), h.time.as_str()), ("181011", "124235"));
        assert_eq!((h.previous_last_char, h.last_char), (279_606, 279_633));
        assert_eq!(h.block_length, 27);
        assert_eq!(
            u.text.lines().collect::<Vec<_>>(),
            ["gooffline", "GoOutOfService"]
        );
        assert_eq!(u.encode(&d).unwrap(), UPLOAD);
        assert_eq!(
            u.ack().unwrap().encode(&d).unwrap(),
            b"6\x1c\x1c\x1c1279633"
        );
    }

    #[test]
    fn ack_reads_command_and_keeps_what_follows() {
        let d = Dialect::ncr_advance();
        for raw in [
            &b"6\x1c001\x1c\x1c1279633"[..],
            b"6\x1c\x1c\x1c2000100",
            b"6\x1c001000001\x1c\x1c3001\x1c00030\x1c\x1c",
            b"6\x1c001\x1c\x1c9XYZ",
        ] {
            let a = JournalAck::parse(raw, &d).unwrap();
            assert_eq!(a.encode(&d).unwrap(), raw);
        }
        let a = JournalAck::parse(b"6\x1c001\x1c\x1c1279633", &d).unwrap();
        assert_eq!(a.acknowledged(), Some(279_633));
        assert_eq!(a, JournalAck::acknowledge("001", 279_633));
    }

    #[test]
    fn journal_text_is_masked_in_debug_and_json() {
        let u = JournalUpload::new(
            "001",
            "000001",
            "261204",
            "101500",
            100,
            "CARD 4761739001010010 AMOUNT 50.00\r\n",
        );
        let shown = format!("{u:?}");
        assert!(!shown.contains("4761739001010010"), "{shown}");
        assert!(shown.contains("476173******0010"), "{shown}");
        let json = serde_json::to_string(&u).unwrap();
        assert!(!json.contains("4761739001010010"), "{json}");
        assert_eq!(u.last_char(), Some(136));
        let d = Dialect::basic();
        assert_eq!(JournalUpload::parse(&u.encode(&d).unwrap(), &d).unwrap(), u);
    }

    #[test]
    fn a_block_without_header_is_kept_as_text() {
        let d = Dialect::basic();
        let raw = b"61\x1c001\x1c\x1c\x1cno header here";
        let u = JournalUpload::parse(raw, &d).unwrap();
        assert!(u.header.is_none());
        assert!(u.ack().is_none());
        assert_eq!(u.encode(&d).unwrap(), raw);
    }
}
