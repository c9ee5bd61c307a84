//! The terminals and their agent, as the agent's contract says they behave (ARCHITECTURE.md, the
//! withdrawal saga, the deposit, the ambiguity rule and store-and-forward) — the target contract
//! of issue 12, not today's agent code:
//!
//! - withdrawal 0100: on 00 the terminal dispenses all, part or nothing (the seed says) and the
//!   agent queues a 0220 for what left the cassettes (a short dispense sometimes as a partial
//!   0420 with field 95, as ISO agents do), or a 0420 when nothing did; on no answer, 91
//!   or 96 (an approval may exist) nothing is dispensed and a 0420 is queued; any other code is a
//!   definite decline and nothing follows;
//! - deposit 0200: on 00 the terminal keeps the cash, or (the seed says) rejects the reply and
//!   hands it back, queuing a 0420; on no answer, 91 or 96 the cash goes back and a 0420 is queued;
//!   a definite decline hands the cash back and nothing follows;
//! - while the terminal's link is down, a withdrawal is refused at the terminal and a deposit is
//!   taken at once and advised later (0220 deposit advice, issue 12's offline deposits);
//! - advices leave the per-terminal FIFO queue only on 00; no answer, 91 and 96 are repeated
//!   (same STAN: a 0221/0421) after a backoff; any other answer parks the advice, which the
//!   checker reports.
//!
//! Each customer transaction's physical truth (what left or stayed in the ATM) is kept for the
//! checker's end-of-run verdict.

use std::collections::VecDeque;

use host_switch::domain::{RecordedReply, Request, ResponseCode, TxnKey, TxnKind, WalletAccount};
use protocols::types::{Amount, Currency, Pan, Stan, TerminalId};
use testkit::custodian_keys::CustodianKey;

use crate::rng::SimRng;
use crate::world::FaultPlan;

/// Whom a card belongs to, which decides what the switch and the ledger should say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardKind {
    /// A wallet card with far more money than the run can spend: deposits go here too, so a
    /// compensating debit is never refused for funds.
    Rich,
    /// A wallet card with little money: withdrawals are often declined 51.
    Poor,
    /// Routed to the wallet, but the ledger has no such account: 14.
    UnknownToLedger,
    /// Routed to another bank's host (not connected): 14 before the ledger.
    OtherBank,
}

pub struct Card {
    pub pan: Pan,
    pub account: String,
    pub kind: CardKind,
}

impl Card {
    pub fn new(pan: &str, kind: CardKind) -> Self {
        let pan = Pan::parse(pan).expect("test PAN");
        // The tests' card reference key, as the world's key store holds it.
        let mac = CustodianKey::test_card_reference()
            .card_reference_mac(&pan)
            .expect("card reference");
        let account = WalletAccount::from_mac(&mac).as_str().to_owned();
        Self { pan, account, kind }
    }
}

/// The cards the simulated customers use.
pub fn cards() -> Vec<Card> {
    vec![
        Card::new("4761730000000011", CardKind::Rich),
        Card::new("4761730000000029", CardKind::Rich),
        Card::new("4761730000000037", CardKind::Rich),
        Card::new("4761730000000045", CardKind::Poor),
        Card::new("4761730000000052", CardKind::UnknownToLedger),
        Card::new("5413330089020011", CardKind::OtherBank),
    ]
}

pub const RICH_BALANCE_MINOR: u64 = 1_000_000_000;
pub const POOR_BALANCE_MINOR: u64 = 15_000;
/// One note: the cassettes hold 10.00 EUR notes only.
const NOTE_MINOR: u64 = 1_000;
const NOTES_MAX: u64 = 20;

/// What really happened at the ATM for one customer transaction.
#[derive(Debug, Clone)]
pub struct Truth {
    pub key: TxnKey,
    pub kind: TxnKind,
    pub card: usize,
    pub amount_minor: u64,
    /// The answer the agent got to its request (`None`: no answer reached it).
    pub answer: Option<ResponseCode>,
    /// Cash that left the cassettes (withdrawal).
    pub dispensed_minor: u64,
    /// Cash the ATM kept (deposit).
    pub deposit_kept: bool,
}

impl Truth {
    /// What the customer's account must show for this transaction in the end.
    pub fn expected_net_minor(&self) -> i128 {
        match self.kind {
            TxnKind::Withdrawal => -i128::from(self.dispensed_minor),
            TxnKind::Deposit if self.deposit_kept => i128::from(self.amount_minor),
            TxnKind::Deposit => 0,
        }
    }
}

/// An advice waiting in a terminal's store-and-forward queue.
#[derive(Debug, Clone)]
pub struct Advice {
    pub request: Request,
    pub label: String,
    pub sends: u32,
}

pub struct Terminal {
    pub id: TerminalId,
    next_stan: u32,
    pub queue: VecDeque<Advice>,
    /// The forwarder's backoff: the head is not sent again before this step.
    pub next_send_at: u64,
    /// Advices that got a final answer other than 00: what an operator would have to chase.
    pub parked: Vec<String>,
    /// The link to the switch is down before this step.
    pub link_down_until: u64,
}

impl Terminal {
    pub fn new(index: usize) -> Self {
        Self {
            id: TerminalId::parse(&format!("ATM{index:05}")).expect("terminal id"),
            next_stan: 1,
            queue: VecDeque::new(),
            next_send_at: 0,
            parked: Vec::new(),
            link_down_until: 0,
        }
    }

    pub fn link_up(&self, now: u64) -> bool {
        now >= self.link_down_until
    }

    /// A deposit while the link is down: the terminal takes the cash at once and the agent queues
    /// a deposit advice (0220, processing code 21, no original), which the switch must credit.
    pub fn offline_deposit(&mut self, rng: &mut SimRng, now: u64) -> Truth {
        // The agent takes offline deposits for the wallet's card ranges (field 63), so for a
        // wallet card the ledger does not know (index 4) too: the switch must list it as an
        // exception, never drop it.
        let card = *rng.pick(&[0, 1, 2, 4]);
        let amount_minor = NOTE_MINOR * (1 + rng.below(NOTES_MAX));
        let key = self.next_key(now);
        let cards = cards();
        self.queue.push_back(Advice {
            request: Request::DepositAdvice {
                key: key.clone(),
                pan: cards[card].pan.clone(),
                amount: Amount::new(amount_minor, Currency::EUR),
            },
            label: format!("0220 deposit {amount_minor} taken offline, {key}"),
            sends: 0,
        });
        Truth {
            key,
            kind: TxnKind::Deposit,
            card,
            amount_minor,
            answer: None,
            dispensed_minor: 0,
            deposit_kept: true,
        }
    }

    /// A fresh message identity: the next STAN and the simulated clock as field 7 (`MMDDhhmmss`,
    /// one simulated second per step, from 10:00:00 on 3 December).
    fn next_key(&mut self, now: u64) -> TxnKey {
        let stan = Stan::new(self.next_stan).expect("STAN below 999999");
        self.next_stan += 1;
        let secs = 10 * 3600 + now;
        let field7 = format!(
            "1203{:02}{:02}{:02}",
            (secs / 3600) % 24,
            (secs / 60) % 60,
            secs % 60
        );
        TxnKey::new(self.id.clone(), stan, field7)
    }

    /// A customer walks up: a withdrawal or a deposit on a card drawn by the seed.
    pub fn new_customer(&mut self, rng: &mut SimRng, cards: &[Card], now: u64) -> (Truth, Request) {
        let withdrawal = rng.chance(65);
        let card = if withdrawal {
            rng.below(cards.len() as u64) as usize
        } else {
            // Deposits only on rich cards: their compensation can always be debited back.
            rng.below(3) as usize
        };
        let amount_minor = NOTE_MINOR * (1 + rng.below(NOTES_MAX));
        let key = self.next_key(now);
        let amount = Amount::new(amount_minor, Currency::EUR);
        let pan = cards[card].pan.clone();
        let (kind, request) = if withdrawal {
            let r = Request::Withdrawal {
                acceptance: Default::default(),
                key: key.clone(),
                pan,
                amount,
                pin: None,
            };
            (TxnKind::Withdrawal, r)
        } else {
            let r = Request::Deposit {
                acceptance: Default::default(),
                key: key.clone(),
                pan,
                amount,
                pin: None,
            };
            (TxnKind::Deposit, r)
        };
        let truth = Truth {
            key,
            kind,
            card,
            amount_minor,
            answer: None,
            dispensed_minor: 0,
            deposit_kept: false,
        };
        (truth, request)
    }

    /// The answer to the customer's request (or its absence) and what the terminal does next.
    pub fn settle(
        &mut self,
        rng: &mut SimRng,
        cards: &[Card],
        truth: &mut Truth,
        answer: Option<&RecordedReply>,
        now: u64,
        plan: &FaultPlan,
    ) -> String {
        truth.answer = answer.map(|a| a.code);
        let approval_may_exist = match truth.answer {
            None | Some(ResponseCode::IssuerUnavailable) => true,
            Some(ResponseCode::SystemError) => !plan.agent_96_is_decline,
            Some(_) => false,
        };
        match (truth.kind, truth.answer) {
            (TxnKind::Withdrawal, Some(ResponseCode::Approved)) => {
                let notes = truth.amount_minor / NOTE_MINOR;
                let dispensed_notes = match rng.below(100) {
                    0..=69 => notes,
                    70..=84 if notes > 1 => 1 + rng.below(notes - 1),
                    _ => 0,
                };
                truth.dispensed_minor = dispensed_notes * NOTE_MINOR;
                if truth.dispensed_minor > 0
                    && truth.dispensed_minor < truth.amount_minor
                    && rng.chance(plan.partial_reversal_percent)
                {
                    // The ISO habit some agents keep: a short dispense as a partial reversal
                    // (0420 with field 95), which the switch reads as "capture this much".
                    self.queue_reversal(truth, cards, now);
                    format!(
                        "dispensed {} of {}, advised as a partial reversal",
                        truth.dispensed_minor, truth.amount_minor
                    )
                } else if truth.dispensed_minor > 0 {
                    self.queue_completion(truth, now);
                    format!(
                        "dispensed {} of {}",
                        truth.dispensed_minor, truth.amount_minor
                    )
                } else {
                    self.queue_reversal(truth, cards, now);
                    "dispensed nothing".into()
                }
            }
            (TxnKind::Deposit, Some(ResponseCode::Approved)) => {
                if rng.chance(85) {
                    truth.deposit_kept = true;
                    "cash kept".into()
                } else {
                    self.queue_reversal(truth, cards, now);
                    "terminal rejected the reply, cash returned".into()
                }
            }
            _ if approval_may_exist => {
                self.queue_reversal(truth, cards, now);
                "no approval (an approval may exist): nothing paid out or kept".into()
            }
            _ => "definite decline: nothing happens".into(),
        }
    }

    fn queue_completion(&mut self, truth: &Truth, now: u64) {
        let key = self.next_key(now);
        let label = format!("0220 {} for {}", truth.dispensed_minor, truth.key);
        self.queue.push_back(Advice {
            request: Request::Completion {
                key,
                original: truth.key.clone(),
                dispensed_minor: truth.dispensed_minor,
            },
            label,
            sends: 0,
        });
    }

    /// A 0420 for `truth`: for the whole amount, or with field 95 = what was dispensed.
    fn queue_reversal(&mut self, truth: &Truth, cards: &[Card], now: u64) {
        let key = self.next_key(now);
        let label = format!(
            "0420 for {} (dispensed {})",
            truth.key, truth.dispensed_minor
        );
        self.queue.push_back(Advice {
            request: Request::Reversal {
                key,
                original: truth.key.clone(),
                kind: truth.kind,
                amount: Amount::new(truth.amount_minor, Currency::EUR),
                dispensed_minor: truth.dispensed_minor,
                pan: Some(cards[truth.card].pan.clone()),
            },
            label,
            sends: 0,
        });
    }

    /// The head advice, if the forwarder may send it now.
    pub fn due_advice(&mut self, now: u64) -> Option<Request> {
        if self.next_send_at > now || !self.link_up(now) {
            return None;
        }
        let head = self.queue.front_mut()?;
        head.sends += 1;
        Some(head.request.clone())
    }

    /// The answer to the head advice (or its absence).
    pub fn advice_answered(&mut self, answer: Option<&RecordedReply>, now: u64) -> String {
        let Some(head) = self.queue.front() else {
            return "no advice in flight".into();
        };
        let label = head.label.clone();
        match answer.map(|a| a.code) {
            Some(ResponseCode::Approved) => {
                self.queue.pop_front();
                self.next_send_at = now;
                format!("{label}: acknowledged")
            }
            None | Some(ResponseCode::IssuerUnavailable | ResponseCode::SystemError) => {
                // Exponential backoff in steps, 1 doubling to 16.
                let backoff = 1u64 << head.sends.min(4);
                self.next_send_at = now + backoff;
                format!(
                    "{label}: {:?}, repeat after {backoff}",
                    answer.map(|a| a.code)
                )
            }
            Some(other) => {
                self.queue.pop_front();
                let line = format!("{label}: final answer {other}, parked");
                self.parked.push(line.clone());
                line
            }
        }
    }
}
