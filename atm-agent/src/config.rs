//! Agent configuration: one TOML file. Unknown keys are errors; every error names the file, the
//! key and the reason.
//!
//! The types serialize back to the same TOML (`toml::to_string(&config)`), so tests and the lab
//! write an agent's configuration from these types instead of by hand; [`Config::new`] and the
//! section constructors give the defaults a file that leaves the keys out gets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::adapters::uplink::UplinkConfig;
use crate::domain::terminal::AddressRange;
use crate::queue::QueueConfig;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub ndc: NdcConfig,
    /// The terminals this agent serves, identified by their LUNO.
    pub terminals: Vec<TerminalConfig>,
    #[serde(serialize_with = "ser::uplink")]
    pub uplink: UplinkConfig,
    /// Client certificate for the uplink (required unless `uplink.tls = false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub storage: StorageConfig,
    /// The electronic journals kept (`[ej]`).
    #[serde(default)]
    pub ej: EjConfig,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub control: ControlConfig,
    /// Keys and PINs. Without it the agent sends no PIN data (a lab without PIN security).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<KeysConfig>,
    /// Who this agent acquires for (field 32 of every request). Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquirer: Option<AcquirerConfig>,
}

/// `[acquirer]`: the acquiring institution, as bank hosts know it.
///
/// ```toml
/// [acquirer]
/// id = "12345678901"
/// ```
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AcquirerConfig {
    /// Field 32, the acquiring institution id: 1 to 11 digits. Left out of requests when absent
    /// (the switch then names its own acquirer to bank hosts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// `[keys]`: the software key store and the terminal PIN key schedule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// The key store file (default `<storage.dir>/keys.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<PathBuf>,
    /// File holding the key-encryption key (64 hex digits, mode 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kek_file: Option<PathBuf>,
    /// Or: environment variable holding the key-encryption key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kek_env: Option<String>,
    /// A terminal PIN key older than this is replaced at the next start-up or idle moment
    /// (default 86400 s; 0 = only on `atmctl keys rotate`).
    #[serde(default = "default_tpk_rotate")]
    pub tpk_rotate_secs: u64,
}

fn default_tpk_rotate() -> u64 {
    86_400
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NdcConfig {
    /// Where ATMs connect, e.g. `0.0.0.0:9100`.
    pub listen: SocketAddr,
    /// Consecutive malformed messages after which a terminal connection is closed (default 3).
    #[serde(default = "default_malformed")]
    pub max_malformed_in_a_row: u32,
    /// Notes one dispense may hold (the dispenser's limit, default 40).
    #[serde(default = "default_max_notes")]
    pub max_notes_per_dispense: u32,
    /// PIN blocks from one terminal that do not decode (under its PIN key, for the card's PAN)
    /// within `pin_format_window_secs` after which the terminal is taken out of service until an
    /// operator puts it back (`atmctl in-service`). Default 5; at least 1.
    #[serde(default = "default_pin_format_errors")]
    pub max_pin_format_errors: u32,
    /// The sliding window of `max_pin_format_errors`, in seconds (default 3600).
    #[serde(default = "default_pin_format_window")]
    pub pin_format_window_secs: u64,
    /// Terminal connections open at once, on every NDC port together (default 256); a connection
    /// beyond it is closed at once (warn log).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TerminalConfig {
    /// NDC logical unit number as the terminal sends it (3 or 9 characters per dialect).
    pub luno: String,
    /// ISO 8583 field 41; must be covered by the agent's client certificate.
    pub terminal_id: String,
    /// A built-in firmware profile name or a path to a profile TOML file.
    pub profile: String,
    /// Where the terminal may connect from: an IP address or a CIDR range, or a list of them
    /// (`address = "10.1.2.3"`, `address = ["10.1.2.3", "10.9.0.0/16"]`). A connection from
    /// anywhere else that names this terminal's LUNO is closed. Required unless `any_address`.
    #[serde(default, skip_serializing_if = "TerminalAddresses::is_empty")]
    pub address: TerminalAddresses,
    /// Accept this terminal from any address (no `address`): an explicit opt-out, warned about at
    /// every start. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub any_address: bool,
    /// A port of this terminal's own, e.g. `0.0.0.0:9101`: the agent listens there too, and a
    /// connection to it is this terminal (from `address` when given) before it says a word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Field 42, the card acceptor id: 1 to 15 printable characters. Default: the terminal id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptor_id: Option<String>,
    /// Field 43, the card acceptor's name and location as a cardholder's statement shows it: up
    /// to 40 printable characters (by convention name and street 25, city 13, country 2), padded
    /// to 40 when sent. Default: left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

impl TerminalConfig {
    /// A terminal allowed to connect from `address` only.
    pub fn bound_to(
        luno: impl Into<String>,
        terminal_id: impl Into<String>,
        profile: impl Into<String>,
        address: std::net::IpAddr,
    ) -> Self {
        TerminalConfig {
            luno: luno.into(),
            terminal_id: terminal_id.into(),
            profile: profile.into(),
            address: TerminalAddresses(vec![AddressRange::from(address)]),
            any_address: false,
            listen: None,
            acceptor_id: None,
            location: None,
        }
    }

    /// Whether a connection from `peer` may speak for this terminal.
    pub fn admits(&self, peer: std::net::IpAddr) -> bool {
        self.any_address || self.address.is_empty() || self.address_matches(peer)
    }

    /// Whether `peer` is in this terminal's `address` (not counting `any_address`).
    pub fn address_matches(&self, peer: std::net::IpAddr) -> bool {
        self.address.0.iter().any(|r| r.contains(peer))
    }
}

/// The `address` of a `[[terminals]]` entry: one address or range, or a list of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TerminalAddresses(pub Vec<AddressRange>);

impl TerminalAddresses {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for TerminalAddresses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let all: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&all.join(", "))
    }
}

impl<'de> Deserialize<'de> for TerminalAddresses {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        let texts = match OneOrMany::deserialize(d).map_err(|_| {
            serde::de::Error::custom("an IP address or CIDR range, or a list of them")
        })? {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        };
        texts
            .iter()
            .map(|s| s.trim().parse().map_err(serde::de::Error::custom))
            .collect::<Result<Vec<_>, _>>()
            .map(TerminalAddresses)
    }
}

impl Serialize for TerminalAddresses {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(&one.to_string()),
            many => s.collect_seq(many.iter().map(ToString::to_string)),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA that signs the switch's certificate.
    pub server_ca: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory of the queue and the agent's state (default `./agent-data`).
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { dir: default_dir() }
    }
}

/// `[ej]`: the terminals' electronic journals the agent keeps (`atmctl ej`).
///
/// ```toml
/// [ej]
/// lines_per_terminal = 200000
/// ```
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EjConfig {
    /// Lines kept per terminal; beyond it the oldest are removed (default 200000, at least 1).
    #[serde(default = "default_ej_lines")]
    pub lines_per_terminal: u64,
}

impl Default for EjConfig {
    fn default() -> Self {
        Self {
            lines_per_terminal: default_ej_lines(),
        }
    }
}

fn default_ej_lines() -> u64 {
    crate::adapters::state_store::JOURNAL_LINES_PER_TERMINAL
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Wait for the switch's answer to an authorization (default 15000 ms; must stay under the
    /// terminal's own host timer so a late decline still reaches the customer).
    #[serde(default = "default_auth_ms")]
    pub authorization_ms: u64,
    /// Wait for the switch's answer to an advice before retrying (default 10000 ms).
    #[serde(default = "default_advice_ms")]
    pub advice_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            authorization_ms: default_auth_ms(),
            advice_ms: default_advice_ms(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// Unix socket for `atmctl` (mode 0600). Default: `<storage.dir>/atmctl.sock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
}

fn default_malformed() -> u32 {
    3
}
fn default_max_notes() -> u32 {
    40
}
fn default_pin_format_errors() -> u32 {
    5
}
fn default_pin_format_window() -> u64 {
    3_600
}
fn default_max_connections() -> usize {
    256
}
fn default_dir() -> PathBuf {
    PathBuf::from("./agent-data")
}
fn default_auth_ms() -> u64 {
    15_000
}
fn default_advice_ms() -> u64 {
    10_000
}

impl Config {
    /// A configuration with the required sections and every other part at the default a file
    /// that leaves it out gets: no `[tls]` (set it unless `uplink.tls` is false), default
    /// storage, queue, timeouts and control socket, no keys.
    pub fn new(ndc: NdcConfig, terminals: Vec<TerminalConfig>, uplink: UplinkConfig) -> Self {
        Config {
            ndc,
            terminals,
            uplink,
            tls: None,
            storage: StorageConfig::default(),
            ej: EjConfig::default(),
            queue: QueueConfig::default(),
            timeouts: Timeouts::default(),
            control: ControlConfig::default(),
            keys: None,
            acquirer: None,
        }
    }

    /// The configuration as a TOML file says it (parsed back by [`Config::parse`]).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }
}

impl NdcConfig {
    /// ATMs connect to `listen`; default limits.
    pub fn new(listen: SocketAddr) -> Self {
        NdcConfig {
            listen,
            max_malformed_in_a_row: default_malformed(),
            max_notes_per_dispense: default_max_notes(),
            max_pin_format_errors: default_pin_format_errors(),
            pin_format_window_secs: default_pin_format_window(),
            max_connections: default_max_connections(),
        }
    }
}

impl KeysConfig {
    /// The key store at its default place, opened with the KEK in `kek_file`, the default TPK
    /// lifetime.
    pub fn with_kek_file(kek_file: impl Into<PathBuf>) -> Self {
        KeysConfig {
            store: None,
            kek_file: Some(kek_file.into()),
            kek_env: None,
            tpk_rotate_secs: default_tpk_rotate(),
        }
    }
}

/// The uplink to the switch at `address` (`host:port`) with every other key at its default,
/// exactly as a file with only `[uplink] address = …` gives it.
pub fn uplink_to(address: impl Into<String>) -> UplinkConfig {
    let mut table = toml::Table::new();
    table.insert("address".into(), toml::Value::String(address.into()));
    UplinkConfig::deserialize(toml::Value::Table(table))
        .expect("an [uplink] section needs nothing but its address")
}

/// Whether `host:port` names this machine: a loopback IP address or `localhost`.
fn is_loopback(address: &str) -> bool {
    let host = address
        .rsplit_once(':')
        .map_or(address, |(host, _port)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The serializer of the `[uplink]` section, whose type lives with the uplink adapter: written
/// field by field, with every field named, so a field added there fails to compile here instead
/// of vanishing from written files.
mod ser {
    use serde::{Serialize, Serializer};

    use crate::adapters::uplink::UplinkConfig;

    #[derive(Serialize)]
    struct Uplink<'a> {
        address: &'a str,
        server_name: &'a str,
        tls: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        server_crl: Option<&'a std::path::Path>,
        echo_interval_ms: u64,
        connect_timeout_ms: u64,
        backoff_min_ms: u64,
        backoff_max_ms: u64,
        max_in_flight: usize,
    }

    pub(super) fn uplink<S: Serializer>(u: &UplinkConfig, s: S) -> Result<S::Ok, S::Error> {
        let UplinkConfig {
            address,
            server_name,
            tls,
            server_crl,
            echo_interval_ms,
            connect_timeout_ms,
            backoff_min_ms,
            backoff_max_ms,
            max_in_flight,
        } = u;
        Uplink {
            address,
            server_name,
            tls: *tls,
            server_crl: server_crl.as_deref(),
            echo_interval_ms: *echo_interval_ms,
            connect_timeout_ms: *connect_timeout_ms,
            backoff_min_ms: *backoff_min_ms,
            backoff_max_ms: *backoff_max_ms,
            max_in_flight: *max_in_flight,
        }
        .serialize(s)
    }
}

/// Why the configuration was refused: the same shape as the switch's (`daemon::config`).
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
        if self.terminals.is_empty() {
            return Err("terminals: at least one [[terminals]] entry is needed".into());
        }
        let mut lunos: Vec<&str> = self.terminals.iter().map(|t| t.luno.as_str()).collect();
        lunos.sort_unstable();
        if lunos.windows(2).any(|w| w[0] == w[1]) {
            return Err("terminals: a luno appears twice".into());
        }
        for t in &self.terminals {
            protocols::types::TerminalId::parse(&t.terminal_id)
                .map_err(|e| format!("terminals.terminal_id: {e}"))?;
            match (t.address.is_empty(), t.any_address) {
                (true, false) if t.listen.is_none() => {
                    return Err(format!(
                        "terminals.address: terminal {} (luno {}) has no address: give the address(es) it connects from (an IP, a CIDR range or a list), a listen port of its own, or any_address = true to accept it from anywhere",
                        t.terminal_id, t.luno
                    ))
                }
                (false, true) => {
                    return Err(format!(
                        "terminals.any_address: terminal {} (luno {}) has an address and any_address = true: give one of them",
                        t.terminal_id, t.luno
                    ))
                }
                _ => {}
            }
            let profile = firmware_profiles::Profile::resolve(&t.profile)
                .map_err(|e| format!("terminals.profile: {e}"))?;
            // MAC mode needs the terminal's MAC key, made and loaded through the key store: without
            // one every request of this terminal would be refused, so say it now.
            if profile.mac.enabled() && self.keys.is_none() {
                return Err(format!(
                    "terminals.profile: terminal {} uses profile {} with NDC MAC mode, which needs a [keys] section (the terminal's MAC key is loaded under its master key)",
                    t.terminal_id, t.profile
                ));
            }
        }
        if self.uplink.tls && self.tls.is_none() {
            return Err(
                "uplink.tls is true but there is no [tls] section (cert, key, server_ca)".into(),
            );
        }
        if let Some(k) = &self.keys {
            match (&k.kek_file, &k.kek_env) {
                (Some(_), Some(_)) => return Err("keys: give kek_file or kek_env, not both".into()),
                (None, None) => {
                    return Err("keys: the key-encryption key needs kek_file or kek_env".into())
                }
                _ => {}
            }
        }
        self.validate_acceptance()?;
        self.validate_transport()?;
        self.validate_listen()?;
        if self.ndc.max_pin_format_errors == 0 || self.ndc.pin_format_window_secs == 0 {
            return Err(
                "ndc.max_pin_format_errors, ndc.pin_format_window_secs: must be at least 1".into(),
            );
        }
        if self.ej.lines_per_terminal == 0 {
            return Err("ej.lines_per_terminal: must be at least 1".into());
        }
        if self.timeouts.authorization_ms == 0 || self.timeouts.advice_ms == 0 {
            return Err("timeouts: values must be positive".into());
        }
        Ok(())
    }

    /// Each terminal's own `listen` port differs from `ndc.listen` and from every other one.
    fn validate_listen(&self) -> Result<(), String> {
        if self.ndc.max_connections == 0 {
            return Err("ndc.max_connections: must be at least 1".into());
        }
        let mut seen = vec![self.ndc.listen];
        for t in &self.terminals {
            let Some(listen) = t.listen else { continue };
            if listen.port() != 0 && seen.contains(&listen) {
                return Err(format!(
                    "terminals.listen: terminal {} listens on {listen}, which ndc.listen or another terminal already uses",
                    t.terminal_id
                ));
            }
            seen.push(listen);
        }
        Ok(())
    }

    /// `[acquirer] id` and each terminal's `acceptor_id` and `location` must fit their fields
    /// (32, 42, 43): a value a host would refuse is refused here, at start, with its key.
    fn validate_acceptance(&self) -> Result<(), String> {
        use protocols::dialect::{valid_acceptor_id, valid_acceptor_location, valid_acquirer_id};
        if let Some(id) = self.acquirer.as_ref().and_then(|a| a.id.as_deref()) {
            if !valid_acquirer_id(id) {
                return Err(format!(
                    "acquirer.id: {id:?} is not an acquiring institution id: give 1 to 11 digits (ISO 8583 field 32)"
                ));
            }
        }
        for t in &self.terminals {
            if let Some(id) = &t.acceptor_id {
                if !valid_acceptor_id(id) {
                    return Err(format!(
                        "terminals.acceptor_id: terminal {} has {id:?}: give 1 to 15 printable ASCII characters without trailing spaces (ISO 8583 field 42)",
                        t.terminal_id
                    ));
                }
            }
            if let Some(location) = &t.location {
                if !valid_acceptor_location(location) {
                    return Err(format!(
                        "terminals.location: terminal {} has {location:?} ({} characters): give 1 to 40 printable ASCII characters without trailing spaces, e.g. name and street in 25, city in 13, country in 2 (ISO 8583 field 43)",
                        t.terminal_id,
                        location.chars().count()
                    ));
                }
            }
        }
        Ok(())
    }

    /// The acquirer and each terminal's card acceptor, for the acceptance context of requests.
    pub fn acceptors(&self) -> crate::domain::acceptance::Acceptors {
        let acquirer = self.acquirer.as_ref().and_then(|a| a.id.clone());
        self.terminals.iter().fold(
            crate::domain::acceptance::Acceptors::new(acquirer),
            |all, t| {
                let id = protocols::types::TerminalId::parse(&t.terminal_id)
                    .map_or_else(|_| t.terminal_id.clone(), |id| id.as_str().to_owned());
                all.with_terminal(
                    &id,
                    crate::domain::acceptance::Acceptor {
                        id: t.acceptor_id.clone(),
                        location: t.location.clone(),
                    },
                )
            },
        )
    }

    /// Plain TCP to the switch carries card data (and PIN blocks when keys are configured) in
    /// clear: only to a loopback address (the lab), and never with `[keys]`. Also checked at
    /// start, for a configuration built in code.
    pub(crate) fn validate_transport(&self) -> Result<(), String> {
        if self.uplink.tls {
            return Ok(());
        }
        if !is_loopback(&self.uplink.address) {
            return Err(format!(
                "uplink.tls = false is allowed to a loopback address only (127.0.0.1, ::1, localhost), not {}: set uplink.tls = true and a [tls] section",
                self.uplink.address
            ));
        }
        if self.keys.is_some() {
            return Err("uplink.tls = false with a [keys] section would send PIN blocks over an unauthenticated link: set uplink.tls = true".into());
        }
        if self.uplink.server_crl.is_some() {
            return Err("uplink.server_crl applies to uplink.tls = true only".into());
        }
        Ok(())
    }

    /// The key store file, when `[keys]` is configured.
    pub fn key_store_path(&self) -> Option<PathBuf> {
        let k = self.keys.as_ref()?;
        Some(
            k.store
                .clone()
                .unwrap_or_else(|| self.storage.dir.join("keys.json")),
        )
    }

    pub fn control_socket(&self) -> PathBuf {
        self.control
            .socket
            .clone()
            .unwrap_or_else(|| self.storage.dir.join("atmctl.sock"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [ndc]
        listen = "127.0.0.1:0"
        [[terminals]]
        luno = "001"
        terminal_id = "ATM00001"
        profile = "ncr-selfserv-basic"
        address = "127.0.0.1"
        [uplink]
        address = "127.0.0.1:8583"
        tls = false
    "#;

    #[test]
    fn minimal_config_loads_with_defaults() {
        let c = Config::parse(GOOD, "a.toml").unwrap();
        assert_eq!(c.timeouts.authorization_ms, 15_000);
        assert_eq!(
            c.control_socket(),
            PathBuf::from("./agent-data/atmctl.sock")
        );
    }

    #[test]
    fn the_example_config_loads() {
        let c = Config::parse(
            include_str!("../config/atm-agent.example.toml"),
            "atm-agent.example.toml",
        )
        .unwrap();
        assert_eq!(c.keys.unwrap().tpk_rotate_secs, 86_400);
    }

    #[test]
    fn a_configuration_serializes_to_toml_that_parses_back_the_same() {
        let example = Config::parse(
            include_str!("../config/atm-agent.example.toml"),
            "atm-agent.example.toml",
        )
        .unwrap();
        let text = example.to_toml().unwrap();
        let again = Config::parse(&text, "serialized").unwrap();
        assert_eq!(again.to_toml().unwrap(), text);
        assert_eq!(again.queue, example.queue);
        assert_eq!(again.terminals.len(), example.terminals.len());
    }

    #[test]
    fn a_configuration_built_in_code_has_the_file_defaults() {
        let mut uplink = uplink_to("127.0.0.1:8583");
        uplink.tls = false;
        let built = Config::new(
            NdcConfig::new("127.0.0.1:0".parse().unwrap()),
            vec![TerminalConfig::bound_to(
                "001",
                "ATM00001",
                "ncr-selfserv-basic",
                std::net::Ipv4Addr::LOCALHOST.into(),
            )],
            uplink,
        );
        let from_file = Config::parse(GOOD, "a.toml").unwrap();
        assert_eq!(built.to_toml().unwrap(), from_file.to_toml().unwrap());
    }

    #[test]
    fn plain_uplink_is_refused_off_loopback_and_with_keys() {
        for far in [
            "10.0.0.5:8583",
            "switch.example.net:8583",
            "[2001:db8::1]:8583",
        ] {
            let e = Config::parse(&GOOD.replace("127.0.0.1:8583", far), "a.toml").unwrap_err();
            assert!(e.reason().contains("uplink.tls = false"), "{far}: {e}");
            assert!(e.reason().contains("loopback"), "{far}: {e}");
        }
        for near in ["localhost:8583", "[::1]:8583", "127.0.0.2:8583"] {
            Config::parse(&GOOD.replace("127.0.0.1:8583", near), "a.toml").unwrap();
        }
        let e = Config::parse(&format!("{GOOD}\n[keys]\nkek_env = \"K\"\n"), "a.toml").unwrap_err();
        assert!(
            e.reason().contains("uplink.tls = false") && e.reason().contains("[keys]"),
            "{e}"
        );
        let e = Config::parse(
            &GOOD.replace("tls = false", "tls = false\nserver_crl = \"/c.pem\""),
            "a.toml",
        )
        .unwrap_err();
        assert!(e.reason().contains("uplink.server_crl"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::parse(&GOOD.replace("tls = false", "tls = true"), "a.toml").unwrap_err();
        assert!(e.reason().contains("[tls]"), "{e}");
        let e = Config::parse(
            &GOOD.replace("ncr-selfserv-basic", "no-such-profile"),
            "a.toml",
        )
        .unwrap_err();
        assert!(e.reason().contains("terminals.profile"), "{e}");
        let e = Config::parse(
            &GOOD.replace("ncr-selfserv-basic", "ncr-advance-ndc-mac"),
            "a.toml",
        )
        .unwrap_err();
        assert!(e.reason().contains("NDC MAC mode"), "{e}");
        let e = Config::parse(&GOOD.replace("[ndc]", "[ndc]\nport = 1"), "a.toml").unwrap_err();
        assert!(e.reason().contains("port"), "{e}");
        let e =
            Config::parse(&format!("{GOOD}\n[keys]\ntpk_rotate_secs = 5\n"), "a.toml").unwrap_err();
        assert!(e.reason().contains("kek_file or kek_env"), "{e}");
        let with_keys = GOOD.replace(
            "tls = false",
            "tls = true\n[tls]\ncert = \"a.pem\"\nkey = \"a.key\"\nserver_ca = \"ca.pem\"",
        );
        let c =
            Config::parse(&format!("{with_keys}\n[keys]\nkek_env = \"K\"\n"), "a.toml").unwrap();
        assert_eq!(
            c.key_store_path(),
            Some(PathBuf::from("./agent-data/keys.json"))
        );
    }

    #[test]
    fn acquirer_and_acceptor_are_optional_and_checked_against_their_fields() {
        use protocols::types::{Stan, TerminalId};
        let c = Config::parse(GOOD, "a.toml").unwrap();
        assert!(c.acquirer.is_none());
        let id = TerminalId::parse("ATM00001").unwrap();
        let context = c.acceptors().context(&id, Stan::new(1).unwrap(), 0);
        assert_eq!(context.acquirer_id, None);
        assert_eq!(context.acceptor_id.as_deref(), Some("ATM00001"));
        assert_eq!(context.acceptor_location, None);

        let example = Config::parse(
            include_str!("../config/atm-agent.example.toml"),
            "atm-agent.example.toml",
        )
        .unwrap();
        let context = example.acceptors().context(&id, Stan::new(1).unwrap(), 0);
        assert_eq!(context.acquirer_id.as_deref(), Some("12345678901"));
        assert_eq!(context.acceptor_id.as_deref(), Some("BRANCH-0001"));
        assert!(context.acceptor_location.is_some());

        let terminal = |key: &str| {
            GOOD.replace(
                "address = \"127.0.0.1\"",
                &format!("address = \"127.0.0.1\"\n{key}"),
            )
        };
        for (text, key) in [
            (
                format!("{GOOD}\n[acquirer]\nid = \"123456789012\"\n"),
                "acquirer.id",
            ),
            (
                format!("{GOOD}\n[acquirer]\nid = \"12AB\"\n"),
                "acquirer.id",
            ),
            (
                terminal("acceptor_id = \"THIS-IS-16-CHARS\""),
                "terminals.acceptor_id",
            ),
            (
                terminal(&format!("location = \"{}\"", "L".repeat(41))),
                "terminals.location",
            ),
            (
                terminal("location = \"Café de la gare\""),
                "terminals.location",
            ),
        ] {
            let e = Config::parse(&text, "a.toml").unwrap_err();
            assert!(e.reason().contains(key), "{key}: {e}");
        }
        let e =
            Config::parse(&format!("{GOOD}\n[acquirer]\nname = \"x\"\n"), "a.toml").unwrap_err();
        assert!(e.reason().contains("name"), "{e}");
    }

    #[test]
    fn a_terminal_is_bound_to_its_addresses_or_explicitly_to_any() {
        let c = Config::parse(GOOD, "a.toml").unwrap();
        assert!(c.terminals[0].admits("127.0.0.1".parse().unwrap()));
        assert!(!c.terminals[0].admits("127.0.0.2".parse().unwrap()));
        let list = GOOD.replace(
            "address = \"127.0.0.1\"",
            "address = [\"10.1.2.3\", \"10.9.0.0/16\"]",
        );
        let c = Config::parse(&list, "a.toml").unwrap();
        assert!(c.terminals[0].admits("10.9.200.1".parse().unwrap()));
        assert!(!c.terminals[0].admits("10.1.2.4".parse().unwrap()));
        let again = Config::parse(&c.to_toml().unwrap(), "serialized").unwrap();
        assert_eq!(again.terminals[0].address, c.terminals[0].address);

        let none = GOOD.replace("address = \"127.0.0.1\"", "");
        let e = Config::parse(&none, "a.toml").unwrap_err();
        assert!(e.reason().contains("terminals.address"), "{e}");
        assert!(e.reason().contains("any_address = true"), "{e}");
        let any = GOOD.replace("address = \"127.0.0.1\"", "any_address = true");
        let c = Config::parse(&any, "a.toml").unwrap();
        assert!(c.terminals[0].admits("192.0.2.7".parse().unwrap()));
        let both = GOOD.replace(
            "address = \"127.0.0.1\"",
            "address = \"127.0.0.1\"\nany_address = true",
        );
        let e = Config::parse(&both, "a.toml").unwrap_err();
        assert!(e.reason().contains("terminals.any_address"), "{e}");
        let bad = GOOD.replace("address = \"127.0.0.1\"", "address = \"10.1.2.3/24\"");
        let e = Config::parse(&bad, "a.toml").unwrap_err();
        assert!(e.reason().contains("address"), "{}", e.report());
        assert!(
            e.reason().contains("past the prefix length"),
            "{}",
            e.report()
        );
    }

    #[test]
    fn a_terminal_may_have_a_port_of_its_own_and_connections_are_capped() {
        let c = Config::parse(GOOD, "a.toml").unwrap();
        assert_eq!(c.ndc.max_connections, 256);
        assert_eq!(c.terminals[0].listen, None);
        assert_eq!(c.ej.lines_per_terminal, 200_000);

        // A port of its own stands in for an address.
        let own = GOOD.replace("address = \"127.0.0.1\"", "listen = \"127.0.0.1:9101\"");
        let c = Config::parse(&own, "a.toml").unwrap();
        assert_eq!(
            c.terminals[0].listen,
            Some("127.0.0.1:9101".parse().unwrap())
        );
        assert!(c.terminals[0].address.is_empty());
        let again = Config::parse(&c.to_toml().unwrap(), "serialized").unwrap();
        assert_eq!(again.terminals[0].listen, c.terminals[0].listen);

        let clash = GOOD
            .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:9100\"")
            .replace(
                "address = \"127.0.0.1\"",
                "address = \"127.0.0.1\"\nlisten = \"127.0.0.1:9100\"",
            );
        let e = Config::parse(&clash, "a.toml").unwrap_err();
        assert!(e.reason().contains("terminals.listen"), "{e}");

        let none = GOOD.replace("[[terminals]]", "max_connections = 0\n[[terminals]]");
        let e = Config::parse(&none, "a.toml").unwrap_err();
        assert!(e.reason().contains("ndc.max_connections"), "{e}");
        let e = Config::parse(&format!("{GOOD}\n[ej]\nlines_per_terminal = 0\n"), "a.toml")
            .unwrap_err();
        assert!(e.reason().contains("ej.lines_per_terminal"), "{e}");
    }
}
