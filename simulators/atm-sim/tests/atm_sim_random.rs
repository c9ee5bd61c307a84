//! A seeded random customer stream with faults against an always-approving fake host: the
//! terminal's counters add up, power losses are recovered, and the `atm-sim` binary runs the
//! same way.

mod atm_sim_support;

use std::time::Duration;

use atm_sim::{AtmOptions, AtmSim, Kind, Mix, Outcome, RandomCustomers};
use atm_sim_support::{luno_for, profile, FakeHost};
use protocols::ndc::TerminalMessage;

/// Notes for `amount`, largest denomination first (at most 99 per cassette).
fn notes_for(p: &firmware_profiles::Profile, mut amount: u64) -> Vec<u32> {
    let mut notes = vec![0u32; p.dialect.cassette_types];
    let mut cassettes = p.cassettes.clone();
    cassettes.sort_by_key(|c| std::cmp::Reverse(c.denomination_minor));
    for c in cassettes {
        let n = (amount / c.denomination_minor).min(99);
        notes[usize::from(c.cassette_type) - 1] = n as u32;
        amount -= n * c.denomination_minor;
    }
    notes
}

/// Approves everything, on every connection the terminal makes, until the test ends.
fn spawn_auto_host(host: FakeHost) {
    tokio::spawn(async move {
        let mut tsn = 0u16;
        loop {
            let mut conn = host.accept().await;
            conn.start_up_without_counters().await;
            let p = conn.profile.clone();
            loop {
                let next = tokio::time::timeout(Duration::from_secs(30), conn.try_recv_raw());
                let Ok(Some(raw)) = next.await else {
                    break;
                };
                let Ok(TerminalMessage::TransactionRequest(req)) =
                    TerminalMessage::parse(&raw, &conn.dialect)
                else {
                    continue;
                };
                tsn += 1;
                let reply = match p.operation_codes.kind_of(&req.operation_code) {
                    Some(firmware_profiles::TransactionKind::Withdrawal) => {
                        let notes = notes_for(&p, req.amount.unwrap_or(0));
                        conn.reply_to(&req, tsn, '2', notes, &p.screens.dispense)
                    }
                    Some(firmware_profiles::TransactionKind::Deposit) => {
                        conn.reply_to(&req, tsn, '1', vec![], &p.screens.deposit)
                    }
                    _ => conn.reply_to(&req, tsn, '3', vec![], &p.screens.balance),
                };
                conn.reply(reply).await;
            }
        }
    });
}

#[tokio::test]
async fn random_customers_with_faults_leave_consistent_counters() {
    let p = profile("ncr-advance-ndc");
    let host = FakeHost::bind(p.clone()).await;
    let addr = host.addr;
    spawn_auto_host(host);
    let options = AtmOptions {
        seed: 9,
        ..AtmOptions::default()
    };
    let mut sim = AtmSim::connect(addr, p.clone(), &luno_for(&p), options)
        .await
        .expect("start-up");
    let mix = Mix::for_profile(&p).with_faults(40);
    let pans = vec!["4761739001010010".into(), "4761739001010028".into()];
    let mut outcomes = Vec::new();
    for customer in RandomCustomers::new(3, pans, mix).take(40) {
        let out = sim.run_customer(&customer).await.expect("customer");
        if matches!(out.outcome, Outcome::PowerLoss { .. }) {
            sim.power_cycle().await.expect("power cycle");
        }
        outcomes.push(out);
    }
    let c = sim.counters();
    assert_eq!(c.customers.total(), 40);
    assert!(c.customers.power_loss + c.customers.short_dispense + c.customers.cancelled > 0);
    let dispensed: u64 = outcomes.iter().map(|o| o.dispensed_minor).sum();
    let deposited: u64 = outcomes.iter().map(|o| o.deposited_minor).sum();
    assert_eq!(c.dispensed_minor, dispensed);
    assert_eq!(c.deposited_minor, deposited);
    for i in 0..4 {
        assert_eq!(c.notes_left[i] + c.notes_dispensed[i], c.notes_loaded[i]);
    }
    assert!(outcomes
        .iter()
        .filter(|o| o.kind == Kind::Withdrawal && o.outcome == Outcome::Approved)
        .all(|o| o.dispensed_minor == o.requested_minor));
}

#[tokio::test]
async fn the_binary_serves_customers_and_prints_a_json_summary() {
    let p = profile("ncr-selfserv-basic");
    let host = FakeHost::bind(p.clone()).await;
    let addr = host.addr;
    spawn_auto_host(host);
    // The binary blocks its thread while the fake host answers on this runtime.
    let agent = addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_atm-sim"))
            .args(["--agent", &agent, "--profile", "ncr-selfserv-basic"])
            .args([
                "--luno",
                "001",
                "--customers",
                "5",
                "--seed",
                "42",
                "--json",
            ])
            .args(["--pans", "4761739001010010,4761739001010028"])
            .output()
    })
    .await
    .expect("join")
    .expect("run atm-sim");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert_eq!(v["customers"].as_array().map(Vec::len), Some(5));
    assert_eq!(v["counters"]["customers"]["approved"], 5);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("4761739001010010"),
        "clear PAN in the output"
    );
}
