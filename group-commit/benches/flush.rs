//! Durable writes per second: one flush + fdatasync per write (the baseline) beside group
//! commit, in the same run, with 64 concurrent writers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use group_commit::GroupCommitter;

const WRITERS: usize = 64;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let gc = Arc::new(GroupCommitter::start(db.clone(), dir.path(), "bench").unwrap());
    let data = std::fs::File::open(dir.path().join("db")).unwrap();
    let mut g = c.benchmark_group("durable_writes");
    g.throughput(Throughput::Elements(WRITERS as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("flush_per_write", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                for w in 0..WRITERS {
                    db.insert(format!("a{i}:{w}"), &[0u8; 200][..]).unwrap();
                    db.flush().unwrap();
                    data.sync_data().unwrap();
                }
            }
            start.elapsed()
        })
    });
    g.bench_function("group_commit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    let tasks: Vec<_> = (0..WRITERS)
                        .map(|w| {
                            let (db, gc) = (db.clone(), gc.clone());
                            tokio::spawn(async move {
                                db.insert(format!("b{i}:{w}"), &[0u8; 200][..]).unwrap();
                                gc.durable().await.unwrap();
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

criterion_group!(benches, bench);
criterion_main!(benches);
