//! The children's configuration files, built from the daemons' own config types and serialized
//! with `toml`: a key renamed or a section reshaped in a daemon fails to compile here instead of
//! failing the lab at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use atm_agent::config::{
    self as agent, Config as AgentConfig, NdcConfig, StorageConfig, TerminalConfig, Timeouts,
};
use atm_agent::queue::QueueConfig;
use host_switch::breaker::BreakerConfig;
use host_switch::config::{
    BankHostConfig, BinRuleConfig, Config as SwitchConfig, JournalConfig, KeysConfig, LedgerConfig,
    ListenConfig, PinConfig, RecoveryConfig,
};
use host_switch::domain::routing::{Route, RouteEntry};
use mtls::PkiFiles;
use testkit::custodian_keys::PVK;
use testkit::terminals::terminal_id;

use crate::LabError;

/// The switch's PIN security in the lab: its key store, the issuer's PVV file.
pub struct SwitchPinFiles {
    pub kek_file: PathBuf,
    pub store: PathBuf,
    pub cards_file: PathBuf,
}

/// The switch of the lab: mutual TLS with the lab PKI, a journal in the run's directory, the
/// lab's wallet cards routed to ledger-sim, unconfirmed ledger work retried every 200 ms, its
/// control socket at `control_socket` (the operator's card unblock, and the exceptions the lab
/// reads at the end of every run), its key store (`key_store`: store file, KEK file; the card
/// reference key at least); with PIN security, one BIN rule (the lab's
/// wallet cards, Visa PVV under [`PVK`], 3 tries, wrong-PIN rate limits out of the way of the
/// lab's traffic); without, the wallet route exempt from PIN checks. With a bank host
/// (`bank`), cards starting with 5 routed to it ([`bank_host_config`]).
#[allow(clippy::too_many_arguments)]
pub fn switch_config(
    files: &PkiFiles,
    listen: SocketAddr,
    journal: &Path,
    ledger_url: &str,
    control_socket: &Path,
    key_store: (&Path, &Path),
    pin: Option<&SwitchPinFiles>,
    bank: Option<BankHostConfig>,
) -> SwitchConfig {
    let mut config = SwitchConfig::new(ListenConfig::new(listen), LedgerConfig::new(ledger_url));
    config.tls = Some(host_switch::config::TlsConfig {
        cert: files.switch_cert.clone(),
        key: files.switch_key.clone(),
        client_ca: files.ca.clone(),
    });
    config.journal = JournalConfig {
        path: journal.to_owned(),
        ..JournalConfig::default()
    };
    config.recovery = RecoveryConfig {
        resume_interval_ms: 200,
    };
    config.routes = vec![RouteEntry {
        host: None,
        prefix: "476173".into(),
        route: Route::Wallet,
    }];
    if let Some(bank) = bank {
        // The bank's cards: the bank host route. `[pin]` only concerns wallet routes: the host
        // checks these cards' PINs, under the zone PIN key the switch translates them to.
        config.routes.push(RouteEntry {
            host: None,
            prefix: crate::bank::BANK_ROUTE_PREFIX.into(),
            route: Route::BankHost,
        });
        config.bank_hosts.push(bank);
    }
    config.control_socket = Some(control_socket.to_owned());
    config.keys = Some(KeysConfig::with_kek_file(key_store.0, key_store.1));
    // A wallet route takes PINs: without PIN security the lab exempts it explicitly.
    let mut pin_config = PinConfig::exempt(["476173"]);
    if let Some(p) = pin {
        pin_config = PinConfig::new(&p.cards_file);
        pin_config.max_tries = 3;
        pin_config.bins.push(BinRuleConfig::visa_pvv("476173", PVK));
        // The lab's customers type wrong PINs (a few percent) at machine speed on a handful of
        // cards and terminals: the production rate limits would refuse them in a long run.
        pin_config.terminal_max_wrong = 100_000;
        pin_config.card_max_wrong = 100_000;
    }
    config.pin = Some(pin_config);
    config
}

/// The switch's `[[bank_hosts]]` entry for the lab's bank host at `addr`: deposits on, PIN
/// blocks translated to `zpk` (a key name in the switch's store) when given; quick retries, a 2 s
/// answer timeout (the agent waits 8 s) and a breaker that opens after a handful of timeouts and
/// tries again 2 s later, so `bank-host-outage` shows both within a short run.
pub fn bank_host_config(addr: SocketAddr, zpk: Option<&str>) -> BankHostConfig {
    let mut bank = BankHostConfig::new(
        crate::bank::BANK_HOST_NAME,
        addr.to_string(),
        crate::bank::ACQUIRER_ID,
    );
    bank.timeout_ms = 2000;
    bank.retry_min_ms = 50;
    bank.retry_max_ms = 500;
    bank.echo_interval_ms = 1000;
    bank.deposits = true;
    bank.zpk = zpk.map(str::to_owned);
    bank.acceptor_location = Some("ATM-LAB NETWORK          LISBON       PT".into());
    bank.breaker = BreakerConfig {
        window_calls: 10,
        minimum_calls: 4,
        open_ms: 2000,
        ..BreakerConfig::default()
    };
    bank
}

/// The agent of the lab: `atms` terminals (LUNO `00N`, id `ATM0000N`, the lab's profile), its
/// uplink through the relay, quick reconnects and retries; with PIN security, its key store
/// opened with `kek_file` and terminal PIN keys changed only on command.
pub fn agent_config(
    files: &PkiFiles,
    ndc: SocketAddr,
    uplink: SocketAddr,
    dir: &Path,
    atms: usize,
    kek_file: Option<&Path>,
    profile: &str,
) -> AgentConfig {
    let terminals = (0..atms)
        // The simulated terminals connect from this host: each is bound to 127.0.0.1.
        .map(|i| {
            TerminalConfig::bound_to(
                crate::lab_luno(i, profile),
                terminal_id(i),
                profile,
                std::net::Ipv4Addr::LOCALHOST.into(),
            )
        })
        .collect();
    let mut link = agent::uplink_to(uplink.to_string());
    link.server_name = "localhost".into();
    link.echo_interval_ms = 1000;
    link.backoff_min_ms = 50;
    link.backoff_max_ms = 500;
    let mut config = AgentConfig::new(NdcConfig::new(ndc), terminals, link);
    config.tls = Some(agent::TlsConfig {
        cert: files.agent_cert.clone(),
        key: files.agent_key.clone(),
        server_ca: files.ca.clone(),
    });
    config.storage = StorageConfig {
        dir: dir.to_owned(),
    };
    config.queue = QueueConfig {
        retry_backoff_min_ms: 20,
        retry_backoff_max_ms: 500,
        ..QueueConfig::default()
    };
    config.timeouts = Timeouts {
        authorization_ms: 8000,
        advice_ms: 4000,
    };
    config.keys = kek_file.map(|k| agent::KeysConfig {
        tpk_rotate_secs: 0,
        ..agent::KeysConfig::with_kek_file(k)
    });
    config
}

/// Writes `config` to `path` as TOML.
pub fn write(path: &Path, config: &impl serde::Serialize) -> Result<(), LabError> {
    let text = toml::to_string(config).map_err(|source| LabError::ConfigToml {
        path: path.to_owned(),
        source,
    })?;
    std::fs::write(path, text).map_err(|source| LabError::File {
        path: path.to_owned(),
        source,
    })
}
