//! Transaction keys for the load: terminal id (41), STAN (11) and transmission date-time (7).
//!
//! The switch keys every transaction on terminal + STAN + field 7 and answers a key it has seen
//! with the recorded answer, without touching the ledger. A load run that reused keys would
//! measure the replay path and look faster than the real one, so keys here never repeat: STANs
//! run per terminal (shared by every connection, so a terminal's traffic can spread over several
//! connections), and when a terminal's STANs wrap after 999 999 its field 7 moves on by a second.
//! Field 7 starts at the run's start time (MMDDhhmmss, UTC), so two runs differ as well.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest STAN (field 11 is six digits; 0 is not used).
pub const STAN_MAX: u64 = 999_999;

/// The key of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnId {
    /// Index into [`KeySpace::terminals`].
    pub terminal: u8,
    pub stan: u32,
    /// Field 7, `MMDDhhmmss`.
    pub at: String,
}

/// Hands out unique keys for a fixed set of terminal ids; shared by all connections of a run.
#[derive(Debug)]
pub struct KeySpace {
    terminals: Vec<String>,
    counters: Vec<AtomicU64>,
    base_unix_s: u64,
}

impl KeySpace {
    /// `terminals` must hold 1 to 255 ids; field 7 starts at the current time.
    pub fn new(terminals: &[&str]) -> KeySpace {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self::starting_at(terminals, now)
    }

    pub fn starting_at(terminals: &[&str], base_unix_s: u64) -> KeySpace {
        assert!(
            !terminals.is_empty() && terminals.len() <= 255,
            "1 to 255 terminal ids"
        );
        KeySpace {
            terminals: terminals.iter().map(|t| format!("{t:<8}")).collect(),
            counters: terminals.iter().map(|_| AtomicU64::new(0)).collect(),
            base_unix_s,
        }
    }

    pub fn terminals(&self) -> &[String] {
        &self.terminals
    }

    /// The terminal id as it goes into field 41 (padded to 8 characters).
    pub fn terminal(&self, index: u8) -> &str {
        &self.terminals[usize::from(index)]
    }

    /// The index of a field 41 value, as it comes back in a response.
    pub fn terminal_index(&self, field41: &str) -> Option<u8> {
        self.terminals
            .iter()
            .position(|t| t == field41)
            .map(|i| i as u8)
    }

    /// The next unused key of terminal `index`.
    pub fn next(&self, index: u8) -> TxnId {
        let n = self.counters[usize::from(index)].fetch_add(1, Ordering::Relaxed);
        let epoch = n / STAN_MAX;
        TxnId {
            terminal: index,
            stan: (n % STAN_MAX + 1) as u32,
            at: mmddhhmmss(self.base_unix_s + epoch),
        }
    }

    /// Keys handed out so far, all terminals together.
    pub fn issued(&self) -> u64 {
        self.counters
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

/// `MMDDhhmmss` (UTC) of a Unix time, as field 7 wants it.
pub fn mmddhhmmss(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let secs = unix_s % 86_400;
    let (_, month, day) = civil_from_days(days);
    format!(
        "{month:02}{day:02}{:02}{:02}{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm: (year, month 1-12, day 1-31).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field7_is_utc_month_day_time() {
        // 2026-11-25 11:40:00 UTC
        assert_eq!(mmddhhmmss(1_795_606_800), "1125114000");
        assert_eq!(mmddhhmmss(0), "0101000000");
    }

    #[test]
    fn stans_wrap_into_a_new_field7() {
        let keys = KeySpace::starting_at(&["ATM00001"], 1_795_606_800);
        keys.counters[0].store(STAN_MAX - 1, Ordering::Relaxed);
        let last = keys.next(0);
        let wrapped = keys.next(0);
        assert_eq!((last.stan, last.at.as_str()), (999_999, "1125114000"));
        assert_eq!((wrapped.stan, wrapped.at.as_str()), (1, "1125114001"));
    }

    #[test]
    fn terminal_ids_round_trip_through_field41() {
        let keys = KeySpace::new(&["ATM00001", "ATM2"]);
        assert_eq!(keys.terminal(1), "ATM2    ");
        assert_eq!(keys.terminal_index("ATM2    "), Some(1));
        assert_eq!(keys.terminal_index("ATM00009"), None);
    }
}
