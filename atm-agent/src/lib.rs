//! # atm-agent — the edge daemon and the technician CLI
//!
//! Layout:
//! - [`cli`]: the subcommands of `atmctl`, one module per command family, each a thin layer
//!   over the protocols crate (and, with the daemon, over its control socket).
#![forbid(unsafe_code)]

pub mod cli;
