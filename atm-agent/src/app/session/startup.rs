//! Bringing a terminal into service: the agent leads.
//!
//! As soon as a connection is known to be a terminal's (by its address, its port, or the LUNO of
//! its first message), the agent asks for the configuration id (terminal command `3`) instead of
//! waiting for the terminal to speak: a terminal that reconnects after a network cut without a
//! power cycle sends nothing, and must still be put back in service. Then:
//! 1. configuration id differs from the profile's (or the terminal would not say): load the
//!    profile's customization messages, in the profile's `[customization] load` order;
//! 2. terminal PIN key when due (`pin_key_load.rs`);
//! 3. go in service; 4. supply counters (which settle a dispense a power failure left in doubt).
//!
//! A power-up `12 … B<config id>` that arrives first, meanwhile or at any later time starts the
//! same sequence with the id it carries. A terminal whose id is current is put back in service
//! without a reload.
//!
//! A refused customization message is named in the log with the terminal's reason. An optional
//! one (`optional = true`) is skipped; a required one stops the load, and the terminal stays out
//! of service with the reason in `atmctl status` (`load_failure`) until a later load succeeds
//! (its next power-up, reconnection, or `atmctl terminal ID in-service`). The configuration id
//! is the last message, so a terminal whose load stopped still reports its old id.

use firmware_profiles::{CustomizationMessage, Profile};
use protocols::framing::Frame;
use protocols::ndc::{
    Command, DataCommand, DataCommandData, DeviceState, HostMessage, NumberedValue, Screen,
    SolicitedStatusInfo, State, TerminalCommand as NdcCommand, TerminalMessage,
    TerminalState as NdcTerminalState,
};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{PinKeyStatus, Session, SessionEnd};
use crate::domain::terminal::TerminalEvent;
use crate::ports::{AdviceQueue, SwitchLink, TerminalStore};

/// What the terminal said about its configuration when the agent asked.
enum Reported {
    /// Its configuration id (answer to command `3`, or a power-up).
    Id(String),
    /// It rejected the question or did not answer in time.
    Unknown,
}

impl<IO, L, S, Q> Session<IO, L, S, Q>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    L: SwitchLink,
    S: TerminalStore,
    Q: AdviceQueue,
{
    /// The start of a session: the message that identified the connection (if any) is taken
    /// into account, then the agent leads the start-up. A customer already waiting (a
    /// transaction request as first message: the agent restarted under a terminal in service)
    /// is served first, inside the terminal's timer.
    pub(super) async fn open(&mut self, first: Option<Frame>) -> Result<(), SessionEnd> {
        self.svc
            .registry
            .event(self.tid(), TerminalEvent::Connected);
        let first = match first {
            Some(f) => self.interpret(f)?,
            None => None,
        };
        let mut power_up = None;
        match first {
            Some(TerminalMessage::UnsolicitedStatus(u)) => match u.device.state {
                DeviceState::PowerUp { config_id } => power_up = Some(config_id),
                _ => self.unsolicited(u).await?,
            },
            Some(m @ TerminalMessage::TransactionRequest(_)) => self.handle(m).await?,
            Some(other) => self.handle(other).await?,
            None => {}
        }
        self.pay_owed_declines().await?;
        self.lead(power_up).await
    }

    /// Asks the terminal for its configuration id and brings it up from there. `power_up`: the
    /// id of a power-up already received.
    async fn lead(&mut self, mut power_up: Option<String>) -> Result<(), SessionEnd> {
        let cmd = NdcCommand::new(self.terminal.luno.clone(), Command::SendConfigurationId);
        self.send(HostMessage::TerminalCommand(cmd)).await?;
        let wait = std::time::Duration::from_millis(self.profile.timers.command_ack_ms);
        let reported = loop {
            let msg = match self.next_message(Some(wait)).await {
                Ok(m) => m,
                Err(SessionEnd::Timeout(ms)) => {
                    tracing::warn!(
                        terminal = self.tid(),
                        wait_ms = ms,
                        "terminal did not give its configuration id: loading its customization"
                    );
                    break Reported::Unknown;
                }
                Err(e) => return Err(e),
            };
            match msg {
                TerminalMessage::SolicitedStatus(s) => match s.info {
                    SolicitedStatusInfo::TerminalState(NdcTerminalState::ConfigurationId(id)) => {
                        break Reported::Id(id)
                    }
                    other => {
                        tracing::warn!(terminal = self.tid(), status = ?other, "terminal did not give its configuration id: loading its customization");
                        break Reported::Unknown;
                    }
                },
                // A power-up while the question is out: its id counts, the answer still comes.
                TerminalMessage::UnsolicitedStatus(u) => match u.device.state {
                    DeviceState::PowerUp { config_id } => power_up = Some(config_id),
                    _ => Box::pin(self.unsolicited(u)).await?,
                },
                // Journal blocks are taken at once (a terminal uploads in the background).
                TerminalMessage::JournalUpload(u) => self.take_journal_upload(u),
                other => self.defer(other)?,
            }
        };
        let config_id = match (reported, power_up.as_ref()) {
            (Reported::Id(id), _) => Some(id),
            (Reported::Unknown, Some(id)) => Some(id.clone()),
            (Reported::Unknown, None) => None,
        };
        match power_up {
            Some(id) => {
                tracing::info!(terminal = self.tid(), config_id = %id, "terminal powered up");
                self.svc
                    .registry
                    .event(self.tid(), TerminalEvent::PoweredUp);
                self.bring_up(config_id, true).await
            }
            None => {
                tracing::info!(
                    terminal = self.tid(),
                    config_id = config_id.as_deref().unwrap_or("?"),
                    "terminal connected without a power-up: the agent leads"
                );
                self.bring_up(config_id, false).await
            }
        }
    }

    /// A power-up `12 … B<config id>` at any point of the session.
    pub(super) async fn start_up(&mut self, config_id: String) -> Result<(), SessionEnd> {
        tracing::info!(terminal = self.tid(), config_id = %config_id, "terminal powered up");
        self.svc
            .registry
            .event(self.tid(), TerminalEvent::PoweredUp);
        self.bring_up(Some(config_id), true).await
    }

    /// Loads what is stale and puts the terminal in service. `config_id`: the one the terminal
    /// holds (None: unknown, loaded). `powered_up`: the terminal is known to be out of service
    /// (after a power-up it waits for the host); otherwise it may still be in service, and is
    /// taken out first when customization must be loaded (a terminal takes it only then).
    async fn bring_up(
        &mut self,
        config_id: Option<String>,
        powered_up: bool,
    ) -> Result<(), SessionEnd> {
        let current = config_id.as_deref() == Some(self.profile.customization.config_id.as_str());
        if current {
            self.svc
                .registry
                .update(self.tid(), |v| v.load_failure = None);
        } else {
            if !powered_up {
                self.go_out_of_service().await?;
            }
            if !self.download().await? {
                // Left out of service with the reason in the registry; the counters are still
                // read (cassette counts, a dispense left in doubt).
                self.svc
                    .registry
                    .event(self.tid(), TerminalEvent::WentOutOfService);
                return self.supply_counters().await;
            }
        }
        let held = self.profile.customization.config_id.clone();
        self.svc
            .registry
            .update(self.tid(), |v| v.config_id = Some(held));
        match self.ensure_pin_key(false).await? {
            PinKeyStatus::Ready | PinKeyStatus::Disabled => {}
            // Without a PIN key the terminal cannot take PINs: it waits out of service for the
            // custodians (`atmctl keys load-master`) or a technician. Its supply counters are
            // asked for all the same: the key load later only puts it in service, and customers
            // need the cassette counts (and a dispense in doubt is settled from them).
            PinKeyStatus::NoMasterKey | PinKeyStatus::Refused => {
                self.svc
                    .registry
                    .event(self.tid(), TerminalEvent::WentOutOfService);
                return self.supply_counters().await;
            }
        }
        self.go_in_service().await?;
        self.supply_counters().await
    }

    /// Loads the terminal again from the start (an operator's `in-service` after a failed load).
    pub(super) async fn reload(&mut self) -> Result<(), SessionEnd> {
        self.bring_up(None, false).await
    }

    /// Sends the profile's customization messages. `Ok(false)`: a required one was refused (the
    /// reason is in the registry's `load_failure`).
    async fn download(&mut self) -> Result<bool, SessionEnd> {
        self.svc
            .registry
            .event(self.tid(), TerminalEvent::DownloadStarted);
        let messages = customization_messages(&self.profile, &self.terminal.luno);
        tracing::info!(terminal = self.tid(), messages = messages.len(), profile = %self.profile.name, "downloading customization data");
        for (message, optional, data) in messages {
            let ack = self.exchange(HostMessage::DataCommand(data)).await?;
            if Self::ready(&ack) {
                continue;
            }
            let reason = match &ack.info {
                SolicitedStatusInfo::SpecificReject { reason } => reason.clone(),
                SolicitedStatusInfo::CommandReject => "A (command reject)".to_owned(),
                other => format!("{other:?}"),
            };
            if optional {
                tracing::warn!(terminal = self.tid(), %message, %reason, "terminal refused an optional customization message: skipped, the load goes on");
                continue;
            }
            tracing::error!(terminal = self.tid(), %message, %reason, "terminal refused a required customization message: load stopped, terminal left out of service");
            let failure = format!("terminal refused {message} (reason {reason})");
            self.svc
                .registry
                .update(self.tid(), |v| v.load_failure = Some(failure));
            return Ok(false);
        }
        self.svc
            .registry
            .update(self.tid(), |v| v.load_failure = None);
        Ok(true)
    }
}

/// The data commands that load a profile's customization into a terminal, in the profile's
/// `load` order, each with its name and whether the terminal may refuse it. A message the
/// profile has no data for is left out (nothing empty is sent).
fn customization_messages(
    profile: &Profile,
    luno: &str,
) -> Vec<(CustomizationMessage, bool, DataCommand)> {
    let c = &profile.customization;
    let numbered = |v: &[firmware_profiles::OptionDef]| {
        v.iter()
            .map(|o| NumberedValue {
                number: o.number,
                value: o.value,
            })
            .collect()
    };
    let data_of = |message: CustomizationMessage| -> Option<DataCommandData> {
        if !c.has_data(message) {
            return None;
        }
        Some(match message {
            CustomizationMessage::EnhancedConfig => DataCommandData::EnhancedConfiguration {
                luno: luno.to_owned(),
                options: numbered(&c.options),
                timers: numbered(&c.timers),
            },
            CustomizationMessage::Screens => DataCommandData::Screens(
                c.screens
                    .iter()
                    .map(|s| Screen {
                        number: s.number.clone(),
                        data: s.data.clone(),
                    })
                    .collect(),
            ),
            CustomizationMessage::States => {
                let states: Vec<State> = c.states.iter().filter_map(|s| state_record(s)).collect();
                if states.is_empty() {
                    return None;
                }
                DataCommandData::States(states)
            }
            CustomizationMessage::Fits => DataCommandData::Fits(c.fits.clone()),
            CustomizationMessage::ConfigId => DataCommandData::ConfigurationId(c.config_id.clone()),
        })
    };
    c.load
        .iter()
        .filter_map(|step| {
            let data = data_of(step.message)?;
            Some((
                step.message,
                step.optional,
                DataCommand {
                    response_flag: None,
                    luno: luno.to_owned(),
                    sequence: String::new(),
                    data,
                    extra: Vec::new(),
                    mac: None,
                    trailing_fs: 0,
                },
            ))
        })
        .collect()
}

/// A 28-character state record (checked by the profile loader) as the codec's `State`.
fn state_record(s: &str) -> Option<State> {
    let number = s.get(0..3)?.to_owned();
    let state_type = s.get(3..4)?.chars().next()?;
    let entry = |i: usize| s.get(4 + 3 * i..7 + 3 * i).map(str::to_owned);
    let entries = [
        entry(0)?,
        entry(1)?,
        entry(2)?,
        entry(3)?,
        entry(4)?,
        entry(5)?,
        entry(6)?,
        entry(7)?,
    ];
    Some(State {
        number,
        state_type,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_follows_the_profile_and_ends_with_the_configuration_id() {
        let p = Profile::builtin("ncr-selfserv-basic").unwrap();
        let msgs = customization_messages(&p, "001");
        let (first, optional, data) = msgs.first().unwrap();
        assert_eq!(*first, CustomizationMessage::EnhancedConfig);
        assert!(*optional);
        assert!(matches!(
            data.data,
            DataCommandData::EnhancedConfiguration { .. }
        ));
        assert!(
            matches!(&msgs.last().unwrap().2.data, DataCommandData::ConfigurationId(id) if id == "0022")
        );
        assert!(msgs
            .iter()
            .any(|(_, _, m)| matches!(&m.data, DataCommandData::States(s) if s.len() == p.customization.states.len())));
        for (_, _, m) in msgs {
            HostMessage::DataCommand(m).encode(&p.dialect).unwrap();
        }
    }

    #[test]
    fn nothing_empty_is_sent() {
        let mut p = Profile::builtin("ncr-selfserv-basic").unwrap();
        p.customization.options.clear();
        p.customization.timers.clear();
        p.customization.fits.clear();
        let names: Vec<_> = customization_messages(&p, "001")
            .into_iter()
            .map(|(m, _, _)| m)
            .collect();
        assert_eq!(
            names,
            [
                CustomizationMessage::Screens,
                CustomizationMessage::States,
                CustomizationMessage::ConfigId
            ]
        );
    }
}
