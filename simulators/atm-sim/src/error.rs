//! Why the simulator could not do what it was asked (not what the host answered: a decline or a
//! timeout is a [`super::Outcome`], not an error).

use protocols::ndc::NdcError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AtmError {
    #[error("cannot connect to the agent at {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no TCP connection to the agent at {addr} within {timeout_ms} ms")]
    ConnectTimeout { addr: String, timeout_ms: u64 },
    #[error("the agent did not put the terminal in service within {timeout_ms} ms of power-up")]
    StartupTimeout { timeout_ms: u64 },
    #[error("the connection to the agent is gone (power-cycle the terminal to reconnect)")]
    Disconnected,
    #[error("bad terminal configuration: {0}")]
    Config(String),
    #[error("bad customer: card number")]
    CustomerCard(#[source] protocols::types::ValueError),
    #[error("bad customer: PIN entry")]
    PinEntry(#[source] crate::epp::EppError),
    #[error("cannot MAC the transaction request")]
    Mac(#[source] crate::epp::EppError),
    #[error("the state table stopped the customer: {0}")]
    StateFlow(#[from] crate::state_machine::FlowError),
    #[error("no keys lead through the state table to a {kind} of {amount_minor} (operation code {operation_code:?})")]
    NoKeysFor {
        kind: crate::customer::Kind,
        operation_code: String,
        amount_minor: u64,
    },
    #[error("cannot build an NDC message: {0}")]
    Encode(#[from] NdcError),
}
