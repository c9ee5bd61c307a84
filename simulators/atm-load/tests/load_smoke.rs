//! The load generator against a real in-process switch and ledger, briefly: every request is
//! answered, every authorization approved, every saga completed, and afterwards the books balance
//! and the journal reconciles with the ledger.

use std::time::Duration;

use atm_load::{self as load, Endpoint, LoadLab, LoadOptions, Workload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_run_answers_everything_and_keeps_the_books() {
    let lab = LoadLab::start(8).await.unwrap();
    let endpoint = Endpoint {
        addr: lab.switch_addr(),
        tls: lab.client_tls().unwrap(),
        server_name: mtls::server_name("localhost").unwrap(),
    };
    let options = LoadOptions {
        duration: Duration::from_millis(700),
        connections: 2,
        in_flight: 4,
        cards: 8,
        phases: vec![Workload::Echo, Workload::Authorization, Workload::Saga],
        ..LoadOptions::default()
    };
    let report = load::run_against(&options, &endpoint).await.unwrap();
    eprintln!("{}", report.to_table());

    for phase in report.phases() {
        assert!(phase.operations > 0, "{phase:?}");
        assert_eq!(
            phase.completed, phase.operations,
            "every operation answered: {phase:?}"
        );
        assert_eq!(phase.errors, 0, "{phase:?}");
    }
    let auth = report.auth.as_ref().unwrap();
    assert_eq!(
        auth.approved, auth.operations,
        "every authorization approved: {auth:?}"
    );
    let saga = report.saga.as_ref().unwrap();
    assert_eq!(
        saga.approved, saga.operations,
        "every saga completed: {saga:?}"
    );
    assert_eq!(
        saga.messages_sent,
        2 * saga.operations,
        "a 0100 and a 0220 per saga: {saga:?}"
    );
    assert!(report.ratio().unwrap() > 0.0);
    let json = report.to_json();
    for key in [
        "auth_tps",
        "auth_p99_ms",
        "saga_tps",
        "echo_tps",
        "ratio",
        "errors",
        "declined",
    ] {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }

    let inv = lab.ledger.invariants().await.unwrap();
    assert_eq!(inv.holds_captured_twice, 0, "{inv:?}");
    assert!(
        inv.sum_minor_by_currency.values().all(|v| *v == 0),
        "{inv:?}"
    );
    let rec = lab.switch.switch.reconcile().await.unwrap();
    assert!(rec.is_reconciled(), "{rec:#?}");
    assert_eq!(
        rec.journal_captured_minor,
        saga.approved * load::AMOUNT_MINOR_DEFAULT,
        "{rec:#?}"
    );
    assert_eq!(
        rec.journal_captured_minor, rec.ledger_captured_minor,
        "{rec:#?}"
    );
    assert_eq!(
        rec.transactions as u64,
        auth.operations + saga.operations,
        "{rec:#?}"
    );
    lab.shutdown().await;
}
