//! # daemon — what the workspace's long-running programs share
//!
//! The agent, the switch and the ledger simulator are daemons: an operator starts them with a
//! TOML file and stops them with a signal. Both edges behave the same in all three, so they live
//! here once:
//! - [`stop`]: SIGTERM or SIGINT, awaited as one future ([`stop::install`]).
//! - [`config`]: reading a TOML file into a config type, with one error shape
//!   ([`config::ConfigError`]) that names the file and keeps the cause.
//! - [`data_dir`]: private data directories (0700) and files (0600) whatever the umask, and a
//!   refusal to start on a directory another user owns or others may write into.
#![forbid(unsafe_code)]

pub mod config;
pub mod data_dir;
pub mod stop;

pub use config::ConfigError;
pub use data_dir::{secure_dir, secure_file, tighten_files, DataDirError, DirState};
pub use stop::StopSignal;
