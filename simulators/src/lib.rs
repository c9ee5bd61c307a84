//! # simulators — the peers of the ATM gateway, for tests, labs and load runs
//!
//! Each simulator is a real network service with a documented contract, startable in-process
//! (for integration tests and `atm-lab`) or as its own binary.
//!
//! Layout:
//! - [`ledger`]: the wallet ledger (`ledger-sim`): holds, captures, voids, deposits, balances and
//!   movements over HTTP, double-entry books in sled, fault injection. Contract:
//!   `openapi/ledger-v1.json`.
//! - [`load`]: the load generator (`atm-load`): many mutual-TLS ISO 8583 connections against the
//!   host switch, throughput and latency beside a bare echo baseline from the same run.
//!
//! To come (same pattern: a module here, a binary in `src/bin/`): the NDC ATM terminal
//! (`atm-sim`), the bank host, serial devices, the load generator and `atm-lab`.
#![forbid(unsafe_code)]

pub mod atm;
pub mod lab;
pub mod ledger;
pub mod load;
