//! The customer flows over in-memory fakes of the ports: no sockets, no disk, no NDC. Each test
//! is one line of the withdrawal or deposit saga (ARCHITECTURE.md): what the customer is told,
//! what stays recorded in doubt, and what advice the switch is owed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocols::ndc::DispenseOutcome;
use protocols::types::{Amount, Currency, Pan, Stan, TerminalId};
use tokio::sync::{watch, Notify};

use super::conversation::{
    Conversation, CustomerReply, CustomerRequest, Decline, PinEntry, SessionEnd,
};
use super::registry::Registry;
use super::Services;
use crate::domain::advice::{Advice, AdviceKind};
use crate::domain::dispense::TerminalReport;
use crate::domain::exchange::{CardRequest, ResponseCode, SwitchAnswer, ZonePinKeyDelivery};
use crate::domain::mix::CassetteStock;
use crate::domain::pending::{PendingDispense, Purpose};
use crate::domain::pin::LoadedPinKey;
use crate::ports::{
    AdviceQueue, Entry, EntryId, LinkError, QueueError, RetryOutcome, StoreError, SwitchLink,
    TerminalStore,
};

const AUTH_TIMEOUT: Duration = Duration::from_millis(50);

/// What the fake switch does with the next request.
enum Script {
    Answer(SwitchAnswer),
    /// Answers, but only after this long (later than the agent waits: a late approval).
    AnswerAfter(Duration, SwitchAnswer),
    Fail(LinkError),
}

struct FakeLink {
    up: watch::Sender<bool>,
    script: Mutex<Vec<Script>>,
    requests: Mutex<Vec<CardRequest>>,
    /// Answers that came after their request's timeout (the uplink's late-response channel).
    late: Mutex<Vec<SwitchAnswer>>,
}

impl FakeLink {
    fn new(up: bool, script: Vec<Script>) -> Self {
        Self {
            up: watch::channel(up).0,
            script: Mutex::new(script),
            requests: Mutex::new(Vec::new()),
            late: Mutex::new(Vec::new()),
        }
    }
}

impl SwitchLink for FakeLink {
    fn is_up(&self) -> bool {
        *self.up.borrow()
    }
    fn link_state(&self) -> watch::Receiver<bool> {
        self.up.subscribe()
    }
    async fn request(
        &self,
        request: &CardRequest,
        timeout: Duration,
    ) -> Result<SwitchAnswer, LinkError> {
        self.requests.lock().unwrap().push(request.clone());
        let next = self.script.lock().unwrap().remove(0);
        match next {
            Script::Answer(a) => Ok(a),
            Script::Fail(e) => Err(e),
            Script::AnswerAfter(delay, a) => {
                match tokio::time::timeout(timeout, tokio::time::sleep(delay)).await {
                    Ok(()) => Ok(a),
                    Err(_) => {
                        self.late.lock().unwrap().push(a);
                        Err(LinkError::Timeout(timeout.as_millis() as u64))
                    }
                }
            }
        }
    }
    async fn advise(
        &self,
        _: &Advice,
        _: bool,
        _: Option<&Pan>,
        _: Duration,
    ) -> Result<ResponseCode, LinkError> {
        Ok(ResponseCode::Approved)
    }
    fn announced_zone_key(&self) -> watch::Receiver<Option<u32>> {
        watch::channel(None).1
    }
    async fn zone_pin_key(&self) -> Result<ZonePinKeyDelivery, LinkError> {
        Err(LinkError::Down)
    }
}

#[derive(Default)]
struct FakeStore {
    stan: Mutex<u32>,
    tsn: Mutex<u16>,
    pending: Mutex<HashMap<String, PendingDispense>>,
    cards: Mutex<HashMap<String, Pan>>,
}

impl TerminalStore for FakeStore {
    async fn next_stan(&self, _: &TerminalId) -> Result<Stan, StoreError> {
        let mut s = self.stan.lock().unwrap();
        *s += 1;
        Ok(Stan::new(*s).unwrap())
    }
    async fn next_tsn(&self, _: &TerminalId) -> Result<u16, StoreError> {
        let mut t = self.tsn.lock().unwrap();
        *t += 1;
        Ok(*t)
    }
    async fn put_pending(&self, t: &TerminalId, p: &PendingDispense) -> Result<(), StoreError> {
        self.pending
            .lock()
            .unwrap()
            .insert(t.as_str().into(), p.clone());
        Ok(())
    }
    fn pending(&self, t: &TerminalId) -> Result<Option<PendingDispense>, StoreError> {
        Ok(self.pending.lock().unwrap().get(t.as_str()).cloned())
    }
    async fn clear_pending(&self, t: &TerminalId) -> Result<(), StoreError> {
        self.pending.lock().unwrap().remove(t.as_str());
        Ok(())
    }
    fn all_pending(&self) -> Vec<(String, PendingDispense)> {
        self.pending
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
    async fn put_card(&self, reference: &str, pan: &Pan) -> Result<(), StoreError> {
        self.cards
            .lock()
            .unwrap()
            .insert(reference.into(), pan.clone());
        Ok(())
    }
    fn card(&self, reference: &str) -> Result<Option<Pan>, StoreError> {
        Ok(self.cards.lock().unwrap().get(reference).cloned())
    }
    async fn remove_card(&self, reference: &str) -> Result<(), StoreError> {
        self.cards.lock().unwrap().remove(reference);
        Ok(())
    }
    async fn put_pin_key(&self, _: &TerminalId, _: &LoadedPinKey) -> Result<(), StoreError> {
        Ok(())
    }
    fn pin_key(&self, _: &TerminalId) -> Result<Option<LoadedPinKey>, StoreError> {
        Ok(None)
    }
}

#[derive(Default)]
struct FakeQueue {
    advices: Mutex<Vec<Advice>>,
}

impl FakeQueue {
    fn kinds(&self) -> Vec<AdviceKind> {
        self.advices
            .lock()
            .unwrap()
            .iter()
            .map(|a| a.kind)
            .collect()
    }
}

impl AdviceQueue for FakeQueue {
    async fn enqueue(&self, _: &TerminalId, advice: Advice) -> Result<(), QueueError> {
        self.advices.lock().unwrap().push(advice);
        Ok(())
    }
    fn due(&self, _: u64) -> Vec<Entry<Advice>> {
        Vec::new()
    }
    async fn begin_attempt(&self, id: &EntryId) -> Result<Entry<Advice>, QueueError> {
        Err(QueueError::NotFound(id.clone()))
    }
    async fn complete(&self, id: &EntryId) -> Result<(), QueueError> {
        Err(QueueError::NotFound(id.clone()))
    }
    async fn retry_later(
        &self,
        id: &EntryId,
        _: &str,
        _: bool,
    ) -> Result<RetryOutcome, QueueError> {
        Err(QueueError::NotFound(id.clone()))
    }
    async fn park(&self, id: &EntryId, _: &str) -> Result<(), QueueError> {
        Err(QueueError::NotFound(id.clone()))
    }
}

/// A terminal with four cassettes of 10, 20, 50 and 100 euros, 100 notes each.
struct FakeTerminal {
    id: TerminalId,
    replies: Vec<CustomerReply>,
    /// What the terminal says after a reply that moves cash.
    report: Option<TerminalReport>,
}

impl FakeTerminal {
    fn reporting(report: Option<TerminalReport>) -> Self {
        Self {
            id: TerminalId::parse("ATM00001").unwrap(),
            replies: Vec::new(),
            report,
        }
    }
}

impl Conversation for FakeTerminal {
    fn terminal_id(&self) -> &TerminalId {
        &self.id
    }
    fn currency(&self) -> Currency {
        Currency::EUR
    }
    fn note_stock(&self) -> (Vec<CassetteStock>, usize) {
        let stock = [1000, 2000, 5000, 10_000]
            .iter()
            .enumerate()
            .map(|(i, d)| CassetteStock {
                cassette_type: i as u8 + 1,
                denomination_minor: *d,
                notes: 100,
            })
            .collect();
        (stock, 4)
    }
    fn dispensed(&mut self, _: &[u32], _: bool) {}
    async fn reply(&mut self, reply: CustomerReply) -> Result<(), SessionEnd> {
        self.replies.push(reply);
        Ok(())
    }
    async fn report(&mut self) -> Result<Option<TerminalReport>, SessionEnd> {
        Ok(self.report)
    }
}

fn services(link: FakeLink) -> Services<FakeLink, FakeStore, FakeQueue> {
    let registry = Registry::default();
    registry.add("ATM00001", "001", "test");
    Services {
        uplink: link,
        queue: Arc::new(FakeQueue::default()),
        state: Arc::new(FakeStore::default()),
        registry: Arc::new(registry),
        forwarder: Arc::new(Notify::new()),
        authorization_timeout: AUTH_TIMEOUT,
        advice_timeout: AUTH_TIMEOUT,
        max_notes: 40,
        max_malformed: 3,
        keys: None,
        zone_master_loaded: Arc::new(Notify::new()),
    }
}

fn customer(amount_minor: u64) -> CustomerRequest {
    CustomerRequest {
        pan: Pan::parse("4761739001010010").unwrap(),
        amount_minor,
        pin: PinEntry::Absent,
    }
}

fn approved() -> SwitchAnswer {
    SwitchAnswer {
        approval_code: Some("123456".into()),
        ..SwitchAnswer::code(ResponseCode::Approved)
    }
}

fn nothing_pending(svc: &Services<FakeLink, FakeStore, FakeQueue>) -> bool {
    svc.state.pending.lock().unwrap().is_empty()
}

#[tokio::test]
async fn approved_withdrawal_dispenses_and_queues_a_completion_for_the_full_amount() {
    let svc = services(FakeLink::new(true, vec![Script::Answer(approved())]));
    let mut atm = FakeTerminal::reporting(Some(TerminalReport::Ready));
    svc.withdrawal(&mut atm, &customer(8000)).await.unwrap();

    assert!(matches!(
        &atm.replies[..],
        [CustomerReply::Dispense { amount, approval_code, tsn: 1, .. }]
            if amount.minor == 8000 && approval_code == "123456"
    ));
    let advices = svc.queue.advices.lock().unwrap();
    assert_eq!(advices.len(), 1);
    let completion = &advices[0];
    assert_eq!(completion.kind, AdviceKind::Completion);
    assert_eq!(completion.actual_minor, Some(8000));
    let original = completion.original.as_ref().unwrap();
    assert_eq!((original.mti.as_str(), original.stan.value()), ("0100", 1));
    assert!(nothing_pending(&svc));
}

#[tokio::test]
async fn short_dispense_completes_only_what_left_the_cassettes() {
    let svc = services(FakeLink::new(true, vec![Script::Answer(approved())]));
    let mut atm = FakeTerminal::reporting(Some(TerminalReport::CashHandlerFault {
        outcome: DispenseOutcome::ShortDispense,
        dispensed_minor: Some(5000),
    }));
    svc.withdrawal(&mut atm, &customer(8000)).await.unwrap();
    let advices = svc.queue.advices.lock().unwrap();
    assert_eq!(advices[0].kind, AdviceKind::Completion);
    assert_eq!(advices[0].actual_minor, Some(5000));
    assert_eq!(advices[0].amount.minor, 8000);
}

#[tokio::test]
async fn short_dispense_without_counts_stays_in_doubt_instead_of_being_reversed() {
    for dispensed_minor in [None, Some(0)] {
        let svc = services(FakeLink::new(true, vec![Script::Answer(approved())]));
        let mut atm = FakeTerminal::reporting(Some(TerminalReport::CashHandlerFault {
            outcome: DispenseOutcome::ShortDispense,
            dispensed_minor,
        }));
        svc.withdrawal(&mut atm, &customer(8000)).await.unwrap();
        assert!(
            svc.queue.kinds().is_empty(),
            "{dispensed_minor:?}: neither captured nor reversed by a guess"
        );
        assert!(
            !nothing_pending(&svc),
            "{dispensed_minor:?}: kept for an operator"
        );
    }
}

#[tokio::test]
async fn nothing_dispensed_is_reversed_even_without_counts() {
    let svc = services(FakeLink::new(true, vec![Script::Answer(approved())]));
    let mut atm = FakeTerminal::reporting(Some(TerminalReport::CashHandlerFault {
        outcome: DispenseOutcome::NoneDispensed,
        dispensed_minor: None,
    }));
    svc.withdrawal(&mut atm, &customer(8000)).await.unwrap();
    assert_eq!(svc.queue.kinds(), vec![AdviceKind::Reversal]);
    assert!(nothing_pending(&svc));
}

#[tokio::test]
async fn late_approval_declines_the_customer_and_queues_a_reversal() {
    let late = Script::AnswerAfter(AUTH_TIMEOUT * 4, approved());
    let svc = services(FakeLink::new(true, vec![late]));
    let mut atm = FakeTerminal::reporting(Some(TerminalReport::Ready));
    svc.withdrawal(&mut atm, &customer(8000)).await.unwrap();

    assert_eq!(
        atm.replies,
        vec![CustomerReply::Decline(Decline::HostUnavailable)]
    );
    assert_eq!(
        svc.uplink.late.lock().unwrap().len(),
        1,
        "the approval came late"
    );
    let advices = svc.queue.advices.lock().unwrap();
    assert_eq!(advices.len(), 1);
    assert_eq!(advices[0].kind, AdviceKind::Reversal);
    assert_eq!(advices[0].original.as_ref().unwrap().stan.value(), 1);
    assert!(nothing_pending(&svc));
}

#[tokio::test]
async fn withdrawal_whose_link_died_after_the_request_left_is_reversed() {
    let svc = services(FakeLink::new(true, vec![Script::Fail(LinkError::Lost)]));
    let mut atm = FakeTerminal::reporting(Some(TerminalReport::Ready));
    svc.withdrawal(&mut atm, &customer(8000)).await.unwrap();
    assert_eq!(
        atm.replies,
        vec![CustomerReply::Decline(Decline::HostUnavailable)]
    );
    assert_eq!(svc.queue.kinds(), vec![AdviceKind::Reversal]);
    assert!(nothing_pending(&svc));
}

#[tokio::test]
async fn withdrawal_never_sent_is_forgotten_without_a_reversal() {
    let svc = services(FakeLink::new(true, vec![Script::Fail(LinkError::Down)]));
    let mut atm = FakeTerminal::reporting(None);
    svc.withdrawal(&mut atm, &customer(8000)).await.unwrap();
    assert_eq!(
        atm.replies,
        vec![CustomerReply::Decline(Decline::HostUnavailable)]
    );
    assert!(svc.queue.kinds().is_empty());
    assert!(nothing_pending(&svc));
}

#[tokio::test]
async fn declined_withdrawal_shows_the_reason_and_owes_nothing() {
    let decline = SwitchAnswer::code(ResponseCode::InsufficientFunds);
    let svc = services(FakeLink::new(true, vec![Script::Answer(decline)]));
    let mut atm = FakeTerminal::reporting(Some(TerminalReport::Ready));
    svc.withdrawal(&mut atm, &customer(8000)).await.unwrap();
    assert_eq!(
        atm.replies,
        vec![CustomerReply::Decline(Decline::InsufficientFunds)]
    );
    assert!(svc.queue.kinds().is_empty());
    assert!(nothing_pending(&svc));
}

#[tokio::test]
async fn a_system_error_to_a_withdrawal_declines_the_customer_and_queues_a_reversal() {
    let error = SwitchAnswer::code(ResponseCode::SystemError);
    let svc = services(FakeLink::new(true, vec![Script::Answer(error)]));
    let mut atm = FakeTerminal::reporting(Some(TerminalReport::Ready));
    svc.withdrawal(&mut atm, &customer(8000)).await.unwrap();
    assert_eq!(
        atm.replies,
        vec![CustomerReply::Decline(Decline::HostUnavailable)]
    );
    assert_eq!(svc.queue.kinds(), vec![AdviceKind::Reversal]);
    let advices = svc.queue.advices.lock().unwrap();
    let original = advices[0].original.as_ref().unwrap();
    assert_eq!((original.mti.as_str(), original.stan.value()), ("0100", 1));
    drop(advices);
    assert!(nothing_pending(&svc));
}

#[tokio::test]
async fn a_system_error_to_an_online_deposit_queues_a_reversal() {
    let error = SwitchAnswer::code(ResponseCode::SystemError);
    let svc = services(FakeLink::new(true, vec![Script::Answer(error)]));
    let mut atm = FakeTerminal::reporting(Some(TerminalReport::Ready));
    svc.deposit(&mut atm, &customer(2500)).await.unwrap();
    assert_eq!(
        atm.replies,
        vec![CustomerReply::Decline(Decline::HostUnavailable)]
    );
    assert_eq!(svc.queue.kinds(), vec![AdviceKind::Reversal]);
    let advices = svc.queue.advices.lock().unwrap();
    assert_eq!(advices[0].original.as_ref().unwrap().mti.as_str(), "0200");
    drop(advices);
    assert!(nothing_pending(&svc));
}

#[tokio::test]
async fn definite_declines_owe_nothing() {
    for code in [
        ResponseCode::InsufficientFunds,
        ResponseCode::DoNotHonour,
        ResponseCode::InvalidAccount,
        ResponseCode::WrongPin,
        ResponseCode::OverLimit,
        ResponseCode::IssuerUnavailable,
    ] {
        let answers = vec![
            Script::Answer(SwitchAnswer::code(code)),
            Script::Answer(SwitchAnswer::code(code)),
        ];
        let svc = services(FakeLink::new(true, answers));
        let mut atm = FakeTerminal::reporting(Some(TerminalReport::Ready));
        svc.withdrawal(&mut atm, &customer(8000)).await.unwrap();
        svc.deposit(&mut atm, &customer(2500)).await.unwrap();
        assert!(svc.queue.kinds().is_empty(), "{code}");
        assert!(nothing_pending(&svc), "{code}");
    }
}

#[tokio::test]
async fn amount_the_cassettes_cannot_make_is_declined_without_asking_the_switch() {
    let svc = services(FakeLink::new(true, vec![]));
    let mut atm = FakeTerminal::reporting(None);
    svc.withdrawal(&mut atm, &customer(8050)).await.unwrap();
    assert_eq!(
        atm.replies,
        vec![CustomerReply::Decline(Decline::AmountNotAvailable)]
    );
    assert!(svc.uplink.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn dispense_without_a_status_stays_in_doubt() {
    let svc = services(FakeLink::new(true, vec![Script::Answer(approved())]));
    let mut atm = FakeTerminal::reporting(None);
    svc.withdrawal(&mut atm, &customer(8000)).await.unwrap();
    assert!(svc.queue.kinds().is_empty());
    let pending = svc.state.pending.lock().unwrap();
    assert_eq!(pending["ATM00001"].purpose, Purpose::Withdrawal);
    assert_eq!(pending["ATM00001"].amount, Amount::new(8000, Currency::EUR));
}

#[tokio::test]
async fn online_deposit_taken_owes_nothing_more() {
    let svc = services(FakeLink::new(true, vec![Script::Answer(approved())]));
    let mut atm = FakeTerminal::reporting(Some(TerminalReport::Ready));
    svc.deposit(&mut atm, &customer(2500)).await.unwrap();
    assert!(matches!(
        &atm.replies[..],
        [CustomerReply::AcceptDeposit { amount, .. }] if amount.minor == 2500
    ));
    let requests = svc.uplink.requests.lock().unwrap();
    assert_eq!(
        requests[0].transaction,
        crate::domain::exchange::TransactionType::Deposit
    );
    assert!(svc.queue.kinds().is_empty());
    assert!(nothing_pending(&svc));
}

#[tokio::test]
async fn online_deposit_the_terminal_did_not_take_is_reversed() {
    let svc = services(FakeLink::new(true, vec![Script::Answer(approved())]));
    let mut atm = FakeTerminal::reporting(Some(TerminalReport::Rejected));
    svc.deposit(&mut atm, &customer(2500)).await.unwrap();
    assert_eq!(svc.queue.kinds(), vec![AdviceKind::Reversal]);
    let advices = svc.queue.advices.lock().unwrap();
    assert_eq!(advices[0].original.as_ref().unwrap().mti.as_str(), "0200");
}

#[tokio::test]
async fn late_deposit_credit_declines_the_customer_and_queues_a_reversal() {
    let late = Script::AnswerAfter(AUTH_TIMEOUT * 4, approved());
    let svc = services(FakeLink::new(true, vec![late]));
    let mut atm = FakeTerminal::reporting(Some(TerminalReport::Ready));
    svc.deposit(&mut atm, &customer(2500)).await.unwrap();
    assert_eq!(
        atm.replies,
        vec![CustomerReply::Decline(Decline::HostUnavailable)]
    );
    assert_eq!(svc.queue.kinds(), vec![AdviceKind::Reversal]);
    assert!(nothing_pending(&svc));
}

#[tokio::test]
async fn declined_deposit_shows_the_reason_and_owes_nothing() {
    let decline = SwitchAnswer::code(ResponseCode::InvalidAccount);
    let svc = services(FakeLink::new(true, vec![Script::Answer(decline)]));
    let mut atm = FakeTerminal::reporting(Some(TerminalReport::Ready));
    svc.deposit(&mut atm, &customer(2500)).await.unwrap();
    assert_eq!(atm.replies, vec![CustomerReply::Decline(Decline::Declined)]);
    assert!(svc.queue.kinds().is_empty());
    assert!(nothing_pending(&svc));
}

#[tokio::test]
async fn deposit_while_the_switch_is_unreachable_is_advised_once_taken() {
    let svc = services(FakeLink::new(false, vec![]));
    let mut atm = FakeTerminal::reporting(Some(TerminalReport::Ready));
    svc.deposit(&mut atm, &customer(2500)).await.unwrap();
    assert!(matches!(
        &atm.replies[..],
        [CustomerReply::AcceptDeposit { .. }]
    ));
    let advices = svc.queue.advices.lock().unwrap();
    assert_eq!(advices.len(), 1);
    assert_eq!(advices[0].kind, AdviceKind::StoredDeposit);
    let reference = advices[0].card_ref.clone().unwrap();
    assert_eq!(reference, "ATM00001:000001");
    assert!(svc.state.cards.lock().unwrap().contains_key(&reference));
    assert!(nothing_pending(&svc));
}

#[tokio::test]
async fn stored_deposit_the_terminal_did_not_take_leaves_no_card_behind() {
    let svc = services(FakeLink::new(false, vec![]));
    let mut atm = FakeTerminal::reporting(Some(TerminalReport::Rejected));
    svc.deposit(&mut atm, &customer(2500)).await.unwrap();
    assert!(svc.queue.kinds().is_empty());
    assert!(svc.state.cards.lock().unwrap().is_empty());
}

#[tokio::test]
async fn power_failure_settles_the_dispense_from_the_terminals_last_status() {
    let svc = services(FakeLink::new(true, vec![Script::Answer(approved())]));
    let mut atm = FakeTerminal::reporting(None);
    svc.withdrawal(&mut atm, &customer(8000)).await.unwrap();
    // The terminal comes back and says transaction 1 dispensed notes worth 3000.
    svc.settle_after_power_failure(&mut atm, 1, 3000)
        .await
        .unwrap();
    let advices = svc.queue.advices.lock().unwrap();
    assert_eq!(advices[0].kind, AdviceKind::Completion);
    assert_eq!(advices[0].actual_minor, Some(3000));
    drop(advices);
    assert!(nothing_pending(&svc));
}

#[tokio::test]
async fn power_failure_before_the_terminal_saw_the_reply_reverses() {
    let svc = services(FakeLink::new(true, vec![Script::Answer(approved())]));
    let mut atm = FakeTerminal::reporting(None);
    svc.withdrawal(&mut atm, &customer(8000)).await.unwrap();
    svc.settle_after_power_failure(&mut atm, 7, 0)
        .await
        .unwrap();
    assert_eq!(svc.queue.kinds(), vec![AdviceKind::Reversal]);
}
