//! `[[bank_hosts]]`: the other banks' hosts the switch forwards cards to (the bank host route).

use std::collections::HashSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::breaker::BreakerConfig;

/// One bank host: where it listens, the ISO 8583 dialect it speaks, and how hard to try.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BankHostConfig {
    /// The name routes use (`[[routes]] host`), logs and metrics: 1-32 of `A-Z a-z 0-9 _ -`.
    pub name: String,
    /// `host:port` of the bank's ISO 8583 endpoint.
    pub address: String,
    /// The host's field layout: a built-in spec (`iso87-binary`, `iso87-ascii`) or the path of a
    /// spec TOML file (the same format as the built-in ones).
    #[serde(default = "default_spec")]
    pub spec: String,
    /// The length header in front of every message: `binary-u16` (2 bytes, big-endian) or
    /// `ascii4` (4 decimal digits).
    #[serde(default = "default_length_prefix")]
    pub length_prefix: String,
    /// Connections kept open and signed on (default 2).
    #[serde(default = "default_connections")]
    pub connections: usize,
    /// How long a request waits for its answer (default 5000 ms, well inside a terminal's timer).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// TCP connect (and TLS handshake) timeout (default 2000 ms).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// An idle connection is checked with an 0800 echo this often (default 30000 ms).
    #[serde(default = "default_echo_interval_ms")]
    pub echo_interval_ms: u64,
    /// First and longest wait between reconnects and between advice repeats (exponential with
    /// jitter; defaults 500 ms and 30000 ms).
    #[serde(default = "default_retry_min_ms")]
    pub retry_min_ms: u64,
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// Field 32, this switch's acquiring institution id at that host: 1 to 11 digits.
    pub acquirer_id: String,
    /// Field 43 when the terminal's agent sends none: 40 characters (name 25, city 13, country 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptor_location: Option<String>,
    /// Whether the host takes deposits (0200, processing code 21). Default false: answered 57.
    #[serde(default)]
    pub deposits: bool,
    /// The name of the zone PIN key shared with this host in the switch's key store (usage
    /// `zone_pin`). PIN blocks are translated to it. Without it, a request with a PIN is
    /// declined: a PIN is never forwarded under our own zone key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zpk: Option<String>,
    /// TLS towards the host; plain TCP without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<BankHostTls>,
    #[serde(default, serialize_with = "super::ser::breaker")]
    pub breaker: BreakerConfig,
}

/// `[bank_hosts.tls]`: the host's CA, and our client certificate when the host asks for one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BankHostTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The name in the host's certificate (default: the host part of `address`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

fn default_spec() -> String {
    "iso87-binary".into()
}
fn default_length_prefix() -> String {
    "binary-u16".into()
}
fn default_connections() -> usize {
    2
}
fn default_timeout_ms() -> u64 {
    5000
}
fn default_connect_timeout_ms() -> u64 {
    2000
}
fn default_echo_interval_ms() -> u64 {
    30_000
}
fn default_retry_min_ms() -> u64 {
    500
}
fn default_retry_max_ms() -> u64 {
    30_000
}

impl BankHostConfig {
    /// A host at `address` with every other key at its default.
    pub fn new(name: impl Into<String>, address: impl Into<String>, acquirer_id: &str) -> Self {
        Self {
            name: name.into(),
            address: address.into(),
            spec: default_spec(),
            length_prefix: default_length_prefix(),
            connections: default_connections(),
            timeout_ms: default_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            echo_interval_ms: default_echo_interval_ms(),
            retry_min_ms: default_retry_min_ms(),
            retry_max_ms: default_retry_max_ms(),
            acquirer_id: acquirer_id.to_owned(),
            acceptor_location: None,
            deposits: false,
            zpk: None,
            tls: None,
            breaker: BreakerConfig::default(),
        }
    }

    /// The framing this host uses.
    pub fn length_prefix(&self) -> Result<protocols::framing::LengthPrefix, String> {
        match self.length_prefix.as_str() {
            "binary-u16" => Ok(protocols::framing::LengthPrefix::BinaryU16),
            "ascii4" => Ok(protocols::framing::LengthPrefix::Ascii4),
            other => Err(format!(
                "length_prefix {other:?} must be \"binary-u16\" or \"ascii4\""
            )),
        }
    }

    /// The host's spec: a built-in name, or a file loaded now.
    pub fn load_spec(&self) -> Result<protocols::iso8583::Spec, String> {
        if let Some(spec) = protocols::iso8583::Spec::builtin(&self.spec) {
            return Ok(spec.clone());
        }
        protocols::iso8583::Spec::load(&self.spec).map_err(|e| {
            format!(
                "spec {:?} is neither a built-in spec (iso87-binary, iso87-ascii) nor a readable spec file: {e}",
                self.spec
            )
        })
    }

    fn validate(&self) -> Result<(), String> {
        let ok_name = !self.name.is_empty()
            && self.name.len() <= 32
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok_name {
            return Err(format!(
                "name {:?} must be 1-32 of A-Z a-z 0-9 _ -",
                self.name
            ));
        }
        if !self.address.contains(':') {
            return Err(format!("address {:?} must be host:port", self.address));
        }
        self.length_prefix()?;
        self.load_spec()?;
        if self.acquirer_id.is_empty()
            || self.acquirer_id.len() > 11
            || !self.acquirer_id.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(format!(
                "acquirer_id {:?} must be 1 to 11 digits (field 32)",
                self.acquirer_id
            ));
        }
        if let Some(loc) = &self.acceptor_location {
            if loc.len() > 40 || !loc.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err(format!(
                    "acceptor_location {loc:?} must be at most 40 printable characters (field 43)"
                ));
            }
        }
        if !(1..=16).contains(&self.connections) {
            return Err(format!(
                "connections must be 1 to 16, got {}",
                self.connections
            ));
        }
        for (key, v) in [
            ("timeout_ms", self.timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("echo_interval_ms", self.echo_interval_ms),
            ("retry_min_ms", self.retry_min_ms),
        ] {
            if v == 0 {
                return Err(format!("{key} must be positive"));
            }
        }
        if self.timeout_ms > 20_000 {
            return Err(format!(
                "timeout_ms {} is over 20000: a terminal gives up before that",
                self.timeout_ms
            ));
        }
        if self.retry_max_ms < self.retry_min_ms {
            return Err("retry_max_ms must be at least retry_min_ms".into());
        }
        if let Some(zpk) = &self.zpk {
            keystore::KeyName::new(zpk.clone()).map_err(|e| format!("zpk: {e}"))?;
        }
        self.breaker.validate().map_err(|e| format!("breaker: {e}"))
    }
}

/// Checks every host (the error names it by index and name) and that names are unique.
pub(super) fn validate(hosts: &[BankHostConfig]) -> Result<(), String> {
    let mut seen = HashSet::new();
    for (i, h) in hosts.iter().enumerate() {
        h.validate()
            .map_err(|e| format!("bank_hosts[{i}] ({:?}): {e}", h.name))?;
        if !seen.insert(h.name.as_str()) {
            return Err(format!(
                "bank_hosts[{i}]: the name {:?} is used twice",
                h.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> BankHostConfig {
        BankHostConfig::new("acme", "127.0.0.1:9400", "1234567")
    }

    #[test]
    fn every_bad_key_is_named() {
        type Breaks = fn(&mut BankHostConfig);
        let cases: Vec<(Breaks, &str)> = vec![
            (|h| h.name = "a b".into(), "name"),
            (|h| h.address = "nowhere".into(), "address"),
            (|h| h.spec = "no-such-spec".into(), "spec"),
            (|h| h.length_prefix = "bcd".into(), "length_prefix"),
            (|h| h.acquirer_id = "12a".into(), "acquirer_id"),
            (|h| h.acquirer_id = "123456789012".into(), "acquirer_id"),
            (
                |h| h.acceptor_location = Some("x".repeat(41)),
                "acceptor_location",
            ),
            (|h| h.connections = 0, "connections"),
            (|h| h.timeout_ms = 60_000, "timeout_ms"),
            (|h| h.retry_max_ms = 1, "retry_max_ms"),
            (|h| h.zpk = Some("bad name!".into()), "zpk"),
        ];
        for (break_it, key) in cases {
            let mut h = host();
            break_it(&mut h);
            let err = validate(&[h]).unwrap_err();
            assert!(err.contains(key), "{key}: {err}");
            assert!(err.contains("bank_hosts[0]"), "{err}");
        }
        assert!(validate(&[host()]).is_ok());
        let err = validate(&[host(), host()]).unwrap_err();
        assert!(err.contains("used twice"), "{err}");
    }
}
