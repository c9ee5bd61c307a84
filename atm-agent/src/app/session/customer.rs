//! The NDC side of a customer: a transaction request `11` in, the flow it calls for
//! (`app::withdrawal`, `deposit`, `inquiry`), a transaction reply `4` out, and the terminal's
//! solicited status read back for the settlement.
//!
//! The session is the flows' [`Conversation`]: it turns their [`CustomerReply`] into the
//! profile's screens, receipts and next states, and the terminal's status into a
//! [`TerminalReport`] valued with the profile's denominations. In the profile's MAC mode the
//! request's MAC is checked first, the reply MACed, and the status after it checked (`mac.rs`).

use std::time::Duration;

use firmware_profiles::TransactionKind;
use protocols::ndc::{
    DeviceState, FunctionId, HostMessage, PrinterData, SolicitedStatusInfo, TerminalMessage,
    TransactionReply, TransactionRequest,
};
use protocols::types::{Currency, TerminalId};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::Instrument;

use super::{Session, SessionEnd};
use crate::app::conversation::{Conversation, CustomerReply, CustomerRequest, Decline, PinEntry};
use crate::domain::dispense::{self, TerminalReport};
use crate::domain::mix::CassetteStock;
use crate::ports::{AdviceQueue, SwitchLink, TerminalStore};

/// How the reply looks: what the terminal does and shows.
struct Reply {
    approved: bool,
    notes: Vec<u32>,
    function: FunctionId,
    screen: String,
    screen_update: String,
    receipt: String,
    tsn: u16,
}

impl<IO, L, S, Q> Session<IO, L, S, Q>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    L: SwitchLink,
    S: TerminalStore,
    Q: AdviceQueue,
{
    pub(super) async fn customer(&mut self, req: TransactionRequest) -> Result<(), SessionEnd> {
        self.answering = Some((req.tvn.clone().unwrap_or_default(), req.mcn));
        // In MAC mode nothing in a request is believed before its MAC (not even its last
        // transaction status, which settles money): a refused one gets the decline, card
        // returned, and goes nowhere else (`mac.rs` logs and counts it).
        if self.check_request_mac(&req).is_err() {
            return self.reply(CustomerReply::Decline(Decline::Declined)).await;
        }
        self.svc.registry.update(self.tid(), |v| v.customers += 1);
        // After a power failure the terminal's word on its last transaction (status `0` when it
        // could not send one) settles a dispense still in doubt with that TSN.
        if let Some(last) = &req.last_transaction_status {
            self.settle_after_power_failure(last.tsn, &last.notes_dispensed)
                .await?;
        }
        // A dispense still awaiting its status will not get one now.
        self.svc.next_customer(&self.terminal_id).await?;
        let Some(track2) = req.card() else {
            tracing::warn!(
                terminal = self.tid(),
                "transaction request without readable track 2: declined"
            );
            return self
                .reply(CustomerReply::Decline(Decline::CardNotReadable))
                .await;
        };
        let pin = match req.pin_buffer_a.as_ref().filter(|b| !b.expose().is_empty()) {
            None => PinEntry::Absent,
            Some(b) => b.to_bytes().map_or(PinEntry::Unreadable, PinEntry::Block),
        };
        let request = CustomerRequest {
            pan: track2.pan().clone(),
            track2: Some(track2),
            amount_minor: req.amount.unwrap_or(0),
            pin,
        };
        let span =
            tracing::info_span!("customer", terminal = %self.terminal_id, pan = %request.pan);
        let svc = self.svc.clone();
        async {
            match self.profile.operation_codes.kind_of(&req.operation_code) {
                Some(TransactionKind::Withdrawal) => svc.withdrawal(self, &request).await,
                Some(TransactionKind::Deposit) => svc.deposit(self, &request).await,
                Some(TransactionKind::BalanceInquiry) => svc.inquiry(self, &request).await,
                None => {
                    tracing::warn!(opcode = %req.operation_code, "operation code not in the profile: declined");
                    self.reply(CustomerReply::Decline(Decline::NotSupported))
                        .await
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Settles a dispense a power failure left in doubt, from the notes the terminal says it
    /// dispensed in the transaction with serial number `tsn`.
    pub(super) async fn settle_after_power_failure(
        &mut self,
        tsn: u16,
        notes: &[u32],
    ) -> Result<(), SessionEnd> {
        let value = dispense::dispensed_value(notes, |t| self.profile.denomination(t));
        let svc = self.svc.clone();
        svc.settle_after_power_failure(self, tsn, value).await
    }

    fn render(&self, reply: CustomerReply) -> Reply {
        let s = &self.profile.screens;
        let decline = |screen: &str, receipt: &str| Reply {
            approved: false,
            notes: Vec::new(),
            function: FunctionId::DisplayAndPrint { code: '3' },
            screen: screen.to_owned(),
            screen_update: String::new(),
            receipt: receipt.to_owned(),
            tsn: 0,
        };
        match reply {
            CustomerReply::Dispense {
                notes,
                amount,
                approval_code,
                tsn,
            } => Reply {
                approved: true,
                notes,
                function: FunctionId::DispenseAndPrint { code: '2' },
                screen: s.dispense.clone(),
                screen_update: String::new(),
                receipt: format!("WITHDRAWAL {}\nAUTH {approval_code}", money(amount.minor)),
                tsn,
            },
            CustomerReply::AcceptDeposit { amount, tsn } => Reply {
                approved: true,
                notes: Vec::new(),
                function: FunctionId::DepositAndPrint { code: '1' },
                screen: s.deposit.clone(),
                screen_update: String::new(),
                receipt: format!("DEPOSIT {}", money(amount.minor)),
                tsn,
            },
            CustomerReply::Balance { available_minor } => {
                let available = match available_minor {
                    Some(v) if v < 0 => format!("-{}", money(v.unsigned_abs())),
                    Some(v) => money(v.unsigned_abs()),
                    None => "-".into(),
                };
                Reply {
                    approved: true,
                    notes: Vec::new(),
                    function: FunctionId::DisplayAndPrint { code: '3' },
                    screen: s.balance.clone(),
                    screen_update: format!("AVAILABLE {available}"),
                    receipt: format!("AVAILABLE BALANCE {available}"),
                    tsn: 0,
                }
            }
            CustomerReply::Decline(d) => {
                let (screen, text) = match d {
                    Decline::CardNotReadable => (&s.declined, "CARD NOT READABLE"),
                    Decline::NotSupported => (&s.declined, "TRANSACTION NOT SUPPORTED"),
                    Decline::AmountNotAvailable => {
                        (&s.cannot_dispense_amount, "AMOUNT NOT AVAILABLE")
                    }
                    Decline::InvalidAmount => (&s.declined, "INVALID AMOUNT"),
                    Decline::HostUnavailable => {
                        (&s.host_unavailable, "SERVICE TEMPORARILY UNAVAILABLE")
                    }
                    Decline::InquiryUnanswered => (&s.host_unavailable, "SERVICE UNAVAILABLE"),
                    Decline::InsufficientFunds => (&s.insufficient_funds, "INSUFFICIENT FUNDS"),
                    Decline::WrongPin => (&s.wrong_pin, "INCORRECT PIN"),
                    Decline::PinTriesExceeded => {
                        (&s.pin_tries_exceeded, "PIN TRIES EXCEEDED - CARD BLOCKED")
                    }
                    Decline::Declined => (&s.declined, "TRANSACTION DECLINED"),
                };
                decline(screen, text)
            }
        }
    }

    /// The terminal's solicited status after the reply, or `None` when it went on without one
    /// (the message it sent instead is served next).
    async fn await_report(&mut self) -> Result<Option<TerminalReport>, SessionEnd> {
        let wait = Duration::from_millis(self.profile.timers.status_after_reply_ms);
        let info = loop {
            let frame = self.next_frame(Some(wait)).await?;
            let Some(msg) = self.interpret(frame)? else {
                if !self.owed_declines.is_empty() {
                    // A new customer's request that does not parse, instead of the status: as
                    // for any new request, the outcome stays in doubt, and the new customer is
                    // declined at once (not after this wait).
                    tracing::warn!("no status for the dispense: outcome in doubt until the terminal reports it");
                    return Ok(None);
                }
                continue;
            };
            match msg {
                TerminalMessage::SolicitedStatus(s) => {
                    // An unauthenticated report settles nothing: the dispense stays in doubt.
                    if self.check_status_mac(&s).is_err() {
                        return Ok(Some(TerminalReport::Unclear));
                    }
                    break s.info;
                }
                TerminalMessage::UnsolicitedStatus(u)
                    if !matches!(u.device.state, DeviceState::PowerUp { .. }) =>
                {
                    tracing::info!(status = ?u.device, "unsolicited status during a dispense");
                }
                // The journal uploads in the background of a customer: not a new customer.
                TerminalMessage::JournalUpload(u) => self.take_journal_upload(u),
                TerminalMessage::Unknown(m) => {
                    tracing::warn!(class = %m.class, "message of a class the agent does not serve: ignored");
                }
                other => {
                    // A power-up or a new request instead of the status: the outcome stays in
                    // doubt until the counters or the last transaction status tell it.
                    tracing::warn!("no status for the dispense: outcome in doubt until the terminal reports it");
                    self.deferred.push_front(other);
                    return Ok(None);
                }
            }
        };
        tracing::debug!(status = ?info, "terminal status after the reply");
        let report = match &info {
            SolicitedStatusInfo::Ready | SolicitedStatusInfo::ReadyAfterReply { .. } => {
                TerminalReport::Ready
            }
            SolicitedStatusInfo::DeviceFault(d) => match &d.state {
                // An empty count list means the status carried no counts: not "none left".
                DeviceState::CashHandler(c) => TerminalReport::CashHandlerFault {
                    outcome: c.outcome,
                    dispensed_minor: (!c.notes_dispensed.is_empty()).then(|| {
                        dispense::dispensed_value(&c.notes_dispensed, |t| {
                            self.profile.denomination(t)
                        })
                    }),
                },
                _ => TerminalReport::Unclear,
            },
            SolicitedStatusInfo::CommandReject | SolicitedStatusInfo::SpecificReject { .. } => {
                TerminalReport::Rejected
            }
            SolicitedStatusInfo::TerminalState(_) => TerminalReport::Unclear,
        };
        Ok(Some(report))
    }

    pub(super) async fn send_reply(&mut self, reply: CustomerReply) -> Result<(), SessionEnd> {
        let reply = self.render(reply);
        let next_state = if reply.approved {
            &self.profile.next_states.approved
        } else {
            &self.profile.next_states.declined
        };
        let (sequence, mcn) = self.answering.clone().unwrap_or_default();
        let mut msg = TransactionReply {
            response_flag: None,
            luno: self.terminal.luno.clone(),
            sequence,
            next_state: next_state.clone(),
            notes_to_dispense: reply.notes,
            tsn: reply.tsn,
            function: reply.function,
            screen: reply.screen,
            screen_update: reply.screen_update,
            mcn,
            card_flag: '0',
            printer: vec![PrinterData {
                printer: '2',
                data: reply.receipt,
            }],
            buffers: Vec::new(),
            mac: None,
            trailing_fs: 0,
        };
        self.sign_reply(&mut msg);
        self.replied = true;
        self.send(HostMessage::TransactionReply(msg)).await
    }
}

impl<IO, L, S, Q> Conversation for Session<IO, L, S, Q>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    L: SwitchLink,
    S: TerminalStore,
    Q: AdviceQueue,
{
    fn terminal_id(&self) -> &TerminalId {
        &self.terminal_id
    }

    fn currency(&self) -> Currency {
        Session::currency(self)
    }

    fn note_stock(&self) -> (Vec<CassetteStock>, usize) {
        let stock = self
            .cassettes
            .iter()
            .map(|c| CassetteStock {
                cassette_type: c.cassette_type,
                denomination_minor: c.denomination_minor,
                notes: c.notes,
            })
            .collect();
        (stock, self.profile.dialect.cassette_types)
    }

    /// Takes dispensed notes off the agent's counts (exact on a full dispense; a short dispense
    /// is corrected by the next supply counters).
    fn dispensed(&mut self, notes: &[u32], full: bool) {
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

    async fn reply(&mut self, reply: CustomerReply) -> Result<(), SessionEnd> {
        self.send_reply(reply).await
    }

    async fn report(&mut self) -> Result<Option<TerminalReport>, SessionEnd> {
        self.await_report().await
    }
}

/// Minor units as a receipt shows them (two decimals).
fn money(minor: u64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}
