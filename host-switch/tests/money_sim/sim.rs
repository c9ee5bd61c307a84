//! The step loop: one seed → one world, a switch over it, terminals, a network, and a simulated
//! clock (one step = one simulated second).
//!
//! Each step gathers what happens in it — customers walking up, forwarders sending their head
//! advice, delayed copies of earlier messages arriving, the switch's resumer on its interval — and
//! delivers them to the switch *concurrently* on the current-thread runtime, in an order the seed
//! shuffles; the fakes yield at seed-chosen points, so flows interleave at ledger calls and journal
//! writes. A crash of the switch (a journal write) kills every flow of that process: their answers
//! never leave. The simulation then starts a new switch over the same journal and ledger and runs
//! its start-up resumer pass. After every step the safety invariants are checked.
//!
//! At the end the world heals, delayed messages land, advices are sent until acknowledged and the
//! resumer runs until nothing is pending (all bounded), and the liveness invariants are checked.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::future::join_all;
use host_switch::app::Switch;
use host_switch::domain::routing::{Route, RouteEntry};
use host_switch::domain::{RecordedReply, Request, RouteTable};

use crate::agent::{cards, Card, Terminal, Truth};
use crate::checker::{self, opening_balance, Violation};
use crate::journal::SimJournal;
use crate::ledger::{Books, SimLedger};
use crate::world::World;

/// The size of one seed's run.
#[derive(Debug, Clone, Copy)]
pub struct SimConfig {
    pub terminals: usize,
    pub steps: u64,
    /// The switch's resumer interval, in steps.
    pub resume_every_steps: u64,
    /// Chance that a given terminal gets a customer in a given step.
    pub customer_percent: u32,
}

pub const CONFIG: SimConfig = SimConfig {
    terminals: 4,
    steps: 120,
    resume_every_steps: 5,
    customer_percent: 25,
};

/// Bounds of the end of the run (TIGER_STYLE: every loop has one).
const DRAIN_ROUNDS_MAX: usize = 200;
const RESTARTS_IN_A_ROW_MAX: usize = 50;

/// What one seed did, for the replay's summary.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub customers: usize,
    pub deliveries: usize,
    pub crashes: u64,
    /// A digest of the final journal and books: two plays of one seed must agree on it.
    pub fingerprint: u64,
}

/// Who is waiting for the answer to a delivered message.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// The customer at a terminal (index into `truths`).
    Customer { terminal: usize, truth: usize },
    /// A terminal's forwarder (its queue head).
    Advice { terminal: usize },
    /// A late copy: its answer goes nowhere.
    Stray,
}

/// What the network does to one message.
#[derive(Debug, Clone, Copy)]
enum Fate {
    Delivered,
    /// Never reaches the switch.
    RequestLost,
    /// Reaches the switch; the answer never comes back.
    AnswerLost,
    /// Reaches the switch only after this many steps (0: the next step); the sender has timed
    /// out by then.
    Delayed(u64),
    /// Reaches the switch now and a copy again after this many steps (0: concurrently, now).
    Duplicated(u64),
}

struct Delivery {
    origin: Origin,
    request: Request,
    fate: Fate,
}

type SimSwitch = Switch<SimLedger, SimJournal>;

pub struct Sim {
    world: Arc<World>,
    cards: Vec<Card>,
    terminals: Vec<Terminal>,
    truths: Vec<Truth>,
    /// Messages the network holds back, with the step they land in.
    delayed: VecDeque<(u64, Request)>,
    switch: SimSwitch,
    incarnation: u64,
    summary: Summary,
}

fn routes() -> RouteTable {
    RouteTable::new(vec![
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
    .expect("routes")
}

fn start_switch(world: &Arc<World>) -> (SimSwitch, u64) {
    let incarnation = world.incarnation();
    let ledger = SimLedger::new(world.clone(), incarnation);
    let journal = SimJournal {
        world: world.clone(),
        incarnation,
    };
    (
        Switch::new(
            Arc::new(ledger),
            Arc::new(journal),
            routes(),
            world.card_refs.clone(),
        ),
        incarnation,
    )
}

impl Sim {
    pub fn new(seed: u64, tracing: bool) -> Self {
        let cards = cards();
        let mut books = Books::default();
        for c in &cards {
            if let Some(balance) = opening_balance(c.kind) {
                books.open(&c.account, balance);
            }
        }
        let world = Arc::new(World::new(seed, tracing, books));
        note!(world, "seed {seed}: {:?}, {:?}", world.plan(), CONFIG);
        let (switch, incarnation) = start_switch(&world);
        Self {
            terminals: (1..=CONFIG.terminals).map(Terminal::new).collect(),
            cards,
            truths: Vec::new(),
            delayed: VecDeque::new(),
            switch,
            incarnation,
            summary: Summary::default(),
            world,
        }
    }

    /// Plays the whole seed; the first broken invariant ends it.
    pub async fn run(mut self) -> Result<Summary, Violation> {
        for step in 0..CONFIG.steps {
            self.world.set_now(step);
            self.step(step).await;
            checker::safety(&self.world, &self.cards)?;
        }
        self.drain().await?;
        checker::liveness(&self.world, &self.truths, &self.terminals, &self.cards)?;
        self.summary.fingerprint = self.fingerprint();
        Ok(self.summary)
    }

    async fn step(&mut self, now: u64) {
        let mut batch = Vec::new();
        for t in 0..self.terminals.len() {
            if !self.terminals[t].link_up(now) {
                self.offline_customer(t, now);
            } else if self.world.strikes(self.world.plan().link_down_percent) {
                let down_steps = 1 + self.world.rng().below(10);
                self.terminals[t].link_down_until = now + down_steps;
                note!(
                    self.world,
                    "{} link down for {down_steps} steps",
                    self.terminals[t].id
                );
            } else if self.world.rng().chance(CONFIG.customer_percent) {
                let (truth, request) = {
                    let mut rng = self.world.rng();
                    self.terminals[t].new_customer(&mut rng, &self.cards, now)
                };
                note!(
                    self.world,
                    "{} customer: {}",
                    self.terminals[t].id,
                    brief(&request)
                );
                self.truths.push(truth);
                let origin = Origin::Customer {
                    terminal: t,
                    truth: self.truths.len() - 1,
                };
                batch.push(self.on_the_wire(origin, request));
            }
            if let Some(request) = self.terminals[t].due_advice(now) {
                batch.push(self.on_the_wire(Origin::Advice { terminal: t }, request));
            }
        }
        self.land_delayed(now, &mut batch);
        let resume = now.is_multiple_of(CONFIG.resume_every_steps);
        self.deliver(batch, resume).await;
    }

    /// A customer while the terminal cannot reach the switch.
    fn offline_customer(&mut self, t: usize, now: u64) {
        if !self.world.rng().chance(CONFIG.customer_percent) {
            return;
        }
        if !self.world.rng().chance(35) {
            note!(
                self.world,
                "{} link down: withdrawal refused at the terminal",
                self.terminals[t].id
            );
            return;
        }
        let truth = {
            let mut rng = self.world.rng();
            self.terminals[t].offline_deposit(&mut rng, now)
        };
        note!(
            self.world,
            "{} link down: deposit {} {} taken offline",
            self.terminals[t].id,
            truth.key,
            truth.amount_minor
        );
        self.truths.push(truth);
        self.summary.customers += 1;
    }

    /// Moves the delayed messages due by `now` into `batch` (all of them once `now` is `u64::MAX`).
    fn land_delayed(&mut self, now: u64, batch: &mut Vec<Delivery>) {
        let (due, later): (Vec<_>, Vec<_>) = self.delayed.drain(..).partition(|(at, _)| *at <= now);
        self.delayed = later.into();
        for (_, request) in due {
            batch.push(Delivery {
                origin: Origin::Stray,
                request,
                fate: Fate::Delivered,
            });
        }
    }

    /// The network's verdict on one message.
    fn on_the_wire(&self, origin: Origin, request: Request) -> Delivery {
        let fate = if self.world.strikes(self.world.plan().network_percent) {
            let mut rng = self.world.rng();
            // Mostly soon (a copy racing the sender's next message), sometimes much later.
            let later = if rng.chance(50) {
                rng.below(3)
            } else {
                1 + rng.below(20)
            };
            match rng.below(4) {
                0 => Fate::RequestLost,
                1 => Fate::AnswerLost,
                2 => Fate::Delayed(later),
                _ => Fate::Duplicated(later),
            }
        } else {
            Fate::Delivered
        };
        Delivery {
            origin,
            request,
            fate,
        }
    }

    /// Delivers `batch` concurrently (with a resumer pass if `resume`), hands each answer to whoever
    /// waits for it, and restarts the switch if it crashed meanwhile.
    async fn deliver(&mut self, mut batch: Vec<Delivery>, resume: bool) {
        // A copy due at once races its original in this very batch.
        let copies: Vec<Delivery> = batch
            .iter()
            .filter(|d| matches!(d.fate, Fate::Duplicated(0)))
            .map(|d| Delivery {
                origin: Origin::Stray,
                request: d.request.clone(),
                fate: Fate::Delivered,
            })
            .collect();
        batch.extend(copies);
        {
            // The seed decides the order the flows start in (Fisher–Yates).
            let mut rng = self.world.rng();
            for i in (1..batch.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                batch.swap(i, j);
            }
        }
        let now = self.world.now();
        for d in &batch {
            note!(
                self.world,
                "-> {} {:?} ({:?})",
                brief(&d.request),
                d.fate,
                d.origin
            );
            match d.fate {
                Fate::Delayed(later) => self.delayed.push_back((now + later, d.request.clone())),
                Fate::Duplicated(later) if later > 0 => {
                    self.delayed.push_back((now + later, d.request.clone()))
                }
                _ => {}
            }
        }
        self.summary.deliveries += batch.len();
        let (switch, world, incarnation) = (&self.switch, &self.world, self.incarnation);
        let flows = batch.iter().map(|d| async move {
            match d.fate {
                Fate::RequestLost | Fate::Delayed(_) => None,
                Fate::Delivered | Fate::AnswerLost | Fate::Duplicated(_) => {
                    let reply = handle(switch, world, incarnation, d.request.clone()).await;
                    if matches!(d.fate, Fate::AnswerLost) {
                        None
                    } else {
                        reply
                    }
                }
            }
        });
        let resumer = async {
            if resume {
                let report = switch.resume_pending().await;
                note!(world, "resumer pass: {report:?}");
            }
        };
        let (answers, ()) = futures::join!(join_all(flows), resumer);
        for (d, answer) in batch.iter().zip(answers) {
            self.answer(d.origin, answer.as_ref());
        }
        self.restart_if_crashed().await;
    }

    fn answer(&mut self, origin: Origin, answer: Option<&RecordedReply>) {
        let now = self.world.now();
        let mut rng = self.world.rng();
        let line = match origin {
            Origin::Customer { terminal, truth } => {
                self.summary.customers += 1;
                let t = &mut self.terminals[terminal];
                let plan = self.world.plan();
                let what = t.settle(
                    &mut rng,
                    &self.cards,
                    &mut self.truths[truth],
                    answer,
                    now,
                    &plan,
                );
                format!(
                    "<- {} {}: {:?}: {what}",
                    t.id,
                    self.truths[truth].key,
                    answer.map(|a| a.code)
                )
            }
            Origin::Advice { terminal } => {
                let t = &mut self.terminals[terminal];
                let what = t.advice_answered(answer, now);
                format!("<- {} {what}", t.id)
            }
            Origin::Stray => format!(
                "<- late answer to a copy: {:?}, dropped",
                answer.map(|a| a.code)
            ),
        };
        drop(rng);
        note!(self.world, "{line}");
    }

    /// A crashed switch is replaced by a new one over the same journal and ledger, which runs its
    /// start-up resumer pass (which may crash again: bounded).
    async fn restart_if_crashed(&mut self) {
        for _ in 0..RESTARTS_IN_A_ROW_MAX {
            if self.world.incarnation() == self.incarnation {
                return;
            }
            self.summary.crashes += 1;
            let (switch, incarnation) = start_switch(&self.world);
            self.switch = switch;
            self.incarnation = incarnation;
            note!(self.world, "switch restarted (incarnation {incarnation})");
            let report = self.switch.resume_pending().await;
            note!(self.world, "start-up resumer pass: {report:?}");
        }
        if self.world.incarnation() != self.incarnation {
            let (switch, incarnation) = start_switch(&self.world);
            self.switch = switch;
            self.incarnation = incarnation;
        }
    }

    /// The end of the run: heal, land every delayed message, send every advice until
    /// acknowledged, resume until nothing is pending.
    async fn drain(&mut self) -> Result<(), Violation> {
        self.world.heal();
        note!(self.world, "healed: draining");
        for round in 0..DRAIN_ROUNDS_MAX {
            let now = CONFIG.steps + round as u64;
            self.world.set_now(now);
            let mut batch = Vec::new();
            self.land_delayed(u64::MAX, &mut batch);
            for (t, terminal) in self.terminals.iter_mut().enumerate() {
                terminal.next_send_at = 0;
                terminal.link_down_until = 0;
                if let Some(request) = terminal.due_advice(now) {
                    batch.push(Delivery {
                        origin: Origin::Advice { terminal: t },
                        request,
                        fate: Fate::Delivered,
                    });
                }
            }
            let idle = batch.is_empty();
            self.deliver(batch, true).await;
            checker::safety(&self.world, &self.cards)?;
            let pending = self.pending_keys();
            if idle && pending == 0 {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Every journal record's state and every ledger movement, hashed (SipHash with fixed keys:
    /// the same on every run).
    fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for rec in crate::world::lock(&self.world.durable).txns.values() {
            (&rec.key, rec.state.name()).hash(&mut h);
        }
        for m in &crate::world::lock(&self.world.books).movements {
            (&m.reference, m.amount_minor, format!("{:?}", m.kind)).hash(&mut h);
        }
        h.finish()
    }

    fn pending_keys(&self) -> usize {
        crate::world::lock(&self.world.durable)
            .txns
            .values()
            .filter(|r| r.state.is_pending_outbound())
            .count()
    }
}

/// One message to the switch process `incarnation`: its answer, or `None` if the process was dead
/// or died before answering (the answer never left).
async fn handle(
    switch: &SimSwitch,
    world: &World,
    incarnation: u64,
    request: Request,
) -> Option<RecordedReply> {
    if world.incarnation() != incarnation {
        return None;
    }
    let reply = switch.handle(request).await;
    (world.incarnation() == incarnation).then_some(reply)
}

/// One line for a request in the trace: MTI, keys and amounts, no card number.
fn brief(request: &Request) -> String {
    match request {
        Request::Withdrawal {
            key, pan, amount, ..
        } => {
            format!("0100 {key} {} on {}", amount.minor, pan.masked())
        }
        Request::Deposit {
            key, pan, amount, ..
        } => {
            format!("0200 {key} {} on {}", amount.minor, pan.masked())
        }
        Request::Completion {
            key,
            original,
            dispensed_minor,
        } => format!("0220 {key} dispensed {dispensed_minor} of {original}"),
        Request::Reversal { key, original, .. } => format!("0420 {key} reverses {original}"),
        Request::DepositAdvice { key, pan, amount } => {
            format!(
                "0220 deposit advice {key} {} on {}",
                amount.minor,
                pan.masked()
            )
        }
        other => format!("{other:?}"),
    }
}
