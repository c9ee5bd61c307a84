//! The PIN step of withdrawals, balance inquiries and deposits on wallet cards, and the operator's
//! view of a card's PIN state.
//!
//! Runs after the replay check (a replay gets its recorded answer and never counts a try twice)
//! and before the ledger is called. For a card whose BIN has a rule (`[[pin.bins]]`):
//! - blocked card → 75 without verifying;
//! - no PIN block, or no verification data for the card → 55, not counted (a deposit without a
//!   PIN block skips this step: money in needs no PIN, and a deposit taken while the switch was
//!   unreachable is advised later without one, since PIN blocks are never stored);
//! - PIN block unreadable, its ZPK version unknown or past its grace window, a block that does not
//!   decode → 96, not counted, not recorded, logged on the `security` target;
//! - wrong PIN → the try is counted durably, then 55 (or 75 when it blocks the card);
//! - right PIN → the counter goes back to 0 and the request goes on.
//!
//! Nothing here logs or stores a PIN block, a PIN, a PVV or an offset; a card appears as its
//! reference and its masked PAN. Checks of one card are serialized (two terminals at once must
//! not both read "2 tries" and write "3").

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use keystore::{EncryptedPinBlock, KeyStore, KeyStoreError, PinVerdict, PinVerification};
use protocols::types::Pan;
use tokio::sync::{Mutex, MutexGuard};
use tracing::Instrument;

use super::zone_keys::ZoneKeys;
use super::Switch;
use crate::domain::pin::{self, BinRule, BinRules, CardPinRecord, CardRef, PinDecision};
use crate::domain::{PinEntry, RecordedReply, ResponseCode, TxnKey};
use crate::ports::{CardPinStore, Journal, JournalError, Ledger};

const CARD_STRIPES: usize = 256;

/// What the PIN step decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinOutcome {
    /// No BIN rule for the card: no PIN is checked.
    NotRequired,
    Verified,
    /// 55 or 75: recorded like any decline, so a replay gets it.
    Declined(ResponseCode),
    /// 96 for a key or block problem: nothing counted, nothing recorded (the terminal may retry
    /// once its agent has the current zone PIN key).
    Refused,
}

/// Why an operator's request about a card failed.
#[derive(Debug, thiserror::Error)]
pub enum CardAdminError {
    #[error("no PIN record for card {0}")]
    Unknown(CardRef),
    #[error(transparent)]
    Storage(#[from] JournalError),
}

pub struct PinGuard {
    keys: Arc<dyn KeyStore>,
    zone: Arc<ZoneKeys>,
    cards: Arc<dyn CardPinStore>,
    rules: BinRules,
    max_tries: u8,
    stripes: Vec<Mutex<()>>,
}

impl PinGuard {
    pub fn new(
        zone: Arc<ZoneKeys>,
        cards: Arc<dyn CardPinStore>,
        rules: BinRules,
        max_tries: u8,
    ) -> Self {
        Self {
            keys: zone.store().clone(),
            zone,
            cards,
            rules,
            max_tries,
            stripes: (0..CARD_STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    pub fn max_tries(&self) -> u8 {
        self.max_tries
    }

    /// At start: says which BIN rules cannot verify yet because their PVK is not loaded.
    pub fn check_keys(&self) {
        for rule in self.rules.iter() {
            match self.keys.current(&rule.pvk) {
                Ok(Some(_)) => {}
                Ok(None) => tracing::warn!(
                    prefix = %rule.prefix,
                    pvk = %rule.pvk,
                    "PIN verification key missing: PIN requests for this BIN will get 96; load it with `host-switch keys load-components --config FILE {} --usage pin_verification` while the switch is stopped",
                    rule.pvk
                ),
                Err(e) => tracing::error!(pvk = %rule.pvk, error = %e, "cannot read the key store"),
            }
        }
    }

    /// The PIN step for one request.
    pub async fn check(
        &self,
        txn: &TxnKey,
        pan: &Pan,
        entry: Option<&PinEntry>,
    ) -> Result<PinOutcome, JournalError> {
        let Some(rule) = self.rules.for_pan(pan) else {
            return Ok(PinOutcome::NotRequired);
        };
        let card = CardRef::for_card(pan);
        let span = tracing::info_span!("pin", card = %card, pan = %pan.masked());
        self.check_card(txn, pan, &card, rule, entry)
            .instrument(span)
            .await
    }

    async fn check_card(
        &self,
        txn: &TxnKey,
        pan: &Pan,
        card: &CardRef,
        rule: &BinRule,
        entry: Option<&PinEntry>,
    ) -> Result<PinOutcome, JournalError> {
        let _card_lock = self.lock(card).await;
        let record = self.cards.card(card)?;
        if record.as_ref().is_some_and(CardPinRecord::is_blocked) {
            tracing::info!("card blocked: PIN request refused 75 without verifying");
            return Ok(PinOutcome::Declined(ResponseCode::PinTriesExceeded));
        }
        let Some(entry) = entry else {
            tracing::info!(
                "no PIN block (field 52) for a card whose BIN needs one: 55, not counted"
            );
            return Ok(PinOutcome::Declined(ResponseCode::WrongPin));
        };
        let Some((record, data)) = record.and_then(|r| r.data.clone().map(|d| (r, d))) else {
            tracing::warn!("no PIN verification data for the card (cards_file): 55, not counted");
            return Ok(PinOutcome::Declined(ResponseCode::WrongPin));
        };
        let method = match pin::verification(rule, &data) {
            Ok(m) => m,
            Err(reason) => {
                tracing::warn!(%reason, "card's PIN data does not fit its BIN rule: 55, not counted");
                return Ok(PinOutcome::Declined(ResponseCode::WrongPin));
            }
        };
        let Some(verdict) = self.verify(rule, entry, pan, &method) else {
            return Ok(PinOutcome::Refused);
        };
        let (decision, next) = pin::after_verdict(&record, verdict, txn, self.max_tries);
        if let Some(next) = next {
            // Durable before the answer: a crash must not give the customer a free try.
            self.cards.save(next).await?;
        }
        match decision {
            PinDecision::Verified => tracing::info!("pin verified"),
            PinDecision::Wrong { tries } => tracing::info!(tries, "wrong pin"),
            PinDecision::Blocked => {
                tracing::warn!(
                    max_tries = self.max_tries,
                    "card blocked: too many wrong PINs"
                )
            }
        }
        Ok(match decision.decline() {
            None => PinOutcome::Verified,
            Some(code) => PinOutcome::Declined(code),
        })
    }

    /// Asks the key store; `None` (logged) when the block cannot be verified at all.
    fn verify(
        &self,
        rule: &BinRule,
        entry: &PinEntry,
        pan: &Pan,
        method: &PinVerification,
    ) -> Option<PinVerdict> {
        let (block, version) = match entry {
            PinEntry::Block {
                block,
                zpk_version: Some(v),
            } => (block, *v),
            PinEntry::Block {
                zpk_version: None, ..
            } => {
                tracing::warn!(target: "security", "PIN block without a ZPK version (field 53): refused 96, no try counted");
                return None;
            }
            PinEntry::Unreadable => {
                tracing::warn!(target: "security", "field 52 is not a PIN block (16 hex digits): refused 96, no try counted");
                return None;
            }
        };
        let zpk = match self.zone.accept(version) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(target: "security", zpk_version = version, reason = %e, "PIN block under a ZPK version that is not accepted: refused 96, no try counted");
                return None;
            }
        };
        let pvk = match self.keys.current(&rule.pvk) {
            Ok(Some(info)) => info.key_ref(),
            Ok(None) => {
                tracing::error!(pvk = %rule.pvk, "PIN verification key missing: refused 96; load it with `host-switch keys load-components --config FILE {} --usage pin_verification` while the switch is stopped", rule.pvk);
                return None;
            }
            Err(e) => {
                tracing::error!(pvk = %rule.pvk, error = %e, "cannot read the key store: refused 96");
                return None;
            }
        };
        self.verify_with(&zpk, block, pan, &pvk, method)
    }

    fn verify_with(
        &self,
        zpk: &keystore::KeyRef,
        block: &EncryptedPinBlock,
        pan: &Pan,
        pvk: &keystore::KeyRef,
        method: &PinVerification,
    ) -> Option<PinVerdict> {
        match self.keys.verify_pin(zpk, block, pan, pvk, method) {
            Ok(verdict) => Some(verdict),
            Err(KeyStoreError::PinBlockFormat(reason)) => {
                tracing::warn!(target: "security", zpk = %zpk, reason, "PIN block does not decode under its ZPK: refused 96, no try counted");
                None
            }
            Err(e) => {
                tracing::error!(zpk = %zpk, pvk = %pvk, error = %e, "PIN verification failed in the key store: refused 96");
                None
            }
        }
    }

    /// A card's PIN record (operator's view).
    pub fn status(&self, card: &CardRef) -> Result<CardPinRecord, CardAdminError> {
        self.cards
            .card(card)?
            .ok_or_else(|| CardAdminError::Unknown(card.clone()))
    }

    /// Resets a card's wrong-try counter and lifts a block; `who` is logged.
    pub async fn unblock(
        &self,
        card: &CardRef,
        who: &str,
    ) -> Result<(CardPinRecord, CardPinRecord), CardAdminError> {
        let _card_lock = self.lock(card).await;
        let before = self.status(card)?;
        let after = before.unblocked();
        self.cards.save(after.clone()).await?;
        tracing::info!(card = %card, who, was_blocked = before.is_blocked(), tries_before = before.wrong_tries().unwrap_or(self.max_tries), "card PIN unblocked");
        Ok((before, after))
    }

    async fn lock(&self, card: &CardRef) -> MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        card.hash(&mut h);
        self.stripes[(h.finish() as usize) % CARD_STRIPES]
            .lock()
            .await
    }
}

impl<L: Ledger, J: Journal> Switch<L, J> {
    /// The PIN step inside a request flow: `None` to go on, or the answer to give. Declines are
    /// recorded under `class` (withdrawal, deposit); a balance inquiry (`class = None`) records
    /// nothing, its tries are still counted once per transaction.
    pub(super) async fn pin_step(
        &self,
        class: Option<&'static str>,
        key: &TxnKey,
        pan: &Pan,
        entry: Option<&PinEntry>,
    ) -> Result<Option<RecordedReply>, JournalError> {
        let Some(pins) = &self.pins else {
            return Ok(None);
        };
        match pins.check(key, pan, entry).await? {
            PinOutcome::NotRequired | PinOutcome::Verified => Ok(None),
            PinOutcome::Refused => Ok(Some(RecordedReply::code(ResponseCode::SystemError))),
            PinOutcome::Declined(code) => match class {
                Some(class) => self.answer_code(class, key, code).await.map(Some),
                None => Ok(Some(RecordedReply::code(code))),
            },
        }
    }
}
