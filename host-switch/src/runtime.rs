//! Wiring: builds the switch from its configuration and runs it. The only place where adapters
//! are chosen. Used by the `host-switch` binary and by the integration tests, so the tests run
//! exactly what production runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::adapters::iso_server::{AcquirerEndpoint, EndpointLimits};
use crate::adapters::ledger_http::HttpLedger;
use crate::adapters::sled_journal::SledJournal;
use crate::app::Switch;
use crate::breaker::CircuitBreaker;
use crate::config::{Config, ListenMode};

pub type WalletSwitch = Switch<HttpLedger, SledJournal>;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("journal: {0}")]
    Journal(#[from] crate::ports::JournalError),
    #[error("ledger client: {0}")]
    Ledger(String),
    #[error("config: {0}")]
    Config(String),
}

/// A running switch: its address, the switch itself (for reconciliation and tests), and shutdown.
pub struct RunningSwitch {
    pub local_addr: SocketAddr,
    pub switch: Arc<WalletSwitch>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningSwitch {
    /// Stops accepting, lets in-flight requests finish, stops the resumer.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

/// Opens the journal, connects the ledger client, binds the endpoint and starts serving.
pub async fn start(config: &Config) -> Result<RunningSwitch, StartError> {
    let routes = config.route_table().map_err(StartError::Config)?;
    let journal = Arc::new(SledJournal::open(&config.journal.path)?);
    let breaker = Arc::new(CircuitBreaker::new("ledger", config.ledger.breaker.clone()));
    let ledger = Arc::new(
        HttpLedger::new(&config.ledger, breaker).map_err(|e| StartError::Ledger(e.to_string()))?,
    );
    let switch = Arc::new(Switch::new(ledger, journal, routes));

    let tls = match (config.listen.mode, &config.tls) {
        (ListenMode::Plain, _) => {
            tracing::warn!("acquirer endpoint in PLAIN TCP mode: for the lab only");
            None
        }
        (ListenMode::Tls, Some(files)) => {
            let server = mtls::server_config(mtls::ServerTlsFiles {
                cert: files.cert.clone(),
                key: files.key.clone(),
                client_ca: files.client_ca.clone(),
            })
            .map_err(|e| StartError::Tls(e.to_string()))?;
            Some(tokio_rustls::TlsAcceptor::from(server))
        }
        (ListenMode::Tls, None) => {
            return Err(StartError::Config(
                "listen.mode = \"tls\" needs a [tls] section".into(),
            ))
        }
    };
    let listener = TcpListener::bind(config.listen.address)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen.address,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.listen.address,
        source,
    })?;
    let limits = EndpointLimits {
        max_connections: config.listen.max_connections,
        max_in_flight_per_connection: config.listen.max_in_flight_per_connection,
        max_frame_bytes: config.listen.max_frame_bytes,
        idle_timeout: Duration::from_millis(config.listen.idle_timeout_ms),
    };
    let (shutdown, rx) = watch::channel(false);
    let endpoint = AcquirerEndpoint::new(switch.clone(), tls, limits);
    let resumer = switch.clone().run_resumer(
        Duration::from_millis(config.recovery.resume_interval_ms),
        rx.clone(),
    );
    let tasks = vec![
        tokio::spawn(endpoint.run(listener, rx)),
        tokio::spawn(resumer),
    ];
    tracing::info!(%local_addr, ledger = %config.ledger.url, journal = %config.journal.path.display(), "host switch listening");
    Ok(RunningSwitch {
        local_addr,
        switch,
        shutdown,
        tasks,
    })
}
