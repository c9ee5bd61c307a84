//! Queue settings (the `[queue]` table of the agent's TOML). Every field has a default that runs
//! out of the box; unknown keys are an error so a typo is not silently ignored.

use serde::{Deserialize, Serialize};

use super::error::QueueError;

/// Hard ceiling of `max_entries`, so a configuration typo cannot ask for an unbounded queue.
pub const MAX_ENTRIES_LIMIT: usize = 10_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Advices held at most, pending and parked together; beyond it `enqueue` answers
    /// [`QueueError::Full`] and the terminal is not acknowledged. Default 100 000 (a branch of
    /// ATMs cut off from the switch for days).
    pub max_entries: usize,
    /// An advice older than this is not sent any more: it is parked and raised to the operator
    /// (`tracing::error!`), who decides (the hold behind a completion may have expired).
    /// Default 72 h: long enough to ride out a weekend outage of the switch.
    pub park_after_age_ms: u64,
    /// Failures that count against the limit (`retry_later(.., counts_against_limit: true)`)
    /// after which an advice is parked. A 91 or a timeout does not count. Default 10.
    pub park_after_failures: u32,
    /// First retry delay; it doubles with every attempt (with jitter). Default 1 s.
    pub retry_backoff_min_ms: u64,
    /// Longest retry delay. Default 60 s.
    pub retry_backoff_max_ms: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            park_after_age_ms: 72 * 3_600_000,
            park_after_failures: 10,
            retry_backoff_min_ms: 1_000,
            retry_backoff_max_ms: 60_000,
        }
    }
}

impl QueueConfig {
    /// Checks the values that would make the queue misbehave rather than fail loudly.
    pub fn validate(&self) -> Result<(), QueueError> {
        let bad = |what: &str| Err(QueueError::Config(what.to_string()));
        if self.max_entries == 0 || self.max_entries > MAX_ENTRIES_LIMIT {
            return bad(&format!(
                "max_entries must be within 1..={MAX_ENTRIES_LIMIT}, got {}",
                self.max_entries
            ));
        }
        if self.park_after_age_ms == 0 {
            return bad("park_after_age_ms must be above 0");
        }
        if self.park_after_failures == 0 {
            return bad("park_after_failures must be above 0");
        }
        if self.retry_backoff_min_ms == 0 || self.retry_backoff_min_ms > self.retry_backoff_max_ms {
            return bad(&format!(
                "need 0 < retry_backoff_min_ms <= retry_backoff_max_ms, got {} and {}",
                self.retry_backoff_min_ms, self.retry_backoff_max_ms
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_unknown_keys_are_refused() {
        QueueConfig::default().validate().unwrap();
        let partial: QueueConfig = serde_json::from_str(r#"{"max_entries": 5}"#).unwrap();
        assert_eq!(partial.max_entries, 5);
        assert_eq!(
            partial.retry_backoff_max_ms,
            QueueConfig::default().retry_backoff_max_ms
        );
        assert!(serde_json::from_str::<QueueConfig>(r#"{"max_entriez": 5}"#).is_err());
    }

    #[test]
    fn inverted_backoff_is_refused() {
        let c = QueueConfig {
            retry_backoff_min_ms: 10,
            retry_backoff_max_ms: 5,
            ..Default::default()
        };
        assert!(matches!(c.validate(), Err(QueueError::Config(_))));
    }
}
