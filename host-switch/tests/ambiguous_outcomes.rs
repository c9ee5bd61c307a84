//! Outcomes the switch cannot know at once, against a real ledger-sim: a journal write that fails
//! after the ledger acted, a retry the breaker refuses after a failure that may have reached the
//! books, a deposit the terminal took while the switch was unreachable. Each ends with the
//! ledger's books as the terminal's cash says they must be, never a hold left open.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use host_switch::adapters::ledger_http::HttpLedger;
use host_switch::adapters::sled_journal::SledJournal;
use host_switch::app::card_refs::CardReferences;
use host_switch::app::exceptions::{ExceptionDesk, Resolution};
use host_switch::app::Switch;
use host_switch::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use host_switch::config::LedgerConfig;
use host_switch::domain::routing::{Route, RouteEntry};
use host_switch::domain::{
    MessageKey, RecordedReply, Request, ResponseCode, RouteTable, TxnKey, TxnRecord, WalletAccount,
};
use host_switch::ports::{Journal, JournalError, JournalWrite};
use ledger_sim::{FaultConfig, RunningLedger};
use protocols::types::{Amount, Currency, Pan, Stan, TerminalId};
use testkit::custodian_keys::CustodianKey;

const ALICE: &str = "4761739001010010";
/// On the wallet route, but the ledger has no account for it.
const NO_ACCOUNT: &str = "4761739001019995";
/// Routed to a bank host, which nothing serves yet.
const BANK_CARD: &str = "5413330089020011";
const START: u64 = 100_000;

/// The card's wallet account under the tests' card reference key.
fn account(pan: &str) -> String {
    let mac = CustodianKey::test_card_reference()
        .card_reference_mac(&Pan::parse(pan).unwrap())
        .unwrap();
    WalletAccount::from_mac(&mac).as_str().to_owned()
}

/// The switch's card references: a key store in `dir` with the tests' card reference key.
fn card_refs(dir: &std::path::Path) -> Arc<CardReferences> {
    let (kek, store) =
        testkit::custodian_keys::prepare_card_ref_store(dir, &CustodianKey::test_card_reference())
            .unwrap();
    let store =
        keystore::SoftwareKeyStore::open(&store, keystore::Kek::from_file(&kek).unwrap()).unwrap();
    let name = keystore::KeyName::new(testkit::custodian_keys::CARD_REF_KEY).unwrap();
    Arc::new(CardReferences::open(Arc::new(store), &name).unwrap())
}

/// The sled journal, with one write made to fail on demand: a disk error (or a crash) between
/// the ledger's answer and the journal.
struct FlakyJournal {
    inner: SledJournal,
    /// Fails the next write whose transaction is in this state.
    fail_state: Mutex<Option<&'static str>>,
    failed: AtomicUsize,
}

impl Journal for FlakyJournal {
    fn reply(&self, key: &MessageKey) -> Result<Option<RecordedReply>, JournalError> {
        self.inner.reply(key)
    }
    fn txn(&self, key: &str) -> Result<Option<TxnRecord>, JournalError> {
        self.inner.txn(key)
    }
    async fn write(&self, write: JournalWrite) -> Result<(), JournalError> {
        let state = write.txn.as_ref().map(|r| r.state.name());
        let fail = {
            let mut armed = self.fail_state.lock().unwrap();
            let hit = armed.is_some() && *armed == state;
            if hit {
                *armed = None;
            }
            hit
        };
        if fail {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(JournalError::Storage {
                context: "injected disk failure".into(),
                source: "no space left on device".into(),
            });
        }
        self.inner.write(write).await
    }
    fn txns(&self) -> Result<Vec<TxnRecord>, JournalError> {
        self.inner.txns()
    }
    fn pending_keys(&self) -> Result<Vec<String>, JournalError> {
        self.inner.pending_keys()
    }
}

struct Bench {
    _dir: tempfile::TempDir,
    ledger: RunningLedger,
    breaker: Arc<CircuitBreaker>,
    journal: Arc<FlakyJournal>,
    switch: Switch<HttpLedger, FlakyJournal>,
}

impl Bench {
    async fn start(breaker: BreakerConfig) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let ledger = testkit::ledger::start_seeded(dir.path(), &[(account(ALICE), START)]).await;
        let mut cfg = LedgerConfig::new(ledger.base_url());
        cfg.timeout_ms = 1000;
        cfg.retries = 2;
        let breaker = Arc::new(CircuitBreaker::new("ledger", breaker));
        let http = HttpLedger::new(&cfg, breaker.clone()).unwrap();
        let journal = Arc::new(FlakyJournal {
            inner: SledJournal::open(&dir.path().join("journal")).unwrap(),
            fail_state: Mutex::new(None),
            failed: AtomicUsize::new(0),
        });
        let routes = RouteTable::new(vec![
            RouteEntry {
                host: None,
                prefix: "476173".into(),
                route: Route::Wallet,
            },
            RouteEntry {
                host: None,
                prefix: "5".into(),
                route: Route::BankHost,
            },
        ])
        .unwrap();
        let switch = Switch::new(
            Arc::new(http),
            journal.clone(),
            routes,
            card_refs(dir.path()),
        );
        Bench {
            _dir: dir,
            ledger,
            breaker,
            journal,
            switch,
        }
    }

    fn fail_next_write_of(&self, state: &'static str) {
        *self.journal.fail_state.lock().unwrap() = Some(state);
    }

    async fn available(&self) -> i64 {
        let b = testkit::ledger::balance(&self.ledger, &account(ALICE)).await;
        b["available_minor"].as_i64().unwrap()
    }

    async fn balance(&self, pan: &str) -> i64 {
        let b = testkit::ledger::balance(&self.ledger, &account(pan)).await;
        b["balance_minor"].as_i64().unwrap_or(0)
    }

    fn state(&self, key: &TxnKey) -> &'static str {
        self.journal
            .txn(&key.as_string())
            .unwrap()
            .map(|r| r.state.name())
            .unwrap_or("none")
    }

    /// Resumer passes until `key` reaches `state` (polled every 10 ms for up to 20 s: an open
    /// breaker lets calls through again only after its open time).
    async fn resume_until(&self, key: &TxnKey, state: &str) {
        for _ in 0..2000 {
            self.switch.resume_pending().await;
            if self.state(key) == state {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("{key} never reached {state}: {}", self.state(key));
    }
}

fn key(stan: u32) -> TxnKey {
    TxnKey::new(
        TerminalId::parse("ATM00001").unwrap(),
        Stan::new(stan).unwrap(),
        "1203114000",
    )
}

fn eur(minor: u64) -> Amount {
    Amount::new(minor, Currency::EUR)
}

fn withdrawal(stan: u32, minor: u64) -> Request {
    Request::Withdrawal {
        acceptance: Default::default(),
        key: key(stan),
        pan: Pan::parse(ALICE).unwrap(),
        amount: eur(minor),
        pin: None,
    }
}

fn deposit(stan: u32, minor: u64) -> Request {
    Request::Deposit {
        acceptance: Default::default(),
        key: key(stan),
        pan: Pan::parse(ALICE).unwrap(),
        amount: eur(minor),
        pin: None,
    }
}

fn deposit_advice(stan: u32, pan: &str, minor: u64) -> Request {
    Request::DepositAdvice {
        key: key(stan),
        pan: Pan::parse(pan).unwrap(),
        amount: eur(minor),
    }
}

#[tokio::test]
async fn a_hold_whose_outcome_the_journal_lost_is_voided_not_left_open() {
    let bench = Bench::start(BreakerConfig::default()).await;
    bench.fail_next_write_of("held");
    let reply = bench.switch.handle(withdrawal(1, 20_000)).await;
    assert_eq!(reply.code, ResponseCode::SystemError, "{reply:?}");
    assert_eq!(bench.journal.failed.load(Ordering::SeqCst), 1);
    assert_eq!(
        bench.available().await,
        (START - 20_000) as i64,
        "the ledger did place the hold"
    );
    assert_eq!(bench.state(&key(1)), "hold_requested");

    bench.resume_until(&key(1), "voided").await;
    assert_eq!(bench.available().await, START as i64, "the hold is voided");
    // The agent's repeat of the request finds the transaction settled: no second hold.
    let again = bench.switch.handle(withdrawal(1, 20_000)).await;
    assert_ne!(again.code, ResponseCode::Approved);
    assert_eq!(bench.available().await, START as i64);
    testkit::ledger::assert_books_balance(&bench.ledger).await;
}

#[tokio::test]
async fn a_credit_whose_outcome_the_journal_lost_is_compensated() {
    let bench = Bench::start(BreakerConfig::default()).await;
    bench.fail_next_write_of("credited");
    let reply = bench.switch.handle(deposit(2, 7_000)).await;
    assert_eq!(reply.code, ResponseCode::SystemError, "{reply:?}");
    assert_eq!(
        bench.balance(ALICE).await,
        (START + 7_000) as i64,
        "the ledger did credit"
    );

    // The agent was told 96: the terminal returns the cash, so the credit must go.
    bench.resume_until(&key(2), "compensated").await;
    assert_eq!(bench.balance(ALICE).await, START as i64);
    testkit::ledger::assert_books_balance(&bench.ledger).await;
}

#[tokio::test]
async fn a_retry_the_breaker_refuses_after_an_ambiguous_failure_still_voids() {
    // The first failure opens the breaker, so the client's retry is refused by it.
    let bench = Bench::start(BreakerConfig {
        window_calls: 1,
        minimum_calls: 1,
        open_ms: 50,
        half_open_calls: 1,
        ..BreakerConfig::default()
    })
    .await;
    bench
        .ledger
        .faults()
        .set(FaultConfig {
            error_rate: 1.0,
            ..FaultConfig::default()
        })
        .unwrap();
    let reply = bench.switch.handle(withdrawal(3, 20_000)).await;
    assert_eq!(reply.code, ResponseCode::IssuerUnavailable);
    assert_eq!(
        bench.breaker.state(),
        BreakerState::Open,
        "the failure opened the breaker"
    );
    // A 503 may come after the ledger applied the hold: the switch must find out and void.
    assert_eq!(bench.state(&key(3)), "void_pending", "not a plain decline");

    bench.ledger.faults().clear();
    bench.resume_until(&key(3), "voided").await;
    assert_eq!(bench.available().await, START as i64);
    testkit::ledger::assert_books_balance(&bench.ledger).await;
}

#[tokio::test]
async fn a_deposit_advice_is_acknowledged_at_once_and_credited_once_the_ledger_is_back() {
    let bench = Bench::start(BreakerConfig::default()).await;
    bench
        .ledger
        .faults()
        .set(FaultConfig {
            down: true,
            ..FaultConfig::default()
        })
        .unwrap();
    let reply = bench.switch.handle(deposit_advice(4, ALICE, 7_000)).await;
    assert_eq!(reply.code, ResponseCode::Approved, "the switch owns it now");
    assert_eq!(bench.state(&key(4)), "credit_advised");
    bench.switch.resume_pending().await;
    assert_eq!(
        bench.state(&key(4)),
        "credit_advised",
        "kept while the ledger is down"
    );

    bench.ledger.faults().clear();
    bench.resume_until(&key(4), "credited").await;
    assert_eq!(bench.balance(ALICE).await, (START + 7_000) as i64);
    // The agent's repeat (0221) gets the recorded answer and credits nothing more.
    let again = bench.switch.handle(deposit_advice(4, ALICE, 7_000)).await;
    assert_eq!(again.code, ResponseCode::Approved);
    bench.switch.resume_pending().await;
    assert_eq!(bench.balance(ALICE).await, (START + 7_000) as i64);
    let rec = bench.switch.reconcile().await.unwrap();
    assert!(rec.is_reconciled(), "{rec:#?}");
}

#[tokio::test]
async fn a_deposit_advice_nobody_can_credit_is_an_exception_until_an_operator_resolves_it() {
    let bench = Bench::start(BreakerConfig::default()).await;
    for (stan, pan) in [(5, NO_ACCOUNT), (6, BANK_CARD)] {
        let reply = bench.switch.handle(deposit_advice(stan, pan, 5_000)).await;
        assert_eq!(reply.code, ResponseCode::Approved, "the cash is in the ATM");
    }
    bench.resume_until(&key(5), "exception").await;
    assert_eq!(bench.state(&key(6)), "exception");
    let listed: Vec<String> = bench
        .switch
        .exceptions()
        .unwrap()
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(listed, vec![key(5).as_string(), key(6).as_string()]);

    // Nobody unexplained; then one written off, one retried (still refused: back on the list).
    assert!(bench
        .switch
        .resolve(&key(5).as_string(), Resolution::WriteOff, "", "")
        .await
        .is_err());
    let closed = bench
        .switch
        .resolve(
            &key(6).as_string(),
            Resolution::WriteOff,
            "ana",
            "bank card: refunded at the branch",
        )
        .await
        .unwrap();
    assert_eq!(closed.state.name(), "resolved");
    assert_eq!(closed.operator_notes[0].by, "ana");
    bench
        .switch
        .resolve(
            &key(5).as_string(),
            Resolution::Retry,
            "ana",
            "account opened?",
        )
        .await
        .unwrap();
    bench.resume_until(&key(5), "exception").await;
    let still: Vec<String> = bench
        .switch
        .exceptions()
        .unwrap()
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(still, vec![key(5).as_string()]);
    assert_eq!(
        testkit::ledger::movements_one_page(&bench.ledger)
            .await
            .len(),
        0
    );
}
