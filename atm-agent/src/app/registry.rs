//! Every terminal the agent knows: its state and supplies for `atmctl status`, and a channel to
//! its session for technician commands.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::domain::terminal::{CassetteCount, TerminalEvent, TerminalState};

/// A technician's command for a terminal, carried out by its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminalCommand {
    GoInService,
    GoOutOfService,
    SendSupplyCounters,
    /// Load a new terminal PIN key (after a master key entry, or a rotation).
    LoadPinKey,
}

#[derive(Debug, Clone, Serialize)]
pub struct TerminalView {
    pub terminal_id: String,
    pub luno: String,
    pub profile: String,
    pub state: TerminalState,
    pub config_id: Option<String>,
    pub cassettes: Vec<CassetteCount>,
    pub customers: u64,
    /// A dispense whose outcome the terminal has not told yet.
    pub dispense_in_doubt: bool,
    /// How many (one record per transaction; `atmctl dispense ls` lists them).
    pub dispenses_in_doubt: usize,
    pub last_status: Option<String>,
    /// Terminal PIN key state (`pin key loaded`, `awaiting master key` …); None without `[keys]`.
    pub pin_key: Option<String>,
    pub pin_key_version: Option<u32>,
    /// NDC messages whose MAC was missing, wrong or replayed (MAC mode; `security` log lines).
    pub mac_failures: u64,
    /// Why the agent holds the terminal out of service until an operator puts it back
    /// (`atmctl terminal ID in-service`), e.g. too many PIN blocks that did not decode.
    pub out_of_service_reason: Option<String>,
    /// Why the last customization load failed (a required message the terminal refused, and its
    /// reason): the terminal stays out of service until a load succeeds.
    pub load_failure: Option<String>,
    /// Where the current session's connection comes from.
    pub peer: Option<String>,
}

struct Entry {
    view: TerminalView,
    commands: Option<mpsc::Sender<TerminalCommand>>,
    /// Which session is the terminal's current one (a new connection replaces the old).
    session: u64,
    /// Turned true to tell the current session a newer connection replaced it.
    replaced: Option<watch::Sender<bool>>,
}

#[derive(Default)]
pub struct Registry {
    terminals: Mutex<BTreeMap<String, Entry>>,
}

impl Registry {
    /// Registers a configured terminal (disconnected until it dials in).
    pub fn add(&self, terminal_id: &str, luno: &str, profile: &str) {
        let view = TerminalView {
            terminal_id: terminal_id.to_owned(),
            luno: luno.to_owned(),
            profile: profile.to_owned(),
            state: TerminalState::Disconnected,
            config_id: None,
            cassettes: Vec::new(),
            customers: 0,
            dispense_in_doubt: false,
            dispenses_in_doubt: 0,
            last_status: None,
            pin_key: None,
            pin_key_version: None,
            mac_failures: 0,
            out_of_service_reason: None,
            load_failure: None,
            peer: None,
        };
        if let Ok(mut t) = self.terminals.lock() {
            t.insert(
                terminal_id.to_owned(),
                Entry {
                    view,
                    commands: None,
                    session: 0,
                    replaced: None,
                },
            );
        }
    }

    /// Attaches a live session: returns its number and a signal that turns true when a newer
    /// connection of the same terminal replaces it. The previous session, if any, is told so
    /// (it closes its connection between customers), loses its command channel, and its end no
    /// longer marks the terminal disconnected.
    pub fn attach(
        &self,
        terminal_id: &str,
        commands: mpsc::Sender<TerminalCommand>,
        peer: &str,
    ) -> (u64, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        let Ok(mut t) = self.terminals.lock() else {
            return (0, rx);
        };
        let Some(e) = t.get_mut(terminal_id) else {
            return (0, rx);
        };
        if let Some(old) = e.replaced.replace(tx) {
            if old.send(true).is_ok() {
                tracing::warn!(
                    terminal = terminal_id,
                    old_peer = e.view.peer.as_deref().unwrap_or("?"),
                    new_peer = peer,
                    "a new connection replaces the terminal's session: the old one is closed"
                );
            }
        }
        e.session = e.session.wrapping_add(1);
        e.commands = Some(commands);
        e.view.peer = Some(peer.to_owned());
        (e.session, rx)
    }

    /// Records that session `session` ended: the terminal is disconnected unless a newer
    /// session replaced it meanwhile.
    pub fn detach(&self, terminal_id: &str, session: u64) {
        let current = self
            .terminals
            .lock()
            .ok()
            .and_then(|t| t.get(terminal_id).map(|e| e.session));
        if current == Some(session) {
            self.update(terminal_id, |v| v.peer = None);
            self.event(terminal_id, TerminalEvent::Disconnected);
        }
    }

    pub fn event(&self, terminal_id: &str, event: TerminalEvent) {
        self.update(terminal_id, |v| {
            let next = v.state.on(event);
            if next != v.state {
                tracing::info!(terminal = terminal_id, from = ?v.state, to = ?next, "terminal state");
            }
            v.state = next;
        });
    }

    pub fn update(&self, terminal_id: &str, f: impl FnOnce(&mut TerminalView)) {
        if let Ok(mut t) = self.terminals.lock() {
            if let Some(e) = t.get_mut(terminal_id) {
                f(&mut e.view);
            }
        }
    }

    pub fn snapshot(&self) -> Vec<TerminalView> {
        self.terminals
            .lock()
            .map(|t| t.values().map(|e| e.view.clone()).collect())
            .unwrap_or_default()
    }

    pub fn view(&self, terminal_id: &str) -> Option<TerminalView> {
        self.terminals
            .lock()
            .ok()?
            .get(terminal_id)
            .map(|e| e.view.clone())
    }

    /// Sends a command to the terminal's session, if it is connected.
    pub fn command(&self, terminal_id: &str, command: TerminalCommand) -> Result<(), String> {
        let sender = {
            let t = self
                .terminals
                .lock()
                .map_err(|_| "registry poisoned".to_owned())?;
            let e = t
                .get(terminal_id)
                .ok_or_else(|| format!("unknown terminal {terminal_id}"))?;
            e.commands
                .clone()
                .ok_or_else(|| format!("terminal {terminal_id} is not connected"))?
        };
        sender
            .try_send(command)
            .map_err(|_| format!("terminal {terminal_id} is busy or disconnected"))
    }
}
