//! `atm-lab` end to end, the normal run in short form: ledger, switch and agent (child processes
//! of the lab binary), two simulated ATMs, a few dozen customers, three-way reconciliation.

use std::time::Duration;

use simulators::lab::{self, LabOptions, Scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_run_reconciles_terminals_journal_and_ledger() {
    let mut opts = LabOptions::new(env!("CARGO_BIN_EXE_atm-lab"));
    opts.atms = 2;
    opts.customers = 40;
    opts.scenario = Scenario::None;
    opts.progress = false;
    opts.think = Duration::from_millis(10);
    let report = lab::run(&opts).await.expect("lab run");
    assert_eq!(report.customers, 40, "{}", report.table());
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
    ] {
        assert!(json.get(key).is_some(), "JSON lacks {key}");
    }
}
