//! What outlives a switch process: the ledger's books, the journal's durable contents, the seed's
//! generator, the fault plan and the simulated clock. The fakes (`ledger`, `journal`) are thin handles on
//! this world, one pair per switch incarnation: when the switch "crashes", the world's incarnation
//! moves on and every handle of the dead process refuses to act, exactly as a dead process would.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use host_switch::app::card_refs::CardReferences;

use crate::journal::Durable;
use crate::ledger::Books;
use crate::rng::SimRng;

/// Appends a line to the world's trace when the seed is being replayed (formatting costs nothing
/// otherwise, which keeps thousands of seeds fast).
macro_rules! note {
    ($world:expr, $($arg:tt)*) => {
        if $world.tracing {
            $world.note(format!($($arg)*))
        }
    };
}

/// How hostile this seed's world is. Drawn once per seed, so some seeds are calm and some stormy.
#[derive(Debug, Clone, Copy)]
pub struct FaultPlan {
    /// Share of ledger calls that go wrong (in one of the ways `ledger::LedgerFault` lists).
    pub ledger_percent: u32,
    /// Share of ledger calls that hand control back to the runtime before and after acting, so
    /// that concurrent flows interleave there.
    pub yield_percent: u32,
    /// Share of journal writes that fail.
    pub journal_percent: u32,
    /// Of the failing journal writes, the share that are a crash of the switch process.
    pub crash_percent: u32,
    /// Share of messages the network loses, delays or duplicates.
    pub network_percent: u32,
    /// Chance per step that a terminal's link to the switch goes down for a while (deposits are
    /// then taken offline and advised later, withdrawals refused at the terminal).
    pub link_down_percent: u32,
    /// Once healed (the end of the run), nothing fails any more.
    pub healed: bool,
    /// Emulates the ledger adapter from before the port said `BreakerOpen` means "not sent"
    /// (`MONEY_SIM_BREAKER_HIDES_AMBIGUITY=1`, see `ledger::LedgerFault`).
    pub breaker_hides_ambiguity: bool,
    /// Emulates today's agent, which reads 96 as a decline and queues no reversal
    /// (`MONEY_SIM_AGENT_96_IS_DECLINE=1`): the switch alone must then settle what a failed
    /// journal write left behind.
    pub agent_96_is_decline: bool,
    /// Of the short dispenses, the share the agent advises as a partial reversal (0420 with
    /// field 95) instead of a completion; `MONEY_SIM_NO_PARTIAL_REVERSALS=1` makes it 0, as the
    /// agent of this repository does.
    pub partial_reversal_percent: u32,
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

impl FaultPlan {
    pub fn draw(rng: &mut SimRng) -> Self {
        Self {
            ledger_percent: *rng.pick(&[0, 5, 10, 20, 35]),
            yield_percent: *rng.pick(&[0, 20, 50]),
            journal_percent: *rng.pick(&[0, 2, 5, 10, 20]),
            crash_percent: *rng.pick(&[0, 30, 60, 100]),
            network_percent: *rng.pick(&[0, 5, 15, 30, 50]),
            link_down_percent: *rng.pick(&[0, 2, 5]),
            healed: false,
            breaker_hides_ambiguity: env_flag("MONEY_SIM_BREAKER_HIDES_AMBIGUITY"),
            agent_96_is_decline: env_flag("MONEY_SIM_AGENT_96_IS_DECLINE"),
            partial_reversal_percent: if env_flag("MONEY_SIM_NO_PARTIAL_REVERSALS") {
                0
            } else {
                20
            },
        }
    }
}

pub struct World {
    rng: Mutex<SimRng>,
    plan: Mutex<FaultPlan>,
    /// The switch process currently alive; a crash moves it on.
    incarnation: AtomicU64,
    /// The simulated clock: the step being played.
    now: AtomicU64,
    /// Whether this run prints its step trace (a replay of one seed).
    pub tracing: bool,
    pub books: Mutex<Books>,
    pub durable: Mutex<Durable>,
    /// Card references, shared by every incarnation (the key store outlives the switch): a
    /// software key store holding the tests' card reference key, in a directory of its own.
    pub card_refs: Arc<CardReferences>,
    _keys_dir: tempfile::TempDir,
}

/// A key store with the tests' card reference key, and the switch's card references from it.
fn card_refs() -> (Arc<CardReferences>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (kek, store) = testkit::custodian_keys::prepare_card_ref_store(
        dir.path(),
        &testkit::custodian_keys::CustodianKey::test_card_reference(),
    )
    .expect("card reference key store");
    let store = keystore::SoftwareKeyStore::open(&store, keystore::Kek::from_file(&kek).unwrap())
        .expect("open the key store");
    let name = keystore::KeyName::new(testkit::custodian_keys::CARD_REF_KEY).unwrap();
    let refs = CardReferences::open(Arc::new(store), &name).expect("card reference key");
    (Arc::new(refs), dir)
}

impl World {
    pub fn new(seed: u64, tracing: bool, books: Books) -> Self {
        let mut rng = SimRng::new(seed);
        let plan = FaultPlan::draw(&mut rng);
        let (card_refs, keys_dir) = card_refs();
        Self {
            rng: Mutex::new(rng),
            plan: Mutex::new(plan),
            incarnation: AtomicU64::new(0),
            now: AtomicU64::new(0),
            tracing,
            books: Mutex::new(books),
            durable: Mutex::new(Durable::default()),
            card_refs,
            _keys_dir: keys_dir,
        }
    }

    /// The generator. Held only for a draw, never across an `.await`.
    pub fn rng(&self) -> MutexGuard<'_, SimRng> {
        lock(&self.rng)
    }

    pub fn plan(&self) -> FaultPlan {
        *lock(&self.plan)
    }

    /// The end of the run: the ledger, the journal and the network stop failing.
    pub fn heal(&self) {
        lock(&self.plan).healed = true;
    }

    /// True with probability `percent` unless the world is healed.
    pub fn strikes(&self, percent: u32) -> bool {
        !self.plan().healed && self.rng().chance(percent)
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation.load(Ordering::SeqCst)
    }

    /// The switch process `incarnation` dies (if it is still the live one).
    pub fn crash(&self, incarnation: u64) {
        let _ = self.incarnation.compare_exchange(
            incarnation,
            incarnation + 1,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    pub fn now(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    pub fn set_now(&self, step: u64) {
        self.now.store(step, Ordering::SeqCst);
    }

    /// One line of the step trace, printed at once when replaying (so a panic still shows it).
    pub fn note(&self, line: String) {
        println!("[{:>4}] {line}", self.now());
    }
}

/// A poisoned lock only means another assertion already failed; the data is still what we check.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
