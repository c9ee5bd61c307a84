//! The agent's domain: note mix, the settlement of a dispense, advices, terminal state, the
//! in-doubt record, PIN values, and what the agent asks the switch. No I/O, no async.

pub mod advice;
pub mod dispense;
pub mod exchange;
pub mod mix;
pub mod pending;
pub mod pin;
pub mod terminal;
