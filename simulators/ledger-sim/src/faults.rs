//! Fault injection: make the ledger slow, flaky or down, so the switch's timeouts, breakers and
//! retries can be watched at work.
//!
//! Faults apply to the wallet API (`/v1/...`) only; `/admin/...` always answers, so a test or an
//! operator can turn them off again. An injected error is answered *before* the request reaches
//! the books: it has no effect, and a retry with the same idempotency key is safe.
//!
//! The handle is lock-free (atomics), cheap to clone, and shared by the HTTP layer, the admin
//! endpoint and in-process callers ([`crate::RunningLedger::faults`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest latency that can be injected (one minute).
pub const LATENCY_MS_MAX: u64 = 60_000;

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
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultConfigError {
    #[error("error_rate must be between 0 and 1, got {0}")]
    ErrorRate(f64),
    #[error("latency_ms must be at most {LATENCY_MS_MAX}, got {0}")]
    Latency(u64),
}

impl FaultConfig {
    pub fn validate(&self) -> Result<(), FaultConfigError> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(FaultConfigError::ErrorRate(self.error_rate));
        }
        if self.latency_ms > LATENCY_MS_MAX {
            return Err(FaultConfigError::Latency(self.latency_ms));
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
    /// splitmix64 state; a shared counter is all the randomness a fault injector needs.
    rng: AtomicU64,
}

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
                rng: AtomicU64::new(seed),
            }),
        };
        faults.set(config)?;
        Ok(faults)
    }

    /// Replaces all settings at once (each field takes effect for the next request).
    pub fn set(&self, config: FaultConfig) -> Result<(), FaultConfigError> {
        config.validate()?;
        let threshold = (config.error_rate * 4_294_967_296.0).round() as u64;
        self.inner
            .latency_ms
            .store(config.latency_ms, Ordering::Relaxed);
        self.inner
            .error_threshold
            .store(threshold, Ordering::Relaxed);
        self.inner
            .error_rate_bits
            .store(config.error_rate.to_bits(), Ordering::Relaxed);
        self.inner.down.store(config.down, Ordering::Relaxed);
        Ok(())
    }

    /// Clears every fault.
    pub fn clear(&self) {
        // The default config is always valid.
        let _ = self.set(FaultConfig::default());
    }

    pub fn get(&self) -> FaultConfig {
        FaultConfig {
            latency_ms: self.inner.latency_ms.load(Ordering::Relaxed),
            error_rate: f64::from_bits(self.inner.error_rate_bits.load(Ordering::Relaxed)),
            down: self.inner.down.load(Ordering::Relaxed),
        }
    }

    /// Decides the fate of one request.
    pub fn verdict(&self) -> Verdict {
        if self.inner.down.load(Ordering::Relaxed) {
            return Verdict::Down;
        }
        let delay = Duration::from_millis(self.inner.latency_ms.load(Ordering::Relaxed));
        let threshold = self.inner.error_threshold.load(Ordering::Relaxed);
        if threshold > 0 && u64::from(self.draw_u32()) < threshold {
            Verdict::Fail(delay)
        } else {
            Verdict::Pass(delay)
        }
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
            error_rate: 0.0,
            down: true,
        })
        .unwrap();
        assert_eq!(faults.verdict(), Verdict::Down);
        faults.clear();
        assert_eq!(faults.verdict(), Verdict::Pass(Duration::ZERO));
    }

    #[test]
    fn error_rate_is_roughly_honoured() {
        let faults = Faults::new(FaultConfig {
            latency_ms: 0,
            error_rate: 0.3,
            down: false,
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
}
