//! Fault drills (`--faults`): what breaks, when, and for how long. Each drill runs beside the
//! customers and returns once the customers are done (putting everything back first).

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
use ledger_sim::{FaultConfig, Faults};

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
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::None,
        Scenario::LedgerOutage,
        Scenario::AgentCrash,
        Scenario::SwitchCrash,
        Scenario::LinkFlap,
        Scenario::SlowLedger,
        Scenario::Garbage,
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
        }
    }
}

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
    pub agent_socket: std::path::PathBuf,
    /// How long an outage / cut / slow period lasts.
    pub outage: Duration,
    pub events: Arc<Mutex<Vec<String>>>,
    pub started: tokio::time::Instant,
}

impl DrillCtx {
    fn event(&self, what: String) {
        let line = format!("[{:5.1}s] {what}", self.started.elapsed().as_secs_f64());
        eprintln!("atm-lab: drill: {what}");
        self.events.lock().unwrap().push(line);
    }

    /// Waits until `fraction` of the customers are done; false when the run ended first.
    async fn at(&self, fraction: f64) -> bool {
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

    async fn restart_agent(&self) {
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

    async fn restart_switch(&self) {
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
        Scenario::Garbage => {
            let targets = [ctx.ndc_addr, ctx.switch_addr, ctx.ledger_addr];
            let mut sent = [0u32; 3];
            ctx.event(
                "sending garbage to the agent NDC port, the switch port and the ledger".into(),
            );
            while !ctx.finished.load(Ordering::SeqCst) {
                let i = rng.below(3) as usize;
                let payload = garbage(i, &mut rng);
                if let Ok(Ok(mut s)) =
                    tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(targets[i]))
                        .await
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
    }
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
