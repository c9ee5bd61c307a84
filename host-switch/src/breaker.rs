//! Circuit breaker for the switch's outbound calls (wallet ledger, bank host).
//!
//! An ATM waits only so long for an answer. When the ledger or the bank host is failing or slow,
//! waiting for every call to time out burns the customer's time and piles up work on a peer that
//! is already struggling. The breaker watches the outcome of recent calls and, once they look bad,
//! *opens*: [`CircuitBreaker::try_acquire`] then answers at once with [`BreakerOpen`], and the switch
//! declines with response code 91 without touching the peer. After a pause it lets a few trial
//! calls through (*half-open*) and closes again if they are healthy.
//!
//! ```text
//!            failure rate ≥ threshold or slow rate ≥ threshold
//!            (with ≥ minimum_calls in the window)
//!   Closed ──────────────────────────────────────────────► Open
//!     ▲                                                   │  ▲
//!     │ trials healthy                  open_ms elapsed   │  │ trials unhealthy
//!     │ (window reset)                  (on try_acquire)  ▼  │
//!     └───────────────────────────────────────────────── HalfOpen
//! ```
//!
//! - **Window**: count based, the outcomes of the last `window_calls` calls. A call is a
//!   *failure* if [`Permit::failure`] is called or the permit is dropped without a verdict, and
//!   *slow* if its elapsed time is over `slow_call_ms` (a slow call can also be a failure; it then
//!   counts in both rates).
//! - **What counts as success**: the peer answered in time. A business refusal ("insufficient
//!   funds", "wrong PIN", "over limit") is the peer working correctly, so the caller records it with
//!   [`Permit::success`]; only transport errors, timeouts, 5xx and unparseable answers are failures.
//! - **Half-open**: exactly `half_open_calls` trial calls are admitted (concurrently or not), every
//!   further call is rejected until all trials have reported. The trials are then judged by the
//!   *same thresholds* as the closed window (as Resilience4j does): with 3 trials at 50 %, one
//!   failed trial still closes the breaker, two re-open it. Closing resets the window.
//! - **Late outcomes**: a permit only counts toward the state that admitted it. A call admitted
//!   while closed that finishes after the breaker opened is not counted (it says nothing about the
//!   trials), nor is a half-open trial reporting after a new state was reached.
//! - **Time** is [`tokio::time::Instant`], so a test with tokio's `test-util` can `pause()` and
//!   `advance()` the clock. The open → half-open move is lazy: it happens in the first
//!   `try_acquire` after `open_ms`, so [`CircuitBreaker::state`] may still say `open` until then.
//! - **Locking**: all state sits behind one `std::sync::Mutex`, held for a few integer operations
//!   and never across an `.await` (no method here is async). State changes (rare) are logged and
//!   broadcast while holding it, so subscribers see them in order.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// Default for [`BreakerConfig::window_calls`].
pub const DEFAULT_WINDOW_CALLS: u32 = 20;
/// Default for [`BreakerConfig::minimum_calls`].
pub const DEFAULT_MINIMUM_CALLS: u32 = 10;
/// Default for [`BreakerConfig::failure_rate_percent`].
pub const DEFAULT_FAILURE_RATE_PERCENT: u32 = 50;
/// Default for [`BreakerConfig::slow_call_rate_percent`].
pub const DEFAULT_SLOW_CALL_RATE_PERCENT: u32 = 50;
/// Default for [`BreakerConfig::slow_call_ms`].
pub const DEFAULT_SLOW_CALL_MS: u64 = 2_000;
/// Default for [`BreakerConfig::open_ms`].
pub const DEFAULT_OPEN_MS: u64 = 5_000;
/// Default for [`BreakerConfig::half_open_calls`].
pub const DEFAULT_HALF_OPEN_CALLS: u32 = 3;
/// Upper bound of [`BreakerConfig::window_calls`]: the window is allocated up front.
pub const MAX_WINDOW_CALLS: u32 = 10_000;
/// Upper bound of [`BreakerConfig::slow_call_ms`] and [`BreakerConfig::open_ms`] (one hour).
pub const MAX_DURATION_MS: u64 = 3_600_000;

/// How many state changes a lagging subscriber may miss before it is told it lagged.
const EVENT_CAPACITY: usize = 64;

/// Breaker settings, one table per outbound peer in the switch's TOML.
///
/// The defaults are tuned for an ATM's time budget (ARCHITECTURE.md, "Matching, store-and-forward
/// and breakers"): Resilience4j's 100-call window, 60 s slow threshold and 60 s open time would
/// keep a dead ledger in the path for far longer than a customer waits at the machine.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Size of the count-based sliding window: the last N calls are judged. Default 20.
    pub window_calls: u32,
    /// No verdict before this many calls are in the window, so two failures at start-up do not
    /// open the breaker. Default 10; at most `window_calls`.
    pub minimum_calls: u32,
    /// Open when at least this percentage of the calls in the window failed. Default 50.
    pub failure_rate_percent: u32,
    /// Open when at least this percentage of the calls in the window were slow. Default 50.
    pub slow_call_rate_percent: u32,
    /// A call taking longer than this is slow (well under the ATM's own timeout). Default 2000.
    pub slow_call_ms: u64,
    /// How long the breaker stays open before letting trial calls through. Default 5000.
    pub open_ms: u64,
    /// Number of trial calls admitted while half-open. Default 3; at most `window_calls`.
    pub half_open_calls: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            window_calls: DEFAULT_WINDOW_CALLS,
            minimum_calls: DEFAULT_MINIMUM_CALLS,
            failure_rate_percent: DEFAULT_FAILURE_RATE_PERCENT,
            slow_call_rate_percent: DEFAULT_SLOW_CALL_RATE_PERCENT,
            slow_call_ms: DEFAULT_SLOW_CALL_MS,
            open_ms: DEFAULT_OPEN_MS,
            half_open_calls: DEFAULT_HALF_OPEN_CALLS,
        }
    }
}

/// A breaker setting that makes no sense; `key` is the TOML key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("breaker setting `{key}` {reason}")]
pub struct BreakerConfigError {
    /// The offending key, as written in the configuration file.
    pub key: &'static str,
    /// Why it is refused, with the value given.
    pub reason: String,
}

impl BreakerConfig {
    /// Checks every setting; the error names the first bad key.
    pub fn validate(&self) -> Result<(), BreakerConfigError> {
        let bad = |key, reason: String| Err(BreakerConfigError { key, reason });
        if !(1..=MAX_WINDOW_CALLS).contains(&self.window_calls) {
            return bad(
                "window_calls",
                format!("must be 1..={MAX_WINDOW_CALLS} (got {})", self.window_calls),
            );
        }
        if !(1..=self.window_calls).contains(&self.minimum_calls) {
            return bad(
                "minimum_calls",
                format!(
                    "must be 1..=window_calls ({}) (got {})",
                    self.window_calls, self.minimum_calls
                ),
            );
        }
        for (key, value) in [
            ("failure_rate_percent", self.failure_rate_percent),
            ("slow_call_rate_percent", self.slow_call_rate_percent),
        ] {
            if !(1..=100).contains(&value) {
                return bad(key, format!("must be 1..=100 (got {value})"));
            }
        }
        for (key, value) in [
            ("slow_call_ms", self.slow_call_ms),
            ("open_ms", self.open_ms),
        ] {
            if !(1..=MAX_DURATION_MS).contains(&value) {
                return bad(key, format!("must be 1..={MAX_DURATION_MS} (got {value})"));
            }
        }
        if !(1..=self.window_calls).contains(&self.half_open_calls) {
            return bad(
                "half_open_calls",
                format!(
                    "must be 1..=window_calls ({}) (got {})",
                    self.window_calls, self.half_open_calls
                ),
            );
        }
        Ok(())
    }

    /// The nearest valid configuration, so that a breaker built from an unchecked one still
    /// behaves sanely instead of panicking or tripping on zero calls.
    fn clamped(&self) -> BreakerConfig {
        let window_calls = self.window_calls.clamp(1, MAX_WINDOW_CALLS);
        BreakerConfig {
            window_calls,
            minimum_calls: self.minimum_calls.clamp(1, window_calls),
            failure_rate_percent: self.failure_rate_percent.clamp(1, 100),
            slow_call_rate_percent: self.slow_call_rate_percent.clamp(1, 100),
            slow_call_ms: self.slow_call_ms.clamp(1, MAX_DURATION_MS),
            open_ms: self.open_ms.clamp(1, MAX_DURATION_MS),
            half_open_calls: self.half_open_calls.clamp(1, window_calls),
        }
    }
}

/// The three states of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls flow; outcomes are recorded in the sliding window.
    Closed,
    /// Calls are refused at once.
    Open,
    /// A fixed number of trial calls flow; the rest are refused.
    HalfOpen,
}

/// `closed`, `open`, `half-open`: the words used in logs and metrics labels.
impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        })
    }
}

/// A call refused by the breaker: answer 91 (issuer or switch inoperative) without trying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker {breaker} is {state}: call not permitted")]
pub struct BreakerOpen {
    /// Name of the breaker (the peer it guards).
    pub breaker: Arc<str>,
    /// [`BreakerState::Open`], or [`BreakerState::HalfOpen`] when all trial calls are taken.
    pub state: BreakerState,
}

/// One state change, as sent to [`CircuitBreaker::subscribe`]rs.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    /// Name of the breaker.
    pub breaker: Arc<str>,
    /// State before.
    pub from: BreakerState,
    /// State after.
    pub to: BreakerState,
    /// Failure rate (percent) of the calls that decided the change.
    pub failure_rate: f64,
    /// Slow-call rate (percent) of the calls that decided the change.
    pub slow_rate: f64,
}

/// A snapshot for metrics.
///
/// The rates describe the calls currently being judged: the sliding window when closed, the
/// window that tripped the breaker while open, and the finished trial calls while half-open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerStats {
    /// Current state.
    pub state: BreakerState,
    /// Calls whose outcome is being judged (see above).
    pub calls_in_window: u32,
    /// Percentage of those calls that failed (0 when there are none).
    pub failure_rate: f64,
    /// Percentage of those calls that were slow (0 when there are none).
    pub slow_rate: f64,
    /// State changes since the breaker was built.
    pub transitions: u64,
    /// Calls refused since the breaker was built.
    pub rejected: u64,
}

/// A circuit breaker guarding one outbound peer. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

struct Shared {
    name: Arc<str>,
    config: BreakerConfig,
    slow_call: Duration,
    open_for: Duration,
    events: broadcast::Sender<StateChange>,
    inner: Mutex<Inner>,
}

struct Inner {
    state: StateData,
    /// Bumped at every state change; a permit counts only if it was issued in the current epoch.
    epoch: u64,
    /// The closed state's sliding window (frozen while open, reset on close).
    window: Window,
    transitions: u64,
    rejected: u64,
}

enum StateData {
    Closed,
    Open { until: Instant },
    HalfOpen { admitted: u32, trials: Tally },
}

/// Outcome counts over a set of calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    calls: u32,
    failures: u32,
    slow: u32,
}

impl Tally {
    /// Whether these calls cross a threshold. Integer arithmetic, so 50 % of 10 is exactly 5.
    fn is_unhealthy(&self, config: &BreakerConfig) -> bool {
        let at_least = |count: u32, percent: u32| {
            u64::from(count) * 100 >= u64::from(percent) * u64::from(self.calls)
        };
        self.calls > 0
            && (at_least(self.failures, config.failure_rate_percent)
                || at_least(self.slow, config.slow_call_rate_percent))
    }

    fn rate(count: u32, calls: u32) -> f64 {
        if calls == 0 {
            0.0
        } else {
            f64::from(count) * 100.0 / f64::from(calls)
        }
    }

    fn failure_rate(&self) -> f64 {
        Self::rate(self.failures, self.calls)
    }

    fn slow_rate(&self) -> f64 {
        Self::rate(self.slow, self.calls)
    }

    fn add(&mut self, outcome: Outcome) {
        self.calls += 1;
        self.failures += u32::from(outcome.failed);
        self.slow += u32::from(outcome.slow);
    }

    fn remove(&mut self, outcome: Outcome) {
        self.calls -= 1;
        self.failures -= u32::from(outcome.failed);
        self.slow -= u32::from(outcome.slow);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outcome {
    failed: bool,
    slow: bool,
}

/// The last `capacity` outcomes, with running counts so judging is O(1).
struct Window {
    outcomes: VecDeque<Outcome>,
    capacity: usize,
    tally: Tally,
}

impl Window {
    fn new(capacity: u32) -> Window {
        let capacity = capacity as usize;
        Window {
            outcomes: VecDeque::with_capacity(capacity),
            capacity,
            tally: Tally::default(),
        }
    }

    fn push(&mut self, outcome: Outcome) {
        if self.outcomes.len() == self.capacity {
            if let Some(oldest) = self.outcomes.pop_front() {
                self.tally.remove(oldest);
            }
        }
        self.outcomes.push_back(outcome);
        self.tally.add(outcome);
    }

    fn clear(&mut self) {
        self.outcomes.clear();
        self.tally = Tally::default();
    }
}

impl CircuitBreaker {
    /// Builds a closed breaker. `name` (the guarded peer, e.g. `ledger`) appears in logs, errors
    /// and events. `config` should have passed [`BreakerConfig::validate`]; out-of-range values are
    /// clamped to the nearest valid one rather than trusted.
    pub fn new(name: &str, config: BreakerConfig) -> CircuitBreaker {
        let config = config.clamped();
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        CircuitBreaker {
            shared: Arc::new(Shared {
                name: Arc::from(name),
                slow_call: Duration::from_millis(config.slow_call_ms),
                open_for: Duration::from_millis(config.open_ms),
                events,
                inner: Mutex::new(Inner {
                    state: StateData::Closed,
                    epoch: 0,
                    window: Window::new(config.window_calls),
                    transitions: 0,
                    rejected: 0,
                }),
                config,
            }),
        }
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The configuration in force (after clamping).
    pub fn config(&self) -> &BreakerConfig {
        &self.shared.config
    }

    /// Asks to make a call. Never waits: refused at once while open, or while half-open with all
    /// trial calls taken. The returned permit must be given a verdict ([`Permit::success`] or
    /// [`Permit::failure`]); dropping it without one records a failure.
    pub fn try_acquire(&self) -> Result<Permit, BreakerOpen> {
        self.try_acquire_at(Instant::now())
    }

    fn try_acquire_at(&self, now: Instant) -> Result<Permit, BreakerOpen> {
        let mut inner = self.shared.lock();
        if let StateData::Open { until } = inner.state {
            if now >= until {
                self.shared.change_state(
                    &mut inner,
                    StateData::HalfOpen {
                        admitted: 0,
                        trials: Tally::default(),
                    },
                    Tally::default(),
                );
            }
        }
        let refused_in = match &mut inner.state {
            StateData::Closed => None,
            StateData::Open { .. } => Some(BreakerState::Open),
            StateData::HalfOpen { admitted, .. } => {
                if *admitted < self.shared.config.half_open_calls {
                    *admitted += 1;
                    None
                } else {
                    Some(BreakerState::HalfOpen)
                }
            }
        };
        if let Some(state) = refused_in {
            inner.rejected += 1;
            return Err(BreakerOpen {
                breaker: self.shared.name.clone(),
                state,
            });
        }
        Ok(Permit {
            shared: Some(self.shared.clone()),
            epoch: inner.epoch,
            acquired_at: now,
        })
    }

    /// The current state (open → half-open happens lazily, see the module docs).
    pub fn state(&self) -> BreakerState {
        self.shared.lock().state.public()
    }

    /// Counters and rates for metrics.
    pub fn stats(&self) -> BreakerStats {
        let inner = self.shared.lock();
        let judged = match &inner.state {
            StateData::HalfOpen { trials, .. } => *trials,
            StateData::Closed | StateData::Open { .. } => inner.window.tally,
        };
        BreakerStats {
            state: inner.state.public(),
            calls_in_window: judged.calls,
            failure_rate: judged.failure_rate(),
            slow_rate: judged.slow_rate(),
            transitions: inner.transitions,
            rejected: inner.rejected,
        }
    }

    /// Every later state change, in order. A receiver that falls more than 64 changes behind gets
    /// `RecvError::Lagged` and continues with the newest ones; sending never blocks the breaker.
    pub fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.shared.events.subscribe()
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.shared.name)
            .field("stats", &self.stats())
            .finish()
    }
}

impl StateData {
    fn public(&self) -> BreakerState {
        match self {
            StateData::Closed => BreakerState::Closed,
            StateData::Open { .. } => BreakerState::Open,
            StateData::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while the lock is held; if something ever did, the counts are still
        // consistent enough to keep serving rather than poison every later call.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the outcome of a call admitted in `epoch`, at `now`.
    fn record(&self, epoch: u64, outcome: Outcome, now: Instant) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if inner.epoch != epoch {
            return; // admitted by a state that no longer exists: says nothing about this one
        }
        let config = &self.config;
        match &mut inner.state {
            StateData::Closed => {
                inner.window.push(outcome);
                let window = inner.window.tally;
                if window.calls >= config.minimum_calls && window.is_unhealthy(config) {
                    let until = self.open_until(now);
                    self.change_state(inner, StateData::Open { until }, window);
                }
            }
            // An open breaker admits nothing, so no permit of this epoch can exist.
            StateData::Open { .. } => {}
            StateData::HalfOpen { trials, .. } => {
                trials.add(outcome);
                let trials = *trials;
                if trials.calls >= config.half_open_calls {
                    if trials.is_unhealthy(config) {
                        let until = self.open_until(now);
                        self.change_state(inner, StateData::Open { until }, trials);
                    } else {
                        inner.window.clear();
                        self.change_state(inner, StateData::Closed, trials);
                    }
                }
            }
        }
    }

    fn open_until(&self, now: Instant) -> Instant {
        // Bounded by MAX_DURATION_MS, so this cannot overflow on a real clock; never panic anyway.
        now.checked_add(self.open_for).unwrap_or(now)
    }

    /// Moves to `to`, logging and broadcasting the change; `judged` are the calls that decided it.
    fn change_state(&self, inner: &mut Inner, to: StateData, judged: Tally) {
        let from = inner.state.public();
        inner.state = to;
        inner.epoch += 1;
        inner.transitions += 1;
        let to = inner.state.public();
        let (failure_rate, slow_rate) = (judged.failure_rate(), judged.slow_rate());
        let name = &*self.name;
        match to {
            BreakerState::Open => tracing::warn!(
                breaker = name, %from, %to, failure_rate, slow_rate, calls = judged.calls,
                open_ms = self.config.open_ms,
                "circuit breaker opened: calls are refused at once"
            ),
            BreakerState::HalfOpen => tracing::info!(
                breaker = name, %from, %to, failure_rate, slow_rate,
                trial_calls = self.config.half_open_calls,
                "circuit breaker half-open: admitting trial calls"
            ),
            BreakerState::Closed => tracing::info!(
                breaker = name, %from, %to, failure_rate, slow_rate, calls = judged.calls,
                "circuit breaker closed: calls flow again"
            ),
        }
        // No subscriber is fine; the send never blocks.
        let _ = self.events.send(StateChange {
            breaker: self.name.clone(),
            from,
            to,
            failure_rate,
            slow_rate,
        });
    }
}

/// Permission for one call. Give it a verdict when the call ends; dropping it without one (the
/// task was cancelled, or `?` returned early) records a failure, so a lost answer is never
/// mistaken for a healthy peer.
#[must_use = "a permit dropped without a verdict counts as a failed call"]
pub struct Permit {
    /// `None` once a verdict has been recorded.
    shared: Option<Arc<Shared>>,
    epoch: u64,
    acquired_at: Instant,
}

impl Permit {
    /// The call reached the peer and got a well-formed answer in `elapsed`, including business
    /// refusals (insufficient funds, wrong PIN, ...). Over `slow_call_ms` it also counts as slow.
    pub fn success(mut self, elapsed: Duration) {
        let now = self.ended_at(elapsed);
        self.finish(false, elapsed, now);
    }

    /// The call failed after `elapsed`: connection refused or reset, timeout, 5xx, garbage.
    pub fn failure(mut self, elapsed: Duration) {
        let now = self.ended_at(elapsed);
        self.finish(true, elapsed, now);
    }

    /// When the permit was granted; `started_at().elapsed()` is the usual `elapsed`.
    pub fn started_at(&self) -> Instant {
        self.acquired_at
    }

    /// The end of the call as the caller measured it (so tests are deterministic); the real clock
    /// if a nonsensical `elapsed` would overflow.
    fn ended_at(&self, elapsed: Duration) -> Instant {
        self.acquired_at
            .checked_add(elapsed)
            .unwrap_or_else(Instant::now)
    }

    fn finish(&mut self, failed: bool, elapsed: Duration, now: Instant) {
        if let Some(shared) = self.shared.take() {
            let slow = elapsed > shared.slow_call;
            shared.record(self.epoch, Outcome { failed, slow }, now);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.shared.is_some() {
            let now = Instant::now();
            let elapsed = now.saturating_duration_since(self.acquired_at);
            self.finish(true, elapsed, now);
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", &self.shared.as_ref().map(|s| &*s.name))
            .field("epoch", &self.epoch)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    //! Time is driven through `try_acquire_at` and the permits' `elapsed`, so these tests do not
    //! need tokio's `test-util` feature.

    use super::*;

    const FAST: Duration = Duration::from_millis(10);
    /// Just over the default 2 s slow-call threshold.
    const SLOW: Duration = Duration::from_millis(2_001);
    const OPEN: Duration = Duration::from_millis(DEFAULT_OPEN_MS);

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new("ledger", BreakerConfig::default())
    }

    fn succeed(b: &CircuitBreaker, at: Instant, elapsed: Duration) {
        b.try_acquire_at(at)
            .expect("call admitted")
            .success(elapsed);
    }

    fn fail(b: &CircuitBreaker, at: Instant) {
        b.try_acquire_at(at).expect("call admitted").failure(FAST);
    }

    /// Opens a fresh breaker with 10 failures at `t0`; it opened at `t0 + FAST`.
    fn opened(t0: Instant) -> CircuitBreaker {
        let b = breaker();
        for _ in 0..DEFAULT_MINIMUM_CALLS {
            fail(&b, t0);
        }
        assert_eq!(b.state(), BreakerState::Open);
        b
    }

    /// A breaker just moved to half-open, and the instant it did.
    fn half_open(t0: Instant) -> (CircuitBreaker, Instant) {
        let b = opened(t0);
        let at = t0 + FAST + OPEN;
        let trial = b.try_acquire_at(at).expect("first trial admitted");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        trial.success(FAST);
        (b, at)
    }

    fn changes(rx: &mut broadcast::Receiver<StateChange>) -> Vec<(BreakerState, BreakerState)> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|c| (c.from, c.to))
            .collect()
    }

    use BreakerState::{Closed, HalfOpen, Open};

    #[test]
    fn defaults_are_the_architecture_values() {
        let c = BreakerConfig::default();
        assert_eq!(
            (
                c.window_calls,
                c.minimum_calls,
                c.failure_rate_percent,
                c.slow_call_rate_percent
            ),
            (20, 10, 50, 50)
        );
        assert_eq!(
            (c.slow_call_ms, c.open_ms, c.half_open_calls),
            (2_000, 5_000, 3)
        );
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn config_reads_partial_toml_and_refuses_unknown_keys() {
        let c: BreakerConfig = toml::from_str("open_ms = 1000\nhalf_open_calls = 5").unwrap();
        assert_eq!(c.open_ms, 1000);
        assert_eq!(c.half_open_calls, 5);
        assert_eq!(c.window_calls, DEFAULT_WINDOW_CALLS);
        let err = toml::from_str::<BreakerConfig>("open_secs = 5").unwrap_err();
        assert!(err.to_string().contains("open_secs"), "{err}");
    }

    #[test]
    fn config_validation_errors_name_the_key() {
        type Spoil = fn(&mut BreakerConfig);
        let cases: &[(&str, Spoil)] = &[
            ("window_calls", |c| c.window_calls = 0),
            ("window_calls", |c| c.window_calls = MAX_WINDOW_CALLS + 1),
            ("minimum_calls", |c| c.minimum_calls = 0),
            ("minimum_calls", |c| c.minimum_calls = 21),
            ("failure_rate_percent", |c| c.failure_rate_percent = 0),
            ("failure_rate_percent", |c| c.failure_rate_percent = 101),
            ("slow_call_rate_percent", |c| c.slow_call_rate_percent = 101),
            ("slow_call_ms", |c| c.slow_call_ms = 0),
            ("open_ms", |c| c.open_ms = 0),
            ("open_ms", |c| c.open_ms = MAX_DURATION_MS + 1),
            ("half_open_calls", |c| c.half_open_calls = 0),
            ("half_open_calls", |c| c.half_open_calls = 21),
        ];
        for (key, spoil) in cases {
            let mut c = BreakerConfig::default();
            spoil(&mut c);
            let err = c.validate().expect_err(key);
            assert_eq!(err.key, *key);
            assert!(
                err.to_string()
                    .starts_with(&format!("breaker setting `{key}`")),
                "{err}"
            );
        }
        let c = BreakerConfig {
            minimum_calls: 21,
            ..BreakerConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "breaker setting `minimum_calls` must be 1..=window_calls (20) (got 21)"
        );
    }

    #[test]
    fn invalid_config_is_clamped_not_trusted() {
        let c = BreakerConfig {
            window_calls: 0,
            minimum_calls: 0,
            half_open_calls: 0,
            ..BreakerConfig::default()
        };
        let b = CircuitBreaker::new("x", c);
        assert_eq!(b.config().validate(), Ok(()));
        // A zero minimum would otherwise judge an empty window.
        succeed(&b, Instant::now(), FAST);
        assert_eq!(b.state(), Closed);
    }

    #[test]
    fn does_not_judge_before_minimum_calls() {
        let b = breaker();
        let t0 = Instant::now();
        for _ in 0..DEFAULT_MINIMUM_CALLS - 1 {
            fail(&b, t0);
        }
        assert_eq!(b.state(), Closed, "9 failures out of 9 are not judged yet");
        assert_eq!(b.stats().failure_rate, 100.0);
        fail(&b, t0);
        assert_eq!(b.state(), Open, "the 10th call is judged");
    }

    #[test]
    fn opens_at_50_percent_failures_after_minimum_calls() {
        let t0 = Instant::now();
        // 4 failures in 10 calls: 40 %, stays closed.
        let b = breaker();
        for i in 0..10 {
            if i % 5 == 0 || i % 5 == 1 {
                fail(&b, t0);
            } else {
                succeed(&b, t0, FAST);
            }
        }
        assert_eq!(b.state(), Closed);
        assert_eq!(b.stats().failure_rate, 40.0);

        // 5 failures in 10 calls: exactly 50 %, opens.
        let b = breaker();
        for _ in 0..5 {
            succeed(&b, t0, FAST);
        }
        for _ in 0..4 {
            fail(&b, t0);
        }
        assert_eq!(b.state(), Closed);
        fail(&b, t0);
        assert_eq!(b.state(), Open);
        let stats = b.stats();
        assert_eq!((stats.calls_in_window, stats.failure_rate), (10, 50.0));
        assert_eq!(stats.transitions, 1);
    }

    #[test]
    fn old_outcomes_slide_out_of_the_window() {
        let b = breaker();
        let t0 = Instant::now();
        for _ in 0..11 {
            succeed(&b, t0, FAST);
        }
        for _ in 0..9 {
            fail(&b, t0);
        }
        assert_eq!(b.stats().failure_rate, 45.0);
        for _ in 0..20 {
            succeed(&b, t0, FAST);
        }
        let stats = b.stats();
        assert_eq!((stats.calls_in_window, stats.failure_rate), (20, 0.0));
        assert_eq!(stats.state, Closed);
    }

    #[test]
    fn slow_calls_open_it() {
        let b = breaker();
        let t0 = Instant::now();
        let at_threshold = Duration::from_millis(DEFAULT_SLOW_CALL_MS);
        for _ in 0..10 {
            succeed(&b, t0, at_threshold);
        }
        assert_eq!(b.state(), Closed, "exactly slow_call_ms is not slow");
        assert_eq!(b.stats().slow_rate, 0.0);
        for _ in 0..9 {
            succeed(&b, t0, SLOW);
        }
        assert_eq!(b.state(), Closed, "9 slow in 19 (47 %)");
        succeed(&b, t0, SLOW);
        assert_eq!(b.state(), Open, "10 slow in 20 (50 %)");
        let stats = b.stats();
        assert_eq!((stats.failure_rate, stats.slow_rate), (0.0, 50.0));
    }

    #[test]
    fn open_rejects_immediately() {
        let t0 = Instant::now();
        let b = opened(t0);
        for i in 1..=3 {
            let refused = b.try_acquire_at(t0 + FAST).unwrap_err();
            assert_eq!(refused.state, Open);
            assert_eq!(&*refused.breaker, "ledger");
            assert_eq!(b.stats().rejected, i);
        }
        assert_eq!(
            b.try_acquire().unwrap_err().to_string(),
            "circuit breaker ledger is open: call not permitted"
        );
    }

    #[test]
    fn half_open_after_open_ms_admits_exactly_n_trials_and_rejects_the_next() {
        let t0 = Instant::now();
        let b = opened(t0);
        let opened_at = t0 + FAST;
        let just_before = opened_at + OPEN - Duration::from_millis(1);
        assert_eq!(b.try_acquire_at(just_before).unwrap_err().state, Open);
        assert_eq!(b.state(), Open);

        let trials: Vec<Permit> = (0..DEFAULT_HALF_OPEN_CALLS)
            .map(|_| b.try_acquire_at(opened_at + OPEN).expect("trial admitted"))
            .collect();
        assert_eq!(b.state(), HalfOpen);
        let refused = b.try_acquire_at(opened_at + OPEN).unwrap_err();
        assert_eq!(refused.state, HalfOpen);
        assert_eq!(b.stats().rejected, 2);
        drop(trials);
    }

    #[test]
    fn closes_after_healthy_trials_and_resets_the_window() {
        let t0 = Instant::now();
        let (b, at) = half_open(t0); // one healthy trial already in
        succeed(&b, at, FAST);
        assert_eq!(b.state(), HalfOpen, "judged only once all trials reported");
        assert_eq!(b.stats().calls_in_window, 2);
        succeed(&b, at, FAST);
        assert_eq!(b.state(), Closed);
        let stats = b.stats();
        assert_eq!((stats.calls_in_window, stats.failure_rate), (0, 0.0));
        // A fresh window: 9 failures are again not enough.
        for _ in 0..9 {
            fail(&b, at);
        }
        assert_eq!(b.state(), Closed);
    }

    #[test]
    fn trials_are_judged_by_the_same_thresholds() {
        let t0 = Instant::now();
        let (b, at) = half_open(t0);
        fail(&b, at);
        succeed(&b, at, FAST);
        assert_eq!(
            b.state(),
            Closed,
            "1 failed trial in 3 (33 %) is under 50 %"
        );

        let (b, at) = half_open(t0);
        succeed(&b, at, SLOW);
        succeed(&b, at, SLOW);
        assert_eq!(b.state(), Open, "2 slow trials in 3 (67 %) re-open it");
    }

    #[test]
    fn reopens_after_failed_trials_for_another_open_ms() {
        let t0 = Instant::now();
        let (b, at) = half_open(t0);
        fail(&b, at);
        fail(&b, at);
        assert_eq!(b.state(), Open);
        let reopened_at = at + FAST;
        let refused = b.try_acquire_at(reopened_at + OPEN - Duration::from_millis(1));
        assert_eq!(refused.unwrap_err().state, Open);
        assert!(b.try_acquire_at(reopened_at + OPEN).is_ok());
        assert_eq!(b.state(), HalfOpen);
    }

    #[test]
    fn dropped_permit_counts_as_failure() {
        let b = breaker();
        let t0 = Instant::now();
        for _ in 0..10 {
            drop(b.try_acquire_at(t0).expect("admitted"));
        }
        assert_eq!(b.state(), Open);
        assert_eq!(b.stats().failure_rate, 100.0);

        // A trial abandoned half-open counts against the trials too.
        let (b, at) = half_open(t0);
        drop(b.try_acquire_at(at).expect("trial"));
        drop(b.try_acquire_at(at).expect("trial"));
        assert_eq!(b.state(), Open);
    }

    #[test]
    fn late_outcome_from_an_earlier_state_is_not_counted() {
        let t0 = Instant::now();
        let b = breaker();
        let late_success = b.try_acquire_at(t0).expect("admitted while closed");
        let late_failure = b.try_acquire_at(t0).expect("admitted while closed");
        for _ in 0..10 {
            fail(&b, t0);
        }
        assert_eq!(b.state(), Open);
        late_success.success(FAST);
        assert_eq!(
            b.state(),
            Open,
            "a success from the closed epoch does not close it"
        );
        assert_eq!(b.stats().calls_in_window, 10);

        let at = t0 + FAST + OPEN;
        for _ in 0..3 {
            succeed(&b, at, FAST);
        }
        assert_eq!(b.state(), Closed);
        late_failure.failure(FAST);
        let stats = b.stats();
        assert_eq!(
            stats.calls_in_window, 0,
            "the old epoch's failure is not in the new window"
        );
        assert_eq!(stats.transitions, 3);
    }

    /// Every (state, event) pair: the state reached, and exactly the changes announced.
    #[test]
    fn every_state_transition() {
        type Act = fn(&CircuitBreaker, Instant);
        let t0 = Instant::now();
        let cases: &[(BreakerState, &str, Act, BreakerState)] = &[
            (
                Closed,
                "healthy calls",
                |b, at| (0..30).for_each(|_| succeed(b, at, FAST)),
                Closed,
            ),
            (
                Closed,
                "much later",
                |b, at| succeed(b, at + OPEN * 10, FAST),
                Closed,
            ),
            (
                Closed,
                "failure rate reached",
                |b, at| (0..10).for_each(|_| fail(b, at)),
                Open,
            ),
            (
                Closed,
                "slow rate reached",
                |b, at| (0..10).for_each(|_| succeed(b, at, SLOW)),
                Open,
            ),
            (
                Open,
                "call before open_ms",
                |b, at| assert!(b.try_acquire_at(at).is_err()),
                Open,
            ),
            (
                Open,
                "call after open_ms",
                |b, at| succeed(b, at + OPEN, FAST),
                HalfOpen,
            ),
            (
                HalfOpen,
                "trials pending",
                |b, at| succeed(b, at, FAST),
                HalfOpen,
            ),
            (
                HalfOpen,
                "all trials taken",
                |b, at| {
                    let permits = [b.try_acquire_at(at).unwrap(), b.try_acquire_at(at).unwrap()];
                    assert_eq!(b.try_acquire_at(at).unwrap_err().state, HalfOpen);
                    assert_eq!(b.state(), HalfOpen);
                    permits.into_iter().for_each(|p| p.success(FAST));
                },
                Closed,
            ),
            (
                HalfOpen,
                "healthy trials",
                |b, at| (0..2).for_each(|_| succeed(b, at, FAST)),
                Closed,
            ),
            (
                HalfOpen,
                "failed trials",
                |b, at| (0..2).for_each(|_| fail(b, at)),
                Open,
            ),
        ];
        for (from, event, act, to) in cases {
            let (b, at) = match from {
                Closed => (breaker(), t0),
                Open => (opened(t0), t0 + FAST),
                HalfOpen => half_open(t0),
            };
            assert_eq!(b.state(), *from, "{event}: setup");
            let before = b.stats().transitions;
            let mut rx = b.subscribe();
            act(&b, at);
            assert_eq!(b.state(), *to, "{from} + {event}");
            let expected = if from == to {
                vec![]
            } else {
                vec![(*from, *to)]
            };
            assert_eq!(changes(&mut rx), expected, "{from} + {event}");
            assert_eq!(b.stats().transitions - before, expected.len() as u64);
        }
    }

    #[test]
    fn a_full_cycle_is_announced_in_order_with_rates() {
        let t0 = Instant::now();
        let b = breaker();
        let mut rx = b.subscribe();
        for _ in 0..10 {
            fail(&b, t0);
        }
        let at = t0 + FAST + OPEN;
        for _ in 0..3 {
            succeed(&b, at, FAST);
        }
        let seen: Vec<StateChange> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        let steps: Vec<_> = seen.iter().map(|c| (c.from, c.to)).collect();
        assert_eq!(
            steps,
            [(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)]
        );
        assert_eq!((seen[0].failure_rate, seen[0].slow_rate), (100.0, 0.0));
        assert_eq!(seen[2].failure_rate, 0.0);
        assert!(seen.iter().all(|c| &*c.breaker == "ledger"));
        assert_eq!(b.stats().transitions, 3);
    }

    #[test]
    fn state_names_are_lowercase() {
        assert_eq!(
            [Closed, Open, HalfOpen].map(|s| s.to_string()),
            ["closed", "open", "half-open"]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_half_open_trials_never_exceed_the_limit() {
        let t0 = Instant::now();
        let (b, at) = half_open(t0); // 1 trial done, 2 left
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let b = b.clone();
                tokio::spawn(async move { b.try_acquire_at(at).ok() })
            })
            .collect();
        let mut admitted = Vec::new();
        for task in tasks {
            admitted.extend(task.await.unwrap());
        }
        assert_eq!(admitted.len(), 2);
        assert_eq!(b.stats().rejected, 14);
        admitted.into_iter().for_each(|p| p.success(FAST));
        assert_eq!(b.state(), Closed);
    }
}
