//! The bank host route: cards whose range routes to another bank's host are authorized there.
//!
//! The saga and the journal are the wallet's: a withdrawal is journaled `HoldRequested` (with
//! the trace the host will know it by) before the host is asked; an approval is `Held`; the
//! completion, void and compensation states are driven by [`drive_bank`](Switch::drive_bank)
//! as advices to the host (0220, 0420), queued durably and repeated until acknowledged. A request
//! whose answer never came (timeout, line lost after the send) may have been approved: it is
//! answered 91 and reversed at the host (a timeout reversal), never left standing.

use std::sync::Arc;

use keystore::EncryptedPinBlock;
use protocols::dialect::Acceptance;
use protocols::types::{Amount, Pan};

use super::ledger_step::DriveError;
use super::{now_ms, Switch};
use crate::domain::issuer::{AdviceKind, HostAdvice, HostRequest, HostTrace, HostTxn, IssuerError};
use crate::domain::{
    PinEntry, RecordedReply, ResponseCode, Route, TxnKey, TxnKind, TxnRecord, TxnState,
};
use crate::ports::{IssuerHost, Journal, JournalError, JournalWrite, Ledger};

/// A withdrawal or deposit on the bank host route, as the dispatcher hands it over.
pub(crate) struct BankCall<'a> {
    class: &'static str,
    txn: HostTxn,
    key: &'a TxnKey,
    pan: &'a Pan,
    amount: Amount,
    pin: Option<&'a PinEntry>,
}

impl<'a> BankCall<'a> {
    pub(crate) fn new(
        txn: HostTxn,
        key: &'a TxnKey,
        pan: &'a Pan,
        amount: Amount,
        pin: Option<&'a PinEntry>,
    ) -> Self {
        Self {
            class: txn.mti(),
            txn,
            key,
            pan,
            amount,
            pin,
        }
    }
}

impl<L: Ledger, J: Journal> Switch<L, J> {
    /// The host a card is forwarded to: its route is `bank-host` and the host is configured.
    pub(crate) fn issuer_for(&self, pan: &Pan) -> Option<Arc<dyn IssuerHost>> {
        let entry = self.routes.entry(pan)?;
        if entry.route != Route::BankHost {
            return None;
        }
        match &entry.host {
            Some(name) => self.issuer(name),
            None if self.issuers.len() == 1 => self.issuers.first().cloned(),
            None => None,
        }
    }

    /// The bank host `name`'s status, if it is configured.
    pub fn issuer_status(&self, name: &str) -> Option<crate::domain::issuer::IssuerStatus> {
        self.issuer(name).map(|i| i.status())
    }

    fn issuer(&self, name: &str) -> Option<Arc<dyn IssuerHost>> {
        self.issuers.iter().find(|i| i.name() == name).cloned()
    }

    /// The PIN block under the host's zone PIN key. `Err(code)`: refused (logged).
    fn pin_for_host(
        &self,
        issuer: &dyn IssuerHost,
        pan: &Pan,
        pin: Option<&PinEntry>,
    ) -> Result<Option<EncryptedPinBlock>, ResponseCode> {
        let Some(pin) = pin else {
            return Ok(None);
        };
        let (block, version) = match pin {
            PinEntry::Block {
                block,
                zpk_version: Some(v),
            } => (block, *v),
            _ => {
                tracing::warn!(target: "security", host = issuer.name(), "PIN block unreadable or without its ZPK version: refused 96");
                return Err(ResponseCode::SystemError);
            }
        };
        let (Some(zone), Some(host_zpk)) = (&self.zone, issuer.zpk()) else {
            tracing::error!(target: "security", host = issuer.name(), "no zone PIN key for this bank host ([[bank_hosts]] zpk) or no key store: a PIN is never forwarded under our own key; refused 96");
            return Err(ResponseCode::SystemError);
        };
        let from = zone.accept(version).map_err(|e| {
            tracing::warn!(target: "security", zpk_version = version, reason = %e, "PIN block under a ZPK version that is not accepted: refused 96");
            ResponseCode::SystemError
        })?;
        let to = match zone.store().current(host_zpk) {
            Ok(Some(info)) => info.key_ref(),
            Ok(None) => {
                tracing::error!(target: "security", host = issuer.name(), key = %host_zpk, "the bank host's zone PIN key is not in the key store: refused 96");
                return Err(ResponseCode::SystemError);
            }
            Err(e) => {
                tracing::error!(target: "security", host = issuer.name(), error = %e, "key store: refused 96");
                return Err(ResponseCode::SystemError);
            }
        };
        zone.store()
            .translate_pin_block(&from, &to, block, pan)
            .map(Some)
            .map_err(|e| {
                tracing::error!(target: "security", host = issuer.name(), error = %e, "PIN translation to the host's key failed: refused 96");
                ResponseCode::SystemError
            })
    }

    /// A trace for a request to `issuer`, with the terminal's local time and date when its agent
    /// sent them.
    fn host_trace(
        issuer: &dyn IssuerHost,
        txn: HostTxn,
        acceptance: &Acceptance,
    ) -> Result<HostTrace, IssuerError> {
        let mut trace = issuer.trace(txn)?;
        if let (Some(t), Some(d)) = (acceptance.local_time, acceptance.local_date) {
            trace.local_time = t.to_string();
            trace.local_date = d.to_string();
        }
        Ok(trace)
    }

    /// 0100 withdrawal or 0200 deposit for a card of `issuer`: journaled, asked, journaled.
    pub(crate) async fn bank_transaction(
        &self,
        issuer: Arc<dyn IssuerHost>,
        call: BankCall<'_>,
        acceptance: &Acceptance,
    ) -> Result<RecordedReply, JournalError> {
        let BankCall {
            class,
            txn,
            key,
            pan,
            amount,
            pin,
        } = call;
        if amount.minor == 0 {
            return self
                .answer_code(class, key, ResponseCode::InvalidAmount)
                .await;
        }
        let kind = match txn {
            HostTxn::Deposit => TxnKind::Deposit,
            _ => TxnKind::Withdrawal,
        };
        let _guard = self.lock(key).await;
        if let Some(recorded) = self.recorded(class, key)? {
            return Ok(recorded);
        }
        let account = self.account(pan)?;
        let fresh = TxnRecord::new(key, kind, account.as_str(), amount, now_ms());
        if let Some(rec) = self.journal.txn(&key.as_string())? {
            return self.bank_existing(class, key, rec, fresh.state).await;
        }
        let pin_block = match self.pin_for_host(issuer.as_ref(), pan, pin) {
            Ok(b) => b,
            Err(code) => return self.answer_code(class, key, code).await,
        };
        let trace = match Self::host_trace(issuer.as_ref(), txn, acceptance) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "no trace for the bank host: 96");
                return Ok(RecordedReply::code(ResponseCode::SystemError));
            }
        };
        let mut rec = fresh;
        rec.issuer = Some(Box::new(trace.clone()));
        // Journaled before the host is asked: a crash after the send leaves a record the resumer
        // reverses at the host.
        self.journal
            .write(JournalWrite {
                txn: Some(rec.clone()),
                reply: None,
            })
            .await?;
        let request = HostRequest {
            txn,
            trace: trace.clone(),
            terminal: key.terminal.clone(),
            pan: pan.clone(),
            acceptance: acceptance.clone(),
            amount,
            pin: pin_block,
        };
        let (next, reply) = match issuer.request(request).await {
            Ok(answer) if answer.code == ResponseCode::Approved => {
                let reference = format!("{}:{}", trace.host, trace.rrn);
                let reply = RecordedReply {
                    approval_code: Some(
                        answer
                            .approval_code
                            .unwrap_or_else(|| super::approval_code(&reference)),
                    ),
                    ..RecordedReply::code(ResponseCode::Approved)
                };
                let next = match kind {
                    TxnKind::Withdrawal => TxnState::Held { hold_id: reference },
                    TxnKind::Deposit => TxnState::Credited {
                        movement_id: reference,
                    },
                };
                tracing::info!(host = %trace.host, host_stan = trace.stan, rrn = %trace.rrn, "bank host approved");
                (next, reply)
            }
            Ok(answer) => {
                tracing::info!(host = %trace.host, host_stan = trace.stan, code = %answer.code, "bank host declined");
                (
                    TxnState::Declined { code: answer.code },
                    RecordedReply::code(answer.code),
                )
            }
            Err(e) if e.may_have_applied() => {
                tracing::warn!(host = %trace.host, host_stan = trace.stan, error = %e, "bank host outcome unknown: answered 91, reversed at the host");
                let next = match kind {
                    TxnKind::Withdrawal => TxnState::VoidPending { hold_id: None },
                    TxnKind::Deposit => TxnState::CompensationPending {
                        amount_minor: amount.minor,
                    },
                };
                self.wake_resumer();
                (next, RecordedReply::code(ResponseCode::IssuerUnavailable))
            }
            Err(e) => {
                tracing::warn!(host = %trace.host, error = %e, "bank host not reached: declined 91");
                (
                    TxnState::Declined {
                        code: ResponseCode::IssuerUnavailable,
                    },
                    RecordedReply::code(ResponseCode::IssuerUnavailable),
                )
            }
        };
        self.close_txn(class, key, rec, next, reply).await
    }

    /// A request for a transaction already journaled and never answered (the switch stopped
    /// while the host was being asked): whatever the host did is reversed, the terminal is told
    /// 91; the customer tries again as a new transaction.
    async fn bank_existing(
        &self,
        class: &'static str,
        key: &TxnKey,
        mut rec: TxnRecord,
        fresh: TxnState,
    ) -> Result<RecordedReply, JournalError> {
        if rec.state != fresh || rec.issuer.is_none() {
            tracing::warn!(
                state = rec.state.name(),
                "request for a transaction already in the journal: declined"
            );
            return self
                .answer_code(class, key, ResponseCode::DoNotHonour)
                .await;
        }
        let undo = match rec.kind {
            TxnKind::Withdrawal => TxnState::VoidPending { hold_id: None },
            TxnKind::Deposit => TxnState::CompensationPending {
                amount_minor: rec.amount.minor,
            },
        };
        tracing::warn!("bank host request left without an outcome by an earlier attempt: reversed, answered 91");
        self.wake_resumer();
        let reply = RecordedReply::code(ResponseCode::IssuerUnavailable);
        if let Err(e) = rec.advance(undo, now_ms()) {
            tracing::error!(error = %e, "journal state machine refused the reversal");
            return Ok(RecordedReply::code(ResponseCode::SystemError));
        }
        self.answer(class, key, Some(rec), reply).await
    }

    /// A balance inquiry at the host: nothing is journaled (no money moves).
    pub(crate) async fn bank_inquiry(
        &self,
        issuer: Arc<dyn IssuerHost>,
        key: &TxnKey,
        pan: &Pan,
        amount: Amount,
        pin: Option<&PinEntry>,
        acceptance: &Acceptance,
    ) -> RecordedReply {
        let pin_block = match self.pin_for_host(issuer.as_ref(), pan, pin) {
            Ok(b) => b,
            Err(code) => return RecordedReply::code(code),
        };
        let trace = match Self::host_trace(issuer.as_ref(), HostTxn::BalanceInquiry, acceptance) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "no trace for the bank host: 96");
                return RecordedReply::code(ResponseCode::SystemError);
            }
        };
        let request = HostRequest {
            txn: HostTxn::BalanceInquiry,
            trace,
            terminal: key.terminal.clone(),
            pan: pan.clone(),
            acceptance: acceptance.clone(),
            amount: Amount::new(0, amount.currency),
            pin: pin_block,
        };
        match issuer.request(request).await {
            Ok(answer) => RecordedReply {
                balances: answer.balances,
                ..RecordedReply::code(answer.code)
            },
            Err(e) => {
                tracing::warn!(error = %e, "balance inquiry at the bank host: 91");
                RecordedReply::code(ResponseCode::IssuerUnavailable)
            }
        }
    }

    /// Drives a bank-route record's pending state: the advice it owes, acknowledged by the host.
    pub(super) async fn drive_bank(
        &self,
        rec: &TxnRecord,
        trace: &HostTrace,
        wait: bool,
    ) -> Result<Option<TxnState>, DriveError> {
        let (kind, actual_minor, operation, next) = match rec.state.clone() {
            TxnState::CapturePending {
                hold_id,
                amount_minor,
            } => (
                AdviceKind::Completion,
                (amount_minor != rec.amount.minor).then_some(amount_minor),
                "completion",
                TxnState::Captured {
                    hold_id,
                    amount_minor,
                },
            ),
            TxnState::VoidPending { .. } => (AdviceKind::Reversal, None, "reversal", TxnState::Voided),
            TxnState::CompensationPending { amount_minor } => (
                AdviceKind::Reversal,
                None,
                "compensation",
                TxnState::Compensated { amount_minor },
            ),
            TxnState::CreditAdvised => {
                return Ok(Some(TxnState::Exception {
                    reason: format!(
                        "a deposit advice for a card of bank host {}: only wallet deposits are taken offline",
                        trace.host
                    ),
                }))
            }
            _ => return Ok(None),
        };
        let issuer = self
            .issuer(&trace.host)
            .ok_or_else(|| IssuerError::UnknownHost(trace.host.clone()))?;
        let original_txn = match rec.kind {
            TxnKind::Withdrawal => HostTxn::Withdrawal,
            TxnKind::Deposit => HostTxn::Deposit,
        };
        let terminal = super::resumer::parse_key(&rec.key)
            .map(|k| k.terminal)
            .ok_or_else(|| IssuerError::Storage {
                host: trace.host.clone(),
                reason: format!("journal key {} is malformed", rec.key),
            })?;
        issuer
            .advise(
                HostAdvice {
                    id: format!("{operation}:{}", rec.key),
                    kind,
                    original: trace.clone(),
                    original_txn,
                    terminal,
                    amount: rec.amount,
                    actual_minor,
                },
                wait,
            )
            .await?;
        Ok(Some(next))
    }
}
