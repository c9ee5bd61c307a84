//! What the host is: where it listens, which ISO 8583 dialect it speaks, its cards, its rules and
//! its zone PIN key. Built in code ([`BankHostConfig::new`] and the fields) or read from TOML
//! ([`BankHostConfig::load`], unknown keys refused, errors naming the file and key).
//!
//! ```toml
//! listen = "127.0.0.1:9300"
//! spec = "iso87-binary"          # or a spec file: "specs/mybank.toml"
//! length_prefix = "binary-u16"   # or "ascii4"
//! deposits = true
//! latency_ms = 0
//! zpk_hex = "0123456789ABCDEFFEDCBA9876543210"
//!
//! [[cards]]
//! pan = "5413330089020011"       # a full PAN, or a prefix ending in '*': "541333*"
//! balance_minor = 100000
//! currency = "EUR"               # or "978"
//! pin = "1234"
//!
//! [[rules]]
//! card_prefix = "541333"
//! amount_min = 50001
//! action = { decline = "61" }
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use protocols::framing::LengthPrefix;
use protocols::iso8583::Spec;
use protocols::types::{Currency, Pan};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::rules::Rule;

/// The default listen address of the binary.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:9300";
/// The dialect a host speaks unless told otherwise.
pub const SPEC_DEFAULT: &str = "iso87-binary";

/// Why a configuration could not be read or is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read the configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("card {card}: {reason}")]
    Card { card: String, reason: String },
    #[error("rule {index}: {reason}")]
    Rule { index: usize, reason: String },
    #[error("zpk_hex: {0}")]
    Zpk(String),
    #[error("spec {name:?}: {reason}")]
    Spec { name: String, reason: String },
}

/// Which ISO 8583 layout the host speaks: a built-in spec by name, or a spec TOML file.
/// In TOML it is one string: a built-in name (`iso87-ascii`, `iso87-binary`) or else a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecChoice {
    Builtin(String),
    File(PathBuf),
}

impl Default for SpecChoice {
    fn default() -> Self {
        SpecChoice::Builtin(SPEC_DEFAULT.to_owned())
    }
}

impl SpecChoice {
    /// A built-in name stays a name; anything else is a path.
    pub fn parse(text: &str) -> SpecChoice {
        if Spec::builtin(text).is_some() {
            SpecChoice::Builtin(text.to_owned())
        } else {
            SpecChoice::File(PathBuf::from(text))
        }
    }

    /// Loads the spec (a built-in is shared, a file is read now).
    pub fn load(&self) -> Result<Spec, ConfigError> {
        match self {
            SpecChoice::Builtin(name) => {
                Spec::builtin(name)
                    .cloned()
                    .ok_or_else(|| ConfigError::Spec {
                        name: name.clone(),
                        reason: "not a built-in spec (iso87-ascii, iso87-binary)".into(),
                    })
            }
            SpecChoice::File(path) => Spec::load(path).map_err(|e| ConfigError::Spec {
                name: path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }
}

impl fmt::Display for SpecChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecChoice::Builtin(name) => f.write_str(name),
            SpecChoice::File(path) => write!(f, "{}", path.display()),
        }
    }
}

impl<'de> Deserialize<'de> for SpecChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| SpecChoice::parse(&s))
    }
}

impl Serialize for SpecChoice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A card (or a range of cards) the host issues.
///
/// `pan` is a full PAN, or a prefix ending in `*` (`"541333*"`): every PAN of the range then has
/// its own account, opened with `balance_minor` when first used. An exact PAN wins over a prefix,
/// a longer prefix over a shorter one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardConfig {
    pub pan: String,
    /// Opening (ledger and available) balance in minor units.
    pub balance_minor: u64,
    #[serde(
        default = "default_currency",
        deserialize_with = "de_currency",
        serialize_with = "ser_currency"
    )]
    pub currency: Currency,
    /// The clear PIN, checked against field 52 when the host has a zone PIN key.
    #[serde(default)]
    pub pin: Option<String>,
}

impl fmt::Debug for CardConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardConfig")
            .field("pan", &mask_pattern(&self.pan))
            .field("balance_minor", &self.balance_minor)
            .field("currency", &self.currency)
            .field("pin", &self.pin.as_ref().map(|_| "****"))
            .finish()
    }
}

fn default_currency() -> Currency {
    Currency::EUR
}

fn parse_currency(text: &str) -> Option<Currency> {
    Currency::from_alpha(text).or_else(|| Currency::parse(text).ok())
}

fn de_currency<'de, D: Deserializer<'de>>(d: D) -> Result<Currency, D::Error> {
    let text = String::deserialize(d)?;
    parse_currency(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "currency {text:?} is neither a known alphabetic code (EUR, USD, GBP, JPY, CHF) nor 3 digits"
        ))
    })
}

fn ser_currency<S: Serializer>(c: &Currency, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&c.to_string())
}

/// A card pattern for logs: a full PAN masked, a prefix shown (it is a BIN range, not a card).
pub(crate) fn mask_pattern(pattern: &str) -> String {
    match pattern.strip_suffix('*') {
        Some(prefix) if prefix.len() <= 8 => pattern.to_owned(),
        Some(prefix) => format!("{}*", protocols::types::mask_pan(prefix)),
        None => protocols::types::mask_pan(pattern),
    }
}

/// How a card entry matches PANs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CardPattern {
    Exact(Pan),
    Prefix(String),
}

impl CardConfig {
    /// One card, in EUR, without PIN.
    pub fn new(pan: impl Into<String>, balance_minor: u64) -> CardConfig {
        CardConfig {
            pan: pan.into(),
            balance_minor,
            currency: Currency::EUR,
            pin: None,
        }
    }

    pub fn with_pin(mut self, pin: impl Into<String>) -> CardConfig {
        self.pin = Some(pin.into());
        self
    }

    pub fn with_currency(mut self, currency: Currency) -> CardConfig {
        self.currency = currency;
        self
    }

    pub(crate) fn pattern(&self) -> Result<CardPattern, ConfigError> {
        let fail = |reason: &str| ConfigError::Card {
            card: mask_pattern(&self.pan),
            reason: reason.to_owned(),
        };
        if let Some(pin) = &self.pin {
            if !(4..=12).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
                return Err(fail("pin must be 4 to 12 digits"));
            }
        }
        if i64::try_from(self.balance_minor).is_err() {
            return Err(fail("balance_minor is too large"));
        }
        match self.pan.strip_suffix('*') {
            Some(prefix) => {
                if prefix.is_empty()
                    || prefix.len() > 19
                    || !prefix.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(fail("a prefix is 1 to 19 digits followed by '*'"));
                }
                Ok(CardPattern::Prefix(prefix.to_owned()))
            }
            None => Pan::parse(&self.pan)
                .map(CardPattern::Exact)
                .map_err(|e| fail(&format!("{e} (a prefix ends in '*')"))),
        }
    }
}

impl std::str::FromStr for CardConfig {
    type Err = ConfigError;

    /// `PAN:BALANCE[:PIN]`, e.g. `5413330089020011:100000:1234` or `541333*:50000`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts = text.split(':');
        let pan = parts.next().unwrap_or_default();
        let fail = |reason: &str| ConfigError::Card {
            card: mask_pattern(pan),
            reason: format!("{reason} (expected PAN:BALANCE[:PIN])"),
        };
        let balance_minor = parts
            .next()
            .ok_or_else(|| fail("missing balance"))?
            .parse()
            .map_err(|_| fail("balance is not a whole number of minor units"))?;
        let pin = parts.next().map(str::to_owned);
        if parts.next().is_some() {
            return Err(fail("too many parts"));
        }
        let card = CardConfig {
            pan: pan.to_owned(),
            balance_minor,
            currency: Currency::EUR,
            pin,
        };
        card.pattern()?;
        Ok(card)
    }
}

/// Everything [`crate::start`] needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankHostConfig {
    /// Where to listen; port 0 picks a free port (see `RunningBankHost::addr`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default)]
    pub spec: SpecChoice,
    /// `binary-u16` (default) or `ascii4`.
    #[serde(default)]
    pub length_prefix: LengthPrefix,
    #[serde(default)]
    pub cards: Vec<CardConfig>,
    /// Evaluated in order, first match wins (see `rules`).
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// The zone PIN key shared with the switch, 32 or 48 hex digits (double or triple length
    /// TDES). Without it PINs are not checked.
    #[serde(default)]
    pub zpk_hex: Option<String>,
    /// Whether deposits (0200, 21xxxx) are taken; otherwise they are declined 57.
    #[serde(default = "default_true")]
    pub deposits: bool,
    /// Added before every answer.
    #[serde(default)]
    pub latency_ms: u64,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9300))
}

fn default_true() -> bool {
    true
}

impl Default for BankHostConfig {
    fn default() -> Self {
        BankHostConfig {
            listen: default_listen(),
            spec: SpecChoice::default(),
            length_prefix: LengthPrefix::BinaryU16,
            cards: Vec::new(),
            rules: Vec::new(),
            zpk_hex: None,
            deposits: true,
            latency_ms: 0,
        }
    }
}

impl BankHostConfig {
    /// Listens on `127.0.0.1:0`, speaks `iso87-binary` with a binary length, no cards, no rules.
    pub fn new() -> BankHostConfig {
        BankHostConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..BankHostConfig::default()
        }
    }

    /// Reads a TOML configuration. A relative spec path is taken relative to the file.
    pub fn load(path: impl AsRef<Path>) -> Result<BankHostConfig, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::from_toml_str(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;
        if let SpecChoice::File(spec) = &config.spec {
            if spec.is_relative() {
                if let Some(dir) = path.parent() {
                    config.spec = SpecChoice::File(dir.join(spec));
                }
            }
        }
        Ok(config)
    }

    /// Parses and checks a TOML configuration (cards, rules and key; the spec file is read at
    /// start).
    pub fn from_toml_str(text: &str) -> Result<BankHostConfig, ConfigError> {
        let config: BankHostConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        config.check()?;
        Ok(config)
    }

    /// Checks cards, rules and the key without starting anything.
    pub fn check(&self) -> Result<(), ConfigError> {
        for card in &self.cards {
            card.pattern()?;
        }
        for (index, rule) in self.rules.iter().enumerate() {
            rule.check()
                .map_err(|reason| ConfigError::Rule { index, reason })?;
        }
        if let Some(zpk) = &self.zpk_hex {
            parse_zpk(zpk)?;
        }
        Ok(())
    }
}

/// The key bytes of a zone PIN key given in hex: 16 or 24 bytes (double or triple length TDES).
pub(crate) fn parse_zpk(text: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, ConfigError> {
    let bytes = zeroize::Zeroizing::new(
        hex::decode(text.trim()).map_err(|_| ConfigError::Zpk("not hexadecimal digits".into()))?,
    );
    if bytes.len() != 16 && bytes.len() != 24 {
        return Err(ConfigError::Zpk(format!(
            "a zone PIN key is 32 or 48 hex digits (double or triple length TDES), got {}",
            bytes.len() * 2
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_configuration_parses() {
        let config = BankHostConfig::from_toml_str(
            r#"
            listen = "127.0.0.1:0"
            spec = "iso87-ascii"
            length_prefix = "ascii4"
            deposits = false
            latency_ms = 5
            zpk_hex = "0123456789ABCDEFFEDCBA9876543210"

            [[cards]]
            pan = "5413330089020011"
            balance_minor = 100000
            currency = "USD"
            pin = "1234"

            [[cards]]
            pan = "541333*"
            balance_minor = 500

            [[rules]]
            card_prefix = "541333"
            amount_min = 50001
            action = { decline = "61" }

            [[rules]]
            processing_code = "31"
            action = "drop_answer"
            "#,
        )
        .unwrap();
        assert_eq!(config.spec, SpecChoice::Builtin("iso87-ascii".into()));
        assert_eq!(config.length_prefix, LengthPrefix::Ascii4);
        assert_eq!(config.cards[0].currency, Currency::USD);
        assert_eq!(config.cards[1].currency, Currency::EUR);
        assert_eq!(config.rules.len(), 2);
        assert!(!config.deposits);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = BankHostConfig::from_toml_str("listen = \"127.0.0.1:0\"\nlisten_port = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen_port"), "{e}");
        let e = BankHostConfig::from_toml_str("[[cards]]\npan = \"12\"\nbalance_minor = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("prefix ends in '*'"), "{e}");
        let e = BankHostConfig::from_toml_str("zpk_hex = \"0011\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("32 or 48 hex digits"), "{e}");
        let e = BankHostConfig::from_toml_str(
            "[[cards]]\npan = \"5413330089020011\"\nbalance_minor = 1\ncurrency = \"XYZ\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("XYZ"), "{e}");
    }

    #[test]
    fn card_flags_parse() {
        let card: CardConfig = "5413330089020011:100000:1234".parse().unwrap();
        assert_eq!(card.balance_minor, 100_000);
        assert_eq!(card.pin.as_deref(), Some("1234"));
        let range: CardConfig = "541333*:500".parse().unwrap();
        assert_eq!(
            range.pattern().unwrap(),
            CardPattern::Prefix("541333".into())
        );
        assert!("5413330089020011".parse::<CardConfig>().is_err());
        assert!("5413330089020011:1:12".parse::<CardConfig>().is_err());
        assert!(!format!("{card:?}").contains("1234"));
        assert!(!format!("{card:?}").contains("5413330089020011"));
    }

    #[test]
    fn spec_choice_is_a_name_or_a_path() {
        assert_eq!(
            SpecChoice::parse("iso87-binary"),
            SpecChoice::Builtin("iso87-binary".into())
        );
        assert_eq!(
            SpecChoice::parse("bank.toml"),
            SpecChoice::File("bank.toml".into())
        );
        assert!(SpecChoice::Builtin("nope".into()).load().is_err());
    }
}
