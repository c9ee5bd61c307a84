//! # atm-lab — the whole system in one command
//!
//! [`run`] starts, in a temporary directory and with nothing to install: ledger-sim with seeded
//! wallet accounts (in this process), the host switch and one agent as child processes (the
//! lab executable re-run with `--role switch|agent --config FILE`, see [`role`]), a cuttable TCP
//! relay between them, mutual TLS from a fresh [`mtls::TestPki`], and N simulated NDC terminals
//! ([`atm_sim::AtmSim`], profile `ncr-selfserv-basic`, LUNO `00N` ↔ `ATM0000N`). Random
//! customers are spread over the terminals; a fault drill ([`drills::Scenario`]) may run beside
//! them. Afterwards the lab waits for the agent's queue to drain and for the switch to settle the
//! ledger holds it left open, stops the switch, and reconciles the terminals' counters, the switch
//! journal and the ledger's movements, failing on any hold neither captured nor voided
//! ([`reconcile`]).
//!
//! A run has three stages, one file each:
//! - [`setup`]: directory, PKI, keys, ledger, switch, relay, agent, terminals;
//! - [`traffic`]: the customers and the fault drill, putting everything back, the PIN drill
//!   ([`pin_drill`]);
//! - [`settle`]: closing inquiries, the technician's visit, draining the agent's queue, waiting
//!   for open holds to be settled, reconciling, the report.
//!
//! A share of the customers (`--bank-share`) use cards of another bank, which the switch
//! forwards over ISO 8583 to a bank host ([`bank`]: bankhost-sim in this process); the
//! reconciliation then also sets the switch journal's bank-route records beside the host's own
//! record.
//!
//! Beside them: [`children`] (the child processes and their control sockets), [`configs`] (the
//! children's configuration files, from the daemons' own types), [`drills`] and [`chaos`] (a
//! seeded mix of them), [`technician`] (`atmctl dispense`, `switchctl exceptions`), [`reconcile`]
//! (pure), [`report`] (table and JSON), [`role`] (the child side). Keys, the relay and the wait
//! helpers come from `testkit`, shared with the daemons' integration tests.
#![forbid(unsafe_code)]

pub mod bank;
pub mod chaos;
pub mod children;
pub mod configs;
pub mod drills;
pub mod pin_drill;
pub mod reconcile;
pub mod report;
pub mod role;
pub mod settle;
pub mod setup;
pub mod technician;
pub mod traffic;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use drills::Scenario;
pub use reconcile::Verdict;
pub use report::LabReport;

/// The profile every lab terminal runs.
pub const PROFILE: &str = "ncr-selfserv-basic";
/// Rich wallet cards, and one poor one (last) that runs into insufficient funds.
pub const RICH_CARDS: usize = 8;
pub const RICH_BALANCE_MINOR: u64 = 1_000_000_000;
pub const POOR_BALANCE_MINOR: u64 = 3_000;
/// Share of customers with a card of the other bank, unless `--bank-share` says otherwise.
pub const DEFAULT_BANK_SHARE: f64 = 0.2;
/// Most terminals one lab runs (one agent; the certificate is made for the ids in use).
pub const MAX_ATMS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("cannot start the lab: {0}")]
    Start(String),
    #[error("{}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run {} --role {role}", exe.display())]
    Spawn {
        exe: PathBuf,
        role: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("no free port on 127.0.0.1")]
    FreePort(#[source] std::io::Error),
    #[error("the relay between agent and switch")]
    Relay(#[source] std::io::Error),
    #[error("test PKI")]
    Pki(#[source] mtls::TlsError),
    #[error("keys")]
    Keys(#[from] testkit::custodian_keys::CustodianKeyError),
    #[error("{command}")]
    KeyEntry {
        command: String,
        #[source]
        source: atm_agent::cli::CliError,
    },
    #[error("the configuration {} does not serialize", path.display())]
    ConfigToml {
        path: PathBuf,
        #[source]
        source: toml::ser::Error,
    },
    #[error("ledger-sim: {what}")]
    Ledger {
        what: &'static str,
        #[source]
        source: ledger_sim::LedgerError,
    },
    #[error("reading the ledger's movements")]
    Movements(#[from] ledger_sim::client::FetchError),
    #[error("lab card {card}")]
    Card {
        card: String,
        #[source]
        source: protocols::types::ValueError,
    },
    #[error("terminal {luno}")]
    Atm {
        luno: String,
        #[source]
        source: atm_sim::AtmError,
    },
    #[error("a terminal's master key")]
    MasterKey(#[source] atm_sim::EppError),
    #[error("the switch journal: {what}")]
    Journal {
        what: &'static str,
        #[source]
        source: host_switch::ports::JournalError,
    },
    #[error("a lab task failed")]
    Task(#[source] tokio::task::JoinError),
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
    /// Share of customers (0 to 1) using cards of another bank, forwarded by the switch to the
    /// bank host (bankhost-sim in this process). 0: no bank host at all.
    pub bank_share: f64,
    /// The built-in firmware profile every simulated terminal runs (default [`PROFILE`]): its
    /// state table is what the simulated customers go through.
    pub profile: String,
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
            bank_share: DEFAULT_BANK_SHARE,
            profile: PROFILE.to_owned(),
            audit: None,
        }
    }
}

/// Terminal `i`'s LUNO in `profile`'s dialect: the test kit's `00N`, zero-filled to the
/// dialect's LUNO length (9 characters in Advance NDC).
pub fn lab_luno(i: usize, profile: &str) -> String {
    let len = firmware_profiles::Profile::builtin(profile).map_or(3, |p| p.dialect.luno_len);
    format!("{:0>len$}", testkit::terminals::luno(i))
}

/// The lab's cards: `RICH_CARDS` rich ones, then the poor one, then the PIN drill's (rich, used by
/// the PIN drill only).
pub fn lab_cards() -> Vec<String> {
    atm_load::card_pans(RICH_CARDS + 2)
}

/// Share of random customers who type a wrong PIN.
pub const WRONG_PIN_PERCENT: u8 = 4;

/// What an audit of a run needs: every secret the run made (to look for it where it must not be)
/// and where the run's logs and records are.
pub struct LabSecrets {
    /// Clear keys and key components, by label.
    pub keys: Vec<(String, zeroize::Zeroizing<Vec<u8>>)>,
    /// (PAN, PIN) of every card, the bank's included.
    pub cards: Vec<(String, String)>,
    pub dir: PathBuf,
    pub logs: PathBuf,
    pub switch_journal: PathBuf,
    pub agent_dir: PathBuf,
    /// The agent's key store and the KEK that opens it (to read the zone PIN key in an audit).
    pub agent_key_store: PathBuf,
    pub agent_kek: zeroize::Zeroizing<String>,
}

/// Runs the lab and reconciles; `Ok` whether or not the books agree (see `report.reconciled`).
pub async fn run(opts: &LabOptions) -> Result<LabReport, LabError> {
    run_audited(opts).await.map(|(report, _)| report)
}

/// [`run`], also returning the run's secrets and paths for an audit.
pub async fn run_audited(opts: &LabOptions) -> Result<(LabReport, LabSecrets), LabError> {
    let mut lab = setup::setup(opts).await?;
    let traffic = traffic::run(opts, &mut lab).await?;
    settle::settle(opts, lab, traffic).await
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
