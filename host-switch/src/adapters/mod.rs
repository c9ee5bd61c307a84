//! Adapters: the only code here that touches sockets, files and HTTP.
//!
//! - inbound: `iso_server` (acquirer endpoint) with `iso_mapping` (messages ⇄ domain);
//! - outbound: `ledger_http` (wallet ledger over REST), `sled_journal` (the durable journal).

pub mod iso_mapping;
pub mod iso_server;
pub mod ledger_http;
pub mod sled_journal;
