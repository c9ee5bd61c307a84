//! `switchctl`: requests to the switch's control socket (see `adapters::control`), one JSON line
//! each way, and their human-readable rendering.

use std::path::Path;

use serde_json::Value;

use super::CliError;
use crate::control_api::Request;

/// Sends one request and returns the answer's `data`, or the switch's error.
pub fn send(socket: &Path, request: &Request) -> Result<Value, CliError> {
    control_socket::send(socket, request, "the switch").map_err(CliError::new)
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
