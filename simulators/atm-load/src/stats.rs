//! What a phase measured: counts, throughput and latency percentiles.
//!
//! Latencies are kept as one microsecond sample per operation and sorted once at the end: a
//! ten-second phase at tens of thousands per second is a few megabytes, exact percentiles, and no
//! extra dependency.

use std::time::Duration;

use serde::Serialize;

/// Latency percentiles of one phase, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    pub fn from_samples_us(mut samples: Vec<u32>) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            f64::from(samples[i]) / 1000.0
        };
        let sum: u64 = samples.iter().map(|&s| u64::from(s)).sum();
        Latency {
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: at(1.0),
            mean_ms: sum as f64 / samples.len() as f64 / 1000.0,
        }
    }
}

/// One phase of a run (echo baseline, authorizations or sagas).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PhaseReport {
    pub name: String,
    /// Operations started: one message for echo and auth, one 0100 (+ one 0220) for a saga.
    pub operations: u64,
    /// Operations whose every message was answered.
    pub completed: u64,
    /// Operations approved end to end (00 on every answer; every answer for the echo).
    pub approved: u64,
    /// Operations answered with a code other than 00.
    pub declined: u64,
    /// Unanswered (timeout, closed connection), unreadable or unmatched answers.
    pub errors: u64,
    /// ISO 8583 messages sent.
    pub messages_sent: u64,
    /// From the first send to the last answer.
    pub elapsed_s: f64,
    /// Completed operations per second.
    pub tps: f64,
    pub latency: Latency,
}

/// What one connection counted; merged into a [`PhaseReport`].
#[derive(Debug, Default)]
pub(crate) struct ConnectionTally {
    pub operations: u64,
    pub completed: u64,
    pub approved: u64,
    pub declined: u64,
    pub errors: u64,
    pub messages_sent: u64,
    pub latencies_us: Vec<u32>,
}

impl ConnectionTally {
    pub fn record_latency(&mut self, elapsed: Duration) {
        self.latencies_us
            .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
    }

    pub fn merge(&mut self, other: ConnectionTally) {
        self.operations += other.operations;
        self.completed += other.completed;
        self.approved += other.approved;
        self.declined += other.declined;
        self.errors += other.errors;
        self.messages_sent += other.messages_sent;
        self.latencies_us.extend(other.latencies_us);
    }

    pub fn into_report(self, name: &str, elapsed: Duration) -> PhaseReport {
        let elapsed_s = elapsed.as_secs_f64();
        PhaseReport {
            name: name.to_owned(),
            operations: self.operations,
            completed: self.completed,
            approved: self.approved,
            declined: self.declined,
            errors: self.errors,
            messages_sent: self.messages_sent,
            elapsed_s,
            tps: if elapsed_s > 0.0 {
                self.completed as f64 / elapsed_s
            } else {
                0.0
            },
            latency: Latency::from_samples_us(self.latencies_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let l = Latency::from_samples_us((1..=1000).collect());
        assert_eq!((l.p50_ms, l.p99_ms, l.max_ms), (0.5, 0.99, 1.0));
        assert_eq!(Latency::from_samples_us(vec![]), Latency::default());
    }
}
