//! The agent killed with SIGKILL while advices are queued: after a restart everything still
//! queued is sent, none lost, none twice. The agent runs as a real process (`atm-agent`).

mod common;

use atm_sim::{Customer, Outcome};
use common::*;

#[tokio::test]
async fn agent_killed_with_queued_advices_drains_them_after_restart_exactly_once() {
    let AgentProcessLab {
        lab,
        config,
        socket,
        mut agent,
        mut atm,
    } = AgentProcessLab::start(100).await;

    // The switch becomes unreachable: deposits are taken and queued.
    lab.relay.cut();
    wait_for(&socket, "uplink down", |s| s["uplink"] == "down").await;
    const DEPOSITS: u64 = 10;
    for _ in 0..DEPOSITS {
        let out = atm
            .run_customer(&Customer::deposit(BOB, 1_000))
            .await
            .unwrap();
        assert_eq!(out.outcome, Outcome::Approved, "{out:?}");
    }
    let s = wait_for(&socket, "deposits queued", |s| {
        s["terminals"]
            .as_array()
            .is_some_and(|t| t.iter().all(|t| t["dispense_in_doubt"] == false))
            && s["queue"]["pending"].as_u64().unwrap_or(0) >= DEPOSITS
    })
    .await;
    let queued = s["queue"]["pending"].as_u64().unwrap();

    // kill -9, with everything queued.
    agent.kill9();
    drop(atm);
    lab.relay.restore();

    let agent = spawn_agent(&config);
    let s = wait_for(&socket, "queue drained", |s| {
        s["uplink"] == "up" && s["queue"]["pending"] == 0
    })
    .await;
    assert_eq!(s["queue"]["parked"], 0);
    lab.eventually_balance(BOB, ((START + DEPOSITS * 1_000) as i64, 0))
        .await;
    let rec = lab.switch.switch.reconcile().await.unwrap();
    assert!(rec.is_reconciled(), "{rec:#?}");
    assert_eq!(
        rec.journal_credited_minor,
        DEPOSITS * 1_000,
        "none lost, none twice ({queued} advices were queued)"
    );
    drop(agent);
    lab.assert_books().await;
}
