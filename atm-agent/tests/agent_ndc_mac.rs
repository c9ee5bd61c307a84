//! NDC MAC mode end to end: a terminal whose firmware profile (`ncr-advance-ndc-mac`) MACs its
//! transaction requests and statuses and wants MACed replies (atm-sim) → agent (terminal MAC key
//! generated with the PIN key and loaded with the key change `45` under the terminal master key)
//! → real switch over mutual TLS → real ledger-sim.
//!
//! What is proved: the MAC key in the terminal is the one in the agent's store; a withdrawal MACed
//! both ways is served; a recorded request played again, and a request changed after the terminal
//! MACed it (the amount raised, the MAC replaced, the MAC removed), are declined with the card
//! returned, counted, and never reach the switch or the ledger. Without MAC checking (the code before MAC mode) the raised amount would
//! have been authorised and dispensed. Background work is awaited by polling, never by a sleep.

mod common;

use atm_sim::{AtmSim, Customer, CustomerOutcome, DeclineReason, Outcome, RequestTamper};
use common::*;

/// One Advance NDC terminal in MAC mode.
const MAC_TERMINAL: [TerminalSpec; 1] = [TerminalSpec {
    luno: "000000003",
    terminal_id: "ATM00003",
    profile: "ncr-advance-ndc-mac",
    address: LOCALHOST,
}];

const AMOUNT: u64 = 5_000;
/// What the man in the middle asks for instead.
const RAISED: u64 = 90_000;

async fn withdraw(lab: &Lab, atm: &mut AtmSim, amount: u64) -> CustomerOutcome {
    let customer = Customer::withdrawal(ALICE, amount).with_pin(lab.pin_of(ALICE));
    atm.run_customer(&customer).await.unwrap()
}

/// The terminal's start-up, MAC key and all: its master key entered, the terminal in service,
/// and the agent holding its supply counts (the counters come last, MACed like every status).
async fn mac_terminal(lab: &Lab) -> AtmSim {
    lab.load_master(0).await;
    let atm = lab.pin_atm(0, lab.master_key(0)).await;
    lab.wait_until("the agent to know the cassettes", 10, || async move {
        let s = lab.terminal_status("ATM00003").await;
        s["cassettes"]
            .as_array()
            .is_some_and(|c| !c.is_empty() && c.iter().all(|c| c["notes"] == 100))
    })
    .await;
    atm
}

/// Transactions in the switch's journal and movements in the ledger.
async fn seen_upstream(lab: &Lab) -> (usize, usize) {
    let rec = lab.switch.switch.reconcile().await.unwrap();
    let movements = testkit::ledger::all_movements(&lab.ledger).await;
    (rec.transactions, movements.len())
}

#[tokio::test]
async fn mac_mode_serves_a_maced_withdrawal_and_refuses_a_request_changed_after_macing() {
    let lab = &Lab::start_with_pins(&MAC_TERMINAL).await;
    let mut atm = mac_terminal(lab).await;

    // The agent loaded a MAC key with the PIN key; the terminal holds the same one.
    let in_terminal = atm.mac_key_kcv().expect("the terminal holds a MAC key");
    let versions = lab.agent_key_versions("tak/ATM00003").await;
    assert_eq!(versions.len(), 1, "one MAC key version: {versions:?}");
    assert_eq!(
        lab.agent_key_kcv("tak/ATM00003", versions[0]).await,
        in_terminal.to_string()
    );

    // MACed both ways: served.
    let out = withdraw(lab, &mut atm, AMOUNT).await;
    assert_eq!(out.outcome, Outcome::Approved, "{out:?}");
    assert_eq!(out.dispensed_minor, AMOUNT);
    lab.eventually_balance(ALICE, ((START - AMOUNT) as i64, 0))
        .await;
    let before = seen_upstream(lab).await;
    let dispensed_before = atm.counters().dispensed_minor;

    // A man in the middle plays the approved request again (its MAC verifies, its TVN was
    // used), then changes requests after the terminal MACed them.
    for change in [
        RequestTamper::Replay,
        RequestTamper::Amount(RAISED),
        RequestTamper::Mac("0BADF00D".into()),
        RequestTamper::NoMac,
    ] {
        atm.tamper_next_request(change.clone());
        let out = withdraw(lab, &mut atm, AMOUNT).await;
        assert_eq!(
            out.outcome.decline_reason(),
            Some(DeclineReason::Declined),
            "{change:?}: {out:?}"
        );
        assert_eq!(out.dispensed_minor, 0, "{change:?}");
    }
    assert_eq!(atm.counters().dispensed_minor, dispensed_before);
    assert_eq!(
        atm.status().replies_rejected_for_mac,
        0,
        "the declines were MACed by the agent and accepted by the terminal"
    );
    let status = lab.terminal_status("ATM00003").await;
    assert_eq!(status["mac_failures"], 4, "{status}");

    // The terminal is still served, and nothing of the refused requests went upstream.
    let out = withdraw(lab, &mut atm, AMOUNT).await;
    assert_eq!(out.outcome, Outcome::Approved, "{out:?}");
    lab.eventually_balance(ALICE, ((START - 2 * AMOUNT) as i64, 0))
        .await;
    let after = seen_upstream(lab).await;
    assert_eq!(
        after.0,
        before.0 + 1,
        "the switch journal holds only the second good withdrawal"
    );
    assert_eq!(lab.captures(ALICE).await.len(), 2);
    assert!(
        lab.captures(ALICE)
            .await
            .iter()
            .all(|m| m.amount_minor == AMOUNT),
        "no capture of the raised amount"
    );
    lab.assert_books().await;
}

#[tokio::test]
async fn a_forged_status_after_the_dispense_settles_nothing_and_leaves_it_in_doubt() {
    let lab = &Lab::start_with_pins(&MAC_TERMINAL).await;
    let mut atm = mac_terminal(lab).await;
    // The cash leaves, but the terminal's report of it is replaced on the line: the agent cannot
    // tell what happened, so the withdrawal is neither completed nor reversed by that report.
    atm.tamper_next_status_mac("0BADF00D").await;
    let out = withdraw(lab, &mut atm, AMOUNT).await;
    assert_eq!(out.outcome, Outcome::Approved, "{out:?}");
    lab.wait_until(
        "the dispense kept in doubt and the MAC failure counted",
        10,
        || async move {
            let s = lab.terminal_status("ATM00003").await;
            s["dispenses_in_doubt"] == 1 && s["mac_failures"] == 1
        },
    )
    .await;
    assert!(
        lab.captures(ALICE).await.is_empty(),
        "not completed on a forged report"
    );
}
