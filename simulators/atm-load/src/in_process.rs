//! The system under load when no switch is given (`--switch` left out): ledger-sim and the host switch in this process,
//! on 127.0.0.1:0, in a temporary directory — a durable sled journal, mutual TLS with a fresh
//! test PKI, breaker and timeouts at their defaults, and wallet accounts seeded with enough money
//! for any run.

use std::net::SocketAddr;
use std::sync::Arc;

use host_switch::config::{Config, JournalConfig, LedgerConfig, ListenConfig, TlsConfig};
use host_switch::domain::routing::{Route, RouteEntry};
use host_switch::domain::WalletAccount;
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

/// Ledger seeds (`ACCOUNT:EUR:MINOR`) for the load cards.
pub fn card_seeds(count: usize, balance_minor: u64) -> Result<Vec<AccountSeed>, LoadError> {
    card_pans(count)
        .iter()
        .map(|p| {
            let pan = Pan::parse(p).map_err(|source| LoadError::Card {
                card: p.clone(),
                source,
            })?;
            Ok(AccountSeed {
                account: WalletAccount::for_card(&pan).as_str().to_owned(),
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
        ledger_cfg.seeds = card_seeds(cards, CARD_BALANCE_MINOR)?;
        let ledger = LedgerServer::start(ledger_cfg)
            .await
            .map_err(LoadError::Ledger)?;
        let config = switch_config(
            &files,
            dir.path().join("journal").as_path(),
            ledger.local_addr(),
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

/// The switch configuration of the lab: defaults everywhere except addresses and files, built
/// from the switch's own config types and checked as the switch checks its file.
fn switch_config(
    files: &PkiFiles,
    journal: &std::path::Path,
    ledger: SocketAddr,
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
        prefix: "476173".into(),
        route: Route::Wallet,
    }];
    let text = toml::to_string(&config).map_err(LoadError::SwitchConfigToml)?;
    Config::parse(&text, "atm-load lab").map_err(LoadError::SwitchConfig)
}
