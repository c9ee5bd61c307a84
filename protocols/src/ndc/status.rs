//! Status messages (terminal → host): unsolicited `12`, solicited `22` and encryptor init `23`.
//!
//! A `12` reports a device event on the terminal's own initiative (power-up, a cash handler
//! report, supervisor mode); a `22` answers the last host message: ready, rejected, a device
//! fault (with the notes actually dispensed, which settles a withdrawal) or terminal state data
//! (config id, supply counters, config info). A `23` carries key verification values after a key
//! change. Device status (`<DIG><status> FS severity FS diagnostic FS supplies`) is shared by `12`
//! and the `8` descriptor of `22`.

use serde::Serialize;

use super::dialect::{Dialect, ReadyAfterReply, TvnMode};
use super::error::{NdcError, Reason};
use super::fields::{
    counts, digits_value, fixed_digits, is_digits, is_zero, latin1, raw_trimmed, Reader, Writer, GS,
};

/// What the cash handler says about the last dispense (`E` status character, NDC.md section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DispenseOutcome {
    /// `0`: dispensed, something to report (e.g. a cassette low).
    Success,
    /// `1`: short dispense; the counts say what left the cassettes.
    ShortDispense,
    /// `2`: nothing dispensed.
    NoneDispensed,
    /// `3`: unknown, the customer may have had access; the counts are the requested ones.
    Unknown,
    /// `4`: nothing dispensed, or card not ejected (card-before-cash).
    NoneDispensedCardNotEjected,
    /// `5`: notes retracted after the present timeout; count unknown.
    Retracted,
}

impl DispenseOutcome {
    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            b'0' => Self::Success,
            b'1' => Self::ShortDispense,
            b'2' => Self::NoneDispensed,
            b'3' => Self::Unknown,
            b'4' => Self::NoneDispensedCardNotEjected,
            b'5' => Self::Retracted,
            _ => return None,
        })
    }
    pub fn code(self) -> char {
        match self {
            Self::Success => '0',
            Self::ShortDispense => '1',
            Self::NoneDispensed => '2',
            Self::Unknown => '3',
            Self::NoneDispensedCardNotEjected => '4',
            Self::Retracted => '5',
        }
    }
}

/// Cash handler (`E`) status: the outcome and the notes dispensed per cassette type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CashHandlerStatus {
    pub outcome: DispenseOutcome,
    /// `Dialect::cassette_types` counts of `Dialect::note_digits` digits, or empty when not sent.
    pub notes_dispensed: Vec<u32>,
}

/// The first field of a device status: the device (DIG) and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum DeviceState {
    /// `B<config id>`: the terminal powered up (config id, 4 digits).
    PowerUp { config_id: String },
    /// `E`: cash handler.
    CashHandler(CashHandlerStatus),
    /// `P21` / `P20`: supervisor mode entered / left.
    Supervisor { entered: bool },
    /// Any other device, raw.
    Other { dig: char, status: String },
}

/// A device status: DIG + status, then optional severity, diagnostic (M-status + M-data) and
/// supplies fields, each kept as sent (their width depends on the device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceStatus {
    pub state: DeviceState,
    pub severity: Option<String>,
    pub diagnostic: Option<String>,
    pub supplies: Option<String>,
    pub extra: Vec<String>,
}

impl DeviceStatus {
    pub(crate) fn parse(r: &Reader<'_>, i: usize, dialect: &Dialect) -> Result<Self, NdcError> {
        const NAME: &str = "device status";
        let f = r.req(i, NAME)?;
        let state = match f {
            [] => return Err(r.err(i, NAME, Reason::Missing)),
            [b'B', id @ ..] if id.len() == 4 && is_digits(id) => DeviceState::PowerUp {
                config_id: latin1(id),
            },
            [b'P', b'2', e @ (b'0' | b'1')] => DeviceState::Supervisor {
                entered: *e == b'1',
            },
            [b'E'] => return Err(r.err(i, "cash handler status", Reason::Missing)),
            [b'E', s, notes @ ..] => {
                let outcome = DispenseOutcome::from_code(*s)
                    .ok_or_else(|| r.err(i, NAME, Reason::Unknown(char::from(*s))))?;
                let notes_dispensed = if notes.is_empty() {
                    Vec::new()
                } else {
                    counts(notes, dialect.cassette_types, dialect.note_digits)
                        .map_err(|e| r.err(i, "cash handler notes", e))?
                };
                DeviceState::CashHandler(CashHandlerStatus {
                    outcome,
                    notes_dispensed,
                })
            }
            [dig, status @ ..] => DeviceState::Other {
                dig: char::from(*dig),
                status: latin1(status),
            },
        };
        let mut rest = raw_trimmed(r.rest(i + 1)).into_iter();
        Ok(Self {
            state,
            severity: rest.next(),
            diagnostic: rest.next(),
            supplies: rest.next(),
            extra: rest.collect(),
        })
    }

    /// Writes the device fields (no leading FS).
    pub(crate) fn encode(&self, w: &mut Writer, dialect: &Dialect) -> Result<(), NdcError> {
        match &self.state {
            DeviceState::PowerUp { config_id } => {
                if config_id.len() != 4 || !is_digits(config_id.as_bytes()) {
                    return Err(w.err(
                        "config id",
                        Reason::BadLength {
                            expected: 4,
                            got: config_id.len(),
                        },
                    ));
                }
                w.text("device status", "B")?.text("config id", config_id)?;
            }
            DeviceState::Supervisor { entered } => {
                w.text("device status", if *entered { "P21" } else { "P20" })?;
            }
            DeviceState::CashHandler(c) => {
                w.text("device status", "E")?
                    .ch("cash handler", c.outcome.code())?;
                if !c.notes_dispensed.is_empty() {
                    w.counts(
                        "cash handler notes",
                        &c.notes_dispensed,
                        dialect.cassette_types,
                        dialect.note_digits,
                    )?;
                }
            }
            DeviceState::Other { dig, status } => {
                let typed = match dig {
                    'B' => status.len() == 4 && is_digits(status.as_bytes()),
                    'P' => status == "20" || status == "21",
                    'E' => true,
                    _ => false,
                };
                if typed {
                    return Err(w.err(
                        "device status",
                        Reason::Invalid("this device has a typed variant"),
                    ));
                }
                w.ch("device id", *dig)?.text("device status", status)?;
            }
        }
        // Fields are written up to the last one present; a gap becomes an empty field.
        let opts = [&self.severity, &self.diagnostic, &self.supplies];
        let n = if self.extra.is_empty() {
            opts.iter().rposition(|o| o.is_some()).map_or(0, |l| l + 1)
        } else {
            3
        };
        let fields: Vec<&str> = opts
            .iter()
            .take(n)
            .map(|o| o.as_deref().unwrap_or(""))
            .chain(self.extra.iter().map(String::as_str))
            .collect();
        w.no_trailing_empty("device status fields", &fields)?;
        for f in fields {
            w.fs().text("device status field", f)?;
        }
        Ok(())
    }
}

/// Unsolicited status `12`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnsolicitedStatus {
    pub luno: String,
    pub tvn: Option<String>,
    /// The device status; fields after its supplies field are its `extra`.
    pub device: DeviceStatus,
    pub mac: Option<String>,
    /// Empty fields after the last one (trailing FS), written back by `encode`.
    #[serde(skip_serializing_if = "is_zero")]
    pub trailing_fs: usize,
}

impl UnsolicitedStatus {
    /// An unsolicited status with no TVN, MAC or trailing FS.
    pub fn new(luno: impl Into<String>, device: DeviceStatus) -> Self {
        Self {
            luno: luno.into(),
            tvn: None,
            device,
            mac: None,
            trailing_fs: 0,
        }
    }

    pub fn parse(bytes: &[u8], dialect: &Dialect) -> Result<Self, NdcError> {
        let mut r = Reader::new("12", bytes, dialect);
        if r.get(0) != Some(b"12") {
            return Err(r.err(0, "message class", Reason::Invalid("expected 12")));
        }
        let trailing_fs = r.take_trailing(4);
        let mac = r.take_mac(4, dialect);
        Ok(Self {
            luno: r.luno(1, dialect)?,
            tvn: r.tvn(2, dialect)?,
            device: DeviceStatus::parse(&r, 3, dialect)?,
            mac,
            trailing_fs,
        })
    }

    pub fn encode(&self, dialect: &Dialect) -> Result<Vec<u8>, NdcError> {
        let mut w = Writer::new("12");
        w.text("class", "12")?
            .fs()
            .luno(&self.luno, dialect)?
            .fs()
            .tvn(&self.tvn, dialect)?
            .fs();
        self.device.encode(&mut w, dialect)?;
        w.mac(&self.mac, dialect)?.trailing(self.trailing_fs);
        Ok(w.finish())
    }
}

/// Supply counters (terminal state `2`, answer to command `4`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupplyCounters {
    pub tsn: u16,
    pub transaction_count: u32,
    pub notes_in_cassettes: Vec<u32>,
    pub notes_rejected: Vec<u32>,
    pub notes_dispensed: Vec<u32>,
    pub last_transaction_notes_dispensed: Vec<u32>,
    pub cards_captured: u32,
    pub envelopes_deposited: u32,
    pub camera_film_remaining: u32,
    pub last_envelope_serial: u32,
    /// Extensions after the basic counters, raw.
    pub extra: String,
}

impl SupplyCounters {
    fn parse(f: &[u8], dialect: &Dialect) -> Result<Self, Reason> {
        let group = dialect.cassette_types * 5;
        let min = 4 + 7 + 4 * group + 20;
        if f.len() < min {
            return Err(Reason::TooShort { min, got: f.len() });
        }
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], Reason> {
            let s = f
                .get(at..at + n)
                .ok_or(Reason::TooShort { min, got: f.len() })?;
            at += n;
            Ok(s)
        };
        let tsn = fixed_digits(take(4)?, 4)? as u16;
        let transaction_count = fixed_digits(take(7)?, 7)? as u32;
        let n = dialect.cassette_types;
        let notes_in_cassettes = counts(take(group)?, n, 5)?;
        let notes_rejected = counts(take(group)?, n, 5)?;
        let notes_dispensed = counts(take(group)?, n, 5)?;
        let last_transaction_notes_dispensed = counts(take(group)?, n, 5)?;
        let cards_captured = digits_value(take(5)?)? as u32;
        let envelopes_deposited = digits_value(take(5)?)? as u32;
        let camera_film_remaining = digits_value(take(5)?)? as u32;
        let last_envelope_serial = digits_value(take(5)?)? as u32;
        let extra = latin1(f.get(at..).unwrap_or_default());
        Ok(Self {
            tsn,
            transaction_count,
            notes_in_cassettes,
            notes_rejected,
            notes_dispensed,
            last_transaction_notes_dispensed,
            cards_captured,
            envelopes_deposited,
            camera_film_remaining,
            last_envelope_serial,
            extra,
        })
    }

    fn encode(&self, w: &mut Writer, dialect: &Dialect) -> Result<(), NdcError> {
        let n = dialect.cassette_types;
        w.text("terminal state", "2")?
            .num("TSN", u64::from(self.tsn), 4)?;
        w.num("transaction count", u64::from(self.transaction_count), 7)?;
        w.counts("notes in cassettes", &self.notes_in_cassettes, n, 5)?;
        w.counts("notes rejected", &self.notes_rejected, n, 5)?;
        w.counts("notes dispensed", &self.notes_dispensed, n, 5)?;
        w.counts(
            "last transaction notes dispensed",
            &self.last_transaction_notes_dispensed,
            n,
            5,
        )?;
        w.num("cards captured", u64::from(self.cards_captured), 5)?;
        w.num(
            "envelopes deposited",
            u64::from(self.envelopes_deposited),
            5,
        )?;
        w.num(
            "camera film remaining",
            u64::from(self.camera_film_remaining),
            5,
        )?;
        w.num(
            "last envelope serial",
            u64::from(self.last_envelope_serial),
            5,
        )?;
        w.text("supply counters extension", &self.extra)?;
        Ok(())
    }
}

/// Terminal state data (descriptor `F`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TerminalState {
    /// `6<config id>`: answer to command `3`.
    ConfigurationId(String),
    /// `2…`: answer to command `4`.
    SupplyCounters(SupplyCounters),
    /// `1<config id> FS <hw fitness> FS <hw config> FS <supplies> FS <sensors> [FS …]`: answer to
    /// command `7`; widths vary by model, so the fields after the config id are kept raw.
    ConfigurationInfo {
        config_id: String,
        fields: Vec<String>,
    },
    /// Anything else (`H`..`N` groups, `5` date/time …), every field raw; the first is non-empty.
    Other { fields: Vec<String> },
}

/// What a solicited status says (its descriptor and the data that goes with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum SolicitedStatusInfo {
    /// `9`: ready.
    Ready,
    /// `B`: ready after a transaction reply, with optional `GS` completion data (raw, e.g.
    /// `CAM GS 9B026000`) and, with `ReadyAfterReply::BWithTsn`, the TSN and optional data.
    ReadyAfterReply {
        completion: Option<String>,
        tsn: Option<u16>,
        data: Option<String>,
    },
    /// `A`: command reject.
    CommandReject,
    /// `C` + reason (`1`, `B04`, `C01` …).
    SpecificReject { reason: String },
    /// `8`: device fault.
    DeviceFault(DeviceStatus),
    /// `F`: terminal state.
    TerminalState(TerminalState),
}

/// Whether the dialect's `22` has a TVN slot (`22 FS luno FS FS [tvn] FS <descriptor>`).
fn dialect_has_slot(dialect: &Dialect) -> bool {
    dialect.tvn != TvnMode::Absent
}

/// Solicited status `22`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SolicitedStatus {
    pub luno: String,
    pub tvn: Option<String>,
    /// `None`: the TVN slot is where the dialect puts it (present unless `tvn = "absent"`).
    /// `Some(present)`: the message came the other way (a terminal without MAC talking to a MAC
    /// dialect, or one sending an empty slot to a dialect without one), written back as read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tvn_slot: Option<bool>,
    pub info: SolicitedStatusInfo,
    /// Fields after the last one this message knows, kept as sent and written back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<String>,
    pub mac: Option<String>,
    /// Empty fields after the last one (trailing FS), written back by `encode`.
    #[serde(skip_serializing_if = "is_zero")]
    pub trailing_fs: usize,
}

impl SolicitedStatus {
    /// A solicited status with no TVN, extra fields, MAC or trailing FS.
    pub fn new(luno: impl Into<String>, info: SolicitedStatusInfo) -> Self {
        Self {
            luno: luno.into(),
            tvn: None,
            tvn_slot: None,
            info,
            extra: Vec::new(),
            mac: None,
            trailing_fs: 0,
        }
    }

    pub fn parse(bytes: &[u8], dialect: &Dialect) -> Result<Self, NdcError> {
        let mut r = Reader::new("22", bytes, dialect);
        if r.get(0) != Some(b"22") {
            return Err(r.err(0, "message class", Reason::Invalid("expected 22")));
        }
        // Whether a TVN slot is there is read from the message, not assumed from the dialect:
        // a descriptor is one character (or `B` + GS data), never empty and never 8 hex digits.
        let has_slot = match r.get(3) {
            Some(f) => !(f.len() == 1 || f.starts_with(&[b'B', GS])) && r.get(4).is_some(),
            None => dialect_has_slot(dialect),
        };
        let tvn_slot = (has_slot != dialect_has_slot(dialect)).then_some(has_slot);
        let d = if has_slot { 4 } else { 3 };
        let trailing_fs = r.take_trailing(d + 1);
        let mac = r.take_mac(d + 1, dialect);
        let luno = r.luno(1, dialect)?;
        r.empty(2, "reserved")?;
        let tvn = if has_slot { r.tvn(3, dialect)? } else { None };
        let desc = r.req(d, "status descriptor")?;
        let only =
            |info: SolicitedStatusInfo, r: &Reader<'_>| -> Result<SolicitedStatusInfo, NdcError> {
                if desc.len() != 1 {
                    return Err(r.err(
                        d,
                        "status descriptor",
                        Reason::BadLength {
                            expected: 1,
                            got: desc.len(),
                        },
                    ));
                }
                r.end(d + 1)?;
                Ok(info)
            };
        let info = match desc.first().copied() {
            None => return Err(r.err(d, "status descriptor", Reason::Missing)),
            Some(b'9') => only(SolicitedStatusInfo::Ready, &r)?,
            Some(b'A') => only(SolicitedStatusInfo::CommandReject, &r)?,
            Some(b'B') => Self::parse_ready_after_reply(&r, d, desc, dialect)?,
            Some(b'C') if !dialect.reject_reasons => {
                return Err(r.err(d, "status descriptor C", Reason::NotInDialect))
            }
            Some(b'C') => {
                let reason = r.req(d + 1, "reject reason")?;
                if reason.is_empty() {
                    return Err(r.err(d + 1, "reject reason", Reason::Missing));
                }
                let info = SolicitedStatusInfo::SpecificReject {
                    reason: latin1(reason),
                };
                if desc.len() != 1 {
                    return Err(r.err(
                        d,
                        "status descriptor",
                        Reason::BadLength {
                            expected: 1,
                            got: desc.len(),
                        },
                    ));
                }
                r.end(d + 2)?;
                info
            }
            Some(b'8') if desc.len() == 1 => {
                SolicitedStatusInfo::DeviceFault(DeviceStatus::parse(&r, d + 1, dialect)?)
            }
            Some(b'F') if desc.len() == 1 => {
                SolicitedStatusInfo::TerminalState(Self::parse_state(&r, d + 1, dialect)?)
            }
            Some(c) => return Err(r.err(d, "status descriptor", Reason::Unknown(char::from(c)))),
        };
        Ok(Self {
            luno,
            tvn,
            tvn_slot,
            info,
            extra: r.extras(),
            mac,
            trailing_fs,
        })
    }

    /// Whether every field of the status is known, so that fields after it read back as extra
    /// fields (a device fault, configuration information and other terminal states end in an
    /// open list; `B` with TSN data takes the next two fields).
    fn info_is_closed(&self, dialect: &Dialect) -> bool {
        match &self.info {
            SolicitedStatusInfo::Ready
            | SolicitedStatusInfo::CommandReject
            | SolicitedStatusInfo::SpecificReject { .. } => true,
            SolicitedStatusInfo::ReadyAfterReply { tsn, data, .. } => {
                dialect.ready_after_reply != ReadyAfterReply::BWithTsn
                    || (tsn.is_some() && data.is_some())
            }
            SolicitedStatusInfo::TerminalState(
                TerminalState::ConfigurationId(_) | TerminalState::SupplyCounters(_),
            ) => true,
            SolicitedStatusInfo::DeviceFault(_) | SolicitedStatusInfo::TerminalState(_) => false,
        }
    }

    fn parse_ready_after_reply(
        r: &Reader<'_>,
        d: usize,
        desc: &[u8],
        dialect: &Dialect,
    ) -> Result<SolicitedStatusInfo, NdcError> {
        if dialect.ready_after_reply == ReadyAfterReply::Nine {
            return Err(r.err(d, "status descriptor B", Reason::NotInDialect));
        }
        let completion = match desc.get(1..) {
            None | Some([]) => None,
            Some([GS, rest @ ..]) => Some(latin1(rest)),
            Some(_) => {
                return Err(r.err(
                    d,
                    "status descriptor",
                    Reason::Invalid("B may only be followed by GS completion data"),
                ))
            }
        };
        let (mut tsn, mut data) = (None, None);
        if dialect.ready_after_reply == ReadyAfterReply::BWithTsn {
            if let Some(f) = r.get(d + 1) {
                tsn = Some(fixed_digits(f, 4).map_err(|e| r.err(d + 1, "TSN", e))? as u16);
            }
            data = r.get(d + 2).filter(|f| !f.is_empty()).map(latin1);
            r.end(d + 3)?;
        } else {
            r.end(d + 1)?;
        }
        Ok(SolicitedStatusInfo::ReadyAfterReply {
            completion,
            tsn,
            data,
        })
    }

    fn parse_state(r: &Reader<'_>, i: usize, dialect: &Dialect) -> Result<TerminalState, NdcError> {
        let f = r.req(i, "terminal state")?;
        let raw_rest = || raw_trimmed(r.rest(i + 1));
        Ok(match f {
            [] => return Err(r.err(i, "terminal state", Reason::Missing)),
            [b'6', id @ ..] => {
                fixed_digits(id, 4).map_err(|e| r.err(i, "configuration id", e))?;
                r.end(i + 1)?;
                TerminalState::ConfigurationId(latin1(id))
            }
            [b'2', counters @ ..] => {
                let c = SupplyCounters::parse(counters, dialect)
                    .map_err(|e| r.err(i, "supply counters", e))?;
                r.end(i + 1)?;
                TerminalState::SupplyCounters(c)
            }
            [b'1', id @ ..] => TerminalState::ConfigurationInfo {
                config_id: latin1(id),
                fields: raw_rest(),
            },
            _ => {
                let mut fields = vec![latin1(f)];
                fields.extend(raw_rest());
                TerminalState::Other { fields }
            }
        })
    }

    pub fn encode(&self, dialect: &Dialect) -> Result<Vec<u8>, NdcError> {
        let mut w = Writer::new("22");
        w.text("class", "22")?
            .fs()
            .luno(&self.luno, dialect)?
            .fs()
            .fs();
        let default_slot = dialect_has_slot(dialect);
        if self.tvn_slot == Some(default_slot) {
            return Err(w.err(
                "TVN slot",
                Reason::Invalid("the dialect's own layout is tvn_slot None"),
            ));
        }
        if self.tvn_slot.unwrap_or(default_slot) {
            w.tvn(&self.tvn, dialect)?.fs();
        } else if self.tvn.is_some() {
            return Err(w.err("TVN", Reason::Invalid("a TVN needs its slot")));
        }
        match &self.info {
            SolicitedStatusInfo::Ready => {
                w.text("descriptor", "9")?;
            }
            SolicitedStatusInfo::CommandReject => {
                w.text("descriptor", "A")?;
            }
            SolicitedStatusInfo::ReadyAfterReply {
                completion,
                tsn,
                data,
            } => {
                Self::encode_ready_after_reply(&mut w, completion, tsn, data, dialect)?;
            }
            SolicitedStatusInfo::SpecificReject { reason } => {
                if !dialect.reject_reasons {
                    return Err(w.err("descriptor C", Reason::NotInDialect));
                }
                w.no_trailing_empty("reject reason", &[reason])?;
                w.text("descriptor", "C")?
                    .fs()
                    .text("reject reason", reason)?;
            }
            SolicitedStatusInfo::DeviceFault(dev) => {
                w.text("descriptor", "8")?.fs();
                dev.encode(&mut w, dialect)?;
            }
            SolicitedStatusInfo::TerminalState(state) => {
                w.text("descriptor", "F")?.fs();
                Self::encode_state(&mut w, state, dialect)?;
            }
        }
        if !self.extra.is_empty() && !self.info_is_closed(dialect) {
            return Err(w.err(
                "extra field",
                Reason::Invalid(
                    "this status ends in an open list that would take the extra fields",
                ),
            ));
        }
        w.extra(&self.extra, &self.mac)?
            .mac(&self.mac, dialect)?
            .trailing(self.trailing_fs);
        Ok(w.finish())
    }

    fn encode_ready_after_reply(
        w: &mut Writer,
        completion: &Option<String>,
        tsn: &Option<u16>,
        data: &Option<String>,
        dialect: &Dialect,
    ) -> Result<(), NdcError> {
        if dialect.ready_after_reply == ReadyAfterReply::Nine {
            return Err(w.err("descriptor B", Reason::NotInDialect));
        }
        w.text("descriptor", "B")?;
        if let Some(c) = completion {
            w.gs().text("completion data", c)?;
        }
        let with_tsn = dialect.ready_after_reply == ReadyAfterReply::BWithTsn;
        if !with_tsn && (tsn.is_some() || data.is_some()) {
            return Err(w.err("ready-after-reply TSN", Reason::NotInDialect));
        }
        match (tsn, data) {
            (None, Some(_)) => {
                return Err(w.err(
                    "ready-after-reply data",
                    Reason::Invalid("data needs a TSN"),
                ))
            }
            (Some(t), d) => {
                w.fs().num("TSN", u64::from(*t), 4)?;
                if let Some(d) = d {
                    w.no_trailing_empty("ready-after-reply data", &[d])?;
                    w.fs().text("ready-after-reply data", d)?;
                }
            }
            (None, None) => {}
        }
        Ok(())
    }

    fn encode_state(
        w: &mut Writer,
        state: &TerminalState,
        dialect: &Dialect,
    ) -> Result<(), NdcError> {
        match state {
            TerminalState::ConfigurationId(id) => {
                if id.len() != 4 || !is_digits(id.as_bytes()) {
                    return Err(w.err(
                        "configuration id",
                        Reason::BadLength {
                            expected: 4,
                            got: id.len(),
                        },
                    ));
                }
                w.text("terminal state", "6")?
                    .text("configuration id", id)?;
            }
            TerminalState::SupplyCounters(c) => c.encode(w, dialect)?,
            TerminalState::ConfigurationInfo { config_id, fields } => {
                w.no_trailing_empty(
                    "configuration info",
                    &fields.iter().map(String::as_str).collect::<Vec<_>>(),
                )?;
                w.text("terminal state", "1")?
                    .text("configuration id", config_id)?;
                for f in fields {
                    w.fs().text("configuration info", f)?;
                }
            }
            TerminalState::Other { fields } => {
                let first = fields.first().map(String::as_str).unwrap_or("");
                w.no_trailing_empty(
                    "terminal state",
                    &fields.iter().map(String::as_str).collect::<Vec<_>>(),
                )?;
                if first.is_empty() || first.starts_with(['1', '2', '6']) {
                    return Err(w.err(
                        "terminal state",
                        Reason::Invalid("needs a non-empty first field with an untyped id"),
                    ));
                }
                for (k, f) in fields.iter().enumerate() {
                    if k > 0 {
                        w.fs();
                    }
                    w.text("terminal state", f)?;
                }
            }
        }
        Ok(())
    }
}

/// Encryptor initialisation data `23`: key verification value after a key change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EncryptorInit {
    pub luno: String,
    /// Information identifier (`3` new key's KVV, `4` the key verification values of a key
    /// read, `1`/`2` EPP serial number / public key, …).
    pub id: String,
    /// Key verification value (or other encryptor data), raw.
    pub kvv: String,
    /// Fields after the last one this message knows, kept as sent and written back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<String>,
    pub mac: Option<String>,
    /// Empty fields after the last one (trailing FS), written back by `encode`.
    #[serde(skip_serializing_if = "is_zero")]
    pub trailing_fs: usize,
}

impl EncryptorInit {
    /// Encryptor data with no extra fields, MAC or trailing FS.
    pub fn new(luno: impl Into<String>, id: impl Into<String>, kvv: impl Into<String>) -> Self {
        Self {
            luno: luno.into(),
            id: id.into(),
            kvv: kvv.into(),
            extra: Vec::new(),
            mac: None,
            trailing_fs: 0,
        }
    }

    /// The key verification values of a key read answer (identifier `4`): the encryptor data cut
    /// into 6-character check values (master key first, then the communications key, the MAC
    /// key and the B key, as far as the terminal sends them). `None` for other identifiers or
    /// data that is not a whole number of 6 hex digit values.
    pub fn key_check_values(&self) -> Option<Vec<String>> {
        let b = self.kvv.as_bytes();
        if self.id != "4" || b.is_empty() || !b.len().is_multiple_of(6) {
            return None;
        }
        if !b.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        Some(b.chunks(6).map(latin1).collect())
    }

    /// The new key's check value of a key change answer (identifier `3`).
    pub fn new_key_check_value(&self) -> Option<&str> {
        (self.id == "3").then_some(self.kvv.as_str())
    }

    pub fn parse(bytes: &[u8], dialect: &Dialect) -> Result<Self, NdcError> {
        let mut r = Reader::new("23", bytes, dialect);
        if r.get(0) != Some(b"23") {
            return Err(r.err(0, "message class", Reason::Invalid("expected 23")));
        }
        let trailing_fs = r.take_trailing(5);
        let mac = r.take_mac(5, dialect);
        let luno = r.luno(1, dialect)?;
        r.empty(2, "reserved")?;
        let id = r.text(3, "information identifier")?;
        let kvv = r.text(4, "key verification value")?;
        r.end(5)?;
        Ok(Self {
            luno,
            id,
            kvv,
            extra: r.extras(),
            mac,
            trailing_fs,
        })
    }

    pub fn encode(&self, dialect: &Dialect) -> Result<Vec<u8>, NdcError> {
        let mut w = Writer::new("23");
        w.text("class", "23")?
            .fs()
            .luno(&self.luno, dialect)?
            .fs()
            .fs();
        w.text("information identifier", &self.id)?
            .fs()
            .text("key verification value", &self.kvv)?;
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
    fn cash_handler_counts_follow_cassette_layout() {
        let d = Dialect {
            cassette_types: 7,
            note_digits: 4,
            ..Dialect::basic()
        };
        let wire = b"22\x1c000\x1c\x1c8\x1cE10000000400000000000000000000\x1c00100";
        let s = SolicitedStatus::parse(wire, &d).unwrap();
        let SolicitedStatusInfo::DeviceFault(dev) = &s.info else {
            panic!("{s:?}")
        };
        let DeviceState::CashHandler(c) = &dev.state else {
            panic!()
        };
        assert_eq!(c.notes_dispensed, vec![0, 4, 0, 0, 0, 0, 0]);
        assert_eq!(s.encode(&d).unwrap(), wire);
        // The same bytes are a bad length for the default 4 x 2 layout.
        assert!(SolicitedStatus::parse(wire, &Dialect::basic()).is_err());
    }

    #[test]
    fn tvn_slot_follows_dialect() {
        let empty_slot = Dialect {
            tvn: TvnMode::EmptySlot,
            ..Dialect::basic()
        };
        let with_slot = b"22\x1c000\x1c\x1c\x1c9";
        let s = SolicitedStatus::parse(with_slot, &empty_slot).unwrap();
        assert_eq!((s.info, s.tvn_slot), (SolicitedStatusInfo::Ready, None));
        // The slot is read from the message whatever the dialect says, and written back.
        let basic = Dialect::basic();
        let s = SolicitedStatus::parse(with_slot, &basic).unwrap();
        assert_eq!(s.tvn_slot, Some(true));
        assert_eq!(s.encode(&basic).unwrap(), with_slot);
        let adv = Dialect::ncr_advance();
        for wire in [
            &b"22\x1c001000001\x1c\x1c9"[..],
            b"22\x1c001000001\x1c\x1cB\x1dCAM\x1d9B026000",
            b"22\x1c001000001\x1c\x1c8\x1cE100040000\x1c00100",
        ] {
            let s = SolicitedStatus::parse(wire, &adv).unwrap();
            assert_eq!(s.tvn_slot, Some(false));
            assert_eq!(s.encode(&adv).unwrap(), wire);
        }
        let own_layout = SolicitedStatus {
            tvn_slot: Some(true),
            ..SolicitedStatus::new("001", SolicitedStatusInfo::Ready)
        };
        assert!(
            own_layout.encode(&adv).is_err(),
            "the dialect's own layout is None"
        );
        // A TVN where the dialect expects none is kept as sent, not refused.
        let wire = b"22\x1c000\x1c\x1cABCD0123\x1c9";
        let s = SolicitedStatus::parse(wire, &empty_slot).unwrap();
        assert_eq!(s.tvn.as_deref(), Some("ABCD0123"));
        assert_eq!(s.encode(&empty_slot).unwrap(), wire);
    }

    #[test]
    fn ready_after_reply_with_tsn() {
        let d = Dialect {
            ready_after_reply: ReadyAfterReply::BWithTsn,
            ..Dialect::basic()
        };
        let s = SolicitedStatus::parse(b"22\x1c000\x1c\x1cB\x1c1642\x1c2010\x1d01", &d).unwrap();
        assert_eq!(
            s.info,
            SolicitedStatusInfo::ReadyAfterReply {
                completion: None,
                tsn: Some(1642),
                data: Some("2010\x1d01".into())
            }
        );
        assert!(SolicitedStatus::parse(b"22\x1c000\x1c\x1cB", &Dialect::basic()).is_err());
    }

    #[test]
    fn config_info_keeps_fields_raw() {
        let d = Dialect::basic();
        let wire = b"22\x1c000\x1c\x1cF\x1c10022\x1c0000\x1c111\x1c222\x1c333";
        let s = SolicitedStatus::parse(wire, &d).unwrap();
        let SolicitedStatusInfo::TerminalState(TerminalState::ConfigurationInfo {
            config_id,
            fields,
        }) = &s.info
        else {
            panic!()
        };
        assert_eq!((config_id.as_str(), fields.len()), ("0022", 4));
        assert_eq!(s.encode(&d).unwrap(), wire);
    }
}
