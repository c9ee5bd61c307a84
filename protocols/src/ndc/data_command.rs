//! Data command `3` (host → terminal): customisation data downloads and key changes.
//!
//! `3[flag] FS luno FS [seq] FS <subclass><id> FS record [FS record …] [FS mac]`. Subclass `1`
//! customisation: screens `11`, states `12`, config parameters `13`, FITs `15`, config id `16`,
//! enhanced config `1A`, date/time `1C`; subclass `3`/`4` (extended) key change (`42`, `34` …).
//! Each is acknowledged by a `22` ready (`9`) or a reject. Interactive transaction responses
//! (subclass `2`), `1E` currency maps and anything else are kept raw in [`DataCommandData::Other`].

use serde::Serialize;

use super::dialect::Dialect;
use super::error::{NdcError, Reason};
use super::fields::{
    fixed_digits, host_class, is_digits, is_zero, latin1, raw_trimmed, Reader, Writer,
};
use super::sensitive::KeyField;

/// A screen: number (`001`, `C00`, `u0001`) and display data (FF, SI row/col, ESC sequences …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Screen {
    pub number: String,
    pub data: String,
}

/// A state table entry: number, type letter and 8 three-character entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct State {
    pub number: String,
    pub state_type: char,
    pub entries: [String; 8],
}

/// An enhanced configuration option or timer: 2-digit number, 3-digit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NumberedValue {
    pub number: u8,
    pub value: u16,
}

/// What a data command carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum DataCommandData {
    /// `11`
    Screens(Vec<Screen>),
    /// `12`
    States(Vec<State>),
    /// `13`: old-style configuration parameters, raw records.
    ConfigurationParameters(Vec<String>),
    /// `15`: FIT records, raw (126 characters of 3-digit decimals each).
    Fits(Vec<String>),
    /// `16`: the configuration id (4 digits) the terminal reports at power-up.
    ConfigurationId(String),
    /// `1A`: `FS <luno> FS <options> FS <timers>`.
    EnhancedConfiguration {
        luno: String,
        options: Vec<NumberedValue>,
        timers: Vec<NumberedValue>,
    },
    /// `1C`: date and time, raw.
    DateTime(String),
    /// `3x`/`4x`: (extended) key change; `modifier` names the key (`1` master, `2` comms/PIN key,
    /// `5` MAC key …, see [`super::KeyChangeModifier`]), `data` is the enciphered key field as
    /// sent, masked in `Debug`/`Serialize` (read it with [`super::KeyLoad::parse_field`] or
    /// [`DataCommandData::extended_key_load`]).
    KeyChange {
        subclass: char,
        modifier: String,
        data: KeyField,
    },
    /// Anything else (interactive `2…`, `1E`, `1B` …): the identifier field and the records, raw.
    Other {
        identifier: String,
        fields: Vec<String>,
    },
}

/// Data command `3`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataCommand {
    pub response_flag: Option<char>,
    pub luno: String,
    pub sequence: String,
    pub data: DataCommandData,
    /// Fields after the last one a typed command knows (record lists take every field, so it
    /// stays empty for them), kept as sent and written back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<String>,
    pub mac: Option<String>,
    /// Empty fields after the last one (trailing FS), written back by `encode`.
    #[serde(skip_serializing_if = "is_zero")]
    pub trailing_fs: usize,
}

/// Length of the screen number at the start of a screen record.
fn screen_number_len(f: &[u8]) -> Result<usize, Reason> {
    let n = match f.first() {
        None => return Err(Reason::Missing),
        Some(b'u' | b'l') => 5,
        Some(c) if c.is_ascii_alphanumeric() => 3,
        Some(_) => {
            return Err(Reason::Invalid(
                "screen number must start with a digit or letter",
            ))
        }
    };
    match f.get(1..n) {
        Some(d) if is_digits(d) => Ok(n),
        Some(_) => Err(Reason::NonDigit),
        None => Err(Reason::TooShort {
            min: n,
            got: f.len(),
        }),
    }
}

fn parse_values(f: &[u8]) -> Result<Vec<NumberedValue>, Reason> {
    let groups = f.chunks_exact(5);
    if !groups.remainder().is_empty() {
        return Err(Reason::BadLength {
            expected: f.len() / 5 * 5 + 5,
            got: f.len(),
        });
    }
    groups
        .map(|c| {
            let (n, v) = c.split_at(2);
            Ok(NumberedValue {
                number: fixed_digits(n, 2)? as u8,
                value: fixed_digits(v, 3)? as u16,
            })
        })
        .collect()
}

impl DataCommand {
    /// A data command with no response flag, sequence number, extra fields or MAC.
    pub fn new(luno: impl Into<String>, data: DataCommandData) -> Self {
        Self {
            response_flag: None,
            luno: luno.into(),
            sequence: String::new(),
            data,
            extra: Vec::new(),
            mac: None,
            trailing_fs: 0,
        }
    }

    pub fn parse(bytes: &[u8], dialect: &Dialect) -> Result<Self, NdcError> {
        let mut r = Reader::new("3", bytes, dialect);
        let response_flag = host_class(&r, b'3', dialect)?;
        // With no records the MAC sits right after the identifier.
        let trailing_fs = r.take_trailing(4);
        let mac = r.take_mac(4, dialect);
        let luno = r.luno(1, dialect)?;
        let sequence = r.sequence(2)?;
        let id = r.req(3, "message identifier")?;
        if id.is_empty() {
            return Err(r.err(3, "message identifier", Reason::Missing));
        }
        let data = Self::parse_data(&r, id)?;
        Ok(Self {
            response_flag,
            luno,
            sequence,
            data,
            extra: r.extras(),
            mac,
            trailing_fs,
        })
    }

    fn parse_data(r: &Reader<'_>, id: &[u8]) -> Result<DataCommandData, NdcError> {
        let records = r.rest(4);
        let raw = || raw_trimmed(records);
        Ok(match id {
            b"11" => DataCommandData::Screens(
                records
                    .iter()
                    .enumerate()
                    .map(|(k, f)| {
                        let n =
                            screen_number_len(f).map_err(|e| r.err(4 + k, "screen number", e))?;
                        let (num, data) = f.split_at(n);
                        Ok(Screen {
                            number: latin1(num),
                            data: latin1(data),
                        })
                    })
                    .collect::<Result<_, NdcError>>()?,
            ),
            b"12" => DataCommandData::States(
                records
                    .iter()
                    .enumerate()
                    .map(|(k, f)| parse_state(f).map_err(|e| r.err(4 + k, "state", e)))
                    .collect::<Result<_, NdcError>>()?,
            ),
            b"13" => DataCommandData::ConfigurationParameters(raw()),
            b"15" => DataCommandData::Fits(raw()),
            b"16" => {
                let f = r.req(4, "configuration id")?;
                fixed_digits(f, 4).map_err(|e| r.err(4, "configuration id", e))?;
                r.end(5)?;
                DataCommandData::ConfigurationId(latin1(f))
            }
            b"1A" => {
                let luno = r.text(4, "enhanced configuration LUNO")?;
                let options = parse_values(r.get(5).unwrap_or_default())
                    .map_err(|e| r.err(5, "options", e))?;
                let timers = match r.get(6) {
                    Some(f) => parse_values(f).map_err(|e| r.err(6, "timers", e))?,
                    None => Vec::new(),
                };
                r.end(7)?;
                DataCommandData::EnhancedConfiguration {
                    luno,
                    options,
                    timers,
                }
            }
            b"1C" => {
                let dt = r.text(4, "date and time")?;
                if dt.is_empty() {
                    return Err(r.err(4, "date and time", Reason::Missing));
                }
                r.end(5)?;
                DataCommandData::DateTime(dt)
            }
            // A key change carries key data; without it (`4H` key read …) it is another command.
            [s @ (b'3' | b'4'), modifier @ ..]
                if !modifier.is_empty() && r.get(4).is_some_and(|f| !f.is_empty()) =>
            {
                let data = r.text(4, "key data")?;
                if data.is_empty() {
                    return Err(r.err(4, "key data", Reason::Missing));
                }
                r.end(5)?;
                DataCommandData::KeyChange {
                    subclass: char::from(*s),
                    modifier: latin1(modifier),
                    data: KeyField::new(data),
                }
            }
            _ => DataCommandData::Other {
                identifier: latin1(id),
                fields: raw(),
            },
        })
    }

    pub fn encode(&self, dialect: &Dialect) -> Result<Vec<u8>, NdcError> {
        let mut w = Writer::new("3");
        w.host_class('3', self.response_flag, dialect)?
            .fs()
            .luno(&self.luno, dialect)?;
        w.fs().sequence(&self.sequence)?.fs();
        let closed = matches!(
            self.data,
            DataCommandData::ConfigurationId(_)
                | DataCommandData::EnhancedConfiguration { .. }
                | DataCommandData::DateTime(_)
                | DataCommandData::KeyChange { .. }
        );
        if !self.extra.is_empty() && !closed {
            return Err(w.err(
                "extra field",
                Reason::Invalid("this command's records would take the extra fields"),
            ));
        }
        encode_data(&mut w, &self.data, !self.extra.is_empty())?;
        w.extra(&self.extra, &self.mac)?
            .mac(&self.mac, dialect)?
            .trailing(self.trailing_fs);
        Ok(w.finish())
    }
}

fn parse_state(f: &[u8]) -> Result<State, Reason> {
    if f.len() != 28 {
        return Err(Reason::BadLength {
            expected: 28,
            got: f.len(),
        });
    }
    let s = |a: usize, b: usize| latin1(f.get(a..b).unwrap_or_default());
    Ok(State {
        number: s(0, 3),
        state_type: char::from(f.get(3).copied().unwrap_or(b' ')),
        entries: std::array::from_fn(|k| s(4 + 3 * k, 7 + 3 * k)),
    })
}

/// `all_slots`: write every field a typed command knows, empty or not, because extra fields
/// follow (an enhanced configuration's options and timers fields).
fn encode_data(w: &mut Writer, data: &DataCommandData, all_slots: bool) -> Result<(), NdcError> {
    let records = |w: &mut Writer, name: &'static str, rs: &[String]| -> Result<(), NdcError> {
        w.no_trailing_empty(name, &rs.iter().map(String::as_str).collect::<Vec<_>>())?;
        for r in rs {
            w.fs().text(name, r)?;
        }
        Ok(())
    };
    match data {
        DataCommandData::Screens(screens) => {
            w.text("identifier", "11")?;
            for s in screens {
                let whole = format!("{}{}", s.number, s.data);
                if screen_number_len(whole.as_bytes()) != Ok(s.number.len()) {
                    return Err(w.err(
                        "screen number",
                        Reason::Invalid("not a 3-character or u/l+4-digit screen number"),
                    ));
                }
                w.fs().text("screen", &whole)?;
            }
        }
        DataCommandData::States(states) => {
            w.text("identifier", "12")?;
            for s in states {
                let whole: String = std::iter::once(s.number.clone())
                    .chain(std::iter::once(s.state_type.to_string()))
                    .chain(s.entries.iter().cloned())
                    .collect();
                let ok = s.number.chars().count() == 3
                    && s.entries.iter().all(|e| e.chars().count() == 3);
                if !ok {
                    return Err(w.err(
                        "state",
                        Reason::BadLength {
                            expected: 28,
                            got: whole.chars().count(),
                        },
                    ));
                }
                w.fs().text("state", &whole)?;
            }
        }
        DataCommandData::ConfigurationParameters(rs) => {
            w.text("identifier", "13")?;
            records(w, "configuration parameters", rs)?;
        }
        DataCommandData::Fits(rs) => {
            w.text("identifier", "15")?;
            records(w, "FIT", rs)?;
        }
        DataCommandData::ConfigurationId(id) => {
            if id.len() != 4 || !is_digits(id.as_bytes()) {
                return Err(w.err(
                    "configuration id",
                    Reason::BadLength {
                        expected: 4,
                        got: id.len(),
                    },
                ));
            }
            w.text("identifier", "16")?
                .fs()
                .text("configuration id", id)?;
        }
        DataCommandData::EnhancedConfiguration {
            luno,
            options,
            timers,
        } => {
            if luno.is_empty() && options.is_empty() && timers.is_empty() {
                return Err(w.err("enhanced configuration", Reason::Invalid("nothing to send")));
            }
            w.text("identifier", "1A")?
                .fs()
                .text("enhanced configuration LUNO", luno)?;
            if all_slots || !options.is_empty() || !timers.is_empty() {
                w.fs();
            }
            for o in options {
                w.num("option", u64::from(o.number), 2)?.num(
                    "option value",
                    u64::from(o.value),
                    3,
                )?;
            }
            if all_slots || !timers.is_empty() {
                w.fs();
                for t in timers {
                    w.num("timer", u64::from(t.number), 2)?.num(
                        "timer value",
                        u64::from(t.value),
                        3,
                    )?;
                }
            }
        }
        DataCommandData::DateTime(dt) => {
            w.no_trailing_empty("date and time", &[dt])?;
            w.text("identifier", "1C")?.fs().text("date and time", dt)?;
        }
        DataCommandData::KeyChange {
            subclass,
            modifier,
            data,
        } => {
            if !matches!(subclass, '3' | '4') || modifier.is_empty() {
                return Err(w.err(
                    "key change",
                    Reason::Invalid("subclass must be 3 or 4, with a modifier"),
                ));
            }
            w.no_trailing_empty("key data", &[data.expose()])?;
            w.ch("subclass", *subclass)?
                .text("key modifier", modifier)?
                .fs()
                .text("key data", data.expose())?;
        }
        DataCommandData::Other { identifier, fields } => {
            let typed = matches!(
                identifier.as_str(),
                "11" | "12" | "13" | "15" | "16" | "1A" | "1C"
            ) || (identifier.len() >= 2
                && identifier.starts_with(['3', '4'])
                && fields.first().is_some_and(|f| !f.is_empty()));
            if typed || identifier.is_empty() {
                return Err(w.err(
                    "identifier",
                    Reason::Invalid("empty, or an identifier with a typed variant"),
                ));
            }
            w.text("identifier", identifier)?;
            records(w, "record", fields)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screen_numbers() {
        assert_eq!(screen_number_len(b"001data"), Ok(3));
        assert_eq!(screen_number_len(b"C00"), Ok(3));
        assert_eq!(screen_number_len(b"u0001x"), Ok(5));
        assert_eq!(
            screen_number_len(b"u00"),
            Err(Reason::TooShort { min: 5, got: 3 })
        );
        assert_eq!(
            screen_number_len(b"\x0c01"),
            Err(Reason::Invalid(
                "screen number must start with a digit or letter"
            ))
        );
    }

    #[test]
    fn state_must_be_28_characters() {
        let d = Dialect::basic();
        let e = DataCommand::parse(b"3\x1c000\x1c\x1c12\x1c000A00104106400200200200104", &d)
            .unwrap_err();
        assert_eq!(
            e.reason(),
            Some(&Reason::BadLength {
                expected: 28,
                got: 27
            })
        );
    }

    #[test]
    fn enhanced_config_values_are_five_digit_groups() {
        let d = Dialect::basic();
        assert!(DataCommand::parse(b"3\x1c000\x1c\x1c1A\x1c000\x1c0000", &d).is_err());
        let c = DataCommand::parse(b"3\x1c000\x1c\x1c1A\x1c000\x1c\x1c00030", &d).unwrap();
        let DataCommandData::EnhancedConfiguration {
            options, timers, ..
        } = &c.data
        else {
            panic!()
        };
        assert!(options.is_empty());
        assert_eq!(
            timers,
            &[NumberedValue {
                number: 0,
                value: 30
            }]
        );
        assert_eq!(
            c.encode(&d).unwrap(),
            b"3\x1c000\x1c\x1c1A\x1c000\x1c\x1c00030"
        );
    }
}
