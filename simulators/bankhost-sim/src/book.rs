//! The host's books: accounts by PAN and every original transaction by its key. No I/O, no
//! async: the server calls it under a lock and the tests below drive it directly.
//!
//! An original transaction is identified by (field 41, field 11, field 7) of the original, which an
//! advice or reversal names as (its own field 41, field 90's STAN, field 90's date-time). Each key
//! has one [`State`]; a repeat (a second 0100 with the same key, an 0221, a second 0420 …) finds
//! the state already moved and changes nothing: every effect is applied once.
//!
//! Money: an account has an opening balance, holds (reduce what is available, move nothing), and
//! postings (debits and credits). [`Position`] is what the host's record says happened to a card,
//! net of reversals: a withdrawal that was reversed leaves nothing behind.

use std::collections::HashMap;

use protocols::types::{Currency, Pan};

use crate::config::{CardConfig, CardPattern};

/// ISO 8583:1987 response codes this host answers with.
pub mod codes {
    pub const APPROVED: &str = "00";
    pub const DO_NOT_HONOUR: &str = "05";
    pub const INVALID_TRANSACTION: &str = "12";
    pub const UNKNOWN_CARD: &str = "14";
    pub const FORMAT_ERROR: &str = "30";
    pub const INSUFFICIENT_FUNDS: &str = "51";
    pub const WRONG_PIN: &str = "55";
    pub const NOT_PERMITTED: &str = "57";
    /// A late original whose key a reversal already closed (see [`super::State::ReversedUnseen`]).
    pub const DUPLICATE: &str = "94";
}

/// A response code (field 39): two alphanumeric characters, `Copy` so states stay `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code([u8; 2]);

impl Code {
    /// `None` unless `text` is 2 ASCII alphanumeric characters.
    pub fn parse(text: &str) -> Option<Code> {
        match text.as_bytes() {
            &[a, b] if a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric() => Some(Code([a, b])),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("96")
    }
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&'static str> for Code {
    /// For the constants of [`codes`]; anything else becomes 96 (system malfunction).
    fn from(text: &'static str) -> Code {
        Code::parse(text).unwrap_or(Code(*b"96"))
    }
}

/// The key of an original transaction: terminal (field 41, trailing spaces trimmed), STAN
/// (field 11) and transmission date-time (field 7, `MMDDhhmmss`; empty when absent or zeros).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxnKey {
    pub terminal: String,
    pub stan: u32,
    pub transmission: String,
}

/// What an original does to its account once approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 0100 withdrawal: a hold, later completed (0220) or released (0420).
    Authorization,
    /// 0200 withdrawal, or a completion advice for an original never seen: a debit at once.
    Debit,
    /// 0200 deposit: a credit at once.
    Credit,
    /// Balance inquiry: nothing.
    Inquiry,
}

/// Where an original stands. Moves only forward:
/// `Held → Posted → Reversed`, `Held → Reversed`, `Posted → Reversed`; `Declined`, `Inquired` and
/// `ReversedUnseen` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Declined with this code: nothing applied; a repeat gets the same answer.
    Declined { code: Code },
    /// An approved inquiry.
    Inquired,
    /// An approved authorization holding `amount`.
    Held { amount: u64 },
    /// Debited (Authorization completed, Debit) or credited (Credit) `amount`.
    Posted { amount: u64 },
    /// Reversed; `remaining` is what stays posted (a partial reversal), 0 when fully undone.
    Reversed { remaining: u64 },
    /// A reversal came for a key the host had not seen; acknowledged, nothing applied. A late
    /// original with this key is declined [`codes::DUPLICATE`] (94): the acquirer has already
    /// given it up, so applying it would leave money moved that nobody will reverse again.
    ReversedUnseen,
}

/// An original transaction in the book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    /// `None` for a reversal of an original never seen (it may not name a card).
    pub pan: Option<Pan>,
    pub kind: Kind,
    pub state: State,
    /// The approval code (field 38) given when approved.
    pub approval_code: Option<String>,
}

/// What the host's record says happened to a card, in minor units, net of reversals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// Open authorization holds.
    pub held: u64,
    /// Debits that stand (withdrawals, completions), after reversals.
    pub debited: u64,
    /// Credits that stand (deposits), after reversals.
    pub credited: u64,
    /// `credited - debited`: how far the ledger balance moved from the opening balance.
    pub net: i64,
    /// Amounts undone by reversals (holds released, debits credited back, deposits debited back).
    pub reversed: u64,
}

impl Position {
    fn add(&mut self, other: &Position) {
        self.held += other.held;
        self.debited += other.debited;
        self.credited += other.credited;
        self.net += other.net;
        self.reversed += other.reversed;
    }
    fn settle_net(&mut self) {
        self.net = self.credited as i64 - self.debited as i64;
    }
}

/// All cards together, with counts of what the host decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Sums over every card's [`Position`].
    pub position: Position,
    pub approved: u64,
    pub declined: u64,
    /// Reversals that undid (part of) an original.
    pub reversals_applied: u64,
    /// Reversals acknowledged for an original the host never saw.
    pub reversals_unmatched: u64,
    /// Completion advices that posted a debit.
    pub completions_applied: u64,
    /// Advices and reversals that changed nothing because their effect was already applied.
    pub repeats_ignored: u64,
}

/// A card's balances, for field 54.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountView {
    pub currency: Currency,
    pub opening_minor: i64,
    pub ledger_minor: i64,
    pub available_minor: i64,
    pub position: Position,
}

#[derive(Debug)]
struct Account {
    currency: Currency,
    opening: i64,
    position: Position,
}

impl Account {
    fn available(&self) -> i64 {
        self.opening + self.position.net - self.position.held as i64
    }
}

/// Why a request is not approved: an ISO response code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decline(pub &'static str);

/// What an advice or reversal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUp {
    /// Its effect was applied now.
    Applied,
    /// It had been applied already (a repeat) or there was nothing to undo.
    AlreadyApplied,
    /// It named an original the host never saw (recorded, see [`State::ReversedUnseen`]).
    UnknownOriginal,
}

/// Accounts and originals.
#[derive(Debug, Default)]
pub struct Book {
    cards: Vec<(CardPattern, CardConfig)>,
    accounts: HashMap<Pan, Account>,
    originals: HashMap<TxnKey, Original>,
    totals: Totals,
    approvals: u64,
}

impl Book {
    pub fn new() -> Book {
        Book::default()
    }

    /// Adds a card or range, or replaces the entry with the same `pan`. An account already
    /// opened keeps its movements and takes the new opening balance and currency.
    pub fn add_card(&mut self, card: CardConfig) -> Result<(), crate::config::ConfigError> {
        let pattern = card.pattern()?;
        if let CardPattern::Exact(pan) = &pattern {
            if let Some(account) = self.accounts.get_mut(pan) {
                account.opening = card.balance_minor as i64;
                account.currency = card.currency;
            }
        }
        match self.cards.iter_mut().find(|(p, _)| *p == pattern) {
            Some(entry) => entry.1 = card,
            None => self.cards.push((pattern, card)),
        }
        Ok(())
    }

    /// The card entry for `pan`: the exact PAN, else the longest matching prefix.
    pub fn card(&self, pan: &Pan) -> Option<&CardConfig> {
        let mut best: Option<(usize, &CardConfig)> = None;
        for (pattern, card) in &self.cards {
            let rank = match pattern {
                CardPattern::Exact(p) if p == pan => usize::MAX,
                CardPattern::Prefix(prefix) if pan.expose().starts_with(prefix.as_str()) => {
                    prefix.len()
                }
                _ => continue,
            };
            if best.is_none_or(|(r, _)| rank > r) {
                best = Some((rank, card));
            }
        }
        best.map(|(_, c)| c)
    }

    fn account(&mut self, pan: &Pan) -> Result<&mut Account, Decline> {
        if !self.accounts.contains_key(pan) {
            let card = self.card(pan).ok_or(Decline(codes::UNKNOWN_CARD))?;
            let account = Account {
                currency: card.currency,
                opening: card.balance_minor as i64,
                position: Position::default(),
            };
            self.accounts.insert(pan.clone(), account);
        }
        self.accounts
            .get_mut(pan)
            .ok_or(Decline(codes::UNKNOWN_CARD))
    }

    pub fn original(&self, key: &TxnKey) -> Option<&Original> {
        self.originals.get(key)
    }

    pub fn account_view(&self, pan: &Pan) -> Option<AccountView> {
        let (currency, opening, position) = match self.accounts.get(pan) {
            Some(a) => (a.currency, a.opening, a.position),
            None => {
                let card = self.card(pan)?;
                (
                    card.currency,
                    card.balance_minor as i64,
                    Position::default(),
                )
            }
        };
        Some(AccountView {
            currency,
            opening_minor: opening,
            ledger_minor: opening + position.net,
            available_minor: opening + position.net - position.held as i64,
            position,
        })
    }

    pub fn position(&self, pan: &Pan) -> Position {
        self.accounts
            .get(pan)
            .map(|a| a.position)
            .unwrap_or_default()
    }

    pub fn totals(&self) -> Totals {
        let mut totals = self.totals;
        totals.position = Position::default();
        for account in self.accounts.values() {
            totals.position.add(&account.position);
        }
        totals
    }

    fn next_approval_code(&mut self) -> String {
        self.approvals += 1;
        format!("{:06}", self.approvals % 1_000_000)
    }

    /// Records a decline for `key` (so a repeat gets the same answer).
    pub fn decline(&mut self, key: TxnKey, pan: Option<Pan>, kind: Kind, code: Code) {
        self.totals.declined += 1;
        self.originals.insert(
            key,
            Original {
                pan,
                kind,
                state: State::Declined { code },
                approval_code: None,
            },
        );
    }

    /// Approves an original of `kind` for `amount` (0 for an inquiry) and applies it, or declines
    /// it for lack of card or funds (recording the decline). The caller has looked up `key` first
    /// and checked PIN and rules.
    pub fn approve(
        &mut self,
        key: TxnKey,
        pan: &Pan,
        kind: Kind,
        amount: u64,
    ) -> Result<String, Decline> {
        let result = self.apply_original(pan, kind, amount);
        let state = match result {
            Ok(state) => state,
            Err(Decline(code)) => {
                self.decline(key, Some(pan.clone()), kind, code.into());
                return Err(Decline(code));
            }
        };
        let approval_code = self.next_approval_code();
        self.totals.approved += 1;
        self.originals.insert(
            key,
            Original {
                pan: Some(pan.clone()),
                kind,
                state,
                approval_code: Some(approval_code.clone()),
            },
        );
        Ok(approval_code)
    }

    fn apply_original(&mut self, pan: &Pan, kind: Kind, amount: u64) -> Result<State, Decline> {
        let account = self.account(pan)?;
        let money_out = matches!(kind, Kind::Authorization | Kind::Debit);
        if money_out && account.available() < amount as i64 {
            return Err(Decline(codes::INSUFFICIENT_FUNDS));
        }
        let p = &mut account.position;
        let state = match kind {
            Kind::Authorization => {
                p.held += amount;
                State::Held { amount }
            }
            Kind::Debit => {
                p.debited += amount;
                State::Posted { amount }
            }
            Kind::Credit => {
                p.credited += amount;
                State::Posted { amount }
            }
            Kind::Inquiry => State::Inquired,
        };
        p.settle_net();
        Ok(state)
    }

    /// A completion advice for the authorization `key`: the hold becomes a debit of `actual`.
    /// For an original never seen, `actual` is debited from `pan` (a forced post) so that a later
    /// reversal can undo it; `pan` unknown to the host: nothing.
    pub fn complete(&mut self, key: TxnKey, pan: Option<&Pan>, actual: u64) -> FollowUp {
        let Some(original) = self.originals.get(&key) else {
            let Some(pan) = pan else {
                return FollowUp::UnknownOriginal;
            };
            let Ok(account) = self.account(pan) else {
                return FollowUp::UnknownOriginal;
            };
            account.position.debited += actual;
            account.position.settle_net();
            self.totals.completions_applied += 1;
            self.originals.insert(
                key,
                Original {
                    pan: Some(pan.clone()),
                    kind: Kind::Debit,
                    state: State::Posted { amount: actual },
                    approval_code: None,
                },
            );
            return FollowUp::UnknownOriginal;
        };
        let (State::Held { amount: held }, Some(pan)) = (original.state, original.pan.clone())
        else {
            self.totals.repeats_ignored += 1;
            return FollowUp::AlreadyApplied;
        };
        if let Ok(account) = self.account(&pan) {
            let p = &mut account.position;
            p.held -= held.min(p.held);
            p.debited += actual;
            p.settle_net();
        }
        self.set_state(&key, State::Posted { amount: actual });
        self.totals.completions_applied += 1;
        FollowUp::Applied
    }

    /// A reversal of `key`: `actual` (field 95) is what stays done, `None` for a full reversal.
    pub fn reverse(&mut self, key: TxnKey, actual: Option<u64>) -> FollowUp {
        let Some(original) = self.originals.get(&key).cloned() else {
            self.totals.reversals_unmatched += 1;
            self.originals.insert(
                key,
                Original {
                    pan: None,
                    kind: Kind::Authorization,
                    state: State::ReversedUnseen,
                    approval_code: None,
                },
            );
            return FollowUp::UnknownOriginal;
        };
        let keep = actual.unwrap_or(0);
        let (Some(pan), State::Held { amount } | State::Posted { amount }) =
            (original.pan.clone(), original.state)
        else {
            self.totals.repeats_ignored += 1;
            return FollowUp::AlreadyApplied;
        };
        let held = matches!(original.state, State::Held { .. });
        let remaining = if let Ok(account) = self.account(&pan) {
            let p = &mut account.position;
            let remaining = keep.min(amount);
            let undone = amount - remaining;
            match (held, original.kind) {
                // A hold: released; a partial reversal debits what was actually dispensed.
                (true, _) => {
                    p.held -= amount.min(p.held);
                    p.debited += remaining;
                    p.reversed += amount - remaining;
                }
                (false, Kind::Credit) => {
                    p.credited -= undone.min(p.credited);
                    p.reversed += undone;
                }
                (false, _) => {
                    p.debited -= undone.min(p.debited);
                    p.reversed += undone;
                }
            }
            p.settle_net();
            remaining
        } else {
            0
        };
        self.set_state(&key, State::Reversed { remaining });
        self.totals.reversals_applied += 1;
        FollowUp::Applied
    }

    fn set_state(&mut self, key: &TxnKey, state: State) {
        if let Some(o) = self.originals.get_mut(key) {
            o.state = state;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pan() -> Pan {
        Pan::parse("5413330089020011").unwrap()
    }

    fn key(stan: u32) -> TxnKey {
        TxnKey {
            terminal: "ATM00001".into(),
            stan,
            transmission: "1204102030".into(),
        }
    }

    fn book() -> Book {
        let mut b = Book::new();
        b.add_card(CardConfig::new("5413330089020011", 10_000))
            .unwrap();
        b.add_card(CardConfig::new("541333*", 50)).unwrap();
        b
    }

    #[test]
    fn hold_then_partial_completion_debits_the_actual_amount() {
        let mut b = book();
        b.approve(key(1), &pan(), Kind::Authorization, 6_000)
            .unwrap();
        assert_eq!(b.position(&pan()).held, 6_000);
        assert_eq!(b.account_view(&pan()).unwrap().available_minor, 4_000);
        assert_eq!(b.complete(key(1), None, 4_000), FollowUp::Applied);
        assert_eq!(b.complete(key(1), None, 4_000), FollowUp::AlreadyApplied);
        let p = b.position(&pan());
        assert_eq!((p.held, p.debited, p.net), (0, 4_000, -4_000));
        assert_eq!(b.account_view(&pan()).unwrap().ledger_minor, 6_000);
    }

    #[test]
    fn reversal_of_a_hold_nets_to_zero_once() {
        let mut b = book();
        b.approve(key(1), &pan(), Kind::Authorization, 6_000)
            .unwrap();
        assert_eq!(b.reverse(key(1), None), FollowUp::Applied);
        assert_eq!(b.reverse(key(1), None), FollowUp::AlreadyApplied);
        let p = b.position(&pan());
        assert_eq!((p.held, p.debited, p.net, p.reversed), (0, 0, 0, 6_000));
        assert_eq!(b.complete(key(1), None, 6_000), FollowUp::AlreadyApplied);
        assert_eq!(b.position(&pan()).debited, 0);
    }

    #[test]
    fn partial_reversal_keeps_the_actual_amount() {
        let mut b = book();
        b.approve(key(1), &pan(), Kind::Debit, 5_000).unwrap();
        assert_eq!(b.reverse(key(1), Some(2_000)), FollowUp::Applied);
        let p = b.position(&pan());
        assert_eq!((p.debited, p.reversed, p.net), (2_000, 3_000, -2_000));
        b.approve(key(2), &pan(), Kind::Authorization, 1_000)
            .unwrap();
        b.reverse(key(2), Some(400));
        let p = b.position(&pan());
        assert_eq!((p.held, p.debited), (0, 2_400));
    }

    #[test]
    fn completed_withdrawal_and_deposit_reverse() {
        let mut b = book();
        b.approve(key(1), &pan(), Kind::Authorization, 3_000)
            .unwrap();
        b.complete(key(1), None, 3_000);
        b.reverse(key(1), None);
        b.approve(key(2), &pan(), Kind::Credit, 700).unwrap();
        b.reverse(key(2), None);
        assert_eq!(
            b.position(&pan()),
            Position {
                reversed: 3_700,
                ..Position::default()
            }
        );
        let t = b.totals();
        assert_eq!((t.approved, t.reversals_applied), (2, 2));
    }

    #[test]
    fn funds_and_cards_are_checked() {
        let mut b = book();
        assert_eq!(
            b.approve(key(1), &pan(), Kind::Authorization, 10_001),
            Err(Decline(codes::INSUFFICIENT_FUNDS))
        );
        assert_eq!(
            b.original(&key(1)).unwrap().state,
            State::Declined {
                code: codes::INSUFFICIENT_FUNDS.into()
            }
        );
        let stranger = Pan::parse("4761739001010010").unwrap();
        assert_eq!(
            b.approve(key(2), &stranger, Kind::Debit, 1),
            Err(Decline(codes::UNKNOWN_CARD))
        );
        // A range card has its own account with the range's opening balance.
        let ranged = Pan::parse("5413339999999999").unwrap();
        assert!(b.approve(key(3), &ranged, Kind::Debit, 50).is_ok());
        assert_eq!(
            b.approve(key(4), &ranged, Kind::Debit, 1),
            Err(Decline(codes::INSUFFICIENT_FUNDS))
        );
        assert_eq!(b.card(&pan()).unwrap().balance_minor, 10_000);
    }

    #[test]
    fn reversal_before_its_original_is_recorded() {
        let mut b = book();
        assert_eq!(b.reverse(key(9), None), FollowUp::UnknownOriginal);
        assert_eq!(b.original(&key(9)).unwrap().state, State::ReversedUnseen);
        assert_eq!(b.reverse(key(9), None), FollowUp::AlreadyApplied);
        assert_eq!(b.totals().reversals_unmatched, 1);
    }

    #[test]
    fn advice_for_an_unseen_original_posts_once() {
        let mut b = book();
        assert_eq!(
            b.complete(key(5), Some(&pan()), 2_000),
            FollowUp::UnknownOriginal
        );
        assert_eq!(
            b.complete(key(5), Some(&pan()), 2_000),
            FollowUp::AlreadyApplied
        );
        assert_eq!(b.position(&pan()).debited, 2_000);
        b.reverse(key(5), None);
        assert_eq!(b.position(&pan()).net, 0);
    }
}
