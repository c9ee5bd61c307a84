//! `--faults chaos`: a seeded mix of every drill, one after another or at the same time.
//!
//! [`plan`] (pure) draws from the seed which drills run (each of the eight with a chance of
//! 3 in 4, at least [`EPISODES_MIN`]), when (a share of the customers done) and for how long (a
//! multiple of `--outage`); then, when the run has a bank host, a bank host outage with the same
//! chance, from a draw of its own (so a seed keeps the plan it had for the eight). The same seed
//! gives the same plan; what the processes then do in it is as timing-dependent as any other
//! drill.
//!
//! Drills overlap where they do not fight over one knob. Each [`Lane`] owns one: the ledger's
//! fault configuration (an outage, a slow ledger and lost answers each replace it), the child
//! processes and the relay (an agent or switch crash, a link cut), the garbage sender, the
//! terminals' fault switch, and the bank host's outage. Episodes of one lane run one after the
//! other in their drawn order (a later one waits for the earlier to end); the lanes run side by
//! side, so a switch crash
//! may come in the middle of lost ledger answers while the terminals report `E3`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use atm_sim::rng::XorShift64;
use ledger_sim::{FaultConfig, LostAnswer};

use crate::drills::{
    self, DrillCtx, AMBIGUOUS_RATE, LATE_BEYOND_TIMEOUT_MS, TERMINAL_FAULT_PERCENT,
};

/// The drills chaos mixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    LedgerOutage,
    SlowLedger,
    AmbiguousLedger,
    AgentCrash,
    SwitchCrash,
    LinkFlap,
    Garbage,
    TerminalFaults,
    BankHostOutage,
}

/// What a drill touches; drills of one lane never overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The ledger's fault configuration.
    Ledger,
    /// The switch and agent processes and the relay between them.
    Processes,
    /// Garbage connections to every port.
    Wire,
    /// Whether the terminals meet the faults their customers drew.
    Terminals,
    /// The bank host's outage switch.
    Bank,
}

impl Fault {
    pub const ALL: [Fault; 8] = [
        Fault::LedgerOutage,
        Fault::SlowLedger,
        Fault::AmbiguousLedger,
        Fault::AgentCrash,
        Fault::SwitchCrash,
        Fault::LinkFlap,
        Fault::Garbage,
        Fault::TerminalFaults,
    ];

    /// Every drill a run with a bank host can draw.
    pub const WITH_BANK: [Fault; 9] = [
        Fault::LedgerOutage,
        Fault::SlowLedger,
        Fault::AmbiguousLedger,
        Fault::AgentCrash,
        Fault::SwitchCrash,
        Fault::LinkFlap,
        Fault::Garbage,
        Fault::TerminalFaults,
        Fault::BankHostOutage,
    ];

    /// The drill's `--faults` name.
    pub fn name(self) -> &'static str {
        match self {
            Fault::LedgerOutage => "ledger-outage",
            Fault::SlowLedger => "slow-ledger",
            Fault::AmbiguousLedger => "ambiguous-ledger",
            Fault::AgentCrash => "agent-crash",
            Fault::SwitchCrash => "switch-crash",
            Fault::LinkFlap => "link-flap",
            Fault::Garbage => "garbage",
            Fault::TerminalFaults => "terminal-faults",
            Fault::BankHostOutage => "bank-host-outage",
        }
    }

    pub fn lane(self) -> Lane {
        match self {
            Fault::LedgerOutage | Fault::SlowLedger | Fault::AmbiguousLedger => Lane::Ledger,
            Fault::AgentCrash | Fault::SwitchCrash | Fault::LinkFlap => Lane::Processes,
            Fault::Garbage => Lane::Wire,
            Fault::TerminalFaults => Lane::Terminals,
            Fault::BankHostOutage => Lane::Bank,
        }
    }
}

/// One drill in the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub fault: Fault,
    /// Starts once this share of the customers is done.
    pub start: f64,
    /// How long it lasts (a crash: how long the process stays down).
    pub length_ms: u64,
    /// `terminal-faults`: lasts until this much more of the customers is done.
    pub span: f64,
    /// `ambiguous-ledger`: which way answers are lost (0 drop, 1 503, 2 late).
    pub variant: u64,
}

impl Episode {
    pub fn describe(&self) -> String {
        let at = format!("at {:.0} %", self.start * 100.0);
        match self.fault {
            Fault::TerminalFaults => format!(
                "{} {at} for {:.0} % of the customers",
                self.fault.name(),
                self.span * 100.0
            ),
            Fault::AmbiguousLedger => format!(
                "{} ({}) {at} for {} ms",
                self.fault.name(),
                ["drop", "server_error", "late"][self.variant as usize % 3],
                self.length_ms
            ),
            _ => format!("{} {at} for {} ms", self.fault.name(), self.length_ms),
        }
    }
}

/// Fewest drills one chaos run mixes.
pub const EPISODES_MIN: usize = 3;

/// The seed's plan, in start order; `bank`: the run has a bank host.
pub fn plan(seed: u64, outage: Duration, bank: bool) -> Vec<Episode> {
    let mut rng = XorShift64::new(spread(seed));
    let outage_ms = outage.as_millis().max(100) as u64;
    let mut chosen: Vec<Fault> = Fault::ALL
        .into_iter()
        .filter(|_| rng.below(4) < 3)
        .collect();
    while chosen.len() < EPISODES_MIN {
        let f = Fault::ALL[rng.below(Fault::ALL.len() as u64) as usize];
        if !chosen.contains(&f) {
            chosen.push(f);
        }
    }
    let mut episodes: Vec<Episode> = chosen
        .into_iter()
        .map(|fault| {
            let start = 0.05 + rng.below(66) as f64 / 100.0;
            // A multiple of --outage: 0.5 to 1.5 for outages and cuts; lost answers and
            // garbage need longer to meet enough traffic.
            let (lo, hi) = match fault {
                Fault::AmbiguousLedger | Fault::Garbage => (150, 300),
                Fault::AgentCrash | Fault::SwitchCrash => (10, 40),
                _ => (50, 150),
            };
            Episode {
                fault,
                start,
                length_ms: outage_ms * (lo + rng.below(hi - lo + 1)) / 100,
                span: 0.2 + rng.below(21) as f64 / 100.0,
                variant: rng.below(3),
            }
        })
        .collect();
    if bank {
        // Its own draw: the eight others' plan does not change with it.
        let mut rng = XorShift64::new(spread(seed ^ 0xb4_4b));
        if rng.below(4) < 3 {
            episodes.push(Episode {
                fault: Fault::BankHostOutage,
                start: 0.05 + rng.below(66) as f64 / 100.0,
                length_ms: outage_ms * (50 + rng.below(101)) / 100,
                span: 0.0,
                variant: 0,
            });
        }
    }
    episodes.sort_by(|a, b| a.start.total_cmp(&b.start));
    episodes
}

/// SplitMix64 of the seed: neighbouring seeds (1, 2, 3) give unrelated plans (xorshift's first
/// draws from close seeds are close).
fn spread(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How long a terminal waits after a customer turned away host-unavailable before the next one,
/// in chaos: without it an open breaker (5 s) turns away the whole run's customers in a second or
/// two and the drills planned for later never meet traffic.
pub const AFTER_UNAVAILABLE_PAUSE: Duration = Duration::from_millis(300);

/// Runs the seed's plan beside the customers; returns when every lane is done (the customers
/// ending cuts what is still running short).
pub async fn run(ctx: &DrillCtx) {
    let episodes = plan(ctx.seed, ctx.outage, ctx.bank_host.is_some());
    let names: Vec<String> = episodes.iter().map(Episode::describe).collect();
    ctx.event(format!("chaos, seed {}: {}", ctx.seed, names.join("; ")));
    let lane = |l: Lane| -> Vec<Episode> {
        episodes
            .iter()
            .filter(|e| e.fault.lane() == l)
            .cloned()
            .collect()
    };
    tokio::join!(
        run_lane(ctx, lane(Lane::Ledger)),
        run_lane(ctx, lane(Lane::Processes)),
        run_lane(ctx, lane(Lane::Wire)),
        run_lane(ctx, lane(Lane::Terminals)),
        run_lane(ctx, lane(Lane::Bank)),
    );
    ctx.faults.clear();
    ctx.terminal_faults_on.store(false, Ordering::SeqCst);
}

/// A lane's episodes in order; those the customers did not last for are named as not reached.
async fn run_lane(ctx: &DrillCtx, episodes: Vec<Episode>) {
    let mut ended = false;
    for e in episodes {
        ended = ended || !ctx.at(e.start).await;
        if ended {
            ctx.event(format!(
                "chaos: {} not reached: the customers ended first",
                e.describe()
            ));
            continue;
        }
        episode(ctx, &e).await;
    }
}

async fn episode(ctx: &DrillCtx, e: &Episode) {
    let length = Duration::from_millis(e.length_ms);
    let mut rng = XorShift64::new(ctx.seed ^ e.length_ms ^ (e.start * 1e6) as u64);
    match e.fault {
        Fault::LedgerOutage => {
            ledger_fault(
                ctx,
                e,
                FaultConfig {
                    down: true,
                    ..FaultConfig::default()
                },
            )
            .await
        }
        Fault::SlowLedger => {
            ledger_fault(
                ctx,
                e,
                FaultConfig {
                    latency_ms: 2500,
                    ..FaultConfig::default()
                },
            )
            .await
        }
        Fault::AmbiguousLedger => {
            let how = match e.variant % 3 {
                0 => LostAnswer::Drop,
                1 => LostAnswer::ServerError,
                _ => LostAnswer::Late {
                    ms: ctx.switch_ledger_timeout_ms + LATE_BEYOND_TIMEOUT_MS,
                },
            };
            let before = ctx.faults.lost_answers();
            ledger_fault(
                ctx,
                e,
                FaultConfig {
                    lost_answer_rate: AMBIGUOUS_RATE,
                    lost_answer: how,
                    ..FaultConfig::default()
                },
            )
            .await;
            let lost = ctx.faults.lost_answers().since(&before);
            ctx.event(format!(
                "chaos: answers lost after commit: holds {}, captures {}, voids {}, credits {}, debits {}",
                lost.holds, lost.captures, lost.voids, lost.credits, lost.debits
            ));
        }
        Fault::AgentCrash => {
            ctx.agent.lock().unwrap().kill9();
            ctx.event(format!("chaos: agent SIGKILLed for {} ms", e.length_ms));
            tokio::time::sleep(length).await;
            ctx.restart_agent().await;
        }
        Fault::SwitchCrash => {
            ctx.switch.lock().unwrap().kill9();
            ctx.event(format!("chaos: switch SIGKILLed for {} ms", e.length_ms));
            tokio::time::sleep(length).await;
            ctx.restart_switch().await;
        }
        Fault::LinkFlap => {
            ctx.relay.cut();
            ctx.event(format!(
                "chaos: agent-switch link CUT for {} ms",
                e.length_ms
            ));
            ctx.hold(length).await;
            ctx.relay.restore();
            ctx.event("chaos: link restored".into());
        }
        Fault::Garbage => {
            drills::send_garbage(ctx, &mut rng, Some(tokio::time::Instant::now() + length)).await
        }
        Fault::BankHostOutage => {
            ctx.event(format!("chaos: {}", e.describe()));
            drills::bank_host_outage(ctx, length).await
        }
        Fault::TerminalFaults => {
            ctx.terminal_faults_on.store(true, Ordering::SeqCst);
            ctx.event(format!(
                "chaos: terminals: {TERMINAL_FAULT_PERCENT} % of withdrawals meet a terminal fault"
            ));
            let ended = !ctx.at((e.start + e.span).min(1.0)).await;
            ctx.terminal_faults_on.store(false, Ordering::SeqCst);
            ctx.event(format!(
                "chaos: terminal faults off{}",
                if ended { " (the customers ended)" } else { "" }
            ));
        }
    }
}

/// Sets the ledger's faults for the episode's length, then clears them.
async fn ledger_fault(ctx: &DrillCtx, e: &Episode, config: FaultConfig) {
    if let Err(err) = ctx.faults.set(config) {
        ctx.event(format!("chaos: cannot set the ledger's faults: {err}"));
        return;
    }
    ctx.event(format!("chaos: {}", e.describe()));
    ctx.hold(Duration::from_millis(e.length_ms)).await;
    ctx.faults.clear();
    ctx.event(format!("chaos: {} over", e.fault.name()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_plan_of_at_least_three_distinct_drills_in_start_order() {
        let outage = Duration::from_secs(4);
        let mut seen = std::collections::BTreeSet::new();
        for seed in 1..=50 {
            let p = plan(seed, outage, true);
            assert_eq!(p, plan(seed, outage, true), "seed {seed} replays");
            let without: Vec<Episode> = p
                .iter()
                .filter(|e| e.fault != Fault::BankHostOutage)
                .cloned()
                .collect();
            assert_eq!(
                plan(seed, outage, false),
                without,
                "seed {seed}: the bank's draw leaves the others' plan alone"
            );
            assert!(p.len() >= EPISODES_MIN, "seed {seed}: {p:?}");
            assert!(p.windows(2).all(|w| w[0].start <= w[1].start));
            let distinct: std::collections::BTreeSet<_> =
                p.iter().map(|e| e.fault.name()).collect();
            assert_eq!(distinct.len(), p.len(), "no drill twice: {p:?}");
            for e in &p {
                assert!((0.05..=0.71).contains(&e.start), "{e:?}");
                assert!(e.length_ms >= 400 && e.length_ms <= 12_000, "{e:?}");
                seen.insert(e.fault.name());
            }
        }
        assert_eq!(
            seen.len(),
            Fault::WITH_BANK.len(),
            "every drill is drawn by some seed"
        );
        assert_ne!(plan(1, outage, true), plan(2, outage, true));
        let variants: std::collections::BTreeSet<u64> = (1..=50)
            .flat_map(|seed| plan(seed, outage, true))
            .filter(|e| e.fault == Fault::AmbiguousLedger)
            .map(|e| e.variant)
            .collect();
        assert_eq!(variants.len(), 3, "every way of losing answers is drawn");
    }
}
