//! The agent's domain: note mix, the settlement of a dispense, advices, terminal state. No I/O.

pub mod advice;
pub mod dispense;
pub mod mix;
pub mod terminal;
