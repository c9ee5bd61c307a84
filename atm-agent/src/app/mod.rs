//! The agent's use cases: terminal sessions (`session`, `customer`), the store-and-forward
//! forwarder, and the registry technicians read.

pub mod customer;
pub mod forwarder;
pub mod key_load;
pub mod keys;
pub mod registry;
pub mod session;
pub mod zone_keys;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::adapters::state_store::StateStore;
use crate::adapters::uplink::Uplink;
use crate::domain::advice::Advice;
use crate::queue::SafQueue;
use registry::Registry;

/// What every session and the forwarder share.
pub struct Services {
    pub uplink: Uplink,
    pub queue: Arc<SafQueue<Advice>>,
    pub state: Arc<StateStore>,
    pub registry: Arc<Registry>,
    /// Wakes the forwarder when an advice was queued.
    pub forwarder: Arc<Notify>,
    pub authorization_timeout: Duration,
    pub advice_timeout: Duration,
    pub max_notes: u32,
    pub max_malformed: u32,
    /// Keys and PINs (`[keys]`); None: PINs are not handled.
    pub keys: Option<Arc<keys::PinKeys>>,
    /// Notified when custodians enter a zone master key (the zone PIN key is then fetched).
    pub zone_master_loaded: Arc<Notify>,
}
