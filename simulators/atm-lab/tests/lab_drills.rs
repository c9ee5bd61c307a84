//! `atm-lab` fault drills in short form (seconds): each ends with lost = 0, duplicated = 0 and,
//! unless noted, reconciled. The labs run one at a time (2 cores; child processes).

use std::time::Duration;

use atm_lab::{self as lab, LabOptions, LabReport, Scenario};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn drill(scenario: Scenario) -> LabReport {
    let _guard = ONE_AT_A_TIME.lock().await;
    let mut opts = LabOptions::new(env!("CARGO_BIN_EXE_atm-lab"));
    opts.atms = 2;
    opts.customers = 40;
    opts.scenario = scenario;
    opts.seed = 7;
    opts.outage = Duration::from_millis(1500);
    opts.think = Duration::from_millis(40);
    opts.progress = false;
    let report = lab::run(&opts).await.expect("lab run");
    eprintln!("{}", report.table());
    assert_eq!(report.lost, 0, "{}", report.table());
    assert_eq!(report.duplicated, 0, "{}", report.table());
    assert!(report.queue_drained, "{}", report.table());
    // PINs stay verified through every fault; the PIN drill (blocked, unblocked) completes.
    assert_eq!(report.pin_drill_ok, Some(true), "{}", report.table());
    report
}

fn assert_reconciled(r: &LabReport) {
    assert!(r.reconciled, "{}", r.table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_outage_declines_with_host_unavailable_then_drains() {
    let r = drill(Scenario::LedgerOutage).await;
    assert_reconciled(&r);
    assert!(r.host_unavailable > 0, "{}", r.table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_crash_loses_nothing_and_posts_nothing_twice() {
    let r = drill(Scenario::AgentCrash).await;
    assert!(r.agent_restarts >= 1, "{}", r.table());
    assert_reconciled(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_crash_loses_nothing_and_posts_nothing_twice() {
    let r = drill(Scenario::SwitchCrash).await;
    assert!(r.switch_restarts >= 1, "{}", r.table());
    assert_reconciled(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_flap_between_agent_and_switch_reconciles() {
    let r = drill(Scenario::LinkFlap).await;
    assert_reconciled(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_ledger_opens_the_breaker_and_recovers() {
    let r = drill(Scenario::SlowLedger).await;
    assert_reconciled(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_every_port_breaks_nothing() {
    let r = drill(Scenario::Garbage).await;
    assert_reconciled(&r);
}
