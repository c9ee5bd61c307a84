//! The lab's moving parts outside this process: the switch and the agent as child processes
//! (the lab executable re-run with `--role switch|agent --config FILE`, see [`crate::role`]),
//! and what the lab asks them over their control sockets (status, key entry as custodians do it
//! with `atmctl`, a card unblock as an operator does it with `switchctl`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use atm_agent::control_api::Request as AgentRequest;
use serde_json::Value;
use testkit::custodian_keys::{CustodianKey, LabKeys};

use crate::LabError;

/// Which role a child plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Switch,
    Agent,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Switch => "switch",
            Role::Agent => "agent",
        }
    }
}

/// Where a child's log goes when it is kept (an audit run): its stderr, appended to `file` across
/// restarts, at `filter` (`RUST_LOG` syntax).
#[derive(Debug, Clone)]
pub struct ChildLog {
    pub file: PathBuf,
    pub filter: String,
}

/// A child process running one role; killed when dropped.
pub struct ChildRole {
    role: Role,
    exe: PathBuf,
    config: PathBuf,
    log: Option<ChildLog>,
    child: Option<Child>,
    pub restarts: u32,
}

impl ChildRole {
    pub fn spawn(
        exe: &Path,
        role: Role,
        config: &Path,
        log: Option<ChildLog>,
    ) -> Result<Self, LabError> {
        let mut c = ChildRole {
            role,
            exe: exe.to_owned(),
            config: config.to_owned(),
            log,
            child: None,
            restarts: 0,
        };
        c.start()?;
        Ok(c)
    }

    fn start(&mut self) -> Result<(), LabError> {
        let (filter, stderr) = match &self.log {
            Some(l) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&l.file)
                    .map_err(|source| LabError::File {
                        path: l.file.clone(),
                        source,
                    })?;
                (l.filter.clone(), Stdio::from(file))
            }
            None => (
                std::env::var("ATM_LAB_CHILD_LOG").unwrap_or_else(|_| "off".into()),
                Stdio::inherit(),
            ),
        };
        let child = Command::new(&self.exe)
            .arg("--role")
            .arg(self.role.name())
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|source| LabError::Spawn {
                exe: self.exe.clone(),
                role: self.role.name(),
                source,
            })?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    pub fn restart(&mut self) -> Result<(), LabError> {
        self.kill9();
        self.restarts += 1;
        self.start()
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for ChildRole {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The agent's status over its control socket (`None` when it does not answer).
pub async fn agent_status(socket: &Path) -> Option<Value> {
    let socket = socket.to_owned();
    tokio::task::spawn_blocking(move || {
        atm_agent::cli::control::send(&socket, &AgentRequest::Status).ok()
    })
    .await
    .ok()
    .flatten()
}

/// Polls the agent's status until `check` holds or `timeout` passes; the last status seen.
pub async fn wait_agent(
    socket: &Path,
    timeout: Duration,
    check: impl Fn(&Value) -> bool,
) -> (bool, Option<Value>) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    loop {
        if let Some(s) = agent_status(socket).await {
            if check(&s) {
                return (true, Some(s));
            }
            last = Some(s);
        }
        if tokio::time::Instant::now() >= deadline {
            return (false, last);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the agent's key store holds a zone PIN key (fetched from the switch).
pub async fn wait_zone_key(socket: &Path, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        let s = socket.to_owned();
        let keys = tokio::task::spawn_blocking(move || {
            atm_agent::cli::control::send(&s, &AgentRequest::KeysLs).ok()
        })
        .await
        .ok()
        .flatten();
        if keys
            .as_ref()
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().any(|k| k["name"] == "zpk"))
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The last `n` lines of a child's log file (empty when there is none).
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Enters the zone master key and every terminal master key into the running agent, as
/// custodians do with `atmctl keys load-zone-master` / `load-master ID` (with `atmctl`'s own code).
pub async fn load_keys_into_agent(
    keys: &LabKeys,
    socket: &Path,
    terminal_ids: &[String],
) -> Result<(), LabError> {
    let socket = socket.to_owned();
    let zmk = keys.zone_master.components()?;
    let tmks: Vec<_> = keys
        .terminal_masters
        .iter()
        .map(CustodianKey::components)
        .collect::<Result<_, _>>()?;
    let ids = terminal_ids.to_vec();
    tokio::task::spawn_blocking(move || {
        atm_agent::cli::keys::load_zone_master(&socket, &zmk.0, &zmk.1).map_err(|source| {
            LabError::KeyEntry {
                command: "atmctl keys load-zone-master".into(),
                source,
            }
        })?;
        for (id, (components, kcvs)) in ids.iter().zip(&tmks) {
            atm_agent::cli::keys::load_master(&socket, id, components, kcvs).map_err(|source| {
                LabError::KeyEntry {
                    command: format!("atmctl keys load-master {id}"),
                    source,
                }
            })?;
        }
        Ok(())
    })
    .await
    .map_err(LabError::Task)?
}
