//! The PIN step of withdrawals, balance inquiries and deposits on wallet cards, and the operator's
//! view of a card's PIN state.
//!
//! Runs after the replay check of the journaled flows (a withdrawal's replay gets its recorded
//! answer and is never verified again) and before the ledger is called. For a card whose BIN has
//! a rule (`[[pin.bins]]`):
//! - a terminal or a card past its wrong-PIN rate limit → 58 (terminal) or 75 (card) without
//!   verifying, not counted, not recorded;
//! - blocked card → 75 without verifying;
//! - no PIN block, or no verification data for the card → 55, not counted (a deposit without a
//!   PIN block skips this step: money in needs no PIN, and a deposit taken while the switch was
//!   unreachable is advised later without one, since PIN blocks are never stored);
//! - PIN block unreadable, its ZPK version unknown or past its grace window, a block that does not
//!   decode, no PVK version for the card's PVK index → 96, not counted, not recorded;
//! - wrong PIN → the try is counted durably, then 55 (or 75 when it blocks the card). Every
//!   verification counts, balance inquiries included; only a replay (same transaction key and
//!   same enciphered block as the try counted last, see `domain::pin`) is not counted again;
//! - right PIN → the counter goes back to 0 and the request goes on.
//!
//! Every 55 and 75, and every rate-limit refusal, is logged on the `security` target with the
//! terminal and STAN. Nothing here logs or stores a PIN block, a PIN, a PVV or an offset; a card
//! appears as its reference only. Checks of one card are serialized (two terminals at once must
//! not both read "2 tries" and write "3").

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use keystore::{
    EncryptedPinBlock, KeyInfo, KeyRef, KeyStore, KeyStoreError, KeyVersion, PinVerdict,
    PinVerification,
};
use protocols::types::{Pan, TerminalId};
use tokio::sync::{Mutex, MutexGuard};
use tracing::Instrument;

use super::card_refs::CardReferences;
use super::zone_keys::ZoneKeys;
use super::Switch;
use crate::domain::pin::{
    self, BinRule, BinRules, BlockDigest, CardPinRecord, CardRef, PinData, PinDecision, PinPolicy,
    WrongPinWindow,
};
use crate::domain::{PinEntry, RecordedReply, ResponseCode, TxnKey};
use crate::ports::{CardPinStore, Journal, JournalError, Ledger};

const CARD_STRIPES: usize = 256;
/// Terminals and cards whose wrong PINs are tracked at once (bounded memory under a sweep of
/// many cards); past it, those with nothing left in their window are forgotten first.
const TERMINALS_TRACKED_MAX: usize = 10_000;
const CARDS_TRACKED_MAX: usize = 100_000;

/// What the PIN step decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinOutcome {
    /// No BIN rule for the card: no PIN is checked.
    NotRequired,
    Verified,
    /// 55 or 75: recorded like any decline, so a replay gets it.
    Declined(ResponseCode),
    /// 58 (terminal) or 75 (card) past a wrong-PIN rate limit: nothing verified, nothing counted,
    /// nothing recorded (the same request may be verified once the window has moved on).
    RateLimited(ResponseCode),
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

/// Why the PIN step cannot start with the key store as it is.
#[derive(Debug, thiserror::Error)]
pub enum PinKeysError {
    #[error("pin.bins rule {prefix}: PIN verification key {pvk} has versions {versions:?} in the key store but the rule maps no PVK index to a version; add e.g. `pvki = {{ 1 = 1, 2 = 2 }}` to the rule (visa_pvv), or destroy the version no card uses")]
    UnmappedVersions {
        prefix: String,
        pvk: String,
        versions: Vec<KeyVersion>,
    },
    #[error("cannot read the key store")]
    Store(#[from] KeyStoreError),
}

pub struct PinGuard {
    /// Names an operator's card (`card_from_operator`).
    card_refs: Arc<CardReferences>,
    keys: Arc<dyn KeyStore>,
    zone: Arc<ZoneKeys>,
    cards: Arc<dyn CardPinStore>,
    rules: BinRules,
    policy: PinPolicy,
    stripes: Vec<Mutex<()>>,
    /// Wrong PINs per terminal and per card in sliding windows. A std mutex: held for a map
    /// update only, never across an await.
    terminal_wrong: std::sync::Mutex<WrongPinWindow<TerminalId>>,
    card_wrong: std::sync::Mutex<WrongPinWindow<CardRef>>,
    /// The windows' clock (tokio's, so tests may pause it).
    epoch: tokio::time::Instant,
}

/// Which wrong-PIN rate limit refused a request.
enum Limited {
    Terminal,
    Card,
}

impl PinGuard {
    pub fn new(
        zone: Arc<ZoneKeys>,
        cards: Arc<dyn CardPinStore>,
        rules: BinRules,
        policy: PinPolicy,
        card_refs: Arc<CardReferences>,
    ) -> Self {
        Self {
            card_refs,
            keys: zone.store().clone(),
            zone,
            cards,
            rules,
            policy,
            stripes: (0..CARD_STRIPES).map(|_| Mutex::new(())).collect(),
            terminal_wrong: std::sync::Mutex::new(WrongPinWindow::new(
                policy.terminal,
                TERMINALS_TRACKED_MAX,
            )),
            card_wrong: std::sync::Mutex::new(WrongPinWindow::new(policy.card, CARDS_TRACKED_MAX)),
            epoch: tokio::time::Instant::now(),
        }
    }

    /// An operator's card: a reference, or a PAN turned into its keyed reference at once.
    pub fn card_from_operator(&self, s: &str) -> Result<CardRef, String> {
        self.card_refs.from_operator(s)
    }

    pub fn max_tries(&self) -> u8 {
        self.policy.max_tries
    }

    /// At start: warns about BIN rules that cannot verify yet (their PVK, or a version their
    /// PVKI map names, is not loaded), and refuses a rule without a PVKI map whose PVK has
    /// several versions (verifying under the wrong one would block cards in bulk).
    pub fn check_keys(&self) -> Result<(), PinKeysError> {
        let all = self.keys.list()?;
        for rule in self.rules.iter() {
            let versions: Vec<KeyVersion> = all
                .iter()
                .filter(|k| k.name == rule.pvk)
                .map(|k: &KeyInfo| k.version)
                .collect();
            if versions.is_empty() {
                tracing::warn!(
                    prefix = %rule.prefix,
                    pvk = %rule.pvk,
                    "PIN verification key missing: PIN requests for this BIN will get 96; load it with `host-switch keys load-components --config FILE {} --usage pin_verification` while the switch is stopped",
                    rule.pvk
                );
                continue;
            }
            if rule.pvk_versions.is_empty() && versions.len() > 1 {
                return Err(PinKeysError::UnmappedVersions {
                    prefix: rule.prefix.clone(),
                    pvk: rule.pvk.to_string(),
                    versions,
                });
            }
            for (pvki, version) in &rule.pvk_versions {
                if !versions.contains(version) {
                    tracing::warn!(prefix = %rule.prefix, pvk = %rule.pvk, pvki, version, "the PVK version this PVK index maps to is not in the key store: its cards will get 96");
                }
            }
        }
        Ok(())
    }

    /// The PIN step for one request; `card` is the card's keyed reference (`app::card_refs`).
    pub async fn check(
        &self,
        txn: &TxnKey,
        pan: &Pan,
        card: &CardRef,
        entry: Option<&PinEntry>,
    ) -> Result<PinOutcome, JournalError> {
        let Some(rule) = self.rules.for_pan(pan) else {
            return Ok(PinOutcome::NotRequired);
        };
        // The reference only: never beside a masked PAN.
        let span = tracing::info_span!("pin", card = %card);
        self.check_card(txn, pan, card, rule, entry)
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
        if let Some(limited) = self.limited(&txn.terminal, card) {
            return Ok(self.refuse_limited(txn, limited));
        }
        let record = self.cards.card(card)?;
        if record.as_ref().is_some_and(CardPinRecord::is_blocked) {
            tracing::warn!(target: "security", terminal = %txn.terminal, stan = %txn.stan, "card blocked: PIN request refused 75 without verifying");
            return Ok(PinOutcome::Declined(ResponseCode::PinTriesExceeded));
        }
        let Some(entry) = entry else {
            tracing::warn!(target: "security", terminal = %txn.terminal, stan = %txn.stan, "no PIN block (field 52) for a card whose BIN needs one: 55, not counted");
            return Ok(PinOutcome::Declined(ResponseCode::WrongPin));
        };
        let Some((record, data)) = record.and_then(|r| r.data.clone().map(|d| (r, d))) else {
            tracing::warn!(target: "security", terminal = %txn.terminal, stan = %txn.stan, "no PIN verification data for the card (cards_file): 55, not counted");
            return Ok(PinOutcome::Declined(ResponseCode::WrongPin));
        };
        let method = match pin::verification(rule, &data) {
            Ok(m) => m,
            Err(reason) => {
                tracing::warn!(target: "security", terminal = %txn.terminal, stan = %txn.stan, %reason, "card's PIN data does not fit its BIN rule: 55, not counted");
                return Ok(PinOutcome::Declined(ResponseCode::WrongPin));
            }
        };
        let Some((block, zpk_version)) = readable(entry) else {
            return Ok(PinOutcome::Refused);
        };
        let Some(verdict) = self.verify(rule, &data, block, zpk_version, pan, &method) else {
            return Ok(PinOutcome::Refused);
        };
        let digest = BlockDigest::of(txn, zpk_version, block);
        let (decision, next) =
            pin::after_verdict(&record, verdict, txn, &digest, self.policy.max_tries);
        let counted = next.is_some() && decision != PinDecision::Verified;
        if let Some(next) = next {
            // Durable before the answer: a crash must not give the customer a free try.
            self.cards.save(next).await?;
        }
        if counted {
            self.count_wrong(txn, card);
        }
        self.log_decision(txn, decision, counted);
        Ok(match decision.decline() {
            None => PinOutcome::Verified,
            Some(code) => PinOutcome::Declined(code),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether the terminal or the card has used up its wrong PINs in its window.
    fn limited(&self, terminal: &TerminalId, card: &CardRef) -> Option<Limited> {
        let now = self.now_ms();
        if lock_window(&self.terminal_wrong).is_limited(terminal, now) {
            return Some(Limited::Terminal);
        }
        if lock_window(&self.card_wrong).is_limited(card, now) {
            return Some(Limited::Card);
        }
        None
    }

    fn refuse_limited(&self, txn: &TxnKey, limited: Limited) -> PinOutcome {
        match limited {
            Limited::Terminal => {
                let l = self.policy.terminal;
                tracing::warn!(target: "security", terminal = %txn.terminal, stan = %txn.stan, max_wrong = l.max_wrong, window_secs = l.window_ms / 1000, "terminal past its wrong-PIN limit: PIN request refused 58 without verifying");
                PinOutcome::RateLimited(ResponseCode::SecurityViolation)
            }
            Limited::Card => {
                let l = self.policy.card;
                tracing::warn!(target: "security", terminal = %txn.terminal, stan = %txn.stan, max_wrong = l.max_wrong, window_secs = l.window_ms / 1000, "card past its wrong-PIN limit: PIN request refused 75 without verifying");
                PinOutcome::RateLimited(ResponseCode::PinTriesExceeded)
            }
        }
    }

    /// A counted wrong PIN, in the terminal's and the card's windows.
    fn count_wrong(&self, txn: &TxnKey, card: &CardRef) {
        let now = self.now_ms();
        let at_terminal = lock_window(&self.terminal_wrong).record(&txn.terminal, now);
        let on_card = lock_window(&self.card_wrong).record(card, now);
        if at_terminal >= self.policy.terminal.max_wrong as usize {
            tracing::warn!(target: "security", terminal = %txn.terminal, stan = %txn.stan, wrong = at_terminal, window_secs = self.policy.terminal.window_ms / 1000, "terminal reached its wrong-PIN limit: its PIN requests are refused 58 until the window moves on");
        }
        if on_card >= self.policy.card.max_wrong as usize {
            tracing::warn!(target: "security", terminal = %txn.terminal, stan = %txn.stan, wrong = on_card, window_secs = self.policy.card.window_ms / 1000, "card reached its wrong-PIN limit: its PIN requests are refused 75 until the window moves on");
        }
    }

    fn log_decision(&self, txn: &TxnKey, decision: PinDecision, counted: bool) {
        match decision {
            PinDecision::Verified => tracing::info!("pin verified"),
            PinDecision::Wrong { tries } => {
                tracing::warn!(target: "security", terminal = %txn.terminal, stan = %txn.stan, tries, counted, "wrong PIN: 55")
            }
            PinDecision::Blocked => tracing::warn!(
                target: "security",
                terminal = %txn.terminal,
                stan = %txn.stan,
                max_tries = self.policy.max_tries,
                counted,
                "wrong PIN: card blocked, 75"
            ),
        }
    }

    /// Asks the key store; `None` (logged) when the block cannot be verified at all.
    fn verify(
        &self,
        rule: &BinRule,
        data: &PinData,
        block: &EncryptedPinBlock,
        zpk_version: KeyVersion,
        pan: &Pan,
        method: &PinVerification,
    ) -> Option<PinVerdict> {
        let zpk = match self.zone.accept(zpk_version) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(target: "security", zpk_version, reason = %e, "PIN block under a ZPK version that is not accepted: refused 96, no try counted");
                return None;
            }
        };
        let pvk = self.pvk(rule, data)?;
        self.verify_with(&zpk, block, pan, &pvk, method)
    }

    /// The PVK version the card's data was made under: the one its PVK index maps to in the rule,
    /// or the key's only version (start-up refused a rule without a map on a key with several).
    fn pvk(&self, rule: &BinRule, data: &PinData) -> Option<KeyRef> {
        match pin::pvk_version(rule, data) {
            Ok(Some(version)) => return Some(KeyRef::new(rule.pvk.clone(), version)),
            Ok(None) => {}
            Err(reason) => {
                tracing::error!(pvk = %rule.pvk, %reason, "no PVK version for the card: refused 96, no try counted");
                return None;
            }
        }
        match self.keys.current(&rule.pvk) {
            Ok(Some(info)) => Some(info.key_ref()),
            Ok(None) => {
                tracing::error!(pvk = %rule.pvk, "PIN verification key missing: refused 96; load it with `host-switch keys load-components --config FILE {} --usage pin_verification` while the switch is stopped", rule.pvk);
                None
            }
            Err(e) => {
                tracing::error!(pvk = %rule.pvk, error = %e, "cannot read the key store: refused 96");
                None
            }
        }
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
        tracing::info!(card = %card, who, was_blocked = before.is_blocked(), tries_before = before.wrong_tries().unwrap_or(self.policy.max_tries), "card PIN unblocked");
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

/// The enciphered block and its ZPK version, or `None` (logged) when field 52 or 53 is unusable.
fn readable(entry: &PinEntry) -> Option<(&EncryptedPinBlock, KeyVersion)> {
    match entry {
        PinEntry::Block {
            block,
            zpk_version: Some(v),
        } => Some((block, *v)),
        PinEntry::Block {
            zpk_version: None, ..
        } => {
            tracing::warn!(target: "security", "PIN block without a ZPK version (field 53): refused 96, no try counted");
            None
        }
        PinEntry::Unreadable => {
            tracing::warn!(target: "security", "field 52 is not a PIN block (16 hex digits): refused 96, no try counted");
            None
        }
    }
}

/// A window's lock; a panic elsewhere while holding it leaves counts that are still counts.
fn lock_window<K>(
    m: &std::sync::Mutex<WrongPinWindow<K>>,
) -> std::sync::MutexGuard<'_, WrongPinWindow<K>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<L: Ledger, J: Journal> Switch<L, J> {
    /// The PIN step inside a request flow: `None` to go on, or the answer to give. Declines are
    /// recorded under `class` (withdrawal, deposit); a balance inquiry (`class = None`) records
    /// nothing: its every verification is counted (a replay only when the transaction key and the
    /// PIN block are both the same, see `domain::pin`). Rate-limit refusals and 96 are never
    /// recorded.
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
        let card = self.card_ref(pan)?;
        match pins.check(key, pan, &card, entry).await? {
            PinOutcome::NotRequired | PinOutcome::Verified => Ok(None),
            PinOutcome::Refused => Ok(Some(RecordedReply::code(ResponseCode::SystemError))),
            PinOutcome::RateLimited(code) => Ok(Some(RecordedReply::code(code))),
            PinOutcome::Declined(code) => match class {
                Some(class) => self.answer_code(class, key, code).await.map(Some),
                None => Ok(Some(RecordedReply::code(code))),
            },
        }
    }
}
