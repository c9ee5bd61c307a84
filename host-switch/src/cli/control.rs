//! `switchctl`: requests to the switch's control socket (see `adapters::control`), one JSON line
//! each way, and their human-readable rendering.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::CliError;

/// Sends one request and returns the answer's `data`, or the switch's error.
pub fn request(socket: &Path, request: &Value) -> Result<Value, CliError> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        CliError::new(format!(
            "cannot reach the switch at {}: {e}",
            socket.display()
        ))
    })?;
    let timeout = Some(Duration::from_secs(10));
    stream
        .set_read_timeout(timeout)
        .and_then(|_| stream.set_write_timeout(timeout))
        .map_err(|e| CliError::new(e.to_string()))?;
    stream
        .write_all(format!("{request}\n").as_bytes())
        .map_err(|e| CliError::new(format!("cannot send to the switch: {e}")))?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| CliError::new(format!("no answer from the switch: {e}")))?;
    let answer: Value = serde_json::from_str(&line)
        .map_err(|e| CliError::new(format!("unreadable answer from the switch: {e}")))?;
    if answer["ok"] == Value::Bool(true) {
        Ok(answer["data"].clone())
    } else {
        Err(CliError::new(format!(
            "switch refused: {}",
            answer["error"].as_str().unwrap_or("unknown error")
        )))
    }
}

pub fn card_status(card: &str) -> Value {
    serde_json::json!({"cmd": "card_status", "card": card})
}
pub fn card_unblock(card: &str) -> Value {
    serde_json::json!({"cmd": "card_unblock", "card": card})
}
pub fn zpk_rotate() -> Value {
    serde_json::json!({"cmd": "zpk_rotate"})
}
pub fn keys_list() -> Value {
    serde_json::json!({"cmd": "keys_list"})
}

/// `card-… tries 1/3, active (visa_pvv)`.
pub fn render_card(data: &Value) -> String {
    format!(
        "{} tries {}/{}, {} ({})",
        data["card"].as_str().unwrap_or("?"),
        data["tries"],
        data["max_tries"],
        if data["blocked"] == Value::Bool(true) {
            "BLOCKED"
        } else {
            "active"
        },
        data["method"].as_str().unwrap_or("no PIN data"),
    )
}

/// One line per key version.
pub fn render_keys(data: &Value) -> String {
    match serde_json::from_value::<Vec<keystore::KeyInfo>>(data.clone()) {
        Ok(keys) => super::keys::render_list(&keys),
        Err(_) => data.to_string(),
    }
}

/// `zpk v3, KCV ABC123`.
pub fn render_key(data: &Value) -> String {
    format!(
        "{} v{}, KCV {}",
        data["name"].as_str().unwrap_or("?"),
        data["version"],
        data["kcv"].as_str().unwrap_or("?")
    )
}
