//! `kill -9` at a random moment loses nothing acknowledged and duplicates nothing.
//!
//! The test binary re-executes itself (`current_exe`) with an environment variable that turns the
//! `child_process_entry` test into a worker: in `enqueue` mode it enqueues advices as fast as it
//! can on a few partitions and prints `ACK partition seq n` after each `enqueue` returns; in
//! `drain` mode it forwards them (`due` → `begin_attempt` → `complete`) and prints `BEGIN`/`DONE`
//! lines. The parent SIGKILLs it (`Child::kill`) at a random moment, reopens the queue and checks
//! the invariants against what the child had acknowledged.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use atm_agent::queue::{QueueConfig, SafQueue};
use serde::{Deserialize, Serialize};

const DIR_ENV: &str = "SAF_CRASH_CHILD_DIR";
const MODE_ENV: &str = "SAF_CRASH_CHILD_MODE";
const PARTITIONS: [&str; 4] = ["ATM0001", "ATM0002", "ATM0003", "ATM0004"];
const ROUNDS: usize = 4;

/// The payload: which partition and which number in that partition's sequence of enqueues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Advice {
    partition: String,
    n: u64,
}

fn config() -> QueueConfig {
    QueueConfig {
        max_entries: 1_000_000,
        ..QueueConfig::default()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn random_below(bound: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7);
    u64::from(nanos.wrapping_mul(2_654_435_761)) % bound.max(1)
}

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Not a test by itself: the worker run by the child process, a no-op otherwise.
#[test]
fn child_process_entry() {
    let (Ok(dir), Ok(mode)) = (std::env::var(DIR_ENV), std::env::var(MODE_ENV)) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let q = std::sync::Arc::new(SafQueue::<Advice>::open(&dir, config()).unwrap());
        match mode.as_str() {
            "enqueue" => child_enqueue(q).await,
            "drain" => child_drain(q).await,
            other => panic!("unknown child mode {other}"),
        }
    });
}

async fn child_enqueue(q: std::sync::Arc<SafQueue<Advice>>) {
    let tasks: Vec<_> = PARTITIONS
        .iter()
        .map(|p| {
            let q = q.clone();
            tokio::spawn(async move {
                for n in 0..1_000_000u64 {
                    let id = q
                        .enqueue(
                            p,
                            Advice {
                                partition: p.to_string(),
                                n,
                            },
                        )
                        .await
                        .unwrap();
                    say(format!("ACK {} {} {n}", id.partition, id.seq));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

async fn child_drain(q: std::sync::Arc<SafQueue<Advice>>) {
    while !q.is_empty() {
        for e in q.due(now_ms()) {
            let e = q.begin_attempt(&e.id).await.unwrap();
            say(format!("BEGIN {} {}", e.partition, e.seq));
            q.complete(&e.id).await.unwrap();
            say(format!("DONE {} {}", e.partition, e.seq));
        }
    }
    say("EMPTY".into());
}

/// Runs the child until it has printed `min_lines` lines starting with `tag` (or exited), plus
/// a random moment, then SIGKILLs it. Returns every complete line it printed.
fn run_child_and_kill(dir: &Path, mode: &str, tag: &str, min_lines: usize) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, dir)
        .env(MODE_ENV, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let mut tagged = 0;
    while tagged < min_lines {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                tagged += usize::from(line.contains(tag));
                lines.push(line);
            }
            Err(_) => break, // the child exited (or hung): kill anyway
        }
    }
    std::thread::sleep(Duration::from_millis(random_below(300)));
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    lines
}

/// `(partition, seq)` → fields of the lines with this tag. A tag may follow libtest's own
/// "test child_process_entry ... " on the child's first line, so it is searched, not anchored.
fn parse(lines: &[String], tag: &str) -> BTreeMap<(String, u64), Vec<String>> {
    lines
        .iter()
        .filter_map(|l| {
            let mut f = l[l.find(tag)?..].split_whitespace();
            if f.next() != Some(tag) {
                return None;
            }
            let partition = f.next()?.to_string();
            let seq = f.next()?.parse().ok()?;
            Some(((partition, seq), f.map(str::to_string).collect()))
        })
        .collect()
}

fn partition_ns(q: &SafQueue<Advice>) -> BTreeMap<String, Vec<(u64, u64)>> {
    let mut by_partition: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for v in q.list() {
        let advice: Advice = serde_json::from_value(v.payload).unwrap();
        assert_eq!(advice.partition, v.partition);
        by_partition
            .entry(v.partition)
            .or_default()
            .push((v.seq, advice.n));
    }
    by_partition
}

#[test]
fn kill_9_at_any_moment_loses_nothing_acknowledged_and_duplicates_nothing() {
    if std::env::var(DIR_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut highest_seq_so_far = None;
    for round in 0..ROUNDS {
        // 1. Enqueue until killed.
        let lines = run_child_and_kill(dir.path(), "enqueue", "ACK", 50 + round * 200);
        let acked = parse(&lines, "ACK");
        assert!(
            !acked.is_empty(),
            "round {round}: the child acknowledged nothing"
        );
        let q = SafQueue::<Advice>::open(dir.path(), config()).unwrap();
        let stored = partition_ns(&q);
        for ((partition, seq), fields) in &acked {
            let n: u64 = fields[0].parse().unwrap();
            let entries = &stored[partition];
            assert_eq!(
                entries.iter().filter(|(s, _)| s == seq).count(),
                1,
                "acknowledged {partition}/{seq} lost"
            );
            assert!(entries.contains(&(*seq, n)));
        }
        for (partition, entries) in &stored {
            // list() is in key order, i.e. FIFO; the payloads must be 0, 1, 2 ... with no gap
            // and no duplicate, and at most the one unacknowledged enqueue in progress extra.
            let ns: Vec<u64> = entries.iter().map(|(_, n)| *n).collect();
            assert_eq!(
                ns,
                (0..ns.len() as u64).collect::<Vec<_>>(),
                "round {round} {partition}: FIFO broken"
            );
            let acked_here = acked.keys().filter(|(p, _)| p == partition).count();
            assert!(
                ns.len() == acked_here || ns.len() == acked_here + 1,
                "round {round} {partition}: {} stored vs {acked_here} acknowledged; last acks {:?}; stored tail {:?}",
                ns.len(),
                acked.iter().filter(|((p, _), _)| p == partition).rev().take(3).collect::<Vec<_>>(),
                entries.iter().rev().take(4).collect::<Vec<_>>()
            );
            let lowest = entries[0].0;
            assert!(
                !matches!(highest_seq_so_far, Some(h) if lowest <= h),
                "sequence went backwards after restart"
            );
        }
        highest_seq_so_far = stored
            .values()
            .flatten()
            .map(|(s, _)| *s)
            .max()
            .max(highest_seq_so_far);
        let before: HashSet<(String, u64)> = stored
            .iter()
            .flat_map(|(p, e)| e.iter().map(move |(s, _)| (p.clone(), *s)))
            .collect();
        drop(q);

        // 2. Forward until killed.
        let lines = run_child_and_kill(dir.path(), "drain", "DONE", 20);
        let (begun, done) = (parse(&lines, "BEGIN"), parse(&lines, "DONE"));
        let q = SafQueue::<Advice>::open(dir.path(), config()).unwrap();
        let views = q.list();
        let left: HashSet<(String, u64)> =
            views.iter().map(|v| (v.partition.clone(), v.seq)).collect();
        assert!(left.is_subset(&before), "entries appeared out of nowhere");
        for key in done.keys() {
            assert!(
                !left.contains(key),
                "completed {key:?} came back after the crash"
            );
        }
        for v in &views {
            if begun.contains_key(&(v.partition.clone(), v.seq)) {
                assert!(
                    v.repeat && v.attempts >= 1,
                    "{}: a resend after a crash must be a repeat",
                    v.id
                );
            }
        }
        for (partition, entries) in partition_ns(&q) {
            let ns: Vec<u64> = entries.iter().map(|(_, n)| *n).collect();
            let first = ns[0];
            assert_eq!(
                ns,
                (first..first + ns.len() as u64).collect::<Vec<_>>(),
                "{partition}: not a FIFO suffix"
            );
        }

        // 3. Drain the rest here and check it stays empty across a reopen.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            while !q.is_empty() {
                for e in q.due(now_ms()) {
                    q.begin_attempt(&e.id).await.unwrap();
                    q.complete(&e.id).await.unwrap();
                }
            }
        });
        drop(q);
        let q = SafQueue::<Advice>::open(dir.path(), config()).unwrap();
        assert_eq!(
            (q.len(), q.parked_len(), q.corrupt_len()),
            (0, 0, 0),
            "round {round}"
        );
        assert!(q.list().is_empty());
    }
}
