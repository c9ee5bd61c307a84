//! The agent's use cases, over the ports of `crate::ports` only (never an adapter).
//!
//! - [`session`]: one terminal's NDC conversation (start-up, statuses, technician commands, the
//!   PIN key load) and the NDC side of a customer;
//! - [`conversation`]: the seam between the session and the customer flows;
//! - customer flows, one file each, methods of [`Services`]: [`withdrawal`], [`deposit`],
//!   [`inquiry`], and [`settlement`] (the dispense settled by the terminal's status, after a power
//!   failure, or reversed when the switch went silent); [`flow`] holds their shared steps;
//! - [`forwarder`]: sends queued advices until the switch acknowledges them;
//! - [`pin_keys`]: the PIN key path (master keys, terminal PIN keys, zone keys, translation);
//!   [`zone_keys`]: keeps the zone PIN key equal to the switch's;
//! - [`registry`]: every terminal's state, for technicians.

pub mod conversation;
pub mod deposit;
pub mod flow;
pub mod forwarder;
pub mod inquiry;
pub mod pin_keys;
pub mod registry;
pub mod session;
pub mod settlement;
pub mod withdrawal;
pub mod zone_keys;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use registry::Registry;

/// Compatible path: the PIN key path was `app::keys`.
pub use pin_keys as keys;

/// What every session, flow and the forwarder share: the ports and the agent's settings.
/// `L` is the link to the switch, `S` the terminal state store, `Q` the advice queue.
pub struct Services<L, S, Q> {
    pub uplink: L,
    pub queue: Arc<Q>,
    pub state: Arc<S>,
    pub registry: Arc<Registry>,
    /// Wakes the forwarder when an advice was queued.
    pub forwarder: Arc<Notify>,
    pub authorization_timeout: Duration,
    pub advice_timeout: Duration,
    pub max_notes: u32,
    pub max_malformed: u32,
    /// Keys and PINs (`[keys]`); None: PINs are not handled.
    pub keys: Option<Arc<pin_keys::PinKeys>>,
    /// Notified when custodians enter a zone master key (the zone PIN key is then fetched).
    pub zone_master_loaded: Arc<Notify>,
    /// The records being settled right now, so the terminal's word and a technician's never
    /// settle the same one twice.
    pub claims: settlement::SettlementClaims,
    /// The acquirer and each terminal's card acceptor: the acceptance context of every request.
    pub acceptors: Arc<crate::domain::acceptance::Acceptors>,
}
