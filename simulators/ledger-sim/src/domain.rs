//! The wallet's books: accounts, holds, postings and the double-entry invariant.
//!
//! No I/O, no async, no clock: the store reads and writes these values and passes the time in.
//! Every balance change is a [`post`] — one debit and one credit of the same amount between two
//! accounts in the same currency — so the sum of signed balances over all accounts stays zero.
//!
//! Sign convention: `balance_minor` is what the bank owes the account holder (credits minus
//! debits). A funded customer account is positive; `funding:<CUR>`, which every opening balance
//! comes from, goes negative by the same amount. `atm-cash:<CUR>` is the clearing account for cash:
//! a withdrawal (capture) credits it, a deposit debits it.
//!
//! A hold only reduces what is *available* (`balance - held`); money moves at capture.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Largest accepted amount, in minor units (10^15: fits i64 with room for sums).
pub const AMOUNT_MINOR_MAX: u64 = 1_000_000_000_000_000;
/// Longest customer account id.
pub const ACCOUNT_ID_LEN_MAX: usize = 64;
/// Longest reference text.
pub const REFERENCE_LEN_MAX: usize = 128;
/// Longest idempotency key.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 128;

/// Every way a request can be refused by the books. `code()` is the wire error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    #[error("invalid currency {0:?}: expected an ISO 4217 alpha code such as \"EUR\"")]
    InvalidCurrency(String),
    #[error("invalid account id: {0}")]
    InvalidAccount(String),
    #[error("invalid reference: {0}")]
    InvalidReference(String),
    #[error("invalid idempotency key: {0}")]
    InvalidIdempotencyKey(String),
    #[error("account {account} is kept in {expected}, the request is in {got}")]
    CurrencyMismatch {
        account: String,
        expected: Currency,
        got: Currency,
    },
    #[error("unknown account {0}")]
    UnknownAccount(String),
    #[error("unknown hold {0}")]
    UnknownHold(String),
    #[error("insufficient funds: {available_minor} available, {requested_minor} requested")]
    InsufficientFunds {
        available_minor: i64,
        requested_minor: u64,
    },
    #[error("idempotency key {0:?} was already used with different request content")]
    IdempotencyConflict(String),
    #[error("hold {0} is already voided")]
    HoldVoided(String),
    #[error("hold {hold_id} is already captured for {captured_minor}")]
    HoldCaptured {
        hold_id: String,
        captured_minor: u64,
    },
    #[error("capture of {requested_minor} exceeds the held {held_minor}")]
    CaptureExceedsHold {
        held_minor: u64,
        requested_minor: u64,
    },
    #[error("account {account} already exists in {currency}")]
    AccountExists { account: String, currency: Currency },
    #[error("balance arithmetic overflow on account {0}")]
    Overflow(String),
}

impl DomainError {
    /// The stable error code clients match on (the `error` field of an error body).
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::InvalidAmount(_) => "invalid_amount",
            DomainError::InvalidCurrency(_) => "invalid_currency",
            DomainError::InvalidAccount(_) => "invalid_account",
            DomainError::InvalidReference(_) => "invalid_reference",
            DomainError::InvalidIdempotencyKey(_) => "invalid_idempotency_key",
            DomainError::CurrencyMismatch { .. } => "currency_mismatch",
            DomainError::UnknownAccount(_) => "unknown_account",
            DomainError::UnknownHold(_) => "unknown_hold",
            DomainError::InsufficientFunds { .. } => "insufficient_funds",
            DomainError::IdempotencyConflict(_) => "idempotency_conflict",
            DomainError::HoldVoided(_) => "hold_voided",
            DomainError::HoldCaptured { .. } => "hold_captured",
            DomainError::CaptureExceedsHold { .. } => "capture_exceeds_hold",
            DomainError::AccountExists { .. } => "account_exists",
            DomainError::Overflow(_) => "overflow",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Value types: a value that exists is valid.
// ---------------------------------------------------------------------------------------------

/// ISO 4217 alpha currency code: three upper-case ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        match text.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => {
                Ok(Currency([*a, *b, *c]))
            }
            _ => Err(DomainError::InvalidCurrency(truncate(text, 16))),
        }
    }
    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters get in through `parse`.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Currency::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A positive amount in minor units, at most [`AMOUNT_MINOR_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AmountMinor(u64);

impl AmountMinor {
    pub fn new(minor: u64) -> Result<Self, DomainError> {
        if minor == 0 {
            return Err(DomainError::InvalidAmount(
                "amount_minor must be at least 1".into(),
            ));
        }
        if minor > AMOUNT_MINOR_MAX {
            return Err(DomainError::InvalidAmount(format!(
                "amount_minor must be at most {AMOUNT_MINOR_MAX}"
            )));
        }
        Ok(AmountMinor(minor))
    }
    pub fn get(self) -> u64 {
        self.0
    }
    fn signed(self) -> i64 {
        // AMOUNT_MINOR_MAX < i64::MAX, so this never saturates.
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }
}

/// A customer account id: 1..=64 characters of `A-Z a-z 0-9 . _ -`. Ids with `:` are reserved
/// for the ledger's own accounts (`funding:EUR`, `atm-cash:EUR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerAccount(String);

impl CustomerAccount {
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        if text.is_empty() || text.len() > ACCOUNT_ID_LEN_MAX {
            return Err(DomainError::InvalidAccount(format!(
                "length must be 1..={ACCOUNT_ID_LEN_MAX}"
            )));
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(DomainError::InvalidAccount(format!(
                "{:?}: only A-Z a-z 0-9 . _ - are allowed (ids with ':' are internal)",
                truncate(text, 70)
            )));
        }
        Ok(CustomerAccount(text.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The internal account every opening balance is funded from.
pub fn funding_account(currency: Currency) -> String {
    format!("funding:{currency}")
}

/// The cash clearing account: withdrawals credit it, deposits debit it.
pub fn cash_account(currency: Currency) -> String {
    format!("atm-cash:{currency}")
}

/// Free text the client uses to find its postings again (e.g. terminal:stan:date), 0..=128
/// characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference(String);

impl Reference {
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        if text.chars().count() > REFERENCE_LEN_MAX {
            return Err(DomainError::InvalidReference(format!(
                "at most {REFERENCE_LEN_MAX} characters"
            )));
        }
        if text.chars().any(char::is_control) {
            return Err(DomainError::InvalidReference(
                "control characters are not allowed".into(),
            ));
        }
        Ok(Reference(text.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client-chosen key that makes a request safe to retry: 1..=128 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        if text.is_empty() || text.len() > IDEMPOTENCY_KEY_LEN_MAX {
            return Err(DomainError::InvalidIdempotencyKey(format!(
                "length must be 1..={IDEMPOTENCY_KEY_LEN_MAX}"
            )));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(DomainError::InvalidIdempotencyKey(
                "only printable ASCII without spaces is allowed".into(),
            ));
        }
        Ok(IdempotencyKey(text.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// ---------------------------------------------------------------------------------------------
// Entities
// ---------------------------------------------------------------------------------------------

/// One account of the books, customer or internal. One currency per account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub account: String,
    pub currency: Currency,
    /// Credits minus debits. Negative only for internal accounts.
    pub balance_minor: i64,
    /// Sum of the amounts of this account's holds in status `held`.
    pub held_minor: u64,
}

impl Account {
    pub fn new(account: impl Into<String>, currency: Currency) -> Self {
        Account {
            account: account.into(),
            currency,
            balance_minor: 0,
            held_minor: 0,
        }
    }

    /// What may still be held or debited: balance minus holds.
    pub fn available_minor(&self) -> i64 {
        let held = i64::try_from(self.held_minor).unwrap_or(i64::MAX);
        self.balance_minor.saturating_sub(held)
    }

    fn check_currency(&self, currency: Currency) -> Result<(), DomainError> {
        if self.currency == currency {
            Ok(())
        } else {
            Err(DomainError::CurrencyMismatch {
                account: self.account.clone(),
                expected: self.currency,
                got: currency,
            })
        }
    }

    fn check_available(&self, amount: AmountMinor) -> Result<(), DomainError> {
        if self.available_minor() >= amount.signed() {
            Ok(())
        } else {
            Err(DomainError::InsufficientFunds {
                available_minor: self.available_minor(),
                requested_minor: amount.get(),
            })
        }
    }
}

/// The life of a hold: `held` → `captured` | `voided`, nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Held,
    Captured,
    Voided,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub hold_id: String,
    pub account: String,
    pub amount_minor: u64,
    pub currency: Currency,
    pub reference: String,
    pub status: HoldStatus,
    pub captured_minor: u64,
    pub created_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// Opening balance: debit `funding:<CUR>`, credit the customer.
    Funding,
    /// Captured withdrawal: debit the customer, credit `atm-cash:<CUR>`.
    Capture,
    /// Deposit or compensating credit: debit `atm-cash:<CUR>`, credit the customer.
    Credit,
    /// Compensating debit: debit the customer, credit `atm-cash:<CUR>`.
    Debit,
}

/// One posting: a debit and a credit of the same amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Movement {
    pub movement_id: String,
    pub kind: MovementKind,
    pub debit_account: String,
    pub credit_account: String,
    pub amount_minor: u64,
    pub currency: Currency,
    pub reference: String,
    pub idempotency_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    pub at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    Credit,
    Debit,
}

/// A direct posting on a customer account (deposit or compensation), as answered to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub transaction_id: String,
    pub movement_id: String,
    pub account: String,
    pub kind: TransactionKind,
    pub amount_minor: u64,
    pub currency: Currency,
    pub reference: String,
    pub created_at: String,
}

// ---------------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------------

/// Moves `amount` from `debit` to `credit`. Both balances change or neither does.
pub fn post(
    debit: &mut Account,
    credit: &mut Account,
    amount: AmountMinor,
) -> Result<(), DomainError> {
    debit.check_currency(credit.currency)?;
    let debit_after = debit
        .balance_minor
        .checked_sub(amount.signed())
        .ok_or_else(|| DomainError::Overflow(debit.account.clone()))?;
    let credit_after = credit
        .balance_minor
        .checked_add(amount.signed())
        .ok_or_else(|| DomainError::Overflow(credit.account.clone()))?;
    debit.balance_minor = debit_after;
    credit.balance_minor = credit_after;
    Ok(())
}

/// Reserves `amount` on a customer account; a new hold in status `held` is the caller's to record.
pub fn place_hold(
    account: &mut Account,
    amount: AmountMinor,
    currency: Currency,
) -> Result<(), DomainError> {
    account.check_currency(currency)?;
    account.check_available(amount)?;
    account.held_minor = account
        .held_minor
        .checked_add(amount.get())
        .ok_or_else(|| DomainError::Overflow(account.account.clone()))?;
    Ok(())
}

/// What a capture did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureEffect {
    /// The hold went `held` → `captured`; the caller records one capture movement.
    Captured,
    /// The hold was already captured for this very amount: nothing changes.
    AlreadyCaptured,
}

/// Captures `amount` (≤ held) of a hold: the customer is debited that much, `cash` credited, and
/// the whole hold is released from `held_minor` (the rest of it goes back to available).
pub fn capture_hold(
    hold: &mut Hold,
    customer: &mut Account,
    cash: &mut Account,
    amount: AmountMinor,
) -> Result<CaptureEffect, DomainError> {
    match hold.status {
        HoldStatus::Voided => Err(DomainError::HoldVoided(hold.hold_id.clone())),
        HoldStatus::Captured if hold.captured_minor == amount.get() => {
            Ok(CaptureEffect::AlreadyCaptured)
        }
        HoldStatus::Captured => Err(DomainError::HoldCaptured {
            hold_id: hold.hold_id.clone(),
            captured_minor: hold.captured_minor,
        }),
        HoldStatus::Held => {
            if amount.get() > hold.amount_minor {
                return Err(DomainError::CaptureExceedsHold {
                    held_minor: hold.amount_minor,
                    requested_minor: amount.get(),
                });
            }
            release(customer, hold.amount_minor)?;
            post(customer, cash, amount)?;
            hold.status = HoldStatus::Captured;
            hold.captured_minor = amount.get();
            Ok(CaptureEffect::Captured)
        }
    }
}

/// What a void did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoidEffect {
    Voided,
    AlreadyVoided,
}

/// Voids a hold: its amount goes back to available, no money moves.
pub fn void_hold(hold: &mut Hold, customer: &mut Account) -> Result<VoidEffect, DomainError> {
    match hold.status {
        HoldStatus::Voided => Ok(VoidEffect::AlreadyVoided),
        HoldStatus::Captured => Err(DomainError::HoldCaptured {
            hold_id: hold.hold_id.clone(),
            captured_minor: hold.captured_minor,
        }),
        HoldStatus::Held => {
            release(customer, hold.amount_minor)?;
            hold.status = HoldStatus::Voided;
            Ok(VoidEffect::Voided)
        }
    }
}

fn release(customer: &mut Account, amount_minor: u64) -> Result<(), DomainError> {
    customer.held_minor = customer
        .held_minor
        .checked_sub(amount_minor)
        .ok_or_else(|| DomainError::Overflow(customer.account.clone()))?;
    Ok(())
}

/// A deposit (credit: cash → customer) or a compensating debit (customer → cash). A debit never
/// takes the customer below what it has available (holds count): it is refused instead.
pub fn apply_transaction(
    kind: TransactionKind,
    customer: &mut Account,
    cash: &mut Account,
    amount: AmountMinor,
    currency: Currency,
) -> Result<(), DomainError> {
    customer.check_currency(currency)?;
    match kind {
        TransactionKind::Credit => post(cash, customer, amount),
        TransactionKind::Debit => {
            customer.check_available(amount)?;
            post(customer, cash, amount)
        }
    }
}

/// Sum of signed balances per currency; the books balance when every sum is zero.
pub fn sum_by_currency<'a>(
    accounts: impl IntoIterator<Item = &'a Account>,
) -> BTreeMap<String, i128> {
    let mut sums = BTreeMap::new();
    for account in accounts {
        *sums.entry(account.currency.to_string()).or_insert(0i128) +=
            i128::from(account.balance_minor);
    }
    sums
}

/// Formats milliseconds since the Unix epoch as RFC 3339 UTC, e.g. `2026-11-25T11:44:59.123Z`.
pub fn rfc3339_millis(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn truncate(text: &str, chars_max: usize) -> String {
    text.chars().take(chars_max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }
    fn amount(minor: u64) -> AmountMinor {
        AmountMinor::new(minor).unwrap()
    }
    fn funded(minor: u64) -> (Account, Account) {
        let mut funding = Account::new(funding_account(eur()), eur());
        let mut alice = Account::new("alice", eur());
        post(&mut funding, &mut alice, amount(minor)).unwrap();
        (funding, alice)
    }
    fn hold(minor: u64) -> Hold {
        Hold {
            hold_id: "hold-1".into(),
            account: "alice".into(),
            amount_minor: minor,
            currency: eur(),
            reference: "t1:000001:1125114459".into(),
            status: HoldStatus::Held,
            captured_minor: 0,
            created_at: rfc3339_millis(0),
        }
    }

    #[test]
    fn currency_accepts_only_three_upper_case_letters() {
        assert_eq!(eur().as_str(), "EUR");
        for bad in ["eur", "EU", "EURO", "978", "", "É€R"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn amounts_are_positive_and_bounded() {
        assert!(AmountMinor::new(0).is_err());
        assert!(AmountMinor::new(AMOUNT_MINOR_MAX + 1).is_err());
        assert_eq!(
            AmountMinor::new(AMOUNT_MINOR_MAX).unwrap().get(),
            AMOUNT_MINOR_MAX
        );
    }

    #[test]
    fn customer_ids_with_colon_are_reserved() {
        assert!(CustomerAccount::parse("alice-01.x_y").is_ok());
        assert!(CustomerAccount::parse("funding:EUR").is_err());
        assert!(CustomerAccount::parse("").is_err());
        assert!(CustomerAccount::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn keys_and_references_reject_control_characters() {
        assert!(IdempotencyKey::parse("T1:000001:1125114459").is_ok());
        assert!(IdempotencyKey::parse("a b").is_err());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(Reference::parse("").is_ok());
        assert!(Reference::parse("line\nbreak").is_err());
    }

    #[test]
    fn posting_keeps_the_books_balanced() {
        let (funding, alice) = funded(10_000);
        assert_eq!(alice.balance_minor, 10_000);
        assert_eq!(funding.balance_minor, -10_000);
        assert_eq!(sum_by_currency([&funding, &alice])["EUR"], 0);
    }

    #[test]
    fn posting_refuses_mixed_currencies() {
        let mut a = Account::new("a", eur());
        let mut b = Account::new("b", Currency::parse("USD").unwrap());
        assert_eq!(
            post(&mut a, &mut b, amount(1)).unwrap_err().code(),
            "currency_mismatch"
        );
        assert_eq!((a.balance_minor, b.balance_minor), (0, 0));
    }

    #[test]
    fn hold_reduces_available_only() {
        let (_, mut alice) = funded(10_000);
        place_hold(&mut alice, amount(4_000), eur()).unwrap();
        assert_eq!(alice.balance_minor, 10_000);
        assert_eq!(alice.available_minor(), 6_000);
        let err = place_hold(&mut alice, amount(6_001), eur()).unwrap_err();
        assert_eq!(err.code(), "insufficient_funds");
        assert_eq!(alice.held_minor, 4_000);
    }

    #[test]
    fn partial_capture_moves_only_the_captured_amount_and_releases_the_rest() {
        let (funding, mut alice) = funded(10_000);
        let mut cash = Account::new(cash_account(eur()), eur());
        place_hold(&mut alice, amount(4_000), eur()).unwrap();
        let mut h = hold(4_000);
        let effect = capture_hold(&mut h, &mut alice, &mut cash, amount(2_500)).unwrap();
        assert_eq!(effect, CaptureEffect::Captured);
        assert_eq!((h.status, h.captured_minor), (HoldStatus::Captured, 2_500));
        assert_eq!((alice.balance_minor, alice.held_minor), (7_500, 0));
        assert_eq!(cash.balance_minor, 2_500);
        assert_eq!(sum_by_currency([&funding, &alice, &cash])["EUR"], 0);
    }

    #[test]
    fn capture_state_machine_is_exhaustive() {
        let (_, mut alice) = funded(10_000);
        let mut cash = Account::new(cash_account(eur()), eur());
        place_hold(&mut alice, amount(1_000), eur()).unwrap();
        let mut h = hold(1_000);
        let err = capture_hold(&mut h, &mut alice, &mut cash, amount(1_001)).unwrap_err();
        assert_eq!(err.code(), "capture_exceeds_hold");
        capture_hold(&mut h, &mut alice, &mut cash, amount(1_000)).unwrap();
        let again = capture_hold(&mut h, &mut alice, &mut cash, amount(1_000)).unwrap();
        assert_eq!(again, CaptureEffect::AlreadyCaptured);
        assert_eq!(
            alice.balance_minor, 9_000,
            "a repeated capture moves nothing"
        );
        let other = capture_hold(&mut h, &mut alice, &mut cash, amount(500)).unwrap_err();
        assert_eq!(other.code(), "hold_captured");
        assert_eq!(
            void_hold(&mut h, &mut alice).unwrap_err().code(),
            "hold_captured"
        );
    }

    #[test]
    fn void_releases_the_hold_and_is_idempotent() {
        let (_, mut alice) = funded(10_000);
        let mut cash = Account::new(cash_account(eur()), eur());
        place_hold(&mut alice, amount(3_000), eur()).unwrap();
        let mut h = hold(3_000);
        assert_eq!(void_hold(&mut h, &mut alice).unwrap(), VoidEffect::Voided);
        assert_eq!(alice.available_minor(), 10_000);
        assert_eq!(
            void_hold(&mut h, &mut alice).unwrap(),
            VoidEffect::AlreadyVoided
        );
        assert_eq!(alice.held_minor, 0);
        let err = capture_hold(&mut h, &mut alice, &mut cash, amount(1)).unwrap_err();
        assert_eq!(err.code(), "hold_voided");
    }

    #[test]
    fn debit_never_goes_below_available() {
        let (_, mut alice) = funded(1_000);
        let mut cash = Account::new(cash_account(eur()), eur());
        place_hold(&mut alice, amount(600), eur()).unwrap();
        let err = apply_transaction(
            TransactionKind::Debit,
            &mut alice,
            &mut cash,
            amount(401),
            eur(),
        )
        .unwrap_err();
        assert_eq!(err.code(), "insufficient_funds");
        apply_transaction(
            TransactionKind::Debit,
            &mut alice,
            &mut cash,
            amount(400),
            eur(),
        )
        .unwrap();
        apply_transaction(
            TransactionKind::Credit,
            &mut alice,
            &mut cash,
            amount(50),
            eur(),
        )
        .unwrap();
        assert_eq!((alice.balance_minor, cash.balance_minor), (650, 350));
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(
            rfc3339_millis(1_795_607_099_000),
            "2026-11-25T11:44:59.000Z"
        );
    }
}
