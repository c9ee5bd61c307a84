//! The switch's domain: transactions, their keys and states, response codes, routing, and the
//! PIN and zone-key rules.
//! No I/O and no async here; `app/` drives these through the ports.

pub mod account;
pub mod card_ref;
pub mod issuer;
pub mod pin;
pub mod reconcile;
pub mod request;
pub mod response;
pub mod routing;
pub mod txn;
pub mod txn_key;
pub mod zone_key;

pub use account::WalletAccount;
pub use card_ref::CardRef;
pub use request::{PinEntry, Request};
pub use response::ResponseCode;
pub use routing::{Route, RouteTable};
pub use txn::{RecordedReply, TxnKind, TxnRecord, TxnState};
pub use txn_key::{MessageKey, TxnKey};
