//! # atm-load — the load generator
//!
//! Drives the host switch the way a fleet of agents does — many mutual-TLS connections, ISO 8583
//! with a 2-byte length, requests pipelined on every connection — and reports throughput and
//! latency percentiles beside a baseline measured in the same run: a bare framed echo server on
//! the same kind of connection, with the same messages and concurrency. The ratio says how much of
//! the transport's capacity the switch's own work (codec, journal, ledger) leaves.
//!
//! Phases run one after the other: echo baseline, authorizations (0100 → 0110), withdrawal sagas
//! (0100 → 0110 → 0220 → 0230). Every message has a key the switch has never seen (see [`transaction_keys`]),
//! so no figure comes from the replay path.
//!
//! Layout:
//! - [`transaction_keys`]: unique terminal/STAN/field-7 keys; [`messages`]: the 0100 and 0220 built as an
//!   agent builds them, and the answer fields the load reads;
//! - [`driver`]: one connection's pipelined loop and answer matching;
//! - [`stats`]: counts and percentiles; [`echo_server`]: the baseline server;
//! - [`in_process`]: ledger-sim and the switch in this process, when no switch is given.
//!
//! [`run`] is the entry point; `src/main.rs` is the `atm-load` command line over it.

#![forbid(unsafe_code)]

pub mod driver;
pub mod echo_server;
pub mod in_process;
pub mod messages;
pub mod stats;
pub mod transaction_keys;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mtls::rustls::ClientConfig;
use mtls::rustls_pki_types::ServerName;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::time::Instant;

pub use driver::Workload;
pub use in_process::{card_pans, card_seeds, LoadLab};
pub use stats::{Latency, PhaseReport};

use driver::{run_connection, ConnectionPlan};
use stats::ConnectionTally;
use transaction_keys::KeySpace;

/// Amount of every load withdrawal, in minor units (EUR 20.00).
pub const AMOUNT_MINOR_DEFAULT: u64 = 2_000;
/// Wallet cards the load spreads over (each is one ledger account).
pub const CARDS_DEFAULT: usize = 64;
/// How long a phase waits for outstanding answers once it stops sending.
pub const DRAIN: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("invalid options: {0}")]
    Options(String),
    #[error("TLS")]
    Tls(#[from] mtls::TlsError),
    #[error("cannot connect to {addr}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("load card {card}")]
    Card {
        card: String,
        #[source]
        source: protocols::types::ValueError,
    },
    #[error("could not make the in-process lab's temporary directory")]
    TempDir(#[source] std::io::Error),
    #[error("ledger-sim did not start in the in-process lab")]
    Ledger(#[source] ledger_sim::LedgerError),
    #[error("the in-process lab's switch configuration does not serialize")]
    SwitchConfigToml(#[source] toml::ser::Error),
    #[error("the in-process lab's switch configuration is refused")]
    SwitchConfig(#[source] host_switch::config::ConfigError),
    #[error("the in-process lab's key store: {0}")]
    Keys(String),
    #[error("the host switch did not start in the in-process lab")]
    Switch(#[source] host_switch::runtime::StartError),
    #[error("cannot build a message")]
    Field(#[from] protocols::iso8583::FieldError),
    #[error("cannot build a message of the agent-switch dialect")]
    Dialect(#[from] protocols::dialect::DialectError),
    #[error("a value of a load message is not valid")]
    Value(#[from] protocols::types::ValueError),
    #[error("cannot pack a message")]
    Pack(#[from] protocols::iso8583::PackError),
    #[error("unreadable answer")]
    Unpack(#[from] protocols::iso8583::UnpackError),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("a load connection task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// Where the switch is.
#[derive(Debug, Clone)]
pub enum Target {
    /// Start ledger-sim and the switch in this process (see [`in_process`]).
    InProcess,
    /// A running switch at `HOST:PORT`, with the agent certificate from a PKI directory as
    /// written by `mtls::TestPki::write_to_dir` (`ca.pem`, `agent.pem`, `agent.key`).
    External { switch: String, pki_dir: PathBuf },
}

/// Everything a run needs. `Default` is the command line's defaults.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub duration: Duration,
    pub connections: usize,
    /// Operations outstanding per connection.
    pub in_flight: usize,
    /// Operations started per second over all connections; `None` is flat out.
    pub rate: Option<u32>,
    pub cards: usize,
    pub amount_minor: u64,
    pub target: Target,
    /// Phases to run, in this order (normally echo, authorization, saga).
    pub phases: Vec<Workload>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            duration: Duration::from_secs(10),
            connections: 8,
            in_flight: 8,
            rate: None,
            cards: CARDS_DEFAULT,
            amount_minor: AMOUNT_MINOR_DEFAULT,
            target: Target::InProcess,
            phases: vec![Workload::Echo, Workload::Authorization, Workload::Saga],
        }
    }
}

impl LoadOptions {
    fn validate(&self) -> Result<(), LoadError> {
        let bad = |m: &str| Err(LoadError::Options(m.to_owned()));
        if self.duration.is_zero() {
            return bad("duration must be positive");
        }
        if !(1..=1024).contains(&self.connections) {
            return bad("connections must be 1 to 1024");
        }
        if !(1..=256).contains(&self.in_flight) {
            return bad("in-flight must be 1 to 256 (the switch's default per-connection limit)");
        }
        if self.rate == Some(0) {
            return bad("rate must be positive (leave it out to run flat out)");
        }
        if self.phases.is_empty() {
            return bad("at least one phase (echo, auth, saga)");
        }
        if self.cards == 0 || self.amount_minor == 0 {
            return bad("cards and amount must be positive");
        }
        Ok(())
    }
}

/// The figures of one run: one report per phase, and the flat summary of `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub connections: usize,
    pub in_flight: usize,
    pub rate: Option<u32>,
    pub duration_s: f64,
    pub echo: Option<PhaseReport>,
    pub auth: Option<PhaseReport>,
    pub saga: Option<PhaseReport>,
}

impl LoadReport {
    /// Authorizations per second as a share of the echo baseline's messages per second.
    pub fn ratio(&self) -> Option<f64> {
        match (&self.auth, &self.echo) {
            (Some(a), Some(e)) if e.tps > 0.0 => Some(a.tps / e.tps),
            _ => None,
        }
    }

    /// Errors over all phases.
    pub fn errors(&self) -> u64 {
        self.phases().map(|p| p.errors).sum()
    }

    /// Declined operations over the switch phases.
    pub fn declined(&self) -> u64 {
        self.auth
            .iter()
            .chain(self.saga.iter())
            .map(|p| p.declined)
            .sum()
    }

    pub fn phases(&self) -> impl Iterator<Item = &PhaseReport> {
        self.echo
            .iter()
            .chain(self.auth.iter())
            .chain(self.saga.iter())
    }

    /// One flat JSON object (`auth_tps`, `auth_p99_ms`, …, `ratio`, `errors`, `declined`) plus
    /// the full phase reports under `phases`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for (prefix, phase) in [
            ("echo", &self.echo),
            ("auth", &self.auth),
            ("saga", &self.saga),
        ] {
            let p = phase.clone().unwrap_or_default();
            out.insert(format!("{prefix}_tps"), round(p.tps).into());
            out.insert(format!("{prefix}_p50_ms"), round(p.latency.p50_ms).into());
            out.insert(format!("{prefix}_p99_ms"), round(p.latency.p99_ms).into());
        }
        out.insert("ratio".into(), self.ratio().map(round).into());
        out.insert("errors".into(), self.errors().into());
        out.insert("declined".into(), self.declined().into());
        out.insert("connections".into(), self.connections.into());
        out.insert("in_flight".into(), self.in_flight.into());
        out.insert("rate".into(), self.rate.into());
        out.insert("duration_s".into(), self.duration_s.into());
        out.insert(
            "phases".into(),
            serde_json::to_value(self.phases().collect::<Vec<_>>()).unwrap_or_default(),
        );
        serde_json::Value::Object(out)
    }

    /// A short table for people.
    pub fn to_table(&self) -> String {
        let mut s = format!(
            "atm-load: {} connections x {} in flight, {}, {:.0} s per phase\n",
            self.connections,
            self.in_flight,
            self.rate
                .map_or("flat out".to_owned(), |r| format!("{r}/s")),
            self.duration_s
        );
        s.push_str(&format!(
            "{:<6} {:>9} {:>9} {:>8} {:>6} {:>10} {:>8} {:>8} {:>8} {:>8}\n",
            "phase",
            "ops",
            "approved",
            "declined",
            "errors",
            "ops/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms"
        ));
        for p in self.phases() {
            s.push_str(&format!(
                "{:<6} {:>9} {:>9} {:>8} {:>6} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2}\n",
                p.name,
                p.operations,
                p.approved,
                p.declined,
                p.errors,
                p.tps,
                p.latency.p50_ms,
                p.latency.p90_ms,
                p.latency.p99_ms,
                p.latency.max_ms
            ));
        }
        if let Some(r) = self.ratio() {
            s.push_str(&format!("auth / echo = {r:.3}\n"));
        }
        s
    }
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Where the load connects and with which TLS client configuration.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub tls: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
}

/// Runs every phase of `options`: starts the lab first when the target is in-process, and the echo
/// server for the baseline; stops them at the end.
pub async fn run(options: &LoadOptions) -> Result<LoadReport, LoadError> {
    options.validate()?;
    match &options.target {
        Target::InProcess => {
            let lab = LoadLab::start(options.cards).await?;
            let endpoint = Endpoint {
                addr: lab.switch_addr(),
                tls: lab.client_tls()?,
                server_name: mtls::server_name("localhost")?,
            };
            let report = run_against(options, &endpoint).await;
            lab.shutdown().await;
            report
        }
        Target::External { switch, pki_dir } => {
            let files = mtls::ClientTlsFiles {
                cert: pki_dir.join("agent.pem"),
                key: pki_dir.join("agent.key"),
                server_ca: pki_dir.join("ca.pem"),
            };
            let tls = mtls::client_config(files)?;
            let host = switch
                .rsplit_once(':')
                .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
                .unwrap_or(switch);
            let addr = tokio::net::lookup_host(switch.as_str())
                .await
                .map_err(|source| LoadError::Connect {
                    addr: switch.clone(),
                    source,
                })?
                .next()
                .ok_or_else(|| LoadError::Options(format!("{switch} resolves to no address")))?;
            let endpoint = Endpoint {
                addr,
                tls,
                server_name: mtls::server_name(host)?,
            };
            run_against(options, &endpoint).await
        }
    }
}

/// Runs the phases of `options` against a switch already running at `switch` (the target in
/// `options` is ignored); the echo baseline runs on its own server in this process.
pub async fn run_against(
    options: &LoadOptions,
    switch: &Endpoint,
) -> Result<LoadReport, LoadError> {
    options.validate()?;
    let keys = Arc::new(KeySpace::new(mtls::pki::LAB_TERMINAL_IDS));
    let cards = Arc::new(card_pans(options.cards));
    let mut report = LoadReport {
        connections: options.connections,
        in_flight: options.in_flight,
        rate: options.rate,
        duration_s: options.duration.as_secs_f64(),
        echo: None,
        auth: None,
        saga: None,
    };
    for &workload in &options.phases {
        match workload {
            Workload::Echo => {
                let (server_tls, client_tls) = echo_server::lab_tls()?;
                let echo =
                    echo_server::start(SocketAddr::from(([127, 0, 0, 1], 0)), server_tls).await?;
                let endpoint = Endpoint {
                    addr: echo.local_addr,
                    tls: client_tls,
                    server_name: mtls::server_name("localhost")?,
                };
                let phase = run_phase(options, &endpoint, workload, &keys, &cards).await;
                echo.shutdown().await;
                report.echo = Some(phase?);
            }
            Workload::Authorization => {
                report.auth = Some(run_phase(options, switch, workload, &keys, &cards).await?)
            }
            Workload::Saga => {
                report.saga = Some(run_phase(options, switch, workload, &keys, &cards).await?)
            }
        }
    }
    Ok(report)
}

/// Opens every connection (handshakes are not measured), then runs the phase on all of them.
async fn run_phase(
    options: &LoadOptions,
    endpoint: &Endpoint,
    workload: Workload,
    keys: &Arc<KeySpace>,
    cards: &Arc<Vec<String>>,
) -> Result<PhaseReport, LoadError> {
    let connector = mtls::TlsConnector::from(endpoint.tls.clone());
    let mut streams = Vec::with_capacity(options.connections);
    for _ in 0..options.connections {
        let connect_err = |source| LoadError::Connect {
            addr: endpoint.addr.to_string(),
            source,
        };
        let tcp = TcpStream::connect(endpoint.addr)
            .await
            .map_err(connect_err)?;
        tcp.set_nodelay(true).map_err(connect_err)?;
        streams.push(
            connector
                .connect(endpoint.server_name.clone(), tcp)
                .await
                .map_err(connect_err)?,
        );
    }
    let interval = options
        .rate
        .map(|r| Duration::from_secs_f64(options.connections as f64 / f64::from(r)));
    let start = Instant::now();
    let tasks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(index, stream)| {
            let plan = ConnectionPlan {
                workload,
                index,
                duration: options.duration,
                in_flight: options.in_flight,
                interval,
                drain: DRAIN,
                keys: keys.clone(),
                cards: cards.clone(),
                amount_minor: options.amount_minor,
            };
            tokio::spawn(run_connection(stream, plan, start))
        })
        .collect();
    let mut total = ConnectionTally::default();
    for t in tasks {
        match t.await {
            Ok(tally) => total.merge(tally),
            Err(e) => return Err(LoadError::Task(e)),
        }
    }
    let name = match workload {
        Workload::Echo => "echo",
        Workload::Authorization => "auth",
        Workload::Saga => "saga",
    };
    Ok(total.into_report(name, start.elapsed()))
}
