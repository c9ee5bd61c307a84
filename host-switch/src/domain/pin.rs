//! PIN verification rules for wallet cards, as pure functions: which BIN rule applies to a card,
//! what the key store must check (with which PVK version), what a verdict does to the card's
//! wrong-try counter, and the sliding windows that rate-limit wrong PINs per terminal and card.
//!
//! A card is known by its keyed reference ([`CardRef`], the same token the wallet ledger uses, see
//! [`WalletAccount`](super::WalletAccount)); the issuer provisions its verification data
//! (a Visa PVV or an IBM 3624 offset) under that reference, never under the PAN.
//!
//! ```text
//!  Active { wrong_tries: 0 } ──wrong──► Active { 1 } ──wrong──► … ──wrong (max_tries)──► Blocked
//!        ▲                                   │                                              │
//!        └──────────── right PIN ────────────┘                    operator unblock ─────────┘
//! ```
//! A blocked card is refused (75) without verifying. Every verification counts, whatever the
//! message type (a balance inquiry is not journaled, so the journal cannot stop its guesses). The
//! one exception is a replay: the same transaction (terminal, STAN, date-time) *and* the same
//! enciphered PIN block as the wrong try counted last, e.g. the agent repeating a request whose
//! answer was lost. Keeping fields 41/11/7 and changing field 52 is a new guess and is counted.
//! The block itself is never kept: only a digest of the enciphered block ([`BlockDigest`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;

use keystore::{EncryptedPinBlock, KeyName, KeyVersion, PinVerdict, PinVerification};
use protocols::types::Pan;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ResponseCode, TxnKey};

pub use super::card_ref::CardRef;

/// A card's PIN verification data, as the issuer provisioned it. `Debug` hides the digits.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum PinData {
    /// Visa PVV (4 digits) made with PVK index `pvki` (0-9).
    VisaPvv { pvki: u8, pvv: String },
    /// IBM 3624 offset (4-12 digits; its length is the PIN length).
    Ibm3624 { offset: String },
}

impl PinData {
    /// Checks the digits; the error names what is wrong, never the value.
    pub fn visa_pvv(pvki: u8, pvv: &str) -> Result<Self, String> {
        if pvki > 9 {
            return Err("pvki must be 0 to 9".into());
        }
        if pvv.len() != 4 || !pvv.bytes().all(|b| b.is_ascii_digit()) {
            return Err("pvv must be 4 digits".into());
        }
        Ok(Self::VisaPvv {
            pvki,
            pvv: pvv.to_owned(),
        })
    }
    pub fn ibm3624(offset: &str) -> Result<Self, String> {
        if !(4..=12).contains(&offset.len()) || !offset.bytes().all(|b| b.is_ascii_digit()) {
            return Err("offset must be 4 to 12 digits".into());
        }
        Ok(Self::Ibm3624 {
            offset: offset.to_owned(),
        })
    }
    pub fn method_name(&self) -> &'static str {
        match self {
            Self::VisaPvv { .. } => "visa_pvv",
            Self::Ibm3624 { .. } => "ibm3624",
        }
    }
}

impl fmt::Debug for PinData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VisaPvv { pvki, .. } => write!(f, "VisaPvv {{ pvki: {pvki}, pvv: **** }}"),
            Self::Ibm3624 { .. } => f.write_str("Ibm3624 { offset: **** }"),
        }
    }
}

/// Where a card stands with its PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PinStatus {
    Active { wrong_tries: u8 },
    Blocked,
}

impl PinStatus {
    pub const FRESH: PinStatus = PinStatus::Active { wrong_tries: 0 };
}

/// One card's PIN record as the switch keeps it (durably, next to the journal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardPinRecord {
    pub card: CardRef,
    /// `None`: the issuer's file no longer has data for the card (its counters are kept).
    pub data: Option<PinData>,
    pub status: PinStatus,
    /// The transaction (`TxnKey::as_string`) whose wrong PIN was counted last, so a replay of it
    /// is not counted again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_counted: Option<String>,
    /// The digest of that transaction's enciphered PIN block: a replay is the same transaction
    /// with the same block. Records written before it existed have none, and then nothing is a
    /// replay (a try too many is safer than a free guess).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_counted_block: Option<BlockDigest>,
}

/// A digest of one enciphered PIN block as it arrived for one transaction: SHA-256 over the
/// transaction key, the zone PIN key version and the 8 enciphered bytes, first 16 bytes in hex.
/// It tells a replay from a new guess without keeping the block; the block is enciphered under
/// the zone PIN key, so its digest says nothing about the PIN.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BlockDigest(String);

impl BlockDigest {
    pub fn of(txn: &TxnKey, zpk_version: KeyVersion, block: &EncryptedPinBlock) -> Self {
        let mut h = Sha256::new();
        h.update(b"pin-block-digest/v1\0");
        h.update(txn.as_string().as_bytes());
        h.update(b"\0");
        h.update(zpk_version.to_be_bytes());
        h.update(block.0);
        let digest = h.finalize();
        Self(digest[..16].iter().map(|b| format!("{b:02x}")).collect())
    }
}

impl fmt::Debug for BlockDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockDigest({})", self.0)
    }
}

impl CardPinRecord {
    pub fn new(card: CardRef, data: Option<PinData>) -> Self {
        Self {
            card,
            data,
            status: PinStatus::FRESH,
            last_counted: None,
            last_counted_block: None,
        }
    }

    /// The record after the issuer's file was read again: new data, same counters.
    pub fn reprovisioned(&self, data: Option<PinData>) -> Self {
        Self {
            data,
            ..self.clone()
        }
    }

    /// The record after an operator's unblock.
    pub fn unblocked(&self) -> Self {
        Self {
            status: PinStatus::FRESH,
            last_counted: None,
            last_counted_block: None,
            ..self.clone()
        }
    }

    pub fn wrong_tries(&self) -> Option<u8> {
        match self.status {
            PinStatus::Active { wrong_tries } => Some(wrong_tries),
            PinStatus::Blocked => None,
        }
    }
    pub fn is_blocked(&self) -> bool {
        self.status == PinStatus::Blocked
    }
}

/// How the cards of one BIN verify their PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinMethod {
    VisaPvv,
    Ibm3624 {
        /// 16 decimal digits mapping the 16 hex digits 0-F.
        decimalization: String,
        validation_start: usize,
        validation_len: usize,
        pad: char,
    },
}

impl PinMethod {
    pub fn name(&self) -> &'static str {
        match self {
            Self::VisaPvv => "visa_pvv",
            Self::Ibm3624 { .. } => "ibm3624",
        }
    }
}

/// One BIN rule: cards whose PAN starts with `prefix` verify their PIN with `method` and `pvk`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinRule {
    pub prefix: String,
    pub method: PinMethod,
    /// The PIN verification key's name in the key store.
    pub pvk: KeyName,
    /// Visa PVV only: which version of `pvk` a card's PVK index (PVKI, 0-9) selects. Empty: the
    /// key's only version (start-up refuses a rule without a map whose key has several versions:
    /// verifying under the wrong one would count every right PIN as wrong and block cards in bulk).
    pub pvk_versions: BTreeMap<u8, KeyVersion>,
}

/// The BIN rules, longest prefix first.
#[derive(Debug, Clone, Default)]
pub struct BinRules(Vec<BinRule>);

impl BinRules {
    pub fn new(mut rules: Vec<BinRule>) -> Self {
        rules.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Self(rules)
    }
    /// The rule for a card: the longest matching prefix. `None`: no PIN is checked for it.
    pub fn for_pan(&self, pan: &Pan) -> Option<&BinRule> {
        self.0.iter().find(|r| pan.expose().starts_with(&r.prefix))
    }
    pub fn iter(&self) -> impl Iterator<Item = &BinRule> {
        self.0.iter()
    }
}

/// What the key store must check for a card under a rule, or why it cannot be checked.
pub fn verification(rule: &BinRule, data: &PinData) -> Result<PinVerification, String> {
    match (&rule.method, data) {
        (PinMethod::VisaPvv, PinData::VisaPvv { pvki, pvv }) => Ok(PinVerification::VisaPvv {
            pvki: *pvki,
            pvv: pvv.clone(),
        }),
        (
            PinMethod::Ibm3624 {
                decimalization,
                validation_start,
                validation_len,
                pad,
            },
            PinData::Ibm3624 { offset },
        ) => Ok(PinVerification::Ibm3624 {
            offset: offset.clone(),
            decimalization: decimalization.clone(),
            validation_start: *validation_start,
            validation_len: *validation_len,
            pad: *pad,
        }),
        (method, data) => Err(format!(
            "the card has {} data but its BIN rule ({}) verifies with {}",
            data.method_name(),
            rule.prefix,
            method.name()
        )),
    }
}

/// Which version of the rule's PVK verifies a card: `Ok(None)` for the key's only version,
/// `Err` (naming the index, never the card's data) when the rule maps no version to its PVKI.
pub fn pvk_version(rule: &BinRule, data: &PinData) -> Result<Option<KeyVersion>, String> {
    match data {
        _ if rule.pvk_versions.is_empty() => Ok(None),
        PinData::VisaPvv { pvki, .. } => match rule.pvk_versions.get(pvki) {
            Some(v) => Ok(Some(*v)),
            None => Err(format!(
                "the card's PVK index {pvki} has no PVK version in its BIN rule ({}): add it to the rule's pvki map",
                rule.prefix
            )),
        },
        // The configuration allows a PVKI map on visa_pvv rules only.
        PinData::Ibm3624 { .. } => Ok(None),
    }
}

/// What a verdict means for the request and for the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinDecision {
    /// Right PIN: the request goes on.
    Verified,
    /// Wrong PIN, `tries` wrong in a row now (55).
    Wrong { tries: u8 },
    /// Wrong PIN and the card is blocked now, or was by this same transaction (75).
    Blocked,
}

impl PinDecision {
    /// The decline code, `None` when the request may go on.
    pub fn decline(self) -> Option<ResponseCode> {
        match self {
            Self::Verified => None,
            Self::Wrong { .. } => Some(ResponseCode::WrongPin),
            Self::Blocked => Some(ResponseCode::PinTriesExceeded),
        }
    }
}

/// Applies a verdict for transaction `txn`, whose enciphered PIN block has digest `block`, to a
/// card's record. Returns the decision and the new record when it changed (to be written durably
/// before answering); a wrong PIN with no new record was a replay and was not counted.
pub fn after_verdict(
    record: &CardPinRecord,
    verdict: PinVerdict,
    txn: &TxnKey,
    block: &BlockDigest,
    max_tries: u8,
) -> (PinDecision, Option<CardPinRecord>) {
    let txn = txn.as_string();
    let replay = record.last_counted.as_deref() == Some(txn.as_str())
        && record.last_counted_block.as_ref() == Some(block);
    match (verdict, record.status) {
        (_, PinStatus::Blocked) => (PinDecision::Blocked, None),
        (PinVerdict::Match, PinStatus::Active { wrong_tries: 0 }) => (PinDecision::Verified, None),
        (PinVerdict::Match, PinStatus::Active { .. }) => {
            let next = CardPinRecord {
                status: PinStatus::FRESH,
                last_counted: None,
                last_counted_block: None,
                ..record.clone()
            };
            (PinDecision::Verified, Some(next))
        }
        (PinVerdict::Mismatch, PinStatus::Active { wrong_tries }) if replay => {
            (PinDecision::Wrong { tries: wrong_tries }, None)
        }
        (PinVerdict::Mismatch, PinStatus::Active { wrong_tries }) => {
            let tries = wrong_tries.saturating_add(1);
            let (status, decision) = if tries >= max_tries {
                (PinStatus::Blocked, PinDecision::Blocked)
            } else {
                (
                    PinStatus::Active { wrong_tries: tries },
                    PinDecision::Wrong { tries },
                )
            };
            let next = CardPinRecord {
                status,
                last_counted: Some(txn),
                last_counted_block: Some(block.clone()),
                ..record.clone()
            };
            (decision, Some(next))
        }
    }
}

/// The tries and rate limits of the PIN step (`[pin]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinPolicy {
    /// Wrong PINs in a row that block a card.
    pub max_tries: u8,
    /// Wrong PINs per terminal: past it, the terminal's PIN requests are refused (58).
    pub terminal: WindowLimit,
    /// Wrong PINs per card, resets or not: past it, the card's PIN requests are refused (75).
    pub card: WindowLimit,
}

/// A rate limit on wrong PINs: at most `max_wrong` within any `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLimit {
    pub max_wrong: u32,
    pub window_ms: u64,
}

/// Wrong PINs per key (a terminal, a card) in a sliding window, in memory: once a key has
/// `max_wrong` in the window its PIN requests are refused without verifying until the oldest
/// falls out. Bounded: at most `max_wrong` instants per key and `capacity` keys (past it, keys
/// with nothing left in the window go first, then the key idle longest). A restart forgets the
/// windows; the card's durable counter still blocks it after `max_tries`.
#[derive(Debug)]
pub struct WrongPinWindow<K> {
    limit: WindowLimit,
    capacity: usize,
    seen: HashMap<K, VecDeque<u64>>,
}

impl<K: Hash + Eq + Clone> WrongPinWindow<K> {
    pub fn new(limit: WindowLimit, capacity: usize) -> Self {
        Self {
            limit,
            capacity: capacity.max(1),
            seen: HashMap::new(),
        }
    }

    pub fn limit(&self) -> WindowLimit {
        self.limit
    }

    /// Whether `key` has used up its wrong PINs at `now_ms`.
    pub fn is_limited(&mut self, key: &K, now_ms: u64) -> bool {
        self.wrong_in_window(key, now_ms) >= self.limit.max_wrong as usize
    }

    /// Counts one wrong PIN for `key` at `now_ms`; returns the wrong PINs now in its window.
    pub fn record(&mut self, key: &K, now_ms: u64) -> usize {
        if !self.seen.contains_key(key) && self.seen.len() >= self.capacity {
            self.evict(now_ms);
        }
        let max = self.limit.max_wrong.max(1) as usize;
        let stamps = self.seen.entry(key.clone()).or_default();
        stamps.push_back(now_ms);
        while stamps.len() > max {
            stamps.pop_front();
        }
        let window = self.limit.window_ms;
        stamps
            .iter()
            .filter(|t| now_ms.saturating_sub(**t) < window)
            .count()
    }

    fn wrong_in_window(&mut self, key: &K, now_ms: u64) -> usize {
        let window = self.limit.window_ms;
        let Some(stamps) = self.seen.get_mut(key) else {
            return 0;
        };
        while stamps
            .front()
            .is_some_and(|t| now_ms.saturating_sub(*t) >= window)
        {
            stamps.pop_front();
        }
        let n = stamps.len();
        if n == 0 {
            self.seen.remove(key);
        }
        n
    }

    fn evict(&mut self, now_ms: u64) {
        let window = self.limit.window_ms;
        self.seen.retain(|_, stamps| {
            stamps
                .back()
                .is_some_and(|t| now_ms.saturating_sub(*t) < window)
        });
        if self.seen.len() >= self.capacity {
            let idle = self
                .seen
                .iter()
                .min_by_key(|(_, stamps)| stamps.back().copied().unwrap_or(0))
                .map(|(k, _)| k.clone());
            if let Some(k) = idle {
                self.seen.remove(&k);
            }
        }
    }

    /// Keys tracked now (for tests of the bound).
    pub fn tracked(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocols::types::{Stan, TerminalId};

    fn txn(stan: u32) -> TxnKey {
        TxnKey::new(
            TerminalId::parse("ATM1").unwrap(),
            Stan::new(stan).unwrap(),
            "1125114000",
        )
    }
    fn block(txn: &TxnKey, n: u8) -> BlockDigest {
        BlockDigest::of(txn, 1, &EncryptedPinBlock([n; 8]))
    }
    /// A wrong try of transaction `stan` with PIN block number `n`.
    fn wrong(rec: &CardPinRecord, stan: u32, n: u8) -> (PinDecision, Option<CardPinRecord>) {
        let t = txn(stan);
        after_verdict(rec, PinVerdict::Mismatch, &t, &block(&t, n), 3)
    }
    fn right(rec: &CardPinRecord, stan: u32) -> (PinDecision, Option<CardPinRecord>) {
        let t = txn(stan);
        after_verdict(rec, PinVerdict::Match, &t, &block(&t, 0), 3)
    }
    fn pan() -> Pan {
        Pan::parse("4761739001010010").unwrap()
    }
    fn record() -> CardPinRecord {
        CardPinRecord::new(
            CardRef::for_tests(1),
            Some(PinData::visa_pvv(1, "1234").unwrap()),
        )
    }

    #[test]
    fn three_wrong_pins_block_the_card() {
        let mut rec = record();
        for (stan, expected) in [
            (1, PinDecision::Wrong { tries: 1 }),
            (2, PinDecision::Wrong { tries: 2 }),
            (3, PinDecision::Blocked),
        ] {
            let (d, next) = wrong(&rec, stan, 1);
            assert_eq!(d, expected);
            rec = next.expect("a counted try is written");
        }
        assert!(rec.is_blocked());
        let (d, next) = right(&rec, 4);
        assert_eq!(
            (d, next),
            (PinDecision::Blocked, None),
            "blocked stays blocked"
        );
        assert_eq!(d.decline(), Some(ResponseCode::PinTriesExceeded));
    }

    #[test]
    fn a_replayed_wrong_pin_is_not_counted_twice() {
        let (_, rec) = wrong(&record(), 1, 7);
        let rec = rec.unwrap();
        let (d, next) = wrong(&rec, 1, 7);
        assert_eq!((d, next), (PinDecision::Wrong { tries: 1 }, None));
    }

    #[test]
    fn another_pin_block_under_the_same_transaction_is_a_new_guess() {
        // Fields 41/11/7 kept, field 52 changed: each block is a guess and is counted.
        let mut rec = record();
        for (n, expected) in [
            (1, PinDecision::Wrong { tries: 1 }),
            (2, PinDecision::Wrong { tries: 2 }),
            (3, PinDecision::Blocked),
        ] {
            let (d, next) = wrong(&rec, 1, n);
            assert_eq!(d, expected, "block {n}");
            rec = next.expect("counted");
        }
        assert!(rec.is_blocked());
    }

    #[test]
    fn a_record_written_before_block_digests_counts_the_same_transaction_again() {
        let mut rec = record();
        rec.status = PinStatus::Active { wrong_tries: 1 };
        rec.last_counted = Some(txn(1).as_string());
        let (d, next) = wrong(&rec, 1, 1);
        assert_eq!(d, PinDecision::Wrong { tries: 2 });
        assert!(next.is_some());
        let old = r#"{"card":"card-000000000000000000000000","data":null,"status":{"state":"active","wrong_tries":1},"last_counted":"ATM1:000001:1125114000"}"#;
        let parsed: CardPinRecord = serde_json::from_str(old).expect("old records stay readable");
        assert_eq!(parsed.last_counted_block, None);
    }

    #[test]
    fn block_digests_depend_on_transaction_version_and_block_and_hide_it() {
        let (t1, t2) = (txn(1), txn(2));
        let b = EncryptedPinBlock([0xAB; 8]);
        let d = BlockDigest::of(&t1, 1, &b);
        assert_eq!(d, BlockDigest::of(&t1, 1, &b));
        assert_ne!(d, BlockDigest::of(&t2, 1, &b));
        assert_ne!(d, BlockDigest::of(&t1, 2, &b));
        assert_ne!(d, BlockDigest::of(&t1, 1, &EncryptedPinBlock([0xAC; 8])));
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json.len(), 2 + 32);
        assert!(!json.to_uppercase().contains("ABABABAB"));
    }

    #[test]
    fn a_right_pin_resets_the_counter_and_writes_only_when_needed() {
        let (d, next) = right(&record(), 1);
        assert_eq!((d, next), (PinDecision::Verified, None));
        let (_, rec) = wrong(&record(), 1, 1);
        let (d, next) = right(&rec.unwrap(), 2);
        assert_eq!(d, PinDecision::Verified);
        let next = next.unwrap();
        assert_eq!(
            (next.status, next.last_counted, next.last_counted_block),
            (PinStatus::FRESH, None, None)
        );
    }

    #[test]
    fn the_pvk_index_selects_the_pvk_version() {
        let mut rule = BinRule {
            prefix: "476173".into(),
            method: PinMethod::VisaPvv,
            pvk: KeyName::new("pvk/a").unwrap(),
            pvk_versions: BTreeMap::new(),
        };
        let v1 = PinData::visa_pvv(1, "1234").unwrap();
        let v3 = PinData::visa_pvv(3, "1234").unwrap();
        assert_eq!(
            pvk_version(&rule, &v1),
            Ok(None),
            "no map: the only version"
        );
        rule.pvk_versions = BTreeMap::from([(1, 1), (2, 2)]);
        assert_eq!(pvk_version(&rule, &v1), Ok(Some(1)));
        assert_eq!(
            pvk_version(&rule, &PinData::visa_pvv(2, "1234").unwrap()),
            Ok(Some(2))
        );
        let err = pvk_version(&rule, &v3).unwrap_err();
        assert!(
            err.contains("PVK index 3") && !err.contains("1234"),
            "{err}"
        );
    }

    #[test]
    fn wrong_pins_are_limited_in_a_sliding_window() {
        let limit = WindowLimit {
            max_wrong: 3,
            window_ms: 1_000,
        };
        let mut w = WrongPinWindow::new(limit, 100);
        let t = "ATM1".to_owned();
        assert!(!w.is_limited(&t, 0));
        assert_eq!(w.record(&t, 0), 1);
        assert_eq!(w.record(&t, 100), 2);
        assert!(!w.is_limited(&t, 200));
        assert_eq!(w.record(&t, 200), 3);
        assert!(w.is_limited(&t, 200));
        assert!(w.is_limited(&t, 999), "the first is still in the window");
        assert!(!w.is_limited(&t, 1_000), "the first fell out");
        assert!(!w.is_limited(&"ATM2".to_owned(), 200), "per key");
        assert!(!w.is_limited(&t, 5_000));
        assert_eq!(w.tracked(), 0, "an empty window is forgotten");
    }

    #[test]
    fn the_window_is_bounded_in_keys_and_instants() {
        let limit = WindowLimit {
            max_wrong: 2,
            window_ms: 10_000,
        };
        let mut w = WrongPinWindow::new(limit, 3);
        for i in 0..50u64 {
            w.record(&(i % 7), i);
            assert!(w.tracked() <= 3);
        }
        let mut one = WrongPinWindow::new(limit, 10);
        for i in 0..1_000 {
            one.record(&0u8, i);
        }
        assert!(one.is_limited(&0, 1_000));
        assert_eq!(one.seen[&0].len(), 2, "at most max_wrong instants per key");
    }

    #[test]
    fn reprovisioning_keeps_counters_and_unblock_resets_them() {
        let mut rec = record();
        rec.status = PinStatus::Blocked;
        let re = rec.reprovisioned(Some(PinData::ibm3624("7710").unwrap()));
        assert!(re.is_blocked());
        assert_eq!(re.data.as_ref().map(PinData::method_name), Some("ibm3624"));
        assert_eq!(re.unblocked().status, PinStatus::FRESH);
    }

    #[test]
    fn longest_bin_prefix_wins() {
        let pvk = KeyName::new("pvk/a").unwrap();
        let rules = BinRules::new(vec![
            BinRule {
                prefix: "4".into(),
                method: PinMethod::VisaPvv,
                pvk: pvk.clone(),
                pvk_versions: BTreeMap::new(),
            },
            BinRule {
                prefix: "476173".into(),
                method: PinMethod::Ibm3624 {
                    decimalization: "0123456789012345".into(),
                    validation_start: 0,
                    validation_len: 16,
                    pad: 'F',
                },
                pvk,
                pvk_versions: BTreeMap::new(),
            },
        ]);
        assert_eq!(rules.for_pan(&pan()).unwrap().prefix, "476173");
        assert!(rules
            .for_pan(&Pan::parse("5413330089020011").unwrap())
            .is_none());
    }

    #[test]
    fn data_of_another_method_cannot_be_verified() {
        let rule = BinRule {
            prefix: "4".into(),
            method: PinMethod::VisaPvv,
            pvk: KeyName::new("pvk/a").unwrap(),
            pvk_versions: BTreeMap::new(),
        };
        let err = verification(&rule, &PinData::ibm3624("1234").unwrap()).unwrap_err();
        assert!(err.contains("ibm3624"), "{err}");
        assert!(!err.contains("1234"), "no digits in the reason");
        assert!(verification(&rule, &PinData::visa_pvv(1, "5678").unwrap()).is_ok());
    }

    #[test]
    fn card_references_and_verification_data_are_checked() {
        // Card references are checked in `card_ref`.
        assert!(PinData::visa_pvv(10, "1234").is_err());
        assert!(PinData::visa_pvv(1, "12a4").is_err());
        assert!(PinData::ibm3624("123").is_err());
        assert_eq!(
            format!("{:?}", PinData::visa_pvv(1, "1234").unwrap()),
            "VisaPvv { pvki: 1, pvv: **** }"
        );
    }
}
