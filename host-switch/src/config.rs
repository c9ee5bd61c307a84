//! Switch configuration: one TOML file, every key documented here with its default.
//! Unknown keys are errors; every error names the file, the key and the reason.
//!
//! The types serialize back to the same TOML (`toml::to_string(&config)`), so tests and the lab
//! write a switch's configuration from these types instead of by hand; [`Config::new`] and the
//! section constructors give the defaults a file that leaves the keys out gets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod bank_hosts;
pub use bank_hosts::{BankHostConfig, BankHostTls};

use serde::{Deserialize, Serialize};

use crate::breaker::BreakerConfig;
use crate::domain::pin::{BinRule, BinRules, PinMethod, PinPolicy, WindowLimit};
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
    /// PIN verification for wallet cards (rules need `[keys]`). Every wallet route must be
    /// covered by a `[[pin.bins]]` rule or exempted in `pin.exempt`: without it the switch refuses
    /// to start (a route nobody decided about must not approve withdrawals with any PIN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<PinConfig>,
    /// The key cards' references and wallet accounts are made with (in the `[keys]` store,
    /// required: the switch does not start without it).
    #[serde(default)]
    pub card_refs: CardRefsConfig,
    /// The key the cards' PIN verification data is encrypted under in the switch's database (in
    /// the `[keys]` store; generated at the first start that needs it).
    #[serde(default)]
    pub card_data: CardDataConfig,
    /// Other banks' hosts (the bank host route). Cards routed `bank-host` are forwarded there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bank_hosts: Vec<BankHostConfig>,
}

/// `[card_refs]`: card references are HMAC-SHA-256 of the PAN under this key (usage
/// `card_reference`), so a reference beside a masked PAN does not give the card number away.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CardRefsConfig {
    /// Key name in the key store (default "cardref"); create it once with
    /// `host-switch keys generate cardref --usage card_reference`.
    #[serde(default = "default_card_ref_key")]
    pub key: String,
}

/// `[card_data]`: PVVs and IBM 3624 offsets are sealed (AES-256-GCM) under this key (usage
/// `data_protection`) before they are written to the switch's database.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CardDataConfig {
    /// Key name in the key store (default "carddata"); made by the switch if missing.
    #[serde(default = "default_card_data_key")]
    pub key: String,
}

fn default_card_ref_key() -> String {
    "cardref".into()
}
fn default_card_data_key() -> String {
    "carddata".into()
}

impl Default for CardRefsConfig {
    fn default() -> Self {
        Self {
            key: default_card_ref_key(),
        }
    }
}
impl Default for CardDataConfig {
    fn default() -> Self {
        Self {
            key: default_card_data_key(),
        }
    }
}

impl CardRefsConfig {
    /// The key's name, checked.
    pub fn key_name(&self) -> Result<keystore::KeyName, String> {
        keystore::KeyName::new(self.key.clone()).map_err(|e| format!("card_refs.key: {e}"))
    }
}
impl CardDataConfig {
    /// The key's name, checked.
    pub fn key_name(&self) -> Result<keystore::KeyName, String> {
        keystore::KeyName::new(self.key.clone()).map_err(|e| format!("card_data.key: {e}"))
    }
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
    /// Required when there are `[[pin.bins]]` rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cards_file: Option<PathBuf>,
    /// Which cards have their PIN checked, and how: longest prefix wins. A wallet route must be
    /// covered by a rule whose prefix starts the route's prefix, or be exempt.
    #[serde(default)]
    pub bins: Vec<BinRuleConfig>,
    /// Wallet route prefixes whose cards are deliberately not PIN-checked (each covers the wallet
    /// routes whose prefix it starts); logged at warn on the `security` target at every start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exempt: Vec<String>,
    /// Wrong PINs from one terminal within `terminal_window_secs` after which its PIN requests
    /// are refused (58) without verifying until the oldest falls out of the window (default 10).
    #[serde(default = "default_terminal_max_wrong")]
    pub terminal_max_wrong: u32,
    /// The terminal's window in seconds (default 600).
    #[serde(default = "default_terminal_window_secs")]
    pub terminal_window_secs: u64,
    /// Wrong PINs on one card within `card_window_secs`, right PINs in between or not, after
    /// which its PIN requests are refused (75) without verifying (default 6; at least
    /// `max_tries`). Stops guessing between the cardholder's own uses, which reset the counter.
    #[serde(default = "default_card_max_wrong")]
    pub card_max_wrong: u32,
    /// The card's window in seconds (default 86400).
    #[serde(default = "default_card_window_secs")]
    pub card_window_secs: u64,
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
    /// visa_pvv only: which version of `pvk` each PVK index (PVKI, 0-9, from the card's data)
    /// selects, e.g. `pvki = { 1 = 1, 2 = 2 }`. Without it the key must have a single version in
    /// the key store (the switch refuses to start otherwise).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pvki: BTreeMap<String, u32>,
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
            PinMethodName::Ibm3624 if !self.pvki.is_empty() => {
                return Err(
                    "pvki applies to method \"visa_pvv\" only (IBM 3624 data has no PVK index)"
                        .into(),
                )
            }
            PinMethodName::Ibm3624 => self.ibm3624()?,
        };
        Ok(BinRule {
            prefix: self.prefix.clone(),
            method,
            pvk,
            pvk_versions: self.pvk_versions()?,
        })
    }

    fn pvk_versions(&self) -> Result<BTreeMap<u8, keystore::KeyVersion>, String> {
        self.pvki
            .iter()
            .map(|(index, version)| {
                let i = index
                    .parse::<u8>()
                    .ok()
                    .filter(|i| *i <= 9 && index.len() == 1)
                    .ok_or_else(|| format!("pvki: key {index:?} must be a PVK index 0 to 9"))?;
                if *version == 0 {
                    return Err(format!("pvki.{index}: a key version is at least 1"));
                }
                Ok((i, *version))
            })
            .collect()
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
    /// Connections still in the TLS handshake at once (default 64). Beyond it new connections
    /// wait in the accept queue, so clients that open TCP and never finish a handshake cannot
    /// hold every connection slot; a warning on the `security` target says when it is reached.
    #[serde(default = "default_max_handshakes")]
    pub max_handshakes: usize,
    /// A connection that has not finished its TLS handshake after this long is closed
    /// (default 10000 ms).
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    /// Certificate revocation list(s) of the agents' CA, PEM (optional; `mode = "tls"` only).
    /// An agent certificate listed is refused at the handshake; an agent certificate whose CA
    /// has no CRL in the file is refused too. Read at start: a new CRL takes a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_crl: Option<PathBuf>,
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
fn default_max_handshakes() -> usize {
    64
}
fn default_handshake_timeout_ms() -> u64 {
    10_000
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
fn default_terminal_max_wrong() -> u32 {
    10
}
fn default_terminal_window_secs() -> u64 {
    600
}
fn default_card_max_wrong() -> u32 {
    6
}
fn default_card_window_secs() -> u64 {
    86_400
}
/// The longest rate-limit window: a week.
const PIN_WINDOW_SECS_MAX: u64 = 7 * 86_400;

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
            bank_hosts: Vec::new(),
            pin: None,
            card_refs: CardRefsConfig::default(),
            card_data: CardDataConfig::default(),
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
            max_handshakes: default_max_handshakes(),
            handshake_timeout_ms: default_handshake_timeout_ms(),
            client_crl: None,
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
    /// PIN verification from the issuer's `cards_file`, default tries and rate limits, no BIN
    /// rule and no exemption yet.
    pub fn new(cards_file: impl Into<PathBuf>) -> Self {
        PinConfig {
            cards_file: Some(cards_file.into()),
            ..Self::exempt(Vec::<String>::new())
        }
    }

    /// No PIN verification, said explicitly: the wallet routes starting with one of `prefixes`
    /// take no PIN (a lab or a test without keys).
    pub fn exempt<S: Into<String>>(prefixes: impl IntoIterator<Item = S>) -> Self {
        PinConfig {
            max_tries: default_max_tries(),
            cards_file: None,
            bins: Vec::new(),
            exempt: prefixes.into_iter().map(Into::into).collect(),
            terminal_max_wrong: default_terminal_max_wrong(),
            terminal_window_secs: default_terminal_window_secs(),
            card_max_wrong: default_card_max_wrong(),
            card_window_secs: default_card_window_secs(),
        }
    }

    /// The tries and rate limits the PIN step applies.
    pub fn policy(&self) -> PinPolicy {
        PinPolicy {
            max_tries: self.max_tries,
            terminal: WindowLimit {
                max_wrong: self.terminal_max_wrong,
                window_ms: self.terminal_window_secs.saturating_mul(1000),
            },
            card: WindowLimit {
                max_wrong: self.card_max_wrong,
                window_ms: self.card_window_secs.saturating_mul(1000),
            },
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.max_tries == 0 {
            return Err("pin.max_tries must be at least 1".into());
        }
        if !self.bins.is_empty() && self.cards_file.is_none() {
            return Err("pin.cards_file is required with [[pin.bins]] rules (the issuer's PIN verification data)".into());
        }
        if self.terminal_max_wrong == 0 {
            return Err("pin.terminal_max_wrong must be at least 1".into());
        }
        if self.card_max_wrong < u32::from(self.max_tries) {
            return Err(format!(
                "pin.card_max_wrong ({}) must be at least pin.max_tries ({}): a card would be refused before its tries are used",
                self.card_max_wrong, self.max_tries
            ));
        }
        for (key, secs) in [
            ("terminal_window_secs", self.terminal_window_secs),
            ("card_window_secs", self.card_window_secs),
        ] {
            if !(1..=PIN_WINDOW_SECS_MAX).contains(&secs) {
                return Err(format!(
                    "pin.{key} must be 1 to {PIN_WINDOW_SECS_MAX} seconds, got {secs}"
                ));
            }
        }
        for (i, e) in self.exempt.iter().enumerate() {
            if e.is_empty() || e.len() > 11 || !e.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("pin.exempt[{i}]: {e:?} must be 1 to 11 digits"));
            }
        }
        Ok(())
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
            pvki: BTreeMap::new(),
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
        #[serde(skip_serializing_if = "Option::is_none")]
        host: Option<&'a str>,
    }

    pub(super) fn routes<S: Serializer>(routes: &[RouteEntry], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(routes.iter().map(
            |RouteEntry {
                 prefix,
                 route,
                 host,
             }| Entry {
                prefix,
                route: super::route_name(*route),
                host: host.as_deref(),
            },
        ))
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
        self.validate_transport()?;
        self.card_refs.key_name()?;
        self.card_data.key_name()?;
        if self.card_refs.key == self.card_data.key {
            return Err(format!(
                "card_refs.key and card_data.key are both {:?}: they are two keys of two usages",
                self.card_refs.key
            ));
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
        bank_hosts::validate(&self.bank_hosts)?;
        self.validate_bank_routes()?;
        self.validate_keys()?;
        Ok(())
    }

    /// Every `bank-host` route names a configured host, or leaves the name out when exactly one is
    /// configured; with no host at all its cards are declined 14, as before the route existed.
    fn validate_bank_routes(&self) -> Result<(), String> {
        for (i, r) in self.routes.iter().enumerate() {
            match (&r.route, &r.host) {
                (Route::Wallet, Some(h)) => {
                    return Err(format!(
                        "routes[{i}] ({:?}): host {h:?} is for bank-host routes only",
                        r.prefix
                    ))
                }
                (Route::BankHost, Some(h)) if !self.bank_hosts.iter().any(|b| &b.name == h) => {
                    return Err(format!(
                        "routes[{i}] ({:?}): host {h:?} is not a [[bank_hosts]] name",
                        r.prefix
                    ))
                }
                (Route::BankHost, None) if self.bank_hosts.len() > 1 => {
                    return Err(format!(
                        "routes[{i}] ({:?}): several [[bank_hosts]] are configured: say which with host = \"NAME\"",
                        r.prefix
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Plain TCP carries card data and PIN blocks in clear: only on a loopback address (the lab),
    /// and never with PIN verification configured (BIN rules under `[pin]`). Also checked at start, for a configuration
    /// built in code.
    pub(crate) fn validate_transport(&self) -> Result<(), String> {
        let listen = &self.listen;
        if listen.mode == ListenMode::Plain {
            if !listen.address.ip().is_loopback() {
                return Err(format!(
                    "listen.mode = \"plain\" is allowed on a loopback address only (127.0.0.1, ::1), not {}: use mode = \"tls\"",
                    listen.address
                ));
            }
            if self.pin.as_ref().is_some_and(|pin| !pin.bins.is_empty()) {
                return Err("listen.mode = \"plain\" with PIN verification (pin.bins) would take PIN blocks over an unauthenticated link: use mode = \"tls\"".into());
            }
            if listen.client_crl.is_some() {
                return Err(
                    "listen.client_crl applies to mode = \"tls\" only (a plain listener has no certificates to check)".into(),
                );
            }
        }
        if listen.max_handshakes == 0 {
            return Err("listen.max_handshakes must be at least 1".into());
        }
        if listen.handshake_timeout_ms == 0 {
            return Err("listen.handshake_timeout_ms must be positive".into());
        }
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
            if !pin.bins.is_empty() && self.keys.is_none() {
                return Err(
                    "[[pin.bins]] rules need a [keys] section (the PIN verification keys)".into(),
                );
            }
            pin.validate()?;
            self.bin_rules()?;
        }
        self.pin_exempt_routes()?;
        Ok(())
    }

    /// Checks that every wallet route (they take PINs) is covered by a `[[pin.bins]]` rule whose
    /// prefix starts the route's, or by a `pin.exempt` entry, not both; returns the exempt wallet
    /// routes (to be logged at every start). The error names the route.
    pub fn pin_exempt_routes(&self) -> Result<Vec<String>, String> {
        let (bins, exempt) = match &self.pin {
            Some(pin) => (pin.bins.as_slice(), pin.exempt.as_slice()),
            None => (&[][..], &[][..]),
        };
        let wallet: Vec<&str> = self
            .routes
            .iter()
            .filter(|r| r.route == Route::Wallet)
            .map(|r| r.prefix.as_str())
            .collect();
        let mut exempt_routes = Vec::new();
        for route in &wallet {
            let rule = bins.iter().position(|b| route.starts_with(&b.prefix));
            let exemption = exempt.iter().position(|e| route.starts_with(e.as_str()));
            match (rule, exemption) {
                (Some(_), None) => {}
                (None, Some(_)) => exempt_routes.push((*route).to_owned()),
                (Some(b), Some(e)) => {
                    return Err(format!(
                        "pin.exempt[{e}] ({:?}) exempts wallet route {route:?}, which pin.bins[{b}] (prefix {:?}) PIN-checks: a route is checked or exempt, not both",
                        exempt[e], bins[b].prefix
                    ))
                }
                (None, None) => {
                    let hint = if self.pin.is_none() {
                        " (there is no [pin] section)"
                    } else {
                        ""
                    };
                    return Err(format!(
                        "routes: wallet route {route:?} takes PINs but no [[pin.bins]] rule covers it{hint}: add a rule whose prefix starts {route:?}, or exempt the route explicitly with pin.exempt = [{route:?}]"
                    ));
                }
            }
        }
        if let Some((i, e)) = exempt
            .iter()
            .enumerate()
            .find(|(_, e)| !wallet.iter().any(|r| r.starts_with(e.as_str())))
        {
            return Err(format!(
                "pin.exempt[{i}] ({e:?}) covers no wallet route (it must start a [[routes]] prefix whose route is \"wallet\")"
            ));
        }
        Ok(exempt_routes)
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

    /// The wallet route of [`BASE`] explicitly exempt from PIN checks.
    const EXEMPT: &str = "[pin]\nexempt = [\"476173\"]\n";

    fn good() -> String {
        format!("{BASE}{EXEMPT}")
    }

    const BASE: &str = r#"
        [listen]
        address = "127.0.0.1:0"
        mode = "plain"
        [ledger]
        url = "http://127.0.0.1:8081"
        [[routes]]
        prefix = "476173"
        route = "wallet"
    "#;

    /// [`BASE`] in TLS mode: PIN rules are refused over plain TCP.
    fn tls_base() -> String {
        BASE.replace("mode = \"plain\"", "mode = \"tls\"")
            + "[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\nclient_ca = \"/ca.pem\"\n"
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(&good(), "test.toml").unwrap();
        assert_eq!(c.ledger.timeout_ms, 3000);
        assert_eq!(c.recovery.resume_interval_ms, 2000);
        assert_eq!(c.listen.max_frame_bytes, 4096);
    }

    const BANK: &str = r#"
        [[routes]]
        prefix = "5"
        route = "bank-host"
        [[bank_hosts]]
        name = "acme"
        address = "127.0.0.1:9400"
        acquirer_id = "1234567"
    "#;

    #[test]
    fn bank_hosts_and_their_routes_are_checked() {
        let c = Config::parse(&format!("{}{BANK}", good()), "s.toml").unwrap();
        assert_eq!(c.bank_hosts[0].spec, "iso87-binary");
        assert_eq!(c.bank_hosts[0].timeout_ms, 5000);
        let text = format!("{}{BANK}", good());
        let err = Config::parse(
            &text.replace(
                "route = \"bank-host\"",
                "route = \"bank-host\"\nhost = \"other\"",
            ),
            "s.toml",
        )
        .unwrap_err();
        assert!(err.reason().contains("not a [[bank_hosts]] name"), "{err}");
        let err = Config::parse(
            &text.replace("route = \"wallet\"", "route = \"wallet\"\nhost = \"acme\""),
            "s.toml",
        )
        .unwrap_err();
        assert!(err.reason().contains("bank-host routes only"), "{err}");
        let two = format!(
            "{text}[[bank_hosts]]\nname = \"beta\"\naddress = \"127.0.0.1:9401\"\nacquirer_id = \"1\"\n"
        );
        let err = Config::parse(&two, "s.toml").unwrap_err();
        assert!(err.reason().contains("say which"), "{err}");
        let err = Config::parse(
            &text.replace("acquirer_id = \"1234567\"", "acquirer_id = \"x\""),
            "s.toml",
        )
        .unwrap_err();
        assert!(err.reason().contains("bank_hosts[0]"), "{err}");
        let written = c.to_toml().unwrap();
        let back = Config::parse(&written, "written").unwrap();
        assert_eq!(back.bank_hosts, c.bank_hosts);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse(
            &good().replace("[ledger]", "[ledger]\ntimeout = 5"),
            "s.toml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("s.toml"), "{err}");
        assert!(err.reason().contains("timeout"), "{err}");
    }

    #[test]
    fn plain_mode_is_refused_off_loopback_and_with_pins() {
        let err =
            Config::parse(&good().replace("127.0.0.1:0", "0.0.0.0:8583"), "s.toml").unwrap_err();
        assert!(err.reason().contains("listen.mode"), "{err}");
        assert!(err.reason().contains("loopback"), "{err}");
        let err =
            Config::parse(&good().replace("127.0.0.1:0", "10.1.2.3:8583"), "s.toml").unwrap_err();
        assert!(err.reason().contains("listen.mode"), "{err}");
        Config::parse(&good().replace("127.0.0.1:0", "[::1]:0"), "s.toml").unwrap();
        let err = Config::parse(&format!("{BASE}{KEYS}"), "s.toml").unwrap_err();
        assert!(
            err.reason().contains("listen.mode") && err.reason().contains("pin.bins"),
            "{err}"
        );
        let err = Config::parse(
            &good().replace(
                "mode = \"plain\"",
                "mode = \"plain\"\nclient_crl = \"/c.pem\"",
            ),
            "s.toml",
        )
        .unwrap_err();
        assert!(err.reason().contains("listen.client_crl"), "{err}");
    }

    #[test]
    fn handshake_limits_have_defaults_and_are_checked() {
        let c = Config::parse(&good(), "s.toml").unwrap();
        assert_eq!(
            (
                c.listen.max_handshakes,
                c.listen.handshake_timeout_ms,
                c.listen.client_crl
            ),
            (64, 10_000, None)
        );
        let zero = good().replace("mode = \"plain\"", "mode = \"plain\"\nmax_handshakes = 0");
        let err = Config::parse(&zero, "s.toml").unwrap_err();
        assert!(err.reason().contains("listen.max_handshakes"), "{err}");
    }

    #[test]
    fn tls_mode_requires_tls_section() {
        let err = Config::parse(&good().replace("mode = \"plain\"", ""), "s.toml").unwrap_err();
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
        let c = Config::parse(&good(), "s.toml").unwrap();
        assert!(c.keys.is_none() && c.control_socket.is_none());
        let pin = c.pin.as_ref().unwrap();
        assert!(
            pin.bins.is_empty() && pin.cards_file.is_none(),
            "exempt only"
        );
        assert_eq!(c.pin_exempt_routes().unwrap(), vec!["476173".to_owned()]);
        let text = format!("control_socket = \"/run/hs.sock\"\n{}{KEYS}", tls_base());
        let c = Config::parse(&text, "s.toml").unwrap();
        let keys = c.keys.as_ref().unwrap();
        assert_eq!((keys.zpk_rotate_secs, keys.zpk_grace_secs), (0, 300));
        let pin = c.pin.as_ref().unwrap();
        assert_eq!(pin.max_tries, 3);
        assert_eq!(
            (
                pin.terminal_max_wrong,
                pin.terminal_window_secs,
                pin.card_max_wrong,
                pin.card_window_secs
            ),
            (10, 600, 6, 86_400)
        );
        assert!(c.pin_exempt_routes().unwrap().is_empty());
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
        let err = Config::parse(&format!("{}{both}", tls_base()), "s.toml").unwrap_err();
        assert!(
            err.reason().contains("kek_file") && err.reason().contains("kek_env"),
            "{err}"
        );
        let no_len = KEYS.replace("validation_len = 16", "");
        let err = Config::parse(&format!("{}{no_len}", tls_base()), "s.toml").unwrap_err();
        assert!(
            err.reason().contains("pin.bins[1]: validation_len"),
            "{err}"
        );
        let visa_pad = KEYS.replace("pvk = \"pvk/visa\"", "pvk = \"pvk/visa\"\npad = \"F\"");
        let err = Config::parse(&format!("{}{visa_pad}", tls_base()), "s.toml").unwrap_err();
        assert!(err.reason().contains("pin.bins[0]: pad"), "{err}");
        let pin_only = KEYS.replace(
            "[keys]\n        store = \"/var/lib/host-switch/keys.json\"\n        kek_file = \"/etc/host-switch/kek\"",
            "",
        );
        let err = Config::parse(&format!("{}{pin_only}", tls_base()), "s.toml").unwrap_err();
        assert!(err.reason().contains("[keys]"), "{err}");
        let typo = KEYS.replace("method = \"visa_pvv\"", "method = \"visa\"");
        let err = Config::parse(&format!("{}{typo}", tls_base()), "s.toml").unwrap_err();
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
        // Its commented bank host, uncommented, is valid too (the TLS files are read at start).
        let text = include_str!("../config/host-switch.example.toml");
        let start = text.find("# [[bank_hosts]]").unwrap();
        let end = text.find("# [bank_hosts.breaker]").unwrap();
        let bank: String = text[start..end]
            .lines()
            .map(|l| format!("{}\n", l.trim_start_matches("# ")))
            .collect();
        let with_bank = format!("{}{}{bank}", &text[..start], &text[end..]);
        let c = Config::parse(
            &with_bank.replace("# host = \"acme\"", "host = \"acme\""),
            "ex",
        )
        .unwrap();
        assert_eq!(c.bank_hosts[0].zpk.as_deref(), Some("zpk/acme"));
        assert!(c.bank_hosts[0].tls.is_some());
        assert_eq!(c.routes.iter().filter(|r| r.host.is_some()).count(), 1);
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
            host: None,
            prefix: "476173".into(),
            route: Route::Wallet,
        });
        built.pin = Some(PinConfig::exempt(["476173"]));
        let from_file = Config::parse(&good(), "s.toml").unwrap();
        assert_eq!(built.to_toml().unwrap(), from_file.to_toml().unwrap());
    }

    #[test]
    fn bad_values_are_explained() {
        let err = Config::parse(&good().replace("http://127", "ftp://127"), "s.toml").unwrap_err();
        assert!(err.reason().contains("ledger.url"), "{err}");
        let err = Config::parse(&good().replace("476173", "47x"), "s.toml").unwrap_err();
        assert!(err.reason().contains("routes"), "{err}");
        let short = format!("{BASE}\n[journal]\nretention_secs = 5\n{EXEMPT}");
        let err = Config::parse(&short, "s.toml").unwrap_err();
        assert!(err.reason().contains("journal.retention_secs"), "{err}");
    }

    /// BASE with a bank route beside the wallet one, and `pin` as the [pin] section.
    fn with_pin(pin: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "{}[[routes]]\nprefix = \"5\"\nroute = \"bank-host\"\n[keys]\nstore = \"/k.json\"\nkek_file = \"/kek\"\n{pin}",
            tls_base()
        );
        Config::parse(&text, "s.toml")
    }

    const VISA_RULE: &str = "[[pin.bins]]\nmethod = \"visa_pvv\"\npvk = \"pvk/visa\"\n";

    #[test]
    fn a_wallet_route_without_a_pin_rule_or_an_exemption_is_refused() {
        let err = Config::parse(BASE, "s.toml").unwrap_err();
        assert!(
            err.reason().contains("wallet route \"476173\"")
                && err.reason().contains("no [pin] section")
                && err.reason().contains("pin.exempt"),
            "{err}"
        );
        let other_bin = format!("[pin]\ncards_file = \"/c\"\n{VISA_RULE}prefix = \"5413\"\n");
        let err = with_pin(&other_bin).unwrap_err();
        assert!(err.reason().contains("wallet route \"476173\""), "{err}");
        // A longer prefix covers only part of the route's cards.
        let part = format!("[pin]\ncards_file = \"/c\"\n{VISA_RULE}prefix = \"4761739\"\n");
        let err = with_pin(&part).unwrap_err();
        assert!(err.reason().contains("wallet route \"476173\""), "{err}");
    }

    #[test]
    fn a_rule_or_an_exemption_covers_a_wallet_route_but_not_both() {
        let shorter = format!("[pin]\ncards_file = \"/c\"\n{VISA_RULE}prefix = \"4761\"\n");
        assert!(with_pin(&shorter)
            .unwrap()
            .pin_exempt_routes()
            .unwrap()
            .is_empty());
        let exempt = with_pin("[pin]\nexempt = [\"4761\"]\n").unwrap();
        assert_eq!(
            exempt.pin_exempt_routes().unwrap(),
            vec!["476173".to_owned()]
        );
        let both = format!(
            "[pin]\ncards_file = \"/c\"\nexempt = [\"476173\"]\n{VISA_RULE}prefix = \"476173\"\n"
        );
        let err = with_pin(&both).unwrap_err();
        assert!(
            err.reason().contains("pin.exempt[0]") && err.reason().contains("pin.bins[0]"),
            "{err}"
        );
        let stale = with_pin("[pin]\nexempt = [\"476173\", \"5\"]\n").unwrap_err();
        assert!(
            stale.reason().contains("pin.exempt[1]") && stale.reason().contains("no wallet route"),
            "{stale}"
        );
        let err = with_pin("[pin]\nexempt = [\"47x\"]\n").unwrap_err();
        assert!(err.reason().contains("pin.exempt[0]"), "{err}");
        let err = with_pin(&format!("[pin]\n{VISA_RULE}prefix = \"476173\"\n")).unwrap_err();
        assert!(err.reason().contains("pin.cards_file"), "{err}");
    }

    #[test]
    fn pin_rate_limits_are_checked() {
        let exempt = "[pin]\nexempt = [\"476173\"]\n";
        for (extra, key) in [
            ("terminal_max_wrong = 0", "pin.terminal_max_wrong"),
            ("card_max_wrong = 2", "pin.card_max_wrong"),
            ("terminal_window_secs = 0", "pin.terminal_window_secs"),
            ("card_window_secs = 999999999", "pin.card_window_secs"),
        ] {
            let err = with_pin(&format!("{exempt}{extra}\n")).unwrap_err();
            assert!(err.reason().contains(key), "{extra}: {err}");
        }
        let c = with_pin(&format!(
            "{exempt}terminal_max_wrong = 4\ncard_window_secs = 60\n"
        ))
        .unwrap();
        let policy = c.pin.unwrap().policy();
        assert_eq!(policy.terminal.max_wrong, 4);
        assert_eq!(policy.terminal.window_ms, 600_000);
        assert_eq!(policy.card.window_ms, 60_000);
    }

    #[test]
    fn the_pvk_index_map_is_parsed_and_checked() {
        let rule = format!("[pin]\ncards_file = \"/c\"\n{VISA_RULE}prefix = \"476173\"\n");
        let c = with_pin(&format!("{rule}pvki = {{ 1 = 1, 2 = 2 }}\n")).unwrap();
        let rules = c.bin_rules().unwrap();
        let r = rules.iter().next().unwrap();
        assert_eq!(r.pvk_versions, BTreeMap::from([(1, 1), (2, 2)]));
        let again = Config::parse(&c.to_toml().unwrap(), "serialized").unwrap();
        assert_eq!(again.pin.unwrap().bins[0].pvki.len(), 2);
        for (bad, why) in [
            ("pvki = { 10 = 1 }", "pvki: key \"10\""),
            ("pvki = { x = 1 }", "pvki: key \"x\""),
            ("pvki = { 1 = 0 }", "pvki.1"),
        ] {
            let err = with_pin(&format!("{rule}{bad}\n")).unwrap_err();
            assert!(err.reason().contains(why), "{bad}: {err}");
        }
        let ibm = "[pin]\ncards_file = \"/c\"\n[[pin.bins]]\nprefix = \"476173\"\nmethod = \"ibm3624\"\npvk = \"pvk/ibm\"\nvalidation_start = 0\nvalidation_len = 16\npvki = { 1 = 1 }\n";
        let err = with_pin(ibm).unwrap_err();
        assert!(err.reason().contains("pin.bins[0]: pvki"), "{err}");
    }
}
