//! Test harness: a real ledger-sim, a real host switch (mutual TLS, sled journal), the agent under
//! test, simulated NDC terminals (atm-sim), and the lab's TCP relay between agent and switch, cut
//! to play a network outage.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use atm_agent::config::Config as AgentConfig;
use atm_agent::runtime::RunningAgent;
use firmware_profiles::Profile;
use host_switch::config::Config as SwitchConfig;
use host_switch::domain::WalletAccount;
use host_switch::runtime::RunningSwitch;
use mtls::{PkiFiles, TestPki};
use protocols::types::Pan;
use simulators::atm::{AtmOptions, AtmSim};
use simulators::lab::procs::Relay;
use simulators::ledger::{AccountSeed, LedgerConfig, LedgerServer, RunningLedger};

pub const ALICE: &str = "4761739001010010";
pub const BOB: &str = "4761739001010028";
pub const START: u64 = 1_000_000;

pub fn account(pan: &str) -> String {
    WalletAccount::for_card(&Pan::parse(pan).unwrap())
        .as_str()
        .to_owned()
}

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub pki: TestPki,
    pub files: PkiFiles,
    pub ledger: RunningLedger,
    pub switch: RunningSwitch,
    pub relay: Relay,
    pub agent: Option<RunningAgent>,
}

impl Lab {
    pub async fn start() -> Lab {
        // RUST_LOG=info cargo test … shows the agent's, switch's and simulator's logs.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate();
        let files = pki.write_to_dir(dir.path()).unwrap();
        let mut cfg = LedgerConfig::new(dir.path().join("ledger"));
        cfg.seeds = [ALICE, BOB]
            .iter()
            .map(|p| AccountSeed {
                account: account(p),
                currency: "EUR".into(),
                balance_minor: START,
            })
            .collect();
        let ledger = LedgerServer::start(cfg).await.unwrap();
        let switch_cfg = SwitchConfig::parse(
            &format!(
                r#"
                [listen]
                address = "127.0.0.1:0"
                [tls]
                cert = "{}"
                key = "{}"
                client_ca = "{}"
                [journal]
                path = "{}"
                [ledger]
                url = "{}"
                [recovery]
                resume_interval_ms = 200
                [[routes]]
                prefix = "476173"
                route = "wallet"
                "#,
                files.switch_cert.display(),
                files.switch_key.display(),
                files.ca.display(),
                dir.path().join("journal").display(),
                ledger.base_url(),
            ),
            "test switch",
        )
        .unwrap();
        let switch = host_switch::runtime::start(&switch_cfg).await.unwrap();
        let relay = Relay::start(switch.local_addr).await.unwrap();
        let mut lab = Lab {
            dir,
            pki,
            files,
            ledger,
            switch,
            relay,
            agent: None,
        };
        lab.start_agent().await;
        lab
    }

    /// Everything but the agent (the test runs it as a process of its own).
    pub async fn start_without_agent() -> Lab {
        let mut lab = Self::start().await;
        if let Some(a) = lab.agent.take() {
            a.shutdown().await;
        }
        lab
    }

    pub fn agent_dir(&self) -> PathBuf {
        self.dir.path().join("agent")
    }

    /// The agent's configuration; the NDC port is fixed after the first start so terminals can
    /// reconnect to a restarted agent.
    pub fn agent_config_text(&self, ndc: &str) -> String {
        format!(
            r#"
            [ndc]
            listen = "{ndc}"
            [[terminals]]
            luno = "001"
            terminal_id = "ATM00001"
            profile = "ncr-selfserv-basic"
            [[terminals]]
            luno = "002"
            terminal_id = "ATM00002"
            profile = "ncr-selfserv-basic"
            [uplink]
            address = "{relay}"
            server_name = "localhost"
            echo_interval_ms = 500
            backoff_min_ms = 50
            backoff_max_ms = 300
            [tls]
            cert = "{cert}"
            key = "{key}"
            server_ca = "{ca}"
            [storage]
            dir = "{dir}"
            [queue]
            retry_backoff_min_ms = 20
            retry_backoff_max_ms = 200
            [timeouts]
            authorization_ms = 3000
            advice_ms = 2000
            "#,
            relay = self.relay.addr,
            cert = self.files.agent_cert.display(),
            key = self.files.agent_key.display(),
            ca = self.files.ca.display(),
            dir = self.agent_dir().display(),
        )
    }

    pub async fn start_agent(&mut self) {
        let ndc = self
            .agent
            .as_ref()
            .map(|a| a.ndc_addr.to_string())
            .unwrap_or_else(|| "127.0.0.1:0".into());
        let cfg = AgentConfig::parse(&self.agent_config_text(&ndc), "test agent").unwrap();
        self.agent = Some(atm_agent::runtime::start(&cfg).await.unwrap());
        self.wait_uplink(true).await;
    }

    pub fn agent(&self) -> &RunningAgent {
        self.agent.as_ref().unwrap()
    }

    pub async fn wait_uplink(&self, up: bool) {
        for _ in 0..400 {
            if self.agent().services.uplink.is_up() == up {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("uplink never became {}", if up { "up" } else { "down" });
    }

    pub async fn atm(&self, luno: &str) -> AtmSim {
        let options = AtmOptions {
            initial_notes: Some(vec![100, 100, 100, 100]),
            ..Default::default()
        };
        AtmSim::connect(
            self.agent().ndc_addr,
            Profile::builtin("ncr-selfserv-basic").unwrap(),
            luno,
            options,
        )
        .await
        .unwrap()
    }

    /// Waits until the agent's queue is empty.
    pub async fn drained(&self) {
        for _ in 0..600 {
            if self.agent().services.queue.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "queue not drained: {} left",
            self.agent().services.queue.len()
        );
    }

    pub async fn balance(&self, pan: &str) -> (i64, i64) {
        let b: serde_json::Value = reqwest::get(format!(
            "{}/v1/balances/{}",
            self.ledger.base_url(),
            account(pan)
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        (
            b["balance_minor"].as_i64().unwrap(),
            b["held_minor"].as_i64().unwrap(),
        )
    }

    /// Waits until the card's ledger balance and held amount are `expected` (the terminal's
    /// outcome arrives before the agent has queued and forwarded the advice).
    pub async fn eventually_balance(&self, pan: &str, expected: (i64, i64)) {
        for _ in 0..400 {
            if self.balance(pan).await == expected {
                if self.agent.is_some() {
                    self.drained().await;
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            self.balance(pan).await,
            expected,
            "ledger balance of {}",
            &pan[..6]
        );
    }

    /// The books balance, no hold was captured twice, and the switch journal matches the ledger.
    pub async fn assert_books(&self) {
        let inv = self.ledger.invariants().await.unwrap();
        assert_eq!(inv.holds_captured_twice, 0, "{inv:?}");
        assert!(
            inv.sum_minor_by_currency.values().all(|v| *v == 0),
            "{inv:?}"
        );
        let rec = self.switch.switch.reconcile().await.unwrap();
        assert!(rec.is_reconciled(), "{rec:#?}");
    }
}
