//! Typed access to the fields an ATM transaction uses, and building a response from a request.
//!
//! The generic [`Message::get`]/[`Message::set`] move bytes; these accessors move meaning: a
//! [`Pan`], a [`Stan`], an amount in minor units, the structured fields 54, 90 and 95. A getter
//! returns `Ok(None)` when the field is absent and an error when it is present but malformed, so a
//! bad value from a peer is an error to answer, never a panic.

use std::fmt;

use crate::types::{Currency, Pan, Rrn, Stan, TerminalId, Track2, ValueError};

use super::error::FieldError;
use super::message::Message;
use super::mti::Mti;

/// Fields a response copies from its request (when present): card and amount, the transaction
/// key (7, 11, 41), times, institution ids, RRN, currency, original data and replacement amounts.
/// Never track data, PIN block, ICC data or MACs.
pub const ECHO_FIELDS: &[u8] = &[
    2, 3, 4, 7, 11, 12, 13, 32, 33, 37, 41, 42, 49, 90, 95, 102, 103,
];

fn malformed(field: u8, reason: &'static str) -> FieldError {
    FieldError::Malformed { field, reason }
}

fn digits(field: u8, s: &str, len: usize) -> Result<u64, FieldError> {
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(field, "expected a fixed number of digits"));
    }
    s.parse().map_err(|_| malformed(field, "expected digits"))
}

fn two(s: &str, at: usize) -> Option<u8> {
    s.get(at..at + 2)
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))?
        .parse()
        .ok()
}

/// Debit or credit, the `x` of ISO `x+n` amounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    Credit,
    Debit,
}

impl Sign {
    fn letter(self) -> char {
        match self {
            Sign::Credit => 'C',
            Sign::Debit => 'D',
        }
    }
    fn parse(c: u8) -> Option<Sign> {
        match c {
            b'C' => Some(Sign::Credit),
            b'D' => Some(Sign::Debit),
            _ => None,
        }
    }
}

/// An amount with a debit/credit sign, as fee and balance fields carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedAmount {
    pub sign: Sign,
    pub minor: u64,
}

/// Processing code (field 3): transaction type, from-account type, to-account type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessingCode {
    /// 01 withdrawal, 21 deposit, 31 balance inquiry …
    pub transaction_type: u8,
    pub from_account: u8,
    pub to_account: u8,
}

impl fmt::Display for ProcessingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}{:02}{:02}",
            self.transaction_type % 100,
            self.from_account % 100,
            self.to_account % 100
        )
    }
}

/// Transmission date and time (field 7, `MMDDhhmmss`, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransmissionDateTime {
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl TransmissionDateTime {
    /// Parses `MMDDhhmmss`, checking the ranges.
    pub fn parse(s: &str) -> Option<TransmissionDateTime> {
        if s.len() != 10 {
            return None;
        }
        let t = TransmissionDateTime {
            month: two(s, 0)?,
            day: two(s, 2)?,
            hour: two(s, 4)?,
            minute: two(s, 6)?,
            second: two(s, 8)?,
        };
        let ok = (1..=12).contains(&t.month)
            && (1..=31).contains(&t.day)
            && t.hour < 24
            && t.minute < 60
            && t.second < 60;
        ok.then_some(t)
    }
}

impl TransmissionDateTime {
    /// The UTC transmission date-time of a Unix time.
    pub fn from_unix_secs(unix_secs: u64) -> TransmissionDateTime {
        let [month, day, hour, minute, second] = utc_fields(unix_secs);
        TransmissionDateTime {
            month,
            day,
            hour,
            minute,
            second,
        }
    }
}

/// The UTC year and day of the year (1 to 366) of a Unix time: the `YDDD` of a retrieval
/// reference number ([`Rrn::julian`](crate::types::Rrn::julian)).
pub fn utc_year_and_day(unix_secs: u64) -> (i64, u16) {
    let days = (unix_secs / 86_400) as i64;
    let (year, _, _) = civil_from_days(days);
    (year, (days - days_from_civil(year, 1, 1) + 1) as u16)
}

/// Year, month and day of a day count since 1970-01-01 (Howard Hinnant's civil-from-days).
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Days since 1970-01-01 of a date (Howard Hinnant's days-from-civil).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Month, day, hour, minute and second (UTC) of a Unix time: fields 7, 12 and 13 need no more
/// than that, so no calendar crate.
pub fn utc_fields(unix_secs: u64) -> [u8; 5] {
    let (_, month, day) = civil_from_days((unix_secs / 86_400) as i64);
    let rem = unix_secs % 86_400;
    [
        month,
        day,
        (rem / 3600) as u8,
        (rem / 60 % 60) as u8,
        (rem % 60) as u8,
    ]
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    #[test]
    fn calendar_fields_of_known_instants() {
        assert_eq!(utc_fields(0), [1, 1, 0, 0, 0]);
        assert_eq!(utc_year_and_day(0), (1970, 1));
        // 2024-02-29 23:59:59 and 2024-12-31 23:59:59 (a leap year), then 2025-01-01.
        assert_eq!(utc_fields(1_709_251_199), [2, 29, 23, 59, 59]);
        assert_eq!(utc_year_and_day(1_709_251_199), (2024, 60));
        assert_eq!(utc_year_and_day(1_735_689_599), (2024, 366));
        assert_eq!(utc_year_and_day(1_735_689_600), (2025, 1));
        assert_eq!(utc_fields(1_735_689_600), [1, 1, 0, 0, 0]);
        assert_eq!(
            TransmissionDateTime::from_unix_secs(1_795_606_836).to_string(),
            "1125114036"
        );
    }
}

impl fmt::Display for TransmissionDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}{:02}{:02}{:02}{:02}",
            self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Local transaction time (field 12, `hhmmss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}{:02}{:02}", self.hour, self.minute, self.second)
    }
}

/// Local transaction date (field 13, `MMDD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalDate {
    pub month: u8,
    pub day: u8,
}

impl fmt::Display for LocalDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}{:02}", self.month, self.day)
    }
}

/// A PIN block (field 52) exactly as the spec carries it: 8 bytes in iso87-binary, 16 hex
/// characters in iso87-ascii. It never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct PinBlock(Vec<u8>);

impl PinBlock {
    pub fn new(bytes: impl Into<Vec<u8>>) -> PinBlock {
        PinBlock(bytes.into())
    }
    /// The clear block, for the HSM.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for PinBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinBlock(****)")
    }
}

/// One entry of additional amounts (field 54): 20 characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdditionalAmount {
    /// Account type, 2 digits (00 default, 10 savings, 20 checking …).
    pub account_type: u8,
    /// Amount type, 2 digits (01 ledger balance, 02 available balance …).
    pub amount_type: u8,
    pub currency: Currency,
    pub amount: SignedAmount,
}

impl AdditionalAmount {
    fn parse(s: &str) -> Option<AdditionalAmount> {
        let amount = s
            .get(8..20)
            .filter(|a| a.bytes().all(|b| b.is_ascii_digit()))?
            .parse()
            .ok()?;
        Some(AdditionalAmount {
            account_type: two(s, 0)?,
            amount_type: two(s, 2)?,
            currency: Currency::parse(s.get(4..7)?).ok()?,
            amount: SignedAmount {
                sign: Sign::parse(*s.as_bytes().get(7)?)?,
                minor: amount,
            },
        })
    }

    fn write(&self, out: &mut String) -> Result<(), FieldError> {
        use std::fmt::Write;
        if self.account_type > 99
            || self.amount_type > 99
            || self.currency.numeric > 999
            || self.amount.minor > 999_999_999_999
        {
            return Err(malformed(
                54,
                "account/amount type over 99, currency over 999 or amount over 12 digits",
            ));
        }
        let _ = write!(
            out,
            "{:02}{:02}{:03}{}{:012}",
            self.account_type,
            self.amount_type,
            self.currency.numeric,
            self.amount.sign.letter(),
            self.amount.minor
        );
        Ok(())
    }
}

/// Original data elements (field 90), identifying the transaction a reversal or advice refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalData {
    pub mti: Mti,
    pub stan: Stan,
    /// `None` when the originator sent zeros.
    pub transmission: Option<TransmissionDateTime>,
    /// Acquiring institution id (11 digits, zero-filled on the wire).
    pub acquirer_id: u64,
    /// Forwarding institution id (11 digits, zero-filled on the wire).
    pub forwarding_id: u64,
}

/// Replacement amounts (field 95): what was actually done, e.g. a partial dispense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplacementAmounts {
    pub actual_amount: u64,
    pub settlement_amount: u64,
    pub transaction_fee: SignedAmount,
    pub settlement_fee: SignedAmount,
}

const MAX_12: u64 = 999_999_999_999;
const MAX_8: u64 = 99_999_999;

impl Message {
    fn text(&self, n: u8) -> Result<Option<&str>, FieldError> {
        match self.get(n) {
            None => Ok(None),
            Some(v) => std::str::from_utf8(v)
                .map(Some)
                .map_err(|_| malformed(n, "not text")),
        }
    }

    fn put(&mut self, n: u8, value: &str) -> &mut Self {
        // Typed setters only write data fields.
        let _ = self.set(n, value.as_bytes());
        self
    }

    fn value_err(field: u8) -> impl Fn(ValueError) -> FieldError {
        move |source| FieldError::Value { field, source }
    }

    /// Field 2.
    pub fn pan(&self) -> Result<Option<Pan>, FieldError> {
        self.text(2)?
            .map(|s| Pan::parse(s).map_err(Self::value_err(2)))
            .transpose()
    }
    pub fn set_pan(&mut self, pan: &Pan) -> &mut Self {
        self.put(2, pan.expose())
    }

    /// Field 3.
    pub fn processing_code(&self) -> Result<Option<ProcessingCode>, FieldError> {
        let Some(s) = self.text(3)? else {
            return Ok(None);
        };
        digits(3, s, 6)?;
        let p = (two(s, 0), two(s, 2), two(s, 4));
        match p {
            (Some(transaction_type), Some(from_account), Some(to_account)) => {
                Ok(Some(ProcessingCode {
                    transaction_type,
                    from_account,
                    to_account,
                }))
            }
            _ => Err(malformed(3, "expected 6 digits")),
        }
    }
    pub fn set_processing_code(&mut self, code: ProcessingCode) -> &mut Self {
        self.put(3, &code.to_string())
    }

    /// Field 4, in minor units.
    pub fn amount(&self) -> Result<Option<u64>, FieldError> {
        self.text(4)?.map(|s| digits(4, s, 12)).transpose()
    }
    pub fn set_amount(&mut self, minor: u64) -> Result<&mut Self, FieldError> {
        if minor > MAX_12 {
            return Err(malformed(4, "amount over 12 digits"));
        }
        Ok(self.put(4, &format!("{minor:012}")))
    }

    /// Field 7.
    pub fn transmission_datetime(&self) -> Result<Option<TransmissionDateTime>, FieldError> {
        self.text(7)?
            .map(|s| TransmissionDateTime::parse(s).ok_or(malformed(7, "expected MMDDhhmmss")))
            .transpose()
    }
    pub fn set_transmission_datetime(&mut self, t: TransmissionDateTime) -> &mut Self {
        self.put(7, &t.to_string())
    }

    /// Field 11.
    pub fn stan(&self) -> Result<Option<Stan>, FieldError> {
        let Some(s) = self.text(11)? else {
            return Ok(None);
        };
        digits(11, s, 6)?;
        Stan::parse(s).map(Some).map_err(Self::value_err(11))
    }
    pub fn set_stan(&mut self, stan: Stan) -> &mut Self {
        self.put(11, &stan.to_string())
    }

    /// Field 12.
    pub fn local_time(&self) -> Result<Option<LocalTime>, FieldError> {
        let Some(s) = self.text(12)? else {
            return Ok(None);
        };
        digits(12, s, 6)?;
        match (two(s, 0), two(s, 2), two(s, 4)) {
            (Some(hour @ 0..=23), Some(minute @ 0..=59), Some(second @ 0..=59)) => {
                Ok(Some(LocalTime {
                    hour,
                    minute,
                    second,
                }))
            }
            _ => Err(malformed(12, "expected hhmmss")),
        }
    }
    pub fn set_local_time(&mut self, t: LocalTime) -> &mut Self {
        self.put(12, &t.to_string())
    }

    /// Field 13.
    pub fn local_date(&self) -> Result<Option<LocalDate>, FieldError> {
        let Some(s) = self.text(13)? else {
            return Ok(None);
        };
        digits(13, s, 4)?;
        match (two(s, 0), two(s, 2)) {
            (Some(month @ 1..=12), Some(day @ 1..=31)) => Ok(Some(LocalDate { month, day })),
            _ => Err(malformed(13, "expected MMDD")),
        }
    }
    pub fn set_local_date(&mut self, d: LocalDate) -> &mut Self {
        self.put(13, &d.to_string())
    }

    /// Field 35.
    pub fn track2(&self) -> Result<Option<Track2>, FieldError> {
        self.text(35)?
            .map(|s| Track2::parse(s).map_err(Self::value_err(35)))
            .transpose()
    }
    pub fn set_track2(&mut self, t: &Track2) -> &mut Self {
        self.put(35, t.expose())
    }

    /// Field 37.
    pub fn rrn(&self) -> Result<Option<Rrn>, FieldError> {
        self.text(37)?
            .map(|s| Rrn::parse(s).map_err(Self::value_err(37)))
            .transpose()
    }
    /// Writes the RRN left-justified and space-padded to 12.
    pub fn set_rrn(&mut self, rrn: &Rrn) -> &mut Self {
        self.put(37, &format!("{:<12}", rrn.as_str()))
    }

    /// Field 39: two alphanumeric characters ("00" approved …).
    pub fn response_code(&self) -> Result<Option<&str>, FieldError> {
        match self.text(39)? {
            Some(s) if s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphanumeric()) => Ok(Some(s)),
            Some(_) => Err(malformed(39, "expected 2 alphanumeric characters")),
            None => Ok(None),
        }
    }
    pub fn set_response_code(&mut self, code: &str) -> Result<&mut Self, FieldError> {
        if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(malformed(39, "expected 2 alphanumeric characters"));
        }
        Ok(self.put(39, code))
    }

    /// Field 41.
    pub fn terminal_id(&self) -> Result<Option<TerminalId>, FieldError> {
        self.text(41)?
            .map(|s| TerminalId::parse(s).map_err(Self::value_err(41)))
            .transpose()
    }
    pub fn set_terminal_id(&mut self, tid: &TerminalId) -> &mut Self {
        self.put(41, &tid.to_field41())
    }

    /// Field 49.
    pub fn currency(&self) -> Result<Option<Currency>, FieldError> {
        self.text(49)?
            .map(|s| Currency::parse(s).map_err(Self::value_err(49)))
            .transpose()
    }
    pub fn set_currency(&mut self, c: Currency) -> Result<&mut Self, FieldError> {
        if c.numeric > 999 {
            return Err(malformed(49, "currency code over 3 digits"));
        }
        Ok(self.put(49, &format!("{:03}", c.numeric)))
    }

    /// Field 52.
    pub fn pin_block(&self) -> Option<PinBlock> {
        self.get(52).map(PinBlock::new)
    }
    pub fn set_pin_block(&mut self, block: &PinBlock) -> &mut Self {
        let _ = self.set(52, block.expose());
        self
    }

    /// Field 54: a list of 20-character entries.
    pub fn additional_amounts(&self) -> Result<Option<Vec<AdditionalAmount>>, FieldError> {
        let Some(s) = self.text(54)? else {
            return Ok(None);
        };
        if s.len() % 20 != 0 {
            return Err(malformed(54, "length is not a multiple of 20"));
        }
        (0..s.len() / 20)
            .map(|i| {
                s.get(i * 20..i * 20 + 20)
                    .and_then(AdditionalAmount::parse)
                    .ok_or(malformed(
                        54,
                        "entry is not type(2) type(2) currency(3) C/D amount(12)",
                    ))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
    pub fn set_additional_amounts(
        &mut self,
        amounts: &[AdditionalAmount],
    ) -> Result<&mut Self, FieldError> {
        let mut s = String::with_capacity(amounts.len() * 20);
        for a in amounts {
            a.write(&mut s)?;
        }
        Ok(self.put(54, &s))
    }

    /// Field 70: 001 sign-on, 002 sign-off, 301 echo …
    pub fn network_management_code(&self) -> Result<Option<u16>, FieldError> {
        self.text(70)?
            .map(|s| digits(70, s, 3).map(|v| v as u16))
            .transpose()
    }
    pub fn set_network_management_code(&mut self, code: u16) -> Result<&mut Self, FieldError> {
        if code > 999 {
            return Err(malformed(70, "code over 3 digits"));
        }
        Ok(self.put(70, &format!("{code:03}")))
    }

    /// Field 90.
    pub fn original_data(&self) -> Result<Option<OriginalData>, FieldError> {
        let Some(s) = self.text(90)? else {
            return Ok(None);
        };
        if s.len() != 42 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed(90, "expected 42 digits"));
        }
        let part = |r: std::ops::Range<usize>| s.get(r).unwrap_or_default();
        let mti = Mti::parse(part(0..4))?;
        let stan = Stan::parse(part(4..10)).map_err(Self::value_err(90))?;
        let dt = part(10..20);
        let transmission = if dt == "0000000000" {
            None
        } else {
            Some(TransmissionDateTime::parse(dt).ok_or(malformed(
                90,
                "original transmission date-time is not MMDDhhmmss",
            ))?)
        };
        let acquirer_id = part(20..31)
            .parse()
            .map_err(|_| malformed(90, "acquirer id"))?;
        let forwarding_id = part(31..42)
            .parse()
            .map_err(|_| malformed(90, "forwarding id"))?;
        Ok(Some(OriginalData {
            mti,
            stan,
            transmission,
            acquirer_id,
            forwarding_id,
        }))
    }
    pub fn set_original_data(&mut self, o: &OriginalData) -> Result<&mut Self, FieldError> {
        if o.acquirer_id > 99_999_999_999 || o.forwarding_id > 99_999_999_999 {
            return Err(malformed(90, "institution id over 11 digits"));
        }
        let dt = o
            .transmission
            .map_or_else(|| "0000000000".to_owned(), |t| t.to_string());
        let s = format!(
            "{}{}{}{:011}{:011}",
            o.mti, o.stan, dt, o.acquirer_id, o.forwarding_id
        );
        Ok(self.put(90, &s))
    }

    /// Field 95.
    pub fn replacement_amounts(&self) -> Result<Option<ReplacementAmounts>, FieldError> {
        let Some(s) = self.text(95)? else {
            return Ok(None);
        };
        let bad = || malformed(95, "expected amount(12) amount(12) C/D fee(8) C/D fee(8)");
        if s.len() != 42 {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u64, FieldError> {
            let p = s.get(r).ok_or_else(bad)?;
            if !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        let sign = |i: usize| {
            s.as_bytes()
                .get(i)
                .copied()
                .and_then(Sign::parse)
                .ok_or_else(bad)
        };
        Ok(Some(ReplacementAmounts {
            actual_amount: num(0..12)?,
            settlement_amount: num(12..24)?,
            transaction_fee: SignedAmount {
                sign: sign(24)?,
                minor: num(25..33)?,
            },
            settlement_fee: SignedAmount {
                sign: sign(33)?,
                minor: num(34..42)?,
            },
        }))
    }
    pub fn set_replacement_amounts(
        &mut self,
        r: &ReplacementAmounts,
    ) -> Result<&mut Self, FieldError> {
        if r.actual_amount > MAX_12
            || r.settlement_amount > MAX_12
            || r.transaction_fee.minor > MAX_8
            || r.settlement_fee.minor > MAX_8
        {
            return Err(malformed(95, "amount over 12 digits or fee over 8 digits"));
        }
        let s = format!(
            "{:012}{:012}{}{:08}{}{:08}",
            r.actual_amount,
            r.settlement_amount,
            r.transaction_fee.sign.letter(),
            r.transaction_fee.minor,
            r.settlement_fee.sign.letter(),
            r.settlement_fee.minor
        );
        Ok(self.put(95, &s))
    }

    /// The response to `request`: its MTI's response class (0100 → 0110, 0421 → 0430 …) and the
    /// [`ECHO_FIELDS`] it carries. The caller adds 38, 39, 54 … as the outcome requires.
    pub fn response_to(request: &Message) -> Message {
        let mut resp = Message::with_mti(request.mti().response());
        for &n in ECHO_FIELDS {
            if let Some(v) = request.get(n) {
                let _ = resp.set(n, v);
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_fields_round_trip() {
        let mut m = Message::new("0100").unwrap();
        m.set_pan(&Pan::parse("4761739001010010").unwrap())
            .set_processing_code(ProcessingCode {
                transaction_type: 1,
                from_account: 0,
                to_account: 0,
            })
            .set_stan(Stan::new(42).unwrap())
            .set_terminal_id(&TerminalId::parse("ATM1").unwrap())
            .set_local_time(LocalTime {
                hour: 13,
                minute: 5,
                second: 9,
            })
            .set_local_date(LocalDate { month: 11, day: 25 })
            .set_rrn(&Rrn::parse("123456789012").unwrap());
        m.set_amount(10_000)
            .unwrap()
            .set_currency(Currency::EUR)
            .unwrap();
        m.set_network_management_code(301).unwrap();
        assert_eq!(m.get_str(3), Some("010000"));
        assert_eq!(m.get_str(4), Some("000000010000"));
        assert_eq!(m.get_str(11), Some("000042"));
        assert_eq!(m.get_str(41), Some("ATM1    "));
        assert_eq!(m.get_str(70), Some("301"));
        assert_eq!(m.pan().unwrap().unwrap().bin(), "476173");
        assert_eq!(m.amount(), Ok(Some(10_000)));
        assert_eq!(m.stan().unwrap().unwrap().value(), 42);
        assert_eq!(m.terminal_id().unwrap().unwrap().as_str(), "ATM1");
        assert_eq!(m.currency(), Ok(Some(Currency::EUR)));
        assert_eq!(m.local_time().unwrap().unwrap().to_string(), "130509");
        assert_eq!(m.local_date().unwrap().unwrap().to_string(), "1125");
        assert_eq!(m.processing_code().unwrap().unwrap().transaction_type, 1);
        assert_eq!(m.network_management_code(), Ok(Some(301)));
        assert_eq!(m.response_code(), Ok(None));
        assert!(m.set_amount(1_000_000_000_000).is_err());
    }

    #[test]
    fn malformed_values_are_errors_not_panics() {
        let mut m = Message::new("0100").unwrap();
        m.set_str(4, "12x")
            .unwrap()
            .set_str(11, "")
            .unwrap()
            .set_str(7, "1399999999")
            .unwrap();
        m.set(2, [0xFF, 0xFE])
            .unwrap()
            .set_str(54, "short")
            .unwrap()
            .set_str(90, "1")
            .unwrap();
        m.set_str(95, "x".repeat(42).as_str())
            .unwrap()
            .set_str(12, "256060")
            .unwrap();
        assert!(m.amount().is_err());
        assert!(m.stan().is_err());
        assert!(m.transmission_datetime().is_err());
        assert!(m.pan().is_err());
        assert!(m.additional_amounts().is_err());
        assert!(m.original_data().is_err());
        assert!(m.replacement_amounts().is_err());
        assert!(m.local_time().is_err());
        let e = m.amount().unwrap_err();
        assert!(e.to_string().contains("field 4"), "{e}");
    }

    #[test]
    fn additional_amounts_field_54() {
        let mut m = Message::new("0110").unwrap();
        let balances = [
            AdditionalAmount {
                account_type: 10,
                amount_type: 1,
                currency: Currency::EUR,
                amount: SignedAmount {
                    sign: Sign::Credit,
                    minor: 123_456,
                },
            },
            AdditionalAmount {
                account_type: 10,
                amount_type: 2,
                currency: Currency::EUR,
                amount: SignedAmount {
                    sign: Sign::Debit,
                    minor: 5,
                },
            },
        ];
        m.set_additional_amounts(&balances).unwrap();
        assert_eq!(
            m.get_str(54),
            Some("1001978C0000001234561002978D000000000005")
        );
        assert_eq!(m.additional_amounts().unwrap().unwrap(), balances);
    }

    #[test]
    fn original_data_field_90_and_replacement_amounts_field_95() {
        let mut m = Message::new("0420").unwrap();
        let o = OriginalData {
            mti: Mti::parse("0100").unwrap(),
            stan: Stan::new(123).unwrap(),
            transmission: TransmissionDateTime::parse("1125120000"),
            acquirer_id: 12345,
            forwarding_id: 0,
        };
        m.set_original_data(&o).unwrap();
        assert_eq!(
            m.get_str(90),
            Some("010000012311251200000000001234500000000000")
        );
        assert_eq!(m.original_data().unwrap().unwrap(), o);
        let r = ReplacementAmounts {
            actual_amount: 4_000,
            settlement_amount: 0,
            transaction_fee: SignedAmount {
                sign: Sign::Debit,
                minor: 150,
            },
            settlement_fee: SignedAmount {
                sign: Sign::Credit,
                minor: 0,
            },
        };
        m.set_replacement_amounts(&r).unwrap();
        assert_eq!(
            m.get_str(95),
            Some("000000004000000000000000D00000150C00000000")
        );
        assert_eq!(m.replacement_amounts().unwrap().unwrap(), r);
    }

    #[test]
    fn response_copies_echo_fields_only() {
        let mut req = Message::new("0421").unwrap();
        req.set_str(2, "4761739001010010").unwrap();
        req.set_str(11, "000001").unwrap();
        req.set_str(35, "4761739001010010=2212").unwrap();
        req.set(52, [0u8; 8]).unwrap();
        req.set_str(41, "ATM00001").unwrap();
        let resp = Message::response_to(&req);
        assert_eq!(resp.mti().as_str(), "0430");
        assert_eq!(resp.field_numbers().collect::<Vec<_>>(), vec![2, 11, 41]);
    }

    #[test]
    fn pin_block_never_prints() {
        let p = PinBlock::new(*b"0123456789ABCDEF");
        assert_eq!(format!("{p:?}"), "PinBlock(****)");
        let mut m = Message::new("0100").unwrap();
        m.set_pin_block(&p);
        assert_eq!(m.pin_block().unwrap().expose(), b"0123456789ABCDEF");
    }
}
