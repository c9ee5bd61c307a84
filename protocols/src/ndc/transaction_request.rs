//! Transaction request `11` (terminal → host): what the cardholder asked for.
//!
//! Layout (FS-separated, by position): `11`, LUNO, reserved, TVN, top-of-receipt + MCN, track 2,
//! track 3, operation code, amount, PIN buffer A, buffer B, buffer C, then the optional tail:
//! track 1 (slot 12), last transaction status (slot 13, only with option 15), id-tagged buffers,
//! MAC. Slots 12/13 stay (empty) when a later field follows; the encoder writes the shortest
//! form, so a request that ended early comes back with the same fields.

use std::fmt;

use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};

use super::dialect::Dialect;
use super::error::{NdcError, Reason};
use super::fields::{counts, fixed_digits, is_zero, latin1, Reader, Writer};
use super::sensitive::{masked_buffer, serialize_masked_buffer, CardTrack, PinBuffer, TrackKind};

const CLASS: &str = "11";

/// Outcome of the previous transaction, as the terminal recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LastStatus {
    /// `0`: no reply was processed.
    None,
    /// `1`: good termination sent.
    Good,
    /// `2`: error status sent.
    Error,
    /// `3`: the reply was rejected.
    ReplyRejected,
}

impl LastStatus {
    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            b'0' => Self::None,
            b'1' => Self::Good,
            b'2' => Self::Error,
            b'3' => Self::ReplyRejected,
            _ => return None,
        })
    }
    fn code(self) -> char {
        match self {
            Self::None => '0',
            Self::Good => '1',
            Self::Error => '2',
            Self::ReplyRejected => '3',
        }
    }
}

/// Last transaction status (`2` + TSN + status + notes dispensed per cassette type): how an
/// in-doubt withdrawal is settled after a power failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastTransactionStatus {
    /// Transaction serial number of the last reply (4 digits).
    pub tsn: u16,
    pub status: LastStatus,
    /// Notes dispensed per cassette type, 5 digits each (`Dialect::cassette_types` entries).
    pub notes_dispensed: Vec<u32>,
    /// Whatever follows the notes (coin/deposit data, `GS CAM GS` EMV completion), raw.
    pub tail: String,
}

/// An id-tagged buffer after the fixed fields (`U`/`V` CSP, `5` smart card, `w` cash acceptor …).
/// In a transaction request these carry new-PIN blocks and smart card data, so the request shows
/// them masked (see [`TransactionRequest`]'s `Debug` and `Serialize`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdBuffer {
    pub id: char,
    pub data: String,
}

/// An id buffer as a request shows it: its id, its data masked.
struct MaskedIdBuffer<'a>(&'a IdBuffer);

impl fmt::Debug for MaskedIdBuffer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdBuffer")
            .field("id", &self.0.id)
            .field("data", &masked_buffer(&self.0.data))
            .finish()
    }
}

impl Serialize for MaskedIdBuffer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("IdBuffer", 2)?;
        st.serialize_field("id", &self.0.id)?;
        st.serialize_field("data", &masked_buffer(&self.0.data))?;
        st.end()
    }
}

fn serialize_masked_id_buffers<S: Serializer>(
    buffers: &[IdBuffer],
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(buffers.len()))?;
    for b in buffers {
        seq.serialize_element(&MaskedIdBuffer(b))?;
    }
    seq.end()
}

/// Transaction request `11`. `Debug` and `Serialize` mask the tracks, PIN buffer A, buffers B and
/// C and the id buffers' data (`atmctl ndc decode --reveal` shows the buffers).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct TransactionRequest {
    pub luno: String,
    /// Time-variant number (MAC mode), 8 hex digits.
    pub tvn: Option<String>,
    /// Top-of-receipt flag (`1`: a receipt will be printed from the top).
    pub top_of_receipt: bool,
    /// Message coordination number, echoed by the reply.
    pub mcn: char,
    pub track2: Option<CardTrack>,
    pub track3: Option<CardTrack>,
    /// Operation code: 8 characters (space or FDK letter `A`-`I`), empty if not sent.
    pub operation_code: String,
    /// Amount in minor units; `None` when the field is empty.
    pub amount: Option<u64>,
    pub pin_buffer_a: Option<PinBuffer>,
    /// General purpose buffer B: what a screen collected (a new PIN's block, an account number).
    #[serde(serialize_with = "serialize_masked_buffer")]
    pub buffer_b: String,
    /// General purpose buffer C, like B.
    #[serde(serialize_with = "serialize_masked_buffer")]
    pub buffer_c: String,
    pub track1: Option<CardTrack>,
    pub last_transaction_status: Option<LastTransactionStatus>,
    #[serde(serialize_with = "serialize_masked_id_buffers")]
    pub buffers: Vec<IdBuffer>,
    pub mac: Option<String>,
    /// Empty fields after the last one (trailing FS, \[EA\] ends every request with one),
    /// written back by `encode`.
    #[serde(skip_serializing_if = "is_zero")]
    pub trailing_fs: usize,
}

impl fmt::Debug for TransactionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let buffers: Vec<_> = self.buffers.iter().map(MaskedIdBuffer).collect();
        f.debug_struct("TransactionRequest")
            .field("luno", &self.luno)
            .field("tvn", &self.tvn)
            .field("top_of_receipt", &self.top_of_receipt)
            .field("mcn", &self.mcn)
            .field("track2", &self.track2)
            .field("track3", &self.track3)
            .field("operation_code", &self.operation_code)
            .field("amount", &self.amount)
            .field("pin_buffer_a", &self.pin_buffer_a)
            .field("buffer_b", &masked_buffer(&self.buffer_b))
            .field("buffer_c", &masked_buffer(&self.buffer_c))
            .field("track1", &self.track1)
            .field("last_transaction_status", &self.last_transaction_status)
            .field("buffers", &buffers)
            .field("mac", &self.mac)
            .field("trailing_fs", &self.trailing_fs)
            .finish()
    }
}

fn track(kind: TrackKind, f: Option<&[u8]>) -> Option<CardTrack> {
    f.filter(|f| !f.is_empty())
        .map(|f| CardTrack::new(kind, latin1(f)))
}

impl TransactionRequest {
    /// Parses a whole `11` message.
    pub fn parse(bytes: &[u8], dialect: &Dialect) -> Result<Self, NdcError> {
        let mut r = Reader::new(CLASS, bytes, dialect);
        if r.get(0) != Some(b"11") {
            return Err(r.err(0, "message class", Reason::Invalid("expected 11")));
        }
        let trailing_fs = r.take_trailing(12);
        let mac = r.take_mac(12, dialect);
        let luno = r.luno(1, dialect)?;
        r.empty(2, "reserved")?;
        let tvn = r.tvn(3, dialect)?;
        let (top_of_receipt, mcn) = match r.req(4, "top of receipt + MCN")? {
            [t @ (b'0' | b'1'), m @ 0x20..=0x7E] => (*t == b'1', char::from(*m)),
            f if f.len() != 2 => {
                return Err(r.err(
                    4,
                    "top of receipt + MCN",
                    Reason::BadLength {
                        expected: 2,
                        got: f.len(),
                    },
                ))
            }
            _ => {
                return Err(r.err(
                    4,
                    "top of receipt + MCN",
                    Reason::Invalid("flag must be 0/1, MCN printable"),
                ))
            }
        };
        let opcode = r.get(7).unwrap_or_default();
        if !(opcode.is_empty() || opcode.len() == 8) {
            return Err(r.err(
                7,
                "operation code",
                Reason::BadLength {
                    expected: 8,
                    got: opcode.len(),
                },
            ));
        }
        let operation_code = latin1(opcode);
        let amount = match r.get(8) {
            None | Some(b"") => None,
            Some(f) => {
                Some(fixed_digits(f, dialect.amount_len).map_err(|e| r.err(8, "amount", e))?)
            }
        };
        let mut req = Self {
            luno,
            tvn,
            top_of_receipt,
            mcn,
            track2: track(TrackKind::Track2, r.get(5)),
            track3: track(TrackKind::Track3, r.get(6)),
            operation_code,
            amount,
            pin_buffer_a: r
                .get(9)
                .filter(|f| !f.is_empty())
                .map(|f| PinBuffer::new(latin1(f))),
            buffer_b: latin1(r.get(10).unwrap_or_default()),
            buffer_c: latin1(r.get(11).unwrap_or_default()),
            track1: None,
            last_transaction_status: None,
            buffers: Vec::new(),
            mac,
            trailing_fs,
        };
        req.parse_tail(&r, dialect)?;
        Ok(req)
    }

    fn parse_tail(&mut self, r: &Reader<'_>, dialect: &Dialect) -> Result<(), NdcError> {
        let mut i = 12;
        if let Some(f) = r.get(i) {
            self.track1 = match (dialect.track1_id, f) {
                (_, []) => None,
                (true, [b'1', data @ ..]) => Some(CardTrack::new(TrackKind::Track1, latin1(data))),
                (true, _) => {
                    return Err(r.err(
                        i,
                        "track 1",
                        Reason::Invalid("must start with identifier 1"),
                    ))
                }
                (false, data) => Some(CardTrack::new(TrackKind::Track1, latin1(data))),
            };
            i += 1;
        }
        if dialect.last_txn_status {
            if let Some(f) = r.get(i) {
                if !f.is_empty() {
                    let lts = parse_last_status(f, dialect)
                        .map_err(|e| r.err(i, "last transaction status", e))?;
                    self.last_transaction_status = Some(lts);
                }
                i += 1;
            }
        }
        for (k, f) in r.rest(i).iter().enumerate() {
            match f {
                [id, data @ ..] => self.buffers.push(IdBuffer {
                    id: char::from(*id),
                    data: latin1(data),
                }),
                [] => {
                    return Err(r.err(
                        i + k,
                        "id buffer",
                        Reason::Invalid("empty field where an id buffer was expected"),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Builds the `11` message bytes.
    pub fn encode(&self, dialect: &Dialect) -> Result<Vec<u8>, NdcError> {
        let mut w = Writer::new(CLASS);
        w.text("class", "11")?
            .fs()
            .luno(&self.luno, dialect)?
            .fs()
            .fs()
            .tvn(&self.tvn, dialect)?
            .fs();
        w.ch(
            "top of receipt",
            if self.top_of_receipt { '1' } else { '0' },
        )?;
        w.ch("MCN", self.mcn)?.fs();
        if let Some(t) = &self.track2 {
            w.text("track 2", t.expose())?;
        }
        w.fs();
        if let Some(t) = &self.track3 {
            w.text("track 3", t.expose())?;
        }
        w.fs();
        if !(self.operation_code.is_empty() || self.operation_code.chars().count() == 8) {
            let got = self.operation_code.chars().count();
            return Err(w.err("operation code", Reason::BadLength { expected: 8, got }));
        }
        w.text("operation code", &self.operation_code)?.fs();
        if let Some(a) = self.amount {
            w.num("amount", a, dialect.amount_len)?;
        }
        w.fs();
        if let Some(p) = &self.pin_buffer_a {
            w.text("PIN buffer A", p.expose())?;
        }
        w.fs()
            .text("buffer B", &self.buffer_b)?
            .fs()
            .text("buffer C", &self.buffer_c)?;
        self.encode_tail(&mut w, dialect)?;
        w.mac(&self.mac, dialect)?.trailing(self.trailing_fs);
        Ok(w.finish())
    }

    fn encode_tail(&self, w: &mut Writer, dialect: &Dialect) -> Result<(), NdcError> {
        if self.last_transaction_status.is_some() && !dialect.last_txn_status {
            return Err(w.err("last transaction status", Reason::NotInDialect));
        }
        let lts_slot = dialect.last_txn_status && self.last_transaction_status.is_some();
        // Slots 12/13 are written when they hold something or a later field follows.
        let later = !self.buffers.is_empty();
        if self.track1.is_some() || lts_slot || later {
            w.fs();
            if let Some(t) = &self.track1 {
                if dialect.track1_id {
                    w.text("track 1", "1")?;
                }
                if t.expose().is_empty() && !dialect.track1_id {
                    return Err(w.err(
                        "track 1",
                        Reason::Invalid("empty bare track 1 reads back as absent"),
                    ));
                }
                w.text("track 1", t.expose())?;
            }
        }
        if dialect.last_txn_status && (lts_slot || later) {
            w.fs();
            if let Some(l) = &self.last_transaction_status {
                encode_last_status(w, l, dialect)?;
            }
        }
        for b in &self.buffers {
            w.fs().ch("id buffer", b.id)?.text("id buffer", &b.data)?;
        }
        Ok(())
    }

    /// Track 2 parsed into PAN and expiry, when present and well formed.
    pub fn card(&self) -> Option<crate::types::Track2> {
        self.track2.as_ref().and_then(|t| t.track2().ok())
    }
}

fn parse_last_status(f: &[u8], dialect: &Dialect) -> Result<LastTransactionStatus, Reason> {
    let notes_len = dialect.cassette_types * 5;
    let min = 1 + 4 + 1 + notes_len;
    if f.first() != Some(&b'2') {
        return Err(Reason::Invalid("must start with identifier 2"));
    }
    let (Some(tsn), Some(&st), Some(notes), Some(tail)) =
        (f.get(1..5), f.get(5), f.get(6..min), f.get(min..))
    else {
        return Err(Reason::TooShort { min, got: f.len() });
    };
    Ok(LastTransactionStatus {
        tsn: fixed_digits(tsn, 4)? as u16,
        status: LastStatus::from_code(st).ok_or(Reason::Unknown(char::from(st)))?,
        notes_dispensed: counts(notes, dialect.cassette_types, 5)?,
        tail: latin1(tail),
    })
}

fn encode_last_status(
    w: &mut Writer,
    l: &LastTransactionStatus,
    dialect: &Dialect,
) -> Result<(), NdcError> {
    w.text("last transaction status", "2")?;
    w.num("last transaction status TSN", u64::from(l.tsn), 4)?;
    w.ch("last transaction status", l.status.code())?;
    w.counts(
        "last transaction status notes",
        &l.notes_dispensed,
        dialect.cassette_types,
        5,
    )?;
    w.text("last transaction status tail", &l.tail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal(d: &Dialect) -> TransactionRequest {
        TransactionRequest {
            luno: "0".repeat(d.luno_len),
            tvn: None,
            top_of_receipt: true,
            mcn: '1',
            track2: Some(CardTrack::new(TrackKind::Track2, ";4761739001010010=2212?")),
            track3: None,
            operation_code: "A       ".into(),
            amount: Some(2000),
            pin_buffer_a: PinBuffer::from_hex_digits("0412AC89ABCDEF12"),
            buffer_b: String::new(),
            buffer_c: String::new(),
            track1: None,
            last_transaction_status: None,
            buffers: Vec::new(),
            mac: None,
            trailing_fs: 0,
        }
    }

    #[test]
    fn shortest_form_ends_after_buffer_c() {
        let d = Dialect::basic();
        let bytes = minimal(&d).encode(&d).unwrap();
        assert_eq!(
            bytes,
            b"11\x1c000\x1c\x1c\x1c11\x1c;4761739001010010=2212?\x1c\x1cA       \x1c000000002000\x1c0412:<89:;<=>?12\x1c\x1c"
        );
        assert_eq!(TransactionRequest::parse(&bytes, &d).unwrap(), minimal(&d));
    }

    #[test]
    fn buffers_b_and_c_and_id_buffers_are_masked_in_debug_and_json() {
        let d = Dialect::basic();
        let mut r = minimal(&d);
        // A PIN change: the new PIN's block in buffer B, the confirmation in C; smart card data.
        r.buffer_b = "3;1=07>9:0<4=2?8".into();
        r.buffer_c = "9876543210123456".into();
        r.buffers = vec![
            IdBuffer {
                id: '5',
                data: "CAM5A0847617390010100105F24032212319F2608A1B2C3D4".into(),
            },
            IdBuffer {
                id: 'U',
                data: String::new(),
            },
        ];
        let debug = format!("{r:?}");
        let json = serde_json::to_string(&r).unwrap();
        for text in [&debug, &json] {
            for secret in [
                "3;1=07>9:0<4=2?8",
                "9876543210123456",
                "4761739001010010",
                "9F2608A1B2C3D4",
            ] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
            assert!(text.contains("**** (16 characters)"), "{text}");
            assert!(text.contains("**** (49 characters)"), "{text}");
        }
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["buffers"][0]["id"], "5");
        assert_eq!(
            v["buffers"][1]["data"], "",
            "an empty buffer reads as empty"
        );
        // The wire form keeps them.
        let bytes = r.encode(&d).unwrap();
        assert_eq!(TransactionRequest::parse(&bytes, &d).unwrap(), r);
    }

    #[test]
    fn empty_track1_slot_is_kept_before_last_status() {
        let d = Dialect::ncr_advance();
        let mut r = minimal(&d);
        r.last_transaction_status = Some(LastTransactionStatus {
            tsn: 12,
            status: LastStatus::Error,
            notes_dispensed: vec![0, 0, 0, 2],
            tail: String::new(),
        });
        let bytes = r.encode(&d).unwrap();
        assert!(bytes.ends_with(b"\x1c\x1c\x1c\x1c20012200000000000000000002"));
        assert_eq!(TransactionRequest::parse(&bytes, &d).unwrap(), r);
    }

    #[test]
    fn amount_width_follows_dialect() {
        let d8 = Dialect {
            amount_len: 8,
            ..Dialect::basic()
        };
        let bytes = minimal(&d8).encode(&d8).unwrap();
        assert!(TransactionRequest::parse(&bytes, &d8).is_ok());
        assert!(TransactionRequest::parse(&bytes, &Dialect::basic()).is_err());
        let mut too_big = minimal(&d8);
        too_big.amount = Some(100_000_000);
        assert!(too_big.encode(&d8).is_err());
    }

    #[test]
    fn last_status_needs_the_dialect_option() {
        let d = Dialect::basic();
        let mut r = minimal(&d);
        r.last_transaction_status = Some(LastTransactionStatus {
            tsn: 1,
            status: LastStatus::Good,
            notes_dispensed: vec![0; 4],
            tail: String::new(),
        });
        assert_eq!(
            r.encode(&d).unwrap_err().reason(),
            Some(&Reason::NotInDialect)
        );
    }
}
