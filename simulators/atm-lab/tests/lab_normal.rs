//! `atm-lab` end to end, the normal run in short form: ledger, switch and agent (child processes
//! of the lab binary), two simulated ATMs, a few dozen customers, three-way reconciliation.

use std::time::Duration;

use atm_lab::{self as lab, LabOptions, Scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_run_reconciles_terminals_journal_and_ledger() {
    let mut opts = LabOptions::new(env!("CARGO_BIN_EXE_atm-lab"));
    opts.atms = 2;
    opts.customers = 40;
    opts.scenario = Scenario::None;
    opts.progress = false;
    opts.think = Duration::from_millis(10);
    let report = lab::run(&opts).await.expect("lab run");
    // 40 random customers and the PIN drill's 5.
    assert_eq!(report.customers, 45, "{}", report.table());
    assert!(report.reconciled, "{}", report.table());
    assert_eq!(report.lost, 0, "{}", report.table());
    assert_eq!(report.duplicated, 0, "{}", report.table());
    assert!(
        report.approved > 0 && report.queue_drained,
        "{}",
        report.table()
    );
    assert_eq!(
        report.dispensed_minor,
        report.verdict.ledger.withdrawn_net_minor
    );
    assert_eq!(
        report.deposited_minor,
        report.verdict.ledger.deposited_net_minor
    );
    // PINs are on by default: the PIN drill ran (three wrong PINs, blocked, unblocked, approved).
    assert_eq!(report.pin_drill_ok, Some(true), "{}", report.table());
    assert!(report.wrong_pin >= 2, "{}", report.table());
    assert!(report.pin_tries_exceeded >= 2, "{}", report.table());
    let json = serde_json::to_value(&report).unwrap();
    for key in [
        "approved",
        "declined",
        "reversed",
        "partial",
        "dispensed_minor",
        "deposited_minor",
        "ledger_net_minor",
        "lost",
        "duplicated",
        "reconciled",
        "tps",
        "p50_ms",
        "p99_ms",
        "wrong_pin",
        "pin_tries_exceeded",
        "pin_drill_ok",
    ] {
        assert!(json.get(key).is_some(), "JSON lacks {key}");
    }
}
