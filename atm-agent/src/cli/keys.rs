//! `atmctl keys …`: key entry by custodians and key management, through the agent's control socket.
//!
//! `load-master ID` and `load-zone-master` ask each custodian in turn for a component and its key
//! check value. On a terminal, typing is not echoed. Components are held in zeroizing buffers,
//! checked here (length, hex, check value) so a typing error is caught before anything is sent, and
//! sent once over the 0600 control socket; they are never written to disk or to a log. The agent
//! checks each component's check value again and stores only the combined key, wrapped.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use keystore::Component;
use serde_json::Value;
use zeroize::Zeroizing;

use super::CliError;

/// One custodian's entry: a component and its check value, checked against each other.
pub struct Entry {
    component: Zeroizing<String>,
    kcv: String,
}

impl Entry {
    /// `n` numbers the component in error messages.
    pub fn new(n: usize, component: &str, kcv: &str) -> Result<Self, CliError> {
        let c = Component::from_hex(component)
            .map_err(|e| CliError::new(format!("component {n}: {e}")))?;
        let kcv = kcv.trim().to_ascii_uppercase();
        let computed = keystore::crypto::kcv(c.expose())
            .map_err(|e| CliError::new(format!("component {n}: {e}")))?;
        if computed.to_string() != kcv {
            return Err(CliError::new(format!(
                "component {n}: its check value is {computed}, not {kcv}: re-enter it"
            )));
        }
        Ok(Self {
            component: Zeroizing::new(component.trim().to_ascii_uppercase()),
            kcv,
        })
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Entry {{ component: ****, kcv: {} }}", self.kcv)
    }
}

/// Reads `count` components and check values from stdin (prompting on stderr when interactive).
pub fn read_components(count: usize) -> Result<Vec<Entry>, CliError> {
    check_count(count)?;
    let interactive = std::io::stdin().is_terminal();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock();
    let mut entries = Vec::new();
    for i in 1..=count {
        let component = {
            let _echo = interactive.then(EchoOff::new);
            prompt(
                interactive,
                &format!("custodian {i}: key component (hex, not echoed): "),
            );
            let line = read_line(&mut lines)?;
            if interactive {
                eprintln!();
            }
            line
        };
        prompt(
            interactive,
            &format!("custodian {i}: check value of the component (6 hex): "),
        );
        let kcv = read_line(&mut lines)?;
        entries.push(Entry::new(i, &component, &kcv)?);
    }
    Ok(entries)
}

fn prompt(interactive: bool, text: &str) {
    if interactive {
        eprint!("{text}");
        let _ = std::io::stderr().flush();
    }
}

fn read_line(lines: &mut impl BufRead) -> Result<Zeroizing<String>, CliError> {
    let mut line = Zeroizing::new(String::new());
    let n = lines
        .read_line(&mut line)
        .map_err(|e| CliError::new(format!("cannot read stdin: {e}")))?;
    if n == 0 {
        return Err(CliError::new(
            "input ended before every component was entered",
        ));
    }
    let trimmed = Zeroizing::new(line.trim().to_owned());
    Ok(trimmed)
}

/// Turns terminal echo off for its lifetime (`stty -echo`), so a component is not shown.
struct EchoOff;

impl EchoOff {
    fn new() -> Self {
        let _ = Command::new("stty")
            .arg("-echo")
            .stdin(Stdio::inherit())
            .status();
        EchoOff
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = Command::new("stty")
            .arg("echo")
            .stdin(Stdio::inherit())
            .status();
    }
}

/// The request line, built by hand so it lives only in a zeroizing buffer (components and check
/// values are hex, checked above, so nothing needs escaping).
fn request_line(head: &str, entries: &[Entry]) -> Zeroizing<String> {
    let mut line = Zeroizing::new(String::with_capacity(256));
    line.push_str(head);
    line.push_str(",\"components\":[");
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str("{\"component\":\"");
        line.push_str(&e.component);
        line.push_str("\",\"kcv\":\"");
        line.push_str(&e.kcv);
        line.push_str("\"}");
    }
    line.push_str("]}");
    line
}

/// `atmctl keys load-master ID`: sends the custodians' entries to the agent.
pub fn load_master(socket: &Path, terminal: &str, entries: &[Entry]) -> Result<String, CliError> {
    check_count(entries.len())?;
    if !terminal.bytes().all(|b| b.is_ascii_alphanumeric()) || terminal.is_empty() {
        return Err(CliError::new(format!("bad terminal id {terminal:?}")));
    }
    let head = format!("{{\"cmd\":\"keys_load_master\",\"terminal\":\"{terminal}\"");
    let data = super::control::request_line(socket, &request_line(&head, entries))?;
    Ok(render_loaded(&data))
}

/// `atmctl keys load-zone-master`: sends the custodians' entries to the agent.
pub fn load_zone_master(socket: &Path, entries: &[Entry]) -> Result<String, CliError> {
    check_count(entries.len())?;
    let data = super::control::request_line(
        socket,
        &request_line("{\"cmd\":\"keys_load_zone_master\"", entries),
    )?;
    Ok(render_loaded(&data))
}

fn check_count(count: usize) -> Result<(), CliError> {
    if !(2..=9).contains(&count) {
        return Err(CliError::new("a key is entered as 2 to 9 components"));
    }
    Ok(())
}

fn render_loaded(data: &Value) -> String {
    let mut out = format!(
        "loaded {} version {} check value {}",
        data["name"].as_str().unwrap_or("?"),
        data["version"],
        data["kcv"].as_str().unwrap_or("?")
    );
    if let Some(p) = data["pin_key"].as_str() {
        out.push_str(&format!("\nterminal PIN key: {p}"));
    }
    out
}

/// `atmctl keys ls`: names, versions, usages and check values (never keys).
pub fn render_list(data: &Value) -> String {
    let mut out = String::from("NAME                 VERSION  USAGE             KCV     CREATED\n");
    for k in data.as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<20} {:>7}  {:<17} {:<7} {}\n",
            k["name"].as_str().unwrap_or("?"),
            k["version"],
            k["usage"].as_str().unwrap_or("?"),
            k["kcv"].as_str().unwrap_or("?"),
            k["created_unix"]
        ));
    }
    out.trim_end().to_owned()
}
