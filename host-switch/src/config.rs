//! Switch configuration: one TOML file, every key documented here with its default.
//! Unknown keys are errors; every error names the file, the key and the reason.
//!
//! The types serialize back to the same TOML (`toml::to_string(&config)`), so tests and the lab
//! write a switch's configuration from these types instead of by hand; [`Config::new`] and the
//! section constructors give the defaults a file that leaves the keys out gets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::breaker::BreakerConfig;
use crate::domain::pin::{BinRule, BinRules, PinMethod};
use crate::domain::routing::{Route, RouteEntry, RouteTable};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The operator's control socket (unix socket, mode 0600): card unblock/status, ZPK rotation,
    /// key list. None: no control socket. A top-level key: write it before the first [section].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_socket: Option<PathBuf>,
    pub listen: ListenConfig,
    /// Required when `listen.mode = "tls"` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub journal: JournalConfig,
    pub ledger: LedgerConfig,
    /// BIN/prefix → route. Cards matching no entry are declined with 14.
    #[serde(default, serialize_with = "ser::routes")]
    pub routes: Vec<RouteEntry>,
    #[serde(default)]
    pub recovery: RecoveryConfig,
    /// The key store (zone master key, zone PIN key, PIN verification keys). None: no key
    /// exchange (0800/161 is answered 96) and no PIN verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<KeysConfig>,
    /// PIN verification for wallet cards; needs `[keys]`. None: no PIN is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<PinConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// The key store file (locked while the switch runs).
    pub store: PathBuf,
    /// The key-encryption key: a file of 64 hex digits, mode 0600 …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kek_file: Option<PathBuf>,
    /// … or an environment variable holding them. Exactly one of the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kek_env: Option<String>,
    /// Make a new zone PIN key version this long after the current one was created (default 0:
    /// no schedule; `switchctl keys rotate-zpk` rotates on demand).
    #[serde(default)]
    pub zpk_rotate_secs: u64,
    /// How long an old ZPK version stays accepted after the next one was created (default 300).
    #[serde(default = "default_zpk_grace_secs")]
    pub zpk_grace_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PinConfig {
    /// Wrong PINs in a row that block a card (default 3).
    #[serde(default = "default_max_tries")]
    pub max_tries: u8,
    /// The issuer's cards file (PVV or IBM 3624 offset per card reference), read at start.
    pub cards_file: PathBuf,
    /// Which cards have their PIN checked, and how: longest prefix wins; cards matching no rule
    /// are not PIN-checked.
    #[serde(default)]
    pub bins: Vec<BinRuleConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PinMethodName {
    VisaPvv,
    Ibm3624,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BinRuleConfig {
    /// 1 to 11 leading digits of the PAN.
    pub prefix: String,
    pub method: PinMethodName,
    /// Name of the PIN verification key in the key store, e.g. `pvk/visa`.
    pub pvk: String,
    /// ibm3624 only: 16 decimal digits (default "0123456789012345").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimalization: Option<String>,
    /// ibm3624 only (required): first PAN digit of the validation data (0-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_start: Option<usize>,
    /// ibm3624 only (required): number of PAN digits in the validation data (1-16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_len: Option<usize>,
    /// ibm3624 only: hex digit padding the validation data to 16 (default "F").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad: Option<char>,
}

impl BinRuleConfig {
    fn to_rule(&self) -> Result<BinRule, String> {
        if self.prefix.is_empty()
            || self.prefix.len() > 11
            || !self.prefix.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(format!("prefix {:?} must be 1 to 11 digits", self.prefix));
        }
        let pvk = keystore::KeyName::new(self.pvk.clone()).map_err(|e| format!("pvk: {e}"))?;
        let method = match self.method {
            PinMethodName::VisaPvv => {
                let ibm_only = [
                    ("decimalization", self.decimalization.is_some()),
                    ("validation_start", self.validation_start.is_some()),
                    ("validation_len", self.validation_len.is_some()),
                    ("pad", self.pad.is_some()),
                ];
                if let Some((key, _)) = ibm_only.iter().find(|(_, set)| *set) {
                    return Err(format!("{key} applies to method \"ibm3624\" only"));
                }
                PinMethod::VisaPvv
            }
            PinMethodName::Ibm3624 => self.ibm3624()?,
        };
        Ok(BinRule {
            prefix: self.prefix.clone(),
            method,
            pvk,
        })
    }

    fn ibm3624(&self) -> Result<PinMethod, String> {
        let decimalization = self
            .decimalization
            .clone()
            .unwrap_or_else(|| "0123456789012345".to_owned());
        if decimalization.len() != 16 || !decimalization.bytes().all(|b| b.is_ascii_digit()) {
            return Err("decimalization must be 16 decimal digits".into());
        }
        let validation_start = self
            .validation_start
            .ok_or("validation_start is required for method \"ibm3624\"")?;
        let validation_len = self
            .validation_len
            .ok_or("validation_len is required for method \"ibm3624\"")?;
        if !(1..=16).contains(&validation_len) || validation_start + validation_len > 19 {
            return Err(
                "validation_len must be 1 to 16 and validation_start + validation_len at most 19"
                    .into(),
            );
        }
        let pad = self.pad.unwrap_or('F').to_ascii_uppercase();
        if !pad.is_ascii_hexdigit() {
            return Err("pad must be one hex digit".into());
        }
        Ok(PinMethod::Ibm3624 {
            decimalization,
            validation_start,
            validation_len,
            pad,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ListenMode {
    /// Mutual TLS: clients must present a certificate whose identity covers field 41.
    #[default]
    Tls,
    /// Plain TCP, for the lab only. Never expose it.
    Plain,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// Acquirer endpoint, e.g. `0.0.0.0:8583`.
    pub address: SocketAddr,
    #[serde(default)]
    pub mode: ListenMode,
    /// Connections beyond this wait in the accept queue (default 1024).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Requests in progress per connection (default 256).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight_per_connection: usize,
    /// Largest accepted frame in bytes (default 4096).
    #[serde(default = "default_max_frame")]
    pub max_frame_bytes: usize,
    /// A connection with no frame for this long is closed (default 300000 ms; agents echo every 60 s).
    #[serde(default = "default_idle_ms")]
    pub idle_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA that signs agent (client) certificates.
    pub client_ca: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// sled directory (default `./switch-journal`).
    #[serde(default = "default_journal_path")]
    pub path: PathBuf,
    /// How long a finished transaction stays in the hot journal before it moves to the archive
    /// (default 7 days). Archived transactions are still found by lookups, reversals and
    /// reconciliation; start-up only reads what is open.
    #[serde(default = "default_retention_secs")]
    pub retention_secs: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            path: default_journal_path(),
            retention_secs: default_retention_secs(),
        }
    }
}

fn default_retention_secs() -> u64 {
    7 * 24 * 3600
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// Base URL of the wallet ledger, e.g. `http://127.0.0.1:8081`.
    pub url: String,
    /// Whole-call timeout (default 3000 ms, inside the ATM's ~25 s budget even with retries).
    #[serde(default = "default_ledger_timeout_ms")]
    pub timeout_ms: u64,
    /// TCP connect timeout (default 1000 ms).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Retries of a transient failure; every ledger call is idempotent (default 2).
    #[serde(default = "default_retries")]
    pub retries: usize,
    #[serde(default, serialize_with = "ser::breaker")]
    pub breaker: BreakerConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryConfig {
    /// How often unconfirmed ledger work (captures, voids, compensations) is retried (default 2000 ms).
    #[serde(default = "default_resume_ms")]
    pub resume_interval_ms: u64,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            resume_interval_ms: default_resume_ms(),
        }
    }
}

fn default_max_connections() -> usize {
    1024
}
fn default_max_in_flight() -> usize {
    256
}
fn default_max_frame() -> usize {
    4096
}
fn default_idle_ms() -> u64 {
    300_000
}
fn default_journal_path() -> PathBuf {
    PathBuf::from("./switch-journal")
}
fn default_ledger_timeout_ms() -> u64 {
    3000
}
fn default_connect_timeout_ms() -> u64 {
    1000
}
fn default_retries() -> usize {
    2
}
fn default_resume_ms() -> u64 {
    2000
}
fn default_zpk_grace_secs() -> u64 {
    300
}
fn default_max_tries() -> u8 {
    3
}

impl Config {
    /// A configuration with `listen` and `ledger` and every other part at the default a file
    /// that leaves it out gets: no control socket, no TLS section, the default journal, no
    /// routes, no keys, no PIN verification.
    pub fn new(listen: ListenConfig, ledger: LedgerConfig) -> Self {
        Config {
            control_socket: None,
            listen,
            tls: None,
            journal: JournalConfig::default(),
            ledger,
            routes: Vec::new(),
            recovery: RecoveryConfig::default(),
            keys: None,
            pin: None,
        }
    }

    /// The configuration as a TOML file says it (parsed back by [`Config::parse`]).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }
}

impl ListenConfig {
    /// Listen on `address` with mutual TLS and the default limits.
    pub fn new(address: SocketAddr) -> Self {
        ListenConfig {
            address,
            mode: ListenMode::default(),
            max_connections: default_max_connections(),
            max_in_flight_per_connection: default_max_in_flight(),
            max_frame_bytes: default_max_frame(),
            idle_timeout_ms: default_idle_ms(),
        }
    }
}

impl LedgerConfig {
    /// The ledger at `url` with the default timeouts, retries and breaker.
    pub fn new(url: impl Into<String>) -> Self {
        LedgerConfig {
            url: url.into(),
            timeout_ms: default_ledger_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            retries: default_retries(),
            breaker: BreakerConfig::default(),
        }
    }
}

impl KeysConfig {
    /// The key store `store` opened with the KEK in `kek_file`, no ZPK schedule, the default
    /// grace.
    pub fn with_kek_file(store: impl Into<PathBuf>, kek_file: impl Into<PathBuf>) -> Self {
        KeysConfig {
            store: store.into(),
            kek_file: Some(kek_file.into()),
            kek_env: None,
            zpk_rotate_secs: 0,
            zpk_grace_secs: default_zpk_grace_secs(),
        }
    }
}

impl PinConfig {
    /// PIN verification from the issuer's `cards_file`, default tries, no BIN rule yet.
    pub fn new(cards_file: impl Into<PathBuf>) -> Self {
        PinConfig {
            max_tries: default_max_tries(),
            cards_file: cards_file.into(),
            bins: Vec::new(),
        }
    }
}

impl BinRuleConfig {
    /// Cards starting with `prefix` have their PIN checked as a Visa PVV under key `pvk`.
    pub fn visa_pvv(prefix: impl Into<String>, pvk: impl Into<String>) -> Self {
        BinRuleConfig {
            prefix: prefix.into(),
            method: PinMethodName::VisaPvv,
            pvk: pvk.into(),
            decimalization: None,
            validation_start: None,
            validation_len: None,
            pad: None,
        }
    }
}

/// Serializers for the sections whose types live outside this file (routing, breaker): written
/// field by field, with every field named, so a field added there fails to compile here instead
/// of vanishing from written files.
mod ser {
    use serde::{Serialize, Serializer};

    use crate::breaker::BreakerConfig;
    use crate::domain::routing::RouteEntry;

    #[derive(Serialize)]
    struct Entry<'a> {
        prefix: &'a str,
        route: &'static str,
    }

    pub(super) fn routes<S: Serializer>(routes: &[RouteEntry], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(routes.iter().map(|RouteEntry { prefix, route }| Entry {
            prefix,
            route: super::route_name(*route),
        }))
    }

    #[derive(Serialize)]
    struct Breaker {
        window_calls: u32,
        minimum_calls: u32,
        failure_rate_percent: u32,
        slow_call_rate_percent: u32,
        slow_call_ms: u64,
        open_ms: u64,
        half_open_calls: u32,
    }

    pub(super) fn breaker<S: Serializer>(b: &BreakerConfig, s: S) -> Result<S::Ok, S::Error> {
        let BreakerConfig {
            window_calls,
            minimum_calls,
            failure_rate_percent,
            slow_call_rate_percent,
            slow_call_ms,
            open_ms,
            half_open_calls,
        } = *b;
        Breaker {
            window_calls,
            minimum_calls,
            failure_rate_percent,
            slow_call_rate_percent,
            slow_call_ms,
            open_ms,
            half_open_calls,
        }
        .serialize(s)
    }
}

/// A route's name as the configuration file writes it.
fn route_name(route: Route) -> &'static str {
    match route {
        Route::Wallet => "wallet",
        Route::BankHost => "bank-host",
    }
}

/// Why the configuration was refused: the same shape as the agent's (`daemon::config`).
pub use daemon::ConfigError;

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        daemon::config::load(path, Self::validate)
    }

    /// Parses and validates; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        daemon::config::parse(text, origin, Self::validate)
    }

    fn validate(&self) -> Result<(), String> {
        if self.listen.mode == ListenMode::Tls && self.tls.is_none() {
            return Err(
                "listen.mode is \"tls\" but there is no [tls] section (cert, key, client_ca)"
                    .into(),
            );
        }
        if self.listen.max_connections == 0 {
            return Err("listen.max_connections must be at least 1".into());
        }
        if self.listen.max_in_flight_per_connection == 0 {
            return Err("listen.max_in_flight_per_connection must be at least 1".into());
        }
        if !(64..=65535).contains(&self.listen.max_frame_bytes) {
            return Err("listen.max_frame_bytes must be between 64 and 65535".into());
        }
        if !(self.ledger.url.starts_with("http://") || self.ledger.url.starts_with("https://")) {
            return Err(format!(
                "ledger.url {:?} must start with http:// or https://",
                self.ledger.url
            ));
        }
        if self.journal.retention_secs < 60 {
            return Err(format!(
                "journal.retention_secs must be at least 60 (a reversal or a replay may still come), got {}",
                self.journal.retention_secs
            ));
        }
        if self.ledger.timeout_ms == 0 {
            return Err("ledger.timeout_ms must be positive".into());
        }
        if self.ledger.retries > 5 {
            return Err("ledger.retries must be at most 5 (a terminal waits ~25 s)".into());
        }
        self.ledger
            .breaker
            .validate()
            .map_err(|e| format!("ledger.breaker: {e}"))?;
        self.route_table()?;
        self.validate_keys()?;
        Ok(())
    }

    fn validate_keys(&self) -> Result<(), String> {
        if let Some(keys) = &self.keys {
            match (&keys.kek_file, &keys.kek_env) {
                (Some(_), None) => {}
                (None, Some(var)) if !var.is_empty() => {}
                (None, Some(_)) => return Err("keys.kek_env must name a variable".into()),
                _ => {
                    return Err(
                        "keys: give exactly one of kek_file and kek_env (the key-encryption key)"
                            .into(),
                    )
                }
            }
        }
        if let Some(pin) = &self.pin {
            if self.keys.is_none() {
                return Err("[pin] needs a [keys] section (the PIN verification keys)".into());
            }
            if pin.max_tries == 0 {
                return Err("pin.max_tries must be at least 1".into());
            }
            self.bin_rules()?;
        }
        Ok(())
    }

    /// The PIN BIN rules (empty without `[pin]`).
    pub fn bin_rules(&self) -> Result<BinRules, String> {
        let Some(pin) = &self.pin else {
            return Ok(BinRules::default());
        };
        let rules = pin
            .bins
            .iter()
            .enumerate()
            .map(|(i, b)| b.to_rule().map_err(|e| format!("pin.bins[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BinRules::new(rules))
    }

    pub fn route_table(&self) -> Result<RouteTable, String> {
        RouteTable::new(self.routes.clone()).map_err(|e| format!("routes: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [listen]
        address = "127.0.0.1:0"
        mode = "plain"
        [ledger]
        url = "http://127.0.0.1:8081"
        [[routes]]
        prefix = "476173"
        route = "wallet"
    "#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(GOOD, "test.toml").unwrap();
        assert_eq!(c.ledger.timeout_ms, 3000);
        assert_eq!(c.recovery.resume_interval_ms, 2000);
        assert_eq!(c.listen.max_frame_bytes, 4096);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse(&GOOD.replace("[ledger]", "[ledger]\ntimeout = 5"), "s.toml")
            .unwrap_err();
        assert!(err.to_string().contains("s.toml"), "{err}");
        assert!(err.reason().contains("timeout"), "{err}");
    }

    #[test]
    fn tls_mode_requires_tls_section() {
        let err = Config::parse(&GOOD.replace("mode = \"plain\"", ""), "s.toml").unwrap_err();
        assert!(err.reason().contains("[tls]"), "{err}");
    }

    const KEYS: &str = r#"
        [keys]
        store = "/var/lib/host-switch/keys.json"
        kek_file = "/etc/host-switch/kek"
        [pin]
        cards_file = "/etc/host-switch/cards.toml"
        [[pin.bins]]
        prefix = "476173"
        method = "visa_pvv"
        pvk = "pvk/visa"
        [[pin.bins]]
        prefix = "4761739"
        method = "ibm3624"
        pvk = "pvk/ibm"
        validation_start = 0
        validation_len = 16
    "#;

    #[test]
    fn pin_feature_is_optional_and_gets_defaults() {
        let c = Config::parse(GOOD, "s.toml").unwrap();
        assert!(c.keys.is_none() && c.pin.is_none() && c.control_socket.is_none());
        let text = format!("control_socket = \"/run/hs.sock\"\n{GOOD}{KEYS}");
        let c = Config::parse(&text, "s.toml").unwrap();
        let keys = c.keys.as_ref().unwrap();
        assert_eq!((keys.zpk_rotate_secs, keys.zpk_grace_secs), (0, 300));
        assert_eq!(c.pin.as_ref().unwrap().max_tries, 3);
        let rules = c.bin_rules().unwrap();
        let pan = protocols::types::Pan::parse("4761739001010010").unwrap();
        let PinMethod::Ibm3624 {
            decimalization,
            pad,
            ..
        } = &rules.for_pan(&pan).unwrap().method
        else {
            panic!("longest prefix is the ibm3624 rule")
        };
        assert_eq!((decimalization.as_str(), *pad), ("0123456789012345", 'F'));
    }

    #[test]
    fn key_and_pin_errors_name_the_key() {
        let both = KEYS.replace(
            "kek_file = \"/etc/host-switch/kek\"",
            "kek_file = \"/k\"\nkek_env = \"KEK\"",
        );
        let err = Config::parse(&format!("{GOOD}{both}"), "s.toml").unwrap_err();
        assert!(
            err.reason().contains("kek_file") && err.reason().contains("kek_env"),
            "{err}"
        );
        let no_len = KEYS.replace("validation_len = 16", "");
        let err = Config::parse(&format!("{GOOD}{no_len}"), "s.toml").unwrap_err();
        assert!(
            err.reason().contains("pin.bins[1]: validation_len"),
            "{err}"
        );
        let visa_pad = KEYS.replace("pvk = \"pvk/visa\"", "pvk = \"pvk/visa\"\npad = \"F\"");
        let err = Config::parse(&format!("{GOOD}{visa_pad}"), "s.toml").unwrap_err();
        assert!(err.reason().contains("pin.bins[0]: pad"), "{err}");
        let pin_only = KEYS.replace(
            "[keys]\n        store = \"/var/lib/host-switch/keys.json\"\n        kek_file = \"/etc/host-switch/kek\"",
            "",
        );
        let err = Config::parse(&format!("{GOOD}{pin_only}"), "s.toml").unwrap_err();
        assert!(err.reason().contains("[keys]"), "{err}");
        let typo = KEYS.replace("method = \"visa_pvv\"", "method = \"visa\"");
        let err = Config::parse(&format!("{GOOD}{typo}"), "s.toml").unwrap_err();
        assert!(err.reason().contains("method"), "{err}");
    }

    #[test]
    fn the_example_configuration_is_valid() {
        let c = Config::parse(
            include_str!("../config/host-switch.example.toml"),
            "host-switch.example.toml",
        )
        .unwrap();
        assert!(c.keys.is_some() && c.pin.is_some() && c.control_socket.is_some());
    }

    #[test]
    fn a_configuration_serializes_to_toml_that_parses_back_the_same() {
        let example = Config::parse(
            include_str!("../config/host-switch.example.toml"),
            "host-switch.example.toml",
        )
        .unwrap();
        let text = example.to_toml().unwrap();
        let again = Config::parse(&text, "serialized").unwrap();
        assert_eq!(again.to_toml().unwrap(), text);
        assert_eq!(again.routes, example.routes);
        assert_eq!(again.ledger.breaker, example.ledger.breaker);
        assert!(again.keys.is_some() && again.pin.is_some() && again.control_socket.is_some());
    }

    #[test]
    fn a_configuration_built_in_code_has_the_file_defaults() {
        let mut built = Config::new(
            ListenConfig::new("127.0.0.1:0".parse().unwrap()),
            LedgerConfig::new("http://127.0.0.1:8081"),
        );
        built.listen.mode = ListenMode::Plain;
        built.routes.push(RouteEntry {
            prefix: "476173".into(),
            route: Route::Wallet,
        });
        let from_file = Config::parse(GOOD, "s.toml").unwrap();
        assert_eq!(built.to_toml().unwrap(), from_file.to_toml().unwrap());
    }

    #[test]
    fn bad_values_are_explained() {
        let err = Config::parse(&GOOD.replace("http://127", "ftp://127"), "s.toml").unwrap_err();
        assert!(err.reason().contains("ledger.url"), "{err}");
        let err = Config::parse(&GOOD.replace("476173", "47x"), "s.toml").unwrap_err();
        assert!(err.reason().contains("routes"), "{err}");
        let short = format!("{GOOD}\n[journal]\nretention_secs = 5\n");
        let err = Config::parse(&short, "s.toml").unwrap_err();
        assert!(err.reason().contains("journal.retention_secs"), "{err}");
    }
}
