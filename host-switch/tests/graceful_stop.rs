//! The switch stopped with SIGTERM while requests are in flight (systemd's, docker's and
//! kubernetes' way to stop a service): it stops reading new requests, answers the ones it holds,
//! exits 0 well within 10 s; every approval it gave is in the journal, so the next start answers
//! a replay with the recorded approval and captures the completions. The switch runs as a real
//! process (`host-switch`); the ledger is slow, so requests are in flight when the signal comes.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ledger_sim::FaultConfig;
use protocols::iso8583::Spec;

const CLIENTS: u32 = 6;
const AMOUNT: u64 = 100;

/// The switch process; killed when the test ends, pass or fail.
struct SwitchProcess(Child);

impl Drop for SwitchProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one client saw: the STANs approved, and how many answers came after the signal.
struct ClientLog {
    approved: Vec<u32>,
    answered_after_signal: usize,
}

/// Sends withdrawals one after another until the signal is sent, then waits for the answer to
/// the one in flight (or the connection's end).
async fn client(
    mut c: IsoClient,
    first_stan: u32,
    answers: Arc<AtomicUsize>,
    signalled: Arc<AtomicBool>,
) -> ClientLog {
    let spec = Spec::iso87_ascii();
    let mut log = ClientLog {
        approved: Vec::new(),
        answered_after_signal: 0,
    };
    let mut stan = first_stan;
    while !signalled.load(Ordering::SeqCst) {
        let request = withdrawal(stan, ALICE, AMOUNT);
        c.send_raw(&spec.pack(&request).unwrap()).await;
        let Some(bytes) = c.recv_raw().await else {
            break;
        };
        let answer = spec.unpack(&bytes).unwrap();
        assert_eq!(
            answer.get_str(11),
            request.get_str(11),
            "answer to another request"
        );
        if code(&answer) == "00" {
            log.approved.push(stan);
        }
        if signalled.load(Ordering::SeqCst) {
            log.answered_after_signal += 1;
        }
        answers.fetch_add(1, Ordering::SeqCst);
        stan += 1;
    }
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_traffic_answers_what_is_in_flight_exits_0_and_the_next_start_resumes() {
    let mut lab = Lab::start().await;
    lab.stop_switch().await;
    lab.switch_addr = testkit::wait::free_port().unwrap();
    let config = lab.dir.path().join("host-switch.toml");
    std::fs::write(&config, toml::to_string(&lab.config()).unwrap()).unwrap();
    lab.ledger()
        .faults()
        .set(FaultConfig {
            latency_ms: 300,
            ..FaultConfig::default()
        })
        .unwrap();

    let mut switch = SwitchProcess(
        Command::new(env!("CARGO_BIN_EXE_host-switch"))
            .args(["--config", config.to_str().unwrap()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    assert!(
        testkit::wait::wait_listening(lab.switch_addr, Duration::from_secs(60)).await,
        "the switch never listened"
    );

    let answers = Arc::new(AtomicUsize::new(0));
    let signalled = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let c = lab.client().await;
        clients.push(tokio::spawn(client(
            c,
            1 + i * 10_000,
            answers.clone(),
            signalled.clone(),
        )));
    }
    testkit::wait::wait_until("every client answered twice", 60, || {
        let n = answers.load(Ordering::SeqCst);
        async move { n >= 2 * CLIENTS as usize }
    })
    .await;

    signalled.store(true, Ordering::SeqCst);
    let signalled_at = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &switch.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(exit) = switch.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            signalled_at.elapsed() < Duration::from_secs(10),
            "the switch did not exit within 10 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        exit.success(),
        "SIGTERM must end the switch with 0, got {exit:?}"
    );

    let mut approved = Vec::new();
    let mut answered_after_signal = 0;
    for c in clients {
        let log = c.await.unwrap();
        approved.extend(log.approved);
        answered_after_signal += log.answered_after_signal;
    }
    assert!(
        answered_after_signal > 0,
        "requests in flight at the signal were answered, not cut off"
    );
    assert!(!approved.is_empty());

    // The next start (same journal, same port) knows every approval it gave.
    lab.ledger().faults().clear();
    lab.start_switch().await;
    let mut c = lab.client().await;
    for (i, stan) in approved.iter().enumerate() {
        let replay = c.request(&withdrawal(*stan, ALICE, AMOUNT)).await;
        assert_eq!(code(&replay), "00", "replay of approved STAN {stan}");
        let done = c
            .request(&completion(
                900_000 + i as u32,
                *stan,
                ALICE,
                AMOUNT,
                AMOUNT,
            ))
            .await;
        assert_eq!(code(&done), "00", "completion of STAN {stan}");
    }
    let captured = approved.len() as u64 * AMOUNT;
    let balance = lab.balance(ALICE).await;
    assert_eq!(
        balance["balance_minor"].as_i64(),
        Some((START_BALANCE - captured) as i64),
        "{balance}"
    );
    lab.assert_books().await;
}
