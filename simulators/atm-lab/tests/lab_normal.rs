//! `atm-lab` end to end, the normal run in short form: ledger, switch and agent (child processes
//! of the lab binary), two simulated ATMs, a few dozen customers, three-way reconciliation; and
//! the same with a third of the customers on another bank's cards (the bank host route, PINs
//! checked by the host), reconciled against the host's record too.

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
    opts.bank_share = 0.0;
    let report = lab::run(&opts).await.expect("lab run");
    assert_eq!(report.bank_customers, 0, "no bank host at share 0");
    assert!(report.verdict.bank.is_none());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_cards_reconcile_against_the_bank_hosts_record() {
    let mut opts = LabOptions::new(env!("CARGO_BIN_EXE_atm-lab"));
    opts.atms = 2;
    opts.customers = 45;
    opts.scenario = Scenario::None;
    opts.progress = false;
    opts.think = Duration::from_millis(10);
    opts.bank_share = 0.35;
    let r = lab::run(&opts).await.expect("lab run");
    assert!(r.reconciled, "{}", r.table());
    assert_eq!(
        (r.lost, r.duplicated, r.bank_lost, r.bank_duplicated),
        (0, 0, 0, 0),
        "{}",
        r.table()
    );
    assert!(r.bank_customers >= 5, "{}", r.table());
    assert!(r.bank_approved > 0, "{}", r.table());
    let bank = r.verdict.bank.as_ref().expect("the bank side reconciled");
    assert!(
        bank.host_approved > 0 && bank.journal_records > 0,
        "{}",
        r.table()
    );
    assert_eq!(bank.journal_debited_minor, bank.host_debited_minor);
    assert_eq!(bank.journal_credited_minor, bank.host_credited_minor);
    assert_eq!(bank.host_held_minor, 0, "no hold left at the host");
    // What the terminals paid out is what the wallet ledger and the bank host booked between them.
    assert_eq!(
        r.dispensed_minor,
        r.verdict.ledger.withdrawn_net_minor + bank.host_debited_minor,
        "{}",
        r.table()
    );
    assert_eq!(
        r.deposited_minor,
        r.verdict.ledger.deposited_net_minor + bank.host_credited_minor,
        "{}",
        r.table()
    );
    // The host checked the bank cards' PINs (translated by the switch to the host's key): some
    // customers typed a wrong one, and the right ones were approved.
    let json = serde_json::to_value(&r).unwrap();
    for key in [
        "bank_customers",
        "bank_approved",
        "bank_declined",
        "bank_reversed",
        "bank_lost",
        "bank_duplicated",
    ] {
        assert!(json.get(key).is_some(), "JSON lacks {key}");
    }
    assert!(json["verdict"]["bank"]["host_debited_minor"].is_u64());
}

/// Every built-in profile runs the lab: its terminals execute the state table the agent
/// downloaded (card read, PIN, FDK selection, amount, request, close), wallet and bank cards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_builtin_profile_serves_customers_through_its_state_table() {
    for profile in firmware_profiles::Profile::builtin_names() {
        let mut opts = LabOptions::new(env!("CARGO_BIN_EXE_atm-lab"));
        opts.atms = 1;
        opts.customers = 20;
        opts.progress = false;
        opts.think = Duration::from_millis(10);
        opts.bank_share = 0.3;
        opts.profile = profile.to_owned();
        let report = lab::run(&opts).await.expect("lab run");
        assert!(report.reconciled, "{profile}: {}", report.table());
        assert_eq!((report.lost, report.duplicated), (0, 0), "{profile}");
        assert!(
            report.approved >= 10,
            "{profile}: customers are served, not declined: {}",
            report.table()
        );
    }
}
