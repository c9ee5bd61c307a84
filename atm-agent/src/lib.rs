//! # atm-agent — the edge daemon and the technician CLI
//!
//! Terminates NDC from the ATMs, turns customer transactions into ISO 8583 for the switch, and
//! keeps every completion and reversal in a local sled queue until the switch has acknowledged it.
//!
//! Layout (hexagonal, see ARCHITECTURE.md):
//! - [`domain`]: note mix, dispense settlement, the in-doubt record, advices, PIN values, what the
//!   agent asks the switch, terminal states — no I/O;
//! - [`ports`]: the traits the application needs (link to the switch, terminal state store,
//!   advice queue, key store);
//! - [`app`]: terminal sessions, one file per customer flow (withdrawal, deposit, inquiry,
//!   settlement) over the ports, the store-and-forward forwarder, the registry;
//! - [`adapters`]: NDC server, uplink to the switch and its ISO 8583 mapping, control socket,
//!   state store, the queue as the advice port;
//! - [`queue`]: the durable store-and-forward queue;
//! - [`config`], [`runtime`]: configuration and wiring; [`cli`]: `atmctl`;
//!   [`control_api`]: the control socket's requests, typed for the agent and its clients.
#![forbid(unsafe_code)]

pub mod adapters;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control_api;
pub mod domain;
pub mod ports;
pub mod queue;
pub mod runtime;
