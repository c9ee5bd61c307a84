//! The second stage of a run: random customers on every terminal with the fault drill beside
//! them, a progress line per second, then everything put back (ledger faults cleared, relay
//! restored, crashed children restarted) and the PIN drill on the first terminal.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atm_sim::rng::XorShift64;
use atm_sim::{AtmSim, Behaviour, Card, Customer, FaultMode, Mix, Outcome, RandomCustomers};
use testkit::terminals::terminal_id;
use testkit::wait::wait_listening;
use tokio::time::Instant;

use crate::children;
use crate::drills;
use crate::report::Record;
use crate::setup::RunningLab;
use crate::{pin_drill, LabError, LabOptions, RICH_CARDS, WRONG_PIN_PERCENT};

/// What the traffic stage leaves for settling.
pub struct Traffic {
    /// One record per customer, PIN drill included.
    pub records: Vec<Record>,
    /// How long the customers took (the PIN drill not included).
    pub elapsed_s: f64,
    /// What the drills did, in order.
    pub drill_events: Vec<String>,
    /// `None` without PIN security.
    pub pin_drill_ok: Option<bool>,
}

/// Runs the customers and the drill, puts everything back, runs the PIN drill.
pub async fn run(opts: &LabOptions, lab: &mut RunningLab) -> Result<Traffic, LabError> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let (shared, elapsed_s) = customers_and_drill(opts, lab, &events).await?;
    put_back(lab).await;
    let mut pin_drill_ok = None;
    if let (true, Some(atm)) = (lab.switch_pin.is_some(), lab.atms.first_mut()) {
        let card = Card::new(
            lab.cards[RICH_CARDS + 1].clone(),
            lab.pins[RICH_CARDS + 1].clone(),
        );
        let (records, ok) =
            pin_drill::run(atm, &terminal_id(0), &card, &lab.switch_socket, &events).await;
        shared.records.lock().unwrap().extend(records);
        pin_drill_ok = Some(ok);
    }
    let records = shared.records.lock().unwrap().clone();
    let drill_events = events.lock().unwrap().clone();
    Ok(Traffic {
        records,
        elapsed_s,
        drill_events,
        pin_drill_ok,
    })
}

/// The random customers on every terminal, the fault drill beside them and the progress
/// lines; returns once every terminal is done, with the customers' time.
async fn customers_and_drill(
    opts: &LabOptions,
    lab: &mut RunningLab,
    events: &Arc<Mutex<Vec<String>>>,
) -> Result<(Arc<Shared>, f64), LabError> {
    let mut mix = Mix::for_profile(&lab.profile).with_faults(10);
    if opts.pins {
        mix = mix.with_wrong_pins(WRONG_PIN_PERCENT);
    }
    if opts.scenario.draws_terminal_faults() {
        mix = mix.with_terminal_faults(drills::TERMINAL_FAULT_PERCENT, FaultMode::ALL.to_vec());
    }
    // On from the start for terminal-faults; chaos opens and closes windows of them.
    let terminal_faults_on = Arc::new(AtomicBool::new(
        opts.scenario == drills::Scenario::TerminalFaults,
    ));
    let random_cards: Vec<Card> = lab
        .cards
        .iter()
        .zip(&lab.pins)
        .take(RICH_CARDS + 1)
        .map(|(p, n)| Card::new(p.clone(), n.clone()))
        .collect();
    let bank_cards: Vec<Card> = lab
        .bank
        .iter()
        .flat_map(|b| &b.cards)
        .map(|c| Card::new(c.pan.clone(), c.pin.clone()))
        .collect();
    let started = Instant::now();
    let shared = Arc::new(Shared {
        source: Mutex::new(
            LabCustomers::new(opts.seed, random_cards, bank_cards, opts.bank_share, mix)
                .take(opts.customers),
        ),
        records: Mutex::new(Vec::new()),
        done: Arc::new(AtomicUsize::new(0)),
        unavailable: Arc::new(AtomicUsize::new(0)),
        stop_at: opts.duration.map(|d| started + d),
        think: opts.think,
        terminal_faults_on: terminal_faults_on.clone(),
        after_unavailable: if opts.scenario == drills::Scenario::Chaos {
            crate::chaos::AFTER_UNAVAILABLE_PAUSE
        } else {
            Duration::ZERO
        },
    });
    let finished = Arc::new(AtomicBool::new(false));
    let drill = tokio::spawn(drills::run(drills::DrillCtx {
        scenario: opts.scenario,
        seed: opts.seed,
        total: opts.customers,
        done: shared.done.clone(),
        unavailable: shared.unavailable.clone(),
        finished: finished.clone(),
        faults: lab.ledger.faults().clone(),
        switch: lab.switch.clone(),
        agent: lab.agent.clone(),
        relay: lab.relay.clone(),
        switch_addr: lab.switch_addr,
        ndc_addr: lab.ndc_addr,
        ledger_addr: lab.ledger.local_addr(),
        switch_ledger_timeout_ms: lab.switch_timing.ledger_timeout_ms,
        agent_socket: lab.socket.clone(),
        switch_socket: lab.switch_socket.clone(),
        bank_host: lab.bank.as_ref().map(|b| b.host.handle()),
        outage: opts.outage,
        events: events.clone(),
        started,
        terminal_faults_on,
    }));
    let progress = opts.progress.then(|| {
        tokio::spawn(progress_loop(
            started,
            opts.customers,
            shared.clone(),
            lab.socket.clone(),
            finished.clone(),
        ))
    });
    let tasks: Vec<_> = std::mem::take(&mut lab.atms)
        .into_iter()
        .enumerate()
        .map(|(i, atm)| tokio::spawn(serve_terminal(atm, terminal_id(i), shared.clone())))
        .collect();
    for t in tasks {
        lab.atms.push(t.await.map_err(LabError::Task)?);
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    finished.store(true, Ordering::SeqCst);
    let _ = drill.await;
    if let Some(p) = progress {
        let _ = p.await;
    }
    Ok((shared, elapsed_s))
}

/// Puts back what a drill may have left broken and waits for the agent's uplink.
async fn put_back(lab: &RunningLab) {
    lab.ledger.faults().clear();
    lab.relay.restore();
    if !lab.switch.lock().unwrap().alive() {
        let _ = lab.switch.lock().unwrap().restart();
        wait_listening(lab.switch_addr, Duration::from_secs(30)).await;
    }
    if !lab.agent.lock().unwrap().alive() {
        let _ = lab.agent.lock().unwrap().restart();
    }
    children::wait_agent(&lab.socket, Duration::from_secs(30), |s| {
        s["uplink"] == "up"
    })
    .await;
}

/// Power-cycles a terminal until the agent takes it back (the agent may be restarting).
pub async fn reconnect(atm: &mut AtmSim, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        match atm.power_cycle().await {
            Ok(()) => return true,
            Err(e) => {
                tracing::debug!(luno = atm.luno(), error = %e, "power cycle failed; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    false
}

/// The lab's customers: wallet customers from one seeded stream, the other bank's from another,
/// a third seeded draw choosing between them with chance `bank_share`. Without bank cards (or
/// with a share of 0) the wallet stream is exactly what it was before the bank existed.
pub struct LabCustomers {
    wallet: RandomCustomers,
    bank: Option<RandomCustomers>,
    choose: XorShift64,
    /// Out of 10 000.
    bank_per_10k: u64,
}

impl LabCustomers {
    pub fn new(
        seed: u64,
        wallet_cards: Vec<Card>,
        bank_cards: Vec<Card>,
        bank_share: f64,
        mix: Mix,
    ) -> Self {
        let bank = (!bank_cards.is_empty() && bank_share > 0.0)
            .then(|| RandomCustomers::from_cards(seed ^ 0xba_4c, bank_cards, mix.clone()));
        LabCustomers {
            wallet: RandomCustomers::from_cards(seed, wallet_cards, mix),
            bank,
            choose: XorShift64::new(seed ^ 0x5a_4e),
            bank_per_10k: (bank_share.clamp(0.0, 1.0) * 10_000.0).round() as u64,
        }
    }
}

impl Iterator for LabCustomers {
    type Item = Customer;
    fn next(&mut self) -> Option<Customer> {
        match &mut self.bank {
            Some(bank) if self.choose.below(10_000) < self.bank_per_10k => bank.next(),
            _ => self.wallet.next(),
        }
    }
}

struct Shared {
    source: Mutex<std::iter::Take<LabCustomers>>,
    records: Mutex<Vec<Record>>,
    done: Arc<AtomicUsize>,
    unavailable: Arc<AtomicUsize>,
    stop_at: Option<Instant>,
    think: Duration,
    /// Off: a customer who drew a terminal fault is served normally.
    terminal_faults_on: Arc<AtomicBool>,
    /// Pause after a customer turned away host-unavailable ([`crate::chaos::AFTER_UNAVAILABLE_PAUSE`]).
    after_unavailable: Duration,
}

async fn serve_terminal(mut atm: AtmSim, tid: String, shared: Arc<Shared>) -> AtmSim {
    loop {
        if shared.stop_at.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        let Some(mut customer) = shared.source.lock().unwrap().next() else {
            break;
        };
        if matches!(customer.behaviour, Behaviour::TerminalFault(_))
            && !shared.terminal_faults_on.load(Ordering::SeqCst)
        {
            customer.behaviour = Behaviour::Normal;
        }
        if !shared.think.is_zero() {
            tokio::time::sleep(shared.think).await;
        }
        let t0 = Instant::now();
        let result = atm.run_customer(&customer).await;
        let ms = t0.elapsed().as_millis() as u64;
        let mut record = match &result {
            Ok(o) => Record::from_outcome(&tid, o, ms),
            Err(e) => {
                tracing::info!(luno = atm.luno(), error = %e, "customer interrupted");
                Record::interrupted(&tid, customer.kind, customer.amount_minor, ms)
            }
        };
        record.bank = customer.pan.starts_with(crate::bank::BANK_ROUTE_PREFIX);
        let unavailable = record.column == "unavail";
        if unavailable {
            shared.unavailable.fetch_add(1, Ordering::SeqCst);
        }
        shared.records.lock().unwrap().push(record);
        shared.done.fetch_add(1, Ordering::SeqCst);
        let power_loss = matches!(&result, Ok(o) if matches!(o.outcome, Outcome::PowerLoss { .. }));
        if power_loss || result.is_err() || !atm.is_connected() {
            reconnect(&mut atm, Duration::from_secs(60)).await;
        }
        if unavailable && !shared.after_unavailable.is_zero() {
            tokio::time::sleep(shared.after_unavailable).await;
        }
    }
    atm
}

async fn progress_loop(
    started: Instant,
    total: usize,
    shared: Arc<Shared>,
    socket: PathBuf,
    finished: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while !finished.load(Ordering::SeqCst) {
        tick.tick().await;
        let (mut ok, mut no, mut un, mut other) = (0, 0, 0, 0);
        for r in shared.records.lock().unwrap().iter() {
            match r.column {
                "approved" => ok += 1,
                "declined" => no += 1,
                "unavail" => un += 1,
                _ => other += 1,
            }
        }
        let status = children::agent_status(&socket).await;
        let agent = match status {
            Some(s) => format!(
                "uplink {}, queue {} pending {} parked",
                s["uplink"].as_str().unwrap_or("?"),
                s["queue"]["pending"],
                s["queue"]["parked"]
            ),
            None => "agent not answering".into(),
        };
        eprintln!(
            "atm-lab [{:5.1}s] customers {}/{}  approved {ok} declined {no} host-unavailable {un} other {other} | {agent}",
            started.elapsed().as_secs_f64(),
            shared.done.load(Ordering::SeqCst),
            total
        );
    }
}
