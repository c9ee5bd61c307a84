//! The operation log: every state change is ONE record in the sled tree `ops`; refusals and
//! replays write nothing; a restart rebuilds the same books from it, also after concurrent load.

mod ledger_support;

use std::path::Path;

use ledger_support::Ledger;
use reqwest::StatusCode;

/// Records in the `ops` tree of a closed database.
fn op_records(db: &Path) -> usize {
    let db = sled::Config::new().path(db).open().expect("open db");
    let count = db.open_tree("ops").expect("ops tree").len();
    drop(db);
    count
}

#[tokio::test]
async fn one_record_per_change_none_for_refusals_or_replays() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger-db");

    let ledger = Ledger::start_at(db.clone()).await;
    let hold = ledger.hold("h1", "alice", 1_000).await;
    assert!(hold.status.is_success(), "{hold:?}");
    let hold_id = hold.body["hold_id"].as_str().unwrap().to_owned();
    assert!(ledger
        .capture(&hold_id, "c1", 600)
        .await
        .status
        .is_success());
    let voidable = ledger.hold("h2", "alice", 500).await.body;
    let voidable = voidable["hold_id"].as_str().unwrap().to_owned();
    assert!(ledger.void(&voidable, "v1").await.status.is_success());
    assert!(ledger
        .transaction("t1", "bob", "debit", 100)
        .await
        .status
        .is_success());
    let open = ledger.hold("h3", "alice", 300).await.body;
    let open = open["hold_id"].as_str().unwrap().to_owned();
    ledger.finish().await;
    // 2 seeds + hold + capture + hold + void + transaction + hold.
    assert_eq!(op_records(&db), 8);

    let ledger = Ledger::start_at(db.clone()).await;
    // Replays (seeds included) and refusals leave no trace.
    assert!(ledger.hold("h1", "alice", 1_000).await.replayed);
    assert!(ledger.capture(&hold_id, "c1", 600).await.replayed);
    assert!(ledger.void(&voidable, "v1").await.replayed);
    assert!(ledger.transaction("t1", "bob", "debit", 100).await.replayed);
    assert_eq!(
        ledger.hold("h1", "alice", 2).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        ledger.hold("big", "alice", 10_000_000).await.status,
        StatusCode::PAYMENT_REQUIRED
    );
    assert_eq!(
        ledger.hold("nobody", "carol", 1).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ledger.capture("hold-999999", "c9", 1).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ledger.capture(&voidable, "c2", 1).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        ledger.capture(&open, "c3", 301).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    ledger.finish().await;
    assert_eq!(op_records(&db), 8);
}

#[tokio::test]
async fn restart_after_concurrent_load_rebuilds_the_same_books() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger-db");

    let ledger = Ledger::start_at(db.clone()).await;
    let ledger = std::sync::Arc::new(ledger);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("k{i}");
            let hold = ledger.hold(&key, "alice", 100 + i).await;
            assert!(hold.status.is_success(), "{hold:?}");
            let id = hold.body["hold_id"].as_str().unwrap().to_owned();
            let settled = if i % 2 == 0 {
                ledger.capture(&id, &format!("{key}-c"), 100 + i).await
            } else {
                ledger.void(&id, &format!("{key}-v")).await
            };
            assert!(settled.status.is_success(), "{settled:?}");
            let txn = ledger
                .transaction(&format!("{key}-t"), "bob", "credit", 1 + i)
                .await;
            assert!(txn.status.is_success(), "{txn:?}");
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let balances = (ledger.balance("alice").await, ledger.balance("bob").await);
    let movements = ledger.movements("?limit=10000").await;
    let page = ledger.movements("?limit=7").await;
    let by_reference = ledger.movements("?reference=ref-k4").await;
    let invariants = ledger.get("/admin/invariants").await.body;
    let ledger = std::sync::Arc::into_inner(ledger).expect("sole owner");
    ledger.finish().await;

    let ledger = Ledger::start_at(db).await;
    assert_eq!(
        (ledger.balance("alice").await, ledger.balance("bob").await),
        balances
    );
    assert_eq!(ledger.movements("?limit=10000").await, movements);
    assert_eq!(ledger.movements("?limit=7").await, page);
    assert_eq!(ledger.movements("?reference=ref-k4").await, by_reference);
    assert_eq!(ledger.get("/admin/invariants").await.body, invariants);
    ledger.finish().await;
}

#[tokio::test]
async fn a_database_of_the_old_per_tree_format_is_refused_not_reseeded() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger-db");
    {
        let old = sled::Config::new().path(&db).open().unwrap();
        let accounts = old.open_tree("accounts").unwrap();
        accounts
            .insert(
                "alice",
                &br#"{"account":"alice","currency":"EUR","balance_minor":1,"held_minor":0}"#[..],
            )
            .unwrap();
        old.flush().unwrap();
    }
    let mut config = ledger_sim::LedgerConfig::new(&db);
    config.seeds = ledger_support::seeds();
    let refused = ledger_sim::LedgerServer::start(config).await;
    assert!(
        refused.is_err(),
        "an old-format database must not open as empty"
    );
}
