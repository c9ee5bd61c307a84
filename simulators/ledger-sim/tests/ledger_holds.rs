//! Holds: authorize, capture (partial), void, and the idempotency of each.

mod ledger_support;

use ledger_support::Ledger;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn hold_is_approved_and_reduces_available_only() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    let a = ledger.hold("T1:000001:1125114459", "alice", 20_000).await;
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    assert!(!a.replayed);
    let hold = &a.body;
    assert!(hold["hold_id"].as_str().unwrap().starts_with("hold-"));
    assert_eq!(hold["account"], "alice");
    assert_eq!(hold["amount_minor"], 20_000);
    assert_eq!(hold["currency"], "EUR");
    assert_eq!(hold["reference"], "ref-T1:000001:1125114459");
    assert_eq!(hold["status"], "held");
    assert_eq!(hold["captured_minor"], 0);
    assert!(hold["created_at"].as_str().unwrap().ends_with('Z'));

    assert_eq!(ledger.balance("alice").await, (100_000, 20_000, 80_000));
    let fetched = ledger
        .get(&format!("/v1/holds/{}", hold["hold_id"].as_str().unwrap()))
        .await;
    assert_eq!(fetched.body, *hold);
    assert!(
        ledger
            .movements("")
            .await
            .iter()
            .all(|m| m["kind"] == "funding"),
        "a hold moves no money"
    );
    ledger.finish().await;
}

#[tokio::test]
async fn hold_above_available_is_refused_with_402() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    assert_eq!(
        ledger.hold("k1", "bob", 4_000).await.status,
        StatusCode::CREATED
    );
    let refused = ledger.hold("k2", "bob", 1_001).await;
    assert_eq!(refused.status, StatusCode::PAYMENT_REQUIRED, "{refused:?}");
    assert_eq!(refused.body["error"], "insufficient_funds");
    assert_eq!(ledger.balance("bob").await, (5_000, 4_000, 1_000));
    ledger.finish().await;
}

#[tokio::test]
async fn hold_on_unknown_account_is_404() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    let refused = ledger.hold("k1", "nobody", 100).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert_eq!(refused.body["error"], "unknown_account");
    assert_eq!(
        ledger.get("/v1/balances/nobody").await.status,
        StatusCode::NOT_FOUND
    );
    ledger.finish().await;
}

#[tokio::test]
async fn invalid_holds_are_422_or_400() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    let zero = ledger.hold("k1", "alice", 0).await;
    assert_eq!(
        (zero.status, zero.body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_amount"))
    );

    let usd = ledger
        .post("/v1/holds", json!({"idempotency_key": "k2", "account": "alice", "amount_minor": 100, "currency": "USD", "reference": ""}))
        .await;
    assert_eq!(
        (usd.status, usd.body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("currency_mismatch"))
    );

    let numeric = ledger
        .post("/v1/holds", json!({"idempotency_key": "k3", "account": "alice", "amount_minor": 100, "currency": "978"}))
        .await;
    assert_eq!(
        (numeric.status, numeric.body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_currency"))
    );

    let internal = ledger.hold("k4", "funding:EUR", 100).await;
    assert_eq!(internal.status, StatusCode::UNPROCESSABLE_ENTITY);

    let negative = ledger
        .post("/v1/holds", json!({"idempotency_key": "k5", "account": "alice", "amount_minor": -5, "currency": "EUR"}))
        .await;
    assert_eq!(
        (negative.status, negative.body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );

    let unknown_field = ledger
        .post("/v1/holds", json!({"idempotency_key": "k6", "account": "alice", "amount_minor": 5, "currency": "EUR", "pin": "1234"}))
        .await;
    assert_eq!(unknown_field.status, StatusCode::BAD_REQUEST);

    let not_json = ledger
        .client
        .post(format!("{}/v1/holds", ledger.base))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);

    let huge = "x".repeat(64 * 1024);
    let too_big = ledger
        .post("/v1/holds", json!({"idempotency_key": "k7", "account": "alice", "amount_minor": 5, "currency": "EUR", "reference": huge}))
        .await;
    assert!(too_big.status.is_client_error(), "{:?}", too_big.status);

    assert_eq!(ledger.balance("alice").await, (100_000, 0, 100_000));
    ledger.finish().await;
}

#[tokio::test]
async fn repeated_hold_returns_the_same_hold_with_one_effect() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    let first = ledger.hold("T1:000002:1125114459", "alice", 10_000).await;
    let again = ledger.hold("T1:000002:1125114459", "alice", 10_000).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(
        again.status,
        StatusCode::CREATED,
        "a replay answers the recorded status"
    );
    assert!(again.replayed && !first.replayed);
    assert_eq!(first.body, again.body);
    assert_eq!(
        ledger.balance("alice").await,
        (100_000, 10_000, 90_000),
        "held once"
    );
    ledger.finish().await;
}

#[tokio::test]
async fn same_key_with_other_content_is_409() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    assert_eq!(
        ledger.hold("dup", "alice", 10_000).await.status,
        StatusCode::CREATED
    );
    let conflict = ledger.hold("dup", "alice", 10_001).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.body["error"], "idempotency_conflict");
    assert_eq!(
        ledger.hold("dup", "bob", 10_000).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(ledger.balance("alice").await.1, 10_000);
    ledger.finish().await;
}

#[tokio::test]
async fn refused_request_records_nothing_and_can_be_retried() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    assert_eq!(
        ledger.hold("retry", "bob", 6_000).await.status,
        StatusCode::PAYMENT_REQUIRED
    );
    assert_eq!(
        ledger
            .transaction("dep", "bob", "credit", 1_000)
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        ledger.hold("retry", "bob", 6_000).await.status,
        StatusCode::CREATED
    );
    ledger.finish().await;
}

#[tokio::test]
async fn partial_capture_takes_the_dispensed_amount_and_releases_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    let hold = ledger.hold("w1", "alice", 30_000).await.body;
    let hold_id = hold["hold_id"].as_str().unwrap();
    let captured = ledger.capture(hold_id, "w1-completion", 20_000).await;
    assert_eq!(captured.status, StatusCode::OK, "{captured:?}");
    assert_eq!(captured.body["status"], "captured");
    assert_eq!(captured.body["captured_minor"], 20_000);
    assert_eq!(captured.body["amount_minor"], 30_000);
    assert_eq!(ledger.balance("alice").await, (80_000, 0, 80_000));
    assert_eq!(ledger.balance("atm-cash:EUR").await.0, 20_000);

    let mv = ledger.movements("?reference=ref-w1").await;
    assert_eq!(mv.len(), 1);
    assert_eq!(mv[0]["kind"], "capture");
    assert_eq!(mv[0]["debit_account"], "alice");
    assert_eq!(mv[0]["credit_account"], "atm-cash:EUR");
    assert_eq!(mv[0]["amount_minor"], 20_000);
    assert_eq!(mv[0]["hold_id"], hold_id);
    assert_eq!(mv[0]["idempotency_key"], "w1-completion");
    ledger.finish().await;
}

#[tokio::test]
async fn capture_more_than_held_is_422() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    let hold = ledger.hold("w1", "alice", 1_000).await.body;
    let too_much = ledger
        .capture(hold["hold_id"].as_str().unwrap(), "c1", 1_001)
        .await;
    assert_eq!(
        (too_much.status, too_much.body["error"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("capture_exceeds_hold")
        )
    );
    let unknown = ledger.capture("hold-999999", "c2", 1).await;
    assert_eq!(
        (unknown.status, unknown.body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_hold"))
    );
    ledger.finish().await;
}

#[tokio::test]
async fn capture_twice_has_one_effect() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    let hold = ledger.hold("w1", "alice", 10_000).await.body;
    let id = hold["hold_id"].as_str().unwrap();
    let first = ledger.capture(id, "c1", 10_000).await;
    let again = ledger.capture(id, "c1", 10_000).await;
    assert_eq!(
        (first.status, again.status),
        (StatusCode::OK, StatusCode::OK)
    );
    assert!(again.replayed);
    assert_eq!(first.body, again.body);

    let repeat_other_key = ledger.capture(id, "c1-repeat", 10_000).await;
    assert_eq!(
        repeat_other_key.status,
        StatusCode::OK,
        "same amount: no-op success"
    );
    assert!(repeat_other_key.replayed);

    let other_amount = ledger.capture(id, "c2", 5_000).await;
    assert_eq!(
        (other_amount.status, other_amount.body["error"].as_str()),
        (StatusCode::CONFLICT, Some("hold_captured"))
    );
    let key_reuse = ledger.capture(id, "c1", 5_000).await;
    assert_eq!(
        (key_reuse.status, key_reuse.body["error"].as_str()),
        (StatusCode::CONFLICT, Some("idempotency_conflict"))
    );

    assert_eq!(ledger.balance("alice").await, (90_000, 0, 90_000));
    assert_eq!(ledger.movements("?reference=ref-w1").await.len(), 1);
    ledger.finish().await;
}

#[tokio::test]
async fn void_releases_the_hold_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    let hold = ledger.hold("w1", "alice", 10_000).await.body;
    let id = hold["hold_id"].as_str().unwrap();
    let voided = ledger.void(id, "r1").await;
    assert_eq!(voided.status, StatusCode::OK);
    assert_eq!(voided.body["status"], "voided");
    assert!(ledger.void(id, "r1").await.replayed);
    assert_eq!(ledger.void(id, "r1-repeat").await.status, StatusCode::OK);
    assert_eq!(ledger.balance("alice").await, (100_000, 0, 100_000));

    let capture = ledger.capture(id, "c1", 10_000).await;
    assert_eq!(
        (capture.status, capture.body["error"].as_str()),
        (StatusCode::CONFLICT, Some("hold_voided"))
    );
    ledger.finish().await;
}

#[tokio::test]
async fn void_after_capture_is_409() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    let hold = ledger.hold("w1", "alice", 10_000).await.body;
    let id = hold["hold_id"].as_str().unwrap();
    assert_eq!(
        ledger.capture(id, "c1", 10_000).await.status,
        StatusCode::OK
    );
    let void = ledger.void(id, "r1").await;
    assert_eq!(
        (void.status, void.body["error"].as_str()),
        (StatusCode::CONFLICT, Some("hold_captured"))
    );
    assert_eq!(
        ledger.void("hold-404", "r2").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(ledger.balance("alice").await, (90_000, 0, 90_000));
    ledger.finish().await;
}

#[tokio::test]
async fn concurrent_withdrawals_never_overdraw_nor_capture_twice() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = std::sync::Arc::new(Ledger::start(dir.path()).await);

    // bob has 5000: 20 concurrent holds of 400, each captured for 300 twice at once. At least
    // 12 fit; more may, as each capture gives 100 back to available.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let hold = ledger.hold(&format!("h{i}"), "bob", 400).await;
            if hold.status != StatusCode::CREATED {
                assert_eq!(hold.status, StatusCode::PAYMENT_REQUIRED);
                return 0;
            }
            let id = hold.body["hold_id"].as_str().unwrap().to_owned();
            let key = format!("c{i}");
            let (a, b) = tokio::join!(
                ledger.capture(&id, &key, 300),
                ledger.capture(&id, &key, 300)
            );
            assert_eq!((a.status, b.status), (StatusCode::OK, StatusCode::OK));
            1
        }));
    }
    let mut approved = 0;
    for task in tasks {
        approved += task.await.unwrap();
    }
    assert!((12..=16).contains(&approved), "{approved}");
    let left = 5_000 - 300 * approved as i64;
    assert_eq!(ledger.balance("bob").await, (left, 0, left));
    let captures = ledger
        .movements("")
        .await
        .into_iter()
        .filter(|m| m["kind"] == "capture")
        .count();
    assert_eq!(captures, approved as usize, "one capture movement per hold");
    let ledger = std::sync::Arc::into_inner(ledger).expect("tasks done");
    ledger.finish().await;
}
