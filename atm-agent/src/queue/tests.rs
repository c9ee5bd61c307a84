//! Behaviour of [`SafQueue`] as specifications, driven by a [`ManualClock`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Advice {
    stan: u32,
}

const T0: u64 = 1_000_000;

fn config() -> QueueConfig {
    QueueConfig {
        max_entries: 100,
        park_after_age_ms: 60_000,
        park_after_failures: 3,
        retry_backoff_min_ms: 100,
        retry_backoff_max_ms: 1_000,
    }
}

fn open(dir: &tempfile::TempDir, clock: &Arc<ManualClock>) -> SafQueue<Advice> {
    SafQueue::open_with_clock(dir.path(), config(), clock.clone()).unwrap()
}

fn setup() -> (tempfile::TempDir, Arc<ManualClock>, SafQueue<Advice>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let q = open(&dir, &clock);
    (dir, clock, q)
}

fn stans(entries: &[Entry<Advice>]) -> Vec<(String, u32)> {
    entries
        .iter()
        .map(|e| (e.partition.clone(), e.payload.stan))
        .collect()
}

#[tokio::test]
async fn each_partition_is_served_in_fifo_order() {
    let (_dir, _clock, q) = setup();
    for stan in 1..=3 {
        q.enqueue("ATM1", Advice { stan }).await.unwrap();
    }
    q.enqueue("ATM2", Advice { stan: 10 }).await.unwrap();
    let mut served = Vec::new();
    while !q.is_empty() {
        for e in q.due(T0) {
            served.push((e.partition.clone(), e.payload.stan));
            q.begin_attempt(&e.id).await.unwrap();
            q.complete(&e.id).await.unwrap();
        }
    }
    let atm1: Vec<u32> = served
        .iter()
        .filter(|(p, _)| p == "ATM1")
        .map(|(_, s)| *s)
        .collect();
    assert_eq!(atm1, vec![1, 2, 3]);
    assert_eq!(served.len(), 4);
}

#[tokio::test]
async fn only_one_advice_per_partition_is_in_flight() {
    let (_dir, _clock, q) = setup();
    let a1 = q.enqueue("ATM1", Advice { stan: 1 }).await.unwrap();
    let a2 = q.enqueue("ATM1", Advice { stan: 2 }).await.unwrap();
    q.enqueue("ATM2", Advice { stan: 3 }).await.unwrap();
    assert_eq!(
        stans(&q.due(T0)),
        vec![("ATM1".into(), 1), ("ATM2".into(), 3)]
    );
    q.begin_attempt(&a1).await.unwrap();
    assert_eq!(stans(&q.due(T0)), vec![("ATM2".into(), 3)]);
    assert!(matches!(
        q.begin_attempt(&a2).await,
        Err(QueueError::Busy { .. })
    ));
    assert!(matches!(
        q.mark_in_flight(&a2),
        Err(QueueError::Busy { .. })
    ));
    q.complete(&a1).await.unwrap();
    assert_eq!(stans(&q.due(T0))[0], ("ATM1".into(), 2));
    assert!(matches!(
        q.complete(&a1).await,
        Err(QueueError::NotFound(_))
    ));
}

#[tokio::test]
async fn mark_in_flight_holds_the_partition_and_counts_the_send_on_retry() {
    let (_dir, clock, q) = setup();
    let a1 = q.enqueue("ATM1", Advice { stan: 1 }).await.unwrap();
    q.mark_in_flight(&a1).unwrap();
    assert!(q.due(T0).is_empty());
    q.retry_later(&a1, "timeout", false).await.unwrap();
    clock.advance(10_000);
    let e = &q.due(clock.now_ms())[0];
    assert_eq!((e.attempts, e.repeat), (1, true));
}

#[tokio::test]
async fn a_failed_send_backs_off_exponentially_within_bounds() {
    let (_dir, clock, q) = setup();
    let id = q.enqueue("ATM1", Advice { stan: 1 }).await.unwrap();
    let mut previous_step = 0;
    for attempt in 1..=8u32 {
        let now = clock.now_ms();
        q.begin_attempt(&id).await.unwrap();
        let outcome = q.retry_later(&id, "timeout", false).await.unwrap();
        let RetryOutcome::Scheduled { next_attempt_at_ms } = outcome else {
            panic!("parked by a timeout")
        };
        let delay = next_attempt_at_ms - now;
        let step = (100u64 << (attempt - 1)).min(1_000);
        assert!(
            (step / 2..=step).contains(&delay) && delay >= 100,
            "attempt {attempt}: {delay} ms"
        );
        assert!(step >= previous_step);
        previous_step = step;
        assert!(
            q.due(next_attempt_at_ms - 1).is_empty(),
            "due before its time"
        );
        let e = &q.due(next_attempt_at_ms)[0];
        assert_eq!(
            (e.attempts, e.repeat, e.last_error.as_deref()),
            (attempt, true, Some("timeout"))
        );
        clock.set(next_attempt_at_ms);
    }
    assert_eq!(q.parked_len(), 0, "timeouts never count against the limit");
}

#[tokio::test]
async fn counted_failures_park_the_advice_at_the_limit() {
    let (_dir, clock, q) = setup();
    let id = q.enqueue("ATM1", Advice { stan: 1 }).await.unwrap();
    q.enqueue("ATM1", Advice { stan: 2 }).await.unwrap();
    for n in 1..=3 {
        q.begin_attempt(&id).await.unwrap();
        let outcome = q.retry_later(&id, "response 96", true).await.unwrap();
        assert_eq!(matches!(outcome, RetryOutcome::Parked), n == 3);
        clock.advance(10_000);
    }
    assert_eq!((q.len(), q.parked_len()), (1, 1));
    assert_eq!(
        stans(&q.due(clock.now_ms())),
        vec![("ATM1".into(), 2)],
        "the next advice is not blocked"
    );
}

#[tokio::test]
async fn an_operator_puts_a_parked_advice_back_and_it_is_sent_again_as_a_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let id = {
        let q = open(&dir, &clock);
        let id = q.enqueue("ATM1", Advice { stan: 1 }).await.unwrap();
        q.begin_attempt(&id).await.unwrap();
        q.park(&id, "response 12").await.unwrap();
        assert!(q.due(clock.now_ms()).is_empty());
        q.requeue(&id).await.unwrap();
        assert_eq!((q.len(), q.parked_len()), (1, 0));
        id
    };
    // Durable: after a restart it is due at once, as a repeat (its attempt was counted).
    let q = open(&dir, &clock);
    let due = q.due(clock.now_ms());
    assert_eq!(stans(&due), vec![("ATM1".into(), 1)]);
    assert_eq!(q.begin_attempt(&id).await.unwrap().attempts, 2);
    assert!(
        matches!(q.requeue(&id).await, Err(QueueError::NotFound(_))),
        "only a parked advice is requeued"
    );
}

#[tokio::test]
async fn an_advice_past_its_age_limit_is_parked_not_dropped() {
    let (dir, clock, q) = setup();
    q.enqueue("ATM1", Advice { stan: 1 }).await.unwrap();
    clock.advance(30_000);
    q.enqueue("ATM1", Advice { stan: 2 }).await.unwrap();
    let now = T0 + 60_001;
    assert_eq!(stans(&q.due(now)), vec![("ATM1".into(), 2)]);
    assert_eq!((q.len(), q.parked_len()), (1, 1));
    clock.set(now);
    let parked: Vec<_> = q
        .list()
        .into_iter()
        .filter(|v| v.state == EntryState::Parked)
        .collect();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].payload, serde_json::json!({"stan": 1}));
    assert!(parked[0]
        .parked_reason
        .as_deref()
        .unwrap_or("")
        .contains("park_after_age_ms"));
    drop(q);
    let q = open(&dir, &clock);
    assert_eq!(
        (q.len(), q.parked_len()),
        (1, 1),
        "parking survives a restart"
    );
}

#[tokio::test]
async fn retry_now_makes_backed_off_advices_due() {
    let (_dir, _clock, q) = setup();
    let a = q.enqueue("ATM1", Advice { stan: 1 }).await.unwrap();
    let b = q.enqueue("ATM2", Advice { stan: 2 }).await.unwrap();
    for id in [&a, &b] {
        q.begin_attempt(id).await.unwrap();
        q.retry_later(id, "timeout", false).await.unwrap();
    }
    assert!(q.due(T0).is_empty());
    assert_eq!(q.retry_now(Some("ATM2")), 1);
    assert_eq!(stans(&q.due(T0)), vec![("ATM2".into(), 2)]);
    assert_eq!(q.retry_now(None), 1);
    assert_eq!(q.due(T0).len(), 2);
    q.begin_attempt(&a).await.unwrap();
    assert_eq!(q.retry_now(None), 0, "an advice in flight is left alone");
}

#[tokio::test]
async fn a_corrupt_record_is_quarantined_and_does_not_block_its_partition() {
    let (dir, clock, q) = setup();
    q.enqueue("ATM1", Advice { stan: 1 }).await.unwrap();
    q.enqueue("ATM1", Advice { stan: 2 }).await.unwrap();
    // Damage the head and plant a key the queue never wrote.
    let head = q.due(T0)[0].id.clone();
    q.insert_raw_for_test(&record::encode_key("ATM1", head.seq), b"\x00not json");
    q.insert_raw_for_test(b"junk", b"x");
    assert_eq!(stans(&q.due(T0)), vec![("ATM1".into(), 2)]);
    assert_eq!((q.len(), q.corrupt_len()), (1, 2));
    assert!(matches!(
        q.begin_attempt(&head).await,
        Err(QueueError::NotFound(_))
    ));
    // A record whose payload no longer matches the type is corrupt too.
    let wrong = q.due(T0)[0].id.clone();
    q.insert_raw_for_test(
        &record::encode_key("ATM1", wrong.seq),
        br#"{"payload":"x","enqueued_at_ms":1}"#,
    );
    assert!(matches!(
        q.begin_attempt(&wrong).await,
        Err(QueueError::Corrupt { .. })
    ));
    assert_eq!((q.len(), q.corrupt_len()), (0, 3));
    drop(q);
    let q = open(&dir, &clock);
    assert_eq!((q.len(), q.corrupt_len()), (0, 3));
}

#[tokio::test]
async fn the_repeat_flag_survives_a_crash_after_the_send() {
    let (dir, clock, q) = setup();
    let id = q.enqueue("ATM1", Advice { stan: 1 }).await.unwrap();
    let first = q.begin_attempt(&id).await.unwrap();
    assert_eq!((first.attempts, first.repeat), (1, false));
    // The send went out; the agent dies before the answer. No complete, no retry_later.
    drop(q);
    let q = open(&dir, &clock);
    let due = q.due(T0);
    assert_eq!(
        (due[0].attempts, due[0].repeat),
        (1, true),
        "nothing is in flight after a restart"
    );
    let second = q.begin_attempt(&id).await.unwrap();
    assert_eq!((second.attempts, second.repeat), (2, true));
    let listed = q.list();
    assert_eq!(
        (listed[0].state, listed[0].repeat),
        (EntryState::InFlight, true)
    );
}

#[tokio::test]
async fn a_full_queue_refuses_instead_of_growing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = QueueConfig {
        max_entries: 2,
        ..config()
    };
    let q: SafQueue<Advice> =
        SafQueue::open_with_clock(dir.path(), cfg, Arc::new(ManualClock::new(T0))).unwrap();
    let a = q.enqueue("ATM1", Advice { stan: 1 }).await.unwrap();
    let b = q.enqueue("ATM1", Advice { stan: 2 }).await.unwrap();
    assert!(matches!(
        q.enqueue("ATM2", Advice { stan: 3 }).await,
        Err(QueueError::Full { max_entries: 2 })
    ));
    q.park(&b, "by hand").await.unwrap();
    assert!(
        matches!(
            q.enqueue("ATM2", Advice { stan: 3 }).await,
            Err(QueueError::Full { .. })
        ),
        "parked counts"
    );
    q.complete(&a).await.unwrap();
    q.enqueue("ATM2", Advice { stan: 3 }).await.unwrap();
}

#[tokio::test]
async fn bad_partitions_and_oversized_payloads_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let q: SafQueue<String> = SafQueue::open(dir.path(), config()).unwrap();
    assert!(matches!(
        q.enqueue("", "x".into()).await,
        Err(QueueError::InvalidPartition { .. })
    ));
    assert!(matches!(
        q.enqueue("A\0B", "x".into()).await,
        Err(QueueError::InvalidPartition { .. })
    ));
    let big = "x".repeat(MAX_RECORD_BYTES);
    assert!(matches!(
        q.enqueue("ATM1", big).await,
        Err(QueueError::TooLarge { .. })
    ));
    assert_eq!(q.len(), 0);
}

#[tokio::test]
async fn sequences_keep_growing_across_restarts() {
    let (dir, clock, q) = setup();
    let first = q.enqueue("ATM1", Advice { stan: 1 }).await.unwrap();
    drop(q);
    let q = open(&dir, &clock);
    let second = q.enqueue("ATM1", Advice { stan: 2 }).await.unwrap();
    assert!(second.seq > first.seq);
    assert_eq!(stans(&q.due(T0)), vec![("ATM1".into(), 1)]);
}

#[tokio::test]
async fn list_shows_state_age_and_payload() {
    let (_dir, clock, q) = setup();
    let a = q.enqueue("ATM1", Advice { stan: 1 }).await.unwrap();
    q.enqueue("ATM1", Advice { stan: 2 }).await.unwrap();
    q.begin_attempt(&a).await.unwrap();
    clock.advance(500);
    let views = q.list();
    assert_eq!(
        views.iter().map(|v| v.state).collect::<Vec<_>>(),
        vec![EntryState::InFlight, EntryState::Pending]
    );
    assert_eq!(views[0].age_ms, 500);
    let json = serde_json::to_value(&views[0]).unwrap();
    assert_eq!(json["state"], "in-flight");
    assert_eq!(json["id"], format!("ATM1/{}", a.seq));
    assert_eq!(json["payload"]["stan"], 1);
}

#[tokio::test]
async fn a_claimed_advice_is_offered_to_no_other_pass_and_begun_once() {
    let (_dir, _clock, q) = setup();
    q.enqueue("ATM1", Advice { stan: 1 }).await.unwrap();
    let claimed = q.claim_due(T0, 10);
    assert_eq!(stans(&claimed), vec![("ATM1".into(), 1)]);
    assert!(
        q.claim_due(T0, 10).is_empty(),
        "a second pass finds it in flight"
    );
    let id = claimed[0].id.clone();
    q.begin_attempt(&id).await.unwrap();
    assert!(
        matches!(q.begin_attempt(&id).await, Err(QueueError::Busy { .. })),
        "the same advice is never begun twice"
    );
    q.complete(&id).await.unwrap();
    assert!(q.is_empty());
}

#[tokio::test]
async fn a_released_claim_is_offered_again_and_claims_respect_the_limit() {
    let (_dir, _clock, q) = setup();
    q.enqueue("ATM1", Advice { stan: 1 }).await.unwrap();
    q.enqueue("ATM2", Advice { stan: 2 }).await.unwrap();
    let claimed = q.claim_due(T0, 1);
    assert_eq!(claimed.len(), 1);
    q.release(&claimed[0].id);
    assert_eq!(q.claim_due(T0, 10).len(), 2);
}

#[tokio::test]
async fn an_advice_queued_once_is_not_queued_again_until_it_completes() {
    let (_dir, _clock, q) = setup();
    let first = q
        .enqueue_once("ATM1", "000003:1125114000", Advice { stan: 3 })
        .await
        .unwrap();
    let again = q
        .enqueue_once("ATM1", "000003:1125114000", Advice { stan: 3 })
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(q.len(), 1);
    q.begin_attempt(&first).await.unwrap();
    q.complete(&first).await.unwrap();
    assert!(q.once.is_empty(), "the index entry leaves with the advice");
}
