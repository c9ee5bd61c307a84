//! The customer flows over in-memory fakes of the ports: no sockets, no disk, no NDC. Each test
//! is one line of the withdrawal or deposit saga (ARCHITECTURE.md): what the customer is told,
//! what stays recorded in doubt, and what advice the switch is owed.

use std::collections::{BTreeMap, HashMap};
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
use crate::domain::acceptance::{Acceptor, Acceptors};
use crate::domain::advice::{Advice, AdviceKind};
use crate::domain::dispense::TerminalReport;
use crate::domain::exchange::{CardRequest, ResponseCode, SwitchAnswer, ZonePinKeyDelivery};
use crate::domain::mix::CassetteStock;
use crate::domain::pending::{Doubt, OperatorSettlement, PendingDispense, Purpose};
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
    /// Every advice sent, and whether it went as a repeat.
    advised: Mutex<Vec<Advice>>,
    repeats: Mutex<Vec<bool>>,
    /// The switch's answers to the next advices (then 00).
    advice_codes: Mutex<Vec<ResponseCode>>,
    /// Whether the switch's last sign-on said this agent's cards may deposit offline.
    offline_ok: std::sync::atomic::AtomicBool,
}

impl FakeLink {
    fn new(up: bool, script: Vec<Script>) -> Self {
        Self {
            up: watch::channel(up).0,
            script: Mutex::new(script),
            requests: Mutex::new(Vec::new()),
            late: Mutex::new(Vec::new()),
            advised: Mutex::new(Vec::new()),
            repeats: Mutex::new(Vec::new()),
            advice_codes: Mutex::new(Vec::new()),
            offline_ok: std::sync::atomic::AtomicBool::new(true),
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
        advice: &Advice,
        repeat: bool,
        _: Option<&Pan>,
        _: Duration,
    ) -> Result<ResponseCode, LinkError> {
        self.advised.lock().unwrap().push(advice.clone());
        self.repeats.lock().unwrap().push(repeat);
        // Long enough for another pass of the forwarder to look at the queue meanwhile.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut codes = self.advice_codes.lock().unwrap();
        Ok(if codes.is_empty() {
            ResponseCode::Approved
        } else {
            codes.remove(0)
        })
    }
    fn announced_zone_key(&self) -> watch::Receiver<Option<u32>> {
        watch::channel(None).1
    }
    fn takes_deposit_offline(&self, _: &Pan) -> bool {
        self.offline_ok.load(std::sync::atomic::Ordering::SeqCst)
    }
    async fn zone_pin_key(&self) -> Result<ZonePinKeyDelivery, LinkError> {
        Err(LinkError::Down)
    }
}

#[derive(Default)]
struct FakeStore {
    stan: Mutex<u32>,
    tsn: Mutex<u16>,
    /// By terminal and TSN: one record per transaction.
    pending: Mutex<BTreeMap<(String, u16), PendingDispense>>,
    cards: Mutex<HashMap<String, Pan>>,
    operator_log: Mutex<Vec<(String, u16, OperatorSettlement)>>,
    /// Clearing a record fails this many times (a crash between the queue and the state store).
    fail_clear: Mutex<u32>,
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
            .insert((t.as_str().into(), p.tsn), p.clone());
        Ok(())
    }
    fn pending(&self, t: &TerminalId, tsn: u16) -> Result<Option<PendingDispense>, StoreError> {
        Ok(self
            .pending
            .lock()
            .unwrap()
            .get(&(t.as_str().into(), tsn))
            .cloned())
    }
    fn pending_of(&self, t: &TerminalId) -> Result<Vec<PendingDispense>, StoreError> {
        Ok(self
            .pending
            .lock()
            .unwrap()
            .iter()
            .filter(|((terminal, _), _)| terminal == t.as_str())
            .map(|(_, p)| p.clone())
            .collect())
    }
    async fn clear_pending(&self, t: &TerminalId, tsn: u16) -> Result<(), StoreError> {
        {
            let mut fail = self.fail_clear.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return Err(StoreError::Storage(
                    "crash injected before the clear".into(),
                ));
            }
        }
        self.pending
            .lock()
            .unwrap()
            .remove(&(t.as_str().into(), tsn));
        Ok(())
    }
    fn all_pending(&self) -> Vec<(String, PendingDispense)> {
        self.pending
            .lock()
            .unwrap()
            .iter()
            .map(|((t, _), v)| (t.clone(), v.clone()))
            .collect()
    }
    async fn log_operator_settlement(
        &self,
        t: &TerminalId,
        p: &PendingDispense,
        word: &OperatorSettlement,
    ) -> Result<(), StoreError> {
        self.operator_log
            .lock()
            .unwrap()
            .push((t.as_str().into(), p.tsn, word.clone()));
        Ok(())
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
    async fn put_hold(&self, _: &TerminalId, _: Option<&str>) -> Result<(), StoreError> {
        Ok(())
    }
    fn holds(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(Vec::new())
    }
    async fn append_journal(
        &self,
        _: &TerminalId,
        _: u64,
        _: Option<u32>,
        _: &[String],
    ) -> Result<crate::ports::JournalAppend, StoreError> {
        Ok(crate::ports::JournalAppend::Stored { removed: 0 })
    }
    fn journal(
        &self,
        _: &str,
        _: usize,
    ) -> Result<Vec<crate::domain::journal::JournalLine>, StoreError> {
        Ok(Vec::new())
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
    fn claim_due(&self, _: u64, _: usize) -> Vec<Entry<Advice>> {
        Vec::new()
    }
    fn release(&self, _: &EntryId) {}
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
    services_over(link, FakeQueue::default())
}

fn services_over<Q: AdviceQueue>(link: FakeLink, queue: Q) -> Services<FakeLink, FakeStore, Q> {
    let registry = Registry::default();
    registry.add("ATM00001", "001", "test");
    Services {
        uplink: link,
        queue: Arc::new(queue),
        state: Arc::new(FakeStore::default()),
        registry: Arc::new(registry),
        forwarder: Arc::new(Notify::new()),
        authorization_timeout: AUTH_TIMEOUT,
        advice_timeout: AUTH_TIMEOUT,
        max_notes: 40,
        max_malformed: 3,
        keys: None,
        zone_master_loaded: Arc::new(Notify::new()),
        claims: Default::default(),
        acceptors: Arc::new(Acceptors::new(Some(ACQUIRER.into())).with_terminal(
            "ATM00001",
            Acceptor {
                id: Some("BRANCH-0001".into()),
                location: Some(LOCATION.into()),
            },
        )),
    }
}

const ACQUIRER: &str = "12345678901";
const LOCATION: &str = "1 MAIN STREET            SPRINGFIELD  US";
/// Track 2 as the terminal reads it, sentinels included.
const TRACK2: &str = ";4761739001010010=28122011143804400000?";

fn customer(amount_minor: u64) -> CustomerRequest {
    CustomerRequest {
        pan: Pan::parse("4761739001010010").unwrap(),
        track2: Some(protocols::types::Track2::parse(TRACK2).unwrap()),
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

fn nothing_pending<Q>(svc: &Services<FakeLink, FakeStore, Q>) -> bool {
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

/// What goes on the wire: the agent's 0100 carries the card-present context; its queued 0220 and
/// 0420 carry the original's RRN and acquirer, never track 2.
#[tokio::test]
async fn requests_carry_the_acceptance_context_and_advices_keep_it_without_track_2() {
    use crate::adapters::switch_messages;
    let svc = services(FakeLink::new(
        true,
        vec![Script::Answer(approved()), Script::Answer(approved())],
    ));
    let mut atm = FakeTerminal::reporting(Some(TerminalReport::Ready));
    svc.withdrawal(&mut atm, &customer(8000)).await.unwrap();
    let mut atm = FakeTerminal::reporting(Some(TerminalReport::CashHandlerFault {
        outcome: DispenseOutcome::NoneDispensed,
        dispensed_minor: None,
    }));
    svc.withdrawal(&mut atm, &customer(8000)).await.unwrap();

    let requests = svc.uplink.requests.lock().unwrap().clone();
    let m = switch_messages::card_request(&requests[0]).unwrap();
    assert_eq!(m.mti().as_str(), "0100");
    for n in [12, 13, 18, 22, 32, 35, 37, 41, 42, 43] {
        assert!(m.contains(n), "field {n}");
    }
    assert_eq!(m.get_str(18), Some("6011"));
    assert_eq!(m.get_str(22), Some("901"));
    assert_eq!(m.get_str(32), Some(ACQUIRER));
    assert_eq!(
        m.get_str(35),
        TRACK2.get(1..TRACK2.len() - 1),
        "track 2 as read, between its sentinels"
    );
    assert_eq!(m.get_str(14), Some("2812"));
    assert_eq!(m.get_str(42), Some("BRANCH-0001    "));
    assert_eq!(m.get_str(43), Some(LOCATION));
    // Local time and date are field 7's instant (UTC); the RRN is YDDDhh + STAN.
    let at = m.get_str(7).unwrap();
    assert_eq!(m.get_str(13), at.get(..4));
    assert_eq!(m.get_str(12), at.get(4..));
    let rrn = m.get_str(37).unwrap();
    assert_eq!(&rrn[4..6], &at[4..6], "the hour");
    assert!(rrn.ends_with(m.get_str(11).unwrap()), "{rrn}");
    let rrn_of = |m: &protocols::iso8583::Message| m.get_str(37).unwrap().to_owned();
    let second = switch_messages::card_request(&requests[1]).unwrap();
    assert_ne!(rrn_of(&m), rrn_of(&second), "unique per transaction");

    let advices = svc.queue.advices.lock().unwrap().clone();
    assert_eq!(
        advices.iter().map(|a| a.kind).collect::<Vec<_>>(),
        vec![AdviceKind::Completion, AdviceKind::Reversal]
    );
    for (advice, original) in advices.iter().zip([&m, &second]) {
        let sent = switch_messages::advice(advice, false, None).unwrap();
        assert!(!sent.contains(35) && !sent.contains(52), "{}", sent.mti());
        assert_eq!(rrn_of(&sent), rrn_of(original), "the original's RRN");
        for n in [12, 13, 32, 42, 43] {
            assert_eq!(sent.get(n), original.get(n), "field {n}");
        }
        let field90 = sent.get_str(90).unwrap();
        assert_eq!(&field90[20..31], ACQUIRER, "{field90}");
        // Stored and read back (the sled queue's record), it is the same advice.
        let json = serde_json::to_string(advice).unwrap();
        assert!(
            !json.contains("4761739001010010") && !json.contains("2812"),
            "{json}"
        );
        assert_eq!(&serde_json::from_str::<Advice>(&json).unwrap(), advice);
    }
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
    let record = &pending[&("ATM00001".to_owned(), 1)];
    assert_eq!(record.purpose, Purpose::Withdrawal);
    assert_eq!(record.amount, Amount::new(8000, Currency::EUR));
    assert_eq!(record.doubt, Doubt::Awaiting);
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
async fn no_deposit_is_taken_offline_for_a_card_the_switch_does_not_credit() {
    let link = FakeLink::new(false, vec![]);
    link.offline_ok
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let svc = services(link);
    let mut atm = FakeTerminal::reporting(Some(TerminalReport::Ready));
    svc.deposit(&mut atm, &customer(2500)).await.unwrap();
    assert_eq!(
        atm.replies,
        vec![CustomerReply::Decline(Decline::HostUnavailable)]
    );
    assert!(svc.queue.kinds().is_empty());
    assert!(svc.state.cards.lock().unwrap().is_empty());
    assert!(nothing_pending(&svc));
}

#[tokio::test]
async fn a_deposit_whose_request_never_left_is_taken_as_a_stored_one_with_one_record() {
    let svc = services(FakeLink::new(true, vec![Script::Fail(LinkError::Down)]));
    let mut atm = FakeTerminal::reporting(Some(TerminalReport::Ready));
    svc.deposit(&mut atm, &customer(2500)).await.unwrap();
    assert_eq!(svc.queue.kinds(), vec![AdviceKind::StoredDeposit]);
    assert!(
        nothing_pending(&svc),
        "the online record is not left behind"
    );
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

fn e3() -> Option<TerminalReport> {
    Some(TerminalReport::CashHandlerFault {
        outcome: DispenseOutcome::Unknown,
        dispensed_minor: Some(8000),
    })
}

fn operator(dispensed_minor: Option<u64>) -> OperatorSettlement {
    OperatorSettlement {
        dispensed_minor,
        reason: "counted the cassettes and the reject bin".into(),
        by: Some("jane".into()),
        peer_uid: Some(1000),
        at_ms: 7,
    }
}

#[tokio::test]
async fn a_dispense_in_doubt_is_not_replaced_by_the_next_customer() {
    let answers = vec![Script::Answer(approved()), Script::Answer(approved())];
    let svc = services(FakeLink::new(true, answers));
    let mut atm = FakeTerminal::reporting(e3());
    svc.withdrawal(&mut atm, &customer(8000)).await.unwrap();
    svc.next_customer(&atm.id).await.unwrap();
    atm.report = Some(TerminalReport::Ready);
    svc.withdrawal(&mut atm, &customer(5000)).await.unwrap();

    assert_eq!(
        svc.queue.kinds(),
        vec![AdviceKind::Completion],
        "the second one"
    );
    let pending = svc.state.pending.lock().unwrap();
    assert_eq!(pending.len(), 1);
    let first = &pending[&("ATM00001".to_owned(), 1)];
    assert_eq!(first.amount.minor, 8000);
    assert!(
        matches!(&first.doubt, Doubt::Uncounted { report } if report.contains("E3")),
        "{:?}",
        first.doubt
    );
}

#[tokio::test]
async fn the_terminals_counters_settle_each_record_by_its_tsn() {
    let answers = vec![Script::Answer(approved()), Script::Answer(approved())];
    let svc = services(FakeLink::new(true, answers));
    let mut atm = FakeTerminal::reporting(None);
    // TSN 1 gets no status; the terminal goes on to TSN 2, which gets none either.
    svc.withdrawal(&mut atm, &customer(8000)).await.unwrap();
    svc.next_customer(&atm.id).await.unwrap();
    svc.withdrawal(&mut atm, &customer(5000)).await.unwrap();
    assert_eq!(svc.state.pending.lock().unwrap().len(), 2);

    // Its counters name TSN 2 with notes worth 5000: TSN 2 is settled, TSN 1 cannot be told.
    svc.settle_after_power_failure(&mut atm, 2, 5000)
        .await
        .unwrap();
    let advices = svc.queue.advices.lock().unwrap().clone();
    assert_eq!(advices.len(), 1);
    assert_eq!(advices[0].actual_minor, Some(5000));
    assert_eq!(
        advices[0].original.as_ref().unwrap().stan.value(),
        3,
        "the second transaction (each takes a STAN for its request and one for its advice)"
    );
    let pending = svc.state.pending.lock().unwrap().clone();
    assert_eq!(
        pending.keys().collect::<Vec<_>>(),
        vec![&("ATM00001".to_owned(), 1)]
    );
    assert_eq!(
        pending[&("ATM00001".to_owned(), 1)].doubt,
        Doubt::Unreported
    );

    // Counters naming TSN 1 itself settle it.
    svc.settle_after_power_failure(&mut atm, 1, 8000)
        .await
        .unwrap();
    assert_eq!(
        svc.queue.kinds(),
        vec![AdviceKind::Completion, AdviceKind::Completion]
    );
    assert!(nothing_pending(&svc));
}

#[tokio::test]
async fn a_technician_settles_a_dispense_in_doubt_and_is_journaled() {
    let answers = vec![Script::Answer(approved()), Script::Answer(approved())];
    let svc = services(FakeLink::new(true, answers));
    let mut atm = FakeTerminal::reporting(e3());
    svc.withdrawal(&mut atm, &customer(8000)).await.unwrap();
    svc.withdrawal(&mut atm, &customer(5000)).await.unwrap();
    let terminal = atm.id.clone();

    let unknown = svc.settle_by_operator(&terminal, 9, operator(None)).await;
    assert!(
        matches!(
            unknown,
            Err(super::settlement::OperatorSettleError::NotFound { tsn: 9, .. })
        ),
        "{unknown:?}"
    );
    let too_much = svc
        .settle_by_operator(&terminal, 1, operator(Some(8001)))
        .await;
    assert!(too_much.unwrap_err().to_string().starts_with("invalid:"));
    assert!(svc.queue.kinds().is_empty());

    let done = svc
        .settle_by_operator(&terminal, 1, operator(Some(6000)))
        .await
        .unwrap();
    assert_eq!(done.advice, Some(AdviceKind::Completion));
    let nothing = svc
        .settle_by_operator(&terminal, 2, operator(None))
        .await
        .unwrap();
    assert_eq!(nothing.advice, Some(AdviceKind::Reversal));

    let advices = svc.queue.advices.lock().unwrap().clone();
    assert_eq!(advices[0].actual_minor, Some(6000));
    assert_eq!(advices[1].original.as_ref().unwrap().stan.value(), 3);
    assert!(nothing_pending(&svc));
    let log = svc.state.operator_log.lock().unwrap().clone();
    assert_eq!(log.len(), 2);
    assert_eq!((log[0].1, log[0].2.by.as_deref()), (1, Some("jane")));

    let again = svc.settle_by_operator(&terminal, 1, operator(None)).await;
    assert!(again.is_err(), "settled once");
}

#[tokio::test]
async fn a_record_being_settled_is_not_settled_twice() {
    let svc = services(FakeLink::new(true, vec![Script::Answer(approved())]));
    let mut atm = FakeTerminal::reporting(None);
    svc.withdrawal(&mut atm, &customer(8000)).await.unwrap();
    let claim = svc.claims.claim(&atm.id, 1).unwrap();
    let busy = svc.settle_by_operator(&atm.id, 1, operator(None)).await;
    assert!(matches!(
        busy,
        Err(super::settlement::OperatorSettleError::Busy)
    ));
    svc.settle_after_power_failure(&mut atm, 1, 0)
        .await
        .unwrap();
    assert!(
        svc.queue.kinds().is_empty(),
        "the terminal's word waits for the claim"
    );
    drop(claim);
    svc.settle_by_operator(&atm.id, 1, operator(None))
        .await
        .unwrap();
    assert_eq!(svc.queue.kinds(), vec![AdviceKind::Reversal]);
}

fn sled_queue(dir: &tempfile::TempDir) -> crate::queue::SafQueue<Advice> {
    crate::queue::SafQueue::open(dir.path(), crate::queue::QueueConfig::default()).unwrap()
}

#[tokio::test]
async fn a_settlement_replayed_after_a_crash_between_queue_and_state_queues_the_same_advice_once() {
    let dir = tempfile::tempdir().unwrap();
    let svc = services_over(FakeLink::new(false, vec![]), sled_queue(&dir));
    *svc.state.fail_clear.lock().unwrap() = 1;
    let mut atm = FakeTerminal::reporting(Some(TerminalReport::Ready));
    // A deposit taken offline: its advice is queued, then the "crash" before the record clears.
    let crashed = svc.deposit(&mut atm, &customer(2500)).await;
    assert!(
        matches!(crashed, Err(SessionEnd::Storage(_))),
        "{crashed:?}"
    );
    assert_eq!(svc.queue.len(), 1);
    let first = svc.queue.list()[0].payload.clone();

    // After the restart the terminal's counters name the same TSN: settled again.
    svc.settle_after_power_failure(&mut atm, 1, 0)
        .await
        .unwrap();
    assert!(nothing_pending(&svc));
    assert_eq!(svc.queue.len(), 1, "the replay queued nothing new");
    assert_eq!(svc.queue.list()[0].payload, first, "same STAN, same time");
}

#[tokio::test]
async fn a_settlement_replayed_after_a_crash_names_the_same_advice() {
    let svc = services(FakeLink::new(true, vec![Script::Answer(approved())]));
    *svc.state.fail_clear.lock().unwrap() = 1;
    let mut atm = FakeTerminal::reporting(Some(TerminalReport::Ready));
    assert!(svc.withdrawal(&mut atm, &customer(8000)).await.is_err());
    svc.settle_after_power_failure(&mut atm, 1, 8000)
        .await
        .unwrap();
    let advices = svc.queue.advices.lock().unwrap();
    assert_eq!(advices.len(), 2, "the fake queue keeps both");
    assert_eq!(
        (advices[0].stan, advices[0].transmitted_at),
        (advices[1].stan, advices[1].transmitted_at),
        "one advice key, so the queue (and the switch) see one advice"
    );
}

#[tokio::test]
async fn the_forwarder_sends_an_advice_once_even_when_woken_while_it_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Arc::new(services_over(FakeLink::new(true, vec![]), sled_queue(&dir)));
    let terminal = TerminalId::parse("ATM00001").unwrap();
    let at = protocols::iso8583::TransmissionDateTime::parse("1125114000").unwrap();
    let advice = Advice::status(
        &terminal,
        Stan::new(1).unwrap(),
        at,
        Amount::new(0, Currency::EUR),
        "P20",
    );
    AdviceQueue::enqueue(&*svc.queue, &terminal, advice)
        .await
        .unwrap();
    // A wake-up already waiting: the forwarder looks at the queue again at once.
    svc.forwarder.notify_one();
    let (stop, stopped) = watch::channel(false);
    let forwarder = tokio::spawn(super::forwarder::run(svc.clone(), stopped));
    let queue = svc.queue.clone();
    testkit::wait::wait_until("the advice to be acknowledged", 10, || {
        let queue = queue.clone();
        async move { queue.is_empty() }
    })
    .await;
    stop.send(true).unwrap();
    forwarder.await.unwrap();
    assert_eq!(svc.uplink.advised.lock().unwrap().len(), 1, "sent once");
}

/// A deposit taken while the switch was unreachable, queued in a sled queue.
async fn stored_deposit(
    dir: &tempfile::TempDir,
    codes: Vec<ResponseCode>,
) -> Services<FakeLink, FakeStore, crate::queue::SafQueue<Advice>> {
    let link = FakeLink::new(false, vec![]);
    *link.advice_codes.lock().unwrap() = codes;
    let svc = services_over(link, sled_queue(dir));
    let mut atm = FakeTerminal::reporting(Some(TerminalReport::Ready));
    svc.deposit(&mut atm, &customer(2500)).await.unwrap();
    assert_eq!(svc.queue.len(), 1);
    svc
}

/// One pass of the forwarder over whatever is due now.
async fn forward_due<Q: AdviceQueue>(svc: &Services<FakeLink, FakeStore, Q>) -> usize {
    let due = svc.queue.claim_due(crate::clock::now_ms(), 64);
    let n = due.len();
    for entry in due {
        super::forwarder::forward(svc, entry).await;
    }
    n
}

#[tokio::test]
async fn a_final_decline_parks_the_advice_with_its_reason_and_keeps_the_card() {
    let dir = tempfile::tempdir().unwrap();
    let svc = stored_deposit(&dir, vec![ResponseCode::InvalidAccount]).await;
    assert_eq!(forward_due(&svc).await, 1);
    assert_eq!((svc.queue.len(), svc.queue.parked_len()), (0, 1));
    let parked = &svc.queue.list()[0];
    assert!(
        parked.parked_reason.as_deref().unwrap_or("").contains("14"),
        "{parked:?}"
    );
    assert_eq!(
        svc.state.cards.lock().unwrap().len(),
        1,
        "the card stays in the vault until an operator acts"
    );
}

#[tokio::test]
async fn a_91_to_an_advice_is_retried_as_a_repeat_never_final() {
    let dir = tempfile::tempdir().unwrap();
    let svc = stored_deposit(&dir, vec![ResponseCode::IssuerUnavailable]).await;
    forward_due(&svc).await;
    assert_eq!(
        (svc.queue.len(), svc.queue.parked_len()),
        (1, 0),
        "still owed"
    );
    assert_eq!(svc.state.cards.lock().unwrap().len(), 1);
    svc.queue.retry_now(None);
    forward_due(&svc).await;
    assert!(svc.queue.is_empty(), "acknowledged on the repeat");
    assert_eq!(*svc.uplink.repeats.lock().unwrap(), vec![false, true]);
    assert_eq!(svc.uplink.advised.lock().unwrap()[1].mti(true), "0221");
    assert!(
        svc.state.cards.lock().unwrap().is_empty(),
        "card gone once acknowledged"
    );
}
