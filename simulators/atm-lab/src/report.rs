//! What a lab run measured: customers by kind and outcome, money, latency, the verdict; as a
//! table for a person and as one JSON object for a script.

use std::collections::BTreeMap;

use serde::Serialize;

use super::reconcile::Verdict;
use atm_sim::{CustomerOutcome, DeclineReason, Kind, Outcome};
use ledger_sim::LostAnswers;

/// Outcome columns of the table, in order.
pub const COLUMNS: [&str; 9] = [
    "approved",
    "declined",
    "unavail",
    "partial",
    "cancelled",
    "powerloss",
    "timeout",
    "rejected",
    "interrupted",
];

/// One customer as the lab counts it.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub terminal_id: String,
    pub kind: Kind,
    /// Requested amount.
    pub amount_minor: u64,
    /// One of [`COLUMNS`].
    pub column: &'static str,
    /// Nothing was dispensed and the agent sends a reversal (cancel, power loss without notes).
    pub reversed: bool,
    pub dispensed_minor: u64,
    pub deposited_minor: u64,
    pub latency_ms: u64,
    /// `wrong_pin` or `pin_tries_exceeded` when the decline was about the PIN.
    pub pin: Option<&'static str>,
    /// The terminal fault that struck the customer (`e3`, `power-mid-dispense` …), if any.
    pub terminal_fault: Option<&'static str>,
    /// The customer's card is the other bank's (the bank host route).
    pub bank: bool,
}

impl Record {
    pub fn from_outcome(terminal_id: &str, o: &CustomerOutcome, latency_ms: u64) -> Self {
        let (column, reversed) = match &o.outcome {
            Outcome::Approved => ("approved", false),
            Outcome::Declined { .. } => ("declined", false),
            Outcome::HostUnavailable { .. } => ("unavail", false),
            Outcome::ShortDispense => ("partial", false),
            Outcome::Cancelled => ("cancelled", true),
            Outcome::PowerLoss { notes_left } => ("powerloss", !notes_left),
            Outcome::Timeout => ("timeout", false),
            Outcome::ReplyRejected { .. } => ("rejected", false),
            Outcome::OutOfService => ("interrupted", false),
        };
        Record {
            terminal_id: terminal_id.to_owned(),
            kind: o.kind,
            amount_minor: o.requested_minor,
            column,
            reversed,
            dispensed_minor: o.dispensed_minor,
            deposited_minor: o.deposited_minor,
            latency_ms,
            pin: match o.outcome.decline_reason() {
                Some(DeclineReason::WrongPin) => Some("wrong_pin"),
                Some(DeclineReason::PinTriesExceeded) => Some("pin_tries_exceeded"),
                _ => None,
            },
            terminal_fault: o.terminal_fault.as_ref().map(|f| f.mode().name()),
            bank: false,
        }
    }

    /// A customer whose session broke off (the connection went away under it).
    pub fn interrupted(terminal_id: &str, kind: Kind, amount_minor: u64, latency_ms: u64) -> Self {
        Record {
            terminal_id: terminal_id.to_owned(),
            kind,
            amount_minor,
            column: "interrupted",
            reversed: false,
            dispensed_minor: 0,
            deposited_minor: 0,
            latency_ms,
            pin: None,
            terminal_fault: None,
            bank: false,
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct LabReport {
    pub scenario: String,
    pub atms: usize,
    pub seed: u64,
    pub customers: usize,
    pub approved: usize,
    pub declined: usize,
    pub host_unavailable: usize,
    pub reversed: usize,
    pub partial: usize,
    pub interrupted: usize,
    /// Whether PINs were verified in this run.
    pub pins: bool,
    /// Declines for a wrong PIN (55) and for PIN tries exceeded / card blocked (75), within
    /// `declined`.
    pub wrong_pin: usize,
    pub pin_tries_exceeded: usize,
    /// The PIN drill (three wrong PINs, blocked, operator unblock, approved) went as expected;
    /// `None` when it did not run.
    pub pin_drill_ok: Option<bool>,
    /// kind → column → count.
    pub by_kind: BTreeMap<String, BTreeMap<String, usize>>,
    /// What the customers got / gave, from their outcomes.
    pub dispensed_minor: u64,
    pub deposited_minor: u64,
    pub ledger_captured_minor: u64,
    pub ledger_credited_minor: u64,
    pub ledger_debited_minor: u64,
    /// Cash paid out minus cash taken in, as the ledger booked it.
    pub ledger_net_minor: i64,
    pub ledger_movements: usize,
    pub lost: usize,
    pub lost_minor: u64,
    pub duplicated: usize,
    pub mismatched: usize,
    /// Holds neither captured nor voided at the end (the verdict fails on any).
    pub open_holds: u64,
    /// Customers a terminal fault struck (`terminal-faults`, `chaos`), and by fault mode.
    pub terminal_faults: usize,
    pub terminal_faults_by_mode: BTreeMap<String, usize>,
    /// Dispenses in doubt the lab settled as the technician (`atmctl dispense settle`, from the
    /// terminals' truth); each one in `verdict.in_doubt_settled`.
    pub in_doubt_settled: usize,
    /// Dispenses the agent still held in doubt at the end (`atmctl dispense ls`; the verdict
    /// fails on any).
    pub in_doubt_left: usize,
    /// The switch's unresolved exceptions (`switchctl exceptions ls`; the verdict fails on any).
    pub exceptions: usize,
    /// The agent's parked advices (`atmctl queue ls`; the verdict fails on any).
    pub parked: usize,
    /// Customers with a card of the other bank (`--bank-share`), and how they fared: approved
    /// (full dispense, deposit taken, balance shown), declined (by the host, or 91 when it did
    /// not answer: within `bank_host_unavailable`), reversed (nothing dispensed, reversal sent).
    pub bank_share: f64,
    pub bank_customers: usize,
    pub bank_approved: usize,
    pub bank_declined: usize,
    pub bank_host_unavailable: usize,
    pub bank_reversed: usize,
    pub bank_partial: usize,
    /// The bank side's lost and duplicated lines (journal vs the host's record), within `lost`
    /// and `duplicated`; the host's totals are in `verdict.bank`.
    pub bank_lost: usize,
    pub bank_duplicated: usize,
    /// The host's own count of reversals that undid something, and of reversals for originals
    /// it never applied (a request it never answered).
    pub bank_reversals_applied: u64,
    pub bank_reversals_unmatched: u64,
    /// Answers the ledger lost after applying the write (`ambiguous-ledger`), by operation.
    pub ledger_lost_answers: LostAnswers,
    pub queue_drained: bool,
    pub agent_restarts: u32,
    pub switch_restarts: u32,
    pub drill_events: Vec<String>,
    pub elapsed_s: f64,
    pub tps: f64,
    pub p50_ms: u64,
    pub p90_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
    pub reconciled: bool,
    pub verdict: Verdict,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub struct RunFacts {
    pub scenario: String,
    pub atms: usize,
    pub seed: u64,
    pub elapsed_s: f64,
    pub agent_restarts: u32,
    pub switch_restarts: u32,
    pub drill_events: Vec<String>,
    pub pins: bool,
    pub pin_drill_ok: Option<bool>,
    pub lost_answers: LostAnswers,
    pub bank_share: f64,
}

pub fn build(records: &[Record], verdict: Verdict, facts: RunFacts) -> LabReport {
    let mut by_kind: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for r in records {
        *by_kind
            .entry(r.kind.to_string())
            .or_default()
            .entry(r.column.to_owned())
            .or_default() += 1;
    }
    let count = |c: &str| records.iter().filter(|r| r.column == c).count();
    let mut lat: Vec<u64> = records.iter().map(|r| r.latency_ms).collect();
    lat.sort_unstable();
    let l = &verdict.ledger;
    let mut terminal_faults_by_mode: BTreeMap<String, usize> = BTreeMap::new();
    for f in records.iter().filter_map(|r| r.terminal_fault) {
        *terminal_faults_by_mode.entry(f.to_owned()).or_default() += 1;
    }
    let bank_count = |c: &str| records.iter().filter(|r| r.bank && r.column == c).count();
    let bank = verdict.bank.as_ref();
    LabReport {
        bank_share: facts.bank_share,
        bank_customers: records.iter().filter(|r| r.bank).count(),
        bank_approved: bank_count("approved"),
        bank_declined: bank_count("declined"),
        bank_host_unavailable: bank_count("unavail"),
        bank_reversed: records.iter().filter(|r| r.bank && r.reversed).count(),
        bank_partial: bank_count("partial"),
        bank_lost: bank.map_or(0, |b| b.lost.len()),
        bank_duplicated: bank.map_or(0, |b| b.duplicated.len()),
        bank_reversals_applied: bank.map_or(0, |b| b.host_reversals_applied),
        bank_reversals_unmatched: bank.map_or(0, |b| b.host_reversals_unmatched),
        scenario: facts.scenario,
        atms: facts.atms,
        seed: facts.seed,
        customers: records.len(),
        approved: count("approved"),
        declined: count("declined"),
        host_unavailable: count("unavail"),
        reversed: records.iter().filter(|r| r.reversed).count(),
        partial: count("partial"),
        interrupted: count("interrupted"),
        pins: facts.pins,
        wrong_pin: records
            .iter()
            .filter(|r| r.pin == Some("wrong_pin"))
            .count(),
        pin_tries_exceeded: records
            .iter()
            .filter(|r| r.pin == Some("pin_tries_exceeded"))
            .count(),
        pin_drill_ok: facts.pin_drill_ok,
        by_kind,
        dispensed_minor: records.iter().map(|r| r.dispensed_minor).sum(),
        deposited_minor: records.iter().map(|r| r.deposited_minor).sum(),
        ledger_captured_minor: l.captured_minor,
        ledger_credited_minor: l.credited_minor,
        ledger_debited_minor: l.debited_minor,
        ledger_net_minor: l.withdrawn_net_minor as i64 - l.deposited_net_minor as i64,
        ledger_movements: l.movements,
        lost: verdict.lost.len(),
        lost_minor: verdict.lost_minor,
        duplicated: verdict.duplicated.len(),
        mismatched: verdict.mismatched.len(),
        open_holds: verdict.open_holds,
        terminal_faults: terminal_faults_by_mode.values().sum(),
        terminal_faults_by_mode,
        in_doubt_settled: verdict.in_doubt_settled.len(),
        in_doubt_left: verdict.in_doubt_left.len(),
        exceptions: verdict.exceptions.len(),
        parked: verdict.parked.len(),
        ledger_lost_answers: facts.lost_answers,
        queue_drained: verdict.queue_pending == 0 && verdict.queue_parked == 0,
        agent_restarts: facts.agent_restarts,
        switch_restarts: facts.switch_restarts,
        drill_events: facts.drill_events,
        elapsed_s: facts.elapsed_s,
        tps: if facts.elapsed_s > 0.0 {
            records.len() as f64 / facts.elapsed_s
        } else {
            0.0
        },
        p50_ms: percentile(&lat, 0.50),
        p90_ms: percentile(&lat, 0.90),
        p99_ms: percentile(&lat, 0.99),
        max_ms: lat.last().copied().unwrap_or(0),
        reconciled: verdict.reconciled,
        verdict,
    }
}

pub fn eur(minor: u64) -> String {
    format!("EUR {}.{:02}", minor / 100, minor % 100)
}

fn eur_signed(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    format!("{sign}{}", eur(minor.unsigned_abs()))
}

impl LabReport {
    /// The table a person reads.
    pub fn table(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "atm-lab: {} ATMs, {} customers, faults: {}, seed {}, {:.1} s\n\n",
            self.atms, self.customers, self.scenario, self.seed, self.elapsed_s
        ));
        s.push_str(&format!("{:<11}", "kind"));
        for c in COLUMNS {
            s.push_str(&format!("{c:>12}"));
        }
        s.push_str(&format!("{:>8}\n", "total"));
        let mut totals = [0usize; COLUMNS.len()];
        for (kind, cols) in &self.by_kind {
            s.push_str(&format!("{kind:<11}"));
            let mut row = 0;
            for (i, c) in COLUMNS.iter().enumerate() {
                let n = cols.get(*c).copied().unwrap_or(0);
                totals[i] += n;
                row += n;
                s.push_str(&format!("{n:>12}"));
            }
            s.push_str(&format!("{row:>8}\n"));
        }
        s.push_str(&format!("{:<11}", "all"));
        for n in totals {
            s.push_str(&format!("{n:>12}"));
        }
        s.push_str(&format!("{:>8}\n\n", self.customers));
        let v = &self.verdict;
        s.push_str(&format!(
            "{:<34}{:>18}{:>18}\n",
            "money", "terminals", "ledger (net)"
        ));
        s.push_str(&format!(
            "{:<34}{:>18}{:>18}\n",
            "cash dispensed / captured",
            eur(v.terminals_dispensed_minor),
            eur(v.ledger.withdrawn_net_minor)
        ));
        s.push_str(&format!(
            "{:<34}{:>18}{:>18}\n",
            "cash deposited / credited",
            eur(v.terminals_deposited_minor),
            eur(v.ledger.deposited_net_minor)
        ));
        s.push_str(&format!(
            "ledger movements: {}  captured {}  credited {}  debited {}  net out {}\n",
            self.ledger_movements,
            eur(self.ledger_captured_minor),
            eur(self.ledger_credited_minor),
            eur(self.ledger_debited_minor),
            eur_signed(self.ledger_net_minor)
        ));
        s.push_str(&format!(
            "agent queue: {} ({} pending, {} parked)   restarts: agent {}, switch {}\n",
            if self.queue_drained {
                "drained"
            } else {
                "NOT drained"
            },
            v.queue_pending,
            v.queue_parked,
            self.agent_restarts,
            self.switch_restarts
        ));
        s.push_str(&format!(
            "ledger holds: {} open (neither captured nor voided)\n",
            v.open_holds
        ));
        if let Some(b) = &v.bank {
            s.push_str(&format!(
                "bank cards: {} customers ({:.0} %): approved {} declined {} host-unavailable {} partial {} reversed {}\n",
                self.bank_customers,
                self.bank_share * 100.0,
                self.bank_approved,
                self.bank_declined,
                self.bank_host_unavailable,
                self.bank_partial,
                self.bank_reversed
            ));
            s.push_str(&format!(
                "{:<34}{:>18}{:>18}\n",
                "bank host", "journal", "host record"
            ));
            for (what, journal, host) in [
                ("held", b.journal_held_minor, b.host_held_minor),
                ("debited", b.journal_debited_minor, b.host_debited_minor),
                ("credited", b.journal_credited_minor, b.host_credited_minor),
            ] {
                s.push_str(&format!(
                    "{what:<34}{:>18}{:>18}\n",
                    eur(journal),
                    eur(host)
                ));
            }
            s.push_str(&format!(
                "bank host: {} journal records; approved {} declined {}; reversals applied {} unmatched {}; completions {}; repeats ignored {}; reversed {}\n",
                b.journal_records,
                b.host_approved,
                b.host_declined,
                b.host_reversals_applied,
                b.host_reversals_unmatched,
                b.host_completions_applied,
                b.host_repeats_ignored,
                eur(b.host_reversed_minor)
            ));
        }
        if self.terminal_faults > 0 {
            let modes: Vec<String> = self
                .terminal_faults_by_mode
                .iter()
                .map(|(m, n)| format!("{m} {n}"))
                .collect();
            s.push_str(&format!(
                "terminal faults: {} customers ({})\n",
                self.terminal_faults,
                modes.join(", ")
            ));
        }
        s.push_str(&format!(
            "in doubt: {} settled by the technician, {} left   switch exceptions: {}   parked advices: {}\n",
            self.in_doubt_settled, self.in_doubt_left, self.exceptions, self.parked
        ));
        for t in &v.in_doubt_settled {
            s.push_str(&format!("  technician: {t}\n"));
        }
        let lost = &self.ledger_lost_answers;
        if lost.total > 0 {
            s.push_str(&format!(
                "ledger answers lost after commit: holds {}  captures {}  voids {}  credits {}  debits {}  ({} in all)\n",
                lost.holds, lost.captures, lost.voids, lost.credits, lost.debits, lost.total
            ));
        }
        if self.pins {
            s.push_str(&format!(
                "PINs: verified by the switch (bank cards: by the bank host); declined for a wrong PIN {}, for PIN tries exceeded {}   PIN drill: {}\n",
                self.wrong_pin,
                self.pin_tries_exceeded,
                match self.pin_drill_ok {
                    Some(true) => "as expected",
                    Some(false) => "NOT AS EXPECTED",
                    None => "not run",
                }
            ));
        }
        for e in &self.drill_events {
            s.push_str(&format!("drill: {e}\n"));
        }
        s.push_str(&format!(
            "throughput: {:.1} customers/s   latency per customer: p50 {} ms  p90 {} ms  p99 {} ms  max {} ms\n",
            self.tps, self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms
        ));
        s.push_str(&format!(
            "journal: {} transactions, {} in flight   lost {} ({})   duplicated {}   mismatched {}\n",
            v.journal_transactions,
            v.journal_in_flight,
            self.lost,
            eur(self.lost_minor),
            self.duplicated,
            self.mismatched
        ));
        for l in &v.lost {
            s.push_str(&format!("  LOST: {l}\n"));
        }
        for d in &v.duplicated {
            s.push_str(&format!("  DUPLICATED: {d}\n"));
        }
        for m in &v.mismatched {
            s.push_str(&format!("  MISMATCH: {m}\n"));
        }
        let agree = if v.bank.is_some() {
            "RECONCILED (terminals = journal = ledger + bank host)"
        } else {
            "RECONCILED (terminals = journal = ledger)"
        };
        s.push_str(&format!(
            "verdict: {}\n",
            if self.reconciled {
                agree
            } else {
                "NOT RECONCILED"
            }
        ));
        s
    }
}
