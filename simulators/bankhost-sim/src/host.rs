//! The issuer's decision for one message: which answer, whether it goes out, what it applied.
//! No I/O: [`Host::decide`] runs under the shared lock, takes a decoded [`Message`] and returns a
//! [`Decision`]; `server` does the waiting and the writing.
//!
//! | request | what the host does | answer |
//! |---|---|---|
//! | 0800 (70 = 001, 002, 301) | nothing | 0810, 39 = 00 (other codes 12) |
//! | 0100, 01xxxx | hold field 4 | 0110, 38 + 39 = 00; 14, 55, 51 … |
//! | 0100 / 0200, 31xxxx | nothing | 0110 / 0210 with 54 (ledger 01, available 02) |
//! | 0200, 01xxxx | debit field 4 | 0210 |
//! | 0200, 21xxxx | credit field 4 (57 if deposits are off) | 0210 |
//! | 0220 / 0221 | the hold of the original (90) becomes a debit of 95's actual amount, else field 4 | 0230, 00 |
//! | 0420 / 0421 | undo the original (90) down to 95's actual amount (none: all of it) | 0430, 00 |
//! | other requests | nothing | response MTI, 39 = 12 |
//! | responses, anything else | nothing | none |
//!
//! A malformed field the host needs is answered 30 (format error). Repeats (same key, 0221,
//! 0421) change nothing twice; a repeated original gets the answer its first arrival got.

use std::time::Duration;

use protocols::dialect::Balances;
use protocols::iso8583::{FieldError, Message};
use protocols::types::Pan;

use crate::book::{codes, Book, Code, Decline, FollowUp, Kind, State, TxnKey};
use crate::pin::Zpk;
use crate::rules::{first_match, Rule, RuleAction, Subject};

/// What becomes of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Written after the latency.
    Answer,
    /// Built (and recorded) but never written.
    DropAnswer,
    /// Nothing applied, nothing answered.
    Swallow,
}

/// The outcome of [`Host::decide`].
#[derive(Debug)]
pub struct Decision {
    pub answer: Option<Message>,
    pub delivery: Delivery,
    /// Added to the host's latency (a `latency_ms` rule).
    pub extra_latency: Duration,
    /// The rule that matched, by name or `#index`.
    pub rule: Option<String>,
}

/// Answers held back on purpose: `drop_next_answers`.
#[derive(Debug, Default)]
pub struct Drops {
    pub global: u32,
    /// (card prefix, answers left to drop)
    pub by_prefix: Vec<(String, u32)>,
}

impl Drops {
    /// Whether the answer to a message for `pan` is to be dropped (and counts it).
    fn take(&mut self, pan: Option<&str>, network: bool) -> bool {
        if let Some(pan) = pan {
            if let Some((_, left)) = self
                .by_prefix
                .iter_mut()
                .find(|(p, left)| *left > 0 && pan.starts_with(p.as_str()))
            {
                *left -= 1;
                return true;
            }
        }
        if !network && self.global > 0 {
            self.global -= 1;
            return true;
        }
        false
    }
}

/// The issuer: its books, rules, key and switches.
#[derive(Debug)]
pub struct Host {
    pub book: Book,
    pub rules: Vec<Rule>,
    pub zpk: Option<Zpk>,
    pub deposits: bool,
    pub drops: Drops,
}

/// Field errors become a format error answer.
struct Malformed;

impl From<FieldError> for Malformed {
    fn from(_: FieldError) -> Self {
        Malformed
    }
}

fn card_of(m: &Message) -> Result<Option<Pan>, Malformed> {
    if let Some(pan) = m.pan()? {
        return Ok(Some(pan));
    }
    Ok(m.track2()?.map(|t| t.pan().clone()))
}

/// The key of a request: its own fields 41, 11, 7.
fn own_key(m: &Message) -> Result<TxnKey, Malformed> {
    let terminal = m.terminal_id()?.ok_or(Malformed)?;
    let stan = m.stan()?.ok_or(Malformed)?;
    let transmission = m
        .transmission_datetime()?
        .map(|t| t.to_string())
        .unwrap_or_default();
    Ok(TxnKey {
        terminal: terminal.as_str().to_owned(),
        stan: stan.value(),
        transmission,
    })
}

/// The key of the original an advice or reversal names: its field 41, field 90's STAN and
/// date-time.
fn original_key(m: &Message) -> Result<TxnKey, Malformed> {
    let terminal = m.terminal_id()?.ok_or(Malformed)?;
    let original = m.original_data()?.ok_or(Malformed)?;
    Ok(TxnKey {
        terminal: terminal.as_str().to_owned(),
        stan: original.stan.value(),
        transmission: original
            .transmission
            .map(|t| t.to_string())
            .unwrap_or_default(),
    })
}

fn answer(request: &Message, code: &str) -> Message {
    let mut a = Message::response_to(request);
    let _ = a.set_response_code(code);
    a
}

fn approve(request: &Message, approval_code: Option<&str>) -> Message {
    let mut a = answer(request, codes::APPROVED);
    if let Some(code) = approval_code {
        let _ = a.set_str(38, code);
    }
    a
}

impl Host {
    /// Decides what to do with `request` and applies it to the books.
    pub fn decide(&mut self, request: &Message) -> Decision {
        let mti = request.mti();
        let mti_text = mti.as_str().to_owned();
        let pan = card_of(request).ok().flatten();
        let subject = Subject {
            mti: &mti_text,
            pan: pan.as_ref().map(Pan::expose),
            processing_code: request.get_str(3),
            amount: request.amount().ok().flatten(),
        };
        let matched = first_match(&self.rules, &subject).map(|rule| {
            let index = self.rules.iter().position(|r| r == rule).unwrap_or(0);
            let name = rule.name.clone().unwrap_or_else(|| format!("#{index}"));
            (name, rule.action.clone())
        });
        let (rule, action) = match matched {
            Some((name, action)) => (Some(name), Some(action)),
            None => (None, None),
        };
        let mut decision = Decision {
            answer: None,
            delivery: Delivery::Answer,
            extra_latency: Duration::ZERO,
            rule,
        };
        match action {
            Some(RuleAction::NoApplyNoAnswer) => {
                decision.delivery = Delivery::Swallow;
                return decision;
            }
            Some(RuleAction::Decline(code)) => {
                if let Ok(key) = own_key(request) {
                    if matches!(&mti.as_bytes()[..3], b"010" | b"020")
                        && self.book.original(&key).is_none()
                    {
                        let recorded = Code::parse(&code).unwrap_or(codes::DO_NOT_HONOUR.into());
                        self.book.decline(key, pan.clone(), Kind::Inquiry, recorded);
                    }
                }
                decision.answer = Some(answer(request, &code));
                return decision;
            }
            Some(RuleAction::DropAnswer) => decision.delivery = Delivery::DropAnswer,
            Some(RuleAction::LatencyMs(ms)) => decision.extra_latency = Duration::from_millis(ms),
            Some(RuleAction::Approve) | None => {}
        }
        decision.answer = self.process(request, pan.as_ref());
        if decision.answer.is_none() {
            decision.delivery = Delivery::Swallow;
        } else if decision.delivery == Delivery::Answer {
            let network = mti.as_bytes()[1] == b'8';
            if self.drops.take(subject.pan, network) {
                decision.delivery = Delivery::DropAnswer;
            }
        }
        decision
    }

    /// Normal processing: the answer, or `None` for a message the host does not answer.
    fn process(&mut self, request: &Message, pan: Option<&Pan>) -> Option<Message> {
        let mti = request.mti();
        if mti.is_response() {
            tracing::warn!(%mti, "a response sent to the host: not answered");
            return None;
        }
        let [_, class, function, _] = *mti.as_bytes();
        let result = match (class, function) {
            (b'8', b'0') => Ok(self.network(request)),
            (b'1' | b'2', b'0') => self.original(request, pan),
            (b'2', b'2') => self.completion(request, pan),
            (b'4', b'0' | b'2') => self.reversal(request),
            (_, b'0' | b'2' | b'4') => {
                tracing::info!(%mti, "request of a class the host does not take: 12");
                Ok(answer(request, codes::INVALID_TRANSACTION))
            }
            _ => {
                tracing::warn!(%mti, "message the host does not answer");
                return None;
            }
        };
        Some(result.unwrap_or_else(|Malformed| {
            tracing::info!(%mti, "malformed or missing field: 30");
            answer(request, codes::FORMAT_ERROR)
        }))
    }

    fn network(&self, request: &Message) -> Message {
        let code = match request.network_management_code() {
            Ok(Some(1 | 2 | 301)) => codes::APPROVED,
            _ => codes::INVALID_TRANSACTION,
        };
        let mut a = answer(request, code);
        if let Some(v) = request.get(70) {
            let _ = a.set(70, v);
        }
        a
    }

    /// 0100 / 0200: an original request.
    fn original(&mut self, request: &Message, pan: Option<&Pan>) -> Result<Message, Malformed> {
        let key = own_key(request)?;
        let pan = pan.ok_or(Malformed)?;
        let processing = request.processing_code()?.ok_or(Malformed)?;
        let authorization = request.mti().as_bytes()[1] == b'1';
        if let Some(original) = self.book.original(&key) {
            return Ok(self.replay(request, pan, original.state, original.approval_code.clone()));
        }
        let kind = match (authorization, processing.transaction_type) {
            (true, 1) => Kind::Authorization,
            (false, 1) => Kind::Debit,
            (false, 21) => Kind::Credit,
            (_, 31) => Kind::Inquiry,
            _ => {
                self.book.decline(
                    key,
                    Some(pan.clone()),
                    Kind::Inquiry,
                    codes::INVALID_TRANSACTION.into(),
                );
                return Ok(answer(request, codes::INVALID_TRANSACTION));
            }
        };
        let amount = match kind {
            Kind::Inquiry => 0,
            _ => request.amount()?.ok_or(Malformed)?,
        };
        if let Err(Decline(code)) = self.check(request, pan, kind) {
            tracing::info!(%pan, stan = key.stan, code, "declined");
            self.book.decline(key, Some(pan.clone()), kind, code.into());
            return Ok(answer(request, code));
        }
        match self.book.approve(key.clone(), pan, kind, amount) {
            Ok(approval_code) => {
                tracing::info!(%pan, stan = key.stan, ?kind, amount, "approved");
                Ok(self.approved(request, pan, kind, &approval_code))
            }
            Err(Decline(code)) => {
                tracing::info!(%pan, stan = key.stan, ?kind, amount, code, "declined");
                Ok(answer(request, code))
            }
        }
    }

    /// Card, deposits switch and PIN, before the books are touched.
    fn check(&self, request: &Message, pan: &Pan, kind: Kind) -> Result<(), Decline> {
        let card = self.book.card(pan).ok_or(Decline(codes::UNKNOWN_CARD))?;
        if kind == Kind::Credit && !self.deposits {
            return Err(Decline(codes::NOT_PERMITTED));
        }
        if let (Some(zpk), Some(block), Some(pin)) = (&self.zpk, request.pin_block(), &card.pin) {
            if !zpk.verify(block.expose(), pan, pin) {
                return Err(Decline(codes::WRONG_PIN));
            }
        }
        Ok(())
    }

    fn approved(&self, request: &Message, pan: &Pan, kind: Kind, approval_code: &str) -> Message {
        let mut a = approve(request, Some(approval_code));
        if kind == Kind::Inquiry {
            if let Some(view) = self.book.account_view(pan) {
                let balances = Balances {
                    currency: view.currency,
                    ledger_minor: view.ledger_minor,
                    available_minor: view.available_minor,
                };
                let _ = a.set_additional_amounts(&balances.to_additional_amounts());
            }
        }
        a
    }

    /// The same original again: the answer its first arrival got, nothing applied.
    fn replay(
        &self,
        request: &Message,
        pan: &Pan,
        state: State,
        approval_code: Option<String>,
    ) -> Message {
        tracing::info!(%pan, ?state, "repeated original: answered as before, not applied again");
        match state {
            State::Declined { code } => answer(request, code.as_str()),
            State::ReversedUnseen => answer(request, codes::DUPLICATE),
            State::Inquired => self.approved(
                request,
                pan,
                Kind::Inquiry,
                approval_code.as_deref().unwrap_or(""),
            ),
            State::Held { .. } | State::Posted { .. } | State::Reversed { .. } => {
                approve(request, approval_code.as_deref())
            }
        }
    }

    /// 0220 / 0221: completion advice.
    fn completion(&mut self, request: &Message, pan: Option<&Pan>) -> Result<Message, Malformed> {
        let key = original_key(request)?;
        let actual = match request.replacement_amounts()? {
            Some(r) => r.actual_amount,
            None => request.amount()?.ok_or(Malformed)?,
        };
        let outcome = self.book.complete(key.clone(), pan, actual);
        tracing::info!(stan = key.stan, actual, ?outcome, "completion advice");
        Ok(answer(request, codes::APPROVED))
    }

    /// 0420 / 0421: reversal.
    fn reversal(&mut self, request: &Message) -> Result<Message, Malformed> {
        let key = original_key(request)?;
        let actual = request.replacement_amounts()?.map(|r| r.actual_amount);
        let outcome = self.book.reverse(key.clone(), actual);
        match outcome {
            FollowUp::UnknownOriginal => tracing::warn!(
                stan = key.stan,
                "reversal of an original never seen: acknowledged, a late original is declined 94"
            ),
            _ => tracing::info!(stan = key.stan, ?actual, ?outcome, "reversal"),
        }
        Ok(answer(request, codes::APPROVED))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CardConfig;

    fn host() -> Host {
        let mut book = Book::new();
        book.add_card(CardConfig::new("5413330089020011", 1_000))
            .unwrap();
        Host {
            book,
            rules: Vec::new(),
            zpk: None,
            deposits: true,
            drops: Drops::default(),
        }
    }

    #[test]
    fn responses_are_not_answered_and_unknown_requests_get_12() {
        let mut h = host();
        let d = h.decide(&Message::new("0110").unwrap());
        assert_eq!((d.delivery, d.answer.is_none()), (Delivery::Swallow, true));
        let d = h.decide(&Message::new("0120").unwrap());
        let answer = d.answer.unwrap();
        assert_eq!(answer.mti().as_str(), "0130");
        assert_eq!(answer.get_str(39), Some("12"));
    }

    #[test]
    fn prefix_drops_come_before_global_ones_and_spare_network_management() {
        let mut drops = Drops {
            global: 1,
            by_prefix: vec![("5413".into(), 1)],
        };
        assert!(!drops.take(None, true));
        assert!(drops.take(Some("5413330089020011"), false));
        assert_eq!((drops.global, drops.by_prefix[0].1), (1, 0));
        assert!(drops.take(Some("5413330089020011"), false));
        assert!(!drops.take(None, false));
    }
}
