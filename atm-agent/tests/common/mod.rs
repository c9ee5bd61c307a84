//! Test harness: a real ledger-sim, a real host switch (mutual TLS, sled journal), the agent under
//! test, simulated NDC terminals (atm-sim), and the lab's TCP relay between agent and switch, cut
//! to play a network outage.
//!
//! With [`Lab::start_with_pins`] the lab also has PIN security, made fresh for every lab: the
//! switch holds the zone master key and the PIN verification key (entered before it starts) and the
//! cards' PVVs; the agent gets the zone master key through its control socket (as custodians enter
//! it with `atmctl`) and fetches the zone PIN key from the switch; terminal master keys are entered
//! per test ([`Lab::load_master`]) and installed in the simulators' PIN pads ([`Lab::pin_atm`]).
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use atm_agent::config::{
    self as agent_config, Config as AgentConfig, KeysConfig as AgentKeys, NdcConfig, StorageConfig,
    TerminalConfig, Timeouts, TlsConfig as AgentTls,
};
pub use atm_agent::control_api::Request as AgentRequest;
use atm_agent::queue::QueueConfig;
use atm_agent::runtime::RunningAgent;
use atm_sim::{AtmError, AtmOptions, AtmSim, ClearKey};
use firmware_profiles::Profile;
use host_switch::config::{
    BinRuleConfig, Config as SwitchConfig, JournalConfig, KeysConfig as SwitchKeys,
    LedgerConfig as SwitchLedger, ListenConfig, PinConfig, RecoveryConfig, TlsConfig as SwitchTls,
};
pub use host_switch::control_api::Request as SwitchRequest;
use host_switch::domain::routing::{Route, RouteEntry};
use host_switch::domain::WalletAccount;
use host_switch::runtime::RunningSwitch;
use ledger_sim::domain::{Movement, MovementKind};
use ledger_sim::RunningLedger;
use mtls::{PkiFiles, TestPki};
use protocols::types::Pan;
use serde_json::Value;
use testkit::custodian_keys::{lab_pin, CustodianKey, IssuedCard, LabKeys, PVK};
use testkit::relay::Relay;

pub const ALICE: &str = "4761739001010010";
pub const BOB: &str = "4761739001010028";
pub const START: u64 = 1_000_000;

/// The card's wallet account (its keyed reference) under the tests' card reference key, which
/// every lab's switch holds.
pub fn account(pan: &str) -> String {
    let mac = CustodianKey::test_card_reference()
        .card_reference_mac(&Pan::parse(pan).unwrap())
        .unwrap();
    WalletAccount::from_mac(&mac).as_str().to_owned()
}

/// A terminal the agent serves: its LUNO, id and firmware profile, and the address it is bound
/// to (the simulators connect from 127.0.0.1).
#[derive(Debug, Clone, Copy)]
pub struct TerminalSpec {
    pub luno: &'static str,
    pub terminal_id: &'static str,
    pub profile: &'static str,
    pub address: std::net::Ipv4Addr,
}

/// Where the simulated terminals connect from.
pub const LOCALHOST: std::net::Ipv4Addr = std::net::Ipv4Addr::LOCALHOST;

/// Two NCR SelfServ terminals in the basic NDC dialect (key loads answered with a plain ready).
pub const BASIC_PAIR: [TerminalSpec; 2] = [
    TerminalSpec {
        luno: "001",
        terminal_id: "ATM00001",
        profile: "ncr-selfserv-basic",
        address: LOCALHOST,
    },
    TerminalSpec {
        luno: "002",
        terminal_id: "ATM00002",
        profile: "ncr-selfserv-basic",
        address: LOCALHOST,
    },
];

/// A basic terminal and an Advance NDC one (9-character LUNO, key loads answered with the
/// key's verification value). Both profiles frame alike, so one agent serves both.
pub const BASIC_AND_ADVANCE: [TerminalSpec; 2] = [
    BASIC_PAIR[0],
    TerminalSpec {
        luno: "000000002",
        terminal_id: "ATM00002",
        profile: "ncr-advance-ndc",
        address: LOCALHOST,
    },
];

/// Seconds the switch keeps accepting a zone PIN key version after its successor: short, so a
/// test can see the old version gone and know PINs travel under the new one.
pub const ZPK_GRACE_SECS: u64 = 2;

/// The lab's PIN security: every key its custodians hold, and the switch's control socket.
pub struct Pins {
    /// Zone master key, PIN verification key, one terminal master key per configured terminal.
    pub keys: LabKeys,
    pub switch_socket: PathBuf,
    pub agent_kek: PathBuf,
    /// The agent's `keys.tpk_rotate_secs` (0: only on command).
    pub tpk_rotate_secs: u64,
}

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub pki: TestPki,
    pub files: PkiFiles,
    pub ledger: RunningLedger,
    pub switch: RunningSwitch,
    pub relay: Relay,
    pub agent: Option<RunningAgent>,
    pub terminals: Vec<TerminalSpec>,
    /// `None`: no `[keys]`/`[pin]` anywhere, PINs are not handled.
    pub pins: Option<Pins>,
}

impl Lab {
    pub async fn start() -> Lab {
        Self::start_lab(&BASIC_PAIR, false).await
    }

    /// A lab without PIN security serving `terminals`.
    pub async fn start_with(terminals: &[TerminalSpec]) -> Lab {
        Self::start_lab(terminals, false).await
    }

    /// A lab with PIN security for `terminals`: the agent holds the zone master key and the
    /// switch's zone PIN key when this returns; no terminal master key is entered yet.
    pub async fn start_with_pins(terminals: &[TerminalSpec]) -> Lab {
        let lab = Self::start_lab(terminals, true).await;
        let (components, kcvs) = lab.pins().keys.zone_master.components().unwrap();
        let socket = lab.agent().control_socket.clone();
        tokio::task::spawn_blocking(move || {
            atm_agent::cli::keys::load_zone_master(&socket, &components, &kcvs)
        })
        .await
        .unwrap()
        .expect("zone master key entry");
        let l = &lab;
        l.wait_until("the agent to receive the zone PIN key", 20, || async move {
            !l.agent_key_versions("zpk").await.is_empty()
        })
        .await;
        lab
    }

    async fn start_lab(terminals: &[TerminalSpec], with_pins: bool) -> Lab {
        // RUST_LOG=info cargo test … shows the agent's, switch's and simulator's logs.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let (pki, files) = testkit::pki_in(dir.path());
        let accounts: Vec<(String, u64)> =
            [ALICE, BOB].iter().map(|p| (account(p), START)).collect();
        let ledger = testkit::ledger::start_seeded(dir.path(), &accounts).await;
        let pins = with_pins.then(|| Self::prepare_pins(dir.path(), terminals.len()));
        let mut switch_cfg = SwitchConfig::new(
            ListenConfig::new("127.0.0.1:0".parse().unwrap()),
            SwitchLedger::new(ledger.base_url()),
        );
        switch_cfg.tls = Some(SwitchTls {
            cert: files.switch_cert.clone(),
            key: files.switch_key.clone(),
            client_ca: files.ca.clone(),
        });
        switch_cfg.journal = JournalConfig {
            path: dir.path().join("journal"),
            ..JournalConfig::default()
        };
        switch_cfg.recovery = RecoveryConfig {
            resume_interval_ms: 200,
        };
        switch_cfg.routes = vec![RouteEntry {
            host: None,
            prefix: "476173".into(),
            route: Route::Wallet,
        }];
        match &pins {
            Some(p) => Self::add_switch_pins(&mut switch_cfg, dir.path(), p),
            // Every switch needs its card reference key: a store holding only that key.
            // The switch refuses a wallet route that is neither PIN-checked nor exempt.
            None => {
                let (kek, store) = testkit::custodian_keys::prepare_card_ref_store(
                    dir.path(),
                    &CustodianKey::test_card_reference(),
                )
                .unwrap();
                switch_cfg.keys = Some(SwitchKeys::with_kek_file(store, kek));
                switch_cfg.pin = Some(PinConfig::exempt(["476173"]));
            }
        }
        let switch_cfg =
            SwitchConfig::parse(&toml::to_string(&switch_cfg).unwrap(), "test switch").unwrap();
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
            terminals: terminals.to_vec(),
            pins,
        };
        lab.start_agent().await;
        lab
    }

    /// Keys for the run; the switch's ZMK and PVK go straight into its store (it is not running
    /// yet and would hold the store's lock), the issuer's PVVs into its cards file.
    fn prepare_pins(dir: &std::path::Path, terminals: usize) -> Pins {
        let mut keys = LabKeys::generate(terminals).unwrap();
        // The tests' card reference key, so `account(pan)` agrees with the switch.
        keys.card_reference = CustodianKey::test_card_reference();
        keys.prepare_switch(dir).unwrap();
        let cards: Vec<IssuedCard> = [ALICE, BOB]
            .iter()
            .enumerate()
            .map(|(i, pan)| IssuedCard {
                reference: account(pan),
                pan: pan.to_string(),
                pin: lab_pin(i),
            })
            .collect();
        std::fs::write(
            dir.join("cards.toml"),
            keys.cards_file_text(&cards).unwrap(),
        )
        .unwrap();
        let agent_kek = keys.prepare_agent(dir).unwrap();
        Pins {
            keys,
            switch_socket: dir.join("switch.sock"),
            agent_kek,
            tpk_rotate_secs: 0,
        }
    }

    /// The switch's control socket and its `[keys]`/`[pin]` sections for the files
    /// `LabKeys::prepare_switch` wrote, as the lab sets them (one BIN rule: the lab's wallet
    /// cards, Visa PVV under the lab's PVK, 3 tries), with a short zone key grace.
    fn add_switch_pins(cfg: &mut SwitchConfig, dir: &std::path::Path, pins: &Pins) {
        cfg.control_socket = Some(pins.switch_socket.clone());
        let mut keys =
            SwitchKeys::with_kek_file(dir.join("switch-keys.json"), dir.join("switch.kek"));
        keys.zpk_grace_secs = ZPK_GRACE_SECS;
        cfg.keys = Some(keys);
        let mut pin = PinConfig::new(dir.join("cards.toml"));
        pin.max_tries = 3;
        pin.bins.push(BinRuleConfig::visa_pvv("476173", PVK));
        cfg.pin = Some(pin);
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
        toml::to_string(&self.agent_config(ndc)).unwrap()
    }

    /// The agent's configuration as the agent's own types hold it.
    pub fn agent_config(&self, ndc: &str) -> AgentConfig {
        let terminals = self
            .terminals
            .iter()
            .map(|t| TerminalConfig::bound_to(t.luno, t.terminal_id, t.profile, t.address.into()))
            .collect();
        let mut uplink = agent_config::uplink_to(self.relay.addr.to_string());
        uplink.server_name = "localhost".into();
        uplink.echo_interval_ms = 500;
        uplink.backoff_min_ms = 50;
        uplink.backoff_max_ms = 300;
        let mut cfg = AgentConfig::new(NdcConfig::new(ndc.parse().unwrap()), terminals, uplink);
        cfg.tls = Some(AgentTls {
            cert: self.files.agent_cert.clone(),
            key: self.files.agent_key.clone(),
            server_ca: self.files.ca.clone(),
        });
        cfg.storage = StorageConfig {
            dir: self.agent_dir(),
        };
        cfg.queue = QueueConfig {
            retry_backoff_min_ms: 20,
            retry_backoff_max_ms: 200,
            ..QueueConfig::default()
        };
        cfg.timeouts = Timeouts {
            authorization_ms: 3000,
            advice_ms: 2000,
        };
        // Terminal PIN keys change only on command (`keys_rotate`) unless a test sets a
        // lifetime, so a test sees every change.
        cfg.keys = self.pins.as_ref().map(|p| AgentKeys {
            tpk_rotate_secs: p.tpk_rotate_secs,
            ..AgentKeys::with_kek_file(&p.agent_kek)
        });
        cfg
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
        let b = testkit::ledger::balance(&self.ledger, &account(pan)).await;
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
                self.switch_settled().await;
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

    /// Waits until the switch's journal owes the ledger nothing: the ledger applies a call a
    /// moment before the switch journals its outcome (a deposit advice is credited by the
    /// resumer), so a balance can be right while its journal state is still in flight.
    pub async fn switch_settled(&self) {
        for _ in 0..400 {
            let rec = self.switch.switch.reconcile().await.unwrap();
            if rec.in_flight == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let rec = self.switch.switch.reconcile().await.unwrap();
        assert_eq!(
            rec.in_flight, 0,
            "the switch still owes the ledger work: {rec:#?}"
        );
    }

    /// The books balance, no hold was captured twice, and the switch journal matches the ledger.
    pub async fn assert_books(&self) {
        testkit::ledger::assert_books_balance(&self.ledger).await;
        let rec = self.switch.switch.reconcile().await.unwrap();
        assert!(rec.is_reconciled(), "{rec:#?}");
    }

    // ---- PIN security -------------------------------------------------------------------------

    pub fn pins(&self) -> &Pins {
        self.pins
            .as_ref()
            .expect("a lab started with Lab::start_with_pins")
    }

    /// The PIN of a lab card (the issuer's PVV file was made from it).
    pub fn pin_of(&self, pan: &str) -> String {
        let i = [ALICE, BOB]
            .iter()
            .position(|p| *p == pan)
            .expect("a lab card");
        lab_pin(i)
    }

    /// The master key the custodians hold for the `i`th configured terminal, as its PIN pad holds
    /// it after installation.
    pub fn master_key(&self, i: usize) -> ClearKey {
        ClearKey::new(self.pins().keys.terminal_masters[i].combined.to_vec()).unwrap()
    }

    /// A master key nobody entered into the agent (a PIN pad installed with the wrong key).
    pub fn foreign_master_key() -> ClearKey {
        ClearKey::new(CustodianKey::generate().unwrap().combined.to_vec()).unwrap()
    }

    /// Two custodians enter the `i`th terminal's master key through the agent's control socket,
    /// with `atmctl keys load-master`'s own code. Returns `atmctl`'s report.
    pub async fn load_master(&self, i: usize) -> String {
        let (components, kcvs) = self.pins().keys.terminal_masters[i].components().unwrap();
        let socket = self.agent().control_socket.clone();
        let id = self.terminals[i].terminal_id;
        tokio::task::spawn_blocking(move || {
            atm_agent::cli::keys::load_master(&socket, id, &components, &kcvs)
        })
        .await
        .unwrap()
        .expect("master key entry")
    }

    fn pin_atm_options(master_key: Option<ClearKey>) -> AtmOptions {
        AtmOptions {
            initial_notes: Some(vec![100, 100, 100, 100]),
            master_key,
            ..Default::default()
        }
    }

    /// The `i`th configured terminal, its PIN pad holding `master_key`; returns once the agent put
    /// it in service.
    pub async fn pin_atm(&self, i: usize, master_key: ClearKey) -> AtmSim {
        self.connect_pin_atm(i, master_key)
            .await
            .expect("terminal in service")
    }

    /// Powers up the `i`th configured terminal in a task of its own: it finishes (with the
    /// simulator) when the agent puts the terminal in service, which a test may expect never to
    /// happen (abort the task then).
    pub fn spawn_pin_atm(
        &self,
        i: usize,
        master_key: ClearKey,
    ) -> tokio::task::JoinHandle<Result<AtmSim, AtmError>> {
        let connect = self.connect_pin_atm(i, master_key);
        tokio::spawn(connect)
    }

    fn connect_pin_atm(
        &self,
        i: usize,
        master_key: ClearKey,
    ) -> impl Future<Output = Result<AtmSim, AtmError>> + Send + 'static {
        let t = self.terminals[i];
        let addr = self.agent().ndc_addr;
        let options = Self::pin_atm_options(Some(master_key));
        async move { AtmSim::connect(addr, Profile::builtin(t.profile).unwrap(), t.luno, options).await }
    }

    /// A request on the agent's control socket (as `atmctl` sends it); the answer's data.
    pub async fn agent_request(&self, request: AgentRequest) -> Result<Value, String> {
        let socket = self.agent().control_socket.clone();
        tokio::task::spawn_blocking(move || atm_agent::cli::control::send(&socket, &request))
            .await
            .unwrap()
            .map_err(|e| e.to_string())
    }

    /// A request on the switch's control socket (as `switchctl` sends it); the answer's data.
    pub async fn switch_request(&self, request: SwitchRequest) -> Result<Value, String> {
        let socket = self.pins().switch_socket.clone();
        tokio::task::spawn_blocking(move || host_switch::cli::control::send(&socket, &request))
            .await
            .unwrap()
            .map_err(|e| e.to_string())
    }

    /// `atmctl status` for one terminal.
    pub async fn terminal_status(&self, terminal_id: &str) -> Value {
        let status = self.agent_request(AgentRequest::Status).await.unwrap();
        status["terminals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["terminal_id"] == terminal_id)
            .cloned()
            .unwrap_or_else(|| panic!("{terminal_id} not in the agent's status: {status}"))
    }

    /// The agent's key store (`atmctl keys ls`): names, versions, check values.
    pub async fn agent_keys(&self) -> Vec<Value> {
        let keys = self.agent_request(AgentRequest::KeysLs).await.unwrap();
        keys.as_array().unwrap().clone()
    }

    /// Versions of `name` in the agent's key store, ascending.
    pub async fn agent_key_versions(&self, name: &str) -> Vec<u64> {
        Self::versions(&self.agent_keys().await, name)
    }

    /// The check value of `name` version `version` in the agent's key store.
    pub async fn agent_key_kcv(&self, name: &str, version: u64) -> String {
        self.agent_keys()
            .await
            .into_iter()
            .find(|k| k["name"] == name && k["version"] == version)
            .and_then(|k| k["kcv"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no {name} version {version} in the agent's store"))
    }

    /// Versions of `name` in the switch's key store (`switchctl keys ls`), ascending.
    pub async fn switch_key_versions(&self, name: &str) -> Vec<u64> {
        let keys = self.switch_request(SwitchRequest::KeysList).await.unwrap();
        Self::versions(keys.as_array().unwrap(), name)
    }

    fn versions(keys: &[Value], name: &str) -> Vec<u64> {
        let mut v: Vec<u64> = keys
            .iter()
            .filter(|k| k["name"] == name)
            .filter_map(|k| k["version"].as_u64())
            .collect();
        v.sort_unstable();
        v
    }

    /// Captured withdrawals the ledger posted on the card's account.
    pub async fn captures(&self, pan: &str) -> Vec<Movement> {
        testkit::ledger::all_movements(&self.ledger)
            .await
            .into_iter()
            .filter(|m| m.kind == MovementKind::Capture && m.debit_account == account(pan))
            .collect()
    }

    /// Polls `check` every 50 ms until it holds; fails the test after `timeout_secs`.
    pub async fn wait_until<F, Fut>(&self, what: &str, timeout_secs: u64, check: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        testkit::wait::wait_until(what, timeout_secs, check).await
    }
}

// The agent as a real process, for the crash and stop tests.

/// The agent process; killed when the test ends, pass or fail.
pub struct AgentProcess(pub std::process::Child);

impl AgentProcess {
    pub fn kill9(&mut self) {
        // `Child::kill` sends SIGKILL on Unix.
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn spawn_agent(config: &std::path::Path) -> AgentProcess {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_atm-agent"))
        .args(["--config", config.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    AgentProcess(child)
}

pub async fn agent_status(socket: &std::path::Path) -> Option<serde_json::Value> {
    let socket = socket.to_owned();
    tokio::task::spawn_blocking(move || {
        atm_agent::cli::control::send(&socket, &AgentRequest::Status).ok()
    })
    .await
    .unwrap()
}

/// Polls the agent's status until `check` holds (generous: a loaded CI machine starts processes slowly).
pub async fn wait_for(
    socket: &std::path::Path,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    for _ in 0..600 {
        if let Some(s) = agent_status(socket).await {
            if check(&s) {
                return s;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "agent never reached: {what}; last status {:?}",
        agent_status(socket).await
    );
}

/// A lab whose agent runs as a process (`atm-agent`), with one basic-dialect ATM connected to it
/// (`notes` in each of its four cassettes), once the agent's uplink is up.
pub struct AgentProcessLab {
    pub lab: Lab,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub agent: AgentProcess,
    pub atm: AtmSim,
}

impl AgentProcessLab {
    pub async fn start(notes: u32) -> AgentProcessLab {
        let lab = Lab::start_without_agent().await;
        let ndc = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let config = lab.dir.path().join("agent.toml");
        std::fs::write(&config, lab.agent_config_text(&ndc.to_string())).unwrap();
        let socket = lab.agent_dir().join("atmctl.sock");
        let agent = spawn_agent(&config);
        wait_for(&socket, "uplink up", |s| s["uplink"] == "up").await;
        let options = AtmOptions {
            initial_notes: Some(vec![notes; 4]),
            ..Default::default()
        };
        let atm = AtmSim::connect(
            ndc,
            Profile::builtin("ncr-selfserv-basic").unwrap(),
            "001",
            options,
        )
        .await
        .unwrap();
        AgentProcessLab {
            lab,
            config,
            socket,
            agent,
            atm,
        }
    }
}
