//! `atmctl status`, `atmctl queue …`, `atmctl terminal …`: requests to the agent's control socket
//! (see `adapters::control`), one JSON line each way.

use std::path::Path;

use serde_json::Value;

use super::CliError;
use crate::control_api::Request;

/// Sends one request and returns the answer's `data`, or the agent's error.
pub fn send(socket: &Path, request: &Request) -> Result<Value, CliError> {
    control_socket::send(socket, request, "the agent").map_err(CliError::new)
}

/// A short human-readable status.
pub fn render_status(data: &Value) -> String {
    let mut out = format!(
        "uplink: {}   queue: {} pending, {} parked\n",
        data["uplink"].as_str().unwrap_or("?"),
        data["queue"]["pending"],
        data["queue"]["parked"]
    );
    out.push_str(
        "TERMINAL  LUNO       STATE           CUSTOMERS  IN DOUBT  NOTES PER CASSETTE  PIN KEY\n",
    );
    for t in data["terminals"].as_array().into_iter().flatten() {
        let notes: Vec<String> = t["cassettes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["notes"].to_string())
            .collect();
        out.push_str(&format!(
            "{:<9} {:<10} {:<15} {:>9}  {:>8}  {:<18}  {}\n",
            t["terminal_id"].as_str().unwrap_or(""),
            t["luno"].as_str().unwrap_or(""),
            t["state"].as_str().unwrap_or(""),
            t["customers"],
            t["dispenses_in_doubt"].as_u64().unwrap_or(0),
            notes.join("/"),
            match (t["pin_key"].as_str(), t["pin_key_version"].as_u64()) {
                (Some(s), Some(v)) => format!("{s} (v{v})"),
                (Some(s), None) => s.to_owned(),
                _ => "-".to_owned(),
            }
        ));
    }
    for t in data["terminals"].as_array().into_iter().flatten() {
        if let Some(reason) = t["out_of_service_reason"].as_str() {
            out.push_str(&format!(
                "{} held out of service: {reason} (`atmctl terminal {} in-service` after a check)\n",
                t["terminal_id"].as_str().unwrap_or(""),
                t["terminal_id"].as_str().unwrap_or(""),
            ));
        }
    }
    for t in data["terminals"].as_array().into_iter().flatten() {
        if let Some(reason) = t["load_failure"].as_str() {
            out.push_str(&format!(
                "{} out of service, customization not loaded: {reason}\n",
                t["terminal_id"].as_str().unwrap_or(""),
            ));
        }
    }
    let in_doubt = data["dispenses_in_doubt"].as_array().map_or(0, Vec::len);
    if in_doubt > 0 {
        out.push_str(&format!("\ndispenses in doubt: {in_doubt}\n"));
        out.push_str(&render_dispenses(&data["dispenses_in_doubt"]));
    }
    out
}

/// One line per dispense in doubt.
pub fn render_dispenses(data: &Value) -> String {
    let mut out = String::from("TERMINAL  TSN   STAN    PURPOSE        AMOUNT      AGE S  DOUBT\n");
    for d in data.as_array().into_iter().flatten() {
        let doubt = match d["doubt"]["kind"].as_str() {
            Some("uncounted") => format!(
                "technician: {}",
                d["doubt"]["report"].as_str().unwrap_or("")
            ),
            Some("unreported") => "technician: the terminal went on without reporting".into(),
            _ => "awaiting the terminal".into(),
        };
        out.push_str(&format!(
            "{:<9} {:<5} {:<7} {:<14} {:>10}  {:>5}  {}\n",
            d["terminal"].as_str().unwrap_or(""),
            d["tsn"],
            d["stan"],
            d["purpose"].as_str().unwrap_or(""),
            d["amount_minor"],
            d["age_ms"].as_u64().unwrap_or(0) / 1000,
            doubt
        ));
    }
    out
}

/// One line per journal line: its number, when the agent stored it (UTC), the text.
pub fn render_journal(data: &Value) -> String {
    let mut out = String::new();
    for l in data.as_array().into_iter().flatten() {
        let at_ms = l["at_ms"].as_u64().unwrap_or(0);
        out.push_str(&format!(
            "{:>8}  {}  {}\n",
            l["seq"].as_u64().unwrap_or(0),
            utc(at_ms),
            l["text"].as_str().unwrap_or("")
        ));
    }
    out
}

/// `YYYY-MM-DD hh:mm:ss` (UTC) of a time in ms since the Unix epoch.
fn utc(at_ms: u64) -> String {
    let secs = at_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// One line per queued advice.
pub fn render_queue(data: &Value) -> String {
    let mut out = String::from(
        "TERMINAL  SEQ     STATE      ATTEMPTS  KIND           PARKED BECAUSE / LAST ERROR\n",
    );
    for e in data.as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<9} {:<7} {:<10} {:>8}  {:<14} {}\n",
            e["partition"].as_str().unwrap_or(""),
            e["seq"],
            e["state"].as_str().unwrap_or(""),
            e["attempts"],
            e["payload"]["kind"].as_str().unwrap_or(""),
            e["parked_reason"]
                .as_str()
                .or(e["last_error"].as_str())
                .unwrap_or("")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_lines_show_number_utc_time_and_text() {
        let data = serde_json::json!([
            {"seq": 7, "at_ms": 1_764_845_655_000u64, "text": "CARD 476173******0010"}
        ]);
        assert_eq!(
            render_journal(&data),
            "       7  2025-12-04 10:54:15  CARD 476173******0010\n"
        );
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
    }
}
