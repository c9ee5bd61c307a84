//! Reconciliation of the switch journal against the ledger's movements.
//!
//! The journal says what money should have moved for each transaction; the ledger says what did.
//! Movements are matched by reference (the transaction key, which the switch sends as the
//! ledger reference). `lost` is money the journal settled that the ledger never saw; `duplicated` is
//! a movement posted more than once; `mismatched` is a different amount. Transactions still pending
//! outbound work are reported as in flight, not as errors. Pure: the caller fetches both sides.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{TxnKind, TxnRecord, TxnState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MovementKind {
    Capture,
    Credit,
    Debit,
}

/// One posting as the ledger reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerMovement {
    pub kind: MovementKind,
    pub amount_minor: u64,
    pub reference: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reconciliation {
    pub transactions: usize,
    pub journal_captured_minor: u64,
    pub journal_credited_minor: u64,
    pub ledger_captured_minor: u64,
    pub ledger_credited_minor: u64,
    pub in_flight: usize,
    pub lost: Vec<String>,
    pub duplicated: Vec<String>,
    pub mismatched: Vec<String>,
    /// Movements whose reference the journal does not know.
    pub unknown: Vec<String>,
}

impl Reconciliation {
    pub fn is_reconciled(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.mismatched.is_empty()
            && self.unknown.is_empty()
    }
}

/// What the journal expects the ledger to hold for one transaction, per movement kind.
fn expected(rec: &TxnRecord) -> Vec<(MovementKind, u64)> {
    use MovementKind::*;
    match (&rec.kind, &rec.state) {
        (TxnKind::Withdrawal, TxnState::Captured { amount_minor, .. }) => {
            vec![(Capture, *amount_minor)]
        }
        (TxnKind::Withdrawal, TxnState::Compensated { amount_minor }) => {
            vec![(Capture, *amount_minor), (Credit, *amount_minor)]
        }
        (TxnKind::Deposit, TxnState::Credited { .. }) => vec![(Credit, rec.amount.minor)],
        (TxnKind::Deposit, TxnState::Compensated { amount_minor }) => {
            vec![(Credit, rec.amount.minor), (Debit, *amount_minor)]
        }
        _ => vec![],
    }
}

/// The wallet's transactions in `journal` against the ledger's `movements`. Records of the bank
/// host route (`TxnRecord::issuer`) moved no wallet money and are left out: they reconcile
/// against their host's record.
pub fn reconcile(journal: &[TxnRecord], movements: &[LedgerMovement]) -> Reconciliation {
    let journal: Vec<&TxnRecord> = journal.iter().filter(|r| r.issuer.is_none()).collect();
    let mut report = Reconciliation {
        transactions: journal.len(),
        ..Default::default()
    };
    let mut by_ref: BTreeMap<&str, Vec<&LedgerMovement>> = BTreeMap::new();
    for m in movements {
        match m.kind {
            MovementKind::Capture => report.ledger_captured_minor += m.amount_minor,
            MovementKind::Credit => report.ledger_credited_minor += m.amount_minor,
            MovementKind::Debit => {}
        }
        by_ref.entry(m.reference.as_str()).or_default().push(m);
    }
    for rec in journal {
        let seen = by_ref.remove(rec.key.as_str()).unwrap_or_default();
        if rec.state.is_pending_outbound() {
            report.in_flight += 1;
            continue;
        }
        let want = expected(rec);
        for (kind, amount) in &want {
            match kind {
                MovementKind::Capture => report.journal_captured_minor += amount,
                MovementKind::Credit if rec.kind == TxnKind::Deposit => {
                    report.journal_credited_minor += amount
                }
                _ => {}
            }
        }
        for kind in [
            MovementKind::Capture,
            MovementKind::Credit,
            MovementKind::Debit,
        ] {
            let got: Vec<u64> = seen
                .iter()
                .filter(|m| m.kind == kind)
                .map(|m| m.amount_minor)
                .collect();
            let wanted: Vec<u64> = want
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, a)| *a)
                .collect();
            match (wanted.len(), got.len()) {
                (w, g) if g > w => report.duplicated.push(format!("{} {kind:?} x{g}", rec.key)),
                (w, g) if g < w => report.lost.push(format!("{} {kind:?}", rec.key)),
                _ if wanted != got => report.mismatched.push(format!(
                    "{} {kind:?} journal {wanted:?} ledger {got:?}",
                    rec.key
                )),
                _ => {}
            }
        }
    }
    report.unknown = by_ref.keys().map(|r| r.to_string()).collect();
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TxnKey;
    use protocols::types::{Amount, Currency, Stan, TerminalId};

    fn rec(stan: u32, kind: TxnKind, state: TxnState) -> TxnRecord {
        let key = TxnKey::new(
            TerminalId::parse("ATM1").unwrap(),
            Stan::new(stan).unwrap(),
            "1125114000",
        );
        let mut r = TxnRecord::new(&key, kind, "cref-x", Amount::new(5000, Currency::EUR), 0);
        r.state = state;
        r
    }
    fn mv(kind: MovementKind, amount_minor: u64, r: &TxnRecord) -> LedgerMovement {
        LedgerMovement {
            kind,
            amount_minor,
            reference: r.key.clone(),
        }
    }

    #[test]
    fn matching_books_reconcile() {
        let w = rec(
            1,
            TxnKind::Withdrawal,
            TxnState::Captured {
                hold_id: "h".into(),
                amount_minor: 3000,
            },
        );
        let d = rec(
            2,
            TxnKind::Deposit,
            TxnState::Credited {
                movement_id: "m".into(),
            },
        );
        let v = rec(3, TxnKind::Withdrawal, TxnState::Voided);
        let r = reconcile(
            &[w.clone(), d.clone(), v],
            &[
                mv(MovementKind::Capture, 3000, &w),
                mv(MovementKind::Credit, 5000, &d),
            ],
        );
        assert!(r.is_reconciled(), "{r:?}");
        assert_eq!(r.journal_captured_minor, 3000);
        assert_eq!(r.ledger_credited_minor, 5000);
    }

    #[test]
    fn lost_duplicated_mismatched_and_unknown_are_reported() {
        let w = rec(
            1,
            TxnKind::Withdrawal,
            TxnState::Captured {
                hold_id: "h".into(),
                amount_minor: 3000,
            },
        );
        let w2 = rec(
            2,
            TxnKind::Withdrawal,
            TxnState::Captured {
                hold_id: "h".into(),
                amount_minor: 3000,
            },
        );
        let w3 = rec(
            3,
            TxnKind::Withdrawal,
            TxnState::Captured {
                hold_id: "h".into(),
                amount_minor: 3000,
            },
        );
        let stranger = rec(4, TxnKind::Withdrawal, TxnState::Voided);
        let r = reconcile(
            &[w.clone(), w2.clone(), w3.clone()],
            &[
                mv(MovementKind::Capture, 3000, &w2),
                mv(MovementKind::Capture, 3000, &w2),
                mv(MovementKind::Capture, 2000, &w3),
                mv(MovementKind::Capture, 1, &stranger),
            ],
        );
        assert_eq!(r.lost.len(), 1);
        assert_eq!(r.duplicated.len(), 1);
        assert_eq!(r.mismatched.len(), 1);
        assert_eq!(r.unknown.len(), 1);
        assert!(!r.is_reconciled());
    }

    #[test]
    fn bank_host_records_are_not_the_ledgers_business() {
        let mut bank = rec(
            9,
            TxnKind::Withdrawal,
            TxnState::Captured {
                hold_id: "acme:623381000009".into(),
                amount_minor: 5_000,
            },
        );
        bank.issuer = Some(Box::new(crate::domain::issuer::HostTrace {
            host: "acme".into(),
            stan: 9,
            transmitted_at: "1204103000".into(),
            rrn: "633810000009".into(),
            mti: "0100".into(),
            local_time: "103000".into(),
            local_date: "1204".into(),
        }));
        let r = reconcile(&[bank], &[]);
        assert!(r.is_reconciled(), "{r:#?}");
        assert_eq!((r.transactions, r.journal_captured_minor), (0, 0));
    }

    #[test]
    fn pending_work_is_in_flight_not_lost() {
        let w = rec(
            1,
            TxnKind::Withdrawal,
            TxnState::CapturePending {
                hold_id: "h".into(),
                amount_minor: 3000,
            },
        );
        let r = reconcile(
            std::slice::from_ref(&w),
            &[mv(MovementKind::Capture, 3000, &w)],
        );
        assert!(r.is_reconciled(), "{r:?}");
        assert_eq!(r.in_flight, 1);
    }
}
