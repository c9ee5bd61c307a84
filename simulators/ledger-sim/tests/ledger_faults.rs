//! Fault injection: down, latency and error rate (before the books), lost answers (after them),
//! over HTTP and through the in-process handle.

mod ledger_support;

use std::time::{Duration, Instant};

use ledger_sim::{FaultConfig, LedgerConfig};
use ledger_support::Ledger;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn down_answers_503_on_the_wallet_api_but_admin_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    let set = ledger.put("/admin/faults", json!({"down": true})).await;
    assert_eq!(set.status, StatusCode::OK);
    assert_eq!(
        set.body,
        json!({"latency_ms": 0, "error_rate": 0.0, "down": true,
               "lost_answer_rate": 0.0, "lost_answer": {"mode": "drop"}})
    );

    let hold = ledger.hold("k1", "alice", 100).await;
    assert_eq!(
        (hold.status, hold.body["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("ledger_down"))
    );
    assert_eq!(
        ledger.get("/v1/balances/alice").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(ledger.get("/admin/faults").await.body["down"], true);
    assert_eq!(ledger.get("/admin/invariants").await.status, StatusCode::OK);

    ledger.put("/admin/faults", json!({"down": false})).await;
    assert_eq!(
        ledger.hold("k1", "alice", 100).await.status,
        StatusCode::CREATED,
        "nothing was done while down"
    );
    assert_eq!(ledger.balance("alice").await.1, 100);
    ledger.finish().await;
}

#[tokio::test]
async fn latency_is_added_to_every_wallet_request() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    ledger
        .running
        .faults()
        .set(FaultConfig {
            latency_ms: 300,
            ..FaultConfig::default()
        })
        .unwrap();
    let started = Instant::now();
    assert_eq!(
        ledger.hold("k1", "alice", 100).await.status,
        StatusCode::CREATED
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );

    let started = Instant::now();
    ledger.get("/admin/faults").await;
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "admin is never slowed"
    );

    ledger.running.faults().clear();
    let started = Instant::now();
    ledger.get("/v1/balances/alice").await;
    assert!(started.elapsed() < Duration::from_millis(300));
    ledger.finish().await;
}

#[tokio::test]
async fn error_rate_fails_that_share_of_requests_without_effect() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    let set = ledger
        .put("/admin/faults", json!({"error_rate": 0.5}))
        .await;
    assert_eq!(set.body["error_rate"], 0.5);
    let mut failed = 0;
    for i in 0..200 {
        let answer = ledger
            .transaction(&format!("d{i}"), "bob", "credit", 1)
            .await;
        match answer.status {
            StatusCode::CREATED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(answer.body["error"], "injected_error");
                failed += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        (50..150).contains(&failed),
        "{failed} of 200 failed at rate 0.5"
    );
    ledger.running.faults().clear();
    assert_eq!(
        ledger.balance("bob").await.0,
        5_000 + 200 - failed,
        "a failed request has no effect"
    );

    ledger
        .put("/admin/faults", json!({"error_rate": 1.0}))
        .await;
    assert_eq!(
        ledger.get("/v1/balances/bob").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    ledger.finish().await;
}

#[tokio::test]
async fn invalid_fault_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    let bad = ledger
        .put("/admin/faults", json!({"error_rate": 2.0}))
        .await;
    assert_eq!(
        (bad.status, bad.body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_faults"))
    );
    assert_eq!(
        ledger.put("/admin/faults", json!({"typo": 1})).await.status,
        StatusCode::BAD_REQUEST
    );
    for bad in [
        json!({"lost_answer_rate": 1.5}),
        json!({"lost_answer": {"mode": "late", "ms": 0}}),
        json!({"lost_answer": {"mode": "late", "ms": 60_001}}),
    ] {
        let answer = ledger.put("/admin/faults", bad.clone()).await;
        assert_eq!(
            (answer.status, answer.body["error"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_faults")),
            "{bad}"
        );
    }
    for bad in [
        json!({"lost_answer": {"mode": "vanish"}}),
        json!({"lost_answer": {"mode": "late"}}),
        json!({"lost_answer": "drop"}),
    ] {
        let answer = ledger.put("/admin/faults", bad.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        ledger.get("/admin/faults").await.body,
        json!({"latency_ms": 0, "error_rate": 0.0, "down": false,
               "lost_answer_rate": 0.0, "lost_answer": {"mode": "drop"}})
    );
    ledger.finish().await;
}

#[tokio::test]
async fn faults_can_be_set_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LedgerConfig::new(dir.path().join("db"));
    config.seeds = ledger_support::seeds();
    config.faults = FaultConfig {
        down: true,
        ..FaultConfig::default()
    };
    let ledger = Ledger::start_with(config).await;
    assert_eq!(
        ledger.get("/v1/balances/alice").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(ledger.running.faults().get().down);
    ledger.finish().await;
}
