//! Customers: who walks up to the terminal, what they ask for and how they behave at the cash slot.
//!
//! A [`Customer`] is data: a card (PAN and PIN), a [`Kind`] of transaction, an amount, whether
//! they type a wrong PIN, and a [`Behaviour`] that injects the faults a real ATM sees (a customer
//! who walks away, a short dispense, a power cut while the notes are moving).
//! [`ScriptedCustomers`] replays a fixed list; [`RandomCustomers`] draws an endless,
//! seed-reproducible stream for soak and lab runs from a list of [`Card`]s.

use std::collections::VecDeque;
use std::fmt;

use firmware_profiles::{Profile, TransactionKind};
use protocols::types::mask_pan;
use serde::{Deserialize, Serialize};

use super::faults::{FaultMode, FaultPlan, TerminalFault};
use super::rng::XorShift64;
use super::state_machine::Key;

/// What the customer asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Withdrawal,
    Deposit,
    BalanceInquiry,
}

impl Kind {
    /// The profile's name for it (which picks the operation code).
    pub fn transaction_kind(self) -> TransactionKind {
        match self {
            Self::Withdrawal => TransactionKind::Withdrawal,
            Self::Deposit => TransactionKind::Deposit,
            Self::BalanceInquiry => TransactionKind::BalanceInquiry,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Withdrawal => "withdrawal",
            Self::Deposit => "deposit",
            Self::BalanceInquiry => "balance",
        })
    }
}

/// How much of a dispense actually leaves the cassettes in a short dispense (or reaches the
/// customer, in a terminal fault).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partial {
    /// Notes per cassette type (index 0 = type 1), each capped at what the reply asked for.
    Notes(Vec<u32>),
    /// This percentage of each cassette's requested notes, rounded down.
    Percent(u8),
}

/// What happens at the cash slot (only a dispense is affected; other transactions run normally).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    /// Takes the cash; the terminal reports ready.
    Normal,
    /// Cancels (or times out) before the notes are presented: nothing leaves, status `8 E2`.
    CancelAtCashSlot,
    /// The dispenser delivers less than asked: status `8 E1` with the notes that left.
    PartialDispense(Partial),
    /// Power fails while dispensing: no status, the connection drops; `notes_leave` says whether
    /// the notes reached the customer (the next `11`'s last transaction status tells the host).
    PowerLossDuringDispense { notes_leave: bool },
    /// A terminal fault that leaves the host unsure (`E3`, `E5`, counts missing, another device,
    /// no status, power lost at any step of the exchange); see [`crate::faults`]. It strikes a
    /// withdrawal; the power failures before the reply strike any transaction.
    TerminalFault(TerminalFault),
}

/// The PIN of a card given without one (`Customer::withdrawal(pan, …)`, `RandomCustomers::new`).
pub const DEFAULT_PIN: &str = "1234";

/// A card: its number and its PIN (both clear: the PAN goes on the wire in track 2, the PIN into
/// the PIN pad). `Debug` shows the PAN masked and the PIN as `****`.
#[derive(Clone, PartialEq, Eq)]
pub struct Card {
    pub pan: String,
    pub pin: String,
}

impl Card {
    pub fn new(pan: impl Into<String>, pin: impl Into<String>) -> Self {
        Self {
            pan: pan.into(),
            pin: pin.into(),
        }
    }
}

/// A card with [`DEFAULT_PIN`].
impl From<String> for Card {
    fn from(pan: String) -> Self {
        Self::new(pan, DEFAULT_PIN)
    }
}

impl From<&str> for Card {
    fn from(pan: &str) -> Self {
        Self::new(pan, DEFAULT_PIN)
    }
}

impl fmt::Debug for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Card")
            .field("pan", &mask_pan(&self.pan))
            .field("pin", &"****")
            .finish()
    }
}

/// One customer session.
#[derive(Clone, PartialEq, Eq)]
pub struct Customer {
    /// The card number, clear (it goes on the wire in track 2); logs show it masked.
    pub pan: String,
    /// The card's PIN ([`DEFAULT_PIN`] unless given): what the customer types, unless
    /// `wrong_pin`.
    pub pin: String,
    /// The customer types a wrong PIN (each digit of `pin` plus one, mod 10).
    pub wrong_pin: bool,
    pub kind: Kind,
    /// Requested amount in minor units (ignored for a balance inquiry, which sends zero).
    pub amount_minor: u64,
    pub behaviour: Behaviour,
    /// The keys the customer presses when the terminal runs its state table
    /// ([`crate::AtmOptions::state_table`]): FDKs, digits, `Enter`, `Cancel` (the PIN is typed
    /// at the PIN entry state from `pin`). `None`: the keys that lead to `kind` and
    /// `amount_minor` in the table, found by trying. Ignored without the state table.
    pub keys: Option<Vec<Key>>,
}

impl fmt::Debug for Customer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Customer")
            .field("pan", &mask_pan(&self.pan))
            .field("pin", &"****")
            .field("wrong_pin", &self.wrong_pin)
            .field("kind", &self.kind)
            .field("amount_minor", &self.amount_minor)
            .field("behaviour", &self.behaviour)
            .field("keys", &self.keys)
            .finish()
    }
}

impl Customer {
    pub fn withdrawal(pan: impl Into<String>, amount_minor: u64) -> Self {
        Self::new(pan, Kind::Withdrawal, amount_minor)
    }
    pub fn deposit(pan: impl Into<String>, amount_minor: u64) -> Self {
        Self::new(pan, Kind::Deposit, amount_minor)
    }
    pub fn balance_inquiry(pan: impl Into<String>) -> Self {
        Self::new(pan, Kind::BalanceInquiry, 0)
    }
    pub fn new(pan: impl Into<String>, kind: Kind, amount_minor: u64) -> Self {
        Self {
            pan: pan.into(),
            pin: DEFAULT_PIN.to_owned(),
            wrong_pin: false,
            kind,
            amount_minor,
            behaviour: Behaviour::Normal,
            keys: None,
        }
    }
    /// A customer who presses `keys` at a terminal running its state table: what they get is
    /// whatever the table makes of the keys (`kind` and the amount are read from the request).
    pub fn pressing(pan: impl Into<String>, keys: Vec<Key>) -> Self {
        Self::new(pan, Kind::BalanceInquiry, 0).with_keys(keys)
    }
    /// The keys the customer presses (state-table mode).
    pub fn with_keys(mut self, keys: Vec<Key>) -> Self {
        self.keys = Some(keys);
        self
    }
    pub fn with_behaviour(mut self, behaviour: Behaviour) -> Self {
        self.behaviour = behaviour;
        self
    }
    /// The card's PIN (the customer types it correctly unless [`Customer::with_wrong_pin`]).
    pub fn with_pin(mut self, pin: impl Into<String>) -> Self {
        self.pin = pin.into();
        self
    }
    /// The customer types a wrong PIN.
    pub fn with_wrong_pin(mut self) -> Self {
        self.wrong_pin = true;
        self
    }
    /// The PIN the customer types: the card's, or (`wrong_pin`) each digit plus one, mod 10,
    /// which differs from the card's in every digit.
    pub fn entered_pin(&self) -> String {
        if !self.wrong_pin {
            return self.pin.clone();
        }
        self.pin
            .chars()
            .map(|c| match c.to_digit(10) {
                Some(d) => char::from(b'0' + ((d as u8 + 1) % 10)),
                None => c,
            })
            .collect()
    }
}

/// A fixed list of customers, served in order.
#[derive(Debug, Clone, Default)]
pub struct ScriptedCustomers {
    queue: VecDeque<Customer>,
}

impl ScriptedCustomers {
    pub fn new(customers: impl IntoIterator<Item = Customer>) -> Self {
        Self {
            queue: customers.into_iter().collect(),
        }
    }
    pub fn push(&mut self, c: Customer) -> &mut Self {
        self.queue.push_back(c);
        self
    }
    pub fn len(&self) -> usize {
        self.queue.len()
    }
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

impl Iterator for ScriptedCustomers {
    type Item = Customer;
    fn next(&mut self) -> Option<Customer> {
        self.queue.pop_front()
    }
}

/// The shape of a random customer stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mix {
    /// Relative weights of the three kinds.
    pub withdrawal: u32,
    pub deposit: u32,
    pub balance_inquiry: u32,
    /// Percentage of withdrawals that go wrong at the cash slot (cancel, short dispense, power
    /// loss, equally likely); 0 disables faults.
    pub fault_percent: u8,
    /// Amounts are multiples of this (the smallest denomination) …
    pub amount_step_minor: u64,
    /// … from 1 to this many steps.
    pub max_steps: u64,
    /// Percentage of customers (any kind) who type a wrong PIN; 0 (the default) draws nothing,
    /// so a stream without wrong PINs is the same as before the knob existed.
    pub wrong_pin_percent: u8,
    /// Terminal faults among withdrawals that would otherwise go normally (drawn after
    /// everything else in a customer, and only when enabled).
    pub terminal_faults: FaultPlan,
}

impl Mix {
    /// 60 % withdrawals, 25 % deposits, 15 % inquiries, no faults, amounts in steps of the
    /// profile's smallest note up to 20 notes.
    pub fn for_profile(profile: &Profile) -> Self {
        let step = profile
            .cassettes
            .iter()
            .map(|c| c.denomination_minor)
            .min()
            .unwrap_or(1);
        Self {
            withdrawal: 60,
            deposit: 25,
            balance_inquiry: 15,
            fault_percent: 0,
            amount_step_minor: step,
            max_steps: 20,
            wrong_pin_percent: 0,
            terminal_faults: FaultPlan::default(),
        }
    }
    pub fn with_faults(mut self, percent: u8) -> Self {
        self.fault_percent = percent.min(100);
        self
    }
    pub fn with_wrong_pins(mut self, percent: u8) -> Self {
        self.wrong_pin_percent = percent.min(100);
        self
    }
    /// `percent` of the withdrawals meet a terminal fault from `modes` (empty: every mode).
    pub fn with_terminal_faults(mut self, percent: u8, modes: Vec<FaultMode>) -> Self {
        self.terminal_faults = FaultPlan::new(percent, modes);
        self
    }
}

/// An endless stream of customers drawn from a seed: the same seed, cards and mix give the same
/// customers.
#[derive(Debug, Clone)]
pub struct RandomCustomers {
    rng: XorShift64,
    cards: Vec<Card>,
    mix: Mix,
}

/// Used when no PAN is given, so a stream is never empty.
pub const DEFAULT_PAN: &str = "4761739001010010";

impl RandomCustomers {
    /// Customers using these card numbers, each with [`DEFAULT_PIN`].
    pub fn new(seed: u64, pans: Vec<String>, mix: Mix) -> Self {
        Self::from_cards(seed, pans.into_iter().map(Card::from).collect(), mix)
    }

    /// Customers using these cards (PAN and PIN).
    pub fn from_cards(seed: u64, cards: Vec<Card>, mix: Mix) -> Self {
        let cards = if cards.is_empty() {
            vec![Card::from(DEFAULT_PAN)]
        } else {
            cards
        };
        Self {
            rng: XorShift64::new(seed),
            cards,
            mix,
        }
    }

    fn kind(&mut self) -> Kind {
        let m = &self.mix;
        let total = u64::from(m.withdrawal) + u64::from(m.deposit) + u64::from(m.balance_inquiry);
        let x = self.rng.below(total.max(1));
        if x < u64::from(m.withdrawal) || total == 0 {
            Kind::Withdrawal
        } else if x < u64::from(m.withdrawal) + u64::from(m.deposit) {
            Kind::Deposit
        } else {
            Kind::BalanceInquiry
        }
    }

    fn fault(&mut self) -> Behaviour {
        match self.rng.below(3) {
            0 => Behaviour::CancelAtCashSlot,
            1 => Behaviour::PartialDispense(Partial::Percent(50)),
            _ => Behaviour::PowerLossDuringDispense {
                notes_leave: self.rng.chance(50),
            },
        }
    }
}

impl Iterator for RandomCustomers {
    type Item = Customer;
    fn next(&mut self) -> Option<Customer> {
        let card = self.cards[self.rng.below(self.cards.len() as u64) as usize].clone();
        let kind = self.kind();
        let steps = 1 + self.rng.below(self.mix.max_steps.max(1));
        let amount_minor = match kind {
            Kind::BalanceInquiry => 0,
            _ => steps * self.mix.amount_step_minor,
        };
        let behaviour = if kind == Kind::Withdrawal && self.rng.chance(self.mix.fault_percent) {
            self.fault()
        } else {
            Behaviour::Normal
        };
        // Drawn last and only when enabled, so the rest of the stream does not change with it.
        let wrong_pin =
            self.mix.wrong_pin_percent > 0 && self.rng.chance(self.mix.wrong_pin_percent);
        // Last of all, for the same reason.
        let behaviour = match behaviour {
            Behaviour::Normal if kind == Kind::Withdrawal => self
                .mix
                .terminal_faults
                .draw(&mut self.rng)
                .map_or(Behaviour::Normal, Behaviour::TerminalFault),
            other => other,
        };
        Some(Customer {
            pan: card.pan,
            pin: card.pin,
            wrong_pin,
            kind,
            amount_minor,
            behaviour,
            keys: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_customers_are_reproducible_and_use_the_smallest_note() {
        let p = Profile::builtin("ncr-selfserv-basic").expect("builtin profile");
        let mix = Mix::for_profile(&p).with_faults(30);
        let a: Vec<_> = RandomCustomers::new(7, vec![], mix.clone())
            .take(200)
            .collect();
        let b: Vec<_> = RandomCustomers::new(7, vec![], mix).take(200).collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|c| c.amount_minor % 1000 == 0));
        assert!(a.iter().any(|c| c.kind == Kind::Deposit));
        assert!(a.iter().any(|c| c.behaviour != Behaviour::Normal));
        assert!(a
            .iter()
            .filter(|c| c.kind != Kind::Withdrawal)
            .all(|c| c.behaviour == Behaviour::Normal));
        assert!(a.iter().all(|c| c.pin == DEFAULT_PIN && !c.wrong_pin));
    }

    #[test]
    fn cards_bring_their_pins_and_wrong_pins_leave_the_rest_of_the_stream_alone() {
        let p = Profile::builtin("ncr-selfserv-basic").expect("builtin profile");
        let cards = vec![
            Card::new("4761739001010010", "1111"),
            Card::new("4761739001010028", "987654"),
        ];
        let plain: Vec<_> = RandomCustomers::from_cards(9, cards.clone(), Mix::for_profile(&p))
            .take(300)
            .collect();
        let wrong: Vec<_> =
            RandomCustomers::from_cards(9, cards, Mix::for_profile(&p).with_wrong_pins(20))
                .take(300)
                .collect();
        assert!(plain
            .iter()
            .all(|c| (c.pan.ends_with("0010") && c.pin == "1111") || c.pin == "987654"));
        let misses = wrong.iter().filter(|c| c.wrong_pin).count();
        assert!((20..120).contains(&misses), "{misses} wrong PINs of 300");
        // Same first customer (the wrong-PIN draw comes after everything else in a customer).
        assert_eq!(plain[0].pan, wrong[0].pan);
        assert_eq!(plain[0].kind, wrong[0].kind);
        let by_pan: Vec<_> =
            RandomCustomers::new(9, vec!["4761739001010010".into()], Mix::for_profile(&p))
                .take(3)
                .collect();
        assert!(by_pan.iter().all(|c| c.pin == DEFAULT_PIN));
    }

    #[test]
    fn terminal_faults_strike_withdrawals_and_leave_the_rest_of_the_stream_alone() {
        let p = Profile::builtin("ncr-selfserv-basic").expect("builtin profile");
        let plain: Vec<_> = RandomCustomers::new(4, vec![], Mix::for_profile(&p))
            .take(300)
            .collect();
        let mix = Mix::for_profile(&p).with_terminal_faults(50, vec![]);
        let faulty: Vec<_> = RandomCustomers::new(4, vec![], mix.clone())
            .take(300)
            .collect();
        let again: Vec<_> = RandomCustomers::new(4, vec![], mix).take(300).collect();
        assert_eq!(faulty, again);
        assert_eq!(plain[0].kind, faulty[0].kind);
        assert_eq!(plain[0].amount_minor, faulty[0].amount_minor);
        let struck: Vec<_> = faulty
            .iter()
            .filter_map(|c| match &c.behaviour {
                Behaviour::TerminalFault(f) => Some((c.kind, f.mode())),
                _ => None,
            })
            .collect();
        assert!(struck.iter().all(|(k, _)| *k == Kind::Withdrawal));
        let modes: std::collections::HashSet<_> = struck.iter().map(|(_, m)| *m).collect();
        assert!(modes.len() >= 8, "{modes:?}");
        let only_e5 = Mix::for_profile(&p).with_terminal_faults(100, vec![FaultMode::Retracted]);
        assert!(RandomCustomers::new(4, vec![], only_e5)
            .take(50)
            .filter(|c| c.kind == Kind::Withdrawal)
            .all(|c| matches!(
                c.behaviour,
                Behaviour::TerminalFault(TerminalFault::Retracted { .. })
            )));
    }

    #[test]
    fn a_wrong_pin_differs_in_every_digit_and_nothing_is_shown() {
        let c = Customer::withdrawal("4761739001010010", 1000).with_pin("1909");
        assert_eq!(c.entered_pin(), "1909");
        let w = c.clone().with_wrong_pin();
        assert_eq!(w.entered_pin(), "2010");
        let shown = format!("{w:?} {:?}", Card::new("4761739001010010", "1909"));
        assert!(
            !shown.contains("1909") && !shown.contains("2010"),
            "{shown}"
        );
        assert!(!shown.contains("4761739001010010"), "{shown}");
    }
}
