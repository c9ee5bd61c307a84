//! Answering the host's terminal commands (`1`) and data commands (`3`): the part of the NDC
//! conversation that does not involve a customer.
//!
//! Pure functions over [`Terminal`]: one host command in, one solicited status out.
//! - `1` go in service / out of service / no-op → `9`; send config id → `F FS 6<id>`; send
//!   supply counters → `F FS 2…`; send config info (no modifier) → `F FS 1<id>`; anything else →
//!   reject `B04`.
//! - `3` customisation data (screens, states, FITs, config parameters, config id, enhanced
//!   config, date/time, key change) → stored, `9`; only out of service (in service → reject `C03`,
//!   as a terminal accepts customisation only in out-of-service or supervisor mode); unknown
//!   identifiers → reject `B04`.
//! - A command for another LUNO → reject `B04`.

use protocols::ndc::{
    Command, DataCommand, DataCommandData, TerminalCommand, TerminalMessage, TerminalState,
};

use super::messages::{self, reason};
use super::terminal::{ServiceMode, Terminal};

fn rejected(t: &mut Terminal, reason: &str) -> TerminalMessage {
    t.command_rejected();
    messages::reject(&t.luno, &t.dialect, reason)
}

/// Answers terminal command `1`.
pub fn terminal_command(t: &mut Terminal, cmd: &TerminalCommand) -> TerminalMessage {
    if cmd.luno != t.luno {
        tracing::warn!(luno = %cmd.luno, ours = %t.luno, "terminal command for another LUNO");
        return rejected(t, reason::BAD_COMMAND);
    }
    let luno = t.luno.clone();
    match &cmd.command {
        Command::GoInService => {
            t.mode = ServiceMode::InService;
            tracing::info!(luno = %luno, "in service");
            messages::ready(&luno)
        }
        Command::GoOutOfService { .. } => {
            t.mode = ServiceMode::OutOfService;
            tracing::info!(luno = %luno, "out of service");
            messages::ready(&luno)
        }
        Command::NoOp => messages::ready(&luno),
        Command::SendConfigurationId => messages::terminal_state(
            &luno,
            TerminalState::ConfigurationId(t.config.config_id.clone()),
        ),
        Command::SendSupplyCounters { .. } => {
            messages::terminal_state(&luno, TerminalState::SupplyCounters(t.supply_counters()))
        }
        Command::SendConfigurationInformation { modifier: None } => messages::terminal_state(
            &luno,
            TerminalState::ConfigurationInfo {
                config_id: t.config.config_id.clone(),
                fields: Vec::new(),
            },
        ),
        other => {
            tracing::warn!(luno = %luno, command = ?other, "unsupported terminal command");
            rejected(t, reason::BAD_COMMAND)
        }
    }
}

/// Answers data command `3`.
pub fn data_command(t: &mut Terminal, cmd: &DataCommand) -> TerminalMessage {
    if cmd.luno != t.luno {
        tracing::warn!(luno = %cmd.luno, ours = %t.luno, "data command for another LUNO");
        return rejected(t, reason::BAD_COMMAND);
    }
    if t.mode == ServiceMode::InService && !t.supervisor {
        tracing::warn!(luno = %t.luno, "customisation data while in service");
        return rejected(t, reason::WRONG_MODE);
    }
    let c = &mut t.config;
    match &cmd.data {
        DataCommandData::Screens(screens) => {
            for s in screens {
                c.screens.insert(s.number.clone(), s.data.clone());
            }
        }
        DataCommandData::States(states) => {
            for s in states {
                c.states.insert(s.number.clone(), s.clone());
            }
        }
        DataCommandData::Fits(fits) => c.fits.extend(fits.iter().cloned()),
        DataCommandData::ConfigurationParameters(p) => {
            c.config_parameters.extend(p.iter().cloned())
        }
        DataCommandData::ConfigurationId(id) => {
            tracing::info!(luno = %t.luno, config_id = %id, "configuration id stored");
            c.config_id = id.clone();
        }
        DataCommandData::EnhancedConfiguration {
            options, timers, ..
        } => {
            c.options.extend(options.iter().copied());
            c.timers.extend(timers.iter().copied());
        }
        DataCommandData::DateTime(dt) => c.date_time = Some(dt.clone()),
        DataCommandData::KeyChange { .. } => c.key_changes = c.key_changes.saturating_add(1),
        DataCommandData::Other { identifier, .. } => {
            tracing::warn!(luno = %t.luno, identifier = %identifier, "unsupported data command");
            return rejected(t, reason::BAD_COMMAND);
        }
    }
    messages::ready(&t.luno)
}
