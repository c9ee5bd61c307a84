//! # atm-sim — an NDC ATM terminal simulator
//!
//! Plays the terminal side of the NDC conversation against the agent, the way a real ATM does,
//! so the agent can be tested end to end without hardware. The firmware profile
//! (`firmware-profiles`) gives the dialect, framing, cassettes and denominations, operation codes
//! and reply screens; every message is built and parsed by `protocols::ndc`.
//!
//! ## The contract, as this terminal plays it
//! 1. The terminal dials the agent (TCP, the profile's framing) and sends power-up
//!    `12 FS luno FS FS B<config id>` (`0000` when fresh); it starts out of service.
//! 2. Data commands `3` (enhanced config `1A`, screens `11`, states `12`, FITs `15`, config id
//!    `16`, …) are stored and acknowledged `22 … 9`, only while out of service (else `C03`).
//!    Terminal commands: `1` go in service, `2` go out of service → `9`; `3` → `F FS 6<id>`;
//!    `4` → `F FS 2<supply counters>`; `7` → `F FS 1<id>`; anything unsupported, unparseable or
//!    for another LUNO → reject `C FS B04` (plain `A` in dialects without reject reasons).
//!    Keys: the PIN pad ([`epp`]) holds the terminal master key given in
//!    [`AtmOptions::master_key`]. An extended key change `3 … 42` (any mode, in service too) is
//!    deciphered under it and becomes the PIN key → `23 FS luno FS FS 3 FS <KVV>` when the
//!    dialect has `key_kvv_reply` (ncr_advance), else `9` (basic); without a master key → reject
//!    `C FS E02` (`A`); a bad key field → `B04` (`A`). The MAC key change `3 … 45` is answered
//!    alike and installs the MAC key. Other key changes are acknowledged blind.
//!    MAC mode (the profile's `[mac]`, see [`mac`]): the `11` and the `22`s carry a fresh TVN and
//!    a MAC; a reply whose MAC does not verify is rejected `C FS 1` (`2`: TVN not echoed) before
//!    anything else in it is looked at.
//! 3. A customer: `11` with LUNO, top-of-receipt `1` + MCN (`1`..`?`, cycling), track 2
//!    `;PAN=YYMM101…?`, the profile's operation code, the amount (zero for an inquiry), PIN
//!    buffer A (the PIN the customer typed — the card's, or a wrong one — as an ISO 9564 format 0
//!    block enciphered under the PIN key, `:;<=>?` for A-F; empty while no PIN key is loaded),
//!    and the last transaction status when the dialect has it (TSN of the last reply, `0` none /
//!    `1` good / `2` error / `3` reply rejected, notes that left per cassette in it).
//!    State-table mode ([`AtmOptions::state_table`], `atm-sim --state-table`): the terminal runs
//!    the state table the host downloaded from state `000` ([`state_machine`]): card read, PIN
//!    entry, FDK selection, amount entry, and the `11` is what its transaction request state
//!    sends from the buffers the states filled; the customer presses keys ([`Customer::keys`],
//!    [`Key`]; without keys, the ones that lead to the customer's transaction). An unknown state
//!    type stops the customer ([`AtmError::StateFlow`]); after the reply the terminal follows its
//!    next state to the close state ([`AtmSim::last_flow`]).
//! 4. The reply `4` must come within the host reply timer and echo the MCN (else `B09`, and the
//!    customer's session ends). Function: dispense (`2`/`8`/`A`/`B`/`C`/`F`) only for a
//!    withdrawal, deposit (`1`/`7`) only for a deposit, display/next state/print (`3`/`9`/`5`/`4`)
//!    for anything; otherwise `B06`. A dispense with no notes or from a missing cassette: `B11`.
//!    A reply nobody waits for (late) → `C01`, and it becomes last status `3` with its TSN.
//! 5. Then: dispensed in full / deposit accepted / screen shown → ready (`9`, or `B` per dialect);
//!    short dispense → `8 FS E1<notes that left> FS <severity> FS FS <supplies>`; cancelled or
//!    nothing left → `8 FS E2<zeros>…`; power loss → no status, the socket drops; after
//!    [`AtmSim::power_cycle`] the terminal sends power-up again and the next `11` carries last
//!    status `0` (no status was sent) with the notes that really left. A cassette that went low
//!    (below the profile's `low_threshold`) or out → `12 … E0<notes> FS <severity> FS FS
//!    <supplies>`, supplies digit `2` low / `3` out, after the ready.
//! 6. Supervisor mode: [`AtmSim::enter_supervisor`] / [`AtmSim::exit_supervisor`] send
//!    `12 … P21` / `P20`; customers are turned away meanwhile.
//! 7. Terminal faults ([`faults`], a customer's [`Behaviour::TerminalFault`], drawn by
//!    [`Mix::with_terminal_faults`]): after the dispense `8 FS E3<requested counts>` or `8 FS E3`
//!    (the customer may have had all, part or none), `8 FS E5<presented counts>` (retracted),
//!    `8 FS E1<counts>`, `8 FS E1` without counts (cash did leave), `8 FS G1 …` (a receipt
//!    printer fault, all the cash out), or no status until past the agent's status timer; or
//!    the power fails before the `11`, while awaiting the reply, before the dispense, mid-way or
//!    after it. Notes purged or retracted count as rejected in the supply counters; the last
//!    transaction status and the counters always carry what really reached the customer.
//! 8. The truth ledger ([`truth`], [`AtmSim::truth`]): one [`TruthRecord`] per withdrawal or
//!    deposit (LUNO, TSN, what left the cassettes, what reached the customer or was taken in,
//!    what the host was told), so a lab can settle what the agent holds in doubt as a
//!    technician would and reconcile.
//!
//! The outcome of a reply is read from the profile's `screens.*` (`wrong_pin` and
//! `pin_tries_exceeded` give the PIN declines): the terminal knows nothing else about what the
//! host decided.
//!
//! ## Layout
//! - [`session`]: [`AtmSim`], start-up and the customer conversation;
//! - `connection`: the socket and the background task that answers host commands;
//! - [`commands`]: answers to terminal commands `1` and data commands `3` (pure);
//! - [`messages`]: the terminal's messages, built with the codec's types;
//! - [`terminal`]: the terminal's state, [`TerminalCounters`] and [`TerminalStatus`];
//! - [`epp`]: the PIN pad, its keys, PIN blocks and MACs; [`mac`]: NDC MAC mode (what is MACed,
//!   what is checked, [`RequestTamper`]);
//! - [`state_machine`]: the downloaded state table, run state by state from the keys a customer
//!   presses (opt-in: [`AtmOptions::state_table`]);
//! - [`cash`]: cassettes and dispensing; [`customer`]: cards, customers and their behaviour;
//! - [`faults`]: terminal fault modes and plans; [`truth`]: the truth ledger;
//! - [`outcome`]: [`CustomerOutcome`]; [`rng`]: a seeded generator; [`error`]: [`AtmError`].

#![forbid(unsafe_code)]

pub mod cash;
pub mod commands;
pub(crate) mod connection;
pub mod customer;
pub mod epp;
pub mod error;
pub mod faults;
pub mod mac;
#[cfg(test)]
mod mac_tests;
pub mod messages;
pub mod outcome;
#[cfg(test)]
mod pin_tests;
pub mod rng;
pub mod session;
pub mod state_machine;
pub mod terminal;
pub mod truth;

pub use cash::SupplyLevel;
pub use customer::{
    Behaviour, Card, Customer, Kind, Mix, Partial, RandomCustomers, ScriptedCustomers, DEFAULT_PIN,
};
pub use epp::{ClearKey, Epp, EppError};
pub use error::AtmError;
pub use faults::{FaultMode, FaultPlan, TerminalFault};
pub use mac::RequestTamper;
pub use outcome::{CustomerOutcome, DeclineReason, Outcome, OutcomeCounts};
pub use session::{AtmOptions, AtmSim, FRESH_CONFIG_ID, NO_STATUS_GRACE_MS};
pub use state_machine::{FlowError, FlowTrace, Key};
pub use terminal::{ServiceMode, StoredConfig, TerminalCounters, TerminalStatus};
pub use truth::{Reported, TruthRecord};
