//! Switch configuration: one TOML file, every key documented here with its default.
//! Unknown keys are errors; every error names the file, the key and the reason.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::breaker::BreakerConfig;
use crate::domain::routing::{RouteEntry, RouteTable};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: ListenConfig,
    /// Required when `listen.mode = "tls"` (the default).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub journal: JournalConfig,
    pub ledger: LedgerConfig,
    /// BIN/prefix → route. Cards matching no entry are declined with 14.
    #[serde(default)]
    pub routes: Vec<RouteEntry>,
    #[serde(default)]
    pub recovery: RecoveryConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ListenMode {
    /// Mutual TLS: clients must present a certificate whose identity covers field 41.
    #[default]
    Tls,
    /// Plain TCP, for the lab only. Never expose it.
    Plain,
}

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA that signs agent (client) certificates.
    pub client_ca: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// sled directory (default `./switch-journal`).
    #[serde(default = "default_journal_path")]
    pub path: PathBuf,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            path: default_journal_path(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
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
    #[serde(default)]
    pub breaker: BreakerConfig,
}

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, thiserror::Error)]
#[error("config {path}: {reason}")]
pub struct ConfigError {
    pub path: String,
    pub reason: String,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.display().to_string(),
            reason: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let err = |reason: String| ConfigError {
            path: origin.to_owned(),
            reason,
        };
        let config: Config = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        config.validate().map_err(err)?;
        Ok(config)
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
        Ok(())
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
        assert!(err.to_string().contains("timeout"), "{err}");
    }

    #[test]
    fn tls_mode_requires_tls_section() {
        let err = Config::parse(&GOOD.replace("mode = \"plain\"", ""), "s.toml").unwrap_err();
        assert!(err.reason.contains("[tls]"), "{err}");
    }

    #[test]
    fn bad_values_are_explained() {
        let err = Config::parse(&GOOD.replace("http://127", "ftp://127"), "s.toml").unwrap_err();
        assert!(err.reason.contains("ledger.url"), "{err}");
        let err = Config::parse(&GOOD.replace("476173", "47x"), "s.toml").unwrap_err();
        assert!(err.reason.contains("routes"), "{err}");
    }
}
