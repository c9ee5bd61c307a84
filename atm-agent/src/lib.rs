//! # atm-agent — the edge daemon and the technician CLI
//!
//! Terminates NDC from the ATMs, turns customer transactions into ISO 8583 for the switch, and
//! keeps every completion and reversal in a local sled queue until the switch has acknowledged it.
//!
//! Layout (hexagonal, see ARCHITECTURE.md):
//! - [`domain`]: note mix, dispense settlement, advices, terminal states — no I/O;
//! - [`app`]: terminal sessions and customers, the store-and-forward forwarder, the registry;
//! - [`adapters`]: NDC server, uplink to the switch, control socket, state store;
//! - [`queue`]: the durable store-and-forward queue;
//! - [`config`], [`runtime`]: configuration and wiring; [`cli`]: `atmctl`.
#![forbid(unsafe_code)]

pub mod adapters;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod queue;
pub mod runtime;
