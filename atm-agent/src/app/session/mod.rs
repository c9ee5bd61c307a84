//! One terminal's NDC conversation, from its connection to its disconnection.
//!
//! The session is sequential, as NDC is: the terminal speaks (power-up, transaction request,
//! status), the agent answers, and nothing else from that terminal is read until the answer and
//! any advice it produced are durable. The agent leads the start-up as soon as the connection is
//! known to be this terminal's (`startup.rs`): configuration id asked → the profile's
//! customization loaded if the id differs → go in service → supply counters (which also settle a
//! dispense a power failure left in doubt). A power-up `12 … B<config id>` at any time does the
//! same with the id it carries.
//!
//! A customer's transaction request goes to the customer flows (`customer.rs` is the NDC side of
//! it); one that does not parse is declined all the same (`unreadable.rs`); a terminal PIN key is
//! loaded over NDC by `pin_key_load.rs`.
//!
//! Connection policy for bad input: a message that does not parse is logged (the error names the
//! field, never its content) and skipped (a transaction request is declined); after
//! `max_malformed_in_a_row` of them the connection is closed. A framing error closes the
//! connection at once, and so does a message in another terminal's LUNO (a `security` event). A
//! newer connection of the same terminal replaces this session between customers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use firmware_profiles::Profile;
use futures::{SinkExt, StreamExt};
use protocols::framing::{Frame, FrameCodec};
use protocols::ndc::{
    Command, DeviceState, DeviceStatus, HostMessage, SolicitedStatus, SolicitedStatusInfo,
    TerminalCommand as NdcCommand, TerminalMessage, TerminalState as NdcTerminalState,
    UnsolicitedStatus,
};
use protocols::types::{Amount, Currency, TerminalId};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::Framed;

mod customer;
mod journal;
mod mac;
mod pin_key_load;
mod startup;
mod unreadable;

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
    /// Transaction requests that did not parse, still to be declined: their sequence (TVN)
    /// and message coordination number (`unreadable.rs`).
    owed_declines: VecDeque<(String, char)>,
    /// Electronic journal upload blocks to store and acknowledge (`journal.rs`).
    journal_blocks: VecDeque<protocols::ndc::JournalUpload>,
    /// Whether the customer being served has had the transaction reply.
    replied: bool,
    /// This session's number in the registry, and the signal that a newer connection of the
    /// same terminal replaced it.
    attached: Option<(u64, watch::Receiver<bool>)>,
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
            owed_declines: VecDeque::new(),
            journal_blocks: VecDeque::new(),
            replied: false,
            attached: None,
        }
    }

    /// The session's number in the registry and its replacement signal
    /// ([`super::registry::Registry::attach`]).
    pub fn attached(mut self, session: u64, replaced: watch::Receiver<bool>) -> Self {
        self.attached = Some((session, replaced));
        self
    }

    fn tid(&self) -> &str {
        self.terminal_id.as_str()
    }

    fn currency(&self) -> Currency {
        Currency {
            numeric: self.profile.currency.numeric,
        }
    }

    /// Serves the terminal until it disconnects. `first` is the message that identified it, if
    /// the connection was identified by its LUNO; a connection identified by its address or
    /// port has none. Either way the agent leads: it asks for the configuration id, loads what
    /// is stale and puts the terminal in service (`startup.rs`).
    pub async fn run(mut self, first: Option<Frame>) -> SessionEnd {
        let end = match self.open(first).await {
            Ok(()) => self.serve().await,
            Err(e) => e,
        };
        match &self.attached {
            Some((session, _)) => self.svc.registry.detach(self.tid(), *session),
            None => self
                .svc
                .registry
                .event(self.tid(), TerminalEvent::Disconnected),
        }
        end
    }

    async fn serve(&mut self) -> SessionEnd {
        enum Next {
            Frame(Box<Result<Frame, SessionEnd>>),
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
        let mut replaced = self.attached.as_ref().map(|(_, r)| r.clone());
        loop {
            if let Err(e) = self.pay_owed_declines().await {
                return e;
            }
            if let Err(e) = self.store_journal().await {
                return e;
            }
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
            let replaced_by_new = async {
                match replaced.as_mut() {
                    Some(rx) => {
                        if rx.wait_for(|r| *r).await.is_err() {
                            std::future::pending::<()>().await
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let next = tokio::select! {
                // Checked between customers only: a customer being served is finished first.
                _ = stopping => return SessionEnd::Stopping,
                _ = replaced_by_new => return SessionEnd::Replaced,
                // `next_frame` is cancellation-safe: an unfinished frame stays in the codec's
                // buffer; the frame is interpreted (and maybe answered) outside the select.
                frame = self.next_frame(None) => Next::Frame(Box::new(frame)),
                Some(cmd) = commands.recv() => Next::Command(cmd),
                _ = key_schedule.tick(), if self.svc.keys.is_some() => Next::KeySchedule,
            };
            let result = match next {
                Next::Frame(frame) => match *frame {
                    Ok(f) => match self.interpret(f) {
                        Ok(Some(m)) => self.handle(m).await,
                        Ok(None) => Ok(()),
                        Err(e) => Err(e),
                    },
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
                self.replied = false;
                if let Err(e) = self.customer(req).await {
                    // Every customer gets an answer: a flow that failed before replying (the
                    // state store, the queue) still declines, card returned, if the terminal
                    // can be told.
                    if !self.replied
                        && !matches!(e, SessionEnd::Disconnected | SessionEnd::Framing(_))
                    {
                        tracing::error!(terminal = self.tid(), error = %e, "transaction request could not be served: declined");
                        let _ = self
                            .send_reply(crate::app::conversation::CustomerReply::Decline(
                                crate::app::conversation::Decline::HostUnavailable,
                            ))
                            .await;
                    }
                    return Err(e);
                }
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
            TerminalMessage::JournalUpload(u) => {
                self.take_journal_upload(u);
                Ok(())
            }
            TerminalMessage::Unknown(m) => {
                tracing::warn!(terminal = self.tid(), class = %m.class, fields = m.fields.len(), "message of a class the agent does not serve: ignored");
                Ok(())
            }
        }
    }

    /// Reads the next terminal message, skipping (and counting) malformed ones; a transaction
    /// request that does not parse is owed a decline, sent at the next turn of the session.
    async fn next_message(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<TerminalMessage, SessionEnd> {
        loop {
            let frame = self.next_frame(timeout).await?;
            if let Some(m) = self.interpret(frame)? {
                return Ok(m);
            }
        }
    }

    /// The next frame from the terminal. Cancellation-safe (an unfinished frame stays in the
    /// codec's buffer).
    async fn next_frame(&mut self, timeout: Option<Duration>) -> Result<Frame, SessionEnd> {
        let frame = match timeout {
            Some(t) => tokio::time::timeout(t, self.framed.next())
                .await
                .map_err(|_| SessionEnd::Timeout(t.as_millis() as u64))?,
            None => self.framed.next().await,
        };
        match frame {
            None => Err(SessionEnd::Disconnected),
            Some(Err(e)) => Err(SessionEnd::Framing(e)),
            Some(Ok(f)) => Ok(f),
        }
    }

    /// A frame as a message of this terminal. `None`: malformed, logged and counted (an
    /// unparseable transaction request is queued for its decline). A message in another LUNO
    /// is refused: this connection speaks for one terminal only.
    fn interpret(&mut self, frame: Frame) -> Result<Option<TerminalMessage>, SessionEnd> {
        match TerminalMessage::parse(&frame.payload, &self.profile.dialect) {
            Ok(m) => {
                self.malformed_in_a_row = 0;
                // Journal uploads and messages of unknown classes may come without a LUNO
                // (real terminals leave it empty in `61`); any LUNO given must be this one.
                let may_be_empty = matches!(
                    m,
                    TerminalMessage::JournalUpload(_) | TerminalMessage::Unknown(_)
                );
                if m.luno() != self.terminal.luno && !(may_be_empty && m.luno().is_empty()) {
                    return Err(self.foreign_luno(m.luno()));
                }
                Ok(Some(m))
            }
            Err(e) => self.malformed(&frame, &e).map(|()| None),
        }
    }

    /// A message that does not parse: logged and counted (an unparseable transaction request
    /// is owed a decline); too many in a row end the session.
    fn malformed(&mut self, frame: &Frame, e: &protocols::ndc::NdcError) -> Result<(), SessionEnd> {
        self.malformed_in_a_row += 1;
        tracing::warn!(terminal = self.tid(), error = %e, bytes = frame.payload.len(), "malformed NDC message from the terminal");
        if let Some(raw) = unreadable::RawRequest::read(&frame.payload) {
            if raw.luno != self.terminal.luno {
                return Err(self.foreign_luno(&raw.luno));
            }
            self.owe_decline(raw);
        }
        if self.malformed_in_a_row >= self.svc.max_malformed {
            tracing::warn!(
                terminal = self.tid(),
                "too many malformed messages in a row: closing the connection"
            );
            return Err(SessionEnd::TooManyMalformed);
        }
        Ok(())
    }

    /// A message naming another LUNO than the terminal this connection was identified as.
    fn foreign_luno(&self, luno: &str) -> SessionEnd {
        let peer = self
            .svc
            .registry
            .view(self.tid())
            .and_then(|v| v.peer)
            .unwrap_or_default();
        let claimed_terminal = self
            .svc
            .registry
            .snapshot()
            .into_iter()
            .find(|v| v.luno == luno)
            .map_or_else(|| "unknown".to_owned(), |v| v.terminal_id);
        tracing::warn!(target: "security", terminal = self.tid(), luno = %self.terminal.luno, claimed_luno = %luno, %claimed_terminal, %peer, "message with a LUNO this connection is not bound to: refused, connection closed");
        SessionEnd::Refused("a message with another terminal's LUNO")
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
                // Journal blocks are taken at once (a terminal uploads in the background).
                TerminalMessage::JournalUpload(u) => self.take_journal_upload(u),
                other => self.defer(other)?,
            }
        }
    }

    /// Keeps a message that arrived while the agent waited for an answer, to be served after it
    /// (at most 8: a terminal that keeps talking without answering is closed).
    fn defer(&mut self, other: TerminalMessage) -> Result<(), SessionEnd> {
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
        Ok(())
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
                // After a refused customization load, the operator's word tries the load again.
                if self
                    .svc
                    .registry
                    .view(self.tid())
                    .is_some_and(|v| v.load_failure.is_some())
                {
                    return self.reload().await;
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
