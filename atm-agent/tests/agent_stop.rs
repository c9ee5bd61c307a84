//! The agent stopped with SIGTERM while customers are at a terminal: it takes no new terminals,
//! serves the customer in flight to the end, signs off and exits 0 well within 10 s; whatever it
//! owed the switch stays queued on disk and is sent after the next start, none lost, none twice.
//! The agent runs as a real process (`atm-agent`); the ledger is slow, so a customer is in
//! flight when the signal comes.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atm_sim::{Customer, Outcome};
use common::*;
use ledger_sim::FaultConfig;

const AMOUNT: u64 = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_traffic_serves_the_customer_in_flight_exits_0_and_drains_after_restart() {
    let AgentProcessLab {
        lab,
        config,
        socket,
        mut agent,
        mut atm,
    } = AgentProcessLab::start(500).await;
    lab.ledger
        .faults()
        .set(FaultConfig {
            latency_ms: 300,
            ..FaultConfig::default()
        })
        .unwrap();

    // Customers one after another until the terminal's session ends.
    let served = Arc::new(AtomicUsize::new(0));
    let signalled = Arc::new(AtomicBool::new(false));
    let customers = {
        let served = served.clone();
        let signalled = signalled.clone();
        tokio::spawn(async move {
            let mut dispensed = 0u64;
            let mut after_signal = 0usize;
            while let Ok(out) = atm.run_customer(&Customer::withdrawal(ALICE, AMOUNT)).await {
                assert_eq!(out.outcome, Outcome::Approved, "{out:?}");
                dispensed += out.dispensed_minor;
                if signalled.load(Ordering::SeqCst) {
                    after_signal += 1;
                }
                served.fetch_add(1, Ordering::SeqCst);
            }
            (dispensed, after_signal)
        })
    };
    lab.wait_until("two customers served", 60, || {
        let n = served.load(Ordering::SeqCst);
        async move { n >= 2 }
    })
    .await;

    signalled.store(true, Ordering::SeqCst);
    let signalled_at = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &agent.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let exit = loop {
        if let Some(exit) = agent.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            signalled_at.elapsed() < Duration::from_secs(10),
            "the agent did not exit within 10 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        exit.success(),
        "SIGTERM must end the agent with 0, got {exit:?}"
    );
    let (dispensed, after_signal) = customers.await.unwrap();
    assert!(
        after_signal > 0,
        "the customer in flight at the signal was served to the end"
    );

    // The next start sends what was queued; the ledger captured exactly what left the terminal.
    lab.ledger.faults().clear();
    let agent = spawn_agent(&config);
    let s = wait_for(&socket, "queue drained", |s| {
        s["uplink"] == "up" && s["queue"]["pending"] == 0
    })
    .await;
    assert_eq!(s["queue"]["parked"], 0);
    lab.eventually_balance(ALICE, ((START - dispensed) as i64, 0))
        .await;
    let rec = lab.switch.switch.reconcile().await.unwrap();
    assert!(rec.is_reconciled(), "{rec:#?}");
    assert_eq!(rec.journal_captured_minor, dispensed, "{rec:#?}");
    drop(agent);
    lab.assert_books().await;
}
