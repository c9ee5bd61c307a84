//! Three-way reconciliation of a lab run, from data only (no I/O): what the terminals say they
//! dispensed and took in, what the switch journal says should have moved, and what the ledger's
//! movements say did move.
//!
//! - `lost`: money a terminal dispensed (or took in) that the ledger never saw — terminal total
//!   minus ledger total when positive — plus the switch's own `lost` list (journal vs ledger);
//!   with bank cards, the terminals' totals are set beside the ledger's plus the bank host's
//!   (terminal by terminal: plus the journal's bank-route records of that terminal), and the
//!   bank side's own lists join in ([`crate::bank::compare`]: journal vs the host's record, card
//!   by card: a journal debit the host lacks is lost, a host debit the journal lacks duplicated);
//! - `duplicated`: movements posted more than once — the switch's `duplicated` list plus the
//!   ledger's `holds_captured_twice`;
//! - `mismatched`: everything else that does not agree (the ledger moved more than the terminals
//!   did, amounts that differ per transaction, unknown references, work still in flight, advices
//!   not drained);
//! - `open_holds`: holds the ledger still has open (neither captured nor voided) once the switch
//!   has settled what it could: money reserved on a wallet that nobody will release. Each one is
//!   also named in `mismatched`.
//! - `in_doubt_left`, `exceptions`, `parked`: what is left for a person after the lab played the
//!   technician (`in_doubt_settled`): dispenses the agent still holds in doubt, the switch's
//!   unresolved exceptions, the agent's parked advices. Each fails the verdict and is also named
//!   in `mismatched`.

use crate::bank::{BankVerdict, JournalBank};
use host_switch::domain::reconcile::{LedgerMovement, MovementKind, Reconciliation};
use std::collections::BTreeSet;

use serde::Serialize;

use atm_sim::TerminalCounters;
use ledger_sim::domain::{Hold, Movement, MovementKind as LedgerKind};

/// Open holds named one by one in `mismatched`; past it, one line says how many more.
pub const OPEN_HOLDS_NAMED_MAX: usize = 20;

/// Ledger movement totals (funding excluded).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LedgerTotals {
    pub movements: usize,
    pub captured_minor: u64,
    pub credited_minor: u64,
    pub debited_minor: u64,
    /// Captures minus compensating credits of the same reference: cash the wallets paid for.
    pub withdrawn_net_minor: u64,
    /// Deposit credits minus compensating debits: cash the wallets were credited for.
    pub deposited_net_minor: u64,
}

/// The verdict of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub terminals_dispensed_minor: u64,
    pub terminals_deposited_minor: u64,
    pub ledger: LedgerTotals,
    /// Minor units the ledger is short of what the terminals did.
    pub lost_minor: u64,
    pub lost: Vec<String>,
    pub duplicated: Vec<String>,
    pub mismatched: Vec<String>,
    pub journal_transactions: usize,
    pub journal_in_flight: usize,
    pub queue_pending: u64,
    pub queue_parked: u64,
    /// Holds neither captured nor voided at the end.
    pub open_holds: u64,
    /// What the lab, as the technician, settled: one line per dispense in doubt.
    pub in_doubt_settled: Vec<String>,
    /// Dispenses (or deposits) the agent still holds in doubt at the end.
    pub in_doubt_left: Vec<String>,
    /// The switch's unresolved exceptions (`switchctl exceptions ls`).
    pub exceptions: Vec<String>,
    /// The agent's parked advices (`atmctl queue ls`).
    pub parked: Vec<String>,
    /// The bank side (journal vs the bank host's record); `None` without a bank host.
    pub bank: Option<BankVerdict>,
    pub reconciled: bool,
}

/// The switch's view of a ledger movement list (its `reconcile` input); `funding` is skipped.
pub fn switch_movements(movements: &[Movement]) -> Vec<LedgerMovement> {
    movements
        .iter()
        .filter_map(|m| {
            let kind = match m.kind {
                LedgerKind::Capture => MovementKind::Capture,
                LedgerKind::Credit => MovementKind::Credit,
                LedgerKind::Debit => MovementKind::Debit,
                LedgerKind::Funding => return None,
            };
            Some(LedgerMovement {
                kind,
                amount_minor: m.amount_minor,
                reference: m.reference.clone(),
            })
        })
        .collect()
}

pub fn ledger_totals(movements: &[Movement]) -> LedgerTotals {
    let captured_refs: BTreeSet<&str> = movements
        .iter()
        .filter(|m| m.kind == LedgerKind::Capture)
        .map(|m| m.reference.as_str())
        .collect();
    let mut t = LedgerTotals::default();
    let (mut comp_credit, mut deposit_credit) = (0u64, 0u64);
    for m in movements {
        match m.kind {
            LedgerKind::Funding => continue,
            LedgerKind::Capture => t.captured_minor += m.amount_minor,
            LedgerKind::Credit => {
                t.credited_minor += m.amount_minor;
                if captured_refs.contains(m.reference.as_str()) {
                    comp_credit += m.amount_minor;
                } else {
                    deposit_credit += m.amount_minor;
                }
            }
            LedgerKind::Debit => t.debited_minor += m.amount_minor,
        }
        t.movements += 1;
    }
    t.withdrawn_net_minor = t.captured_minor.saturating_sub(comp_credit);
    t.deposited_net_minor = deposit_credit.saturating_sub(t.debited_minor);
    t
}

/// A customer whose session broke off: the likeliest cause of a difference on its terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suspect {
    pub terminal_id: String,
    /// `withdrawal` or `deposit`.
    pub kind: String,
    pub amount_minor: u64,
}

/// Everything the lab collected after the run.
pub struct Evidence<'a> {
    pub terminals: &'a [TerminalCounters],
    /// Terminal id of each entry of `terminals` (ledger references start with it).
    pub terminal_ids: &'a [String],
    pub suspects: &'a [Suspect],
    /// What the lab settled as the technician (one line each).
    pub in_doubt_settled: &'a [String],
    /// Dispenses (or deposits) the agent still holds in doubt after that, and settlements it
    /// refused: an operator decides.
    pub in_doubt: &'a [String],
    /// The switch's unresolved exceptions, one line each.
    pub exceptions: &'a [String],
    /// The agent's parked advices, one line each.
    pub parked: &'a [String],
    pub movements: &'a [Movement],
    /// Journal vs ledger, from `host_switch::domain::reconcile::reconcile`.
    pub switch: &'a Reconciliation,
    pub holds_captured_twice: u64,
    pub queue_pending: u64,
    pub queue_parked: u64,
    /// How many holds are open at the end, and the first of them (oldest first).
    pub open_holds: u64,
    pub open_holds_listed: &'a [Hold],
    /// The journal's bank-route records and the bank side's verdict; `None` without a bank host.
    pub bank: Option<(&'a JournalBank, &'a BankVerdict)>,
}

pub fn reconcile(e: &Evidence<'_>) -> Verdict {
    let mut v = Verdict {
        terminals_dispensed_minor: e.terminals.iter().map(|c| c.dispensed_minor).sum(),
        terminals_deposited_minor: e.terminals.iter().map(|c| c.deposited_minor).sum(),
        ledger: ledger_totals(e.movements),
        journal_transactions: e.switch.transactions,
        journal_in_flight: e.switch.in_flight,
        queue_pending: e.queue_pending,
        queue_parked: e.queue_parked,
        open_holds: e.open_holds,
        in_doubt_settled: e.in_doubt_settled.to_vec(),
        in_doubt_left: e.in_doubt.to_vec(),
        exceptions: e.exceptions.to_vec(),
        parked: e.parked.to_vec(),
        bank: e.bank.map(|(_, b)| b.clone()),
        ..Verdict::default()
    };
    let (bank_out, bank_in) = e.bank.map_or((0, 0), |(_, b)| {
        (b.host_debited_minor, b.host_credited_minor)
    });
    let (books, and_host) = match e.bank {
        Some(_) => ("the ledger and the bank host", " + bank host"),
        None => ("the ledger", ""),
    };
    let pairs = [
        (
            "dispensed",
            v.terminals_dispensed_minor,
            v.ledger.withdrawn_net_minor + bank_out,
        ),
        (
            "deposited",
            v.terminals_deposited_minor,
            v.ledger.deposited_net_minor + bank_in,
        ),
    ];
    for (what, terminal, ledger) in pairs {
        if terminal > ledger {
            v.lost_minor += terminal - ledger;
            v.lost.push(format!(
                "terminals {what} {terminal} but {books} saw {ledger}: {} missing",
                terminal - ledger
            ));
        } else if ledger > terminal {
            v.mismatched.push(format!(
                "ledger{and_host} {what} {ledger} but the terminals only {terminal}: {} too much",
                ledger - terminal
            ));
        }
    }
    per_terminal(e, &mut v);
    if let Some((_, b)) = e.bank {
        v.lost.extend(b.lost.iter().map(|l| format!("bank: {l}")));
        v.duplicated
            .extend(b.duplicated.iter().map(|d| format!("bank: {d}")));
        v.mismatched
            .extend(b.mismatched.iter().map(|m| format!("bank: {m}")));
    }
    v.lost
        .extend(e.switch.lost.iter().map(|l| format!("journal: {l}")));
    v.duplicated
        .extend(e.switch.duplicated.iter().map(|d| format!("journal: {d}")));
    if e.holds_captured_twice > 0 {
        v.duplicated.push(format!(
            "ledger: {} holds captured twice",
            e.holds_captured_twice
        ));
    }
    v.mismatched
        .extend(e.switch.mismatched.iter().map(|m| format!("journal: {m}")));
    v.mismatched.extend(
        e.switch
            .unknown
            .iter()
            .map(|u| format!("ledger reference unknown to the journal: {u}")),
    );
    if e.switch.in_flight > 0 {
        v.mismatched.push(format!(
            "{} transactions still owe the ledger work",
            e.switch.in_flight
        ));
    }
    for t in e.in_doubt {
        v.mismatched.push(format!(
            "in doubt after the technician's visit (left for an operator): {t}"
        ));
    }
    for x in e.exceptions {
        v.mismatched
            .push(format!("switch exception not resolved: {x}"));
    }
    for p in e.parked {
        v.mismatched.push(format!("agent advice parked: {p}"));
    }
    if e.queue_pending > 0 || e.queue_parked > 0 {
        v.mismatched.push(format!(
            "agent queue not drained: {} pending, {} parked",
            e.queue_pending, e.queue_parked
        ));
    }
    open_holds(e, &mut v);
    v.reconciled = v.lost.is_empty()
        && v.duplicated.is_empty()
        && v.mismatched.is_empty()
        && v.open_holds == 0
        && v.in_doubt_left.is_empty()
        && v.exceptions.is_empty()
        && v.parked.is_empty();
    v
}

/// Each open hold by name (its reference says terminal, STAN and time), then how many more.
fn open_holds(e: &Evidence<'_>, v: &mut Verdict) {
    for h in e.open_holds_listed.iter().take(OPEN_HOLDS_NAMED_MAX) {
        v.mismatched.push(format!(
            "ledger: hold {} ({}, {} {}) neither captured nor voided",
            h.hold_id, h.reference, h.amount_minor, h.currency
        ));
    }
    let named = e.open_holds_listed.len().min(OPEN_HOLDS_NAMED_MAX) as u64;
    if e.open_holds > named {
        v.mismatched.push(format!(
            "ledger: {} more holds neither captured nor voided",
            e.open_holds - named
        ));
    }
}

/// Terminal by terminal: where the money differs, and which ledger movements belong to customers
/// whose session broke off there (the likely culprits).
fn per_terminal(e: &Evidence<'_>, v: &mut Verdict) {
    for (c, tid) in e.terminals.iter().zip(e.terminal_ids) {
        let mine: Vec<&Movement> = e
            .movements
            .iter()
            .filter(|m| m.reference.starts_with(&format!("{tid}:")))
            .collect();
        let t = ledger_totals(&mine.iter().map(|m| (*m).clone()).collect::<Vec<_>>());
        // The bank's cards at this terminal, as the journal's bank-route records say.
        let (bank_out, bank_in) = e
            .bank
            .and_then(|(j, _)| j.by_terminal.get(tid.as_str()).copied())
            .unwrap_or((0, 0));
        let captured: BTreeSet<&str> = mine
            .iter()
            .filter(|m| m.kind == LedgerKind::Capture)
            .map(|m| m.reference.as_str())
            .collect();
        for (what, kind, terminal, ledger) in [
            (
                "dispensed",
                "withdrawal",
                c.dispensed_minor,
                t.withdrawn_net_minor + bank_out,
            ),
            (
                "deposited",
                "deposit",
                c.deposited_minor,
                t.deposited_net_minor + bank_in,
            ),
        ] {
            if terminal == ledger {
                continue;
            }
            let amounts: BTreeSet<u64> = e
                .suspects
                .iter()
                .filter(|s| &s.terminal_id == tid && s.kind == kind)
                .map(|s| s.amount_minor)
                .collect();
            let culprits: Vec<String> = mine
                .iter()
                .filter(|m| match kind {
                    "withdrawal" => m.kind == LedgerKind::Capture,
                    _ => m.kind == LedgerKind::Credit && !captured.contains(m.reference.as_str()),
                })
                .filter(|m| amounts.contains(&m.amount_minor))
                .map(|m| format!("{} {:?} {}", m.reference, m.kind, m.amount_minor))
                .collect();
            v.mismatched.push(format!(
                "{tid}: terminal {what} {terminal}, ledger {ledger} ({:+}); ledger movements of interrupted customers there: [{}]",
                ledger as i128 - terminal as i128,
                culprits.join(", ")
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_sim::domain::Currency;

    fn mv(kind: LedgerKind, amount_minor: u64, reference: &str) -> Movement {
        Movement {
            movement_id: String::new(),
            kind,
            debit_account: String::new(),
            credit_account: String::new(),
            amount_minor,
            currency: Currency::parse("EUR").unwrap(),
            reference: reference.into(),
            idempotency_key: String::new(),
            hold_id: None,
            transaction_id: None,
            at: String::new(),
        }
    }

    fn counters(dispensed: u64, deposited: u64) -> TerminalCounters {
        TerminalCounters {
            dispensed_minor: dispensed,
            deposited_minor: deposited,
            ..TerminalCounters::default()
        }
    }

    #[test]
    fn agreeing_records_reconcile_and_differences_are_named() {
        let movements = vec![
            mv(LedgerKind::Funding, 1_000_000, "seed"),
            mv(LedgerKind::Capture, 3000, "a"),
            mv(LedgerKind::Credit, 5000, "d"),
            mv(LedgerKind::Capture, 2000, "c"),
            mv(LedgerKind::Credit, 2000, "c"),
        ];
        let switch = Reconciliation::default();
        let terminals = [counters(2000, 5000), counters(1000, 0)];
        let e = Evidence {
            terminals: &terminals,
            terminal_ids: &[],
            suspects: &[],
            in_doubt_settled: &[],
            in_doubt: &[],
            exceptions: &[],
            parked: &[],
            movements: &movements,
            switch: &switch,
            holds_captured_twice: 0,
            queue_pending: 0,
            queue_parked: 0,
            open_holds: 0,
            open_holds_listed: &[],
            bank: None,
        };
        let v = reconcile(&e);
        assert!(v.reconciled, "{v:?}");
        assert_eq!(v.ledger.withdrawn_net_minor, 3000);
        assert_eq!(v.ledger.deposited_net_minor, 5000);

        let terminals = [counters(4000, 5000)];
        let v = reconcile(&Evidence {
            terminals: &terminals,
            holds_captured_twice: 1,
            ..e
        });
        assert!(!v.reconciled);
        assert_eq!(v.lost_minor, 1000);
        assert_eq!(v.duplicated.len(), 1);
    }

    fn open_hold(n: u64) -> Hold {
        Hold {
            hold_id: format!("hold-{n}"),
            account: "w1".into(),
            amount_minor: 2000,
            currency: Currency::parse("EUR").unwrap(),
            reference: format!("ATM00001:{n:06}:1203214500"),
            status: ledger_sim::domain::HoldStatus::Held,
            captured_minor: 0,
            created_at: String::new(),
        }
    }

    #[test]
    fn an_open_hold_fails_the_verdict_even_when_the_money_agrees() {
        let switch = Reconciliation::default();
        let listed: Vec<Hold> = (1..=OPEN_HOLDS_NAMED_MAX as u64 + 1)
            .map(open_hold)
            .collect();
        let e = Evidence {
            terminals: &[],
            terminal_ids: &[],
            suspects: &[],
            in_doubt_settled: &[],
            in_doubt: &[],
            exceptions: &[],
            parked: &[],
            movements: &[],
            switch: &switch,
            holds_captured_twice: 0,
            queue_pending: 0,
            queue_parked: 0,
            open_holds: 30,
            open_holds_listed: &listed,
            bank: None,
        };
        let v = reconcile(&e);
        assert!(!v.reconciled);
        assert_eq!(v.open_holds, 30);
        assert_eq!(v.lost_minor, 0);
        assert_eq!(v.mismatched.len(), OPEN_HOLDS_NAMED_MAX + 1, "{v:?}");
        assert!(v.mismatched[0].contains("hold-1 (ATM00001:000001:1203214500, 2000 EUR)"));
        assert!(v.mismatched[OPEN_HOLDS_NAMED_MAX].contains("10 more holds"));
        let none = reconcile(&Evidence {
            open_holds: 0,
            open_holds_listed: &[],
            ..e
        });
        assert!(none.reconciled, "{none:?}");
    }

    #[test]
    fn a_dispense_left_in_doubt_an_exception_or_a_parked_advice_fails_the_verdict() {
        let switch = Reconciliation::default();
        let settled = ["ATM00001 TSN 5 …: --dispensed 4000".to_owned()];
        let e = Evidence {
            terminals: &[],
            terminal_ids: &[],
            suspects: &[],
            in_doubt_settled: &settled,
            in_doubt: &[],
            exceptions: &[],
            parked: &[],
            movements: &[],
            switch: &switch,
            holds_captured_twice: 0,
            queue_pending: 0,
            queue_parked: 0,
            open_holds: 0,
            open_holds_listed: &[],
            bank: None,
        };
        let v = reconcile(&e);
        assert!(v.reconciled, "a settled dispense is done: {v:?}");
        assert_eq!(v.in_doubt_settled.len(), 1);
        let left = ["ATM00002 TSN 9 STAN 41 Withdrawal 8000 (uncounted (E3))".to_owned()];
        let exceptions = ["ATM00001:000012:1203221500  deposit 7000 EUR …".to_owned()];
        let parked = ["ATM00001 #3 completion parked: too old".to_owned()];
        for broken in [
            Evidence {
                in_doubt: &left,
                ..e
            },
            Evidence {
                exceptions: &exceptions,
                ..e
            },
            Evidence {
                parked: &parked,
                ..e
            },
        ] {
            let v = reconcile(&broken);
            assert!(!v.reconciled, "{v:?}");
            assert_eq!(v.mismatched.len(), 1, "named once: {v:?}");
            assert_eq!(v.lost_minor, 0);
        }
    }
}
