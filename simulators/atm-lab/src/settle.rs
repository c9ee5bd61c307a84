//! The last stage of a run: a closing inquiry per terminal (its last transaction status settles a
//! dispense the terminal can tell), the technician's visit for what it cannot
//! ([`crate::technician`]: every dispense still in doubt settled from the terminals' truth), the
//! agent's queue drained, the ledger caught up with the terminals, the switch's open holds
//! settled, its exceptions and the agent's parked advices read, the switch's advices to the bank
//! host acknowledged, the children stopped, and the terminals' counters, the switch journal, the
//! ledger's movements and the bank host's record reconciled into the report.

use std::time::Duration;

use atm_sim::{AtmSim, Customer, Outcome, TerminalCounters};
use host_switch::ports::Journal;
use ledger_sim::client::fetch_movements;
use ledger_sim::domain::{HoldStatus, Movement};
use ledger_sim::HoldList;
use serde_json::Value;
use testkit::terminals::terminal_id;
use tokio::time::Instant;

use crate::bank;
use crate::setup::RunningLab;
use crate::technician::{self, Visit};
use crate::traffic::{reconnect, Traffic};
use crate::{children, reconcile, report, LabError, LabOptions, LabReport, LabSecrets};

/// What the agent says once its queue is drained.
struct Drained {
    /// Dispenses still in doubt (`atmctl dispense ls`), one line each.
    in_doubt: Vec<String>,
    queue_pending: u64,
    queue_parked: u64,
    /// Parked advices (`atmctl queue ls`), one line each.
    parked: Vec<String>,
    /// The technician's settlements, one line each.
    settled: Vec<String>,
    /// The switch's unresolved exceptions (`switchctl exceptions ls`), read once its holds are
    /// settled.
    exceptions: Vec<String>,
}

/// How long the agent's queue may take to drain once the traffic is over.
const DRAIN_PATIENCE: Duration = Duration::from_secs(90);

/// Settles the run and reports; the lab's processes and directory are gone when this returns
/// (but an audit's directory).
pub async fn settle(
    opts: &LabOptions,
    mut lab: RunningLab,
    traffic: Traffic,
) -> Result<(LabReport, LabSecrets), LabError> {
    for atm in lab.atms.iter_mut() {
        closing_inquiry(atm, &lab.cards[0], &lab.pins[0]).await;
    }
    let visit = technicians_visit(&lab).await;
    let mut drained = drain(&lab, &visit).await;
    let counters: Vec<TerminalCounters> = lab.atms.iter().map(|a| a.counters()).collect();
    // The bank host first: the ledger is caught up when it and the host add up to the terminals.
    let bank_settled = match &lab.bank {
        Some(b) => Some(bank::wait_settled(&lab.switch_socket, &b.host.handle()).await),
        None => None,
    };
    wait_ledger_caught_up(&lab, &counters).await?;
    let open_holds = wait_holds_settled(&lab).await?;
    // Read while the switch runs: exceptions wait for an operator, they do not go away.
    drained.exceptions = technician::exceptions(&lab.switch_socket)
        .await
        .unwrap_or_else(|e| vec![format!("cannot read them: {e}")]);

    // Stop the children; read the journal the switch leaves behind.
    lab.agent.lock().unwrap().stop(Duration::from_secs(10));
    lab.switch.lock().unwrap().stop(Duration::from_secs(10));
    let movements = fetch_movements(&lab.ledger.base_url()).await?;
    let verdict = verdict(
        opts,
        &lab,
        &traffic,
        &counters,
        &drained,
        &movements,
        &open_holds,
        bank_settled,
    )
    .await?;
    let (agent_restarts, switch_restarts) = (
        lab.agent.lock().unwrap().restarts,
        lab.switch.lock().unwrap().restarts,
    );
    let report = report::build(
        &traffic.records,
        verdict,
        report::RunFacts {
            scenario: opts.scenario.name().into(),
            atms: opts.atms,
            seed: opts.seed,
            elapsed_s: traffic.elapsed_s,
            agent_restarts,
            switch_restarts,
            drill_events: traffic.drill_events.clone(),
            pins: opts.pins,
            pin_drill_ok: traffic.pin_drill_ok,
            lost_answers: lab.ledger.faults().lost_answers(),
            bank_share: if lab.bank.is_some() {
                opts.bank_share
            } else {
                0.0
            },
        },
    );
    let secrets = shut_down(lab).await;
    Ok((report, secrets))
}

/// The lab as the technician: every dispense the agent holds in doubt settled from what the
/// terminal really paid out.
async fn technicians_visit(lab: &RunningLab) -> Visit {
    let mut truth = Vec::new();
    for (i, atm) in lab.atms.iter().enumerate() {
        truth.push((terminal_id(i), atm.truth().await));
    }
    let visit = technician::visit(&lab.socket, &truth).await;
    if !visit.settled.is_empty() || !visit.refused.is_empty() {
        eprintln!(
            "atm-lab: technician: {} dispenses in doubt settled, {} refused, {} settled by the agent meanwhile",
            visit.settled.len(),
            visit.refused.len(),
            visit.settled_by_agent
        );
    }
    visit
}

/// Waits until the agent's uplink is up, its queue empty (the technician's completions and
/// reversals sent) and no dispense is in doubt, or [`DRAIN_PATIENCE`]; then what is left.
async fn drain(lab: &RunningLab, visit: &Visit) -> Drained {
    let deadline = Instant::now() + DRAIN_PATIENCE;
    let mut status = Value::Null;
    let mut in_doubt = loop {
        if let Some(s) = children::agent_status(&lab.socket).await {
            status = s;
        }
        let idle = status["uplink"] == "up"
            && status["queue"]["pending"] == 0
            && status["queue"]["parked"] == 0;
        // An agent that cannot list them may hold some: that is not "none".
        let left: Vec<String> = match technician::list_in_doubt(&lab.socket).await {
            Ok(list) => list.iter().map(|r| r.describe()).collect(),
            Err(e) => vec![format!("cannot list the dispenses in doubt: {e}")],
        };
        if (idle && left.is_empty()) || Instant::now() >= deadline {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A record whose settlement the agent refused says why.
    for d in in_doubt.iter_mut() {
        if let Some(r) = visit.refused.iter().find(|r| r.starts_with(d.as_str())) {
            d.clone_from(r);
        }
    }
    let parked = technician::parked_advices(&lab.socket)
        .await
        .unwrap_or_else(|e| vec![format!("cannot list the queue: {e}")]);
    Drained {
        in_doubt,
        queue_pending: status["queue"]["pending"].as_u64().unwrap_or(u64::MAX),
        queue_parked: status["queue"]["parked"].as_u64().unwrap_or(u64::MAX),
        parked,
        settled: visit.settled.clone(),
        exceptions: Vec::new(),
    }
}

/// The switch may still owe the ledger work (its resumer retries): waits until the ledger agrees
/// with the terminals, or gives up after a while and lets the verdict say what differs.
async fn wait_ledger_caught_up(
    lab: &RunningLab,
    counters: &[TerminalCounters],
) -> Result<(), LabError> {
    let bank = lab
        .bank
        .as_ref()
        .map(|b| b.host.handle().totals().position)
        .unwrap_or_default();
    let want = (
        counters
            .iter()
            .map(|c| c.dispensed_minor)
            .sum::<u64>()
            .saturating_sub(bank.debited),
        counters
            .iter()
            .map(|c| c.deposited_minor)
            .sum::<u64>()
            .saturating_sub(bank.credited),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = fetch_movements(&lab.ledger.base_url()).await?;
        let t = reconcile::ledger_totals(&m);
        if (t.withdrawn_net_minor, t.deposited_net_minor) == want || Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Most open holds fetched for the verdict to name (it counts them all).
const OPEN_HOLDS_FETCHED: usize = reconcile::OPEN_HOLDS_NAMED_MAX;
/// Longest wait for the switch's resumer to settle open holds.
const OPEN_HOLDS_PATIENCE: Duration = Duration::from_secs(120);

/// Waits for every hold to be captured or voided while the switch (and its resumer) still runs:
/// until none is open, or until the books have not changed for as long as the resumer can take
/// to act ([`crate::setup::SwitchTiming::resumer_round_max`], from the switch's configuration:
/// it has stopped settling anything), or [`OPEN_HOLDS_PATIENCE`]. Then lists what is open.
async fn wait_holds_settled(lab: &RunningLab) -> Result<HoldList, LabError> {
    let quiet_max = lab.switch_timing.resumer_round_max();
    let poll = Duration::from_millis(lab.switch_timing.resume_interval_ms.max(50));
    let deadline = Instant::now() + OPEN_HOLDS_PATIENCE;
    let ledger_failed = |source| LabError::Ledger {
        what: "open holds",
        source,
    };
    let (mut last, mut unchanged_since) = (None, Instant::now());
    loop {
        let books = lab.ledger.invariants().await.map_err(ledger_failed)?;
        if books.open_holds == 0 || Instant::now() >= deadline {
            break;
        }
        let state = (books.holds, books.open_holds, books.movements);
        if last != Some(state) {
            (last, unchanged_since) = (Some(state), Instant::now());
        } else if unchanged_since.elapsed() >= quiet_max {
            break;
        }
        tokio::time::sleep(poll).await;
    }
    lab.ledger
        .holds(Some(HoldStatus::Held), OPEN_HOLDS_FETCHED)
        .await
        .map_err(ledger_failed)
}

/// Terminals vs switch journal vs ledger (and bank host), and the ledger's own books.
#[allow(clippy::too_many_arguments)]
async fn verdict(
    opts: &LabOptions,
    lab: &RunningLab,
    traffic: &Traffic,
    counters: &[TerminalCounters],
    drained: &Drained,
    movements: &[Movement],
    open_holds: &HoldList,
    bank_settled: Option<bank::SettleState>,
) -> Result<reconcile::Verdict, LabError> {
    let journal = host_switch::adapters::sled_journal::SledJournal::open(&lab.journal_path)
        .map_err(|source| LabError::Journal {
            what: "open",
            source,
        })?;
    let txns = journal.txns().map_err(|source| LabError::Journal {
        what: "read",
        source,
    })?;
    drop(journal);
    // The wallet's records against the ledger (as `Switch::reconcile` does); the bank route's
    // against the bank host, below.
    let wallet_txns: Vec<_> = txns
        .iter()
        .filter(|t| t.issuer.is_none())
        .cloned()
        .collect();
    let switch_rec = host_switch::domain::reconcile::reconcile(
        &wallet_txns,
        &reconcile::switch_movements(movements),
    );
    let bank_journal = bank::expected_from_journal(&txns);
    let bank_verdict = lab.bank.as_ref().map(|b| {
        let host = b.host.handle();
        bank::compare(
            &bank_journal,
            &b.cards,
            |pan| {
                bank::pan(pan)
                    .map(|p| host.position(&p))
                    .unwrap_or_default()
            },
            &host.totals(),
            bank_settled.clone().unwrap_or_default(),
        )
    });
    let invariants = lab
        .ledger
        .invariants()
        .await
        .map_err(|source| LabError::Ledger {
            what: "invariants",
            source,
        })?;
    let terminal_ids: Vec<String> = (0..opts.atms).map(terminal_id).collect();
    let suspects: Vec<reconcile::Suspect> = traffic
        .records
        .iter()
        .filter(|r| r.column == "interrupted" || r.column == "timeout")
        .map(|r| reconcile::Suspect {
            terminal_id: r.terminal_id.clone(),
            kind: r.kind.to_string(),
            amount_minor: r.amount_minor,
        })
        .collect();
    let mut verdict = reconcile::reconcile(&reconcile::Evidence {
        terminals: counters,
        terminal_ids: &terminal_ids,
        suspects: &suspects,
        in_doubt_settled: &drained.settled,
        in_doubt: &drained.in_doubt,
        exceptions: &drained.exceptions,
        parked: &drained.parked,
        movements,
        switch: &switch_rec,
        holds_captured_twice: invariants.holds_captured_twice,
        queue_pending: drained.queue_pending,
        queue_parked: drained.queue_parked,
        open_holds: open_holds.count,
        open_holds_listed: &open_holds.holds,
        bank: bank_verdict.as_ref().map(|b| (&bank_journal, b)),
    });
    if !invariants.sum_minor_by_currency.values().all(|v| *v == 0) {
        verdict.mismatched.push(format!(
            "ledger books do not balance: {:?}",
            invariants.sum_minor_by_currency
        ));
        verdict.reconciled = false;
    }
    if invariants.held_minor_mismatches > 0 {
        verdict.mismatched.push(format!(
            "ledger: {} accounts whose held amount differs from their open holds",
            invariants.held_minor_mismatches
        ));
        verdict.reconciled = false;
    }
    Ok(verdict)
}

/// Collects the run's secrets for an audit, then stops the terminals and the ledger.
async fn shut_down(lab: RunningLab) -> LabSecrets {
    let mut secret_keys = Vec::new();
    if let Some(k) = &lab.keys {
        secret_keys = k.secrets();
    }
    let mut cards: Vec<(String, String)> = lab
        .cards
        .iter()
        .cloned()
        .zip(lab.pins.iter().cloned())
        .collect();
    if let Some(b) = lab.bank {
        if let Some(zpk) = &b.zpk {
            secret_keys.push((bank::BANK_ZPK_NAME.into(), zpk.combined.clone()));
            for (i, (c, _)) in zpk.components.iter().enumerate() {
                if let Ok(bytes) = hex::decode(c.as_str()) {
                    secret_keys.push((
                        format!("{} component {}", bank::BANK_ZPK_NAME, i + 1),
                        zeroize::Zeroizing::new(bytes),
                    ));
                }
            }
        }
        cards.extend(b.cards.iter().map(|c| (c.pan.clone(), c.pin.clone())));
        b.host.shutdown().await;
    }
    for (i, atm) in lab.atms.iter().enumerate() {
        if let Some(tpk) = atm.terminal_pin_key_for_audit().await {
            secret_keys.push((format!("tpk/{}", terminal_id(i)), tpk));
        }
    }
    for atm in lab.atms {
        atm.shutdown().await;
    }
    if let Err(e) = lab.ledger.shutdown().await {
        tracing::warn!(error = %e, "ledger-sim did not stop cleanly");
    }
    LabSecrets {
        keys: secret_keys,
        cards,
        dir: lab.dir.path().to_owned(),
        logs: lab.dir.path().join("logs"),
        switch_journal: lab.journal_path,
        agent_dir: lab.agent_dir.clone(),
        agent_key_store: lab.agent_dir.join("keys.json"),
        agent_kek: lab
            .keys
            .as_ref()
            .map(|k| k.agent_kek.clone())
            .unwrap_or_default(),
    }
}

/// One more transaction per terminal after the run (not counted): its last-transaction-status
/// settles a dispense left in doubt by a power loss or a crash, as the next customer would.
async fn closing_inquiry(atm: &mut AtmSim, pan: &str, pin: &str) {
    for _ in 0..5 {
        if !atm.is_connected() {
            reconnect(atm, Duration::from_secs(30)).await;
        }
        if let Ok(o) = atm
            .run_customer(&Customer::balance_inquiry(pan).with_pin(pin))
            .await
        {
            if o.outcome == Outcome::Approved {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
