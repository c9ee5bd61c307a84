//! The first stage of a run: everything up and talking before the first customer. A directory
//! (temporary, or the audit's), a PKI whose agent certificate covers exactly the lab's terminal
//! ids, keys and PINs, ledger-sim in this process, the other bank's host in this process (with
//! `--bank-share` above 0), the switch as a child process, the relay, the agent as a child process
//! (keys entered as custodians do), and the simulated terminals in service.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atm_sim::{AtmOptions, AtmSim, ClearKey};
use firmware_profiles::Profile;
use host_switch::domain::WalletAccount;
use ledger_sim::{AccountSeed, LedgerConfig, LedgerServer, RunningLedger};
use protocols::types::Pan;
use testkit::custodian_keys::{lab_pin, IssuedCard, LabKeys};
use testkit::custodian_keys::{prepare_card_ref_store, CustodianKey};
use testkit::relay::Relay;
use testkit::terminals::terminal_id;
use testkit::wait::{free_port, wait_listening};

use crate::bank::{self, BankSide};
use crate::children::{self, ChildLog, ChildRole, Role};
use crate::configs::{self, SwitchPinFiles};
use crate::{
    lab_cards, LabError, LabOptions, MAX_ATMS, POOR_BALANCE_MINOR, RICH_BALANCE_MINOR, RICH_CARDS,
};

/// The run's directory: a temporary one, or the audit's (kept).
pub enum WorkDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl WorkDir {
    pub fn path(&self) -> &Path {
        match self {
            WorkDir::Temp(t) => t.path(),
            WorkDir::Kept(p) => p,
        }
    }
}

/// Everything [`setup`] started, handed to the traffic and settle stages.
pub struct RunningLab {
    pub dir: WorkDir,
    /// The lab's cards (see [`crate::lab_cards`]) and their PINs, in the same order.
    pub cards: Vec<String>,
    pub pins: Vec<String>,
    /// `None` when the run has no PIN security.
    pub keys: Option<LabKeys>,
    pub ledger: RunningLedger,
    /// The other bank's host and cards; `None` with `--bank-share 0`.
    pub bank: Option<BankSide>,
    pub switch: Arc<Mutex<ChildRole>>,
    pub switch_addr: SocketAddr,
    /// The timings of the switch's configuration the drills and the settle stage work with.
    pub switch_timing: SwitchTiming,
    pub journal_path: PathBuf,
    pub switch_pin: Option<SwitchPinFiles>,
    /// The switch's control socket (`switchctl`).
    pub switch_socket: PathBuf,
    pub relay: Arc<Relay>,
    pub agent: Arc<Mutex<ChildRole>>,
    pub agent_dir: PathBuf,
    /// The agent's control socket.
    pub socket: PathBuf,
    pub ndc_addr: SocketAddr,
    pub profile: Arc<Profile>,
    /// The terminals, in service (the traffic stage lends them to its tasks).
    pub atms: Vec<AtmSim>,
}

/// What the lab's switch configuration says about how long its ledger work can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchTiming {
    /// One ledger call's timeout.
    pub ledger_timeout_ms: u64,
    /// Calls per ledger step (the first and its retries).
    pub ledger_attempts: u64,
    /// How long the breaker stays open.
    pub breaker_open_ms: u64,
    /// How often the resumer retries unconfirmed ledger work.
    pub resume_interval_ms: u64,
}

impl SwitchTiming {
    pub fn of(config: &host_switch::config::Config) -> Self {
        SwitchTiming {
            ledger_timeout_ms: config.ledger.timeout_ms,
            ledger_attempts: config.ledger.retries as u64 + 1,
            breaker_open_ms: config.ledger.breaker.open_ms,
            resume_interval_ms: config.recovery.resume_interval_ms,
        }
    }

    /// The longest the resumer can go without changing the books while it still has work it
    /// can do: a breaker open period, one step's calls all timing out, two resume rounds.
    pub fn resumer_round_max(&self) -> Duration {
        Duration::from_millis(
            self.breaker_open_ms
                + self.ledger_attempts * self.ledger_timeout_ms
                + 2 * self.resume_interval_ms,
        )
    }
}

/// Starts the lab; an error says what did not come up and quotes the children's logs.
pub async fn setup(opts: &LabOptions) -> Result<RunningLab, LabError> {
    if opts.atms == 0 || opts.atms > MAX_ATMS {
        return Err(LabError::Start(format!(
            "--atms {}: 1 to {MAX_ATMS}",
            opts.atms
        )));
    }
    if !(0.0..=1.0).contains(&opts.bank_share) {
        return Err(LabError::Start(format!(
            "--bank-share {}: a share from 0 to 1",
            opts.bank_share
        )));
    }
    if opts.scenario == crate::Scenario::BankHostOutage && opts.bank_share <= 0.0 {
        return Err(LabError::Start(
            "--faults bank-host-outage needs bank customers: --bank-share above 0".into(),
        ));
    }
    let dir = work_dir(opts)?;
    // The children log to `<dir>/logs/<role>.log`: at the audit's filter, or warnings and errors
    // (quoted when the lab cannot start). `ATM_LAB_CHILD_LOG=info` sends them to stderr instead.
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).map_err(|source| LabError::File {
        path: logs.clone(),
        source,
    })?;
    let child_log = |role: &str| {
        let file = logs.join(format!("{role}.log"));
        match (&opts.audit, std::env::var("ATM_LAB_CHILD_LOG")) {
            (Some((_, filter)), _) => Some(ChildLog {
                file,
                filter: filter.clone(),
            }),
            (None, Ok(_)) => None,
            (None, Err(_)) => Some(ChildLog {
                file,
                filter: "warn".into(),
            }),
        }
    };
    let children_said = || {
        format!(
            "\n--- switch log (tail) ---\n{}\n--- agent log (tail) ---\n{}",
            children::log_tail(&logs.join("switch.log"), 15),
            children::log_tail(&logs.join("agent.log"), 15)
        )
    };
    // The agent certificate covers exactly the lab's terminal ids.
    let ids: Vec<String> = (0..opts.atms).map(terminal_id).collect();
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
        .map_err(LabError::Pki)?;

    // Ledger, in this process.
    let cards = lab_cards();
    let pins: Vec<String> = (0..cards.len()).map(lab_pin).collect();
    let keys = if opts.pins {
        Some(LabKeys::generate(opts.atms)?)
    } else {
        None
    };
    // The switch names cards by references keyed with its card reference key; the lab holds the
    // same key (fresh for the run) to name the ledger's accounts alike.
    let fresh_card_ref;
    let card_ref = match &keys {
        Some(k) => &k.card_reference,
        None => {
            fresh_card_ref = CustodianKey::generate_32()?;
            &fresh_card_ref
        }
    };
    let mut ledger_cfg = LedgerConfig::new(dir.path().join("ledger"));
    let currency = Profile::builtin(&opts.profile)
        .and_then(|p| p.currency.alpha())
        .unwrap_or("EUR");
    ledger_cfg.seeds = seeds(&cards, card_ref, currency)?;
    let ledger = LedgerServer::start(ledger_cfg)
        .await
        .map_err(|source| LabError::Ledger {
            what: "start",
            source,
        })?;

    // Switch, a child process.
    let switch_addr = free_port().map_err(LabError::FreePort)?;
    let journal_path = dir.path().join("journal");
    let switch_toml = dir.path().join("switch.toml");
    let switch_pin = match &keys {
        Some(k) => Some(prepare_switch_pins(k, dir.path(), &cards, &pins)?),
        None => None,
    };
    let (switch_store, switch_kek) = match &switch_pin {
        Some(p) => (p.store.clone(), p.kek_file.clone()),
        None => {
            let (kek, store) = prepare_card_ref_store(dir.path(), card_ref)?;
            (store, kek)
        }
    };
    let bank = start_bank(opts, card_ref, &switch_store, &switch_kek).await?;
    let bank_config = bank.as_ref().map(|b| {
        let zpk = b.zpk.as_ref().map(|_| bank::BANK_ZPK_NAME);
        configs::bank_host_config(b.host.addr(), zpk)
    });
    let switch_socket = dir.path().join("switch.sock");
    let switch_config = configs::switch_config(
        &files,
        switch_addr,
        &journal_path,
        &ledger.base_url(),
        &switch_socket,
        (&switch_store, &switch_kek),
        switch_pin.as_ref(),
        bank_config,
    );
    let switch_timing = SwitchTiming::of(&switch_config);
    configs::write(&switch_toml, &switch_config)?;
    let switch = ChildRole::spawn(&opts.exe, Role::Switch, &switch_toml, child_log("switch"))?;
    if !wait_listening(switch_addr, Duration::from_secs(30)).await {
        return Err(LabError::Start(format!(
            "the switch never listened on {switch_addr}{}",
            children_said()
        )));
    }
    let switch = Arc::new(Mutex::new(switch));

    // Relay and agent.
    let relay = Arc::new(Relay::start(switch_addr).await.map_err(LabError::Relay)?);
    let ndc_addr = free_port().map_err(LabError::FreePort)?;
    let agent_dir = dir.path().join("agent");
    let agent_toml = dir.path().join("agent.toml");
    let agent_kek = match &keys {
        Some(k) => Some(k.prepare_agent(dir.path())?),
        None => None,
    };
    configs::write(
        &agent_toml,
        &configs::agent_config(
            &files,
            ndc_addr,
            relay.addr,
            &agent_dir,
            opts.atms,
            agent_kek.as_deref(),
            &opts.profile,
        ),
    )?;
    let socket = agent_dir.join("atmctl.sock");
    let agent = Arc::new(Mutex::new(ChildRole::spawn(
        &opts.exe,
        Role::Agent,
        &agent_toml,
        child_log("agent"),
    )?));
    let (up, last) =
        children::wait_agent(&socket, Duration::from_secs(60), |s| s["uplink"] == "up").await;
    if !up {
        let switch_alive = switch.lock().unwrap().alive();
        return Err(LabError::Start(format!(
            "the agent's uplink never came up (switch process alive: {switch_alive}): {last:?}{}",
            children_said()
        )));
    }
    if let Some(k) = &keys {
        // Custodians enter the zone master key and each terminal's master key; the agent then
        // fetches the zone PIN key from the switch.
        children::load_keys_into_agent(k, &socket, &ids).await?;
        if !children::wait_zone_key(&socket, Duration::from_secs(30)).await {
            return Err(LabError::Start(
                "the agent never received the zone PIN key from the switch".into(),
            ));
        }
    }

    // Terminals.
    let profile = Arc::new(
        Profile::builtin(&opts.profile)
            .ok_or_else(|| LabError::Start(format!("no built-in profile {}", opts.profile)))?,
    );
    let atms = start_terminals(opts, keys.as_ref(), ndc_addr, &profile).await?;
    let bank_line = match &bank {
        Some(b) => format!(
            "bank host {} ({} % of customers)",
            b.host.addr(),
            (opts.bank_share * 100.0).round()
        ),
        None => "no bank host".into(),
    };
    eprintln!(
        "atm-lab: ledger {} | {bank_line} | switch {} (pid child) | agent NDC {} | {} ATMs | {} customers | faults {} | dir {}",
        ledger.base_url(),
        switch_addr,
        ndc_addr,
        opts.atms,
        opts.customers,
        opts.scenario.name(),
        dir.path().display()
    );
    Ok(RunningLab {
        dir,
        cards,
        pins,
        keys,
        ledger,
        bank,
        switch,
        switch_addr,
        switch_timing,
        journal_path,
        switch_pin,
        switch_socket,
        relay,
        agent,
        agent_dir,
        socket,
        ndc_addr,
        profile,
        atms,
    })
}

/// The other bank (with `--bank-share` above 0): its cards named as the switch's journal will
/// name them, its zone PIN key entered into the switch's store (with PIN security; the switch is
/// not running yet), and its host started with the cards, their PINs and that key.
async fn start_bank(
    opts: &LabOptions,
    card_ref: &CustodianKey,
    switch_store: &Path,
    switch_kek: &Path,
) -> Result<Option<BankSide>, LabError> {
    if opts.bank_share <= 0.0 {
        return Ok(None);
    }
    let cards = bank::bank_cards()
        .into_iter()
        .map(|c| {
            Ok(bank::BankCard {
                account: wallet_account(&c.pan, card_ref)?,
                ..c
            })
        })
        .collect::<Result<Vec<_>, LabError>>()?;
    let zpk = if opts.pins {
        Some(bank::load_host_zpk(switch_store, switch_kek)?)
    } else {
        None
    };
    bank::start(cards, zpk).await.map(Some)
}

fn work_dir(opts: &LabOptions) -> Result<WorkDir, LabError> {
    match &opts.audit {
        Some((d, _)) => {
            let logs = d.join("logs");
            std::fs::create_dir_all(&logs)
                .map_err(|source| LabError::File { path: logs, source })?;
            Ok(WorkDir::Kept(d.clone()))
        }
        None => tempfile::Builder::new()
            .prefix("atm-lab")
            .tempdir()
            .map(WorkDir::Temp)
            .map_err(|source| LabError::File {
                path: std::env::temp_dir(),
                source,
            }),
    }
}

/// Ledger seeds in the terminals' currency: every lab card rich, but the poor one.
fn seeds(
    cards: &[String],
    card_ref: &CustodianKey,
    currency: &str,
) -> Result<Vec<AccountSeed>, LabError> {
    cards
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(AccountSeed {
                account: wallet_account(p, card_ref)?,
                currency: currency.into(),
                balance_minor: if i == RICH_CARDS {
                    POOR_BALANCE_MINOR
                } else {
                    RICH_BALANCE_MINOR
                },
            })
        })
        .collect()
}

/// The card's wallet account: its reference keyed with the switch's card reference key.
fn wallet_account(pan: &str, card_ref: &CustodianKey) -> Result<String, LabError> {
    let parsed = Pan::parse(pan).map_err(|source| LabError::Card {
        card: pan.to_owned(),
        source,
    })?;
    let mac = card_ref.card_reference_mac(&parsed)?;
    Ok(WalletAccount::from_mac(&mac).as_str().to_owned())
}

/// The switch's keys entered into its store, the issuer's PVV file written.
fn prepare_switch_pins(
    keys: &LabKeys,
    dir: &Path,
    cards: &[String],
    pins: &[String],
) -> Result<SwitchPinFiles, LabError> {
    let (kek_file, store) = keys.prepare_switch(dir)?;
    let cards_file = dir.join("cards.toml");
    let issued = cards
        .iter()
        .zip(pins)
        .map(|(pan, pin)| {
            Ok(IssuedCard {
                reference: wallet_account(pan, &keys.card_reference)?,
                pan: pan.clone(),
                pin: pin.clone(),
            })
        })
        .collect::<Result<Vec<_>, LabError>>()?;
    std::fs::write(&cards_file, keys.cards_file_text(&issued)?).map_err(|source| {
        LabError::File {
            path: cards_file.clone(),
            source,
        }
    })?;
    Ok(SwitchPinFiles {
        kek_file,
        store,
        cards_file,
    })
}

/// Powers up every terminal, its PIN pad holding its master key; returns once all are in service.
async fn start_terminals(
    opts: &LabOptions,
    keys: Option<&LabKeys>,
    ndc_addr: SocketAddr,
    profile: &Arc<Profile>,
) -> Result<Vec<AtmSim>, LabError> {
    let mut atms = Vec::new();
    for i in 0..opts.atms {
        let master_key = match keys {
            Some(k) => Some(
                ClearKey::new(k.terminal_masters[i].combined.to_vec())
                    .map_err(LabError::MasterKey)?,
            ),
            None => None,
        };
        let options = AtmOptions {
            seed: opts.seed.wrapping_add(i as u64 + 1),
            master_key,
            // A `no-status` terminal fault goes on to the next customer at once instead of
            // staying silent past the agent's 90 s status timer: the agent is left as unsure.
            no_status_hold_ms: Some(0),
            // Customers go through the state table the agent downloaded, state by state, as a
            // real terminal would: nothing checks the lab's flows otherwise.
            state_table: true,
            ..AtmOptions::default()
        };
        let luno = crate::lab_luno(i, &opts.profile);
        let atm = AtmSim::connect(ndc_addr, profile.clone(), &luno, options)
            .await
            .map_err(|source| LabError::Atm {
                luno: luno.clone(),
                source,
            })?;
        atms.push(atm);
    }
    Ok(atms)
}
