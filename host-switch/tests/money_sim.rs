//! A deterministic, seeded simulation of the switch's money path, in the spirit of TigerBeetle's
//! VOPR (issue 12): the switch's application (`Switch::handle`, `Switch::resume_pending`) over
//! in-memory fakes of its ports — a ledger that keeps real books and applies an operation and then
//! loses the answer, a journal that fails writes and crashes the switch between them — driven by
//! model terminals that behave as the agent's contract says, over a network that loses, delays
//! and duplicates messages. One seed decides everything; the invariants are checked after every
//! step (nothing posted twice, the books balance, legal journal transitions, no settled journal
//! state that contradicts the ledger) and at the end, once healed (the ledger's net effect per
//! transaction is what physically happened at the ATM, no hold left open, nothing left pending).
//!
//! - `cargo test -p host-switch --test money_sim` plays `SEEDS` seeds (override with
//!   `MONEY_SIM_SEEDS=N`, start elsewhere with `MONEY_SIM_FIRST_SEED=S`);
//! - `MONEY_SIM_SEED=123 cargo test -p host-switch --test money_sim -- --nocapture` replays one
//!   seed exactly, printing its step trace;
//! - `MONEY_SIM_BREAKER_HIDES_AMBIGUITY=1` (the ledger adapter before it kept a refused retry
//!   ambiguous), `MONEY_SIM_AGENT_96_IS_DECLINE=1` (the agent before it reversed on 96) and
//!   `MONEY_SIM_NO_PARTIAL_REVERSALS=1` (an agent that never advises a short dispense as a
//!   partial 0420) change the model; see `world::FaultPlan`.
//!
//! Layout: `money_sim/rng.rs` (splitmix64), `world.rs` (what outlives a switch process),
//! `ledger.rs` and `journal.rs` (the fakes), `agent.rs` (terminals and agent), `sim.rs` (the step
//! loop, the network, restarts), `checker.rs` (the invariants).

// The crate root sits beside its folder, so each module names its file.
#[macro_use]
#[path = "money_sim/world.rs"]
mod world;
#[path = "money_sim/agent.rs"]
mod agent;
#[path = "money_sim/checker.rs"]
mod checker;
#[path = "money_sim/journal.rs"]
mod journal;
#[path = "money_sim/ledger.rs"]
mod ledger;
#[path = "money_sim/rng.rs"]
mod rng;
#[path = "money_sim/sim.rs"]
mod sim;

use std::collections::BTreeMap;
use std::time::Instant;

use checker::Violation;

/// Seeds played by a plain `cargo test`: about 20 s in debug on two busy cores (65–110 seeds/s).
const SEEDS: u64 = 1500;

fn replay_command(seed: u64) -> String {
    format!("MONEY_SIM_SEED={seed} cargo test -p host-switch --test money_sim -- --nocapture")
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
    )
}

/// One seed, in a task of its own so that a panic inside the switch is reported with its seed.
async fn play(seed: u64, tracing: bool) -> Result<sim::Summary, Violation> {
    let outcome = tokio::spawn(sim::Sim::new(seed, tracing).run()).await;
    match outcome {
        Ok(result) => result,
        Err(e) => {
            let message = match e.try_into_panic() {
                Ok(payload) => payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic without a message".into()),
                Err(e) => e.to_string(),
            };
            Err(Violation {
                signature: "the simulation panicked".into(),
                detail: message,
            })
        }
    }
}

#[tokio::test]
async fn money_is_never_lost_or_posted_twice_under_faults() {
    if let Some(seed) = env_u64("MONEY_SIM_SEED") {
        match play(seed, true).await {
            Ok(summary) => println!("seed {seed}: all invariants hold ({summary:?})"),
            Err(v) => panic!(
                "seed {seed} broke an invariant: {}\n  {}\n  replay: {}",
                v.signature,
                v.detail,
                replay_command(seed)
            ),
        }
        return;
    }
    let first = env_u64("MONEY_SIM_FIRST_SEED").unwrap_or(0);
    let count = env_u64("MONEY_SIM_SEEDS").unwrap_or(SEEDS);
    let started = Instant::now();
    // The first failing seed per distinct defect, and how many seeds show it.
    let mut failures: BTreeMap<String, (u64, String, usize)> = BTreeMap::new();
    for seed in first..first + count {
        if let Err(v) = play(seed, false).await {
            failures.entry(v.signature).or_insert((seed, v.detail, 0)).2 += 1;
        }
    }
    let elapsed = started.elapsed();
    println!(
        "money_sim: {count} seeds in {:.1} s ({:.0} seeds/s)",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    if failures.is_empty() {
        return;
    }
    let mut report = format!(
        "{} of {count} seeds broke an invariant; the first seed per defect:\n",
        failures.values().map(|f| f.2).sum::<usize>()
    );
    for (signature, (seed, detail, seeds)) in &failures {
        report.push_str(&format!(
            "\n- {signature} ({seeds} seeds)\n  seed {seed}: {detail}\n  replay: {}\n",
            replay_command(*seed)
        ));
    }
    panic!("{report}");
}

/// The premise of replaying a seed: one seed, one world, whatever else runs on the machine.
#[tokio::test]
async fn a_seed_replays_exactly() {
    for seed in [3, 61, 739] {
        let first = play(seed, false)
            .await
            .map_err(|v| format!("{}: {}", v.signature, v.detail));
        let second = play(seed, false)
            .await
            .map_err(|v| format!("{}: {}", v.signature, v.detail));
        assert_eq!(first, second, "seed {seed} played twice");
    }
}
