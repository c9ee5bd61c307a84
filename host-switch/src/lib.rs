//! # host-switch — the central ATM switch
//!
//! Authorizes and posts wallet withdrawals and deposits: ISO 8583 in from the agents, REST out to
//! the wallet ledger, every step journaled before it is acknowledged.
//!
//! Layout (hexagonal, see ARCHITECTURE.md):
//! - [`domain`]: transactions, keys, state machine, response codes, routing, reconciliation — no I/O;
//! - [`app`]: the flows (withdrawal, deposit, inquiry, completion, reversal), the resumer;
//! - [`ports`]: the `Ledger` and `Journal` traits;
//! - [`adapters`]: ISO 8583 endpoint, ledger over HTTP, sled journal;
//! - [`breaker`]: the circuit breaker every outbound call goes through;
//! - [`config`]: the TOML configuration; [`runtime`]: wiring it all together (the one place).
#![forbid(unsafe_code)]

pub mod adapters;
pub mod app;
pub mod breaker;
pub mod config;
pub mod domain;
pub mod ports;
pub mod runtime;
