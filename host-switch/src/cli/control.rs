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

/// One line per exception: key, amount, card, reason.
pub fn render_exceptions(data: &Value) -> String {
    let Some(list) = data.as_array() else {
        return data.to_string();
    };
    if list.is_empty() {
        return "no exceptions".to_owned();
    }
    list.iter()
        .map(render_exception)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `acme  signed on  breaker closed  0 advices queued`, one line per bank host.
pub fn render_bank_hosts(data: &Value) -> String {
    let Some(list) = data.as_array() else {
        return data.to_string();
    };
    if list.is_empty() {
        return "no bank hosts configured".to_owned();
    }
    list.iter()
        .map(|h| {
            format!(
                "{}  {}  breaker {}  {} advices queued",
                h["name"].as_str().unwrap_or("?"),
                if h["connected"].as_bool() == Some(true) {
                    "signed on"
                } else {
                    "NOT CONNECTED"
                },
                h["breaker"].as_str().unwrap_or("?"),
                h["queued_advices"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `ATM00001:000123:1125114000  deposit 7000 EUR  476173******0010  exception: <reason>`.
pub fn render_exception(e: &Value) -> String {
    format!(
        "{}  {} {} {}  {}  {}: {}",
        e["txn"].as_str().unwrap_or("?"),
        e["kind"].as_str().unwrap_or("?").to_lowercase(),
        e["amount_minor"],
        e["currency"].as_str().unwrap_or("?"),
        e["card"].as_str().unwrap_or("?"),
        e["state"].as_str().unwrap_or("?"),
        e["reason"].as_str().unwrap_or("")
    )
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
