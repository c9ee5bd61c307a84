//! Fault injection: make the ledger slow, flaky or down, so the switch's timeouts, breakers and
//! retries can be watched at work.
//!
//! Faults apply to the wallet API (`/v1/...`) only; `/admin/...` always answers, so a test or an
//! operator can turn them off again. Two kinds:
//! - *before the books*: `down` and `error_rate` answer 503 before the request reaches the books
//!   (no effect; a retry with the same idempotency key is safe), `latency_ms` delays it;
//! - *after the books* (ambiguous outcomes): `lost_answer_rate` is the share of wallet writes
//!   (`POST /v1/...`) that are handled — the books change and the change is on disk — and whose
//!   answer is then lost as [`LostAnswer`] says: the connection closed without a response, a 503
//!   `answer_lost`, or the real answer later than the client waits. The client cannot tell
//!   whether anything happened; asking again with the same idempotency key tells it (the
//!   recorded answer, no second effect). [`Faults::lost_answers`] counts what was lost.
//!
//! The handle is lock-free (atomics), cheap to clone, and shared by the HTTP layer, the admin
//! endpoint and in-process callers ([`crate::RunningLedger::faults`]).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest latency that can be injected (one minute).
pub const LATENCY_MS_MAX: u64 = 60_000;

/// How an answer is lost after the request changed the books. On the wire `{"mode": "drop"}`,
/// `{"mode": "server_error"}` or `{"mode": "late", "ms": 4000}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "LostAnswerWire", into = "LostAnswerWire")]
pub enum LostAnswer {
    /// The connection is closed with no HTTP response at all (the client sees a transport
    /// error: "connection closed before message completed").
    #[default]
    Drop,
    /// Answered `503 answer_lost`, as a proxy or a crashing front end would.
    ServerError,
    /// The real answer, held back `ms` milliseconds (set it beyond the client's timeout).
    Late { ms: u64 },
}

/// [`LostAnswer`] as written: serde's internally tagged enums let unknown fields through on
/// unit variants (`{"mode": "drop", "ms": 1}`), this shape refuses them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LostAnswerWire {
    mode: LostAnswerMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum LostAnswerMode {
    Drop,
    ServerError,
    Late,
}

impl TryFrom<LostAnswerWire> for LostAnswer {
    type Error = &'static str;

    fn try_from(wire: LostAnswerWire) -> Result<Self, Self::Error> {
        match (wire.mode, wire.ms) {
            (LostAnswerMode::Drop, None) => Ok(LostAnswer::Drop),
            (LostAnswerMode::ServerError, None) => Ok(LostAnswer::ServerError),
            (LostAnswerMode::Late, Some(ms)) => Ok(LostAnswer::Late { ms }),
            (LostAnswerMode::Late, None) => Err("mode late needs ms"),
            (_, Some(_)) => Err("ms goes with mode late only"),
        }
    }
}

impl From<LostAnswer> for LostAnswerWire {
    fn from(lost: LostAnswer) -> Self {
        let (mode, ms) = match lost {
            LostAnswer::Drop => (LostAnswerMode::Drop, None),
            LostAnswer::ServerError => (LostAnswerMode::ServerError, None),
            LostAnswer::Late { ms } => (LostAnswerMode::Late, Some(ms)),
        };
        LostAnswerWire { mode, ms }
    }
}

impl LostAnswer {
    /// `drop`, `server_error` or `late`: the `mode` on the wire, for logs.
    pub fn mode(self) -> &'static str {
        match self {
            LostAnswer::Drop => "drop",
            LostAnswer::ServerError => "server_error",
            LostAnswer::Late { .. } => "late",
        }
    }
}

impl std::str::FromStr for LostAnswer {
    type Err = String;

    /// `drop`, `server_error` (or `server-error`), or `late:MS` — the command line's spelling.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "drop" => Ok(LostAnswer::Drop),
            "server_error" | "server-error" => Ok(LostAnswer::ServerError),
            _ => text
                .strip_prefix("late:")
                .and_then(|ms| ms.parse().ok())
                .map(|ms| LostAnswer::Late { ms })
                .ok_or_else(|| {
                    format!("{text:?}: expected drop, server_error or late:MS (e.g. late:4000)")
                }),
        }
    }
}

/// The fault settings, as read and written by `GET`/`PUT /admin/faults`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// Added before every wallet API request is handled.
    #[serde(default)]
    pub latency_ms: u64,
    /// Share of wallet API requests answered `503 injected_error`, from 0.0 to 1.0.
    #[serde(default)]
    pub error_rate: f64,
    /// When true every wallet API request is answered `503 ledger_down` at once.
    #[serde(default)]
    pub down: bool,
    /// Share of wallet API writes (`POST /v1/...`) that are applied and whose answer is then
    /// lost as `lost_answer` says, from 0.0 to 1.0.
    #[serde(default)]
    pub lost_answer_rate: f64,
    /// How those answers are lost.
    #[serde(default)]
    pub lost_answer: LostAnswer,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultConfigError {
    #[error("error_rate must be between 0 and 1, got {0}")]
    ErrorRate(f64),
    #[error("latency_ms must be at most {LATENCY_MS_MAX}, got {0}")]
    Latency(u64),
    #[error("lost_answer_rate must be between 0 and 1, got {0}")]
    LostAnswerRate(f64),
    #[error("lost_answer.ms (a late answer) must be 1 to {LATENCY_MS_MAX}, got {0}")]
    LateAnswer(u64),
}

impl FaultConfig {
    pub fn validate(&self) -> Result<(), FaultConfigError> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(FaultConfigError::ErrorRate(self.error_rate));
        }
        if self.latency_ms > LATENCY_MS_MAX {
            return Err(FaultConfigError::Latency(self.latency_ms));
        }
        if !(0.0..=1.0).contains(&self.lost_answer_rate) {
            return Err(FaultConfigError::LostAnswerRate(self.lost_answer_rate));
        }
        if let LostAnswer::Late { ms } = self.lost_answer {
            if ms == 0 || ms > LATENCY_MS_MAX {
                return Err(FaultConfigError::LateAnswer(ms));
            }
        }
        Ok(())
    }
}

/// What the HTTP layer should do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer 503 at once: the ledger is down.
    Down,
    /// Wait, then answer 503: an injected error.
    Fail(Duration),
    /// Wait, then handle the request.
    Pass(Duration),
}

/// A wallet operation that took effect (2xx, not a replay) and whose answer was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Hold,
    Capture,
    Void,
    Credit,
    Debit,
}

/// How many answers were lost since start, as [`Faults::lost_answers`] reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostAnswers {
    /// Every answer lost, refusals and replays included.
    pub total: u64,
    /// Lost answers of operations that took effect, by operation.
    pub holds: u64,
    pub captures: u64,
    pub voids: u64,
    pub credits: u64,
    pub debits: u64,
}

impl LostAnswers {
    /// What was lost between `earlier` and `self`.
    pub fn since(&self, earlier: &LostAnswers) -> LostAnswers {
        LostAnswers {
            total: self.total.saturating_sub(earlier.total),
            holds: self.holds.saturating_sub(earlier.holds),
            captures: self.captures.saturating_sub(earlier.captures),
            voids: self.voids.saturating_sub(earlier.voids),
            credits: self.credits.saturating_sub(earlier.credits),
            debits: self.debits.saturating_sub(earlier.debits),
        }
    }
}

/// Shared, lock-free fault settings.
#[derive(Debug, Clone)]
pub struct Faults {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    latency_ms: AtomicU64,
    /// error_rate scaled to parts per 2^32, so that a u32 draw can be compared to it.
    error_threshold: AtomicU64,
    /// error_rate as set (f64 bits), so that `get` answers exactly what was set.
    error_rate_bits: AtomicU64,
    down: AtomicBool,
    /// lost_answer_rate, scaled and as set, like error_rate.
    lost_threshold: AtomicU64,
    lost_rate_bits: AtomicU64,
    /// 0 drop, 1 server error, 2 late (by `late_ms`).
    lost_mode: AtomicU8,
    late_ms: AtomicU64,
    /// Counters behind [`LostAnswers`]: total, then one per [`Applied`] in declaration order.
    lost: [AtomicU64; 6],
    /// splitmix64 state; a shared counter is all the randomness a fault injector needs.
    rng: AtomicU64,
}

const MODE_DROP: u8 = 0;
const MODE_SERVER_ERROR: u8 = 1;
const MODE_LATE: u8 = 2;

impl Faults {
    pub fn new(config: FaultConfig) -> Result<Self, FaultConfigError> {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        let faults = Faults {
            inner: Arc::new(Inner {
                latency_ms: AtomicU64::new(0),
                error_threshold: AtomicU64::new(0),
                error_rate_bits: AtomicU64::new(0),
                down: AtomicBool::new(false),
                lost_threshold: AtomicU64::new(0),
                lost_rate_bits: AtomicU64::new(0),
                lost_mode: AtomicU8::new(MODE_DROP),
                late_ms: AtomicU64::new(0),
                lost: Default::default(),
                rng: AtomicU64::new(seed),
            }),
        };
        faults.set(config)?;
        Ok(faults)
    }

    /// Replaces all settings at once (each field takes effect for the next request).
    pub fn set(&self, config: FaultConfig) -> Result<(), FaultConfigError> {
        config.validate()?;
        let inner = &self.inner;
        inner.latency_ms.store(config.latency_ms, Ordering::Relaxed);
        inner
            .error_threshold
            .store(threshold(config.error_rate), Ordering::Relaxed);
        inner
            .error_rate_bits
            .store(config.error_rate.to_bits(), Ordering::Relaxed);
        inner.down.store(config.down, Ordering::Relaxed);
        let (mode, late_ms) = match config.lost_answer {
            LostAnswer::Drop => (MODE_DROP, 0),
            LostAnswer::ServerError => (MODE_SERVER_ERROR, 0),
            LostAnswer::Late { ms } => (MODE_LATE, ms),
        };
        inner.lost_mode.store(mode, Ordering::Relaxed);
        inner.late_ms.store(late_ms, Ordering::Relaxed);
        inner
            .lost_rate_bits
            .store(config.lost_answer_rate.to_bits(), Ordering::Relaxed);
        inner
            .lost_threshold
            .store(threshold(config.lost_answer_rate), Ordering::Relaxed);
        Ok(())
    }

    /// Clears every fault (the counts of lost answers stay).
    pub fn clear(&self) {
        // The default config is always valid.
        let _ = self.set(FaultConfig::default());
    }

    pub fn get(&self) -> FaultConfig {
        let inner = &self.inner;
        FaultConfig {
            latency_ms: inner.latency_ms.load(Ordering::Relaxed),
            error_rate: f64::from_bits(inner.error_rate_bits.load(Ordering::Relaxed)),
            down: inner.down.load(Ordering::Relaxed),
            lost_answer_rate: f64::from_bits(inner.lost_rate_bits.load(Ordering::Relaxed)),
            lost_answer: self.lost_answer_mode(),
        }
    }

    fn lost_answer_mode(&self) -> LostAnswer {
        match self.inner.lost_mode.load(Ordering::Relaxed) {
            MODE_SERVER_ERROR => LostAnswer::ServerError,
            MODE_LATE => LostAnswer::Late {
                ms: self.inner.late_ms.load(Ordering::Relaxed),
            },
            _ => LostAnswer::Drop,
        }
    }

    /// Decides the fate of one request before it is handled.
    pub fn verdict(&self) -> Verdict {
        if self.inner.down.load(Ordering::Relaxed) {
            return Verdict::Down;
        }
        let delay = Duration::from_millis(self.inner.latency_ms.load(Ordering::Relaxed));
        if self.draw(&self.inner.error_threshold) {
            Verdict::Fail(delay)
        } else {
            Verdict::Pass(delay)
        }
    }

    /// For a write that passed: whether (and how) its answer is to be lost once it is handled.
    pub fn lose_answer(&self) -> Option<LostAnswer> {
        self.draw(&self.inner.lost_threshold)
            .then(|| self.lost_answer_mode())
    }

    /// Counts one lost answer; `applied` when the operation took effect.
    pub fn note_lost(&self, applied: Option<Applied>) {
        let lost = &self.inner.lost;
        lost[0].fetch_add(1, Ordering::Relaxed);
        if let Some(op) = applied {
            let i = match op {
                Applied::Hold => 1,
                Applied::Capture => 2,
                Applied::Void => 3,
                Applied::Credit => 4,
                Applied::Debit => 5,
            };
            lost[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The answers lost since start.
    pub fn lost_answers(&self) -> LostAnswers {
        let n = |i: usize| self.inner.lost[i].load(Ordering::Relaxed);
        LostAnswers {
            total: n(0),
            holds: n(1),
            captures: n(2),
            voids: n(3),
            credits: n(4),
            debits: n(5),
        }
    }

    /// True with the probability `threshold` stands for (parts per 2^32).
    fn draw(&self, threshold: &AtomicU64) -> bool {
        let threshold = threshold.load(Ordering::Relaxed);
        threshold > 0 && u64::from(self.draw_u32()) < threshold
    }

    fn draw_u32(&self) -> u32 {
        let state = self
            .inner
            .rng
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        let mut z = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 32) as u32
    }
}

/// A rate from 0.0 to 1.0 as parts per 2^32, so that a u32 draw can be compared to it.
fn threshold(rate: f64) -> u64 {
    (rate * 4_294_967_296.0).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_faults_pass_everything_at_once() {
        let faults = Faults::new(FaultConfig::default()).unwrap();
        for _ in 0..1000 {
            assert_eq!(faults.verdict(), Verdict::Pass(Duration::ZERO));
        }
    }

    #[test]
    fn down_wins_over_everything() {
        let faults = Faults::new(FaultConfig {
            latency_ms: 50,
            down: true,
            lost_answer_rate: 1.0,
            ..FaultConfig::default()
        })
        .unwrap();
        assert_eq!(faults.verdict(), Verdict::Down);
        faults.clear();
        assert_eq!(faults.verdict(), Verdict::Pass(Duration::ZERO));
    }

    #[test]
    fn error_rate_is_roughly_honoured() {
        let faults = Faults::new(FaultConfig {
            error_rate: 0.3,
            ..FaultConfig::default()
        })
        .unwrap();
        let failed = (0..10_000)
            .filter(|_| matches!(faults.verdict(), Verdict::Fail(_)))
            .count();
        assert!((2_500..3_500).contains(&failed), "{failed}");
        assert_eq!(
            faults.get().error_rate,
            0.3,
            "reads back exactly what was set"
        );
        faults
            .set(FaultConfig {
                error_rate: 1.0,
                ..FaultConfig::default()
            })
            .unwrap();
        assert!((0..1000).all(|_| matches!(faults.verdict(), Verdict::Fail(_))));
    }

    #[test]
    fn out_of_range_settings_are_refused() {
        let faults = Faults::new(FaultConfig::default()).unwrap();
        assert!(faults
            .set(FaultConfig {
                error_rate: 1.5,
                ..FaultConfig::default()
            })
            .is_err());
        assert!(faults
            .set(FaultConfig {
                error_rate: f64::NAN,
                ..FaultConfig::default()
            })
            .is_err());
        assert!(faults
            .set(FaultConfig {
                latency_ms: 60_001,
                ..FaultConfig::default()
            })
            .is_err());
        assert_eq!(faults.get(), FaultConfig::default());
    }

    #[test]
    fn no_answer_is_lost_by_default() {
        let faults = Faults::new(FaultConfig::default()).unwrap();
        assert!((0..1000).all(|_| faults.lose_answer().is_none()));
        assert_eq!(faults.lost_answers(), LostAnswers::default());
    }

    #[test]
    fn lost_answer_rate_and_mode_are_honoured_and_read_back() {
        let config = FaultConfig {
            lost_answer_rate: 0.25,
            lost_answer: LostAnswer::Late { ms: 3_500 },
            ..FaultConfig::default()
        };
        let faults = Faults::new(config).unwrap();
        assert_eq!(faults.get(), config);
        let lost: Vec<_> = (0..10_000).filter_map(|_| faults.lose_answer()).collect();
        assert!((2_000..3_000).contains(&lost.len()), "{}", lost.len());
        assert!(lost.iter().all(|l| *l == LostAnswer::Late { ms: 3_500 }));
        for mode in [LostAnswer::Drop, LostAnswer::ServerError] {
            faults
                .set(FaultConfig {
                    lost_answer_rate: 1.0,
                    lost_answer: mode,
                    ..FaultConfig::default()
                })
                .unwrap();
            assert_eq!(faults.lose_answer(), Some(mode));
        }
    }

    #[test]
    fn lost_answers_are_counted_by_operation() {
        let faults = Faults::new(FaultConfig::default()).unwrap();
        faults.note_lost(Some(Applied::Hold));
        let before = faults.lost_answers();
        faults.note_lost(Some(Applied::Credit));
        faults.note_lost(None);
        faults.clear();
        let now = faults.lost_answers();
        assert_eq!((now.total, now.holds, now.credits), (3, 1, 1));
        assert_eq!(
            now.since(&before),
            LostAnswers {
                total: 2,
                credits: 1,
                ..LostAnswers::default()
            }
        );
    }

    #[test]
    fn lost_answer_settings_out_of_range_are_refused() {
        let faults = Faults::new(FaultConfig::default()).unwrap();
        for bad in [
            FaultConfig {
                lost_answer_rate: -0.1,
                ..FaultConfig::default()
            },
            FaultConfig {
                lost_answer: LostAnswer::Late { ms: 0 },
                ..FaultConfig::default()
            },
            FaultConfig {
                lost_answer: LostAnswer::Late { ms: 60_001 },
                ..FaultConfig::default()
            },
        ] {
            assert!(faults.set(bad).is_err(), "{bad:?}");
        }
        assert_eq!(faults.get(), FaultConfig::default());
    }

    #[test]
    fn lost_answer_modes_on_the_command_line() {
        assert_eq!("drop".parse(), Ok(LostAnswer::Drop));
        assert_eq!("server-error".parse(), Ok(LostAnswer::ServerError));
        assert_eq!("late:4000".parse(), Ok(LostAnswer::Late { ms: 4000 }));
        assert!("late".parse::<LostAnswer>().is_err());
        assert!("late:soon".parse::<LostAnswer>().is_err());
    }

    #[test]
    fn lost_answer_modes_on_the_wire() {
        let wire = |l: LostAnswer| serde_json::to_value(l).unwrap();
        assert_eq!(wire(LostAnswer::Drop), serde_json::json!({"mode": "drop"}));
        assert_eq!(
            wire(LostAnswer::ServerError),
            serde_json::json!({"mode": "server_error"})
        );
        assert_eq!(
            wire(LostAnswer::Late { ms: 4000 }),
            serde_json::json!({"mode": "late", "ms": 4000})
        );
        let parse = |v: serde_json::Value| serde_json::from_value::<FaultConfig>(v);
        let old = parse(serde_json::json!({"down": true})).unwrap();
        assert_eq!(
            (old.lost_answer_rate, old.lost_answer),
            (0.0, LostAnswer::Drop)
        );
        assert!(parse(serde_json::json!({"lost_answer": {"mode": "late"}})).is_err());
        assert!(parse(serde_json::json!({"lost_answer": {"mode": "drop", "ms": 1}})).is_err());
        assert!(parse(serde_json::json!({"lost_answer": {"mode": "vanish"}})).is_err());
    }
}
