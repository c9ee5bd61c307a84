//! Test harness: a real ledger-sim and a real switch on 127.0.0.1:0, test certificates made on
//! the fly, and the test kit's ISO 8583 client that speaks to the switch like an agent does. The
//! switch's configuration is built from its own config types and written as TOML.
//!
//! Every switch has a key store with the card reference key in it (it does not start without):
//! the tests' fixed key (`CustodianKey::test_card_reference`), entered before the switch starts,
//! so [`account`] names a card's wallet account as the switch derives it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use host_switch::breaker::BreakerConfig;
use host_switch::config::{
    Config, JournalConfig, KeysConfig, LedgerConfig, ListenConfig, PinConfig, RecoveryConfig,
    TlsConfig,
};
use host_switch::domain::routing::{Route, RouteEntry};
use host_switch::domain::WalletAccount;
use host_switch::runtime::{self, RunningSwitch};
use keystore::{KeyName, KeyStore};
use ledger_sim::RunningLedger;
use mtls::{PkiFiles, TestPki};
use protocols::types::Pan;
use testkit::custodian_keys::{CustodianKey, CARD_REF_KEY};

pub use testkit::iso_client::IsoClient;
pub use testkit::iso_messages::*;

pub const ALICE: &str = "4761739001010010";
pub const BOB_POOR: &str = "4761739001010028";
pub const BANK_CARD: &str = "5413330089020011";
pub const START_BALANCE: u64 = 100_000;

/// The card's wallet account (its keyed reference) under the tests' card reference key.
pub fn account(pan: &str) -> String {
    let mac = CustodianKey::test_card_reference()
        .card_reference_mac(&Pan::parse(pan).unwrap())
        .unwrap();
    WalletAccount::from_mac(&mac).as_str().to_owned()
}

/// A switch key store in `dir` holding the tests' card reference key only.
pub fn card_ref_keys(dir: &std::path::Path) -> KeysConfig {
    let (kek, store) =
        testkit::custodian_keys::prepare_card_ref_store(dir, &CustodianKey::test_card_reference())
            .unwrap();
    KeysConfig::with_kek_file(store, kek)
}

/// Enters the tests' card reference key into the store `keys` names, unless it is there (a test
/// that brings its own key store, for PINs, does not need to know).
pub fn ensure_card_ref_key(keys: &KeysConfig) {
    let store = runtime::open_key_store(keys).unwrap();
    if store
        .current(&KeyName::new(CARD_REF_KEY).unwrap())
        .unwrap()
        .is_none()
    {
        CustodianKey::test_card_reference()
            .load_card_reference(&store)
            .unwrap();
    }
}

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub pki: TestPki,
    pub files: PkiFiles,
    pub ledger: Option<RunningLedger>,
    pub ledger_addr: SocketAddr,
    pub switch: Option<RunningSwitch>,
    pub switch_addr: SocketAddr,
    /// Configuration added by a test: the control socket, key store and PIN verification.
    pub extra: ExtraConfig,
}

#[derive(Debug, Clone, Default)]
pub struct ExtraConfig {
    pub control_socket: Option<PathBuf>,
    pub keys: Option<KeysConfig>,
    pub pin: Option<PinConfig>,
    /// The bank host cards starting with 5 are routed to.
    pub bank: Option<host_switch::config::BankHostConfig>,
}

impl Lab {
    pub async fn start() -> Lab {
        Self::start_with(ExtraConfig::default()).await
    }

    /// A lab whose switch configuration has `extra` in it.
    pub async fn start_with(extra: ExtraConfig) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let (pki, files) = testkit::pki_in(dir.path());
        let ledger = testkit::ledger::start_seeded(
            dir.path(),
            &[(account(ALICE), START_BALANCE), (account(BOB_POOR), 1_000)],
        )
        .await;
        let ledger_addr = ledger.local_addr();
        let mut lab = Lab {
            dir,
            pki,
            files,
            ledger: Some(ledger),
            ledger_addr,
            switch: None,
            switch_addr: "127.0.0.1:0".parse().unwrap(),
            extra,
        };
        lab.start_switch().await;
        lab
    }

    /// The switch's configuration, written as a file would be (serialized from the switch's own
    /// config types) and parsed back as the switch parses its file.
    pub fn config(&self) -> Config {
        let mut ledger = LedgerConfig::new(format!("http://{}", self.ledger_addr));
        ledger.timeout_ms = 1000;
        ledger.retries = 1;
        ledger.breaker = BreakerConfig {
            window_calls: 20,
            minimum_calls: 10,
            open_ms: 300,
            half_open_calls: 3,
            ..BreakerConfig::default()
        };
        let mut cfg = Config::new(ListenConfig::new(self.switch_addr), ledger);
        cfg.control_socket = self.extra.control_socket.clone();
        cfg.tls = Some(TlsConfig {
            cert: self.files.switch_cert.clone(),
            key: self.files.switch_key.clone(),
            client_ca: self.files.ca.clone(),
        });
        cfg.journal = JournalConfig {
            path: self.journal_path(),
            ..JournalConfig::default()
        };
        cfg.recovery = RecoveryConfig {
            resume_interval_ms: 200,
        };
        cfg.routes = vec![
            RouteEntry {
                host: None,
                prefix: "476173".into(),
                route: Route::Wallet,
            },
            RouteEntry {
                host: None,
                prefix: "5".into(),
                route: Route::BankHost,
            },
        ];
        cfg.keys = Some(
            self.extra
                .keys
                .clone()
                .unwrap_or_else(|| self.default_keys()),
        );
        cfg.bank_hosts = self.extra.bank.iter().cloned().collect();
        // Without PIN rules the lab says so: its wallet route is exempt (the switch refuses to
        // start with a wallet route that is neither PIN-checked nor exempt).
        cfg.pin = Some(
            self.extra
                .pin
                .clone()
                .unwrap_or_else(|| PinConfig::exempt(["476173"])),
        );
        Config::parse(&toml::to_string(&cfg).unwrap(), "test").unwrap()
    }

    /// The key store of a lab without one of its own: the card reference key only.
    fn default_keys(&self) -> KeysConfig {
        let store = self.dir.path().join("switch-keys.json");
        KeysConfig::with_kek_file(store, self.dir.path().join("switch.kek"))
    }

    pub fn journal_path(&self) -> PathBuf {
        self.dir.path().join("journal")
    }

    pub async fn start_switch(&mut self) {
        let config = self.config();
        match &self.extra.keys {
            Some(keys) => ensure_card_ref_key(keys),
            None if !self.dir.path().join("switch-keys.json").exists() => {
                card_ref_keys(self.dir.path());
            }
            None => {}
        }
        let running = runtime::start(&config).await.unwrap();
        // Keep the port across restarts, as a real deployment does.
        self.switch_addr = running.local_addr;
        self.switch = Some(running);
    }

    pub async fn stop_switch(&mut self) {
        if let Some(s) = self.switch.take() {
            s.shutdown().await;
        }
    }

    pub fn ledger(&self) -> &RunningLedger {
        self.ledger.as_ref().unwrap()
    }

    pub fn switch(&self) -> &RunningSwitch {
        self.switch.as_ref().unwrap()
    }

    pub async fn client(&self) -> IsoClient {
        IsoClient::connect(self.switch_addr, &self.files)
            .await
            .unwrap()
    }

    pub async fn client_with(
        &self,
        cfg: Arc<mtls::rustls::ClientConfig>,
    ) -> std::io::Result<IsoClient> {
        IsoClient::connect_with(self.switch_addr, cfg).await
    }

    pub async fn balance(&self, pan: &str) -> serde_json::Value {
        testkit::ledger::balance(self.ledger(), &account(pan)).await
    }

    /// The ledger's movements made by the switch (opening balances left out).
    pub async fn movements(&self) -> Vec<serde_json::Value> {
        testkit::ledger::movements_one_page(self.ledger()).await
    }

    /// The invariant checked at the end of every test: the ledger's books balance, no hold was
    /// captured twice, and the ledger's movements equal the journal's captured/credited totals.
    pub async fn assert_books(&self) {
        testkit::ledger::assert_books_balance(self.ledger()).await;
        let rec = self.switch().switch.reconcile().await.unwrap();
        assert!(rec.is_reconciled(), "{rec:#?}");
        assert_eq!(
            rec.journal_captured_minor, rec.ledger_captured_minor,
            "{rec:#?}"
        );
    }
}
