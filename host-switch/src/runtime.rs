//! Wiring: builds the switch from its configuration and runs it. The only place where adapters
//! are chosen. Used by the `host-switch` binary and by the integration tests, so the tests run
//! exactly what production runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use keystore::{Kek, KekSource, KeyStore, SoftwareKeyStore};

use crate::adapters::bank_host::BankHost;
use crate::adapters::cards_file;
use crate::adapters::control::{self, ControlTarget};
use crate::adapters::iso_server::{AcquirerEndpoint, EndpointLimits};
use crate::adapters::ledger_http::HttpLedger;
use crate::adapters::sled_cards::{CardDataKeyError, CardDataSeal, SledCardPins};
use crate::adapters::sled_journal::{SledDb, SledJournal};
use crate::app::card_refs::{CardRefError, CardReferences};
use crate::app::pin::PinGuard;
use crate::app::zone_keys::{ZoneKeyError, ZoneKeys};
use crate::app::Switch;
use crate::breaker::CircuitBreaker;
use crate::config::{Config, KeysConfig, ListenMode};
use crate::ports::IssuerHost;

pub type WalletSwitch = Switch<HttpLedger, SledJournal>;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS")]
    Tls(#[source] mtls::TlsError),
    #[error("journal")]
    Journal(#[from] crate::ports::JournalError),
    #[error("ledger client")]
    Ledger(#[source] reqwest::Error),
    #[error("config: {0}")]
    Config(String),
    #[error("key store")]
    Keys(#[from] keystore::KeyStoreError),
    #[error(transparent)]
    Cards(#[from] cards_file::CardsFileError),
    #[error(transparent)]
    CardRefs(#[from] CardRefError),
    #[error(transparent)]
    CardData(#[from] CardDataKeyError),
    #[error("data directory")]
    DataDir(#[from] daemon::DataDirError),
    #[error("control socket {path}")]
    Control {
        path: String,
        source: std::io::Error,
    },
}

/// How long a stop waits for in-flight requests (within systemd's and docker's default 10 s).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// A running switch: its address, the switch itself (for reconciliation and tests), and shutdown.
pub struct RunningSwitch {
    pub local_addr: SocketAddr,
    pub switch: Arc<WalletSwitch>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningSwitch {
    /// Stops accepting, lets in-flight requests finish (each is journaled before it is
    /// answered), stops the resumer; gives up on what is still running after
    /// [`SHUTDOWN_GRACE`], whose pending work the next start resumes from the journal.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        for t in self.tasks {
            if tokio::time::timeout_at(deadline, t).await.is_err() {
                tracing::warn!(
                    grace_ms = SHUTDOWN_GRACE.as_millis() as u64,
                    "stop: work still running after the grace period is abandoned; the next start resumes it from the journal"
                );
                break;
            }
        }
    }
}

/// Opens the journal, connects the ledger client, binds the endpoint and starts serving.
pub async fn start(config: &Config) -> Result<RunningSwitch, StartError> {
    let routes = config.route_table().map_err(StartError::Config)?;
    config.validate_transport().map_err(StartError::Config)?;
    // Also for a configuration built in code: a wallet route nobody decided about must not
    // approve withdrawals with any PIN.
    for route in config.pin_exempt_routes().map_err(StartError::Config)? {
        tracing::warn!(target: "security", route = %route, "wallet route exempt from PIN verification (pin.exempt): its cards' PINs are not checked");
    }
    let db = open_journal_db(&config.journal.path)?;
    let journal = Arc::new(SledJournal::in_db(&db)?);
    let breaker = Arc::new(CircuitBreaker::new("ledger", config.ledger.breaker.clone()));
    let ledger = Arc::new(HttpLedger::new(&config.ledger, breaker).map_err(StartError::Ledger)?);
    let Some(keys) = &config.keys else {
        return Err(StartError::Config(format!(
            "card references need the key store: add a [keys] section (store, kek_file or kek_env) and create the card reference key with `host-switch keys generate {} --usage card_reference --config FILE`",
            config.card_refs.key
        )));
    };
    let zone = open_zone_keys(keys).await?;
    let card_refs = open_card_refs(config, &zone)?;
    let zone = Some(zone);
    // PINs are checked when there are rules (validation made them come with a cards file and
    // keys); an exempt-only [pin] checks none.
    let pins = match (&zone, &config.pin) {
        (Some(zone), Some(pin)) if !pin.bins.is_empty() => {
            Some(open_pin_guard(config, &db, zone.clone(), card_refs.clone()).await?)
        }
        _ => None,
    };
    let (shutdown, rx) = watch::channel(false);
    let (issuers, mut tasks) = start_bank_hosts(config, &db, &zone, rx.clone())?;
    let switch = Arc::new(
        Switch::new(ledger, journal, routes, card_refs.clone())
            .with_security(zone.clone(), pins.clone())
            .with_issuers(issuers),
    );

    let tls = match (config.listen.mode, &config.tls) {
        (ListenMode::Plain, _) => {
            tracing::warn!("acquirer endpoint in PLAIN TCP mode: for the lab only");
            None
        }
        (ListenMode::Tls, Some(files)) => {
            let crl = config.listen.client_crl.as_deref();
            let crls = mtls::Crls::load_optional(crl).map_err(StartError::Tls)?;
            let server = mtls::server_config_with_crls(
                mtls::ServerTlsFiles {
                    cert: files.cert.clone(),
                    key: files.key.clone(),
                    client_ca: files.client_ca.clone(),
                },
                crls,
            )
            .map_err(StartError::Tls)?;
            match crl {
                Some(crl) => {
                    tracing::info!(target: "security", crl = %crl.display(), "agent certificates are checked against the revocation list")
                }
                None => {
                    tracing::info!(target: "security", "no listen.client_crl: agent certificates are not checked for revocation")
                }
            }
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
        max_handshakes: config.listen.max_handshakes,
        handshake_timeout: Duration::from_millis(config.listen.handshake_timeout_ms),
    };
    let endpoint = AcquirerEndpoint::new(switch.clone(), tls, limits);
    let resumer = switch.clone().run_resumer(
        Duration::from_millis(config.recovery.resume_interval_ms),
        Duration::from_secs(config.journal.retention_secs),
        rx.clone(),
    );
    tasks.push(tokio::spawn(endpoint.run(listener, rx.clone())));
    tasks.push(tokio::spawn(resumer));
    if let Some(zone) = &zone {
        tasks.push(tokio::spawn(zone.clone().run(rx.clone())));
    }
    if let Some(path) = &config.control_socket {
        let listener = control::bind(path).map_err(|source| StartError::Control {
            path: path.display().to_string(),
            source,
        })?;
        let target = ControlTarget {
            zone,
            pins,
            exceptions: switch.clone(),
            bank_hosts: switch.issuers().to_vec(),
        };
        tasks.push(tokio::spawn(control::run(
            target,
            listener,
            path.clone(),
            rx,
        )));
        tracing::info!(socket = %path.display(), "control socket listening");
    }
    tracing::info!(%local_addr, ledger = %config.ledger.url, journal = %config.journal.path.display(), "host switch listening");
    Ok(RunningSwitch {
        local_addr,
        switch,
        shutdown,
        tasks,
    })
}

type Issuers = Vec<Arc<dyn IssuerHost>>;

/// Starts every `[[bank_hosts]]` entry's connections and advice queue. Their card data is sealed
/// under `[card_data] key` (made now if missing).
fn start_bank_hosts(
    config: &Config,
    db: &SledDb,
    zone: &Option<Arc<ZoneKeys>>,
    shutdown: watch::Receiver<bool>,
) -> Result<(Issuers, Vec<JoinHandle<()>>), StartError> {
    let mut issuers: Vec<Arc<dyn IssuerHost>> = Vec::new();
    let mut tasks = Vec::new();
    if config.bank_hosts.is_empty() {
        return Ok((issuers, tasks));
    }
    let seal = match zone {
        Some(zone) => {
            let name = config.card_data.key_name().map_err(StartError::Config)?;
            let (seal, made) = CardDataSeal::open_or_generate(zone.store().clone(), &name)?;
            if made {
                tracing::info!(key = %seal.current(), "data protection key generated");
            }
            Some(Arc::new(seal))
        }
        None => None,
    };
    for host in &config.bank_hosts {
        let (issuer, host_tasks) = BankHost::start(host, db, seal.clone(), shutdown.clone())
            .map_err(|e| StartError::Config(e.to_string()))?;
        issuers.push(issuer);
        tasks.extend(host_tasks);
    }
    Ok((issuers, tasks))
}

/// Reads the key-encryption key as configured (a 0600 file or an environment variable). A KEK
/// read from the environment is removed from it at once, so no child process (`stty` during key
/// entry, anything spawned later) inherits it. This runs at start-up, before any task that could
/// read the environment concurrently.
pub fn load_kek(keys: &KeysConfig) -> Result<Kek, StartError> {
    let kek = KekSource::from_config(keys.kek_file.as_deref(), keys.kek_env.as_deref())?.load()?;
    if let Some(var) = keys.kek_env.as_deref() {
        std::env::remove_var(var);
    }
    Ok(kek)
}

/// Opens (and locks) the key store file, and makes it private (0600) if it is not.
pub fn open_key_store(keys: &KeysConfig) -> Result<SoftwareKeyStore, StartError> {
    let store = SoftwareKeyStore::open(&keys.store, load_kek(keys)?)?;
    daemon::secure_file(&keys.store)?;
    Ok(store)
}

/// Opens the journal's sled directory as a private directory: created 0700 (or tightened, or
/// refused when another user owns it or others may write into it), and the files sled made with
/// the umask's mode set to 0600.
fn open_journal_db(path: &std::path::Path) -> Result<SledDb, StartError> {
    if let daemon::DirState::Tightened { mode_before } = daemon::secure_dir(path)? {
        tracing::warn!(target: "security", dir = %path.display(), mode_before = format!("{mode_before:04o}"), "journal directory was open to other users: now 0700");
    }
    let db = SledDb::open(path)?;
    daemon::tighten_files(path)?;
    Ok(db)
}

/// The key store and the zone PIN key: one is generated now if the ZMK is there and no ZPK is.
async fn open_zone_keys(keys: &KeysConfig) -> Result<Arc<ZoneKeys>, StartError> {
    let store: Arc<dyn KeyStore> = Arc::new(open_key_store(keys)?);
    let zone = Arc::new(ZoneKeys::new(
        store,
        keys.zpk_rotate_secs,
        keys.zpk_grace_secs,
    ));
    match zone.ensure_zpk().await {
        Ok(Some(info)) => {
            tracing::info!(zpk_version = info.version, kcv = %info.kcv, "zone PIN key generated")
        }
        Ok(None) => {}
        Err(e @ ZoneKeyError::NoZmk) => {
            tracing::warn!(error = %e, "agents cannot get a zone PIN key yet (0800/161 is answered 96)")
        }
        Err(e) => return Err(StartError::Config(format!("zone PIN key: {e}"))),
    }
    tracing::info!(store = %keys.store.display(), zpk_version = ?zone.current_version(), "key store open");
    Ok(zone)
}

/// Card references under `[card_refs] key`: without the key the switch does not start (the error
/// gives the command that makes it).
fn open_card_refs(config: &Config, zone: &ZoneKeys) -> Result<Arc<CardReferences>, StartError> {
    let name = config.card_refs.key_name().map_err(StartError::Config)?;
    let refs = CardReferences::open(zone.store().clone(), &name)?;
    tracing::info!(key = %refs.key(), "card references are keyed");
    Ok(Arc::new(refs))
}

/// The cards' PIN records (provisioned from the issuer's file, their data sealed under
/// `[card_data] key`, made now if missing) and the PIN step.
async fn open_pin_guard(
    config: &Config,
    db: &SledDb,
    zone: Arc<ZoneKeys>,
    card_refs: Arc<CardReferences>,
) -> Result<Arc<PinGuard>, StartError> {
    let Some((pin, cards_file)) = config
        .pin
        .as_ref()
        .and_then(|p| p.cards_file.as_ref().map(|f| (p, f)))
    else {
        return Err(StartError::Config("no pin.cards_file".into()));
    };
    let rules = config.bin_rules().map_err(StartError::Config)?;
    let name = config.card_data.key_name().map_err(StartError::Config)?;
    let (seal, made) = CardDataSeal::open_or_generate(zone.store().clone(), &name)?;
    if made {
        tracing::info!(key = %seal.current(), "data protection key generated: the cards' PIN data is sealed under it");
    }
    let cards = Arc::new(SledCardPins::in_db(db, seal)?);
    let listed = cards_file::load(cards_file)?;
    let report = crate::ports::CardPinStore::provision(cards.as_ref(), listed).await?;
    tracing::info!(file = %cards_file.display(), cards = report.cards, added = report.added, cleared = report.cleared, "cards' PIN data loaded");
    let guard = PinGuard::new(zone, cards, rules, pin.policy(), card_refs);
    guard
        .check_keys()
        .map_err(|e| StartError::Config(e.to_string()))?;
    Ok(Arc::new(guard))
}
