//! Store-and-forward queue benchmarks, baseline beside the real thing in the same run:
//!
//! - `saf_durable_enqueue/group_commit_64`: `SafQueue::enqueue` from 64 concurrent tasks; they
//!   share flushes through the group committer.
//! - `saf_durable_enqueue/fsync_per_enqueue_64`: the same workload (64 concurrent writers, the
//!   same key and JSON record) with each write followed by its own `db.flush()` and `fdatasync`
//!   of the data file (what the group committer does once per batch).
//! - `saf_drain/100k`: the forwarder draining 100 000 queued advices over 64 terminals with a
//!   no-op send: `due` → `begin_attempt` → `complete`, one task per due head.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use atm_agent::queue::{QueueConfig, SafQueue};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::{Deserialize, Serialize};

const WRITERS: usize = 64;
const PER_WRITER: usize = 16;
const DRAIN_ENTRIES: usize = 100_000;
const TERMINALS: usize = 64;

/// About the size of a real advice description.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Advice {
    kind: String,
    terminal_id: String,
    stan: u32,
    transmitted_at: String,
    processing_code: String,
    currency: u16,
    amount_minor: u64,
    actual_minor: Option<u64>,
}

fn advice(terminal: usize, stan: u32) -> Advice {
    Advice {
        kind: "Completion".into(),
        terminal_id: format!("ATM{terminal:05}"),
        stan,
        transmitted_at: "1125114000".into(),
        processing_code: "011000".into(),
        currency: 978,
        amount_minor: 10_000,
        actual_minor: Some(10_000),
    }
}

fn config() -> QueueConfig {
    QueueConfig {
        max_entries: 10_000_000,
        ..QueueConfig::default()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn durable_enqueue(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("saf_durable_enqueue");
    g.throughput(Throughput::Elements((WRITERS * PER_WRITER) as u64));
    g.sample_size(10);

    let dir = tempfile::tempdir().unwrap();
    let q = Arc::new(SafQueue::<Advice>::open(dir.path(), config()).unwrap());
    g.bench_function(BenchmarkId::new("group_commit", WRITERS), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let tasks: Vec<_> = (0..WRITERS)
                        .map(|w| {
                            let q = q.clone();
                            tokio::spawn(async move {
                                for i in 0..PER_WRITER {
                                    q.enqueue(&format!("ATM{w:05}"), advice(w, i as u32))
                                        .await
                                        .unwrap();
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                }
                start.elapsed()
            })
        })
    });
    drop(q);

    // Baseline: the same key layout and JSON record, but every writer flushes for itself.
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let tree = db.open_tree("saf.pending").unwrap();
    let data = Arc::new(std::fs::File::open(dir.path().join("db")).unwrap());
    g.bench_function(BenchmarkId::new("fsync_per_enqueue", WRITERS), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let tasks: Vec<_> = (0..WRITERS)
                        .map(|w| {
                            let (db, tree, data) = (db.clone(), tree.clone(), data.clone());
                            tokio::task::spawn_blocking(move || {
                                for i in 0..PER_WRITER {
                                    let mut key = format!("ATM{w:05}").into_bytes();
                                    key.push(0);
                                    key.extend_from_slice(&db.generate_id().unwrap().to_be_bytes());
                                    let value = serde_json::to_vec(&advice(w, i as u32)).unwrap();
                                    tree.insert(key, value).unwrap();
                                    db.flush().unwrap();
                                    data.sync_data().unwrap();
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

/// Builds a queue of `DRAIN_ENTRIES` advices once; every iteration drains a fresh copy of it.
fn template(rt: &tokio::runtime::Runtime) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let q = Arc::new(SafQueue::<Advice>::open(dir.path(), config()).unwrap());
    rt.block_on(async {
        let tasks: Vec<_> = (0..TERMINALS)
            .map(|t| {
                let q = q.clone();
                // Spread DRAIN_ENTRIES exactly: the first terminals take the remainder.
                let count = DRAIN_ENTRIES / TERMINALS + usize::from(t < DRAIN_ENTRIES % TERMINALS);
                tokio::spawn(async move {
                    for i in 0..count {
                        q.enqueue(&format!("ATM{t:05}"), advice(t, i as u32))
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    drop(q);
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

async fn drain(q: Arc<SafQueue<Advice>>) -> usize {
    let mut sent = 0;
    while !q.is_empty() {
        let mut batch = tokio::task::JoinSet::new();
        for e in q.due(now_ms()) {
            let q = q.clone();
            batch.spawn(async move {
                let e = q.begin_attempt(&e.id).await.unwrap();
                std::hint::black_box(&e.payload); // the no-op send
                q.complete(&e.id).await.unwrap();
            });
        }
        while let Some(done) = batch.join_next().await {
            done.unwrap();
            sent += 1;
        }
    }
    sent
}

fn drain_100k(c: &mut Criterion) {
    let rt = runtime();
    let template = template(&rt);
    let queued = SafQueue::<Advice>::open(template.path(), config())
        .unwrap()
        .len();
    let mut g = c.benchmark_group("saf_drain");
    g.throughput(Throughput::Elements(queued as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.bench_function(BenchmarkId::new("due_begin_complete", queued), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                copy_dir(template.path(), dir.path());
                let q = Arc::new(SafQueue::<Advice>::open(dir.path(), config()).unwrap());
                let start = Instant::now();
                let sent = rt.block_on(drain(q.clone()));
                total += start.elapsed();
                assert_eq!(sent, queued);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, durable_enqueue, drain_100k);
criterion_main!(benches);
