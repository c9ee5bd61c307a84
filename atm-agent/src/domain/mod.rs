//! The agent's domain: note mix, the settlement of a dispense, advices, terminal state, the
//! in-doubt record, PIN values, what the agent asks the switch and the card-present context it
//! gives each request (`acceptance`). No I/O, no async.

pub mod acceptance;
pub mod advice;
pub mod dispense;
pub mod exchange;
pub mod journal;
pub mod mix;
pub mod pending;
pub mod pin;
pub mod terminal;
