//! PIN verification rules for wallet cards, as pure functions: which BIN rule applies to a card,
//! what the key store must check, and what a verdict does to the card's wrong-try counter.
//!
//! A card is known by its reference (`card-` + 24 hex digits, the same token the wallet ledger
//! uses, see [`WalletAccount`](super::WalletAccount)); the issuer provisions its verification data
//! (a Visa PVV or an IBM 3624 offset) under that reference, never under the PAN.
//!
//! ```text
//!  Active { wrong_tries: 0 } ──wrong──► Active { 1 } ──wrong──► … ──wrong (max_tries)──► Blocked
//!        ▲                                   │                                              │
//!        └──────────── right PIN ────────────┘                    operator unblock ─────────┘
//! ```
//! A blocked card is refused (75) without verifying. A wrong PIN is counted once per transaction:
//! a replay of the same request (same terminal, STAN, date-time) never counts twice, even when the
//! recorded answer was lost in a crash.

use std::fmt;

use keystore::{KeyName, PinVerdict, PinVerification};
use protocols::types::Pan;
use serde::{Deserialize, Serialize};

use super::{ResponseCode, TxnKey, WalletAccount};

/// A card's reference: `card-` and the first 24 hex digits of SHA-256 over the PAN.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CardRef(String);

impl CardRef {
    pub fn for_card(pan: &Pan) -> Self {
        Self(WalletAccount::for_card(pan).as_str().to_owned())
    }

    /// A reference as the issuer's file or an operator writes it.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = s.len() == 29
            && s.starts_with("card-")
            && s[5..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            // The value is not echoed: it might be a PAN typed by mistake.
            Err("not a card reference (card- and 24 lowercase hex digits)".to_owned())
        }
    }

    /// An operator's way of naming a card: its reference, or its PAN (hashed at once, never kept).
    pub fn from_operator(s: &str) -> Result<Self, String> {
        if s.starts_with("card-") {
            return Self::parse(s);
        }
        Pan::parse(s)
            .map(|pan| Self::for_card(&pan))
            .map_err(|_| "not a card reference (card-…) nor a PAN".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CardRef {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}
impl From<CardRef> for String {
    fn from(c: CardRef) -> String {
        c.0
    }
}
impl fmt::Display for CardRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for CardRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardRef({})", self.0)
    }
}

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
}

impl CardPinRecord {
    pub fn new(card: CardRef, data: Option<PinData>) -> Self {
        Self {
            card,
            data,
            status: PinStatus::FRESH,
            last_counted: None,
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
    /// The PIN verification key's name in the key store (its current version is used).
    pub pvk: KeyName,
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

/// Applies a verdict for transaction `txn` to a card's record. Returns the decision and the new
/// record when it changed (to be written durably before answering).
pub fn after_verdict(
    record: &CardPinRecord,
    verdict: PinVerdict,
    txn: &TxnKey,
    max_tries: u8,
) -> (PinDecision, Option<CardPinRecord>) {
    let txn = txn.as_string();
    match (verdict, record.status) {
        (_, PinStatus::Blocked) => (PinDecision::Blocked, None),
        (PinVerdict::Match, PinStatus::Active { wrong_tries: 0 }) => (PinDecision::Verified, None),
        (PinVerdict::Match, PinStatus::Active { .. }) => {
            let next = CardPinRecord {
                status: PinStatus::FRESH,
                last_counted: None,
                ..record.clone()
            };
            (PinDecision::Verified, Some(next))
        }
        (PinVerdict::Mismatch, PinStatus::Active { wrong_tries })
            if record.last_counted.as_deref() == Some(txn.as_str()) =>
        {
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
                ..record.clone()
            };
            (decision, Some(next))
        }
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
    fn pan() -> Pan {
        Pan::parse("4761739001010010").unwrap()
    }
    fn record() -> CardPinRecord {
        CardPinRecord::new(
            CardRef::for_card(&pan()),
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
            let (d, next) = after_verdict(&rec, PinVerdict::Mismatch, &txn(stan), 3);
            assert_eq!(d, expected);
            rec = next.expect("a counted try is written");
        }
        assert!(rec.is_blocked());
        let (d, next) = after_verdict(&rec, PinVerdict::Match, &txn(4), 3);
        assert_eq!(
            (d, next),
            (PinDecision::Blocked, None),
            "blocked stays blocked"
        );
        assert_eq!(d.decline(), Some(ResponseCode::PinTriesExceeded));
    }

    #[test]
    fn a_replayed_wrong_pin_is_not_counted_twice() {
        let (_, rec) = after_verdict(&record(), PinVerdict::Mismatch, &txn(1), 3);
        let rec = rec.unwrap();
        let (d, next) = after_verdict(&rec, PinVerdict::Mismatch, &txn(1), 3);
        assert_eq!((d, next), (PinDecision::Wrong { tries: 1 }, None));
    }

    #[test]
    fn a_right_pin_resets_the_counter_and_writes_only_when_needed() {
        let (d, next) = after_verdict(&record(), PinVerdict::Match, &txn(1), 3);
        assert_eq!((d, next), (PinDecision::Verified, None));
        let (_, rec) = after_verdict(&record(), PinVerdict::Mismatch, &txn(1), 3);
        let (d, next) = after_verdict(&rec.unwrap(), PinVerdict::Match, &txn(2), 3);
        assert_eq!(d, PinDecision::Verified);
        let next = next.unwrap();
        assert_eq!((next.status, next.last_counted), (PinStatus::FRESH, None));
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
        };
        let err = verification(&rule, &PinData::ibm3624("1234").unwrap()).unwrap_err();
        assert!(err.contains("ibm3624"), "{err}");
        assert!(!err.contains("1234"), "no digits in the reason");
        assert!(verification(&rule, &PinData::visa_pvv(1, "5678").unwrap()).is_ok());
    }

    #[test]
    fn card_references_and_verification_data_are_checked() {
        let r = CardRef::for_card(&pan());
        assert_eq!(CardRef::parse(r.as_str()).unwrap(), r);
        assert_eq!(CardRef::from_operator("4761739001010010").unwrap(), r);
        assert!(CardRef::parse("card-XYZ").is_err());
        assert!(CardRef::from_operator("hello").is_err());
        assert!(PinData::visa_pvv(10, "1234").is_err());
        assert!(PinData::visa_pvv(1, "12a4").is_err());
        assert!(PinData::ibm3624("123").is_err());
        assert_eq!(
            format!("{:?}", PinData::visa_pvv(1, "1234").unwrap()),
            "VisaPvv { pvki: 1, pvv: **** }"
        );
    }
}
