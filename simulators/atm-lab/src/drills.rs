//! Fault drills (`--faults`): what breaks, when, and for how long. Each drill runs beside the
//! customers and returns once the customers are done (putting everything back first).
//!
//! Most ledger drills break the ledger *before* the books change (down, slow). `ambiguous-ledger`
//! breaks it *after*: the ledger applies a hold, capture, void or credit and then loses the
//! answer — the connection closed with no response, a 503 after commit, the answer later than the
//! switch's ledger timeout — one mode after the other, so the switch must find out by idempotency
//! key what happened, and settle every hold it placed.
//!
//! `bank-host-outage` breaks the other bank's host: it applies two requests and loses their
//! answers, then goes silent (reads, applies nothing, answers nothing) until the switch's breaker
//! towards it has opened and at least `--outage` has passed; the switch answers 91 and reverses
//! at the host whatever may have been approved there ([`bank_host_outage`]).
//!
//! `terminal-faults` breaks the terminals instead: [`TERMINAL_FAULT_PERCENT`] of the withdrawals
//! meet a fault that leaves the agent unsure what the customer got (`E3`, `E5`, counts missing,
//! another device's fault, no status, the power lost at any step); the settle stage then plays
//! the technician ([`crate::technician`]). `chaos` runs a seeded mix of all of them
//! ([`crate::chaos`]).

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use testkit::relay::Relay;
use testkit::wait::wait_listening;

use crate::children::{wait_agent, ChildRole};
use atm_sim::rng::XorShift64;
use bankhost_sim::Outage;
use ledger_sim::{FaultConfig, Faults, LostAnswer, LostAnswers};

/// The fault scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    None,
    LedgerOutage,
    AgentCrash,
    SwitchCrash,
    LinkFlap,
    SlowLedger,
    Garbage,
    AmbiguousLedger,
    TerminalFaults,
    BankHostOutage,
    Chaos,
}

impl Scenario {
    pub const ALL: [Scenario; 11] = [
        Scenario::None,
        Scenario::LedgerOutage,
        Scenario::AgentCrash,
        Scenario::SwitchCrash,
        Scenario::LinkFlap,
        Scenario::SlowLedger,
        Scenario::Garbage,
        Scenario::AmbiguousLedger,
        Scenario::TerminalFaults,
        Scenario::BankHostOutage,
        Scenario::Chaos,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Scenario::None => "none",
            Scenario::LedgerOutage => "ledger-outage",
            Scenario::AgentCrash => "agent-crash",
            Scenario::SwitchCrash => "switch-crash",
            Scenario::LinkFlap => "link-flap",
            Scenario::SlowLedger => "slow-ledger",
            Scenario::Garbage => "garbage",
            Scenario::AmbiguousLedger => "ambiguous-ledger",
            Scenario::TerminalFaults => "terminal-faults",
            Scenario::BankHostOutage => "bank-host-outage",
            Scenario::Chaos => "chaos",
        }
    }

    /// Whether the terminals draw terminal faults at all in this scenario (for `chaos`, only
    /// while a window of them is open: [`DrillCtx::terminal_faults_on`]).
    pub fn draws_terminal_faults(self) -> bool {
        matches!(self, Scenario::TerminalFaults | Scenario::Chaos)
    }
}

/// Share of withdrawals that meet a terminal fault while terminal faults are on.
pub const TERMINAL_FAULT_PERCENT: u8 = 25;

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Scenario::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Scenario::ALL.iter().map(|x| x.name()).collect();
                format!("unknown fault scenario {s:?}; one of {}", names.join(", "))
            })
    }
}

/// What a drill may touch.
pub struct DrillCtx {
    pub scenario: Scenario,
    pub seed: u64,
    pub total: usize,
    pub done: Arc<AtomicUsize>,
    pub unavailable: Arc<AtomicUsize>,
    pub finished: Arc<AtomicBool>,
    pub faults: Faults,
    pub switch: Arc<Mutex<ChildRole>>,
    pub agent: Arc<Mutex<ChildRole>>,
    pub relay: Arc<Relay>,
    pub switch_addr: SocketAddr,
    pub ndc_addr: SocketAddr,
    pub ledger_addr: SocketAddr,
    /// The switch's ledger call timeout (its configuration): a late answer comes after it.
    pub switch_ledger_timeout_ms: u64,
    pub agent_socket: std::path::PathBuf,
    /// The switch's control socket (`switchctl bank-hosts`: its breaker towards the bank host).
    pub switch_socket: std::path::PathBuf,
    /// The other bank's host, when the run has one.
    pub bank_host: Option<bankhost_sim::BankHostHandle>,
    /// How long an outage / cut / slow period lasts.
    pub outage: Duration,
    pub events: Arc<Mutex<Vec<String>>>,
    pub started: tokio::time::Instant,
    /// While true, customers who drew a terminal fault meet it (the traffic stage strips it
    /// otherwise).
    pub terminal_faults_on: Arc<AtomicBool>,
}

impl DrillCtx {
    pub(crate) fn event(&self, what: String) {
        let line = format!("[{:5.1}s] {what}", self.started.elapsed().as_secs_f64());
        eprintln!("atm-lab: drill: {what}");
        self.events.lock().unwrap().push(line);
    }

    /// Waits until `fraction` of the customers are done; false when the run ended first.
    pub(crate) async fn at(&self, fraction: f64) -> bool {
        let target = ((self.total as f64) * fraction).ceil() as usize;
        loop {
            if self.finished.load(Ordering::SeqCst) {
                return false;
            }
            if self.done.load(Ordering::SeqCst) >= target {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until, since `before`, the ledger lost the answer of a hold, a capture and a
    /// credit that took effect; false when the run ended first.
    async fn until_lost_answers(&self, before: &LostAnswers) -> bool {
        loop {
            let lost = self.faults.lost_answers().since(before);
            if lost.holds > 0 && lost.captures > 0 && lost.credits > 0 {
                return true;
            }
            if self.finished.load(Ordering::SeqCst) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until, since the storm began, a hold or a credit took effect with its answer lost
    /// and [`STORM_REFUSALS`] customers were answered host-unavailable (the switch's retries ran
    /// out, then its breaker opened: it opens after 10 calls at the earliest, mid-retry for
    /// some); false when the run ended first.
    async fn until_storm_refuses(&self, before: &LostAnswers, unavailable_before: usize) -> bool {
        loop {
            let lost = self.faults.lost_answers().since(before);
            let refused =
                self.unavailable.load(Ordering::SeqCst) >= unavailable_before + STORM_REFUSALS;
            if refused && lost.holds + lost.credits > 0 {
                return true;
            }
            if self.finished.load(Ordering::SeqCst) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sleeps for `d`, or less when the customers end first; false then.
    pub(crate) async fn hold(&self, d: Duration) -> bool {
        let until = tokio::time::Instant::now() + d;
        while tokio::time::Instant::now() < until {
            if self.finished.load(Ordering::SeqCst) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20).min(d)).await;
        }
        true
    }

    pub(crate) async fn restart_agent(&self) {
        let r = self.agent.lock().unwrap().restart();
        if let Err(e) = r {
            self.event(format!("agent restart failed: {e}"));
            return;
        }
        let (up, _) = wait_agent(&self.agent_socket, Duration::from_secs(30), |s| {
            s["uplink"] == "up"
        })
        .await;
        self.event(format!(
            "agent restarted{}",
            if up {
                ", uplink up"
            } else {
                " (uplink not up yet)"
            }
        ));
    }

    pub(crate) async fn restart_switch(&self) {
        let r = self.switch.lock().unwrap().restart();
        if let Err(e) = r {
            self.event(format!("switch restart failed: {e}"));
            return;
        }
        let up = wait_listening(self.switch_addr, Duration::from_secs(30)).await;
        self.event(format!(
            "switch restarted{}",
            if up {
                ", listening"
            } else {
                " (not listening yet)"
            }
        ));
    }
}

pub async fn run(ctx: DrillCtx) {
    let mut rng = XorShift64::new(ctx.seed ^ 0x5eed_d811);
    match ctx.scenario {
        Scenario::None => {}
        Scenario::LedgerOutage => {
            if ctx.at(0.3).await {
                let _ = ctx.faults.set(FaultConfig {
                    down: true,
                    ..FaultConfig::default()
                });
                ctx.event(format!("ledger DOWN for {} ms", ctx.outage.as_millis()));
                tokio::time::sleep(ctx.outage).await;
                ctx.faults.clear();
                ctx.event("ledger back up".into());
            }
        }
        Scenario::AgentCrash | Scenario::SwitchCrash => {
            for f in [0.2, 0.45, 0.7] {
                let jitter = rng.below(80) as f64 / 1000.0;
                if !ctx.at(f + jitter).await {
                    break;
                }
                if ctx.scenario == Scenario::AgentCrash {
                    ctx.agent.lock().unwrap().kill9();
                    ctx.event("agent SIGKILLed".into());
                    tokio::time::sleep(Duration::from_millis(200 + rng.below(600))).await;
                    ctx.restart_agent().await;
                } else {
                    ctx.switch.lock().unwrap().kill9();
                    ctx.event("switch SIGKILLed".into());
                    tokio::time::sleep(Duration::from_millis(300 + rng.below(900))).await;
                    ctx.restart_switch().await;
                }
            }
        }
        Scenario::LinkFlap => {
            for f in [0.15, 0.3, 0.45, 0.6, 0.75] {
                if !ctx.at(f).await {
                    break;
                }
                ctx.relay.cut();
                let ms = ctx.outage.as_millis() as u64 / 2
                    + rng.below(ctx.outage.as_millis() as u64 / 2 + 1);
                ctx.event(format!("agent-switch link CUT for {ms} ms"));
                tokio::time::sleep(Duration::from_millis(ms)).await;
                ctx.relay.restore();
                ctx.event("link restored".into());
            }
        }
        Scenario::SlowLedger => {
            if ctx.at(0.25).await {
                let before = ctx.unavailable.load(Ordering::SeqCst);
                let _ = ctx.faults.set(FaultConfig {
                    latency_ms: 2500,
                    ..FaultConfig::default()
                });
                ctx.event("ledger SLOW: 2500 ms per call (slow-call threshold 2000 ms)".into());
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                let mut opened = false;
                while tokio::time::Instant::now() < deadline && !ctx.finished.load(Ordering::SeqCst)
                {
                    if ctx.unavailable.load(Ordering::SeqCst) > before {
                        opened = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                ctx.event(if opened {
                    "breaker open: customers answered host-unavailable at once".into()
                } else {
                    "no host-unavailable seen while slow".into()
                });
                tokio::time::sleep(Duration::from_millis(500)).await;
                ctx.faults.clear();
                ctx.event("ledger latency removed".into());
            }
        }
        Scenario::AmbiguousLedger => ambiguous_ledger(&ctx).await,
        Scenario::BankHostOutage => {
            if ctx.at(0.3).await {
                bank_host_outage(&ctx, ctx.outage).await;
            }
        }
        Scenario::Garbage => send_garbage(&ctx, &mut rng, None).await,
        Scenario::TerminalFaults => {
            ctx.event(format!(
                "terminals: {TERMINAL_FAULT_PERCENT} % of withdrawals meet a terminal fault (every mode); the lab settles what is left in doubt as the technician"
            ));
        }
        Scenario::Chaos => crate::chaos::run(&ctx).await,
    }
}

/// Answers the bank host loses (after applying the request) just before it goes silent.
pub const BANK_LOST_ANSWERS: u32 = 2;
/// Longest wait for those answers to be lost, and longest the host stays silent waiting for the
/// switch's breaker to open.
const BANK_LOST_ANSWERS_PATIENCE: Duration = Duration::from_secs(10);
const BANK_SILENCE_MAX: Duration = Duration::from_secs(20);

/// `bank-host-outage` (and chaos's episode of it): the bank host applies the next
/// [`BANK_LOST_ANSWERS`] requests for the bank's cards and loses their answers (an approval the
/// switch never hears of), then goes [`Outage::Silent`] for at least `length` and until the
/// switch's breaker towards it is seen open (at most [`BANK_SILENCE_MAX`], or until the
/// customers end), then answers again. Every request meanwhile times out: the switch answers the
/// terminal 91 and reverses at the host (0420, repeated as 0421 until acknowledged).
pub(crate) async fn bank_host_outage(ctx: &DrillCtx, length: Duration) {
    let Some(host) = &ctx.bank_host else {
        ctx.event("bank-host-outage: no bank host in this run (--bank-share 0)".into());
        return;
    };
    let dropped_before = host.stats().answers_dropped;
    host.drop_next_answers(Some(crate::bank::BANK_ROUTE_PREFIX), BANK_LOST_ANSWERS);
    ctx.event(format!(
        "bank host applies the next {BANK_LOST_ANSWERS} requests and loses their answers"
    ));
    let until = tokio::time::Instant::now() + BANK_LOST_ANSWERS_PATIENCE;
    while host.stats().answers_dropped < dropped_before + u64::from(BANK_LOST_ANSWERS)
        && tokio::time::Instant::now() < until
        && !ctx.finished.load(Ordering::SeqCst)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dropped = host.stats().answers_dropped - dropped_before;
    // Those not lost by now are not lost later, out of the drill's sight.
    host.drop_next_answers(Some(crate::bank::BANK_ROUTE_PREFIX), 0);
    host.set_outage(Outage::Silent);
    ctx.event(format!(
        "bank host SILENT ({dropped} answers lost before): reads, applies nothing, answers nothing"
    ));
    let silent_since = tokio::time::Instant::now();
    let mut opened = false;
    loop {
        if !opened && crate::bank::breaker_open(&ctx.switch_socket).await {
            opened = true;
            ctx.event("the switch's breaker towards the bank host is open".into());
        }
        let elapsed = silent_since.elapsed();
        if (elapsed >= length && (opened || elapsed >= BANK_SILENCE_MAX))
            || ctx.finished.load(Ordering::SeqCst)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    host.set_outage(Outage::None);
    ctx.event(format!(
        "bank host answering again after {} ms of silence{}",
        silent_since.elapsed().as_millis(),
        if opened {
            ""
        } else {
            "; the switch's breaker was not seen open"
        }
    ));
}

/// Garbage to the agent's NDC port, the switch's port and the ledger, until the customers end
/// or `until`.
pub(crate) async fn send_garbage(
    ctx: &DrillCtx,
    rng: &mut XorShift64,
    until: Option<tokio::time::Instant>,
) {
    let targets = [ctx.ndc_addr, ctx.switch_addr, ctx.ledger_addr];
    let mut sent = [0u32; 3];
    ctx.event("sending garbage to the agent NDC port, the switch port and the ledger".into());
    while !ctx.finished.load(Ordering::SeqCst)
        && until.is_none_or(|t| tokio::time::Instant::now() < t)
    {
        let i = rng.below(3) as usize;
        let payload = garbage(i, rng);
        if let Ok(Ok(mut s)) =
            tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(targets[i])).await
        {
            let _ = s.write_all(&payload).await;
            let mut buf = [0u8; 256];
            let _ = tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await;
            sent[i] += 1;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    ctx.event(format!(
        "garbage connections: agent NDC {}, switch {}, ledger {}",
        sent[0], sent[1], sent[2]
    ));
}

/// Share of ledger writes whose answer `ambiguous-ledger` loses while a mode is on: often enough
/// to hit every kind of write within a few dozen customers, seldom enough that the switch's
/// breaker (50 % failures over 20 calls) is not open most of the time, refusing every customer.
pub const AMBIGUOUS_RATE: f64 = 0.25;
/// Customers answered host-unavailable before the storm of lost answers ends.
pub const STORM_REFUSALS: usize = 5;
/// How much later than the switch's ledger timeout a late answer comes.
pub const LATE_BEYOND_TIMEOUT_MS: u64 = 1_000;

/// `ambiguous-ledger`: once 10 % of the customers are done, the ledger applies every write and
/// loses [`AMBIGUOUS_RATE`] of the answers, one mode after the other — dropped connections, 503s
/// after commit, answers [`LATE_BEYOND_TIMEOUT_MS`] past the switch's ledger timeout. A mode
/// stays on until it has lost the answer of at least one hold, one capture and one credit that
/// took effect (a breaker open for a while only makes it last longer), or the customers end.
/// Then a storm: every answer lost (503 after commit) until the switch answered
/// [`STORM_REFUSALS`] customers host-unavailable — its retries failed, its breaker opened in the
/// middle of them — with a hold or a credit applied meanwhile. Each phase ends with what it lost, by operation; then the
/// faults are cleared and the switch's resumer is left to settle (the settle stage waits for it).
async fn ambiguous_ledger(ctx: &DrillCtx) {
    let late = LostAnswer::Late {
        ms: ctx.switch_ledger_timeout_ms + LATE_BEYOND_TIMEOUT_MS,
    };
    let phases = [
        (
            AMBIGUOUS_RATE,
            LostAnswer::Drop,
            "connection closed with no response",
        ),
        (AMBIGUOUS_RATE, LostAnswer::ServerError, "503 answer_lost"),
        (
            AMBIGUOUS_RATE,
            late,
            "answer later than the switch's ledger timeout",
        ),
        (1.0, LostAnswer::ServerError, "storm: 503 answer_lost"),
    ];
    if !ctx.at(0.10).await {
        return;
    }
    for (rate, how, what) in phases {
        let before = ctx.faults.lost_answers();
        let unavailable_before = ctx.unavailable.load(Ordering::SeqCst);
        let set = ctx.faults.set(FaultConfig {
            lost_answer_rate: rate,
            lost_answer: how,
            ..FaultConfig::default()
        });
        if let Err(e) = set {
            ctx.event(format!("cannot set lost answers {how:?}: {e}"));
            break;
        }
        ctx.event(format!(
            "ledger applies writes and loses {:.0} % of the answers: {} ({what})",
            rate * 100.0,
            how.mode(),
        ));
        let storm = rate >= 1.0;
        let hit = if storm {
            ctx.until_storm_refuses(&before, unavailable_before).await
        } else {
            ctx.until_lost_answers(&before).await
        };
        let lost = ctx.faults.lost_answers().since(&before);
        ctx.event(format!(
            "{}{}: answers lost after commit: holds {}, captures {}, voids {}, credits {}, debits {} ({} lost in all, refusals and replays included){}",
            if storm { "storm " } else { "" },
            how.mode(),
            lost.holds,
            lost.captures,
            lost.voids,
            lost.credits,
            lost.debits,
            lost.total,
            if hit { "" } else { "; the customers ended first" }
        ));
        if !hit {
            break;
        }
    }
    ctx.faults.clear();
    ctx.event("answers no longer lost; the switch's resumer settles what is pending".into());
}

/// Random bytes or a malformed frame for target 0 (NDC), 1 (ISO 8583 over TLS), 2 (HTTP).
fn garbage(target: usize, rng: &mut XorShift64) -> Vec<u8> {
    let random = |rng: &mut XorShift64, n: usize| -> Vec<u8> {
        (0..n).map(|_| rng.next_u64() as u8).collect()
    };
    let n = 1 + rng.below(300) as usize;
    match (target, rng.below(4)) {
        (_, 0) => random(rng, n),
        // NDC: a length that lies, an unknown class, a request from a LUNO nobody has.
        (0, 1) => vec![0xff, 0xff, b'1', b'1'],
        (0, 2) => {
            let body = b"11\x1c999\x1c\x1c\x1c11;4761739000000000=3012?\x1c\x1cAA\x1c00000100";
            let mut v = vec![0, body.len() as u8];
            v.extend_from_slice(body);
            v
        }
        (0, _) => b"\x00\x05ZZ\x1c\x1c\x1c".to_vec(),
        // Switch: a TLS record header with nonsense, a plain ISO 8583 frame.
        (1, 1) => {
            let mut v = vec![0x16, 0x03, 0x01, 0x00, 0x40];
            v.extend(random(rng, 64));
            v
        }
        (1, _) => b"\x00\x140100\xff\xff\xff\xff\xff\xff\xff\xff1234".to_vec(),
        // Ledger: broken requests that must not post anything.
        (_, 1) => b"POST /v1/holds HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{{{{{{{".to_vec(),
        (_, 2) => b"GET /v1/movements?after=%ff%00&limit=-1 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        _ => b"PUT /v1/\x00\x01 HTTP/9.9\r\nContent-Length: 99999999999\r\n\r\n".to_vec(),
    }
}
