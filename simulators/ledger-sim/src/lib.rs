//! # ledger-sim — the wallet ledger simulator
//!
//! A real HTTP service with the contract in `openapi/ledger-v1.json`: holds, captures, voids,
//! deposits and compensations, balances and a movement list for reconciliation. The host switch
//! talks to it exactly as it would talk to a real wallet, so a wallet team can implement the same
//! contract and swap it in.
//!
//! Layout (one job per module):
//! - [`domain`]: accounts, holds, postings and the double-entry invariant. No I/O.
//! - [`store`]: sled trees, one multi-tree transaction per operation (effect + idempotency record
//!   atomically), a shared flush (`group-commit`) before any answer.
//! - [`http`]: axum routes, request parsing, error bodies.
//! - [`faults`]: latency, error rate and "down" (before the books), lost answers (after them),
//!   set from the command line, `PUT /admin/faults` or [`RunningLedger::faults`].
//! - [`connection`]: the listener whose connections a lost answer of mode `drop` cuts.
//! - [`client`]: reads the movements back over HTTP (reconciliation, tests).
//!
//! `src/main.rs` is the `ledger-sim` command line over [`LedgerServer`].
//!
//! This file wires them: [`LedgerServer::start`] opens the store, seeds accounts, binds the
//! listener and serves until [`RunningLedger::shutdown`].

#![forbid(unsafe_code)]

pub mod client;
pub mod connection;
pub mod domain;
pub mod faults;
pub mod http;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

pub use faults::{FaultConfig, Faults, LostAnswer, LostAnswers};
pub use store::{HoldList, Invariants};

use connection::{ConnectionCutter, CuttableListener};
use domain::{Currency, CustomerAccount, DomainError, HoldStatus};
use store::{OpenAccount, Store, StoreError};

/// Default cap on requests handled at once (past it: 503 `overloaded`).
pub const IN_FLIGHT_MAX_DEFAULT: usize = 4_096;
/// How long shutdown waits for in-flight requests before giving up on them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("could not open the ledger database at {path}: {source}")]
    OpenDb { path: PathBuf, source: StoreError },
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "invalid seed {seed:?}: {reason} (expected ACCOUNT:CURRENCY:MINOR, e.g. alice:EUR:100000)"
    )]
    Seed { seed: String, reason: String },
    #[error("invalid seed {seed:?}")]
    SeedValue {
        seed: String,
        #[source]
        source: DomainError,
    },
    #[error("could not seed account {account}: {source}")]
    Seeding { account: String, source: StoreError },
    #[error("invalid fault settings: {0}")]
    Faults(#[from] faults::FaultConfigError),
    #[error("ledger storage failure: {0}")]
    Store(#[from] StoreError),
    #[error("the ledger server task failed")]
    ServerTask(#[source] tokio::task::JoinError),
    #[error("the ledger server failed")]
    Serve(#[source] std::io::Error),
    #[error("in-flight requests did not finish within {0:?}")]
    ShutdownTimeout(Duration),
}

/// An account to open at start (skipped if it already exists in the database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSeed {
    pub account: String,
    pub currency: String,
    pub balance_minor: u64,
}

impl std::str::FromStr for AccountSeed {
    type Err = LedgerError;

    /// Parses `ACCOUNT:CURRENCY:MINOR`, e.g. `alice:EUR:100000`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason: &str| LedgerError::Seed {
            seed: text.to_owned(),
            reason: reason.to_owned(),
        };
        let mut parts = text.rsplitn(3, ':');
        let minor = parts.next().ok_or_else(|| fail("missing amount"))?;
        let currency = parts.next().ok_or_else(|| fail("missing currency"))?;
        let account = parts.next().ok_or_else(|| fail("missing account"))?;
        let balance_minor = minor
            .parse()
            .map_err(|_| fail("amount is not a whole number of minor units"))?;
        Ok(AccountSeed {
            account: account.to_owned(),
            currency: currency.to_owned(),
            balance_minor,
        })
    }
}

/// Everything [`LedgerServer::start`] needs.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// Where to listen; port 0 picks a free port (see [`RunningLedger::local_addr`]).
    pub listen: SocketAddr,
    /// The sled database directory; created if missing, reopened with all state if present.
    pub db_path: PathBuf,
    pub seeds: Vec<AccountSeed>,
    pub faults: FaultConfig,
    pub in_flight_max: usize,
}

impl LedgerConfig {
    /// Listen on `127.0.0.1:0`, no seeds, no faults.
    pub fn new(db_path: impl Into<PathBuf>) -> Self {
        LedgerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            db_path: db_path.into(),
            seeds: Vec::new(),
            faults: FaultConfig::default(),
            in_flight_max: IN_FLIGHT_MAX_DEFAULT,
        }
    }
}

/// Entry point of the simulator as a library.
pub struct LedgerServer;

impl LedgerServer {
    /// Opens the database, opens the seed accounts, binds and starts serving.
    pub async fn start(config: LedgerConfig) -> Result<RunningLedger, LedgerError> {
        let faults = Faults::new(config.faults)?;
        let seeds = config
            .seeds
            .iter()
            .map(parse_seed)
            .collect::<Result<Vec<_>, _>>()?;
        let path = config.db_path.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&path))
            .await
            .map_err(LedgerError::ServerTask)?
            .map_err(|source| LedgerError::OpenDb {
                path: config.db_path.clone(),
                source,
            })?;
        let store = Arc::new(store);

        for seed in seeds {
            let account = seed.account.as_str().to_owned();
            let opened = store
                .write(move |s| s.open_account(&seed, &http::now()))
                .await
                .map_err(|source| LedgerError::Seeding {
                    account: account.clone(),
                    source,
                })?;
            tracing::info!(%account, existed = opened.replayed, balance_minor = opened.value.balance_minor, "seed account");
        }

        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| LedgerError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| LedgerError::Bind {
            addr: config.listen,
            source,
        })?;
        let app = http::router(http::AppState {
            store: store.clone(),
            faults: faults.clone(),
            in_flight: Arc::new(Semaphore::new(config.in_flight_max.max(1))),
        });
        let (server_stop, mut server_stop_rx) = watch::channel(false);
        // Each request carries a handle on its own connection, for lost answers of mode `drop`.
        let app = app.into_make_service_with_connect_info::<ConnectionCutter>();
        let listener = CuttableListener::new(listener);
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = server_stop_rx.wait_for(|stop| *stop).await;
                })
                .await
        });
        tracing::info!(%local_addr, db = %config.db_path.display(), "ledger-sim listening");
        Ok(RunningLedger {
            local_addr,
            faults,
            store,
            server,
            server_stop,
        })
    }
}

fn parse_seed(seed: &AccountSeed) -> Result<OpenAccount, LedgerError> {
    let text = format!("{}:{}:{}", seed.account, seed.currency, seed.balance_minor);
    let fail = |source: DomainError| LedgerError::SeedValue {
        seed: text.clone(),
        source,
    };
    Ok(OpenAccount {
        account: CustomerAccount::parse(&seed.account).map_err(fail)?,
        currency: Currency::parse(&seed.currency).map_err(fail)?,
        balance_minor: seed.balance_minor,
    })
}

/// A ledger serving in this process.
pub struct RunningLedger {
    local_addr: SocketAddr,
    faults: Faults,
    store: Arc<Store>,
    server: JoinHandle<std::io::Result<()>>,
    server_stop: watch::Sender<bool>,
}

impl RunningLedger {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// The live fault settings; changes apply to the next request.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The consistency check of `GET /admin/invariants`, without HTTP.
    pub async fn invariants(&self) -> Result<Invariants, LedgerError> {
        Ok(self.store.read(|s| s.invariants()).await?)
    }

    /// The holds in `status` (all when `None`), oldest first, at most `limit`: what
    /// `GET /admin/holds` answers, without HTTP.
    pub async fn holds(
        &self,
        status: Option<HoldStatus>,
        limit: usize,
    ) -> Result<HoldList, LedgerError> {
        Ok(self.store.read(move |s| s.holds(status, limit)).await?)
    }

    /// Stops accepting, lets in-flight requests finish (up to [`SHUTDOWN_GRACE`]), flushes and
    /// closes the database, so the same path can be opened again at once.
    pub async fn shutdown(self) -> Result<(), LedgerError> {
        let _ = self.server_stop.send(true);
        let mut server = self.server;
        let served = match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
            Ok(joined) => joined
                .map_err(LedgerError::ServerTask)
                .and_then(|r| r.map_err(LedgerError::Serve)),
            Err(_) => {
                server.abort();
                let _ = server.await;
                Err(LedgerError::ShutdownTimeout(SHUTDOWN_GRACE))
            }
        };
        let store = self.store;
        let flushed = tokio::task::spawn_blocking(move || {
            let result = store.flush_now();
            drop(store);
            result
        })
        .await
        .map_err(LedgerError::ServerTask)?;
        tracing::info!(addr = %self.local_addr, "ledger-sim stopped");
        served?;
        Ok(flushed?)
    }
}
