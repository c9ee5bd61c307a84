//! Adapters: the only code here that touches sockets, files and HTTP.
//!
//! - inbound: `iso_server` (acquirer endpoint) with `iso_mapping` (messages ⇄ domain), `control`
//!   (the operator's unix socket);
//! - outbound: `ledger_http` (wallet ledger over REST), `bank_host` (other banks' hosts over
//!   ISO 8583, with their store-and-forward queue), `sled_journal` (the durable journal),
//!   `sled_cards` (the cards' PIN records, in the journal's database), `cards_file` (the issuer's
//!   PIN verification data). The key store is `keystore::SoftwareKeyStore`, chosen in `runtime`.

pub mod bank_host;
pub mod cards_file;
pub mod control;
pub mod iso_mapping;
pub mod iso_server;
pub mod ledger_http;
pub mod sled_cards;
pub mod sled_journal;
