//! Value types shared by every codec and service: a value that exists is valid.
//!
//! Card data is sensitive. [`Pan`] and [`Track2`] mask themselves in `Debug` and `Display`
//! (first 6 / last 4 digits of a PAN, nothing of track 2 beyond the masked PAN); the clear value is
//! reachable only through an explicit `expose()`, so it cannot reach a log line by accident.

use std::fmt;

use thiserror::Error;

/// Why a value could not become one of the domain types.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValueError {
    #[error("PAN must be 12 to 19 digits, got {len} characters")]
    PanLength { len: usize },
    #[error("PAN must be digits only")]
    PanNotDigits,
    #[error("track 2 data is malformed: {0}")]
    Track2(&'static str),
    #[error("STAN must be 1 to 6 digits, got {0:?}")]
    Stan(String),
    #[error("terminal id must be 1 to 8 printable ASCII characters, got {0:?}")]
    TerminalId(String),
    #[error("RRN must be 1 to 12 alphanumeric characters, got {0:?}")]
    Rrn(String),
    #[error("currency must be a 3-digit ISO 4217 numeric code, got {0:?}")]
    Currency(String),
    #[error("amount must be 1 to 12 digits of minor units, got {0:?}")]
    Amount(String),
}

/// Masks a PAN-like digit string: first 6 and last 4 kept, the rest replaced by `*`.
/// Strings of 10 characters or fewer are masked entirely (there is nothing safe to show).
pub fn mask_pan(pan: &str) -> String {
    let n = pan.chars().count();
    if n <= 10 {
        return "*".repeat(n);
    }
    pan.chars()
        .enumerate()
        .map(|(i, c)| if i < 6 || i >= n - 4 { c } else { '*' })
        .collect()
}

/// A primary account number. `Debug`/`Display` show `123456******1234`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pan(String);

impl Pan {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        if !(12..=19).contains(&s.len()) {
            return Err(ValueError::PanLength { len: s.len() });
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValueError::PanNotDigits);
        }
        Ok(Self(s.to_owned()))
    }
    /// The clear PAN. Call it only to put the PAN on the wire or to compare it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The bank identification number: the first six digits.
    pub fn bin(&self) -> &str {
        &self.0[..6]
    }
    pub fn masked(&self) -> String {
        mask_pan(&self.0)
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({})", self.masked())
    }
}
impl fmt::Display for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Track 2 equivalent data (`PAN=YYMMSSS...`, optionally with `;`/`?` sentinels and `D` as separator).
#[derive(Clone, PartialEq, Eq)]
pub struct Track2 {
    raw: String,
    pan: Pan,
    expiry_yymm: Option<String>,
}

impl Track2 {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let body = s.strip_prefix(';').unwrap_or(s);
        let body = body.strip_suffix('?').unwrap_or(body);
        let sep = body
            .find(['=', 'D', 'd'])
            .ok_or(ValueError::Track2("no field separator"))?;
        let pan = Pan::parse(&body[..sep])?;
        let rest = &body[sep + 1..];
        let expiry_yymm = rest
            .get(..4)
            .filter(|e| e.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_owned);
        Ok(Self {
            raw: s.to_owned(),
            pan,
            expiry_yymm,
        })
    }
    pub fn pan(&self) -> &Pan {
        &self.pan
    }
    pub fn expiry_yymm(&self) -> Option<&str> {
        self.expiry_yymm.as_deref()
    }
    /// The clear track data, exactly as read.
    pub fn expose(&self) -> &str {
        &self.raw
    }
}

impl fmt::Debug for Track2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Track2({}=****)", self.pan.masked())
    }
}

/// Masks track 2 data for display: the PAN part masked, everything after the separator hidden.
pub fn mask_track2(s: &str) -> String {
    match s.find(['=', 'D', 'd']) {
        Some(i) => format!(
            "{}={}",
            mask_pan(s[..i].trim_start_matches(';')),
            "*".repeat(4)
        ),
        None => "*".repeat(s.len().min(8)),
    }
}

/// A system trace audit number: 6 digits, unique per terminal within a day.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stan(u32);

impl Stan {
    pub const MAX: u32 = 999_999;
    pub fn new(v: u32) -> Result<Self, ValueError> {
        if v > Self::MAX {
            return Err(ValueError::Stan(v.to_string()));
        }
        Ok(Self(v))
    }
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        if s.is_empty() || s.len() > 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValueError::Stan(s.to_owned()));
        }
        s.parse()
            .map(Self)
            .map_err(|_| ValueError::Stan(s.to_owned()))
    }
    pub fn value(self) -> u32 {
        self.0
    }
    /// The next STAN, wrapping from 999999 to 000001 (000000 is never used).
    pub fn next(self) -> Self {
        Self(if self.0 >= Self::MAX { 1 } else { self.0 + 1 })
    }
}
impl fmt::Display for Stan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}
impl fmt::Debug for Stan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Stan({:06})", self.0)
    }
}

/// A card acceptor terminal id (ISO 8583 field 41): up to 8 printable characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TerminalId(String);

impl TerminalId {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let t = s.trim_end();
        if t.is_empty() || t.len() > 8 || !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ValueError::TerminalId(s.to_owned()));
        }
        Ok(Self(t.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The value as field 41 carries it: left-justified, space-padded to 8.
    pub fn to_field41(&self) -> String {
        format!("{:<8}", self.0)
    }
}
impl fmt::Display for TerminalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for TerminalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TerminalId({})", self.0)
    }
}

/// A retrieval reference number (field 37), unique per terminal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rrn(String);

impl Rrn {
    /// `YDDDhh` + STAN, twelve digits: the last digit of the UTC year, the day of the year, the
    /// hour, then the STAN. STANs are unique within a day and the hour narrows it further, so
    /// the reference is unique per sender for ten years.
    pub fn julian(unix_secs: u64, stan: Stan) -> Rrn {
        let (year, day_of_year) = crate::iso8583::utc_year_and_day(unix_secs);
        let hour = unix_secs % 86_400 / 3600;
        Rrn(format!(
            "{}{day_of_year:03}{hour:02}{:06}",
            year.rem_euclid(10),
            stan.value()
        ))
    }

    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let t = s.trim();
        if t.is_empty() || t.len() > 12 || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ValueError::Rrn(s.to_owned()));
        }
        Ok(Self(t.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl fmt::Display for Rrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ISO 4217 currency, by its numeric code, with the number of minor-unit digits.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Currency {
    pub numeric: u16,
}

impl Currency {
    pub const EUR: Currency = Currency { numeric: 978 };
    pub const USD: Currency = Currency { numeric: 840 };
    pub const GBP: Currency = Currency { numeric: 826 };
    pub const JPY: Currency = Currency { numeric: 392 };

    pub fn parse(s: &str) -> Result<Self, ValueError> {
        if s.len() != 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValueError::Currency(s.to_owned()));
        }
        s.parse()
            .map(|numeric| Self { numeric })
            .map_err(|_| ValueError::Currency(s.to_owned()))
    }
    /// Minor-unit digits for the currencies we know; 2 otherwise.
    pub fn exponent(self) -> u32 {
        match self.numeric {
            392 | 410 | 704 | 152 => 0,
            48 | 368 | 414 | 512 | 788 => 3,
            _ => 2,
        }
    }
    /// The currency of an alphabetic code we know (`EUR`, `USD`, …).
    pub fn from_alpha(alpha: &str) -> Option<Self> {
        [
            Self::EUR,
            Self::USD,
            Self::GBP,
            Self::JPY,
            Self { numeric: 756 },
        ]
        .into_iter()
        .find(|c| c.alpha() == Some(alpha))
    }
    /// The alphabetic code where we know it (for logs and reports).
    pub fn alpha(self) -> Option<&'static str> {
        Some(match self.numeric {
            978 => "EUR",
            840 => "USD",
            826 => "GBP",
            392 => "JPY",
            756 => "CHF",
            _ => return None,
        })
    }
}
impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.alpha() {
            Some(a) => f.write_str(a),
            None => write!(f, "{:03}", self.numeric),
        }
    }
}

/// Money: integer minor units and a currency. Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Amount {
    pub minor: u64,
    pub currency: Currency,
}

impl Amount {
    pub const MAX_MINOR: u64 = 999_999_999_999;
    pub fn new(minor: u64, currency: Currency) -> Self {
        Self { minor, currency }
    }
    /// Parses the 12-digit zero-filled form of ISO 8583 field 4.
    pub fn parse_minor(s: &str, currency: Currency) -> Result<Self, ValueError> {
        if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValueError::Amount(s.to_owned()));
        }
        s.parse()
            .map(|minor| Self { minor, currency })
            .map_err(|_| ValueError::Amount(s.to_owned()))
    }
    /// The 12-digit zero-filled form of ISO 8583 field 4.
    pub fn to_field4(self) -> String {
        format!("{:012}", self.minor)
    }
}
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.currency.exponent();
        if e == 0 {
            return write!(f, "{} {}", self.minor, self.currency);
        }
        let d = 10u64.pow(e);
        write!(
            f,
            "{}.{:0w$} {}",
            self.minor / d,
            self.minor % d,
            self.currency,
            w = e as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pan_is_masked_in_debug_and_display() {
        let p = Pan::parse("4761739001010010").unwrap();
        assert_eq!(format!("{p}"), "476173******0010");
        assert_eq!(format!("{p:?}"), "Pan(476173******0010)");
        assert_eq!(p.bin(), "476173");
    }

    #[test]
    fn pan_rejects_short_and_non_digits() {
        assert_eq!(Pan::parse("12345"), Err(ValueError::PanLength { len: 5 }));
        assert_eq!(
            Pan::parse("47617390010100AB"),
            Err(ValueError::PanNotDigits)
        );
    }

    #[test]
    fn track2_parses_with_sentinels_and_masks() {
        let t = Track2::parse(";502265400089000092=2708620951?").unwrap();
        assert_eq!(t.pan().expose(), "502265400089000092");
        assert_eq!(t.expiry_yymm(), Some("2708"));
        let dbg = format!("{t:?}");
        assert!(!dbg.contains("2708620951"), "{dbg}");
        assert_eq!(
            mask_track2("4761739001010010=22122011143804400000"),
            "476173******0010=****"
        );
    }

    #[test]
    fn stan_wraps_and_skips_zero() {
        assert_eq!(Stan::new(999_999).unwrap().next().value(), 1);
        assert_eq!(Stan::parse("000042").unwrap().to_string(), "000042");
        assert!(Stan::parse("1234567").is_err());
        assert!(Stan::new(1_000_000).is_err());
    }

    #[test]
    fn amount_formats_with_currency_exponent() {
        assert_eq!(Amount::new(12345, Currency::EUR).to_string(), "123.45 EUR");
        assert_eq!(Amount::new(500, Currency::JPY).to_string(), "500 JPY");
        assert_eq!(Amount::new(100, Currency::EUR).to_field4(), "000000000100");
        assert!(Amount::parse_minor("12a", Currency::EUR).is_err());
    }

    #[test]
    fn terminal_id_pads_for_field41() {
        let t = TerminalId::parse("ATM00001").unwrap();
        assert_eq!(t.to_field41(), "ATM00001");
        assert_eq!(
            TerminalId::parse("ATM1    ").unwrap().to_field41(),
            "ATM1    "
        );
        assert!(TerminalId::parse("").is_err());
    }
}
