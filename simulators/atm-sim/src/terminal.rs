//! The terminal's own state and counters: service mode, the customisation the host downloaded,
//! the PIN pad and its keys, the cassettes, the message coordination number, the last
//! transaction status, the counts, and the truth ledger of what really left the cassettes.
//!
//! No I/O and no async: the connection task and the customer session both change this state
//! under one lock (see `session.rs`) and publish [`TerminalCounters`] / [`TerminalStatus`]
//! snapshots after every change, so a test can read them at any time.

use std::collections::BTreeMap;

use firmware_profiles::{MacSelection, Profile};
use keystore::Kcv;
use protocols::ndc::{
    Dialect, LastStatus, LastTransactionStatus, NumberedValue, State, SupplyCounters,
};
use serde::Serialize;

use super::cash::Cassettes;
use super::epp::{ClearKey, Epp};
use super::outcome::{Outcome, OutcomeCounts};
use super::truth::{TruthLedger, TruthRecord};

/// Lowest and highest message coordination number (`1`..`?`, NDC.md section 2).
const MCN_FIRST: u8 = b'1';
const MCN_LAST: u8 = b'?';

/// Whether customers are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceMode {
    OutOfService,
    InService,
}

/// What the host downloaded (data commands `3`), kept so tests can check the download.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredConfig {
    pub config_id: String,
    pub screens: BTreeMap<String, String>,
    pub states: BTreeMap<String, State>,
    pub fits: Vec<String>,
    pub config_parameters: Vec<String>,
    pub options: Vec<NumberedValue>,
    pub timers: Vec<NumberedValue>,
    pub date_time: Option<String>,
    /// Key change commands acknowledged (PIN keys loaded, and other key changes stored blind).
    pub key_changes: u32,
}

/// Snapshot of the terminal's mode and configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TerminalStatus {
    pub connected: bool,
    pub mode: ServiceMode,
    pub supervisor: bool,
    pub config_id: String,
    pub screens: usize,
    pub states: usize,
    pub fits: usize,
    pub options: usize,
    pub timers: usize,
    /// Host messages answered with a command reject (`A`/`C`).
    pub commands_rejected: u32,
    /// The PIN pad holds a terminal master key (key loads can be deciphered).
    pub master_key_loaded: bool,
    /// Check value of the PIN key the host loaded (`None`: no PIN key, PIN buffer A goes empty).
    pub pin_key_kcv: Option<Kcv>,
    /// Check value of the MAC key the host loaded (NDC MAC mode).
    pub mac_key_kcv: Option<Kcv>,
    /// Transaction replies rejected because their MAC or echoed TVN was wrong (reason `1`/`2`).
    pub replies_rejected_for_mac: u32,
}

/// Snapshot of the money and the customers: compare it with the switch's journal and the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TerminalCounters {
    /// Notes per cassette type (index 0 = type 1).
    pub notes_loaded: Vec<u32>,
    pub notes_left: Vec<u32>,
    /// Notes that reached customers.
    pub notes_dispensed: Vec<u32>,
    /// Notes that left the cassettes but went to the reject bin (purged after an `E3`,
    /// retracted after an `E5`): loaded = left + dispensed + rejected.
    pub notes_rejected: Vec<u32>,
    /// Value of all notes that reached customers.
    pub dispensed_minor: u64,
    /// Value of all deposits the terminal accepted.
    pub deposited_minor: u64,
    pub deposits: u32,
    /// Transaction replies processed (the supply counters' transaction count).
    pub transaction_count: u32,
    /// TSN of the last transaction reply processed.
    pub last_tsn: u16,
    pub customers: OutcomeCounts,
}

/// The terminal.
#[derive(Debug)]
pub struct Terminal {
    pub luno: String,
    pub dialect: Dialect,
    pub cassettes: Cassettes,
    pub config: StoredConfig,
    pub mode: ServiceMode,
    pub supervisor: bool,
    pub connected: bool,
    /// MCN of the request waiting for its reply; `None` when no reply is expected.
    pub awaiting: Option<char>,
    /// What the next transaction request reports as the last transaction status.
    pub last_txn: LastTransactionStatus,
    /// The encrypting PIN pad: master key, PIN key, MAC key.
    pub epp: Epp,
    /// Which messages carry a MAC (the profile's `[mac]`).
    pub mac: MacSelection,
    /// The last time-variant number used; each MACed message takes the next one.
    pub(crate) tvn: u32,
    /// The TVN of the request waiting for its reply (MAC mode): the reply must echo it.
    pub(crate) awaiting_tvn: Option<String>,
    pub(crate) replies_rejected_for_mac: u32,
    /// The last transaction request sent, as sent (what a recording on the line would hold).
    pub(crate) last_request: Option<protocols::ndc::TransactionRequest>,
    /// The next solicited status goes out with this MAC instead of its own (a test's attacker).
    pub(crate) tamper_status_mac: Option<String>,
    mcn: u8,
    dispensed_minor: u64,
    deposited_minor: u64,
    deposits: u32,
    transaction_count: u32,
    customers: OutcomeCounts,
    commands_rejected: u32,
    /// What really happened in every transaction.
    pub truth: TruthLedger,
}

impl Terminal {
    pub fn new(profile: &Profile, luno: String, cassettes: Cassettes, config_id: String) -> Self {
        let types = profile.dialect.cassette_types;
        Self {
            luno,
            dialect: profile.dialect.clone(),
            cassettes,
            config: StoredConfig {
                config_id,
                ..StoredConfig::default()
            },
            mode: ServiceMode::OutOfService,
            supervisor: false,
            connected: false,
            awaiting: None,
            last_txn: LastTransactionStatus {
                tsn: 0,
                status: LastStatus::None,
                notes_dispensed: vec![0; types],
                tail: String::new(),
            },
            epp: Epp::default(),
            mac: profile.mac,
            tvn: 0,
            awaiting_tvn: None,
            replies_rejected_for_mac: 0,
            last_request: None,
            tamper_status_mac: None,
            mcn: MCN_LAST,
            dispensed_minor: 0,
            deposited_minor: 0,
            deposits: 0,
            transaction_count: 0,
            customers: OutcomeCounts::default(),
            commands_rejected: 0,
            truth: TruthLedger::default(),
        }
    }

    /// The PIN pad starts with this master key (as installed by the key custodians).
    pub fn with_master_key(mut self, master_key: Option<ClearKey>) -> Self {
        self.epp = Epp::new(master_key);
        self
    }

    /// The next message coordination number (`1`, `2` … `?`, then `1` again).
    pub fn next_mcn(&mut self) -> char {
        self.mcn = if self.mcn >= MCN_LAST {
            MCN_FIRST
        } else {
            self.mcn + 1
        };
        char::from(self.mcn)
    }

    /// Whether a customer can be served now.
    pub fn serving(&self) -> bool {
        self.connected && self.mode == ServiceMode::InService && !self.supervisor
    }

    /// A transaction reply was accepted: it becomes the last transaction.
    pub fn reply_processed(&mut self, tsn: u16) {
        self.transaction_count = self.transaction_count.saturating_add(1);
        self.last_txn.tsn = tsn;
        self.last_txn.status = LastStatus::None;
        self.last_txn.notes_dispensed = vec![0; self.cassettes.types()];
    }

    /// The terminal finished the reply's function and reported `status` (with `notes` dispensed).
    pub fn reply_finished(&mut self, status: LastStatus, notes: &[u32]) {
        self.last_txn.status = status;
        if !notes.is_empty() {
            self.last_txn.notes_dispensed = notes.to_vec();
        }
    }

    /// A transaction reply was rejected (`tsn` is the rejected reply's).
    pub fn reply_rejected(&mut self, tsn: u16) {
        self.last_txn.tsn = tsn;
        self.last_txn.status = LastStatus::ReplyRejected;
        self.last_txn.notes_dispensed = vec![0; self.cassettes.types()];
    }

    /// Takes notes out of the cassettes; returns what left and its value.
    pub fn dispense(&mut self, notes: &[u32]) -> (Vec<u32>, u64) {
        let taken = self.cassettes.take(notes);
        let value = self.cassettes.value_minor(&taken);
        self.dispensed_minor += value;
        (taken, value)
    }

    /// Notes taken by [`Terminal::dispense`] that did not reach the customer (purged or
    /// retracted into the reject bin); returns what was moved and its value.
    pub fn divert(&mut self, notes: &[u32]) -> (Vec<u32>, u64) {
        let moved = self.cassettes.divert(notes);
        let value = self.cassettes.value_minor(&moved);
        self.dispensed_minor -= value;
        (moved, value)
    }

    pub fn deposit(&mut self, amount_minor: u64) {
        self.deposited_minor += amount_minor;
        self.deposits = self.deposits.saturating_add(1);
    }

    pub fn customer_done(&mut self, outcome: &Outcome, terminal_fault: bool) {
        self.customers.record(outcome);
        if terminal_fault {
            self.customers.terminal_faults += 1;
        }
    }

    /// Appends a transaction's truth (its sequence number is assigned here).
    pub fn record_truth(&mut self, record: TruthRecord) {
        self.truth.record(record);
    }

    pub fn command_rejected(&mut self) {
        self.commands_rejected = self.commands_rejected.saturating_add(1);
    }

    /// The answer to terminal command `4`.
    pub fn supply_counters(&self) -> SupplyCounters {
        SupplyCounters {
            tsn: self.last_txn.tsn,
            transaction_count: self.transaction_count % 10_000_000,
            notes_in_cassettes: self.cassettes.left().iter().map(|&n| n % 100_000).collect(),
            notes_rejected: self
                .cassettes
                .rejected()
                .iter()
                .map(|&n| n % 100_000)
                .collect(),
            notes_dispensed: self
                .cassettes
                .dispensed()
                .iter()
                .map(|&n| n % 100_000)
                .collect(),
            last_transaction_notes_dispensed: self.last_txn.notes_dispensed.clone(),
            cards_captured: 0,
            envelopes_deposited: self.deposits % 100_000,
            camera_film_remaining: 0,
            last_envelope_serial: self.deposits % 100_000,
            extra: String::new(),
        }
    }

    pub fn counters(&self) -> TerminalCounters {
        TerminalCounters {
            notes_loaded: self.cassettes.loaded(),
            notes_left: self.cassettes.left(),
            notes_dispensed: self.cassettes.dispensed(),
            notes_rejected: self.cassettes.rejected(),
            dispensed_minor: self.dispensed_minor,
            deposited_minor: self.deposited_minor,
            deposits: self.deposits,
            transaction_count: self.transaction_count,
            last_tsn: self.last_txn.tsn,
            customers: self.customers.clone(),
        }
    }

    pub fn status(&self) -> TerminalStatus {
        TerminalStatus {
            connected: self.connected,
            mode: self.mode,
            supervisor: self.supervisor,
            config_id: self.config.config_id.clone(),
            screens: self.config.screens.len(),
            states: self.config.states.len(),
            fits: self.config.fits.len(),
            options: self.config.options.len(),
            timers: self.config.timers.len(),
            commands_rejected: self.commands_rejected,
            master_key_loaded: self.epp.has_master_key(),
            pin_key_kcv: self.epp.pin_key_kcv(),
            mac_key_kcv: self.epp.mac_key_kcv(),
            replies_rejected_for_mac: self.replies_rejected_for_mac,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcn_cycles_from_1_to_question_mark() {
        let p = Profile::builtin("ncr-selfserv-basic").expect("builtin profile");
        let c = Cassettes::load(&p, None).unwrap();
        let mut t = Terminal::new(&p, "001".into(), c, "0000".into());
        let mcns: String = (0..17).map(|_| t.next_mcn()).collect();
        assert_eq!(mcns, "123456789:;<=>?12");
    }
}
