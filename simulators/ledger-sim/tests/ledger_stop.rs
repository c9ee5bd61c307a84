//! ledger-sim stopped with SIGTERM while holds are being placed: it answers the requests in
//! flight, exits 0 well within 10 s, and every hold it acknowledged is in the books after the
//! next start (and answers a replay with the recorded result). The ledger runs as a process.

mod ledger_support;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger_support::Ledger;
use serde_json::json;

const CLIENTS: usize = 4;
const AMOUNT: u64 = 100;

struct LedgerProcess(Child);

impl Drop for LedgerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Places holds one after another until the signal is sent; returns the keys acknowledged and
/// how many answers came after the signal.
async fn client(
    base: String,
    id: usize,
    answers: Arc<AtomicUsize>,
    signalled: Arc<AtomicBool>,
) -> (Vec<String>, usize) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (mut acknowledged, mut after_signal) = (Vec::new(), 0);
    let mut n = 0;
    while !signalled.load(Ordering::SeqCst) {
        n += 1;
        let key = format!("c{id}-{n}");
        let body = json!({"idempotency_key": key, "account": "alice", "amount_minor": AMOUNT,
                          "currency": "EUR", "reference": format!("ref-{key}")});
        let Ok(response) = http
            .post(format!("{base}/v1/holds"))
            .json(&body)
            .send()
            .await
        else {
            break;
        };
        assert!(response.status().is_success(), "{}", response.status());
        if signalled.load(Ordering::SeqCst) {
            after_signal += 1;
        }
        acknowledged.push(key);
        answers.fetch_add(1, Ordering::SeqCst);
    }
    (acknowledged, after_signal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_traffic_answers_in_flight_exits_0_and_keeps_every_acknowledged_hold() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger-db");
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut ledger = LedgerProcess(
        Command::new(env!("CARGO_BIN_EXE_ledger-sim"))
            .args(["--listen", &addr.to_string(), "--db", db.to_str().unwrap()])
            .args(["--seed", "alice:EUR:100000", "--latency-ms", "200"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "ledger-sim never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let base = format!("http://{addr}");
    let answers = Arc::new(AtomicUsize::new(0));
    let signalled = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(client(base.clone(), i, answers.clone(), signalled.clone())))
        .collect();
    while answers.load(Ordering::SeqCst) < 2 * CLIENTS {
        assert!(Instant::now() < deadline, "holds were not answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    signalled.store(true, Ordering::SeqCst);
    let signalled_at = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &ledger.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let exit = loop {
        if let Some(exit) = ledger.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            signalled_at.elapsed() < Duration::from_secs(10),
            "ledger-sim did not exit within 10 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        exit.success(),
        "SIGTERM must end ledger-sim with 0, got {exit:?}"
    );

    let mut acknowledged = Vec::new();
    let mut after_signal = 0;
    for c in clients {
        let (keys, late) = c.await.unwrap();
        acknowledged.extend(keys);
        after_signal += late;
    }
    assert!(
        after_signal > 0,
        "the holds in flight at the signal were answered"
    );

    // The next start holds exactly what was acknowledged, and replays give the recorded result.
    let ledger = Ledger::start_at(db).await;
    let held = acknowledged.len() as u64 * AMOUNT;
    assert_eq!(
        ledger.balance("alice").await,
        (100_000, held, 100_000 - held as i64)
    );
    for key in &acknowledged {
        assert!(ledger.hold(key, "alice", AMOUNT).await.replayed, "{key}");
    }
    ledger.finish().await;
}
