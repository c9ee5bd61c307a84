//! Direct postings (deposits, compensating debits), balances, the movement list and seeding.

mod ledger_support;

use ledger_support::Ledger;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn deposit_credits_the_account_from_cash() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    let deposit = ledger
        .transaction("T1:000010:1125114459", "bob", "credit", 2_500)
        .await;
    assert_eq!(deposit.status, StatusCode::CREATED, "{deposit:?}");
    let txn = &deposit.body;
    assert!(txn["transaction_id"].as_str().unwrap().starts_with("txn-"));
    assert_eq!(
        (txn["kind"].as_str(), txn["amount_minor"].as_u64()),
        (Some("credit"), Some(2_500))
    );
    assert_eq!(ledger.balance("bob").await, (7_500, 0, 7_500));
    assert_eq!(ledger.balance("atm-cash:EUR").await.0, -2_500);

    let mv = ledger
        .movements("?reference=ref-T1:000010:1125114459")
        .await;
    assert_eq!(mv.len(), 1);
    assert_eq!(mv[0]["movement_id"], txn["movement_id"]);
    assert_eq!(mv[0]["transaction_id"], txn["transaction_id"]);
    assert_eq!(
        (
            mv[0]["debit_account"].as_str(),
            mv[0]["credit_account"].as_str()
        ),
        (Some("atm-cash:EUR"), Some("bob"))
    );
    ledger.finish().await;
}

#[tokio::test]
async fn compensating_debit_takes_back_a_deposit() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    assert_eq!(
        ledger
            .transaction("dep", "bob", "credit", 2_500)
            .await
            .status,
        StatusCode::CREATED
    );
    let debit = ledger
        .transaction("dep-reversal", "bob", "debit", 2_500)
        .await;
    assert_eq!(debit.status, StatusCode::CREATED);
    assert_eq!(debit.body["kind"], "debit");
    assert_eq!(ledger.balance("bob").await, (5_000, 0, 5_000));
    assert_eq!(ledger.balance("atm-cash:EUR").await.0, 0);
    ledger.finish().await;
}

#[tokio::test]
async fn debit_beyond_available_is_402_and_holds_count() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    assert_eq!(
        ledger.hold("h1", "bob", 3_000).await.status,
        StatusCode::CREATED
    );
    let refused = ledger.transaction("d1", "bob", "debit", 2_001).await;
    assert_eq!(
        (refused.status, refused.body["error"].as_str()),
        (StatusCode::PAYMENT_REQUIRED, Some("insufficient_funds"))
    );
    assert_eq!(
        ledger.transaction("d2", "bob", "debit", 2_000).await.status,
        StatusCode::CREATED
    );
    assert_eq!(ledger.balance("bob").await, (3_000, 3_000, 0));
    ledger.finish().await;
}

#[tokio::test]
async fn transactions_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    let first = ledger.transaction("dep", "bob", "credit", 1_000).await;
    let again = ledger.transaction("dep", "bob", "credit", 1_000).await;
    assert_eq!(
        (first.status, again.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert!(again.replayed);
    assert_eq!(first.body, again.body);
    assert_eq!(ledger.balance("bob").await.0, 6_000, "credited once");

    let conflict = ledger.transaction("dep", "bob", "debit", 1_000).await;
    assert_eq!(
        (conflict.status, conflict.body["error"].as_str()),
        (StatusCode::CONFLICT, Some("idempotency_conflict"))
    );
    let unknown = ledger.transaction("x", "nobody", "credit", 1).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let bad_kind = ledger
        .post("/v1/transactions", json!({"idempotency_key": "y", "account": "bob", "kind": "refund", "amount_minor": 1, "currency": "EUR"}))
        .await;
    assert_eq!(bad_kind.status, StatusCode::BAD_REQUEST);
    ledger.finish().await;
}

#[tokio::test]
async fn balances_show_balance_held_and_available() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    let b = ledger.get("/v1/balances/alice").await;
    assert_eq!(
        b.body,
        json!({"account": "alice", "currency": "EUR", "balance_minor": 100_000, "held_minor": 0, "available_minor": 100_000})
    );
    ledger.hold("h1", "alice", 1_234).await;
    assert_eq!(ledger.balance("alice").await, (100_000, 1_234, 98_766));
    assert_eq!(
        ledger.balance("funding:EUR").await.0,
        -105_000,
        "opening balances come from funding"
    );
    ledger.finish().await;
}

#[tokio::test]
async fn movements_list_every_posting_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    let hold = ledger.hold("w1", "alice", 5_000).await.body;
    ledger
        .capture(hold["hold_id"].as_str().unwrap(), "w1-c", 5_000)
        .await;
    ledger.transaction("d1", "alice", "credit", 700).await;
    ledger.transaction("d1-rev", "alice", "debit", 700).await;

    let all = ledger.movements("").await;
    let kinds: Vec<_> = all.iter().map(|m| m["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["funding", "funding", "capture", "credit", "debit"]);
    for m in &all {
        assert!(m["amount_minor"].as_u64().unwrap() > 0);
        assert_ne!(m["debit_account"], m["credit_account"]);
        assert_eq!(m["currency"], "EUR");
        assert!(m["at"].is_string() && m["idempotency_key"].is_string());
    }

    let page1 = ledger.get("/v1/movements?limit=2").await.body;
    assert_eq!(page1["movements"].as_array().unwrap().len(), 2);
    let after = page1["next_after"].as_str().unwrap();
    let page2 = ledger
        .get(&format!("/v1/movements?limit=2&after={after}"))
        .await
        .body;
    assert_eq!(page2["movements"][0], all[2]);
    let last = ledger
        .get(&format!(
            "/v1/movements?after={}",
            all[3]["movement_id"].as_str().unwrap()
        ))
        .await
        .body;
    assert_eq!(last["movements"].as_array().unwrap().len(), 1);
    assert!(last.get("next_after").is_none());

    assert_eq!(ledger.movements("?reference=ref-d1").await.len(), 1);
    assert_eq!(ledger.movements("?reference=nothing").await.len(), 0);
    assert_eq!(
        ledger.get("/v1/movements?after=zzz").await.status,
        StatusCode::BAD_REQUEST
    );
    ledger.finish().await;
}

#[tokio::test]
async fn opening_an_account_is_funded_and_safe_to_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;

    let open = json!({"account": "carol", "currency": "EUR", "balance_minor": 900});
    let first = ledger.post("/admin/accounts", open.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert_eq!(first.body["balance_minor"], 900);
    let again = ledger.post("/admin/accounts", open).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(ledger.balance("carol").await.0, 900, "funded once");

    let other_currency = ledger
        .post(
            "/admin/accounts",
            json!({"account": "carol", "currency": "USD"}),
        )
        .await;
    assert_eq!(
        (other_currency.status, other_currency.body["error"].as_str()),
        (StatusCode::CONFLICT, Some("account_exists"))
    );
    let dollars = ledger
        .post(
            "/admin/accounts",
            json!({"account": "dave", "currency": "USD", "balance_minor": 50}),
        )
        .await;
    assert_eq!(dollars.status, StatusCode::CREATED);
    let empty = ledger
        .post(
            "/admin/accounts",
            json!({"account": "erin", "currency": "EUR"}),
        )
        .await;
    assert_eq!(
        (empty.status, empty.body["balance_minor"].as_i64()),
        (StatusCode::CREATED, Some(0))
    );
    let internal = ledger
        .post(
            "/admin/accounts",
            json!({"account": "atm-cash:EUR", "currency": "EUR"}),
        )
        .await;
    assert_eq!(internal.status, StatusCode::UNPROCESSABLE_ENTITY);

    let invariants = ledger.get("/admin/invariants").await.body;
    assert_eq!(
        invariants["sum_minor_by_currency"],
        json!({"EUR": 0, "USD": 0})
    );
    ledger.finish().await;
}
