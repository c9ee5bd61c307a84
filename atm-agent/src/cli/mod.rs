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

    /// atmctl's exit code: 3 when the agent knows no such terminal or record (its refusal starts
    /// with `not found:`), 4 when the record is busy, 1 when the agent could not be asked, 2
    /// otherwise (bad input, or the agent refused it).
    pub fn exit_code(&self) -> u8 {
        let m = &self.0;
        if m.contains("refused: not found:") {
            3
        } else if m.contains("refused: busy:") {
            4
        } else if m.starts_with("cannot reach")
            || m.starts_with("no answer")
            || m.starts_with("cannot send")
        {
            1
        } else {
            2
        }
    }
}
