//! The truth ledger: what really left the cassettes (or was taken in) for every transaction,
//! whatever the terminal told the host.
//!
//! No I/O. A real terminal's owner learns this from the technician who opens the safe; the lab
//! learns it from here, so it can play the technician at the end of a run (settle every dispense
//! the agent holds in doubt with the amount the customer really got, through `atmctl dispense
//! settle ATM TSN`) and then reconcile. One [`TruthRecord`] per withdrawal or deposit the
//! terminal started (a request sent, or a power failure as it was about to be), in order; the
//! terminal never sees the STAN the agent assigns, so the key is the terminal and the TSN of the
//! transaction reply, which is also what `atmctl` settles by.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::customer::Kind;
use super::faults::TerminalFault;

/// Records kept per terminal; beyond this the oldest go (a lab run stays far below it).
pub const TRUTH_RECORDS_MAX: usize = 1_000_000;

/// What the terminal told the host about the transaction's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reported {
    /// `9` / `B`: the function was performed in full (or a display reply was shown).
    Ready,
    /// `8 E1<counts>`: a short dispense with the counts of what left.
    ShortDispense,
    /// `8 E2<zeros>`: nothing dispensed.
    NothingDispensed,
    /// `8 E3<requested counts>`.
    UnknownWithCounts,
    /// `8 E3` without counts.
    UnknownWithoutCounts,
    /// `8 E5<presented counts>`: notes retracted.
    Retracted,
    /// `8 E1` without counts.
    ShortWithoutCounts,
    /// `8 FS <another device>`: a fault that says nothing about the cash.
    OtherDeviceFault,
    /// No status before the agent's status timer ran out.
    NoStatus,
    /// The power failed: no status (the next power-up's counters tell).
    PowerLoss,
    /// The transaction reply was rejected (`A` / `C`); nothing was done.
    ReplyRejected,
    /// No transaction reply within the host reply timer; nothing was done.
    NoReply,
}

impl Reported {
    /// Whether the status told the host exactly what reached the customer (so no dispense
    /// should be left in doubt by it).
    pub fn told_the_host_exactly(self) -> bool {
        matches!(
            self,
            Self::Ready | Self::ShortDispense | Self::NothingDispensed | Self::ReplyRejected
        )
    }
}

/// What really happened in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthRecord {
    /// The terminal (its LUNO).
    pub luno: String,
    /// 1, 2, 3 … in the order this terminal started them (power cycles included).
    pub seq: u64,
    pub kind: Kind,
    /// TSN of the transaction reply the terminal received for it; `None` when none arrived
    /// (power lost first, or the host reply timer ran out).
    pub tsn: Option<u16>,
    /// The message coordination number of the request (`None`: no request left the terminal).
    pub mcn: Option<char>,
    pub requested_minor: u64,
    /// The fault injected ([`crate::Behaviour::TerminalFault`]), if one struck.
    pub fault: Option<TerminalFault>,
    /// What the terminal told the host.
    pub reported: Reported,
    /// Notes that left the cassettes, per cassette type (index 0 = type 1); empty when no
    /// dispense was tried.
    pub notes_picked: Vec<u32>,
    /// Of those, notes purged or retracted into the reject bin (counted as rejected).
    pub notes_diverted: Vec<u32>,
    /// Of those, notes that reached the customer (counted as dispensed).
    pub notes_delivered: Vec<u32>,
    /// Value of `notes_delivered`: the amount the customer really got, what a technician
    /// settles the dispense with (`--dispensed`; `--nothing` when 0).
    pub dispensed_minor: u64,
    /// Value of the deposit the terminal took in.
    pub deposited_minor: u64,
}

impl TruthRecord {
    /// Every note picked either reached the customer or went to the reject bin.
    pub fn notes_add_up(&self) -> bool {
        let n = self.notes_picked.len();
        [&self.notes_diverted, &self.notes_delivered]
            .iter()
            .all(|v| v.is_empty() || v.len() == n)
            && (0..n).all(|i| {
                let d = self.notes_diverted.get(i).copied().unwrap_or(0);
                let c = self.notes_delivered.get(i).copied().unwrap_or(0);
                self.notes_picked[i] == d + c
            })
    }
}

/// Every transaction's truth, in order (bounded by [`TRUTH_RECORDS_MAX`]).
#[derive(Debug, Clone, Default)]
pub struct TruthLedger {
    records: VecDeque<TruthRecord>,
    next_seq: u64,
}

impl TruthLedger {
    /// Appends `record` with the next sequence number.
    pub fn record(&mut self, mut record: TruthRecord) {
        self.next_seq += 1;
        record.seq = self.next_seq;
        debug_assert!(
            record.notes_add_up(),
            "picked = diverted + delivered: {record:?}"
        );
        if self.records.len() == TRUTH_RECORDS_MAX {
            self.records.pop_front();
        }
        self.records.push_back(record);
    }

    pub fn records(&self) -> Vec<TruthRecord> {
        self.records.iter().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// The latest withdrawal of `records` whose reply had TSN `tsn`: what a technician finds for a
/// dispense the agent holds in doubt. `None`: the terminal never received a reply with that TSN
/// for a withdrawal, so nothing left it for that transaction.
pub fn withdrawal_by_tsn(records: &[TruthRecord], tsn: u16) -> Option<&TruthRecord> {
    records
        .iter()
        .rev()
        .find(|r| r.kind == Kind::Withdrawal && r.tsn == Some(tsn))
}

/// The amount a technician settles the dispense with TSN `tsn` for: what the customer really
/// got (0 when the terminal never acted on such a reply).
pub fn dispensed_for_tsn(records: &[TruthRecord], tsn: u16) -> u64 {
    withdrawal_by_tsn(records, tsn).map_or(0, |r| r.dispensed_minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tsn: Option<u16>, kind: Kind, dispensed_minor: u64) -> TruthRecord {
        TruthRecord {
            luno: "001".into(),
            seq: 0,
            kind,
            tsn,
            mcn: Some('1'),
            requested_minor: 5000,
            fault: None,
            reported: Reported::Ready,
            notes_picked: Vec::new(),
            notes_diverted: Vec::new(),
            notes_delivered: Vec::new(),
            dispensed_minor,
            deposited_minor: 0,
        }
    }

    #[test]
    fn records_are_numbered_and_found_by_the_latest_withdrawal_with_the_tsn() {
        let mut l = TruthLedger::default();
        l.record(record(Some(7), Kind::Withdrawal, 1000));
        l.record(record(Some(8), Kind::Deposit, 0));
        l.record(record(None, Kind::Withdrawal, 0));
        l.record(record(Some(7), Kind::Withdrawal, 3000));
        let r = l.records();
        assert_eq!(r.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(withdrawal_by_tsn(&r, 7).map(|r| r.seq), Some(4));
        assert_eq!(dispensed_for_tsn(&r, 7), 3000);
        assert_eq!(dispensed_for_tsn(&r, 8), 0, "a deposit is not a dispense");
        assert_eq!(dispensed_for_tsn(&r, 9), 0);
        let json = serde_json::to_string(&r).unwrap();
        let back: Vec<TruthRecord> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn only_definite_statuses_tell_the_host_exactly() {
        assert!(Reported::ShortDispense.told_the_host_exactly());
        for r in [
            Reported::UnknownWithCounts,
            Reported::UnknownWithoutCounts,
            Reported::Retracted,
            Reported::ShortWithoutCounts,
            Reported::OtherDeviceFault,
            Reported::NoStatus,
            Reported::PowerLoss,
        ] {
            assert!(!r.told_the_host_exactly(), "{r:?}");
        }
    }
}
