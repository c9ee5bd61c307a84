//! Durability: everything survives a stop and a start on the same database path.

mod ledger_support;

use ledger_support::Ledger;
use reqwest::StatusCode;

#[tokio::test]
async fn restart_on_the_same_db_keeps_state_and_idempotency() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger-db");

    let ledger = Ledger::start_at(db.clone()).await;
    let held = ledger.hold("w1", "alice", 10_000).await.body;
    let open = ledger.hold("w2", "alice", 2_000).await.body;
    let id = held["hold_id"].as_str().unwrap().to_owned();
    let captured = ledger.capture(&id, "w1-c", 6_000).await.body;
    let deposit = ledger.transaction("d1", "bob", "credit", 500).await.body;
    let movements_before = ledger.movements("").await;
    let first_addr = ledger.running.local_addr();
    ledger.finish().await;

    // Seeds are applied again at start: they must not fund twice.
    let ledger = Ledger::start_at(db.clone()).await;
    assert_ne!(
        ledger.running.local_addr(),
        first_addr,
        "a new port, the same books"
    );
    assert_eq!(ledger.balance("alice").await, (94_000, 2_000, 92_000));
    assert_eq!(ledger.balance("bob").await, (5_500, 0, 5_500));
    assert_eq!(ledger.movements("").await, movements_before);

    let replay = ledger.hold("w1", "alice", 10_000).await;
    assert!(replay.replayed);
    assert_eq!(replay.body, held);
    let replay = ledger.capture(&id, "w1-c", 6_000).await;
    assert!(replay.replayed);
    assert_eq!(replay.body, captured);
    let replay = ledger.transaction("d1", "bob", "credit", 500).await;
    assert!(replay.replayed);
    assert_eq!(replay.body, deposit);
    assert_eq!(
        ledger.hold("w1", "alice", 1).await.status,
        StatusCode::CONFLICT
    );

    // The open hold can still be settled, and new ids do not collide with old ones.
    let open_id = open["hold_id"].as_str().unwrap();
    assert_eq!(ledger.void(open_id, "w2-r").await.body["status"], "voided");
    let new = ledger.hold("w3", "alice", 1_000).await.body;
    assert_ne!(new["hold_id"], held["hold_id"]);
    assert_ne!(new["hold_id"], open["hold_id"]);
    assert_eq!(ledger.balance("alice").await, (94_000, 1_000, 93_000));
    ledger.finish().await;

    let ledger = Ledger::start_at(db).await;
    assert_eq!(ledger.balance("alice").await, (94_000, 1_000, 93_000));
    ledger.finish().await;
}
