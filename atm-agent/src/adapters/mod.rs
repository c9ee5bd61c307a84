//! Adapters: the only code of the agent that touches sockets and files.
//!
//! - inbound: `ndc_server` (ATMs over TCP), `control` (the technician's unix socket);
//! - outbound: `uplink` (ISO 8583 to the switch over mutual TLS);
//! - storage: `state_store` (counters, dispenses in doubt, card vault); the queue is `crate::queue`.

pub mod control;
pub mod ndc_server;
pub mod state_store;
pub mod uplink;
