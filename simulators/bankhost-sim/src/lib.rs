//! # bankhost-sim — another bank's ISO 8583 host
//!
//! The issuer the host switch forwards non-wallet cards to (the bank host route). A real TCP
//! service speaking ISO 8583 in a configurable dialect (a [`Spec`](protocols::iso8583::Spec) and a
//! length prefix); it keeps accounts by PAN, holds authorizations, posts completions, undoes
//! reversals (each effect once, whatever the repeats) and records everything it received, so a
//! test can check that a timed-out withdrawal was reversed and nets to zero at the host. It knows
//! nothing of the daemons.
//!
//! Layout (one job per module):
//! - [`config`]: [`BankHostConfig`], cards, TOML loading.
//! - [`rules`]: rules that make the host decline, drop answers, swallow or slow down.
//! - [`book`]: accounts, originals by (41, 11, 7), holds, postings, reversals. No I/O.
//! - [`pin`]: field 52 under the zone PIN key, ISO format 0.
//! - [`host`]: the decision for one message (which answer, what it applies). No I/O.
//! - [`record`]: what was received and what became of it; counters.
//! - [`server`]: listener, connections, framing, latency, outages.
//!
//! This file wires them: [`start`] binds and serves; [`BankHostHandle`] steers the running host
//! (outage, latency, rules, dropped answers, cards) and reads its record and books.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use bankhost_sim::{BankHostConfig, CardConfig, Outage};
//!
//! let mut config = BankHostConfig::new(); // 127.0.0.1:0, iso87-binary, binary length
//! config.cards.push(CardConfig::new("5413330089020011", 100_000).with_pin("1234"));
//! let host = bankhost_sim::start(config).await?;
//! let handle = host.handle();
//! handle.set_outage(Outage::Silent);
//! // … the switch times out, reverses …
//! assert_eq!(handle.totals().position.net, 0);
//! host.shutdown().await;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod book;
pub mod config;
pub mod host;
pub mod pin;
pub mod record;
pub mod rules;
pub mod server;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use protocols::framing::LengthPrefix;
use protocols::iso8583::Spec;
use protocols::types::Pan;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use book::{AccountView, Position, Totals, TxnKey};
pub use config::{BankHostConfig, CardConfig, ConfigError, SpecChoice};
pub use record::{Exchange, Fate, Stats};
pub use rules::{Rule, RuleAction};

/// How long [`RunningBankHost::shutdown`] waits for the server task.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// An outage of the host, set at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outage {
    #[default]
    None,
    /// Connections stay up and are read; nothing is applied, nothing answered (answers still
    /// waiting out their latency are not sent either).
    Silent,
    /// Existing connections are closed, new ones closed as soon as accepted.
    Refuse,
}

/// Why the host did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What the lock guards: the decisions and the record, changed together.
pub(crate) struct Inner {
    pub(crate) host: host::Host,
    pub(crate) recorder: record::Recorder,
}

/// Shared by the server tasks and every handle.
pub(crate) struct Shared {
    pub(crate) spec: Spec,
    pub(crate) length_prefix: LengthPrefix,
    pub(crate) latency_ms: AtomicU64,
    pub(crate) outage: watch::Sender<Outage>,
    state: Mutex<Inner>,
}

impl Shared {
    /// The state; never held across an `.await`. A panic while it was held (a bug) does not take
    /// the simulator down with it: the state is used as it is.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Binds the listener and starts serving.
pub async fn start(config: BankHostConfig) -> Result<RunningBankHost, StartError> {
    config.check()?;
    let spec = config.spec.load()?;
    let zpk = config
        .zpk_hex
        .as_deref()
        .map(pin::Zpk::from_hex)
        .transpose()?;
    let mut book = book::Book::new();
    for card in config.cards {
        book.add_card(card)?;
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let shared = Arc::new(Shared {
        spec,
        length_prefix: config.length_prefix,
        latency_ms: AtomicU64::new(config.latency_ms),
        outage: watch::Sender::new(Outage::None),
        state: Mutex::new(Inner {
            host: host::Host {
                book,
                rules: config.rules,
                zpk,
                deposits: config.deposits,
                drops: host::Drops::default(),
            },
            recorder: record::Recorder::default(),
        }),
    });
    let (stop, stop_rx) = watch::channel(false);
    let server = tokio::spawn(server::serve(listener, shared.clone(), stop_rx));
    tracing::info!(%addr, spec = %shared.spec.name(), prefix = ?config.length_prefix, "bank host listening");
    Ok(RunningBankHost {
        addr,
        handle: BankHostHandle { shared },
        stop,
        server,
    })
}

/// A started host.
pub struct RunningBankHost {
    addr: SocketAddr,
    handle: BankHostHandle,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl RunningBankHost {
    /// Where it listens (the real port when configured with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn handle(&self) -> BankHostHandle {
        self.handle.clone()
    }

    /// Stops accepting, closes every connection (answers still waiting are not sent).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(SHUTDOWN_GRACE, self.server)
            .await
            .is_err()
        {
            tracing::warn!("bank host server did not stop within {SHUTDOWN_GRACE:?}");
        }
    }
}

/// Steers a running host and reads its record. Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct BankHostHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for BankHostHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BankHostHandle").finish_non_exhaustive()
    }
}

impl BankHostHandle {
    pub fn set_outage(&self, outage: Outage) {
        tracing::info!(?outage, "outage set");
        self.shared.outage.send_replace(outage);
    }

    pub fn outage(&self) -> Outage {
        *self.shared.outage.borrow()
    }

    /// Latency before every answer (rules may add to it).
    pub fn set_latency(&self, latency: Duration) {
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        self.shared.latency_ms.store(ms, Ordering::Relaxed);
    }

    /// Appends a rule (evaluated after the existing ones).
    pub fn push_rule(&self, rule: Rule) -> Result<(), ConfigError> {
        let index = self.shared.lock().host.rules.len();
        rule.check()
            .map_err(|reason| ConfigError::Rule { index, reason })?;
        self.shared.lock().host.rules.push(rule);
        Ok(())
    }

    /// Puts a rule first (it wins over every existing one).
    pub fn push_rule_first(&self, rule: Rule) -> Result<(), ConfigError> {
        rule.check()
            .map_err(|reason| ConfigError::Rule { index: 0, reason })?;
        self.shared.lock().host.rules.insert(0, rule);
        Ok(())
    }

    /// Replaces all rules.
    pub fn set_rules(&self, rules: Vec<Rule>) -> Result<(), ConfigError> {
        for (index, rule) in rules.iter().enumerate() {
            rule.check()
                .map_err(|reason| ConfigError::Rule { index, reason })?;
        }
        self.shared.lock().host.rules = rules;
        Ok(())
    }

    pub fn clear_rules(&self) {
        self.shared.lock().host.rules.clear();
    }

    /// The next `n` answers are applied but not sent: those for cards starting with
    /// `card_prefix`, or with `None` any answer except to network management (0800).
    /// Counters add up; `n = 0` resets the one named.
    pub fn drop_next_answers(&self, card_prefix: Option<&str>, n: u32) {
        let mut state = self.shared.lock();
        let drops = &mut state.host.drops;
        match card_prefix {
            None if n == 0 => drops.global = 0,
            None => drops.global = drops.global.saturating_add(n),
            Some(prefix) => match drops.by_prefix.iter_mut().find(|(p, _)| p == prefix) {
                Some((_, left)) if n == 0 => *left = 0,
                Some((_, left)) => *left = left.saturating_add(n),
                None => drops.by_prefix.push((prefix.to_owned(), n)),
            },
        }
    }

    /// Adds a card (or range), or replaces the entry with the same `pan`.
    pub fn add_card(&self, card: CardConfig) -> Result<(), ConfigError> {
        self.shared.lock().host.book.add_card(card)
    }

    /// Everything received so far, oldest first.
    pub fn received(&self) -> Vec<Exchange> {
        self.shared.lock().recorder.exchanges()
    }

    /// What the host's record says happened to this card (zeros if never used).
    pub fn position(&self, pan: &Pan) -> Position {
        self.shared.lock().host.book.position(pan)
    }

    /// Balances and position of a card the host issues.
    pub fn account(&self, pan: &Pan) -> Option<AccountView> {
        self.shared.lock().host.book.account_view(pan)
    }

    /// Sums over every card, and counts of decisions.
    pub fn totals(&self) -> Totals {
        self.shared.lock().host.book.totals()
    }

    pub fn stats(&self) -> Stats {
        self.shared.lock().recorder.stats.clone()
    }
}
