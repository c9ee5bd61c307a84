//! Lost answers: the ledger applies a write, makes it durable, then loses the answer — the
//! connection closed with no response, a 503 `answer_lost`, or the answer later than the client
//! waits. For each mode and each write (hold, capture, void, credit): the client gets no usable
//! answer, the books show the effect, and a replay with the same idempotency key answers what
//! was recorded, with no second effect.

mod ledger_support;

use std::time::Duration;

use ledger_sim::{FaultConfig, LostAnswer, LostAnswers};
use ledger_support::Ledger;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Longer than the test client waits: a late answer comes after the client gave up.
const LATE_MS: u64 = 2_000;
const CLIENT_TIMEOUT: Duration = Duration::from_millis(800);

/// What the client saw when the answer was lost.
#[derive(Debug)]
enum Seen {
    /// No HTTP response at all (not a timeout): the connection was closed.
    Closed(String),
    /// The client's own timeout.
    TimedOut,
    /// An HTTP answer: status and body.
    Answer(StatusCode, Value),
}

/// POSTs with a client of its own (short timeout, no connection reuse), reporting what it saw.
async fn post_raw(ledger: &Ledger, path: &str, body: Value) -> Seen {
    let client = reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    match client
        .post(format!("{}{path}", ledger.base))
        .json(&body)
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status();
            Seen::Answer(status, response.json().await.unwrap_or(Value::Null))
        }
        Err(e) if e.is_timeout() => Seen::TimedOut,
        Err(e) => Seen::Closed(format!("{:?}", error_chain(&e))),
    }
}

fn error_chain(e: &dyn std::error::Error) -> Vec<String> {
    let mut chain = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        chain.push(s.to_string());
        source = s.source();
    }
    chain
}

/// The client got nothing it could use, in the way `how` loses answers.
fn assert_no_usable_answer(how: LostAnswer, seen: &Seen) {
    match (how, seen) {
        (LostAnswer::Drop, Seen::Closed(why)) => {
            assert!(why.contains("closed"), "connection closed: {why}")
        }
        (LostAnswer::ServerError, Seen::Answer(StatusCode::SERVICE_UNAVAILABLE, body)) => {
            assert_eq!(body["error"], "answer_lost", "{body}")
        }
        (LostAnswer::Late { .. }, Seen::TimedOut) => {}
        _ => panic!("{how:?}: the client saw {seen:?}"),
    }
}

/// Every answer to a wallet write is lost as `how` says.
fn lose_every_answer(ledger: &Ledger, how: LostAnswer) {
    ledger
        .running
        .faults()
        .set(FaultConfig {
            lost_answer_rate: 1.0,
            lost_answer: how,
            ..FaultConfig::default()
        })
        .unwrap();
}

async fn open_holds(ledger: &Ledger) -> Vec<Value> {
    let answer = ledger.get("/admin/holds?status=held").await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.body["holds"].as_array().unwrap().clone()
}

/// Hold, capture, void and credit, each with its answer lost, then checked and replayed.
async fn every_write_is_applied_although_its_answer_is_lost(how: LostAnswer) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;
    let hold_body = |key: &str, amount: u64| {
        json!({"idempotency_key": key, "account": "alice", "amount_minor": amount,
               "currency": "EUR", "reference": format!("ref-{key}")})
    };

    // A hold: placed although the client heard nothing.
    lose_every_answer(&ledger, how);
    let seen = post_raw(&ledger, "/v1/holds", hold_body("h1", 4_000)).await;
    assert_no_usable_answer(how, &seen);
    ledger.running.faults().clear();
    let open = open_holds(&ledger).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(ledger.balance("alice").await, (100_000, 4_000, 96_000));
    let replay = ledger.hold("h1", "alice", 4_000).await;
    assert_eq!(replay.status, StatusCode::CREATED, "{replay:?}");
    assert!(replay.replayed, "the recorded answer, not a new hold");
    assert_eq!(replay.body, open[0], "the hold the lost answer was about");
    assert_eq!(ledger.balance("alice").await, (100_000, 4_000, 96_000));
    let hold_id = open[0]["hold_id"].as_str().unwrap().to_owned();

    // Its capture: posted once although the client heard nothing.
    lose_every_answer(&ledger, how);
    let path = format!("/v1/holds/{hold_id}/capture");
    let capture = json!({"idempotency_key": "h1-c", "amount_minor": 3_000});
    assert_no_usable_answer(how, &post_raw(&ledger, &path, capture.clone()).await);
    ledger.running.faults().clear();
    let held = ledger.get(&format!("/v1/holds/{hold_id}")).await.body;
    assert_eq!(
        (&held["status"], &held["captured_minor"]),
        (&json!("captured"), &json!(3_000))
    );
    let captures = ledger.movements("?reference=ref-h1").await;
    assert_eq!(captures.len(), 1, "{captures:?}");
    let replay = ledger.post(&path, capture).await;
    assert!(
        replay.replayed && replay.status == StatusCode::OK,
        "{replay:?}"
    );
    assert_eq!(replay.body, held);
    assert_eq!(ledger.movements("?reference=ref-h1").await, captures);
    assert_eq!(ledger.balance("alice").await, (97_000, 0, 97_000));

    // A second hold and its void: released although the client heard nothing.
    let placed = ledger.hold("h2", "alice", 2_500).await.body;
    let h2 = placed["hold_id"].as_str().unwrap().to_owned();
    lose_every_answer(&ledger, how);
    let path = format!("/v1/holds/{h2}/void");
    let void = json!({"idempotency_key": "h2-v"});
    assert_no_usable_answer(how, &post_raw(&ledger, &path, void.clone()).await);
    ledger.running.faults().clear();
    assert!(open_holds(&ledger).await.is_empty());
    assert_eq!(ledger.balance("alice").await, (97_000, 0, 97_000));
    let replay = ledger.post(&path, void).await;
    assert!(
        replay.replayed && replay.status == StatusCode::OK,
        "{replay:?}"
    );
    assert_eq!(replay.body["status"], "voided");

    // A credit: posted once although the client heard nothing.
    lose_every_answer(&ledger, how);
    let credit = json!({"idempotency_key": "d1", "account": "bob", "kind": "credit",
                        "amount_minor": 700, "currency": "EUR", "reference": "ref-d1"});
    assert_no_usable_answer(
        how,
        &post_raw(&ledger, "/v1/transactions", credit.clone()).await,
    );
    ledger.running.faults().clear();
    let credits = ledger.movements("?reference=ref-d1").await;
    assert_eq!(credits.len(), 1, "{credits:?}");
    assert_eq!(ledger.balance("bob").await.0, 5_700);
    let replay = ledger.post("/v1/transactions", credit).await;
    assert!(
        replay.replayed && replay.status == StatusCode::CREATED,
        "{replay:?}"
    );
    assert_eq!(replay.body["movement_id"], credits[0]["movement_id"]);
    assert_eq!(ledger.balance("bob").await.0, 5_700);

    assert_eq!(
        ledger.running.faults().lost_answers(),
        LostAnswers {
            total: 4,
            holds: 1,
            captures: 1,
            voids: 1,
            credits: 1,
            debits: 0,
        }
    );
    let invariants = ledger.get("/admin/invariants").await.body;
    assert_eq!(invariants["open_holds"], 0, "{invariants}");
    ledger.finish().await;
}

#[tokio::test]
async fn dropped_connection_after_commit_leaves_the_effect_and_a_replay_answers_it() {
    every_write_is_applied_although_its_answer_is_lost(LostAnswer::Drop).await;
}

#[tokio::test]
async fn server_error_after_commit_leaves_the_effect_and_a_replay_answers_it() {
    every_write_is_applied_although_its_answer_is_lost(LostAnswer::ServerError).await;
}

#[tokio::test]
async fn late_answer_after_commit_leaves_the_effect_and_a_replay_answers_it() {
    every_write_is_applied_although_its_answer_is_lost(LostAnswer::Late { ms: LATE_MS }).await;
}

#[tokio::test]
async fn a_late_answer_is_the_real_answer_for_a_client_that_waits() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;
    lose_every_answer(&ledger, LostAnswer::Late { ms: 300 });
    let started = std::time::Instant::now();
    let answer = ledger.hold("w1", "alice", 1_000).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    assert!(!answer.replayed);
    assert_eq!(answer.body["status"], "held");
    ledger.finish().await;
}

#[tokio::test]
async fn answers_to_reads_and_refusals_are_lost_only_as_counted() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;
    lose_every_answer(&ledger, LostAnswer::ServerError);
    // Reads have no outcome to be ambiguous about: they are always answered.
    assert_eq!(ledger.balance("alice").await, (100_000, 0, 100_000));
    assert_eq!(
        ledger.get("/admin/faults").await.body["lost_answer_rate"],
        1.0
    );
    // A refusal (insufficient funds) has no effect; its answer is lost but not counted as one.
    let refused = ledger.hold("big", "bob", 1_000_000).await;
    assert_eq!(refused.body["error"], "answer_lost");
    let lost = ledger.running.faults().lost_answers();
    assert_eq!((lost.total, lost.holds), (1, 0));
    ledger.running.faults().clear();
    assert_eq!(
        ledger.hold("big", "bob", 1_000_000).await.status,
        StatusCode::PAYMENT_REQUIRED
    );
    ledger.finish().await;
}

#[tokio::test]
async fn lost_answers_are_set_over_http_and_a_share_of_writes_is_hit() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;
    let set = ledger
        .put(
            "/admin/faults",
            json!({"lost_answer_rate": 0.5, "lost_answer": {"mode": "server_error"}}),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{set:?}");
    assert_eq!(set.body["lost_answer"], json!({"mode": "server_error"}));
    let mut lost = 0;
    for i in 0..100 {
        let answer = ledger
            .transaction(&format!("d{i}"), "bob", "credit", 1)
            .await;
        match answer.status {
            StatusCode::CREATED => {}
            StatusCode::SERVICE_UNAVAILABLE => lost += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!((20..80).contains(&lost), "{lost} of 100 lost at rate 0.5");
    ledger.put("/admin/faults", json!({})).await;
    assert_eq!(
        ledger.balance("bob").await.0,
        5_000 + 100,
        "every write took effect, answered or not"
    );
    assert_eq!(ledger.running.faults().lost_answers().credits, lost);
    ledger.finish().await;
}

#[tokio::test]
async fn open_holds_are_listed_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path()).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let hold = ledger.hold(&format!("k{i}"), "alice", 100 + i).await;
        ids.push(hold.body["hold_id"].as_str().unwrap().to_owned());
    }
    ledger.capture(&ids[0], "k0-c", 100).await;
    ledger.void(&ids[1], "k1-v").await;

    let open = ledger.get("/admin/holds?status=held").await.body;
    assert_eq!(open["count"], 2, "{open}");
    let listed: Vec<_> = open["holds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hold_id"].clone())
        .collect();
    assert_eq!(listed, vec![json!(ids[2]), json!(ids[3])], "oldest first");
    let first = ledger.get("/admin/holds?status=held&limit=1").await.body;
    assert_eq!(
        (
            first["count"].clone(),
            first["holds"].as_array().unwrap().len()
        ),
        (json!(2), 1)
    );
    assert_eq!(ledger.get("/admin/holds").await.body["count"], 4);
    assert_eq!(
        ledger.get("/admin/holds?status=voided").await.body["count"],
        1
    );
    assert_eq!(
        ledger.get("/admin/holds?status=open").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(ledger.get("/admin/invariants").await.body["open_holds"], 2);
    let in_process = ledger
        .running
        .holds(Some(ledger_sim::domain::HoldStatus::Held), 10)
        .await
        .unwrap();
    assert_eq!(in_process.count, 2);
    assert_eq!(ledger.running.invariants().await.unwrap().open_holds, 2);
    // Admin reads are never subject to faults.
    ledger
        .running
        .faults()
        .set(FaultConfig {
            down: true,
            ..FaultConfig::default()
        })
        .unwrap();
    assert_eq!(
        ledger.get("/admin/holds?status=held").await.status,
        StatusCode::OK
    );
    ledger.finish().await;
}
