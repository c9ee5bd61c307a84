//! Reading a daemon's TOML configuration. Each daemon's config type derives `Deserialize` with
//! `deny_unknown_fields` and has its own `validate`; this module does the rest the same way for
//! all of them, so an operator reads the same kind of message whichever daemon refused its file:
//! the file, then the key and reason (from `toml`, with line and column), or the rule broken.

use std::path::Path;

use serde::de::DeserializeOwned;
use thiserror::Error;

/// Why a configuration was refused. `origin` names where it came from (a path, or a label for
/// text built in memory).
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{origin}: cannot read the configuration")]
    Read {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: not a valid configuration")]
    Parse {
        origin: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("{origin}: {reason}")]
    Invalid { origin: String, reason: String },
}

impl ConfigError {
    /// What is wrong, without the origin: the rule broken, or the parser's or the file system's
    /// message (which names the key, line and column).
    pub fn reason(&self) -> String {
        match self {
            Self::Read { source, .. } => source.to_string(),
            Self::Parse { source, .. } => source.to_string(),
            Self::Invalid { reason, .. } => reason.clone(),
        }
    }

    /// The whole message on one line, cause included, for a command that prints it and exits.
    pub fn report(&self) -> String {
        match self {
            Self::Invalid { .. } => self.to_string(),
            Self::Read { .. } | Self::Parse { .. } => format!("{self}: {}", self.reason()),
        }
    }

    /// The file or label the error is about.
    pub fn origin(&self) -> &str {
        match self {
            Self::Read { origin, .. }
            | Self::Parse { origin, .. }
            | Self::Invalid { origin, .. } => origin,
        }
    }
}

/// Parses `text` and checks it with `validate` (a rule broken, in words an operator understands).
pub fn parse<T: DeserializeOwned>(
    text: &str,
    origin: &str,
    validate: impl FnOnce(&T) -> Result<(), String>,
) -> Result<T, ConfigError> {
    let config: T = toml::from_str(text).map_err(|source| ConfigError::Parse {
        origin: origin.to_owned(),
        source,
    })?;
    validate(&config).map_err(|reason| ConfigError::Invalid {
        origin: origin.to_owned(),
        reason,
    })?;
    Ok(config)
}

/// Reads the file at `path`, then [`parse`]s it.
pub fn load<T: DeserializeOwned>(
    path: &Path,
    validate: impl FnOnce(&T) -> Result<(), String>,
) -> Result<T, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        origin: origin.clone(),
        source,
    })?;
    parse(&text, &origin, validate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        port: u16,
    }

    fn port_not_zero(s: &Sample) -> Result<(), String> {
        if s.port == 0 {
            return Err("port: must not be 0".into());
        }
        Ok(())
    }

    #[test]
    fn an_unknown_key_names_the_file_and_keeps_the_parser_message() {
        let e = parse::<Sample>("port = 1\nprot = 2\n", "agent.toml", port_not_zero).unwrap_err();
        assert_eq!(e.origin(), "agent.toml");
        assert!(e.to_string().starts_with("agent.toml"));
        let cause = e.source().expect("the parser's error is kept").to_string();
        assert!(cause.contains("prot"), "{cause}");
    }

    #[test]
    fn a_broken_rule_and_a_missing_file_say_so() {
        let e = parse::<Sample>("port = 0", "x.toml", port_not_zero).unwrap_err();
        assert_eq!(e.to_string(), "x.toml: port: must not be 0");
        let dir = tempfile::tempdir().unwrap();
        let e = load::<Sample>(&dir.path().join("missing.toml"), port_not_zero).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
        assert!(e.source().is_some());
        assert!(e.report().contains("cannot read"), "{}", e.report());
        assert!(e.report().contains("missing.toml"), "{}", e.report());
    }

    #[test]
    fn a_valid_file_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ok.toml");
        std::fs::write(&path, "port = 8583").unwrap();
        assert_eq!(load::<Sample>(&path, port_not_zero).unwrap().port, 8583);
    }
}
