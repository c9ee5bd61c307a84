//! The invariants. `safety` holds after every step, whatever is still in flight; `liveness` holds
//! once the world is healed and every piece of owed work has run.
//!
//! The ledger's movements and holds carry the transaction key as their reference (the switch
//! sends it so), which ties each one to the customer transaction it belongs to.

use std::collections::BTreeMap;

use host_switch::domain::reconcile::MovementKind;
use host_switch::domain::{TxnKind, TxnRecord, TxnState};

use crate::agent::{Card, CardKind, Terminal, Truth};
use crate::journal::Durable;
use crate::ledger::{Books, HoldStatus};
use crate::world::{lock, World};

/// A broken invariant: `signature` names the kind of defect (one per distinct cause, to group
/// failing seeds), `detail` the transaction and the numbers.
#[derive(Debug, Clone)]
pub struct Violation {
    pub signature: String,
    pub detail: String,
}

fn fail(signature: impl Into<String>, detail: impl Into<String>) -> Result<(), Violation> {
    Err(Violation {
        signature: signature.into(),
        detail: detail.into(),
    })
}

/// Everything the ledger did for one transaction (by reference).
#[derive(Debug, Default)]
struct LedgerTrail {
    holds: Vec<HoldStatus>,
    captured_minor: Vec<u64>,
    credited_minor: Vec<u64>,
    debited_minor: Vec<u64>,
}

impl LedgerTrail {
    fn open_holds(&self) -> usize {
        self.holds
            .iter()
            .filter(|h| **h == HoldStatus::Held)
            .count()
    }
    fn moved_anything(&self) -> bool {
        !(self.captured_minor.is_empty()
            && self.credited_minor.is_empty()
            && self.debited_minor.is_empty())
    }
    /// The net effect on the customer's account.
    fn net_minor(&self) -> i128 {
        let sum = |v: &[u64]| v.iter().map(|m| i128::from(*m)).sum::<i128>();
        sum(&self.credited_minor) - sum(&self.captured_minor) - sum(&self.debited_minor)
    }
}

fn trails(books: &Books) -> BTreeMap<String, LedgerTrail> {
    let mut t: BTreeMap<String, LedgerTrail> = BTreeMap::new();
    for h in books.holds.values() {
        t.entry(h.reference.clone())
            .or_default()
            .holds
            .push(h.status);
    }
    for m in &books.movements {
        let e = t.entry(m.reference.clone()).or_default();
        match m.kind {
            MovementKind::Capture => e.captured_minor.push(m.amount_minor),
            MovementKind::Credit => e.credited_minor.push(m.amount_minor),
            MovementKind::Debit => e.debited_minor.push(m.amount_minor),
        }
    }
    t
}

/// After every step: nothing posted twice, the books balance, the journal's writes were legal,
/// and no settled journal state contradicts the ledger.
pub fn safety(world: &World, cards: &[Card]) -> Result<(), Violation> {
    let books = lock(&world.books);
    let durable = lock(&world.durable);
    if let Some(v) = durable.violations.first() {
        return fail("illegal journal write", v.clone());
    }
    books_balance(&books, cards)?;
    let trails = trails(&books);
    for (reference, t) in &trails {
        if t.holds.len() > 1 {
            return fail(
                "two holds for one transaction",
                format!("{reference}: {:?}", t.holds),
            );
        }
        for (kind, v) in [
            ("captured", &t.captured_minor),
            ("credited", &t.credited_minor),
            ("debited", &t.debited_minor),
        ] {
            if v.len() > 1 {
                return fail(
                    format!("{kind} twice for one transaction"),
                    format!("{reference}: {v:?}"),
                );
            }
        }
    }
    let mut keys = std::collections::BTreeSet::new();
    if let Some(m) = books
        .movements
        .iter()
        .find(|m| !keys.insert(&m.idempotency_key))
    {
        return fail("two movements under one idempotency key", format!("{m:?}"));
    }
    let empty = LedgerTrail::default();
    for rec in durable.txns.values() {
        journal_agrees(rec, trails.get(&rec.key).unwrap_or(&empty))?;
    }
    Ok(())
}

fn books_balance(books: &Books, cards: &[Card]) -> Result<(), Violation> {
    let customers: i64 = books.accounts.values().map(|a| a.balance_minor).sum();
    if customers + books.cash_minor != books.funded_minor {
        return fail(
            "books do not balance",
            format!(
                "customers {customers} + cash {} != funded {}",
                books.cash_minor, books.funded_minor
            ),
        );
    }
    for (name, a) in &books.accounts {
        let held: u64 = books
            .holds
            .values()
            .filter(|h| &h.account == name && h.status == HoldStatus::Held)
            .map(|h| h.amount_minor)
            .sum();
        if held != a.held_minor || a.available_minor() < 0 {
            let card = cards.iter().position(|c| &c.account == name);
            return fail(
                "account below zero or holds miscounted",
                format!(
                    "card {card:?}: balance {} held {} (open holds sum {held})",
                    a.balance_minor, a.held_minor
                ),
            );
        }
    }
    Ok(())
}

/// A settled journal state is a claim about the ledger; the ledger must agree with it.
fn journal_agrees(rec: &TxnRecord, t: &LedgerTrail) -> Result<(), Violation> {
    let kind = match rec.kind {
        TxnKind::Withdrawal => "withdrawal",
        TxnKind::Deposit => "deposit",
    };
    let what = || {
        format!(
            "{} is {:?} in the journal; ledger: {t:?}",
            rec.key, rec.state
        )
    };
    match &rec.state {
        TxnState::Declined { code } if t.open_holds() > 0 || t.moved_anything() => fail(
            format!("{kind} journaled as declined ({code}) but the ledger acted"),
            what(),
        ),
        TxnState::Voided | TxnState::ReversedUnseen if t.open_holds() > 0 || t.moved_anything() => {
            fail(
                format!(
                    "{kind} journaled {} but the ledger holds or moved money",
                    rec.state.name()
                ),
                what(),
            )
        }
        TxnState::Captured { amount_minor, .. } if t.captured_minor != [*amount_minor] => fail(
            "withdrawal journaled captured but the ledger disagrees",
            what(),
        ),
        TxnState::Credited { .. } if t.credited_minor != [rec.amount.minor] => fail(
            "deposit journaled credited but the ledger disagrees",
            what(),
        ),
        TxnState::Compensated { .. } if t.net_minor() != 0 => fail(
            format!("{kind} journaled compensated but the ledger's net is not zero"),
            what(),
        ),
        _ => Ok(()),
    }
}

/// At the end, once healed and drained: what the ATM physically did is what the ledger shows, no
/// hold is left open, no work is left pending, no advice unacknowledged or parked.
pub fn liveness(
    world: &World,
    truths: &[Truth],
    terminals: &[Terminal],
    cards: &[Card],
) -> Result<(), Violation> {
    let books = lock(&world.books);
    let durable = lock(&world.durable);
    let trails = trails(&books);
    let empty = LedgerTrail::default();
    for truth in truths {
        let key = truth.key.as_string();
        let t = trails.get(&key).unwrap_or(&empty);
        let journal = durable
            .txns
            .get(&key)
            .map(|r| r.state.name())
            .unwrap_or("absent");
        let story = || {
            format!(
                "{key} ({:?} {} on a {:?} card, answered {:?}, dispensed {}, deposit kept {}): journal {journal}, ledger {t:?}",
                truth.kind,
                truth.amount_minor,
                cards[truth.card].kind,
                truth.answer,
                truth.dispensed_minor,
                truth.deposit_kept
            )
        };
        let offline =
            truth.kind == TxnKind::Deposit && truth.answer.is_none() && truth.deposit_kept;
        if offline && journal == "exception" && !t.moved_anything() {
            // Cash the ledger refused for good (an account it does not know): listed for an
            // operator (`switchctl exceptions`), which is the contract for it.
            continue;
        }
        if t.net_minor() != truth.expected_net_minor() {
            let approved = truth.answer.is_some_and(|c| c.code() == "00");
            let sig = match (truth.kind, approved) {
                (TxnKind::Deposit, false) if truth.deposit_kept => {
                    "deposit taken offline: ledger differs from the cash kept"
                }
                (TxnKind::Withdrawal, true) => {
                    "approved withdrawal: ledger differs from the cash dispensed"
                }
                (TxnKind::Withdrawal, false) => "unapproved withdrawal: the ledger moved money",
                (TxnKind::Deposit, true) => "approved deposit: ledger differs from the cash kept",
                (TxnKind::Deposit, false) => {
                    "unapproved deposit: the ledger kept a credit for cash handed back"
                }
            };
            return fail(sig, story());
        }
        if t.open_holds() > 0 {
            let sig = format!("hold left open (journal: {journal})");
            return fail(sig, story());
        }
    }
    for m in &books.movements {
        let owner = truths.iter().find(|t| t.key.as_string() == m.reference);
        if let Some(truth) = owner.filter(|t| cards[t.card].account != m.account) {
            return fail(
                "money moved on another account than the card's",
                format!("{m:?} for {} on card {}", truth.key, truth.card),
            );
        }
    }
    let known: std::collections::BTreeSet<String> =
        truths.iter().map(|t| t.key.as_string()).collect();
    if let Some((reference, t)) = trails.iter().find(|(r, _)| !known.contains(*r)) {
        return fail(
            "the ledger acted for a transaction no customer made",
            format!("{reference}: {t:?}"),
        );
    }
    quiescent(&durable, terminals)
}

fn quiescent(durable: &Durable, terminals: &[Terminal]) -> Result<(), Violation> {
    if let Some(rec) = durable
        .txns
        .values()
        .find(|r| r.state.is_pending_outbound())
    {
        return fail(
            "ledger work left pending after healing",
            format!("{} in {}", rec.key, rec.state.name()),
        );
    }
    if let Some(rec) = durable
        .txns
        .values()
        .find(|r| matches!(r.state, TxnState::HoldRequested | TxnState::CreditRequested))
    {
        return fail(
            format!("journal record stuck in {}", rec.state.name()),
            format!("{} was never driven to an end", rec.key),
        );
    }
    for t in terminals {
        if let Some(a) = t.queue.front() {
            return fail(
                "advice never acknowledged",
                format!("{}: {} ({} sends)", t.id, a.label, a.sends),
            );
        }
        if let Some(p) = t.parked.first() {
            return fail("advice parked by a final answer", format!("{}: {p}", t.id));
        }
    }
    Ok(())
}

/// The opening balances, by card kind.
pub fn opening_balance(kind: CardKind) -> Option<u64> {
    match kind {
        CardKind::Rich => Some(crate::agent::RICH_BALANCE_MINOR),
        CardKind::Poor => Some(crate::agent::POOR_BALANCE_MINOR),
        CardKind::UnknownToLedger | CardKind::OtherBank => None,
    }
}
