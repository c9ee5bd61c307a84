//! `atmctl` subcommands. Each returns a [`CliError`] for bad input, which `main` prints as one
//! line on stderr with exit code 2; anything else is exit code 1.

pub mod control;
pub mod hex_input;
pub mod iso8583;
pub mod keys;
pub mod ndc;

use thiserror::Error;

/// A user error: the input or the arguments were wrong. Exit code 2.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct CliError(pub String);

impl CliError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}
