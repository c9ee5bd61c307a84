//! A customer at the terminal: transaction request `11` → ISO 8583 to the switch → transaction
//! reply `4` → the terminal's status → an advice in the queue.
//!
//! - Withdrawal: the note mix comes first (an amount the cassettes cannot make is declined without
//!   asking the switch); 0100 → on approval the dispense is recorded as in doubt (durably) *before*
//!   the terminal is told to dispense; the status settles it: ready → 0220 for the full amount,
//!   short dispense → 0220 for what left, nothing → 0420, unknown → stays in doubt for an operator.
//!   If the 0100 may have reached the switch but no answer came (timeout, link lost), the customer
//!   is declined and a 0420 is queued, so a late approval never strands a hold.
//! - Deposit: 0200 online when the switch is reachable; taken anyway when it is not, and advised
//!   (0200 from the queue) once the terminal confirms it took the cash.
//! - Balance inquiry: 0100 with processing code 31; the balance comes back in field 54.
//!
//! While the switch is unreachable, withdrawals and inquiries are declined at once with the
//! profile's "host unavailable" screen.

use std::time::Duration;

use firmware_profiles::TransactionKind;
use protocols::iso8583::Message;
use protocols::ndc::{
    DeviceState, FunctionId, HostMessage, PrinterData, SolicitedStatusInfo, TerminalMessage,
    TransactionReply, TransactionRequest,
};
use protocols::types::Pan;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::Instrument;

use super::keys::{PinPathError, ZonePinBlock};
use super::session::{Session, SessionEnd};
use crate::adapters::state_store::{PendingDispense, Purpose};
use crate::adapters::uplink::UplinkError;
use crate::domain::advice::{Advice, AdviceKind, Original};
use crate::domain::dispense::{self, Settlement};
use crate::domain::mix::{self, CassetteStock};

const WITHDRAWAL: &str = "011000";
const DEPOSIT: &str = "210010";
const INQUIRY: &str = "311000";

/// How the reply looks: what the terminal does and shows.
struct Reply {
    approved: bool,
    notes: Vec<u32>,
    function: FunctionId,
    screen: String,
    screen_update: String,
    receipt: String,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn customer(&mut self, req: TransactionRequest) -> Result<(), SessionEnd> {
        self.svc.registry.update(self.tid(), |v| v.customers += 1);
        // After a power failure the terminal's word on its last transaction (status `0` when it
        // could not send one) settles a dispense still in doubt with that TSN.
        if let Some(last) = &req.last_transaction_status {
            self.settle_after_power_failure(last.tsn, &last.notes_dispensed)
                .await?;
        }
        let Some(pan) = req.card().map(|t| t.pan().clone()) else {
            tracing::warn!(
                terminal = self.tid(),
                "transaction request without readable track 2: declined"
            );
            let reply = self.decline(&self.profile.screens.declined.clone(), "CARD NOT READABLE");
            return self.answer(&req, reply, 0).await;
        };
        let span =
            tracing::info_span!("customer", terminal = %self.terminal.terminal_id, pan = %pan);
        async {
            match self.profile.operation_codes.kind_of(&req.operation_code) {
                Some(TransactionKind::Withdrawal) => self.withdrawal(&req, &pan).await,
                Some(TransactionKind::Deposit) => self.deposit(&req, &pan).await,
                Some(TransactionKind::BalanceInquiry) => self.inquiry(&req, &pan).await,
                None => {
                    tracing::warn!(opcode = %req.operation_code, "operation code not in the profile: declined");
                    let reply = self.decline(&self.profile.screens.declined.clone(), "TRANSACTION NOT SUPPORTED");
                    self.answer(&req, reply, 0).await
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn withdrawal(&mut self, req: &TransactionRequest, pan: &Pan) -> Result<(), SessionEnd> {
        let amount = req.amount.unwrap_or(0);
        let stock: Vec<CassetteStock> = self
            .cassettes
            .iter()
            .map(|c| CassetteStock {
                cassette_type: c.cassette_type,
                denomination_minor: c.denomination_minor,
                notes: c.notes,
            })
            .collect();
        let notes = match mix::mix(
            amount,
            &stock,
            self.profile.dialect.cassette_types,
            self.svc.max_notes,
        ) {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(amount, error = %e, "amount cannot be dispensed");
                let reply = self.decline(
                    &self.profile.screens.cannot_dispense_amount.clone(),
                    "AMOUNT NOT AVAILABLE",
                );
                return self.answer(req, reply, 0).await;
            }
        };
        if !self.svc.uplink.is_up() {
            return self.host_unavailable(req).await;
        }
        let pin = match self.pin_for(req, pan) {
            Ok(p) => p,
            Err(reply) => return self.answer(req, reply, 0).await,
        };
        let (pending, outcome) = self
            .authorize(
                Purpose::Withdrawal,
                "0100",
                WITHDRAWAL,
                pan,
                amount,
                notes.clone(),
                pin,
            )
            .await?;
        match outcome {
            Ok(resp) if resp.get_str(39) == Some("00") => {
                let reply = Reply {
                    approved: true,
                    notes,
                    function: FunctionId::DispenseAndPrint { code: '2' },
                    screen: self.profile.screens.dispense.clone(),
                    screen_update: String::new(),
                    receipt: format!(
                        "WITHDRAWAL {}\nAUTH {}",
                        money(amount),
                        resp.get_str(38).unwrap_or("")
                    ),
                };
                self.answer(req, reply, pending.tsn).await?;
                self.await_outcome(pending).await
            }
            Ok(resp) => {
                let code = resp.get_str(39).unwrap_or("96").to_owned();
                tracing::info!(%code, "withdrawal declined by the switch");
                self.forget_pending().await?;
                let reply = self.decline_for(&code);
                self.answer(req, reply, 0).await
            }
            Err(e) => self.authorization_failed(req, e, &pending).await,
        }
    }

    async fn deposit(&mut self, req: &TransactionRequest, pan: &Pan) -> Result<(), SessionEnd> {
        let amount = req.amount.unwrap_or(0);
        if amount == 0 {
            let reply = self.decline(&self.profile.screens.declined.clone(), "INVALID AMOUNT");
            return self.answer(req, reply, 0).await;
        }
        let mut pending = if self.svc.uplink.is_up() {
            let pin = match self.pin_for(req, pan) {
                Ok(p) => p,
                Err(reply) => return self.answer(req, reply, 0).await,
            };
            let (pending, outcome) = self
                .authorize(
                    Purpose::OnlineDeposit,
                    "0200",
                    DEPOSIT,
                    pan,
                    amount,
                    Vec::new(),
                    pin,
                )
                .await?;
            match outcome {
                Ok(resp) if resp.get_str(39) == Some("00") => Some(pending),
                Ok(resp) => {
                    self.forget_pending().await?;
                    let reply = self.decline_for(resp.get_str(39).unwrap_or("96"));
                    return self.answer(req, reply, 0).await;
                }
                Err(UplinkError::Down) => None,
                Err(e) => return self.authorization_failed(req, e, &pending).await,
            }
        } else {
            None
        };
        if pending.is_none() {
            // The switch is unreachable: take the deposit and advise it once the cash is in.
            let (stan, _) = self.next_key().await?;
            let reference = format!("{}:{stan:06}", self.tid());
            self.svc
                .state
                .put_card(&reference, pan)
                .await
                .map_err(storage)?;
            pending = Some(
                self.record_pending(
                    Purpose::StoredDeposit,
                    DEPOSIT,
                    amount,
                    Vec::new(),
                    Some(reference),
                )
                .await?,
            );
        }
        let Some(pending) = pending else {
            return Ok(());
        };
        let reply = Reply {
            approved: true,
            notes: Vec::new(),
            function: FunctionId::DepositAndPrint { code: '1' },
            screen: self.profile.screens.deposit.clone(),
            screen_update: String::new(),
            receipt: format!("DEPOSIT {}", money(amount)),
        };
        self.answer(req, reply, pending.tsn).await?;
        self.await_outcome(pending).await
    }

    /// Records, durably and *before* the request leaves, what the terminal is about to be asked
    /// to do. If the agent dies anywhere after this, the record survives: when the terminal comes
    /// back, its TSN tells whether it ever processed the reply, and the transaction is settled
    /// (completed, or reversed so no hold or credit is left behind).
    async fn record_pending(
        &mut self,
        purpose: Purpose,
        processing_code: &str,
        amount: u64,
        notes: Vec<u32>,
        card_ref: Option<String>,
    ) -> Result<PendingDispense, SessionEnd> {
        let (stan, transmitted_at) = self.next_key().await?;
        let tsn = self.svc.state.next_tsn(self.tid()).await.map_err(storage)?;
        let pending = PendingDispense {
            purpose,
            card_ref,
            tsn,
            stan,
            transmitted_at,
            processing_code: processing_code.into(),
            amount_minor: amount,
            currency: self.profile.currency.numeric,
            notes,
            since_ms: crate::clock::now_ms(),
        };
        self.svc
            .state
            .put_pending(self.tid(), &pending)
            .await
            .map_err(storage)?;
        self.svc
            .registry
            .update(self.tid(), |v| v.dispense_in_doubt = true);
        Ok(pending)
    }

    /// Records the transaction (see `record_pending`), then asks the switch.
    #[allow(clippy::too_many_arguments)]
    async fn authorize(
        &mut self,
        purpose: Purpose,
        mti: &str,
        processing_code: &str,
        pan: &Pan,
        amount: u64,
        notes: Vec<u32>,
        pin: Option<ZonePinBlock>,
    ) -> Result<(PendingDispense, Result<Message, UplinkError>), SessionEnd> {
        let pending = self
            .record_pending(purpose, processing_code, amount, notes, None)
            .await?;
        let msg = self.request_message(
            mti,
            processing_code,
            pending.stan,
            &pending.transmitted_at,
            pan,
            amount,
            pin,
        )?;
        let outcome = self
            .svc
            .uplink
            .request(&msg, self.svc.authorization_timeout)
            .await;
        Ok((pending, outcome))
    }

    /// The record is done with (declined, or settled and its advice queued).
    async fn forget_pending(&mut self) -> Result<(), SessionEnd> {
        self.svc
            .state
            .clear_pending(self.tid())
            .await
            .map_err(storage)?;
        self.svc
            .registry
            .update(self.tid(), |v| v.dispense_in_doubt = false);
        Ok(())
    }

    async fn inquiry(&mut self, req: &TransactionRequest, pan: &Pan) -> Result<(), SessionEnd> {
        if !self.svc.uplink.is_up() {
            return self.host_unavailable(req).await;
        }
        let pin = match self.pin_for(req, pan) {
            Ok(p) => p,
            Err(reply) => return self.answer(req, reply, 0).await,
        };
        let (stan, at) = self.next_key().await?;
        let msg = self.request_message("0100", INQUIRY, stan, &at, pan, 0, pin)?;
        let reply = match self
            .svc
            .uplink
            .request(&msg, self.svc.authorization_timeout)
            .await
        {
            Ok(resp) if resp.get_str(39) == Some("00") => {
                let available = resp
                    .additional_amounts()
                    .ok()
                    .flatten()
                    .and_then(|a| a.into_iter().find(|x| x.amount_type == 2))
                    .map(|a| match a.amount.sign {
                        protocols::iso8583::Sign::Credit => money(a.amount.minor),
                        protocols::iso8583::Sign::Debit => format!("-{}", money(a.amount.minor)),
                    })
                    .unwrap_or_else(|| "-".into());
                Reply {
                    approved: true,
                    notes: Vec::new(),
                    function: FunctionId::DisplayAndPrint { code: '3' },
                    screen: self.profile.screens.balance.clone(),
                    screen_update: format!("AVAILABLE {available}"),
                    receipt: format!("AVAILABLE BALANCE {available}"),
                }
            }
            Ok(resp) => self.decline_for(resp.get_str(39).unwrap_or("96")),
            Err(e) => {
                tracing::warn!(error = %e, "balance inquiry unanswered");
                self.decline(
                    &self.profile.screens.host_unavailable.clone(),
                    "SERVICE UNAVAILABLE",
                )
            }
        };
        self.answer(req, reply, 0).await
    }

    /// The switch did not answer. If it may have approved, the transaction is reversed (the
    /// customer is declined and nothing was dispensed or taken); if the request never left, it is
    /// simply forgotten.
    async fn authorization_failed(
        &mut self,
        req: &TransactionRequest,
        e: UplinkError,
        pending: &PendingDispense,
    ) -> Result<(), SessionEnd> {
        tracing::warn!(error = %e, "authorization unanswered: customer declined");
        if e.maybe_delivered() {
            self.settle(pending, Settlement::Reverse).await?;
        } else {
            self.forget_pending().await?;
        }
        self.host_unavailable(req).await
    }

    async fn host_unavailable(&mut self, req: &TransactionRequest) -> Result<(), SessionEnd> {
        let reply = self.decline(
            &self.profile.screens.host_unavailable.clone(),
            "SERVICE TEMPORARILY UNAVAILABLE",
        );
        self.answer(req, reply, 0).await
    }

    /// Waits for the terminal to say what happened to the cash, and settles it.
    async fn await_outcome(&mut self, pending: PendingDispense) -> Result<(), SessionEnd> {
        let wait = Duration::from_millis(self.profile.timers.status_after_reply_ms);
        let status = loop {
            match self.next_message(Some(wait)).await {
                Ok(TerminalMessage::SolicitedStatus(s)) => break Ok(s.info),
                Ok(TerminalMessage::UnsolicitedStatus(u))
                    if !matches!(u.device.state, DeviceState::PowerUp { .. }) =>
                {
                    tracing::info!(status = ?u.device, "unsolicited status during a dispense");
                }
                Ok(other) => {
                    // A power-up or a new request instead of the status: the outcome stays in doubt
                    // until the counters or the last transaction status tell it.
                    tracing::warn!("no status for the dispense: outcome in doubt until the terminal reports it");
                    return Box::pin(self.handle_after_doubt(other)).await;
                }
                Err(e) => break Err(e),
            }
        };
        let info = match status {
            Ok(info) => info,
            Err(e) => {
                tracing::error!(error = %e, tsn = pending.tsn, "no status after the reply: dispense in doubt");
                return Err(e);
            }
        };
        let denomination = |t: u8| self.profile.denomination(t);
        let settlement = match &info {
            SolicitedStatusInfo::Ready | SolicitedStatusInfo::ReadyAfterReply { .. } => {
                dispense::after_ready(pending.amount_minor)
            }
            SolicitedStatusInfo::DeviceFault(d) => match &d.state {
                DeviceState::CashHandler(c) => dispense::after_fault(
                    c.outcome,
                    dispense::dispensed_value(&c.notes_dispensed, denomination),
                ),
                _ => Settlement::InDoubt,
            },
            SolicitedStatusInfo::CommandReject | SolicitedStatusInfo::SpecificReject { .. } => {
                Settlement::Reverse
            }
            SolicitedStatusInfo::TerminalState(_) => Settlement::InDoubt,
        };
        tracing::info!(tsn = pending.tsn, status = ?info, ?settlement, "terminal reported the outcome");
        self.settle(&pending, settlement).await
    }

    async fn handle_after_doubt(&mut self, msg: TerminalMessage) -> Result<(), SessionEnd> {
        match msg {
            // Power-up: start-up asks the supply counters, which settle the dispense.
            TerminalMessage::UnsolicitedStatus(u) => Box::pin(self.unsolicited(u)).await,
            TerminalMessage::TransactionRequest(r) => Box::pin(self.customer(r)).await,
            _ => Ok(()),
        }
    }

    /// Settles the dispense left in doubt with transaction serial number `tsn`, from the notes the
    /// terminal says it dispensed in it (last transaction status or supply counters).
    pub(super) async fn settle_after_power_failure(
        &mut self,
        tsn: u16,
        notes: &[u32],
    ) -> Result<(), SessionEnd> {
        let Some(pending) = self.svc.state.pending(self.tid()).map_err(storage)? else {
            return Ok(());
        };
        let settlement = if pending.tsn != tsn {
            // The terminal never processed the reply for this transaction (the agent or the
            // link died first): nothing left it and nothing went in.
            tracing::warn!(
                pending_tsn = pending.tsn,
                reported_tsn = tsn,
                "terminal never acted on the reply"
            );
            Settlement::Reverse
        } else {
            match pending.purpose {
                Purpose::Withdrawal => {
                    dispense::after_power_failure(dispense::dispensed_value(notes, |t| {
                        self.profile.denomination(t)
                    }))
                }
                // The terminal processed the deposit reply: it took the cash (the supply counters
                // and the last transaction status carry no deposit detail to say otherwise).
                Purpose::OnlineDeposit | Purpose::StoredDeposit => Settlement::Complete {
                    dispensed_minor: pending.amount_minor,
                },
            }
        };
        tracing::info!(
            tsn,
            ?settlement,
            "settling the dispense left in doubt by a power failure"
        );
        self.settle(&pending, settlement).await
    }

    /// Queues the advice a settled dispense owes, then forgets the dispense.
    async fn settle(
        &mut self,
        pending: &PendingDispense,
        settlement: Settlement,
    ) -> Result<(), SessionEnd> {
        let original = Original {
            mti: if pending.processing_code == DEPOSIT {
                "0200".into()
            } else {
                "0100".into()
            },
            stan: pending.stan,
            transmitted_at: pending.transmitted_at.clone(),
        };
        let (code, amount) = (pending.processing_code.as_str(), pending.amount_minor);
        match (pending.purpose, settlement) {
            (_, Settlement::InDoubt) => {
                tracing::error!(
                    tsn = pending.tsn,
                    stan = pending.stan,
                    "dispense outcome unknown: hold kept, needs an operator"
                );
                return Ok(());
            }
            (Purpose::Withdrawal, Settlement::Complete { dispensed_minor }) => {
                self.count_dispensed(&pending.notes, dispensed_minor == pending.amount_minor);
                self.queue_advice(
                    AdviceKind::Completion,
                    code,
                    amount,
                    Some(dispensed_minor),
                    Some(original),
                    None,
                )
                .await?;
            }
            (Purpose::Withdrawal | Purpose::OnlineDeposit, Settlement::Reverse) => {
                self.queue_advice(
                    AdviceKind::Reversal,
                    code,
                    amount,
                    None,
                    Some(original),
                    None,
                )
                .await?;
            }
            (Purpose::OnlineDeposit, Settlement::Complete { .. }) => {}
            (Purpose::StoredDeposit, Settlement::Complete { .. }) => {
                self.queue_advice(
                    AdviceKind::StoredDeposit,
                    code,
                    amount,
                    None,
                    None,
                    pending.card_ref.clone(),
                )
                .await?;
            }
            (Purpose::StoredDeposit, Settlement::Reverse) => {
                if let Some(reference) = &pending.card_ref {
                    self.svc
                        .state
                        .remove_card(reference)
                        .await
                        .map_err(storage)?;
                }
            }
        }
        self.forget_pending().await
    }

    /// Takes dispensed notes off the agent's counts (exact on a full dispense; a short dispense is
    /// corrected by the next supply counters).
    fn count_dispensed(&mut self, notes: &[u32], full: bool) {
        if full {
            for (c, n) in self.cassettes.iter_mut().zip(notes) {
                c.notes = c.notes.saturating_sub(*n);
            }
        }
        let cassettes = self.cassettes.clone();
        self.svc
            .registry
            .update(self.tid(), |v| v.cassettes = cassettes);
    }

    async fn queue_advice(
        &mut self,
        kind: AdviceKind,
        processing_code: &str,
        amount: u64,
        actual: Option<u64>,
        original: Option<Original>,
        card_ref: Option<String>,
    ) -> Result<(), SessionEnd> {
        let advice = self
            .advice(kind, processing_code, amount, actual, original, card_ref)
            .await?;
        self.enqueue(advice).await
    }

    /// An advice of this terminal with its own STAN and transmission time.
    pub(super) async fn advice(
        &mut self,
        kind: AdviceKind,
        processing_code: &str,
        amount: u64,
        actual: Option<u64>,
        original: Option<Original>,
        card_ref: Option<String>,
    ) -> Result<Advice, SessionEnd> {
        let (stan, at) = self.next_key().await?;
        Ok(Advice {
            kind,
            terminal_id: self.tid().to_owned(),
            stan,
            transmitted_at: at,
            processing_code: processing_code.to_owned(),
            currency: self.profile.currency.numeric,
            amount_minor: amount,
            actual_minor: actual,
            original,
            card_ref,
            detail: None,
        })
    }

    async fn next_key(&mut self) -> Result<(u32, String), SessionEnd> {
        let stan = self
            .svc
            .state
            .next_stan(self.tid())
            .await
            .map_err(storage)?;
        Ok((stan, crate::clock::transmission_now()))
    }

    #[allow(clippy::too_many_arguments)]
    fn request_message(
        &self,
        mti: &str,
        processing_code: &str,
        stan: u32,
        at: &str,
        pan: &Pan,
        amount: u64,
        pin: Option<ZonePinBlock>,
    ) -> Result<Message, SessionEnd> {
        let enc = |e: protocols::iso8583::FieldError| SessionEnd::Encode(e.to_string());
        let mut m = Message::new(mti).map_err(enc)?;
        m.set_str(2, pan.expose()).map_err(enc)?;
        m.set_str(3, processing_code).map_err(enc)?;
        m.set_str(4, &format!("{amount:012}")).map_err(enc)?;
        m.set_str(7, at).map_err(enc)?;
        m.set_str(11, &format!("{stan:06}")).map_err(enc)?;
        m.set_str(41, &format!("{:<8}", self.terminal.terminal_id))
            .map_err(enc)?;
        m.set_str(49, &format!("{:03}", self.profile.currency.numeric))
            .map_err(enc)?;
        if let Some(pin) = pin {
            m.set_str(52, &pin.block.to_hex()).map_err(enc)?;
            m.set_str(53, &format!("{:016}", pin.zone_key_version))
                .map_err(enc)?;
        }
        Ok(m)
    }

    /// The customer's PIN, translated to the zone PIN key, or the decline to show when it cannot
    /// be (the reason is logged; no PIN data is). `None` when PINs are not handled or the terminal
    /// sent no PIN buffer (the switch decides whether the card needs one).
    fn pin_for(&self, req: &TransactionRequest, pan: &Pan) -> Result<Option<ZonePinBlock>, Reply> {
        let Some(keys) = &self.svc.keys else {
            return Ok(None);
        };
        let Some(buffer) = req.pin_buffer_a.as_ref().filter(|b| !b.expose().is_empty()) else {
            return Ok(None);
        };
        let block = buffer.to_bytes().map_err(|_| PinPathError::Buffer);
        let loaded = self.svc.state.pin_key(self.tid()).ok().flatten();
        match block.and_then(|b| keys.translate(self.tid(), loaded.map(|k| k.version), b, pan)) {
            Ok(p) => Ok(Some(p)),
            Err(e) => {
                let hint = match &e {
                    PinPathError::Store(keystore::KeyStoreError::PinBlockFormat(_)) => {
                        "the terminal's PIN pad may hold another PIN key: check its master key, then `atmctl keys rotate`"
                    }
                    PinPathError::NoZoneKey => {
                        "no zone PIN key: is the zone master key entered (`atmctl keys load-zone-master`)?"
                    }
                    PinPathError::NoTerminalKey => "the terminal has no confirmed PIN key",
                    _ => "",
                };
                tracing::warn!(target: "security", terminal = self.tid(), error = %e, hint, "PIN cannot be sent to the switch: declined");
                let s = &self.profile.screens;
                Err(match e {
                    PinPathError::Buffer | PinPathError::Store(_) => {
                        self.decline(&s.declined.clone(), "TRANSACTION DECLINED")
                    }
                    PinPathError::NoTerminalKey | PinPathError::NoZoneKey => self.decline(
                        &s.host_unavailable.clone(),
                        "SERVICE TEMPORARILY UNAVAILABLE",
                    ),
                })
            }
        }
    }

    fn decline(&self, screen: &str, receipt: &str) -> Reply {
        Reply {
            approved: false,
            notes: Vec::new(),
            function: FunctionId::DisplayAndPrint { code: '3' },
            screen: screen.to_owned(),
            screen_update: String::new(),
            receipt: receipt.to_owned(),
        }
    }

    /// The decline screen for a response code.
    fn decline_for(&self, code: &str) -> Reply {
        let s = &self.profile.screens;
        let (screen, text) = match code {
            "51" | "61" => (s.insufficient_funds.clone(), "INSUFFICIENT FUNDS"),
            "55" => (s.wrong_pin.clone(), "INCORRECT PIN"),
            "75" => (
                s.pin_tries_exceeded.clone(),
                "PIN TRIES EXCEEDED - CARD BLOCKED",
            ),
            "91" | "96" => (
                s.host_unavailable.clone(),
                "SERVICE TEMPORARILY UNAVAILABLE",
            ),
            _ => (s.declined.clone(), "TRANSACTION DECLINED"),
        };
        self.decline(&screen, text)
    }

    async fn answer(
        &mut self,
        req: &TransactionRequest,
        reply: Reply,
        tsn: u16,
    ) -> Result<(), SessionEnd> {
        let next_state = if reply.approved {
            &self.profile.next_states.approved
        } else {
            &self.profile.next_states.declined
        };
        let msg = TransactionReply {
            response_flag: None,
            luno: self.terminal.luno.clone(),
            sequence: req.tvn.clone().unwrap_or_default(),
            next_state: next_state.clone(),
            notes_to_dispense: reply.notes,
            tsn,
            function: reply.function,
            screen: reply.screen,
            screen_update: reply.screen_update,
            mcn: req.mcn,
            card_flag: '0',
            printer: vec![PrinterData {
                printer: '2',
                data: reply.receipt,
            }],
            buffers: Vec::new(),
            mac: None,
        };
        self.send(HostMessage::TransactionReply(msg)).await
    }
}

fn storage(e: crate::adapters::state_store::StateError) -> SessionEnd {
    SessionEnd::Storage(e.to_string())
}

/// Minor units as a receipt shows them (two decimals).
fn money(minor: u64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}
