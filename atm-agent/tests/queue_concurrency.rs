//! Many tasks enqueue at once on a few partitions: every advice is durable when `enqueue`
//! returns, and each task's advices come out in the order it queued them.

use std::collections::BTreeMap;
use std::sync::Arc;

use atm_agent::queue::{QueueConfig, SafQueue};
use serde::{Deserialize, Serialize};

const TASKS: u64 = 48;
const PER_TASK: u64 = 100;
const PARTITIONS: u64 = 6;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Advice {
    task: u64,
    n: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn partition_of(task: u64) -> String {
    format!("ATM{:04}", task % PARTITIONS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_are_all_durable_and_ordered_per_task() {
    let dir = tempfile::tempdir().unwrap();
    let q = Arc::new(SafQueue::<Advice>::open(dir.path(), QueueConfig::default()).unwrap());
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let q = q.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for n in 0..PER_TASK {
                    seqs.push(
                        q.enqueue(&partition_of(task), Advice { task, n })
                            .await
                            .unwrap()
                            .seq,
                    );
                }
                seqs
            })
        })
        .collect();
    for t in tasks {
        let seqs = t.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "sequence numbers of one task must grow"
        );
    }
    assert_eq!(q.len() as u64, TASKS * PER_TASK);
    drop(q);

    // Reopen: all there. Then forward as the agent would, one task per due head.
    let q = Arc::new(SafQueue::<Advice>::open(dir.path(), QueueConfig::default()).unwrap());
    assert_eq!(q.len() as u64, TASKS * PER_TASK);
    let mut served: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    while !q.is_empty() {
        let mut batch = tokio::task::JoinSet::new();
        for e in q.due(now_ms()) {
            let q = q.clone();
            batch.spawn(async move {
                let e = q.begin_attempt(&e.id).await.unwrap();
                q.complete(&e.id).await.unwrap();
                e.payload
            });
        }
        while let Some(done) = batch.join_next().await {
            let advice = done.unwrap();
            served.entry(advice.task).or_default().push(advice.n);
        }
    }
    assert_eq!((q.parked_len(), served.len() as u64), (0, TASKS));
    for (task, ns) in served {
        assert_eq!(
            ns,
            (0..PER_TASK).collect::<Vec<_>>(),
            "task {task} out of order"
        );
    }
}
