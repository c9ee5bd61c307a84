//! Adapters: the only code of the agent that touches sockets and files, each implementing a port
//! of `crate::ports` or driving the application from outside.
//!
//! - inbound: `ndc_server` (ATMs over TCP), `control` (the technician's unix socket);
//! - outbound: `uplink` (ISO 8583 to the switch over mutual TLS, the [`SwitchLink`]), with
//!   `switch_messages`, the one module that maps the agent's typed requests to ISO 8583 fields;
//! - storage: `state_store` (counters, dispenses in doubt, card vault, PIN key records: the
//!   [`TerminalStore`]); `advice_queue` makes `crate::queue` the [`AdviceQueue`].
//!
//! [`SwitchLink`]: crate::ports::SwitchLink
//! [`TerminalStore`]: crate::ports::TerminalStore
//! [`AdviceQueue`]: crate::ports::AdviceQueue

pub mod advice_queue;
pub mod control;
pub mod ndc_server;
pub mod state_store;
pub mod switch_messages;
pub mod uplink;
