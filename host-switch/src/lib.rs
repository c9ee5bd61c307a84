//! # host-switch — the central ATM switch
//!
//! Authorizes and posts wallet withdrawals and deposits: ISO 8583 in from the agents, REST out to
//! the wallet ledger, every step journaled before it is acknowledged.
//!
//! Layout (hexagonal, see ARCHITECTURE.md):
//! - [`domain`]: transactions, keys, state machine, response codes, routing, reconciliation, PIN
//!   and zone-key rules — no I/O;
//! - [`app`]: the flows (withdrawal, deposit, inquiry, completion, reversal, network management),
//!   the PIN step, the zone PIN key's lifecycle, the resumer;
//! - [`ports`]: the `Ledger`, `Journal` and `CardPinStore` traits (the key store's port is
//!   `keystore::KeyStore`);
//! - [`adapters`]: ISO 8583 endpoint, control socket, ledger over HTTP, sled journal and card PIN
//!   records, the issuer's cards file;
//! - [`cli`]: the logic of `host-switch keys …` and `switchctl`; [`control_api`]: the control
//!   socket's requests, typed for the switch and its clients;
//! - [`breaker`]: the circuit breaker every outbound call goes through;
//! - [`config`]: the TOML configuration; [`runtime`]: wiring it all together (the one place).
#![forbid(unsafe_code)]

pub mod adapters;
pub mod app;
pub mod breaker;
pub mod cli;
pub mod config;
pub mod control_api;
pub mod domain;
pub mod ports;
pub mod runtime;
