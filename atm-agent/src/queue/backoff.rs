//! Retry delays: exponential from `retry_backoff_min_ms`, capped at `retry_backoff_max_ms`, with
//! "equal jitter" (a random point in the upper half of the step) so that a fleet of agents
//! coming back after a switch outage does not resend in lock-step.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The delay before the next attempt after `attempts` sends. `random` is any 64-bit value.
/// Always within `min_ms..=max_ms`.
pub(crate) fn backoff_ms(attempts: u32, min_ms: u64, max_ms: u64, random: u64) -> u64 {
    let exponent = attempts.saturating_sub(1).min(63);
    let step = min_ms
        .saturating_mul(1u64 << exponent)
        .clamp(min_ms, max_ms.max(min_ms));
    let half = step / 2;
    let jittered = half + random % (step - half + 1);
    jittered.clamp(min_ms, max_ms.max(min_ms))
}

/// A tiny lock-free random source (splitmix64) for jitter; not for anything secret.
pub(crate) struct Jitter {
    state: AtomicU64,
}

impl Jitter {
    pub(crate) fn seeded() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self {
            state: AtomicU64::new(nanos ^ (u64::from(std::process::id()) << 32)),
        }
    }

    pub(crate) fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_caps_and_stays_within_bounds() {
        let jitter = Jitter::seeded();
        for attempts in 0..100 {
            for _ in 0..50 {
                let d = backoff_ms(attempts, 1_000, 60_000, jitter.next_u64());
                assert!((1_000..=60_000).contains(&d), "attempt {attempts}: {d}");
            }
        }
        // Upper half of each step: 1 s, 2 s, 4 s ... 60 s.
        assert_eq!(backoff_ms(1, 1_000, 60_000, 0), 1_000);
        assert_eq!(backoff_ms(3, 1_000, 60_000, 0), 2_000);
        assert_eq!(backoff_ms(3, 1_000, 60_000, 2_000), 4_000);
        assert_eq!(backoff_ms(30, 1_000, 60_000, 0), 30_000);
        assert_eq!(
            backoff_ms(u32::MAX, 1_000, 60_000, u64::MAX),
            backoff_ms(u32::MAX, 1_000, 60_000, u64::MAX)
        );
    }

    #[test]
    fn jitter_spreads_delays() {
        let jitter = Jitter::seeded();
        let distinct: std::collections::HashSet<u64> = (0..100)
            .map(|_| backoff_ms(6, 1_000, 60_000, jitter.next_u64()))
            .collect();
        assert!(distinct.len() > 10);
    }
}
