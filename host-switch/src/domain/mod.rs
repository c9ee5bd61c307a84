//! The switch's domain: transactions, their keys and states, response codes and routing.
//! No I/O and no async here; `app/` drives these through the ports.

pub mod account;
pub mod keys;
pub mod reconcile;
pub mod request;
pub mod response;
pub mod routing;
pub mod txn;

pub use account::WalletAccount;
pub use keys::{MessageKey, TxnKey};
pub use request::Request;
pub use response::ResponseCode;
pub use routing::{Route, RouteTable};
pub use txn::{RecordedReply, TxnKind, TxnRecord, TxnState};
