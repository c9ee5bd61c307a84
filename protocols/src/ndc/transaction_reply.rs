//! Transaction reply `4` (host → terminal): what the terminal must do with the request.
//!
//! `4[flag] FS luno FS <seq|TVN> FS <next state> FS <notes> FS <TSN><fn><screen>[update]
//! FS <MCN><card><printer><data>[GS <printer><data>…] [FS <id><buffer>…] [FS mac]`.
//! The notes field decides what leaves the cassettes, so its width follows the dialect exactly.

use std::fmt;

use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

use super::dialect::Dialect;
use super::error::{NdcError, Reason};
use super::fields::{counts, fixed_digits, host_class, is_zero, latin1, Reader, Writer, GS};
use super::sensitive::mask_pan_runs;
use super::transaction_request::IdBuffer;

/// The function the terminal performs (NDC.md section 6). Paired codes keep the code sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FunctionId {
    /// `1` or `7`.
    DepositAndPrint { code: char },
    /// `2` or `8`.
    DispenseAndPrint { code: char },
    /// `3` or `9`.
    DisplayAndPrint { code: char },
    /// `4`
    PrintImmediate,
    /// `5`
    NextStateAndPrint,
    /// `6`
    NightSafeDepositAndPrint,
    /// `A`: eject card, then dispense and print.
    EjectCardDispenseAndPrint,
    /// `B` or `C`: parallel dispense, print and card eject.
    ParallelDispensePrintEject { code: char },
    /// `F`: card before parallel dispense.
    CardBeforeParallelDispense,
    /// Any other code (`P`, `Q`, `*`, `-`, `'`, `:` …).
    Other(char),
}

impl FunctionId {
    pub fn from_code(c: char) -> Self {
        match c {
            '1' | '7' => Self::DepositAndPrint { code: c },
            '2' | '8' => Self::DispenseAndPrint { code: c },
            '3' | '9' => Self::DisplayAndPrint { code: c },
            '4' => Self::PrintImmediate,
            '5' => Self::NextStateAndPrint,
            '6' => Self::NightSafeDepositAndPrint,
            'A' => Self::EjectCardDispenseAndPrint,
            'B' | 'C' => Self::ParallelDispensePrintEject { code: c },
            'F' => Self::CardBeforeParallelDispense,
            c => Self::Other(c),
        }
    }

    /// The wire character.
    pub fn code(self) -> char {
        match self {
            Self::DepositAndPrint { code }
            | Self::DispenseAndPrint { code }
            | Self::DisplayAndPrint { code }
            | Self::ParallelDispensePrintEject { code } => code,
            Self::PrintImmediate => '4',
            Self::NextStateAndPrint => '5',
            Self::NightSafeDepositAndPrint => '6',
            Self::EjectCardDispenseAndPrint => 'A',
            Self::CardBeforeParallelDispense => 'F',
            Self::Other(c) => c,
        }
    }

    /// Whether the terminal will dispense notes.
    pub fn dispenses(self) -> bool {
        matches!(
            self,
            Self::DispenseAndPrint { .. }
                | Self::EjectCardDispenseAndPrint
                | Self::ParallelDispensePrintEject { .. }
                | Self::CardBeforeParallelDispense
        )
    }
}

/// One printer group: printer flag (`0` none, `1` journal, `2` receipt, `3` both …) and its data.
/// Receipts and journal lines may print a card number: `Debug` and `Serialize` mask PAN-like
/// digit runs ([`mask_pan_runs`]).
#[derive(Clone, PartialEq, Eq)]
pub struct PrinterData {
    pub printer: char,
    pub data: String,
}

impl fmt::Debug for PrinterData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrinterData")
            .field("printer", &self.printer)
            .field("data", &mask_pan_runs(&self.data))
            .finish()
    }
}

impl Serialize for PrinterData {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("PrinterData", 2)?;
        st.serialize_field("printer", &self.printer)?;
        st.serialize_field("data", &mask_pan_runs(&self.data))?;
        st.end()
    }
}

/// A reply's id buffer as `Debug`/`Serialize` show it: PAN-like runs masked (track write
/// buffers carry card data).
struct MaskedReplyBuffer<'a>(&'a IdBuffer);

impl fmt::Debug for MaskedReplyBuffer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdBuffer")
            .field("id", &self.0.id)
            .field("data", &mask_pan_runs(&self.0.data))
            .finish()
    }
}

impl Serialize for MaskedReplyBuffer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("IdBuffer", 2)?;
        st.serialize_field("id", &self.0.id)?;
        st.serialize_field("data", &mask_pan_runs(&self.0.data))?;
        st.end()
    }
}

fn serialize_reply_buffers<S: Serializer>(buffers: &[IdBuffer], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(buffers.len()))?;
    for b in buffers {
        seq.serialize_element(&MaskedReplyBuffer(b))?;
    }
    seq.end()
}

fn serialize_pan_masked<S: Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&mask_pan_runs(text))
}

/// Transaction reply `4`. `Debug` and `Serialize` mask PAN-like digit runs in the screen
/// update, the printer data and the id buffers.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct TransactionReply {
    pub response_flag: Option<char>,
    pub luno: String,
    /// 3-digit sequence number, the request's TVN echoed (MAC mode), or empty.
    pub sequence: String,
    /// Next state number, 3 characters.
    pub next_state: String,
    /// Notes to dispense per cassette type; empty when no cash is dispensed.
    pub notes_to_dispense: Vec<u32>,
    /// Transaction serial number, 4 digits.
    pub tsn: u16,
    pub function: FunctionId,
    /// Screen number, 3 characters.
    pub screen: String,
    /// Screen display update(s) after the screen number, raw (GS-separated when several).
    #[serde(serialize_with = "serialize_pan_masked")]
    pub screen_update: String,
    /// Message coordination number: echoes the request's.
    pub mcn: char,
    /// Card flag: `0` return in Close state, `1` retain, `4` return during reply processing.
    pub card_flag: char,
    /// Printer groups (`GS`-separated on the wire); may be empty.
    pub printer: Vec<PrinterData>,
    #[serde(serialize_with = "serialize_reply_buffers")]
    pub buffers: Vec<IdBuffer>,
    pub mac: Option<String>,
    /// Empty fields after the last one (trailing FS), written back by `encode`.
    #[serde(skip_serializing_if = "is_zero")]
    pub trailing_fs: usize,
}

impl fmt::Debug for TransactionReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let buffers: Vec<_> = self.buffers.iter().map(MaskedReplyBuffer).collect();
        f.debug_struct("TransactionReply")
            .field("response_flag", &self.response_flag)
            .field("luno", &self.luno)
            .field("sequence", &self.sequence)
            .field("next_state", &self.next_state)
            .field("notes_to_dispense", &self.notes_to_dispense)
            .field("tsn", &self.tsn)
            .field("function", &self.function)
            .field("screen", &self.screen)
            .field("screen_update", &mask_pan_runs(&self.screen_update))
            .field("mcn", &self.mcn)
            .field("card_flag", &self.card_flag)
            .field("printer", &self.printer)
            .field("buffers", &buffers)
            .field("mac", &self.mac)
            .field("trailing_fs", &self.trailing_fs)
            .finish()
    }
}

impl TransactionReply {
    pub fn parse(bytes: &[u8], dialect: &Dialect) -> Result<Self, NdcError> {
        let mut r = Reader::new("4", bytes, dialect);
        let response_flag = host_class(&r, b'4', dialect)?;
        let trailing_fs = r.take_trailing(7);
        let mac = r.take_mac(7, dialect);
        let luno = r.luno(1, dialect)?;
        let sequence = r.sequence(2)?;
        let next_state = r.req(3, "next state")?;
        if next_state.len() != 3 {
            return Err(r.err(
                3,
                "next state",
                Reason::BadLength {
                    expected: 3,
                    got: next_state.len(),
                },
            ));
        }
        let notes = r.req(4, "notes to dispense")?;
        let notes_to_dispense = if notes.is_empty() {
            Vec::new()
        } else {
            counts(notes, dialect.cassette_types, dialect.note_digits)
                .map_err(|e| r.err(4, "notes to dispense", e))?
        };
        const F5: &str = "TSN + function + screen";
        let f5 = r.req(5, F5)?;
        let (Some(tsn), Some(&fid), Some(screen), Some(update)) =
            (f5.get(..4), f5.get(4), f5.get(5..8), f5.get(8..))
        else {
            return Err(r.err(
                5,
                F5,
                Reason::TooShort {
                    min: 8,
                    got: f5.len(),
                },
            ));
        };
        let tsn = fixed_digits(tsn, 4).map_err(|e| r.err(5, "TSN", e))? as u16;
        let f6 = r.req(6, "MCN + card flag + printer")?;
        let (mcn, card_flag, printer) = match f6 {
            [m, c, rest @ ..] => (
                char::from(*m),
                char::from(*c),
                parse_printer(rest).map_err(|e| r.err(6, "printer data", e))?,
            ),
            _ => {
                return Err(r.err(
                    6,
                    "MCN + card flag",
                    Reason::TooShort {
                        min: 2,
                        got: f6.len(),
                    },
                ))
            }
        };
        let buffers = r
            .rest(7)
            .iter()
            .enumerate()
            .map(|(k, f)| match f {
                [id, data @ ..] => Ok(IdBuffer {
                    id: char::from(*id),
                    data: latin1(data),
                }),
                [] => Err(r.err(
                    7 + k,
                    "id buffer",
                    Reason::Invalid("empty field where an id buffer was expected"),
                )),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            response_flag,
            luno,
            sequence,
            next_state: latin1(next_state),
            notes_to_dispense,
            tsn,
            function: FunctionId::from_code(char::from(fid)),
            screen: latin1(screen),
            screen_update: latin1(update),
            mcn,
            card_flag,
            printer,
            buffers,
            mac,
            trailing_fs,
        })
    }

    pub fn encode(&self, dialect: &Dialect) -> Result<Vec<u8>, NdcError> {
        let mut w = Writer::new("4");
        w.host_class('4', self.response_flag, dialect)?
            .fs()
            .luno(&self.luno, dialect)?;
        w.fs().sequence(&self.sequence)?.fs();
        if self.next_state.chars().count() != 3 {
            return Err(w.err(
                "next state",
                Reason::BadLength {
                    expected: 3,
                    got: self.next_state.chars().count(),
                },
            ));
        }
        w.text("next state", &self.next_state)?.fs();
        if !self.notes_to_dispense.is_empty() {
            w.counts(
                "notes to dispense",
                &self.notes_to_dispense,
                dialect.cassette_types,
                dialect.note_digits,
            )?;
        }
        w.fs().num("TSN", u64::from(self.tsn), 4)?;
        if FunctionId::from_code(self.function.code()) != self.function {
            return Err(w.err(
                "function identifier",
                Reason::Invalid("code does not match the variant"),
            ));
        }
        w.ch("function identifier", self.function.code())?;
        if self.screen.chars().count() != 3 {
            return Err(w.err(
                "screen number",
                Reason::BadLength {
                    expected: 3,
                    got: self.screen.chars().count(),
                },
            ));
        }
        w.text("screen number", &self.screen)?
            .text("screen update", &self.screen_update)?
            .fs();
        w.ch("MCN", self.mcn)?.ch("card flag", self.card_flag)?;
        for (k, p) in self.printer.iter().enumerate() {
            if k > 0 {
                w.gs();
            }
            w.text_no_gs("printer flag", p.printer.encode_utf8(&mut [0u8; 4]))?
                .text_no_gs("printer data", &p.data)?;
        }
        for b in &self.buffers {
            w.fs().ch("id buffer", b.id)?.text("id buffer", &b.data)?;
        }
        w.mac(&self.mac, dialect)?.trailing(self.trailing_fs);
        Ok(w.finish())
    }
}

fn parse_printer(f: &[u8]) -> Result<Vec<PrinterData>, Reason> {
    if f.is_empty() {
        return Ok(Vec::new());
    }
    f.split(|&b| b == GS)
        .map(|g| match g {
            [p, data @ ..] => Ok(PrinterData {
                printer: char::from(*p),
                data: latin1(data),
            }),
            [] => Err(Reason::Invalid("empty printer group")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_ids_round_trip_their_code() {
        for c in "123456789ABCFPQ*-':".chars() {
            assert_eq!(FunctionId::from_code(c).code(), c);
        }
        assert!(FunctionId::from_code('8').dispenses());
        assert!(!FunctionId::from_code('3').dispenses());
        assert_eq!(
            FunctionId::from_code('7'),
            FunctionId::DepositAndPrint { code: '7' }
        );
    }

    #[test]
    fn printer_groups_are_gs_separated() {
        assert_eq!(
            parse_printer(b"2RECEIPT\x1d1JOURNAL"),
            Ok(vec![
                PrinterData {
                    printer: '2',
                    data: "RECEIPT".into()
                },
                PrinterData {
                    printer: '1',
                    data: "JOURNAL".into()
                }
            ])
        );
        assert!(parse_printer(b"2A\x1d\x1d1B").is_err());
    }

    #[test]
    fn short_tsn_field_is_an_error_not_a_panic() {
        let e = TransactionReply::parse(b"4\x1c000\x1c\x1c125\x1c\x1c123", &Dialect::basic())
            .unwrap_err();
        assert_eq!(e.reason(), Some(&Reason::TooShort { min: 8, got: 3 }));
    }
}
