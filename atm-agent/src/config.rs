//! Agent configuration: one TOML file. Unknown keys are errors; every error names the file, the
//! key and the reason.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::adapters::uplink::UplinkConfig;
use crate::queue::QueueConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub ndc: NdcConfig,
    /// The terminals this agent serves, identified by their LUNO.
    pub terminals: Vec<TerminalConfig>,
    pub uplink: UplinkConfig,
    /// Client certificate for the uplink (required unless `uplink.tls = false`).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub control: ControlConfig,
    /// Keys and PINs. Without it the agent sends no PIN data (a lab without PIN security).
    #[serde(default)]
    pub keys: Option<KeysConfig>,
}

/// `[keys]`: the software key store and the terminal PIN key schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// The key store file (default `<storage.dir>/keys.json`).
    #[serde(default)]
    pub store: Option<PathBuf>,
    /// File holding the key-encryption key (64 hex digits, mode 0600).
    #[serde(default)]
    pub kek_file: Option<PathBuf>,
    /// Or: environment variable holding the key-encryption key.
    #[serde(default)]
    pub kek_env: Option<String>,
    /// A terminal PIN key older than this is replaced at the next start-up or idle moment
    /// (default 86400 s; 0 = only on `atmctl keys rotate`).
    #[serde(default = "default_tpk_rotate")]
    pub tpk_rotate_secs: u64,
}

fn default_tpk_rotate() -> u64 {
    86_400
}

#[derive(Debug, Clone, Deserialize)]
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminalConfig {
    /// NDC logical unit number as the terminal sends it (3 or 9 characters per dialect).
    pub luno: String,
    /// ISO 8583 field 41; must be covered by the agent's client certificate.
    pub terminal_id: String,
    /// A built-in firmware profile name or a path to a profile TOML file.
    pub profile: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA that signs the switch's certificate.
    pub server_ca: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// Unix socket for `atmctl` (mode 0600). Default: `<storage.dir>/atmctl.sock`.
    #[serde(default)]
    pub socket: Option<PathBuf>,
}

fn default_malformed() -> u32 {
    3
}
fn default_max_notes() -> u32 {
    40
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

#[derive(Debug, thiserror::Error)]
#[error("config {origin}: {reason}")]
pub struct ConfigError {
    pub origin: String,
    pub reason: String,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            reason: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &origin)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let err = |reason: String| ConfigError {
            origin: origin.to_owned(),
            reason,
        };
        let c: Config = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        c.validate().map_err(err)?;
        Ok(c)
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
            firmware_profiles::Profile::resolve(&t.profile)
                .map_err(|e| format!("terminals.profile: {e}"))?;
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
        if self.timeouts.authorization_ms == 0 || self.timeouts.advice_ms == 0 {
            return Err("timeouts: values must be positive".into());
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
    fn errors_name_the_key() {
        let e = Config::parse(&GOOD.replace("tls = false", "tls = true"), "a.toml").unwrap_err();
        assert!(e.reason.contains("[tls]"), "{e}");
        let e = Config::parse(
            &GOOD.replace("ncr-selfserv-basic", "no-such-profile"),
            "a.toml",
        )
        .unwrap_err();
        assert!(e.reason.contains("terminals.profile"), "{e}");
        let e = Config::parse(&GOOD.replace("[ndc]", "[ndc]\nport = 1"), "a.toml").unwrap_err();
        assert!(e.to_string().contains("port"), "{e}");
        let e =
            Config::parse(&format!("{GOOD}\n[keys]\ntpk_rotate_secs = 5\n"), "a.toml").unwrap_err();
        assert!(e.reason.contains("kek_file or kek_env"), "{e}");
        let c = Config::parse(&format!("{GOOD}\n[keys]\nkek_env = \"K\"\n"), "a.toml").unwrap();
        assert_eq!(
            c.key_store_path(),
            Some(PathBuf::from("./agent-data/keys.json"))
        );
    }
}
