//! [`AtmSim`]: one terminal and its NDC conversation with the agent.
//!
//! Start-up: connect, send power-up `12 … B<config id>`, let the connection task answer the
//! download, key loads and commands, return once the agent sent go-in-service. A customer: send
//! `11` (PIN buffer A from the PIN pad when it has a PIN key), wait
//! for the `4` (host reply timer), check it (MCN, function, note mix), do what it says (dispense
//! per the customer's [`Behaviour`], accept the deposit, show the screen), report with a `22`
//! (ready, or `8 E1`/`E2` after a dispense that went wrong), then `12 … E` when a cassette went
//! low. A power loss drops the socket without a status; [`AtmSim::power_cycle`] brings the
//! terminal back and the next `11` carries the last transaction status. A customer's
//! [`Behaviour::TerminalFault`] strikes where it says (`terminal_faults.rs`), and every
//! withdrawal or deposit leaves a [`TruthRecord`] of what really happened ([`AtmSim::truth`]).
//! In the profile's MAC mode the request and the statuses are MACed and the reply checked first
//! (`mac.rs`).
//! With [`AtmOptions::state_table`] the request comes from the downloaded state table run on the
//! customer's keys (`state_machine.rs`) instead of the customer's kind and amount.

use std::sync::Arc;
use std::time::Duration;

use firmware_profiles::Profile;
use keystore::Kcv;
use protocols::ndc::{
    Dialect, DispenseOutcome, FunctionId, LastStatus, TerminalMessage, TransactionReply,
};
use protocols::types::Pan;
use tokio::sync::watch;
use tracing::Instrument;
use zeroize::Zeroizing;

use super::cash::{Cassettes, SupplyLevel};
use super::connection::{late_reply, Link, Shared};
use super::customer::{Behaviour, Customer, Kind, Partial};
use super::epp::ClearKey;
use super::error::AtmError;
use super::faults::TerminalFault;
use super::mac::RequestTamper;
use super::messages::{self, reason, RequestFields};
use super::outcome::{CustomerOutcome, DeclineReason, Outcome};
use super::state_machine::{self, FlowEnd, FlowTrace, Key, StateMachine};
use super::terminal::{ServiceMode, StoredConfig, Terminal, TerminalCounters, TerminalStatus};
use super::truth::{Reported, TruthRecord};

mod terminal_faults;

/// The config id a terminal that never had a download reports.
pub const FRESH_CONFIG_ID: &str = "0000";

/// How the simulated terminal is set up.
#[derive(Debug, Clone)]
pub struct AtmOptions {
    /// Notes per cassette type (index 0 = type 1); `None`: 1000 in each cassette of the profile.
    pub initial_notes: Option<Vec<u32>>,
    /// The config id the terminal holds at power-up ([`FRESH_CONFIG_ID`]: the agent downloads).
    pub config_id: String,
    pub connect_timeout_ms: u64,
    /// How long the agent may take from power-up to go-in-service.
    pub startup_timeout_ms: u64,
    /// Host reply timer; `None`: the profile's `timers.host_reply_ms`.
    pub host_reply_timeout_ms: Option<u64>,
    /// How long a customer waits for an out-of-service terminal to come back; 0: turned away.
    pub wait_in_service_ms: u64,
    /// Expiry written into track 2.
    pub card_expiry_yymm: String,
    /// The terminal's seed. Nothing in the terminal draws from it at present (PIN blocks come
    /// from the PIN pad, ISO 9564 format 0 has no random padding); kept so runs stay configurable.
    pub seed: u64,
    /// The terminal master key installed in the PIN pad (clear, as the key custodians entered
    /// it). `None`: the terminal rejects key loads and sends PIN buffer A empty.
    pub master_key: Option<ClearKey>,
    /// How long a terminal struck by a `no-status` fault stays silent before it serves the next
    /// customer; `None`: the profile's `timers.status_after_reply_ms` (the agent's status timer)
    /// plus [`NO_STATUS_GRACE_MS`], so the agent's timer has surely run out. `Some(0)` goes on
    /// at once (the next `11` then takes the status's place).
    pub no_status_hold_ms: Option<u64>,
    /// Run the state table the host downloaded, state by state, from the keys each customer
    /// presses ([`crate::state_machine`]), and build the `11` from the buffers the states fill.
    /// Off (the default): the request is scripted from the customer's kind and amount.
    pub state_table: bool,
}

/// How long past the agent's status timer a `no-status` terminal stays silent by default.
pub const NO_STATUS_GRACE_MS: u64 = 1_000;

impl Default for AtmOptions {
    fn default() -> Self {
        Self {
            initial_notes: None,
            config_id: FRESH_CONFIG_ID.to_owned(),
            connect_timeout_ms: 5_000,
            startup_timeout_ms: 60_000,
            host_reply_timeout_ms: None,
            wait_in_service_ms: 0,
            card_expiry_yymm: "3012".to_owned(),
            seed: 1,
            master_key: None,
            no_status_hold_ms: None,
            state_table: false,
        }
    }
}

/// One simulated NDC terminal connected to an agent.
#[derive(Debug)]
pub struct AtmSim {
    addr: String,
    luno: String,
    profile: Arc<Profile>,
    options: AtmOptions,
    shared: Arc<Shared>,
    counters: watch::Receiver<TerminalCounters>,
    status: watch::Receiver<TerminalStatus>,
    link: Option<Link>,
    /// A change to make to the next transaction request after it was MACed (a test's attacker).
    tamper: Option<RequestTamper>,
    /// The states and screens the last customer went through (state-table mode).
    last_flow: Option<FlowTrace>,
}

/// The transaction request a customer's session produces: scripted from the customer, or what
/// the state table's transaction request state sends.
struct RequestShape {
    kind: Kind,
    operation_code: String,
    /// `None`: not sent.
    amount_minor: Option<u64>,
    send_track2: bool,
    send_pin: bool,
}

/// What the terminal did with an accepted reply.
struct Done {
    outcome: Outcome,
    /// Notes that reached the customer.
    notes: Vec<u32>,
    dispensed_minor: u64,
    deposited_minor: u64,
    /// The terminal fault that struck, if one did.
    fault: Option<TerminalFault>,
    physical: Physical,
}

/// What physically happened and what the host was told: the truth ledger's part of a customer.
struct Physical {
    reported: Reported,
    /// Notes that left the cassettes (empty: no dispense tried).
    picked: Vec<u32>,
    /// Of those, notes purged or retracted into the reject bin.
    diverted: Vec<u32>,
}

impl Physical {
    /// Nothing moved; the host was told `reported`.
    fn nothing(reported: Reported) -> Self {
        Self {
            reported,
            picked: Vec::new(),
            diverted: Vec::new(),
        }
    }

    /// `picked` left the cassettes and all of it reached the customer.
    fn delivered(reported: Reported, picked: &[u32]) -> Self {
        Self {
            reported,
            picked: picked.to_vec(),
            diverted: vec![0; picked.len()],
        }
    }
}

impl AtmSim {
    /// Dials the agent, powers up and returns once the agent put the terminal in service.
    pub async fn connect(
        agent_addr: impl std::fmt::Display,
        profile: impl Into<Arc<Profile>>,
        luno: &str,
        options: AtmOptions,
    ) -> Result<Self, AtmError> {
        let profile = profile.into();
        check_luno(luno, &profile.dialect)?;
        check_config_id(&options.config_id)?;
        let cassettes = Cassettes::load(&profile, options.initial_notes.as_deref())
            .map_err(AtmError::Config)?;
        let terminal = Terminal::new(
            &profile,
            luno.to_owned(),
            cassettes,
            options.config_id.clone(),
        )
        .with_master_key(options.master_key.clone());
        let shared = Shared::new(terminal);
        let mut sim = Self {
            addr: agent_addr.to_string(),
            luno: luno.to_owned(),
            counters: shared.counters(),
            status: shared.status(),
            profile,
            options,
            shared,
            link: None,
            tamper: None,
            last_flow: None,
        };
        sim.start_up().await?;
        Ok(sim)
    }

    /// Power off and on: the connection drops (if still up), the terminal reconnects, sends
    /// power-up with the config id it holds and waits to be put in service. Notes, counters and
    /// the last transaction status survive, as on a real terminal.
    pub async fn power_cycle(&mut self) -> Result<(), AtmError> {
        self.power_off().await;
        self.start_up().await
    }

    async fn power_off(&mut self) {
        self.link = None;
        self.shared
            .with(|t| {
                t.connected = false;
                t.awaiting = None;
                t.mode = ServiceMode::OutOfService;
                t.supervisor = false;
            })
            .await;
    }

    async fn start_up(&mut self) -> Result<(), AtmError> {
        self.shared
            .with(|t| t.mode = ServiceMode::OutOfService)
            .await;
        let (luno, config_id) = self
            .shared
            .with(|t| (t.luno.clone(), t.config.config_id.clone()))
            .await;
        let mut power_up = messages::power_up(&luno, &config_id);
        self.shared
            .with(|t| t.authenticate_status(&mut power_up))
            .await;
        let first = power_up.encode(&self.profile.dialect)?;
        tracing::info!(luno = %luno, config_id = %config_id, agent = %self.addr, "power-up");
        let link = Link::open(
            &self.addr,
            &self.profile,
            self.shared.clone(),
            self.options.connect_timeout_ms,
            first,
        )
        .await?;
        self.link = Some(link);
        let timeout_ms = self.options.startup_timeout_ms;
        let mut status = self.status.clone();
        let waited = tokio::time::timeout(
            Duration::from_millis(timeout_ms),
            status.wait_for(|s| !s.connected || s.mode == ServiceMode::InService),
        )
        .await;
        match waited {
            Ok(Ok(s)) if s.connected => Ok(()),
            Ok(_) => Err(AtmError::Disconnected),
            Err(_) => Err(AtmError::StartupTimeout { timeout_ms }),
        }
    }

    /// Serves one customer and says how it ended. Errors are the simulator's own troubles (the
    /// connection lost while waiting for the reply, a PAN that is not one, an amount too wide for
    /// the dialect); whatever the host answers is an [`Outcome`]. A terminal that is out of
    /// service, in supervisor mode or without a connection turns the customer away
    /// ([`Outcome::OutOfService`]) after waiting up to `AtmOptions::wait_in_service_ms`.
    pub async fn run_customer(&mut self, customer: &Customer) -> Result<CustomerOutcome, AtmError> {
        let pan = Pan::parse(&customer.pan).map_err(AtmError::CustomerCard)?;
        let span = tracing::info_span!(
            "customer",
            luno = %self.luno(),
            pan = %pan.masked(),
            kind = %customer.kind,
            amount_minor = customer.amount_minor
        );
        self.serve(customer, &pan).instrument(span).await
    }

    async fn serve(&mut self, customer: &Customer, pan: &Pan) -> Result<CustomerOutcome, AtmError> {
        let requested_minor = match customer.kind {
            Kind::BalanceInquiry => 0,
            _ => customer.amount_minor,
        };
        if self.options.state_table {
            self.last_flow = None;
        }
        let mut result = CustomerOutcome {
            pan_masked: pan.masked(),
            kind: customer.kind,
            outcome: Outcome::OutOfService,
            requested_minor,
            dispensed_minor: 0,
            deposited_minor: 0,
            notes_dispensed: Vec::new(),
            tsn: None,
            mcn: None,
            screen: None,
            wrong_pin_entered: customer.wrong_pin,
            pin_block_sent: false,
            terminal_fault: None,
        };
        if !self.wait_serving().await {
            tracing::info!("terminal out of service: customer turned away");
            return Ok(self.finish(result, None).await);
        }
        let shape = match self.request_shape(customer).await? {
            Some(shape) => shape,
            None => {
                tracing::info!("the customer left the state table before a transaction request");
                result.outcome = Outcome::Cancelled;
                return Ok(self.finish(result, None).await);
            }
        };
        // In state-table mode the request, not the customer's intent, says what is asked for.
        let effective;
        let customer = if self.options.state_table {
            result.kind = shape.kind;
            result.requested_minor = match shape.kind {
                Kind::BalanceInquiry => 0,
                _ => shape.amount_minor.unwrap_or(0),
            };
            effective = Customer {
                kind: shape.kind,
                amount_minor: result.requested_minor,
                ..customer.clone()
            };
            &effective
        } else {
            customer
        };
        let fault = match &customer.behaviour {
            Behaviour::TerminalFault(f) if f.before_reply() => Some(f.clone()),
            _ => None,
        };
        if fault == Some(TerminalFault::PowerBeforeRequest) {
            result.terminal_fault = fault;
            return Ok(self.lose_power_before_reply(result).await);
        }
        let (mcn, pin_block_sent) = self.send_request(customer, pan, &shape).await?;
        result.mcn = Some(mcn);
        result.pin_block_sent = pin_block_sent;
        if fault == Some(TerminalFault::PowerAwaitingReply) {
            // The request is on the wire before the power goes.
            if let Some(link) = &self.link {
                let _ = link.flushed().await;
            }
            result.terminal_fault = fault;
            return Ok(self.lose_power_before_reply(result).await);
        }
        let Some(reply) = self.await_reply().await? else {
            tracing::warn!("no transaction reply in time: host timeout");
            result.outcome = Outcome::Timeout;
            return Ok(self
                .finish(result, Some(Physical::nothing(Reported::NoReply)))
                .await);
        };
        result.tsn = Some(reply.tsn);
        result.screen = Some(reply.screen.clone());
        if let Err(reason) = self.check_reply(&reply, mcn, customer.kind).await {
            result.outcome = Outcome::ReplyRejected {
                reason: reason.to_owned(),
            };
            return Ok(self
                .finish(result, Some(Physical::nothing(Reported::ReplyRejected)))
                .await);
        }
        let done = self.perform(&reply, customer).await;
        self.close_after_reply(&reply.next_state).await;
        result.outcome = done.outcome;
        result.notes_dispensed = done.notes;
        result.dispensed_minor = done.dispensed_minor;
        result.deposited_minor = done.deposited_minor;
        result.terminal_fault = done.fault;
        Ok(self.finish(result, Some(done.physical)).await)
    }

    /// Power fails before the terminal has a reply to act on: nothing moves, the socket drops.
    async fn lose_power_before_reply(&mut self, mut result: CustomerOutcome) -> CustomerOutcome {
        tracing::warn!(fault = ?result.terminal_fault, "power loss before the reply: connection dropped");
        self.power_off().await;
        result.outcome = Outcome::PowerLoss { notes_left: false };
        self.finish(result, Some(Physical::nothing(Reported::PowerLoss)))
            .await
    }

    /// Counts the customer and, for a withdrawal or deposit the terminal started (`physical`
    /// given), appends its truth record.
    async fn finish(&self, result: CustomerOutcome, physical: Option<Physical>) -> CustomerOutcome {
        tracing::info!(
            outcome = %result.outcome,
            dispensed_minor = result.dispensed_minor,
            deposited_minor = result.deposited_minor,
            "customer done"
        );
        let record = physical
            .filter(|_| result.kind != Kind::BalanceInquiry)
            .map(|p| TruthRecord {
                luno: self.luno.clone(),
                seq: 0,
                kind: result.kind,
                tsn: result.tsn,
                mcn: result.mcn,
                requested_minor: result.requested_minor,
                fault: result.terminal_fault.clone(),
                reported: p.reported,
                notes_picked: p.picked,
                notes_diverted: p.diverted,
                notes_delivered: result.notes_dispensed.clone(),
                dispensed_minor: result.dispensed_minor,
                deposited_minor: result.deposited_minor,
            });
        self.shared
            .with(|t| {
                t.customer_done(&result.outcome, result.terminal_fault.is_some());
                if let Some(r) = record {
                    t.record_truth(r);
                }
            })
            .await;
        result
    }

    /// What the customer's request will be: scripted from the customer, or (state-table mode)
    /// what the downloaded state table makes of the customer's keys. `None`: the customer left
    /// the table at a close state before any request (cancelled).
    async fn request_shape(
        &mut self,
        customer: &Customer,
    ) -> Result<Option<RequestShape>, AtmError> {
        let codes = &self.profile.operation_codes;
        if !self.options.state_table {
            return Ok(Some(RequestShape {
                kind: customer.kind,
                operation_code: codes.for_kind(customer.kind.transaction_kind()).to_owned(),
                amount_minor: Some(match customer.kind {
                    Kind::BalanceInquiry => 0,
                    _ => customer.amount_minor,
                }),
                send_track2: true,
                send_pin: true,
            }));
        }
        let states = self.shared.with(|t| t.config.states.clone()).await;
        let amount_len = self.profile.dialect.amount_len;
        let keys = match &customer.keys {
            Some(keys) => keys.clone(),
            None => {
                let operation_code = codes.for_kind(customer.kind.transaction_kind()).to_owned();
                let amount_minor = match customer.kind {
                    Kind::BalanceInquiry => 0,
                    _ => customer.amount_minor,
                };
                state_machine::keys_for(&states, amount_len, &operation_code, amount_minor).ok_or(
                    AtmError::NoKeysFor {
                        kind: customer.kind,
                        operation_code,
                        amount_minor,
                    },
                )?
            }
        };
        let mut machine = StateMachine::new(&states, amount_len);
        let mut pressed: std::collections::VecDeque<Key> = keys.into();
        let end = machine.run_customer(&mut pressed);
        let trace = machine.trace.clone();
        tracing::info!(states = ?trace.states, "state table run");
        self.last_flow = Some(trace);
        match end? {
            FlowEnd::Closed { state } => {
                tracing::info!(state = %state, "close state before a transaction request");
                Ok(None)
            }
            FlowEnd::Request(plan) => {
                let b = &plan.buffers;
                let operation_code = if plan.send_operation_code {
                    b.operation_code()
                } else {
                    " ".repeat(8)
                };
                let kind = match codes.kind_of(&operation_code) {
                    Some(firmware_profiles::TransactionKind::Withdrawal) => Kind::Withdrawal,
                    Some(firmware_profiles::TransactionKind::Deposit) => Kind::Deposit,
                    Some(firmware_profiles::TransactionKind::BalanceInquiry) => {
                        Kind::BalanceInquiry
                    }
                    None => customer.kind,
                };
                Ok(Some(RequestShape {
                    kind,
                    operation_code,
                    amount_minor: plan.send_amount.then(|| b.amount_minor()),
                    send_track2: plan.send_track2 && b.card_read,
                    send_pin: plan.send_pin && b.pin_entered,
                }))
            }
        }
    }

    /// State-table mode: the reply's next state, followed to the close state (logged; a table
    /// that does not lead to a close is a warning, the money has already moved).
    async fn close_after_reply(&mut self, next_state: &str) {
        if !self.options.state_table {
            return;
        }
        let states = self.shared.with(|t| t.config.states.clone()).await;
        let mut machine = StateMachine::new(&states, self.profile.dialect.amount_len);
        let closed = machine.after_reply(next_state);
        match &closed {
            Ok(state) => tracing::info!(close = %state, "customer session closed"),
            Err(e) => {
                tracing::warn!(error = %e, next_state, "the reply's next state does not close")
            }
        }
        let trace = self.last_flow.get_or_insert_with(FlowTrace::default);
        trace.states.extend(machine.trace.states);
        trace.screens.extend(machine.trace.screens);
    }

    /// The states and screens the last customer went through, the reply's close state included
    /// (state-table mode; `None` otherwise).
    pub fn last_flow(&self) -> Option<&FlowTrace> {
        self.last_flow.as_ref()
    }

    /// Whether the terminal serves now, waiting up to `wait_in_service_ms` for it to.
    async fn wait_serving(&self) -> bool {
        let serving =
            |s: &TerminalStatus| s.connected && s.mode == ServiceMode::InService && !s.supervisor;
        if serving(&self.status.borrow()) {
            return true;
        }
        let mut status = self.status.clone();
        let wait = Duration::from_millis(self.options.wait_in_service_ms);
        let waited = tokio::time::timeout(wait, status.wait_for(serving))
            .await
            .is_ok_and(|r| r.is_ok());
        waited
    }

    /// Sends the `11` and marks the terminal as waiting for its reply; returns the MCN and
    /// whether PIN buffer A carried a PIN block.
    async fn send_request(
        &mut self,
        customer: &Customer,
        pan: &Pan,
        shape: &RequestShape,
    ) -> Result<(char, bool), AtmError> {
        let link = self.link.as_mut().ok_or(AtmError::Disconnected)?;
        // A reply left over from an earlier customer is stale: never let it answer this one.
        while let Ok(stale) = link.replies.try_recv() {
            tracing::warn!(tsn = stale.tsn, "stale transaction reply dropped");
        }
        let profile = &self.profile;
        let pin = Zeroizing::new(customer.entered_pin());
        let opcode = shape.operation_code.as_str();
        let track2 = shape
            .send_track2
            .then(|| messages::track2(pan.expose(), &self.options.card_expiry_yymm));
        let amount_minor = shape.amount_minor;
        let send_pin = shape.send_pin;
        let dialect = &profile.dialect;
        let tamper = self.tamper.take();
        let (mcn, msg, pin_block_sent) = self
            .shared
            .with(|t| {
                // The PIN pad enciphers the PIN under its PIN key (none loaded: buffer empty).
                let pin_buffer = if send_pin {
                    t.epp.pin_buffer(&pin, pan).map_err(AtmError::PinEntry)?
                } else {
                    None
                };
                let pin_block_sent = pin_buffer.is_some();
                let mcn = t.next_mcn();
                let mut msg = messages::transaction_request(RequestFields {
                    luno: &t.luno,
                    mcn,
                    track2,
                    operation_code: opcode,
                    amount_minor,
                    pin_buffer,
                    last_txn: dialect.last_txn_status.then(|| t.last_txn.clone()),
                });
                let mut mcn = mcn;
                if let TerminalMessage::TransactionRequest(req) = &mut msg {
                    t.authenticate_request(req).map_err(AtmError::Mac)?;
                    if let Some(change) = &tamper {
                        tracing::warn!(change = ?change, "request changed after it was MACed");
                        change.apply(req, t.last_request.as_ref());
                        // A replayed request is answered as the old one was: its MCN and TVN.
                        mcn = req.mcn;
                        if req.tvn.is_some() && t.awaiting_tvn.is_some() {
                            t.awaiting_tvn = req.tvn.clone();
                        }
                    }
                    t.last_request = Some(req.clone());
                }
                t.awaiting = Some(mcn);
                Ok::<_, AtmError>((mcn, msg, pin_block_sent))
            })
            .await?;
        tracing::info!(mcn = %mcn, pin_block_sent, "transaction request");
        if let Err(e) = link.send(&msg, dialect).await {
            self.shared.with(|t| t.awaiting = None).await;
            return Err(e);
        }
        Ok((mcn, pin_block_sent))
    }

    /// The reply, or `None` after the host reply timer (late replies are then rejected).
    async fn await_reply(&mut self) -> Result<Option<TransactionReply>, AtmError> {
        let timeout_ms = self
            .options
            .host_reply_timeout_ms
            .unwrap_or(self.profile.timers.host_reply_ms);
        let link = self.link.as_mut().ok_or(AtmError::Disconnected)?;
        match tokio::time::timeout(Duration::from_millis(timeout_ms), link.replies.recv()).await {
            Ok(Some(r)) => Ok(Some(r)),
            Ok(None) => Err(AtmError::Disconnected),
            Err(_) => {
                // A reply handed over while the timer fired is as late as one that comes later.
                let mut late = Vec::new();
                self.shared
                    .with(|t| {
                        t.awaiting = None;
                        while let Ok(r) = link.replies.try_recv() {
                            late.push(late_reply(t, &r));
                        }
                    })
                    .await;
                for msg in late {
                    let _ = link.send(&msg, &self.profile.dialect).await;
                }
                Ok(None)
            }
        }
    }

    /// Checks a reply before acting on it; rejects it on the wire and returns the reason if bad.
    async fn check_reply(
        &mut self,
        r: &TransactionReply,
        mcn: char,
        kind: Kind,
    ) -> Result<(), &'static str> {
        // In MAC mode nothing in a reply is believed before its MAC and TVN are.
        let mac = self.shared.with(|t| t.check_reply_mac(r)).await;
        let reason = if let Err(why) = mac {
            self.shared
                .with(|t| t.replies_rejected_for_mac = t.replies_rejected_for_mac.saturating_add(1))
                .await;
            Some(why)
        } else if r.mcn != mcn {
            Some(reason::BAD_MCN)
        } else {
            match (r.function, kind) {
                (f, Kind::Withdrawal) if f.dispenses() => self
                    .shared
                    .with(|t| t.cassettes.check_mix(&r.notes_to_dispense))
                    .await
                    .err()
                    .map(|e| {
                        tracing::warn!(error = ?e, "note mix cannot be dispensed");
                        reason::BAD_DISPENSE_MIX
                    }),
                (FunctionId::DepositAndPrint { .. }, Kind::Deposit) => None,
                (
                    FunctionId::DisplayAndPrint { .. }
                    | FunctionId::NextStateAndPrint
                    | FunctionId::PrintImmediate,
                    _,
                ) => None,
                _ => Some(reason::BAD_FUNCTION),
            }
        };
        let Some(reason) = reason else {
            return Ok(());
        };
        tracing::warn!(reason, tsn = r.tsn, reply_mcn = %r.mcn, "transaction reply rejected");
        let msg = self
            .shared
            .with(|t| {
                t.reply_rejected(r.tsn);
                t.command_rejected();
                messages::reject(&t.luno, &t.dialect, reason)
            })
            .await;
        self.send_status(&msg).await;
        Err(reason)
    }

    /// Does what an accepted reply says and reports it.
    async fn perform(&mut self, r: &TransactionReply, customer: &Customer) -> Done {
        self.shared.with(|t| t.reply_processed(r.tsn)).await;
        let done = |outcome| Done {
            outcome,
            notes: Vec::new(),
            dispensed_minor: 0,
            deposited_minor: 0,
            fault: None,
            physical: Physical::nothing(Reported::Ready),
        };
        match r.function {
            f if f.dispenses() => match &customer.behaviour {
                Behaviour::TerminalFault(fault) if !fault.before_reply() => {
                    self.faulty_dispense(r, fault).await
                }
                b => self.dispense(r, b).await,
            },
            FunctionId::DepositAndPrint { .. } => {
                let amount = customer.amount_minor;
                self.shared.with(|t| t.deposit(amount)).await;
                self.ready_after_reply(r.tsn, &[]).await;
                Done {
                    deposited_minor: amount,
                    ..done(Outcome::Approved)
                }
            }
            _ => {
                self.ready_after_reply(r.tsn, &[]).await;
                done(self.classify_screen(&r.screen, customer.kind))
            }
        }
    }

    /// A display reply's outcome, from the profile's screen numbers.
    fn classify_screen(&self, screen: &str, kind: Kind) -> Outcome {
        let s = &self.profile.screens;
        let declined = |reason| Outcome::Declined {
            screen: screen.to_owned(),
            reason,
        };
        if screen == s.balance && kind == Kind::BalanceInquiry {
            Outcome::Approved
        } else if screen == s.host_unavailable {
            Outcome::HostUnavailable {
                screen: screen.to_owned(),
            }
        } else if screen == s.insufficient_funds {
            declined(DeclineReason::InsufficientFunds)
        } else if screen == s.wrong_pin {
            declined(DeclineReason::WrongPin)
        } else if screen == s.pin_tries_exceeded {
            declined(DeclineReason::PinTriesExceeded)
        } else if screen == s.cannot_dispense_amount {
            declined(DeclineReason::CannotDispenseAmount)
        } else if screen == s.declined {
            declined(DeclineReason::Declined)
        } else {
            declined(DeclineReason::Unknown)
        }
    }

    /// The dispense, as the customer's behaviour lets it happen.
    async fn dispense(&mut self, r: &TransactionReply, behaviour: &Behaviour) -> Done {
        let wanted = r.notes_to_dispense.clone();
        let target = match behaviour {
            // Faults before the reply were dealt with before it came.
            Behaviour::Normal | Behaviour::TerminalFault(_) => wanted.clone(),
            Behaviour::CancelAtCashSlot => vec![0; wanted.len()],
            Behaviour::PartialDispense(p) => partial(&wanted, p),
            Behaviour::PowerLossDuringDispense { notes_leave } => {
                let notes = if *notes_leave {
                    wanted.clone()
                } else {
                    vec![0; wanted.len()]
                };
                return self.power_loss(&notes).await;
            }
        };
        let (before, taken, value) = self
            .shared
            .with(|t| {
                let before = t.cassettes.levels();
                let (taken, value) = t.dispense(&target);
                (before, taken, value)
            })
            .await;
        let (outcome, reported) = if taken == wanted {
            self.ready_after_reply(r.tsn, &taken).await;
            (Outcome::Approved, Reported::Ready)
        } else {
            let (code, outcome) = if taken.iter().all(|&n| n == 0) {
                let o = match behaviour {
                    Behaviour::CancelAtCashSlot => Outcome::Cancelled,
                    _ => Outcome::ShortDispense,
                };
                (DispenseOutcome::NoneDispensed, o)
            } else {
                (DispenseOutcome::ShortDispense, Outcome::ShortDispense)
            };
            let msg = self
                .shared
                .with(|t| {
                    t.reply_finished(LastStatus::Error, &taken);
                    messages::dispense_fault(&t.luno, code, taken.clone(), &t.cassettes)
                })
                .await;
            tracing::warn!(code = %code.code(), notes = ?taken, "dispense fault reported");
            self.send_status(&msg).await;
            let reported = match code {
                DispenseOutcome::NoneDispensed => Reported::NothingDispensed,
                _ => Reported::ShortDispense,
            };
            (outcome, reported)
        };
        self.report_low_supplies(&before, &taken).await;
        Done {
            outcome,
            physical: Physical::delivered(reported, &taken),
            notes: taken,
            dispensed_minor: value,
            deposited_minor: 0,
            fault: None,
        }
    }

    /// Power fails mid-dispense: `notes` leave (each capped by what the cassette holds), nothing
    /// is reported, the socket drops.
    async fn power_loss(&mut self, notes: &[u32]) -> Done {
        let (taken, value) = self
            .shared
            .with(|t| {
                let (taken, value) = t.dispense(notes);
                // No status was issued; the notes say what really happened.
                t.reply_finished(LastStatus::None, &taken);
                (taken, value)
            })
            .await;
        let notes_left = taken.iter().any(|&n| n > 0);
        tracing::warn!(notes_left, notes = ?taken, "power loss during dispense: connection dropped");
        self.power_off().await;
        Done {
            outcome: Outcome::PowerLoss { notes_left },
            physical: Physical::delivered(Reported::PowerLoss, &taken),
            notes: taken,
            dispensed_minor: value,
            deposited_minor: 0,
            fault: None,
        }
    }

    /// `12 … E` when a cassette went low or out with this dispense.
    async fn report_low_supplies(&self, before: &[SupplyLevel], taken: &[u32]) {
        let msg = self
            .shared
            .with(|t| {
                let after = t.cassettes.levels();
                let worse = before.iter().zip(&after).any(|(b, a)| {
                    matches!(
                        (b, a),
                        (SupplyLevel::Good, SupplyLevel::Low | SupplyLevel::Out)
                            | (SupplyLevel::Low, SupplyLevel::Out)
                    )
                });
                worse.then(|| messages::supplies_report(&t.luno, taken.to_vec(), &t.cassettes))
            })
            .await;
        if let Some(msg) = msg {
            tracing::info!("cassette supplies changed: unsolicited E status");
            self.send_status(&msg).await;
        }
    }

    /// Good termination: ready (`9`/`B`), and `notes` (empty unless dispensed) become the last
    /// transaction's.
    async fn ready_after_reply(&self, tsn: u16, notes: &[u32]) {
        let msg = self
            .shared
            .with(|t| {
                t.reply_finished(LastStatus::Good, notes);
                messages::ready_after_reply(&t.luno, &t.dialect, tsn)
            })
            .await;
        self.send_status(&msg).await;
    }

    /// Statuses after an accepted reply are best effort: if the agent is gone, the next request's
    /// last transaction status (or the supply counters) tells it what happened.
    async fn send_status(&self, msg: &TerminalMessage) {
        let sent = match &self.link {
            Some(link) => link.send(msg, &self.profile.dialect).await,
            None => Err(AtmError::Disconnected),
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "status not sent");
        }
    }

    /// Supervisor mode entered (`12 … P21`): customers are turned away until it is left.
    pub async fn enter_supervisor(&mut self) -> Result<(), AtmError> {
        self.supervisor(true).await
    }

    /// Supervisor mode left (`12 … P20`).
    pub async fn exit_supervisor(&mut self) -> Result<(), AtmError> {
        self.supervisor(false).await
    }

    async fn supervisor(&mut self, entered: bool) -> Result<(), AtmError> {
        let link = self.link.as_ref().ok_or(AtmError::Disconnected)?;
        let luno = self
            .shared
            .with(|t| {
                t.supervisor = entered;
                t.luno.clone()
            })
            .await;
        link.send(&messages::supervisor(&luno, entered), &self.profile.dialect)
            .await
    }

    /// What really happened in every withdrawal and deposit so far, in order: what left the
    /// cassettes, what reached the customer, what was taken in, and what the host was told (a
    /// copy; see [`crate::truth`]).
    pub async fn truth(&self) -> Vec<TruthRecord> {
        self.shared.with(|t| t.truth.records()).await
    }

    /// Money and customers so far (a snapshot; cheap).
    pub fn counters(&self) -> TerminalCounters {
        self.counters.borrow().clone()
    }

    /// Mode, connection and downloaded configuration (a snapshot; cheap).
    pub fn status(&self) -> TerminalStatus {
        self.status.borrow().clone()
    }

    /// Waits until the terminal is in `mode` (e.g. after the agent sends go-out-of-service).
    pub async fn wait_for_mode(&self, mode: ServiceMode, timeout_ms: u64) -> bool {
        let mut status = self.status.clone();
        let waited = tokio::time::timeout(
            Duration::from_millis(timeout_ms),
            status.wait_for(|s| s.mode == mode),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        waited
    }

    /// Changes the next transaction request after the terminal MACed it, as an attacker on the
    /// line would (tests of the host's MAC check).
    pub fn tamper_next_request(&mut self, change: RequestTamper) {
        self.tamper = Some(change);
    }

    /// Sends the next solicited status (in MAC mode) with `mac` instead of its own MAC, as an
    /// attacker on the line would forge a report (tests of the host's MAC check).
    pub async fn tamper_next_status_mac(&self, mac: &str) {
        let mac = mac.to_owned();
        self.shared.with(|t| t.tamper_status_mac = Some(mac)).await;
    }

    /// The check value of the MAC key the host loaded, never the key (a snapshot; cheap).
    pub fn mac_key_kcv(&self) -> Option<Kcv> {
        self.status.borrow().mac_key_kcv
    }

    /// Waits until the host loaded a MAC key (or `timeout_ms` passed); its check value.
    pub async fn wait_for_mac_key(&self, timeout_ms: u64) -> Option<Kcv> {
        let mut status = self.status.clone();
        let waited = tokio::time::timeout(
            Duration::from_millis(timeout_ms),
            status.wait_for(|s| s.mac_key_kcv.is_some()),
        )
        .await;
        match waited {
            Ok(Ok(s)) => s.mac_key_kcv,
            _ => None,
        }
    }

    /// Whether the PIN pad holds a PIN key loaded by the host (a snapshot; cheap).
    pub fn has_pin_key(&self) -> bool {
        self.status.borrow().pin_key_kcv.is_some()
    }

    /// The check value of the PIN key the host loaded, never the key (a snapshot; cheap).
    pub fn pin_key_kcv(&self) -> Option<Kcv> {
        self.status.borrow().pin_key_kcv
    }

    /// Waits until the host loaded a PIN key (or `timeout_ms` passed); its check value.
    pub async fn wait_for_pin_key(&self, timeout_ms: u64) -> Option<Kcv> {
        let mut status = self.status.clone();
        let waited = tokio::time::timeout(
            Duration::from_millis(timeout_ms),
            status.wait_for(|s| s.pin_key_kcv.is_some()),
        )
        .await;
        match waited {
            Ok(Ok(s)) => s.pin_key_kcv,
            _ => None,
        }
    }

    /// **Test and audit use only.** The clear PIN key the host loaded, so a leak scan can look
    /// for it in logs, journals and files, or a test can decipher a PIN block. A real terminal
    /// never lets it out of the PIN pad.
    pub async fn terminal_pin_key_for_audit(&self) -> Option<Zeroizing<Vec<u8>>> {
        self.shared.with(|t| t.epp.pin_key_for_audit()).await
    }

    /// Everything the agent downloaded.
    pub async fn stored_config(&self) -> StoredConfig {
        self.shared.with(|t| t.config.clone()).await
    }

    pub fn luno(&self) -> &str {
        &self.luno
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Whether the TCP connection to the agent is up.
    pub fn is_connected(&self) -> bool {
        self.status.borrow().connected
    }

    /// Drops the connection (as a power-off would) and ends the background task.
    pub async fn shutdown(mut self) {
        self.power_off().await;
    }
}

/// Notes that leave in a short dispense.
fn partial(wanted: &[u32], p: &Partial) -> Vec<u32> {
    match p {
        Partial::Notes(v) => wanted
            .iter()
            .enumerate()
            .map(|(i, &w)| v.get(i).copied().unwrap_or(0).min(w))
            .collect(),
        Partial::Percent(pct) => {
            let pct = u64::from((*pct).min(100));
            let mut notes: Vec<u32> = wanted
                .iter()
                .map(|&w| (u64::from(w) * pct / 100) as u32)
                .collect();
            // A short dispense of several notes delivers at least one, as dispensers do when
            // they jam part-way; a single note either leaves or not.
            let total: u32 = wanted.iter().sum();
            if pct > 0 && total > 1 && notes.iter().all(|&n| n == 0) {
                if let Some(i) = wanted.iter().position(|&w| w > 0) {
                    notes[i] = 1;
                }
            }
            notes
        }
    }
}

fn check_luno(luno: &str, dialect: &Dialect) -> Result<(), AtmError> {
    if luno.len() != dialect.luno_len || !luno.bytes().all(|b| (0x20..0x7F).contains(&b)) {
        return Err(AtmError::Config(format!(
            "LUNO {luno:?} must be {} printable characters for this dialect",
            dialect.luno_len
        )));
    }
    Ok(())
}

fn check_config_id(id: &str) -> Result<(), AtmError> {
    if id.len() != 4 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AtmError::Config(format!(
            "config id {id:?} must be 4 digits"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_notes_are_capped_and_percent_keeps_one_note_when_it_can() {
        assert_eq!(
            partial(&[0, 2, 1, 0], &Partial::Notes(vec![5, 1])),
            vec![0, 1, 0, 0]
        );
        assert_eq!(
            partial(&[0, 1, 1, 0], &Partial::Percent(50)),
            vec![0, 1, 0, 0]
        );
        assert_eq!(
            partial(&[4, 2, 0, 0], &Partial::Percent(50)),
            vec![2, 1, 0, 0]
        );
        assert_eq!(partial(&[0, 0, 1, 0], &Partial::Percent(50)), vec![0; 4]);
    }
}
