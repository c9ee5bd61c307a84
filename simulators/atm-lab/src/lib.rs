//! # lab — the whole system in one command (`atm-lab`)
//!
//! [`run`] starts, in a temporary directory and with nothing to install: ledger-sim with seeded
//! wallet accounts (in this process), the host switch and one agent as child processes (the
//! lab executable re-run with `--role switch|agent --config FILE`, see [`role`]), a cuttable TCP
//! relay between them, mutual TLS from a fresh [`mtls::TestPki`], and N simulated NDC terminals
//! ([`crate::atm::AtmSim`], profile `ncr-selfserv-basic`, LUNO `00N` ↔ `ATM0000N`). Random
//! customers are spread over the terminals; a fault drill ([`drills::Scenario`]) may run beside
//! them. Afterwards the lab waits for the agent's queue to drain, stops the switch, and
//! reconciles the terminals' counters, the switch journal and the ledger's movements
//! ([`reconcile`]).
//!
//! Layout: [`procs`] (child processes, relay, configs, control socket), [`drills`],
//! [`reconcile`] (pure), [`report`] (table and JSON), [`role`] (the child side).

pub mod drills;
pub mod keys;
pub mod procs;
pub mod reconcile;
pub mod report;
pub mod role;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use firmware_profiles::Profile;
use host_switch::domain::WalletAccount;
use host_switch::ports::Journal;
use protocols::types::Pan;
use tokio::time::Instant;

pub use drills::Scenario;
pub use reconcile::Verdict;
pub use report::LabReport;

use crate::atm::{
    AtmOptions, AtmSim, Card, ClearKey, Customer, DeclineReason, Mix, Outcome, RandomCustomers,
    TerminalCounters,
};
use crate::ledger::domain::Movement;
use crate::ledger::store::MovementPage;
use crate::ledger::{AccountSeed, LedgerConfig, LedgerServer};
use procs::{ChildRole, Relay, Role};
use report::Record;

/// The profile every lab terminal runs.
pub const PROFILE: &str = "ncr-selfserv-basic";
/// Rich wallet cards, and one poor one (last) that runs into insufficient funds.
pub const RICH_CARDS: usize = 8;
pub const RICH_BALANCE_MINOR: u64 = 1_000_000_000;
pub const POOR_BALANCE_MINOR: u64 = 3_000;
/// Most terminals one lab runs (one agent; the certificate is made for the ids in use).
pub const MAX_ATMS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("cannot start the lab: {0}")]
    Start(String),
    #[error("lab run failed: {0}")]
    Run(String),
}

/// How to run the lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The executable to re-run for the child roles (`atm-lab`): `std::env::current_exe()` in
    /// the binary, `env!("CARGO_BIN_EXE_atm-lab")` in the crate's integration tests.
    pub exe: PathBuf,
    pub atms: usize,
    pub customers: usize,
    /// Stop taking new customers after this long.
    pub duration: Option<Duration>,
    pub scenario: Scenario,
    pub seed: u64,
    /// Length of an outage / cut / crash window in the drills.
    pub outage: Duration,
    /// A progress line per second on stderr.
    pub progress: bool,
    /// Pause on each terminal between two customers (the next one walking up).
    pub think: Duration,
    /// PIN security: keys entered by "custodians", PIN keys loaded over NDC, PINs verified by the
    /// switch, a share of customers typing a wrong PIN, and the PIN drill (tries exceeded, unblock).
    pub pins: bool,
    /// Keep the run's directory here (not a temporary one) and write the children's logs to
    /// `<dir>/logs/{switch,agent}.log` at this `RUST_LOG` filter: what an audit reads afterwards.
    pub audit: Option<(PathBuf, String)>,
}

impl LabOptions {
    pub fn new(exe: impl Into<PathBuf>) -> Self {
        LabOptions {
            exe: exe.into(),
            atms: 3,
            customers: 300,
            duration: None,
            scenario: Scenario::None,
            seed: 1,
            outage: Duration::from_secs(4),
            progress: true,
            think: Duration::from_millis(50),
            pins: true,
            audit: None,
        }
    }
}

/// The lab's cards: `RICH_CARDS` rich ones, then the poor one, then the PIN drill's (rich, used by
/// the PIN drill only).
pub fn lab_cards() -> Vec<String> {
    crate::load::card_pans(RICH_CARDS + 2)
}

/// Share of random customers who type a wrong PIN.
pub const WRONG_PIN_PERCENT: u8 = 4;

/// What an audit of a run needs: every secret the run made (to look for it where it must not be)
/// and where the run's logs and records are.
pub struct LabSecrets {
    /// Clear keys and key components, by label.
    pub keys: Vec<(String, zeroize::Zeroizing<Vec<u8>>)>,
    /// (PAN, PIN) of every card.
    pub cards: Vec<(String, String)>,
    pub dir: PathBuf,
    pub logs: PathBuf,
    pub switch_journal: PathBuf,
    pub agent_dir: PathBuf,
    /// The agent's key store and the KEK that opens it (to read the zone PIN key in an audit).
    pub agent_key_store: PathBuf,
    pub agent_kek: zeroize::Zeroizing<String>,
}

fn seeds(cards: &[String]) -> Result<Vec<AccountSeed>, LabError> {
    cards
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let pan = Pan::parse(p).map_err(|e| LabError::Start(format!("card {p}: {e}")))?;
            Ok(AccountSeed {
                account: WalletAccount::for_card(&pan).as_str().to_owned(),
                currency: "EUR".into(),
                balance_minor: if i == RICH_CARDS {
                    POOR_BALANCE_MINOR
                } else {
                    RICH_BALANCE_MINOR
                },
            })
        })
        .collect()
}

fn start_err(what: &str) -> impl Fn(String) -> LabError + '_ {
    move |e| LabError::Start(format!("{what}: {e}"))
}

/// Reads every ledger movement over HTTP, page by page.
pub async fn fetch_movements(base_url: &str) -> Result<Vec<Movement>, LabError> {
    let client = reqwest::Client::new();
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{base_url}/v1/movements?limit=500");
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let page: MovementPage = client
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| LabError::Run(format!("GET {url}: {e}")))?
            .json()
            .await
            .map_err(|e| LabError::Run(format!("GET {url}: {e}")))?;
        let empty = page.movements.is_empty();
        all.extend(page.movements);
        match page.next_after {
            Some(a) if !empty => after = Some(a),
            _ => break,
        }
    }
    Ok(all)
}

/// Power-cycles a terminal until the agent takes it back (the agent may be restarting).
async fn reconnect(atm: &mut AtmSim, patience: Duration) -> bool {
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

struct Shared {
    source: Mutex<std::iter::Take<RandomCustomers>>,
    records: Mutex<Vec<Record>>,
    done: Arc<AtomicUsize>,
    unavailable: Arc<AtomicUsize>,
    stop_at: Option<Instant>,
    think: Duration,
}

async fn serve_terminal(mut atm: AtmSim, tid: String, shared: Arc<Shared>) -> AtmSim {
    loop {
        if shared.stop_at.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        let Some(customer) = shared.source.lock().unwrap().next() else {
            break;
        };
        if !shared.think.is_zero() {
            tokio::time::sleep(shared.think).await;
        }
        let t0 = Instant::now();
        let result = atm.run_customer(&customer).await;
        let ms = t0.elapsed().as_millis() as u64;
        let record = match &result {
            Ok(o) => Record::from_outcome(&tid, o, ms),
            Err(e) => {
                tracing::info!(luno = atm.luno(), error = %e, "customer interrupted");
                Record::interrupted(&tid, customer.kind, customer.amount_minor, ms)
            }
        };
        if record.column == "unavail" {
            shared.unavailable.fetch_add(1, Ordering::SeqCst);
        }
        shared.records.lock().unwrap().push(record);
        shared.done.fetch_add(1, Ordering::SeqCst);
        let power_loss = matches!(&result, Ok(o) if matches!(o.outcome, Outcome::PowerLoss { .. }));
        if power_loss || result.is_err() || !atm.is_connected() {
            reconnect(&mut atm, Duration::from_secs(60)).await;
        }
    }
    atm
}

/// One more transaction per terminal after the run (not counted): its last-transaction-status
/// settles a dispense left in doubt by a power loss or a crash, as the next customer would.
async fn closing_inquiry(atm: &mut AtmSim, pan: &str, pin: &str) {
    for _ in 0..5 {
        if !atm.is_connected() {
            reconnect(atm, Duration::from_secs(30)).await;
        }
        if let Ok(o) = atm
            .run_customer(&Customer::balance_inquiry(pan).with_pin(pin))
            .await
        {
            if o.outcome == Outcome::Approved {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
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
        let status = procs::agent_status(&socket).await;
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

/// Runs the lab and reconciles; `Ok` whether or not the books agree (see `report.reconciled`).
pub async fn run(opts: &LabOptions) -> Result<LabReport, LabError> {
    run_audited(opts).await.map(|(report, _)| report)
}

/// The run's directory: a temporary one, or the audit's (kept).
enum WorkDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl WorkDir {
    fn path(&self) -> &Path {
        match self {
            WorkDir::Temp(t) => t.path(),
            WorkDir::Kept(p) => p,
        }
    }
}

/// [`run`], also returning the run's secrets and paths for an audit.
pub async fn run_audited(opts: &LabOptions) -> Result<(LabReport, LabSecrets), LabError> {
    if opts.atms == 0 || opts.atms > MAX_ATMS {
        return Err(LabError::Start(format!(
            "--atms {}: 1 to {MAX_ATMS}",
            opts.atms
        )));
    }
    let dir = match &opts.audit {
        Some((d, _)) => {
            std::fs::create_dir_all(d.join("logs"))
                .map_err(|e| LabError::Start(format!("{}: {e}", d.display())))?;
            WorkDir::Kept(d.clone())
        }
        None => WorkDir::Temp(
            tempfile::Builder::new()
                .prefix("atm-lab")
                .tempdir()
                .map_err(|e| LabError::Start(format!("temporary directory: {e}")))?,
        ),
    };
    // The children log to `<dir>/logs/<role>.log`: at the audit's filter, or warnings and errors
    // (quoted when the lab cannot start). `ATM_LAB_CHILD_LOG=info` sends them to stderr instead.
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs)
        .map_err(|e| LabError::Start(format!("{}: {e}", logs.display())))?;
    let child_log = |role: &str| {
        let file = logs.join(format!("{role}.log"));
        match (&opts.audit, std::env::var("ATM_LAB_CHILD_LOG")) {
            (Some((_, filter)), _) => Some(procs::ChildLog {
                file,
                filter: filter.clone(),
            }),
            (None, Ok(_)) => None,
            (None, Err(_)) => Some(procs::ChildLog {
                file,
                filter: "warn".into(),
            }),
        }
    };
    let children_said = || {
        format!(
            "\n--- switch log (tail) ---\n{}\n--- agent log (tail) ---\n{}",
            procs::log_tail(&logs.join("switch.log"), 15),
            procs::log_tail(&logs.join("agent.log"), 15)
        )
    };
    // The agent certificate covers exactly the lab's terminal ids.
    let ids: Vec<String> = (0..opts.atms).map(procs::terminal_id).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let files = mtls::TestPki::try_generate()
        .and_then(|p| {
            p.write_to_dir_with(
                dir.path(),
                mtls::pki::LAB_SWITCH_HOSTNAMES,
                mtls::pki::LAB_AGENT_COMMON_NAME,
                &id_refs,
            )
        })
        .map_err(|e| LabError::Start(format!("test PKI: {e}")))?;

    // Ledger, in this process.
    let cards = lab_cards();
    let pins: Vec<String> = (0..cards.len()).map(keys::lab_pin).collect();
    let lab_keys = if opts.pins {
        Some(keys::LabKeys::generate(opts.atms)?)
    } else {
        None
    };
    let mut ledger_cfg = LedgerConfig::new(dir.path().join("ledger"));
    ledger_cfg.seeds = seeds(&cards)?;
    let ledger = LedgerServer::start(ledger_cfg)
        .await
        .map_err(|e| start_err("ledger-sim")(e.to_string()))?;

    // Switch, a child process.
    let switch_addr = procs::free_port()?;
    let journal_path = dir.path().join("journal");
    let switch_toml = dir.path().join("switch.toml");
    let switch_pin = match &lab_keys {
        Some(k) => {
            let (kek_file, store) = k.prepare_switch(dir.path())?;
            let cards_file = dir.path().join("cards.toml");
            let card_pins: Vec<(String, String)> =
                cards.iter().cloned().zip(pins.iter().cloned()).collect();
            std::fs::write(&cards_file, k.cards_file_text(&card_pins)?)
                .map_err(|e| start_err("cards file")(e.to_string()))?;
            Some(procs::SwitchPinFiles {
                kek_file,
                store,
                cards_file,
                control_socket: dir.path().join("switch.sock"),
            })
        }
        None => None,
    };
    std::fs::write(
        &switch_toml,
        procs::switch_config_text(
            &files,
            switch_addr,
            &journal_path,
            &ledger.base_url(),
            switch_pin.as_ref(),
        ),
    )
    .map_err(|e| start_err("switch config")(e.to_string()))?;
    let switch = ChildRole::spawn(&opts.exe, Role::Switch, &switch_toml, child_log("switch"))?;
    if !procs::wait_listening(switch_addr, Duration::from_secs(30)).await {
        return Err(LabError::Start(format!(
            "the switch never listened on {switch_addr}{}",
            children_said()
        )));
    }
    let switch = Arc::new(Mutex::new(switch));

    // Relay and agent.
    let relay = Arc::new(Relay::start(switch_addr).await?);
    let ndc_addr = procs::free_port()?;
    let agent_dir = dir.path().join("agent");
    let agent_toml = dir.path().join("agent.toml");
    let agent_kek = match &lab_keys {
        Some(k) => Some(k.prepare_agent(dir.path())?),
        None => None,
    };
    std::fs::write(
        &agent_toml,
        procs::agent_config_text(
            &files,
            ndc_addr,
            relay.addr,
            &agent_dir,
            opts.atms,
            agent_kek.as_deref(),
        ),
    )
    .map_err(|e| start_err("agent config")(e.to_string()))?;
    let socket = agent_dir.join("atmctl.sock");
    let agent = Arc::new(Mutex::new(ChildRole::spawn(
        &opts.exe,
        Role::Agent,
        &agent_toml,
        child_log("agent"),
    )?));
    let (up, last) =
        procs::wait_agent(&socket, Duration::from_secs(60), |s| s["uplink"] == "up").await;
    if !up {
        let switch_alive = switch.lock().unwrap().alive();
        return Err(LabError::Start(format!(
            "the agent's uplink never came up (switch process alive: {switch_alive}): {last:?}{}",
            children_said()
        )));
    }
    let ids: Vec<String> = (0..opts.atms).map(procs::terminal_id).collect();
    if let Some(k) = &lab_keys {
        // Custodians enter the zone master key and each terminal's master key; the agent then
        // fetches the zone PIN key from the switch.
        k.load_into_agent(&socket, &ids).await?;
        if !procs::wait_zone_key(&socket, Duration::from_secs(30)).await {
            return Err(LabError::Start(
                "the agent never received the zone PIN key from the switch".into(),
            ));
        }
    }

    // Terminals.
    let profile = Arc::new(
        Profile::builtin(PROFILE)
            .ok_or_else(|| LabError::Start(format!("no built-in profile {PROFILE}")))?,
    );
    let mut atms = Vec::new();
    for i in 0..opts.atms {
        let master_key = match &lab_keys {
            Some(k) => Some(
                ClearKey::new(k.terminal_masters[i].combined.to_vec())
                    .map_err(|e| start_err("atm-sim master key")(e.to_string()))?,
            ),
            None => None,
        };
        let options = AtmOptions {
            seed: opts.seed.wrapping_add(i as u64 + 1),
            master_key,
            ..AtmOptions::default()
        };
        let atm = AtmSim::connect(ndc_addr, profile.clone(), &procs::luno(i), options)
            .await
            .map_err(|e| start_err("atm-sim")(format!("{}: {e}", procs::luno(i))))?;
        atms.push(atm);
    }
    eprintln!(
        "atm-lab: ledger {} | switch {} (pid child) | agent NDC {} | {} ATMs | {} customers | faults {} | dir {}",
        ledger.base_url(),
        switch_addr,
        ndc_addr,
        opts.atms,
        opts.customers,
        opts.scenario.name(),
        dir.path().display()
    );

    // Customers, drill and progress.
    let mut mix = Mix::for_profile(&profile).with_faults(10);
    if opts.pins {
        mix = mix.with_wrong_pins(WRONG_PIN_PERCENT);
    }
    let random_cards: Vec<Card> = cards
        .iter()
        .zip(&pins)
        .take(RICH_CARDS + 1)
        .map(|(p, n)| Card::new(p.clone(), n.clone()))
        .collect();
    let started = Instant::now();
    let shared = Arc::new(Shared {
        source: Mutex::new(
            RandomCustomers::from_cards(opts.seed, random_cards, mix).take(opts.customers),
        ),
        records: Mutex::new(Vec::new()),
        done: Arc::new(AtomicUsize::new(0)),
        unavailable: Arc::new(AtomicUsize::new(0)),
        stop_at: opts.duration.map(|d| started + d),
        think: opts.think,
    });
    let finished = Arc::new(AtomicBool::new(false));
    let events = Arc::new(Mutex::new(Vec::new()));
    let drill = tokio::spawn(drills::run(drills::DrillCtx {
        scenario: opts.scenario,
        seed: opts.seed,
        total: opts.customers,
        done: shared.done.clone(),
        unavailable: shared.unavailable.clone(),
        finished: finished.clone(),
        faults: ledger.faults().clone(),
        switch: switch.clone(),
        agent: agent.clone(),
        relay: relay.clone(),
        switch_addr,
        ndc_addr,
        ledger_addr: ledger.local_addr(),
        agent_socket: socket.clone(),
        outage: opts.outage,
        events: events.clone(),
        started,
    }));
    let progress = opts.progress.then(|| {
        tokio::spawn(progress_loop(
            started,
            opts.customers,
            shared.clone(),
            socket.clone(),
            finished.clone(),
        ))
    });
    let tasks: Vec<_> = atms
        .into_iter()
        .enumerate()
        .map(|(i, atm)| tokio::spawn(serve_terminal(atm, procs::terminal_id(i), shared.clone())))
        .collect();
    let mut atms = Vec::new();
    for t in tasks {
        atms.push(
            t.await
                .map_err(|e| LabError::Run(format!("terminal task: {e}")))?,
        );
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    finished.store(true, Ordering::SeqCst);
    let _ = drill.await;
    if let Some(p) = progress {
        let _ = p.await;
    }

    // Put everything back, settle what is in doubt, drain.
    ledger.faults().clear();
    relay.restore();
    if !switch.lock().unwrap().alive() {
        let _ = switch.lock().unwrap().restart();
        procs::wait_listening(switch_addr, Duration::from_secs(30)).await;
    }
    if !agent.lock().unwrap().alive() {
        let _ = agent.lock().unwrap().restart();
    }
    procs::wait_agent(&socket, Duration::from_secs(30), |s| s["uplink"] == "up").await;
    let mut pin_drill_ok = None;
    if let (Some(p), Some(atm)) = (&switch_pin, atms.first_mut()) {
        let card = Card::new(cards[RICH_CARDS + 1].clone(), pins[RICH_CARDS + 1].clone());
        let (records, ok) = pin_drill(
            atm,
            &procs::terminal_id(0),
            &card,
            &p.control_socket,
            &events,
        )
        .await;
        shared.records.lock().unwrap().extend(records);
        pin_drill_ok = Some(ok);
    }
    for atm in atms.iter_mut() {
        closing_inquiry(atm, &cards[0], &pins[0]).await;
    }
    procs::wait_agent(&socket, Duration::from_secs(90), |s| {
        s["uplink"] == "up" && s["queue"]["pending"] == 0 && s["queue"]["parked"] == 0
    })
    .await;
    let (_, status) = procs::wait_agent(&socket, Duration::from_secs(5), |s| {
        s["queue"]["pending"] == 0
            && s["queue"]["parked"] == 0
            && s["terminals"]
                .as_array()
                .is_some_and(|t| t.iter().all(|t| t["dispense_in_doubt"] != true))
    })
    .await;
    let status = status.unwrap_or_default();
    let in_doubt: Vec<String> = status["terminals"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter(|t| t["dispense_in_doubt"] == true)
                .map(|t| t["terminal_id"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default();
    let queue_pending = status["queue"]["pending"].as_u64().unwrap_or(u64::MAX);
    let queue_parked = status["queue"]["parked"].as_u64().unwrap_or(u64::MAX);
    let counters: Vec<TerminalCounters> = atms.iter().map(|a| a.counters()).collect();

    // The switch may still owe the ledger work (its resumer retries): wait until the ledger
    // agrees with the terminals, or give up after a while and let the verdict say what differs.
    let want = (
        counters.iter().map(|c| c.dispensed_minor).sum::<u64>(),
        counters.iter().map(|c| c.deposited_minor).sum::<u64>(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = fetch_movements(&ledger.base_url()).await?;
        let t = reconcile::ledger_totals(&m);
        if (t.withdrawn_net_minor, t.deposited_net_minor) == want || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Stop the children; read the journal the switch leaves behind.
    agent.lock().unwrap().stop(Duration::from_secs(10));
    switch.lock().unwrap().stop(Duration::from_secs(10));
    let movements = fetch_movements(&ledger.base_url()).await?;
    let journal = host_switch::adapters::sled_journal::SledJournal::open(&journal_path)
        .map_err(|e| LabError::Run(format!("open the switch journal: {e}")))?;
    let txns = journal
        .txns()
        .map_err(|e| LabError::Run(format!("read the switch journal: {e}")))?;
    drop(journal);
    let switch_rec =
        host_switch::domain::reconcile::reconcile(&txns, &reconcile::switch_movements(&movements));
    let invariants = ledger
        .invariants()
        .await
        .map_err(|e| LabError::Run(format!("ledger invariants: {e}")))?;
    let records = shared.records.lock().unwrap().clone();
    let terminal_ids: Vec<String> = (0..opts.atms).map(procs::terminal_id).collect();
    let suspects: Vec<reconcile::Suspect> = records
        .iter()
        .filter(|r| r.column == "interrupted" || r.column == "timeout")
        .map(|r| reconcile::Suspect {
            terminal_id: r.terminal_id.clone(),
            kind: r.kind.to_string(),
            amount_minor: r.amount_minor,
        })
        .collect();
    let mut verdict = reconcile::reconcile(&reconcile::Evidence {
        terminals: &counters,
        terminal_ids: &terminal_ids,
        suspects: &suspects,
        in_doubt: &in_doubt,
        movements: &movements,
        switch: &switch_rec,
        holds_captured_twice: invariants.holds_captured_twice,
        queue_pending,
        queue_parked,
    });
    if !invariants.sum_minor_by_currency.values().all(|v| *v == 0) {
        verdict.mismatched.push(format!(
            "ledger books do not balance: {:?}",
            invariants.sum_minor_by_currency
        ));
        verdict.reconciled = false;
    }

    let (agent_restarts, switch_restarts) = (
        agent.lock().unwrap().restarts,
        switch.lock().unwrap().restarts,
    );
    let report = report::build(
        &records,
        verdict,
        report::RunFacts {
            scenario: opts.scenario.name().into(),
            atms: opts.atms,
            seed: opts.seed,
            elapsed_s,
            agent_restarts,
            switch_restarts,
            drill_events: events.lock().unwrap().clone(),
            pins: opts.pins,
            pin_drill_ok,
        },
    );
    let mut secret_keys = Vec::new();
    if let Some(k) = &lab_keys {
        secret_keys = k.secrets();
    }
    for (i, atm) in atms.iter().enumerate() {
        if let Some(tpk) = atm.terminal_pin_key_for_audit().await {
            secret_keys.push((format!("tpk/{}", procs::terminal_id(i)), tpk));
        }
    }
    for atm in atms {
        atm.shutdown().await;
    }
    if let Err(e) = ledger.shutdown().await {
        tracing::warn!(error = %e, "ledger-sim did not stop cleanly");
    }
    let secrets = LabSecrets {
        keys: secret_keys,
        cards: cards.iter().cloned().zip(pins.iter().cloned()).collect(),
        dir: dir.path().to_owned(),
        logs: dir.path().join("logs"),
        switch_journal: journal_path,
        agent_dir: agent_dir.clone(),
        agent_key_store: agent_dir.join("keys.json"),
        agent_kek: lab_keys
            .as_ref()
            .map(|k| k.agent_kek.clone())
            .unwrap_or_default(),
    };
    drop(dir);
    Ok((report, secrets))
}

/// The PIN drill, on one terminal with a card of its own: three wrong PINs (55, 55, 75), the
/// right PIN on the blocked card (75), an operator unblock on the switch's control socket, the
/// right PIN (approved). Returns the customers' records and whether every step went as expected.
async fn pin_drill(
    atm: &mut AtmSim,
    tid: &str,
    card: &Card,
    switch_socket: &Path,
    events: &Mutex<Vec<String>>,
) -> (Vec<Record>, bool) {
    use DeclineReason::{PinTriesExceeded, WrongPin};
    let steps: [(bool, Option<DeclineReason>); 4] = [
        (true, Some(WrongPin)),
        (true, Some(WrongPin)),
        (true, Some(PinTriesExceeded)),
        (false, Some(PinTriesExceeded)),
    ];
    let mut records = Vec::new();
    let mut ok = true;
    let mut seen = Vec::new();
    for (wrong, want) in steps {
        let mut c = Customer::withdrawal(card.pan.clone(), 2_000).with_pin(card.pin.clone());
        if wrong {
            c = c.with_wrong_pin();
        }
        let (got, record) = pin_drill_customer(atm, tid, &c).await;
        ok &= got == want;
        seen.push(drill_step(got));
        records.extend(record);
    }
    let socket = switch_socket.to_owned();
    let pan = card.pan.clone();
    let unblocked = tokio::task::spawn_blocking(move || {
        atm_agent::cli::control::request(
            &socket,
            &serde_json::json!({"cmd": "card_unblock", "card": pan}),
        )
    })
    .await;
    let unblocked = matches!(unblocked, Ok(Ok(_)));
    ok &= unblocked;
    seen.push(
        if unblocked {
            "unblocked"
        } else {
            "UNBLOCK FAILED"
        }
        .to_owned(),
    );
    // The right PIN on the unblocked card. After a ledger drill the switch's breaker may still
    // answer "host unavailable" for a few seconds: the customer tries again, as one would.
    let c = Customer::withdrawal(card.pan.clone(), 2_000).with_pin(card.pin.clone());
    let mut tries = 0;
    let (got, record) = loop {
        let (got, record) = pin_drill_customer(atm, tid, &c).await;
        tries += 1;
        if tries >= 30 || record.as_ref().is_none_or(|r| r.column != "unavail") {
            break (got, record);
        }
        records.extend(record);
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let approved = record.as_ref().is_some_and(|r| r.column == "approved");
    ok &= approved && got.is_none();
    seen.push(if approved {
        "approved".to_owned()
    } else {
        drill_step(got)
    });
    records.extend(record);
    events.lock().unwrap().push(format!(
        "pin drill on {tid}: {} -> {}",
        seen.join(", "),
        if ok { "as expected" } else { "NOT AS EXPECTED" }
    ));
    (records, ok)
}

/// One PIN drill step as the table shows it.
fn drill_step(got: Option<DeclineReason>) -> String {
    match got {
        Some(DeclineReason::WrongPin) => "wrong PIN".into(),
        Some(DeclineReason::PinTriesExceeded) => "PIN tries exceeded".into(),
        Some(other) => format!("declined ({other:?})"),
        None => "not declined for the PIN".into(),
    }
}

async fn pin_drill_customer(
    atm: &mut AtmSim,
    tid: &str,
    c: &Customer,
) -> (Option<DeclineReason>, Option<Record>) {
    if !atm.is_connected() {
        reconnect(atm, Duration::from_secs(30)).await;
    }
    let t0 = Instant::now();
    match atm.run_customer(c).await {
        Ok(o) => (
            o.outcome.decline_reason(),
            Some(Record::from_outcome(
                tid,
                &o,
                t0.elapsed().as_millis() as u64,
            )),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "PIN drill customer interrupted");
            (None, None)
        }
    }
}

/// The path a child role is started with, for callers that want to check it exists.
pub fn check_exe(exe: &Path) -> Result<(), LabError> {
    if exe.exists() {
        Ok(())
    } else {
        Err(LabError::Start(format!(
            "no executable at {}",
            exe.display()
        )))
    }
}
