//! Wiring: builds the agent from its configuration and runs it — the one place adapters are
//! chosen. Used by the `atm-agent` binary and by the integration tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use firmware_profiles::Profile;
use protocols::framing::FrameCodec;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::adapters::control;
use crate::adapters::ndc_server::{NdcServer, Port};
use crate::adapters::state_store::{StateStore, VaultKey};
use crate::adapters::uplink::{Connector, Uplink};
use crate::app::pin_keys::PinKeys;
use crate::app::registry::Registry;
use crate::app::{forwarder, zone_keys, Services};
use crate::config::Config;
use crate::domain::advice::Advice;
use crate::ports::TerminalStore;
use crate::queue::SafQueue;

/// The agent's services over its production adapters: the uplink to the switch, the sled state
/// store and the sled store-and-forward queue.
pub type AgentServices = Services<Uplink, StateStore, SafQueue<Advice>>;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("config: {0}")]
    Config(String),
    #[error("terminal profile")]
    Profile(#[source] crate::ports::Cause),
    #[error("storage directory")]
    StorageDir(#[from] daemon::DataDirError),
    #[error("storage")]
    Storage(#[source] crate::ports::Cause),
    #[error("TLS")]
    Tls(#[source] crate::ports::Cause),
    #[error("keys")]
    Keys(#[from] keystore::KeyStoreError),
    #[error("cannot listen on {what}")]
    Listen {
        what: String,
        source: std::io::Error,
    },
}

pub struct RunningAgent {
    pub ndc_addr: SocketAddr,
    /// The bound address of each terminal's own port (`[[terminals]] listen`), by terminal id.
    pub terminal_addrs: HashMap<String, SocketAddr>,
    pub control_socket: PathBuf,
    pub services: Arc<AgentServices>,
    /// Stops the NDC side first: no new terminals, sessions end between customers.
    stop_terminals: watch::Sender<bool>,
    terminals: JoinHandle<()>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// How long a stop waits for customers in flight before it stops the uplink anyway. A customer
/// still at the terminal then is settled after the restart, from the durable record made before
/// the request left (a reversal if the answer never reached the terminal).
pub const TERMINALS_GRACE: Duration = Duration::from_secs(6);
/// How long the rest (sign-off, forwarder, control socket) gets after that.
pub const LINK_GRACE: Duration = Duration::from_secs(2);

impl RunningAgent {
    /// Stops in order: the terminals' sessions first (customers in flight are served while the
    /// uplink still runs), then the uplink (signs off), the forwarder and the control socket.
    /// Queued advices stay on disk; every wait is bounded.
    pub async fn shutdown(self) {
        let _ = self.stop_terminals.send(true);
        let mut terminals = self.terminals;
        if tokio::time::timeout(TERMINALS_GRACE, &mut terminals)
            .await
            .is_err()
        {
            terminals.abort();
            tracing::warn!(
                grace_ms = TERMINALS_GRACE.as_millis() as u64,
                "stop: a customer was still being served after the grace period; it is settled after the restart"
            );
        }
        let _ = self.shutdown.send(true);
        let deadline = tokio::time::Instant::now() + LINK_GRACE;
        for t in self.tasks {
            if tokio::time::timeout_at(deadline, t).await.is_err() {
                tracing::warn!("stop: a background task did not end in time and is abandoned");
                break;
            }
        }
    }
}

pub async fn start(config: &Config) -> Result<RunningAgent, StartError> {
    config.validate_transport().map_err(StartError::Config)?;
    let dir = &config.storage.dir;
    // Private whatever the umask: 0700, or refused when another user owns it or others may
    // write into it (the queue, the state and the key store live here).
    if let daemon::DirState::Tightened { mode_before } = daemon::secure_dir(dir)? {
        tracing::warn!(target: "security", dir = %dir.display(), mode_before = format!("{mode_before:04o}"), "storage directory was open to other users: now 0700");
    }
    let queue = Arc::new(
        SafQueue::open(dir.join("queue"), config.queue.clone())
            .map_err(|e| StartError::Storage(Box::new(e)))?,
    );
    // The key store is opened before the state: the card vault seals card numbers under its
    // data protection key (generated at the first start), those of earlier agents included.
    let keys = match &config.keys {
        Some(k) => Some(Arc::new(PinKeys::open(config, k)?)),
        None => None,
    };
    let vault = match &keys {
        Some(k) => Some(VaultKey::open_or_generate(k.shared_store())?),
        None => None,
    };
    let state = Arc::new(
        StateStore::open_with_vault(&dir.join("state"), vault)
            .map_err(|e| StartError::Storage(Box::new(e)))?
            .with_journal_limit(config.ej.lines_per_terminal),
    );
    // sled made its files with the umask's mode: 0600 (the directory is 0700 anyway), and the
    // key store too when it lives outside the storage directory.
    daemon::tighten_files(dir)?;
    if let Some(store) = config.key_store_path() {
        daemon::secure_file(&store)?;
    }
    forget_kek_env(config);

    let mut terminals = Vec::new();
    let registry = Arc::new(Registry::default());
    let mut codec: Option<(String, FrameCodec)> = None;
    for t in &config.terminals {
        let profile = Profile::resolve(&t.profile).map_err(|e| StartError::Profile(Box::new(e)))?;
        let c = FrameCodec::new(profile.framing.length_prefix)
            .with_header_len(profile.framing.header_len)
            .with_max_frame_len(profile.framing.max_frame_bytes);
        match &codec {
            None => codec = Some((profile.name.clone(), c)),
            Some((name, first)) if first.prefix() != c.prefix() || first.header_len() != c.header_len() => {
                return Err(StartError::Config(format!(
                    "terminals: profiles {name} and {} frame differently; serve them from separate agents",
                    profile.name
                )))
            }
            Some(_) => {}
        }
        registry.add(&t.terminal_id, &t.luno, &profile.name);
        terminals.push((t.clone(), profile));
    }
    let codec = codec
        .map(|(_, c)| c)
        .ok_or_else(|| StartError::Config("no terminals".into()))?;

    let tls = match (&config.tls, config.uplink.tls) {
        (Some(files), true) => Some(
            mtls::Crls::load_optional(config.uplink.server_crl.as_deref())
                .and_then(|crls| {
                    mtls::client_config_with_crls(
                        mtls::ClientTlsFiles {
                            cert: files.cert.clone(),
                            key: files.key.clone(),
                            server_ca: files.server_ca.clone(),
                        },
                        crls,
                    )
                })
                .map_err(|e| StartError::Tls(Box::new(e)))?,
        ),
        (None, true) => {
            return Err(StartError::Config(
                "uplink.tls needs a [tls] section".into(),
            ))
        }
        (_, false) => {
            tracing::warn!("uplink in PLAIN TCP mode: for the lab only");
            None
        }
    };
    let (shutdown, shutdown_rx) = watch::channel(false);
    let connector = Connector {
        address: config.uplink.address.clone(),
        server_name: config.uplink.server_name.clone(),
        tls,
        connect_timeout: Duration::from_millis(config.uplink.connect_timeout_ms),
    };
    let (uplink, mut late) = Uplink::start(&config.uplink, connector, shutdown_rx.clone());

    let svc = Arc::new(Services {
        uplink,
        queue,
        state,
        registry,
        forwarder: Arc::new(Notify::new()),
        authorization_timeout: Duration::from_millis(config.timeouts.authorization_ms),
        advice_timeout: Duration::from_millis(config.timeouts.advice_ms),
        max_notes: config.ndc.max_notes_per_dispense,
        max_malformed: config.ndc.max_malformed_in_a_row,
        keys,
        zone_master_loaded: Arc::new(Notify::new()),
        claims: Default::default(),
        acceptors: Arc::new(config.acceptors()),
    });
    for (terminal, pending) in svc.state.all_pending() {
        tracing::warn!(%terminal, tsn = pending.tsn, stan = %pending.stan, doubt = ?pending.doubt, "dispense in doubt from before the restart: settled by the terminal's counters or a technician (atmctl dispense ls)");
    }
    for t in &config.terminals {
        if let Ok(id) = protocols::types::TerminalId::parse(&t.terminal_id) {
            svc.count_in_doubt(&id);
        }
    }
    // A terminal held out of service stays so across restarts, until an operator releases it.
    for (terminal, reason) in svc
        .state
        .holds()
        .map_err(|e| StartError::Storage(Box::new(e)))?
    {
        tracing::warn!(target: "security", %terminal, reason, "terminal held out of service since before the restart: `atmctl terminal ID in-service` after a check");
        svc.registry
            .update(&terminal, |v| v.out_of_service_reason = Some(reason));
    }

    let listener = TcpListener::bind(config.ndc.listen)
        .await
        .map_err(|source| StartError::Listen {
            what: config.ndc.listen.to_string(),
            source,
        })?;
    let ndc_addr = listener.local_addr().map_err(|source| StartError::Listen {
        what: "ndc".into(),
        source,
    })?;
    let mut listeners = vec![(listener, Port::Shared)];
    let mut terminal_addrs = HashMap::new();
    for t in &config.terminals {
        let Some(own) = t.listen else { continue };
        let l = TcpListener::bind(own)
            .await
            .map_err(|source| StartError::Listen {
                what: format!("{own} (terminals.listen of {})", t.terminal_id),
                source,
            })?;
        let bound = l.local_addr().map_err(|source| StartError::Listen {
            what: format!("terminals.listen of {}", t.terminal_id),
            source,
        })?;
        terminal_addrs.insert(t.terminal_id.clone(), bound);
        listeners.push((l, Port::Terminal(t.terminal_id.clone())));
    }
    let control_socket = config.control_socket();
    let control_listener = control::bind(&control_socket).map_err(|source| StartError::Listen {
        what: control_socket.display().to_string(),
        source,
    })?;

    let (stop_terminals, stop_terminals_rx) = watch::channel(false);
    let terminals_task = tokio::spawn(
        NdcServer::new(svc.clone(), terminals, codec, config.ndc.max_connections)
            .run(listeners, stop_terminals_rx),
    );
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(forwarder::run(
        svc.clone(),
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(control::run(
        svc.clone(),
        control_listener,
        control_socket.clone(),
        shutdown_rx.clone(),
    )));
    if let Some(keys) = svc.keys.clone() {
        let svc = svc.clone();
        let shutdown = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            zone_keys::run(keys, &svc.uplink, svc.zone_master_loaded.clone(), shutdown).await
        }));
    }
    let mut stop_late = shutdown_rx.clone();
    tasks.push(tokio::spawn(async move {
        // Late answers: an 0100 that timed out already has its reversal queued; an advice's late
        // answer is harmless (the advice is resent and answered from the switch's record).
        loop {
            let m = tokio::select! {
                m = late.recv() => m,
                _ = stop_late.wait_for(|s| *s) => None,
            };
            let Some(m) = m else { break };
            tracing::info!(mti = %m.mti(), code = m.get_str(39).unwrap_or(""), "late response handled");
        }
    }));
    tracing::info!(%ndc_addr, switch = %config.uplink.address, socket = %control_socket.display(), "atm-agent running");
    Ok(RunningAgent {
        ndc_addr,
        terminal_addrs,
        control_socket,
        services: svc,
        stop_terminals,
        terminals: terminals_task,
        shutdown,
        tasks,
    })
}

/// A KEK read from an environment variable is removed from the environment once the key store
/// is open, so no child process inherits it. Start-up runs this before any task that could read
/// the environment concurrently.
fn forget_kek_env(config: &Config) {
    if let Some(var) = config.keys.as_ref().and_then(|k| k.kek_env.as_deref()) {
        std::env::remove_var(var);
    }
}
