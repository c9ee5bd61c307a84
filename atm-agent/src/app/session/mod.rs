//! One terminal's NDC conversation, from its connection to its disconnection.
//!
//! The session is sequential, as NDC is: the terminal speaks (power-up, transaction request,
//! status), the agent answers, and nothing else from that terminal is read until the answer and
//! any advice it produced are durable. Start-up: power-up `12 … B<config id>` → download the
//! profile's customization data if the id differs (each message acknowledged `9`) → go in
//! service → supply counters (which also settle a dispense a power failure left in doubt).
//!
//! A customer's transaction request goes to the customer flows (`customer.rs` is the NDC side of
//! it); a terminal PIN key is loaded over NDC by `pin_key_load.rs`.
//!
//! Connection policy for bad input: a message that does not parse is logged (the error names the
//! field, never its content) and ignored; after `max_malformed_in_a_row` of them the connection is
//! closed. A framing error closes the connection at once. Nothing is queued for bad input.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use firmware_profiles::Profile;
use futures::{SinkExt, StreamExt};
use protocols::framing::{Frame, FrameCodec};
use protocols::ndc::{
    Command, DataCommand, DataCommandData, DeviceState, DeviceStatus, HostMessage, NumberedValue,
    Screen, SolicitedStatus, SolicitedStatusInfo, State, TerminalCommand as NdcCommand,
    TerminalMessage, TerminalState as NdcTerminalState, UnsolicitedStatus,
};
use protocols::types::{Amount, Currency, TerminalId};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::Framed;

mod customer;
mod mac;
mod pin_key_load;

pub use super::conversation::SessionEnd;
use super::registry::TerminalCommand;
use super::Services;
use crate::config::TerminalConfig;
use crate::domain::terminal::{CassetteCount, TerminalEvent};
use crate::ports::{AdviceQueue, SwitchLink, TerminalStore};
pub use pin_key_load::PinKeyStatus;

/// How often (at most) a session looks whether its terminal PIN key is due for a change; a
/// quarter of the key's lifetime when that is shorter.
const KEY_SCHEDULE_CHECK: Duration = Duration::from_secs(30);

/// One terminal's session over the stream `IO`, with the agent's ports `L`, `S`, `Q`.
pub struct Session<IO, L, S, Q> {
    svc: Arc<Services<L, S, Q>>,
    framed: Framed<IO, FrameCodec>,
    terminal: TerminalConfig,
    terminal_id: TerminalId,
    profile: Profile,
    /// Taken by `serve` (which selects on it beside the terminal's messages).
    commands: Option<mpsc::Receiver<TerminalCommand>>,
    cassettes: Vec<CassetteCount>,
    malformed_in_a_row: u32,
    /// Messages that arrived while an exchange waited for its acknowledgement (a customer who
    /// started while the agent was still asking for the supply counters), served next.
    deferred: VecDeque<TerminalMessage>,
    /// The request being answered: its sequence (TVN) and message coordination number.
    answering: Option<(String, char)>,
    /// Turns true when the agent stops: the session ends once no customer is in flight.
    stopping: Option<watch::Receiver<bool>>,
    /// NDC MAC mode: the MAC key confirmed on this connection, TVNs seen (`mac.rs`).
    mac: mac::MacState,
}

impl<IO, L, S, Q> Session<IO, L, S, Q>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    L: SwitchLink,
    S: TerminalStore,
    Q: AdviceQueue,
{
    /// Ends the session between customers once `stopping` turns true (graceful stop).
    pub fn stop_on(mut self, stopping: watch::Receiver<bool>) -> Self {
        self.stopping = Some(stopping);
        self
    }

    pub fn new(
        svc: Arc<Services<L, S, Q>>,
        framed: Framed<IO, FrameCodec>,
        terminal: TerminalConfig,
        terminal_id: TerminalId,
        profile: Profile,
        commands: mpsc::Receiver<TerminalCommand>,
    ) -> Self {
        let cassettes = profile
            .cassettes
            .iter()
            .map(|c| CassetteCount {
                cassette_type: c.cassette_type,
                denomination_minor: c.denomination_minor,
                notes: 0,
                low: false,
            })
            .collect();
        Self {
            svc,
            framed,
            terminal,
            terminal_id,
            profile,
            commands: Some(commands),
            cassettes,
            malformed_in_a_row: 0,
            deferred: VecDeque::new(),
            answering: None,
            stopping: None,
            mac: mac::MacState::default(),
        }
    }

    fn tid(&self) -> &str {
        self.terminal_id.as_str()
    }

    fn currency(&self) -> Currency {
        Currency {
            numeric: self.profile.currency.numeric,
        }
    }

    /// Serves the terminal until it disconnects; `first` is the message that identified it.
    pub async fn run(mut self, first: TerminalMessage) -> SessionEnd {
        let end = match self.handle(first).await {
            Ok(()) => self.serve().await,
            Err(e) => e,
        };
        self.svc
            .registry
            .event(self.tid(), TerminalEvent::Disconnected);
        end
    }

    async fn serve(&mut self) -> SessionEnd {
        enum Next {
            Message(Box<Result<TerminalMessage, SessionEnd>>),
            Command(TerminalCommand),
            KeySchedule,
        }
        let Some(mut commands) = self.commands.take() else {
            return SessionEnd::Disconnected;
        };
        // Scheduled terminal PIN key changes are looked at between customers.
        let check = self
            .svc
            .keys
            .as_ref()
            .and_then(|k| k.rotate_after)
            .map_or(KEY_SCHEDULE_CHECK, |d| {
                (d / 4).clamp(Duration::from_millis(250), KEY_SCHEDULE_CHECK)
            });
        let mut key_schedule = tokio::time::interval(check);
        key_schedule.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        key_schedule.tick().await;
        let mut stop = self.stopping.take();
        loop {
            if let Some(m) = self.deferred.pop_front() {
                if let Err(e) = self.handle(m).await {
                    return e;
                }
                continue;
            }
            // `next_message` is cancellation-safe: an unfinished frame stays in the codec's buffer.
            let stopping = async {
                match stop.as_mut() {
                    Some(rx) => {
                        let _ = rx.wait_for(|stop| *stop).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let next = tokio::select! {
                // Checked between customers only: a customer being served is finished first.
                _ = stopping => return SessionEnd::Stopping,
                msg = self.next_message(None) => Next::Message(Box::new(msg)),
                Some(cmd) = commands.recv() => Next::Command(cmd),
                _ = key_schedule.tick(), if self.svc.keys.is_some() => Next::KeySchedule,
            };
            let result = match next {
                Next::Message(msg) => match *msg {
                    Ok(m) => self.handle(m).await,
                    Err(e) => Err(e),
                },
                Next::Command(cmd) => self.technician(cmd).await,
                Next::KeySchedule => self.rotate_pin_key(false).await,
            };
            if let Err(e) = result {
                return e;
            }
        }
    }

    async fn handle(&mut self, msg: TerminalMessage) -> Result<(), SessionEnd> {
        match msg {
            TerminalMessage::UnsolicitedStatus(u) => self.unsolicited(u).await,
            TerminalMessage::TransactionRequest(req) => {
                if let Some(reason) = self.held_out_of_service() {
                    // A terminal out of service sends no requests; one that does is not obeying
                    // the agent, and its PIN blocks are not translated any more.
                    tracing::warn!(target: "security", terminal = self.tid(), reason, "transaction request from a terminal held out of service: closing");
                    return Err(SessionEnd::Refused(
                        "transaction request while held out of service",
                    ));
                }
                self.customer(req).await?;
                self.guard_pin_format().await
            }
            TerminalMessage::SolicitedStatus(s) => {
                tracing::info!(terminal = self.tid(), status = ?s.info, "solicited status outside an exchange: ignored");
                Ok(())
            }
            TerminalMessage::EncryptorInit(e) => {
                tracing::info!(terminal = self.tid(), id = %e.id, "encryptor initialisation data received");
                Ok(())
            }
        }
    }

    /// Reads the next terminal message, skipping (and counting) malformed ones.
    async fn next_message(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<TerminalMessage, SessionEnd> {
        loop {
            let frame = match timeout {
                Some(t) => tokio::time::timeout(t, self.framed.next())
                    .await
                    .map_err(|_| SessionEnd::Timeout(t.as_millis() as u64))?,
                None => self.framed.next().await,
            };
            let frame = match frame {
                None => return Err(SessionEnd::Disconnected),
                Some(Err(e)) => return Err(SessionEnd::Framing(e)),
                Some(Ok(f)) => f,
            };
            match TerminalMessage::parse(&frame.payload, &self.profile.dialect) {
                Ok(m) => {
                    self.malformed_in_a_row = 0;
                    return Ok(m);
                }
                Err(e) => {
                    self.malformed_in_a_row += 1;
                    tracing::warn!(terminal = self.tid(), error = %e, bytes = frame.payload.len(), "malformed NDC message from the terminal");
                    if self.malformed_in_a_row >= self.svc.max_malformed {
                        tracing::warn!(
                            terminal = self.tid(),
                            "too many malformed messages in a row: closing the connection"
                        );
                        return Err(SessionEnd::TooManyMalformed);
                    }
                }
            }
        }
    }

    async fn send(&mut self, msg: HostMessage) -> Result<(), SessionEnd> {
        let bytes = msg
            .encode(&self.profile.dialect)
            .map_err(SessionEnd::Encode)?;
        let header = bytes::Bytes::from(vec![0u8; self.profile.framing.header_len]);
        self.framed
            .send(Frame {
                header,
                payload: bytes.into(),
            })
            .await
            .map_err(SessionEnd::Framing)
    }

    /// Sends a command or data message and waits for the terminal's solicited status; unsolicited
    /// statuses that arrive meanwhile are handled on the way.
    async fn exchange(&mut self, msg: HostMessage) -> Result<SolicitedStatus, SessionEnd> {
        self.send(msg).await?;
        let wait = Duration::from_millis(self.profile.timers.command_ack_ms);
        loop {
            match self.next_message(Some(wait)).await? {
                TerminalMessage::SolicitedStatus(s) => return Ok(s),
                // Boxed: a power-up here starts the start-up exchange again (recursion).
                TerminalMessage::UnsolicitedStatus(u) => Box::pin(self.unsolicited(u)).await?,
                other => {
                    tracing::info!(
                        terminal = self.tid(),
                        "message while waiting for an acknowledgement: served after it"
                    );
                    if self.deferred.len() >= 8 {
                        tracing::warn!(
                            terminal = self.tid(),
                            "terminal keeps talking without acknowledging: closing"
                        );
                        return Err(SessionEnd::Refused("acknowledgement"));
                    }
                    self.deferred.push_back(other);
                }
            }
        }
    }

    fn ready(s: &SolicitedStatus) -> bool {
        matches!(
            s.info,
            SolicitedStatusInfo::Ready | SolicitedStatusInfo::ReadyAfterReply { .. }
        )
    }

    async fn unsolicited(&mut self, u: UnsolicitedStatus) -> Result<(), SessionEnd> {
        match &u.device.state {
            DeviceState::PowerUp { config_id } => return self.start_up(config_id.clone()).await,
            DeviceState::Supervisor { entered: true } => self
                .svc
                .registry
                .event(self.tid(), TerminalEvent::SupervisorEntered),
            DeviceState::Supervisor { entered: false } => {
                self.svc
                    .registry
                    .event(self.tid(), TerminalEvent::SupervisorExited);
                // Back in service only with a usable PIN key (a technician may have been
                // at a terminal that still waits for its master key).
                if matches!(
                    self.ensure_pin_key(false).await?,
                    PinKeyStatus::Ready | PinKeyStatus::Disabled
                ) {
                    self.go_in_service().await?;
                }
            }
            DeviceState::CashHandler(_) => self.note_supplies(&u.device),
            DeviceState::Other { .. } => {}
        }
        if u.device
            .severity
            .as_deref()
            .is_some_and(|s| s.starts_with('4'))
        {
            self.svc
                .registry
                .event(self.tid(), TerminalEvent::FatalFault);
        }
        self.status_advice(&u.device).await
    }

    /// Marks cassettes the terminal reports low (supplies `2`) or out (`3`).
    fn note_supplies(&mut self, device: &DeviceStatus) {
        let Some(supplies) = &device.supplies else {
            return;
        };
        // Supplies: reject bin first, then one digit per cassette type.
        for (i, c) in supplies.chars().skip(1).enumerate() {
            if let Some(cassette) = self
                .cassettes
                .iter_mut()
                .find(|k| usize::from(k.cassette_type) == i + 1)
            {
                cassette.low = matches!(c, '2' | '3');
            }
        }
        let cassettes = self.cassettes.clone();
        self.svc
            .registry
            .update(self.tid(), |v| v.cassettes = cassettes);
        if self.cassettes.iter().any(|c| c.low) {
            tracing::warn!(terminal = self.tid(), "cassettes low");
        }
    }

    /// Turns a device status into an 0820 advice for the fleet view.
    async fn status_advice(&mut self, device: &DeviceStatus) -> Result<(), SessionEnd> {
        let detail = serde_json::to_string(device).unwrap_or_default();
        self.svc
            .registry
            .update(self.tid(), |v| v.last_status = Some(detail.clone()));
        let zero = Amount::new(0, self.currency());
        self.svc
            .status_advice(&self.terminal_id, zero, &detail)
            .await
    }

    async fn start_up(&mut self, config_id: String) -> Result<(), SessionEnd> {
        tracing::info!(terminal = self.tid(), config_id = %config_id, "terminal powered up");
        self.svc
            .registry
            .event(self.tid(), TerminalEvent::PoweredUp);
        if config_id != self.profile.customization.config_id {
            self.download().await?;
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

    async fn download(&mut self) -> Result<(), SessionEnd> {
        self.svc
            .registry
            .event(self.tid(), TerminalEvent::DownloadStarted);
        let messages = customization_messages(&self.profile, &self.terminal.luno);
        tracing::info!(terminal = self.tid(), messages = messages.len(), profile = %self.profile.name, "downloading customization data");
        for data in messages {
            let ack = self.exchange(HostMessage::DataCommand(data)).await?;
            if !Self::ready(&ack) {
                tracing::error!(terminal = self.tid(), status = ?ack.info, "terminal refused customization data");
                return Err(SessionEnd::Refused("customization data"));
            }
        }
        Ok(())
    }

    /// Why the agent holds this terminal out of service, if it does.
    fn held_out_of_service(&self) -> Option<String> {
        self.svc
            .registry
            .view(self.tid())
            .and_then(|v| v.out_of_service_reason)
    }

    /// Takes the terminal out of service, and holds it there until an operator puts it back,
    /// once too many of its PIN blocks did not decode under its PIN key: the ISO 9564 format 0
    /// PAN-substitution attack (one PIN block sent with many PANs, reading which decode) needs
    /// many of them, a customer's mistyped PIN none.
    async fn guard_pin_format(&mut self) -> Result<(), SessionEnd> {
        let Some(keys) = &self.svc.keys else {
            return Ok(());
        };
        let errors = keys.pin_format_errors(self.tid());
        let (max, window) = keys.pin_format_limit();
        if errors < max as usize || self.held_out_of_service().is_some() {
            return Ok(());
        }
        let reason = format!(
            "{errors} PIN blocks that did not decode within {} s",
            window.as_secs()
        );
        tracing::error!(target: "security", terminal = self.tid(), errors, window_secs = window.as_secs(), "PIN blocks that do not decode (a PAN-substitution attack, or a PIN pad with another key): terminal held out of service until an operator runs `atmctl terminal {} in-service`", self.tid());
        self.svc
            .state
            .put_hold(&self.terminal_id, Some(&reason))
            .await?;
        self.svc
            .registry
            .update(self.tid(), |v| v.out_of_service_reason = Some(reason));
        self.go_out_of_service().await
    }

    /// Puts the terminal in service, unless the agent holds it out of service (then it stays
    /// out, whatever asked: a start-up, a supervisor exit, a PIN key load).
    async fn go_in_service(&mut self) -> Result<(), SessionEnd> {
        if let Some(reason) = self.held_out_of_service() {
            tracing::warn!(target: "security", terminal = self.tid(), reason, "terminal held out of service: not put in service");
            return self.go_out_of_service().await;
        }
        let cmd = NdcCommand::new(self.terminal.luno.clone(), Command::GoInService);
        let ack = self.exchange(HostMessage::TerminalCommand(cmd)).await?;
        if !Self::ready(&ack) {
            return Err(SessionEnd::Refused("go in service"));
        }
        self.svc
            .registry
            .event(self.tid(), TerminalEvent::WentInService);
        Ok(())
    }

    async fn supply_counters(&mut self) -> Result<(), SessionEnd> {
        let cmd = NdcCommand::new(
            self.terminal.luno.clone(),
            Command::SendSupplyCounters { modifier: None },
        );
        let answer = self.exchange(HostMessage::TerminalCommand(cmd)).await?;
        // The counters settle a dispense in doubt: in MAC mode only authenticated ones count.
        if self.check_status_mac(&answer).is_err() {
            return Ok(());
        }
        let SolicitedStatusInfo::TerminalState(NdcTerminalState::SupplyCounters(c)) = answer.info
        else {
            tracing::warn!(terminal = self.tid(), status = ?answer.info, "supply counters not given");
            return Ok(());
        };
        for (cassette, notes) in self.cassettes.iter_mut().zip(&c.notes_in_cassettes) {
            cassette.notes = *notes;
        }
        let cassettes = self.cassettes.clone();
        self.svc
            .registry
            .update(self.tid(), |v| v.cassettes = cassettes);
        self.settle_after_power_failure(c.tsn, &c.last_transaction_notes_dispensed)
            .await
    }

    async fn technician(&mut self, cmd: TerminalCommand) -> Result<(), SessionEnd> {
        tracing::info!(terminal = self.tid(), command = ?cmd, "technician command");
        match cmd {
            TerminalCommand::GoInService => {
                // The operator's word releases a hold (and forgets the count that caused it).
                if let Some(reason) = self.held_out_of_service() {
                    tracing::warn!(target: "security", terminal = self.tid(), reason, "hold released by an operator");
                    self.svc.state.put_hold(&self.terminal_id, None).await?;
                    self.svc
                        .registry
                        .update(self.tid(), |v| v.out_of_service_reason = None);
                    if let Some(keys) = &self.svc.keys {
                        keys.forget_pin_format_errors(self.tid());
                    }
                }
                self.go_in_service().await
            }
            TerminalCommand::GoOutOfService => self.go_out_of_service().await,
            TerminalCommand::SendSupplyCounters => self.supply_counters().await,
            TerminalCommand::LoadPinKey => self.rotate_pin_key(true).await,
        }
    }

    async fn go_out_of_service(&mut self) -> Result<(), SessionEnd> {
        let c = NdcCommand::new(
            self.terminal.luno.clone(),
            Command::GoOutOfService { modifier: None },
        );
        if Self::ready(&self.exchange(HostMessage::TerminalCommand(c)).await?) {
            self.svc
                .registry
                .event(self.tid(), TerminalEvent::WentOutOfService);
        }
        Ok(())
    }
}

/// The data commands that load a profile's customization into a terminal, in the usual order:
/// enhanced configuration, screens, states, FITs, and last the configuration id (so a terminal
/// interrupted half-way reports the old id and gets everything again).
fn customization_messages(profile: &Profile, luno: &str) -> Vec<DataCommand> {
    let c = &profile.customization;
    let numbered = |v: &[firmware_profiles::OptionDef]| {
        v.iter()
            .map(|o| NumberedValue {
                number: o.number,
                value: o.value,
            })
            .collect()
    };
    let mut data = vec![DataCommandData::EnhancedConfiguration {
        luno: luno.to_owned(),
        options: numbered(&c.options),
        timers: numbered(&c.timers),
    }];
    if !c.screens.is_empty() {
        data.push(DataCommandData::Screens(
            c.screens
                .iter()
                .map(|s| Screen {
                    number: s.number.clone(),
                    data: s.data.clone(),
                })
                .collect(),
        ));
    }
    let states: Vec<State> = c.states.iter().filter_map(|s| state_record(s)).collect();
    if !states.is_empty() {
        data.push(DataCommandData::States(states));
    }
    if !c.fits.is_empty() {
        data.push(DataCommandData::Fits(c.fits.clone()));
    }
    data.push(DataCommandData::ConfigurationId(c.config_id.clone()));
    data.into_iter()
        .map(|data| DataCommand {
            response_flag: None,
            luno: luno.to_owned(),
            sequence: String::new(),
            data,
            mac: None,
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
    fn download_ends_with_the_configuration_id() {
        let p = Profile::builtin("ncr-selfserv-basic").unwrap();
        let msgs = customization_messages(&p, "001");
        assert!(matches!(
            msgs.first().unwrap().data,
            DataCommandData::EnhancedConfiguration { .. }
        ));
        assert!(
            matches!(&msgs.last().unwrap().data, DataCommandData::ConfigurationId(id) if id == "0022")
        );
        assert!(msgs
            .iter()
            .any(|m| matches!(&m.data, DataCommandData::States(s) if s.len() == 4)));
        for m in msgs {
            HostMessage::DataCommand(m).encode(&p.dialect).unwrap();
        }
    }
}
