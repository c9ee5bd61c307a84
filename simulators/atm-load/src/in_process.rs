//! The system under load when no switch is given (`--switch` left out): ledger-sim and the host switch in this process,
//! on 127.0.0.1:0, in a temporary directory — a durable sled journal, mutual TLS with a fresh
//! test PKI, breaker and timeouts at their defaults, and wallet accounts seeded with enough money
//! for any run. The switch's key store holds a fresh card reference key only (the switch needs it
//! to name accounts); the ledger's accounts are derived through it before the switch starts.

use std::net::SocketAddr;
use std::sync::Arc;

use host_switch::app::card_refs::CardReferences;
use host_switch::config::{
    Config, JournalConfig, KeysConfig, LedgerConfig, ListenConfig, PinConfig, TlsConfig,
};
use host_switch::domain::routing::{Route, RouteEntry};
use host_switch::runtime::{self, RunningSwitch};
use mtls::rustls::ClientConfig;
use mtls::{PkiFiles, TestPki};
use protocols::types::Pan;

use super::LoadError;
use ledger_sim::{AccountSeed, LedgerConfig as LedgerSimConfig, LedgerServer, RunningLedger};

/// Opening balance of every load card: enough for millions of withdrawals.
pub const CARD_BALANCE_MINOR: u64 = 1_000_000_000_000;

/// The wallet cards the load uses: `4761739` (routed to the wallet) followed by a 9-digit index.
/// A ledger under external load must have their accounts (see [`card_seeds`]).
pub fn card_pans(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("4761739{i:09}")).collect()
}

/// Ledger seeds for the load cards, their accounts named through the switch's card references.
pub fn card_seeds(
    refs: &CardReferences,
    count: usize,
    balance_minor: u64,
) -> Result<Vec<AccountSeed>, LoadError> {
    card_pans(count)
        .iter()
        .map(|p| {
            let pan = Pan::parse(p).map_err(|source| LoadError::Card {
                card: p.clone(),
                source,
            })?;
            let account = refs
                .account(&pan)
                .map_err(|e| LoadError::Keys(e.to_string()))?;
            Ok(AccountSeed {
                account: account.as_str().to_owned(),
                currency: "EUR".into(),
                balance_minor,
            })
        })
        .collect()
}

/// Ledger and switch running in this process.
pub struct LoadLab {
    // Dropped last: the journal and the ledger database live in it.
    _dir: tempfile::TempDir,
    pub files: PkiFiles,
    pub ledger: RunningLedger,
    pub switch: RunningSwitch,
}

impl LoadLab {
    /// Starts ledger-sim with `cards` seeded accounts, then the switch in front of it.
    pub async fn start(cards: usize) -> Result<LoadLab, LoadError> {
        let dir = tempfile::tempdir().map_err(LoadError::TempDir)?;
        let files = TestPki::try_generate()?.write_to_dir(dir.path())?;
        let mut ledger_cfg = LedgerSimConfig::new(dir.path().join("ledger"));
        let keys = card_ref_store(dir.path())?;
        ledger_cfg.seeds = card_seeds(&open_card_refs(&keys)?, cards, CARD_BALANCE_MINOR)?;
        let ledger = LedgerServer::start(ledger_cfg)
            .await
            .map_err(LoadError::Ledger)?;
        let config = switch_config(
            &files,
            dir.path().join("journal").as_path(),
            ledger.local_addr(),
            keys,
        )?;
        let switch = runtime::start(&config).await.map_err(LoadError::Switch)?;
        Ok(LoadLab {
            _dir: dir,
            files,
            ledger,
            switch,
        })
    }

    pub fn switch_addr(&self) -> SocketAddr {
        self.switch.local_addr
    }

    /// The agent side of the lab PKI (certificate covering the lab terminal ids).
    pub fn client_tls(&self) -> Result<Arc<ClientConfig>, LoadError> {
        Ok(mtls::client_config(self.files.client_files())?)
    }

    pub async fn shutdown(self) {
        self.switch.shutdown().await;
        if let Err(e) = self.ledger.shutdown().await {
            tracing::warn!(error = %e, "ledger-sim did not stop cleanly");
        }
    }
}

/// A key store for the switch in `dir` with a fresh KEK (file 0600) and a fresh card reference
/// key, as `host-switch keys generate cardref --usage card_reference` makes it.
fn card_ref_store(dir: &std::path::Path) -> Result<KeysConfig, LoadError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let keys_err = |e: &dyn std::fmt::Display| LoadError::Keys(e.to_string());
    let (_, kek_hex) = keystore::Kek::generate().map_err(|e| keys_err(&e))?;
    let kek_file = dir.join("switch.kek");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&kek_file)
        .map_err(|e| keys_err(&e))?;
    f.write_all(kek_hex.as_bytes()).map_err(|e| keys_err(&e))?;
    let keys = KeysConfig::with_kek_file(dir.join("switch-keys.json"), kek_file);
    let store = runtime::open_key_store(&keys).map_err(|e| keys_err(&e))?;
    host_switch::cli::keys::generate(&store, "cardref", "card_reference")
        .map_err(|e| keys_err(&e))?;
    Ok(keys)
}

/// The switch's card references from its store (closed again on return: the switch locks it).
fn open_card_refs(keys: &KeysConfig) -> Result<CardReferences, LoadError> {
    let keys_err = |e: &dyn std::fmt::Display| LoadError::Keys(e.to_string());
    let store = runtime::open_key_store(keys).map_err(|e| keys_err(&e))?;
    let name = keystore::KeyName::new("cardref").map_err(|e| keys_err(&e))?;
    CardReferences::open(Arc::new(store), &name).map_err(|e| keys_err(&e))
}

/// The switch configuration of the lab: defaults everywhere except addresses and files, built
/// from the switch's own config types and checked as the switch checks its file.
fn switch_config(
    files: &PkiFiles,
    journal: &std::path::Path,
    ledger: SocketAddr,
    keys: KeysConfig,
) -> Result<Config, LoadError> {
    let mut config = Config::new(
        ListenConfig::new(SocketAddr::from(([127, 0, 0, 1], 0))),
        LedgerConfig::new(format!("http://{ledger}")),
    );
    config.tls = Some(TlsConfig {
        cert: files.switch_cert.clone(),
        key: files.switch_key.clone(),
        client_ca: files.ca.clone(),
    });
    config.journal = JournalConfig {
        path: journal.to_owned(),
        ..JournalConfig::default()
    };
    config.routes = vec![RouteEntry {
        host: None,
        prefix: "476173".into(),
        route: Route::Wallet,
    }];
    // The load lab sends no PINs: its wallet route is exempt, said explicitly.
    config.pin = Some(PinConfig::exempt(["476173"]));
    config.keys = Some(keys);
    let text = toml::to_string(&config).map_err(LoadError::SwitchConfigToml)?;
    Config::parse(&text, "atm-load lab").map_err(LoadError::SwitchConfig)
}
