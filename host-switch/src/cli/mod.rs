//! The command-line tools' logic, kept in the library so it is tested like the rest:
//! `keys` (offline key entry, generation and listing for `host-switch keys …`), `cards` (the
//! migration to keyed card references, `host-switch cards …`) and `control` (the `switchctl`
//! client of the control socket).

pub mod cards;
pub mod control;
pub mod keys;

/// A command-line error: one line for stderr.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CliError(pub String);

impl CliError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}
