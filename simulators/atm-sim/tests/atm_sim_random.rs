//! A seeded random customer stream with faults against an always-approving fake host: the
//! terminal's counters add up, power losses are recovered, and the `atm-sim` binary runs the
//! same way.

mod atm_sim_support;

use atm_sim::{AtmOptions, AtmSim, Kind, Mix, Outcome, RandomCustomers, TruthRecord};
use atm_sim_support::{luno_for, profile, spawn_auto_host, FakeHost};

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

#[tokio::test]
async fn random_terminal_faults_keep_the_truth_and_the_counters_in_step() {
    let p = profile("ncr-selfserv-basic");
    let host = FakeHost::bind(p.clone()).await;
    let addr = host.addr;
    spawn_auto_host(host);
    let options = AtmOptions {
        no_status_hold_ms: Some(0),
        ..AtmOptions::default()
    };
    let mut sim = AtmSim::connect(addr, p.clone(), &luno_for(&p), options)
        .await
        .expect("start-up");
    let mix = Mix::for_profile(&p).with_terminal_faults(70, vec![]);
    let mut outcomes = Vec::new();
    for customer in RandomCustomers::new(5, vec![], mix).take(60) {
        let out = sim.run_customer(&customer).await.expect("customer");
        if !sim.is_connected() {
            sim.power_cycle().await.expect("power cycle");
        }
        outcomes.push(out);
    }
    let truth = sim.truth().await;
    let c = sim.counters();
    assert!(c.customers.terminal_faults >= 10, "{:?}", c.customers);
    let money_moving = outcomes
        .iter()
        .filter(|o| o.kind != Kind::BalanceInquiry)
        .count();
    assert_eq!(truth.len(), money_moving);
    assert!(truth.iter().all(TruthRecord::notes_add_up));
    assert_eq!(
        truth.iter().map(|t| t.dispensed_minor).sum::<u64>(),
        c.dispensed_minor
    );
    assert_eq!(
        truth.iter().map(|t| t.deposited_minor).sum::<u64>(),
        c.deposited_minor
    );
    for i in 0..4 {
        assert_eq!(
            c.notes_left[i] + c.notes_dispensed[i] + c.notes_rejected[i],
            c.notes_loaded[i]
        );
    }
    let struck: Vec<_> = outcomes
        .iter()
        .filter_map(|o| o.terminal_fault.clone())
        .collect();
    let recorded: Vec<_> = truth.iter().filter_map(|t| t.fault.clone()).collect();
    assert_eq!(struck, recorded);
    let modes: std::collections::HashSet<_> = struck.iter().map(|f| f.mode()).collect();
    assert!(modes.len() >= 6, "{modes:?}");
    // Every withdrawal the host approved and the terminal acted on can be found by its TSN.
    for t in truth.iter().filter(|t| t.kind == Kind::Withdrawal) {
        if let Some(tsn) = t.tsn {
            assert_eq!(
                atm_sim::truth::dispensed_for_tsn(&truth, tsn),
                t.dispensed_minor
            );
        }
    }
}

#[tokio::test]
async fn the_binary_writes_the_truth_of_terminal_faults_to_a_file() {
    let p = profile("ncr-selfserv-basic");
    let host = FakeHost::bind(p.clone()).await;
    let addr = host.addr;
    spawn_auto_host(host);
    let file = std::env::temp_dir().join(format!(
        "atm-sim-truth-{}-{:?}.json",
        std::process::id(),
        std::time::SystemTime::now()
    ));
    let agent = addr.to_string();
    let path = file.to_string_lossy().into_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_atm-sim"))
            .args(["--agent", &agent, "--customers", "12", "--seed", "7"])
            .args(["--terminal-faults", "100"])
            .args([
                "--terminal-fault-modes",
                "e3,e5,device-fault,power-after-dispense",
            ])
            .args(["--truth-file", &path, "--json"])
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
    let written = std::fs::read(&file).expect("truth file");
    let _ = std::fs::remove_file(&file);
    let truth: Vec<TruthRecord> = serde_json::from_slice(&written).expect("truth records");
    assert_eq!(v["truth"], serde_json::to_value(&truth).unwrap());
    assert!(!truth.is_empty());
    assert!(truth
        .iter()
        .filter(|t| t.kind == Kind::Withdrawal)
        .all(|t| t.fault.is_some()));
    assert_eq!(
        truth.iter().map(|t| t.dispensed_minor).sum::<u64>(),
        v["counters"]["dispensed_minor"].as_u64().unwrap()
    );
}
