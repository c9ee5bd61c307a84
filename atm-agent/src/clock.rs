//! Wall-clock fields of ISO 8583: transmission date-time (7, `MMDDhhmmss`, UTC), local time (12)
//! and date (13). No calendar crate for three fields: days-to-civil is a few lines.

use std::time::{SystemTime, UNIX_EPOCH};

use protocols::iso8583::TransmissionDateTime;

/// UTC calendar fields of a Unix time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

pub fn civil(unix_secs: u64) -> Civil {
    let [month, day, hour, minute, second] = protocols::iso8583::utc_fields(unix_secs);
    Civil {
        month: month.into(),
        day: day.into(),
        hour: hour.into(),
        minute: minute.into(),
        second: second.into(),
    }
}

pub fn now_unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Field 7 for now.
pub fn transmission_now() -> String {
    transmission_date_time_now().to_string()
}

/// The transmission date-time (field 7) of now, typed.
pub fn transmission_date_time_now() -> TransmissionDateTime {
    let c = civil(now_unix_secs());
    // Civil fields are in range by construction.
    TransmissionDateTime {
        month: c.month as u8,
        day: c.day as u8,
        hour: c.hour as u8,
        minute: c.minute as u8,
        second: c.second as u8,
    }
}

pub use protocols::iso8583::utc_year_and_day;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn year_and_day_of_year() {
        assert_eq!(utc_year_and_day(0), (1970, 1));
        // 2026-11-25 is day 329.
        assert_eq!(utc_year_and_day(1_795_606_836), (2026, 329));
        // 2024-02-29 is day 60 of a leap year; 2024-12-31 is day 366.
        assert_eq!(utc_year_and_day(1_709_251_199), (2024, 60));
        assert_eq!(utc_year_and_day(1_735_689_599), (2024, 366));
        assert_eq!(utc_year_and_day(1_735_689_600), (2025, 1));
    }

    #[test]
    fn known_dates() {
        assert_eq!(
            civil(0),
            Civil {
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0
            }
        );
        // 2026-11-25 11:40:36 UTC
        assert_eq!(
            civil(1_795_606_836),
            Civil {
                month: 11,
                day: 25,
                hour: 11,
                minute: 40,
                second: 36
            }
        );
        // 2024-02-29 23:59:59 UTC (leap day)
        assert_eq!(
            civil(1_709_251_199),
            Civil {
                month: 2,
                day: 29,
                hour: 23,
                minute: 59,
                second: 59
            }
        );
    }
}
