//! # daemon — what the workspace's long-running programs share
//!
//! The agent, the switch and the ledger simulator are daemons: an operator starts them with a
//! TOML file and stops them with a signal. Both edges behave the same in all three, so they live
//! here once:
//! - [`stop`]: SIGTERM or SIGINT, awaited as one future ([`stop::install`]).
//! - [`config`]: reading a TOML file into a config type, with one error shape
//!   ([`config::ConfigError`]) that names the file and keeps the cause.
#![forbid(unsafe_code)]

pub mod config;
pub mod stop;

pub use config::ConfigError;
pub use stop::StopSignal;
