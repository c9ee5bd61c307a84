//! Keys and PINs end to end: simulated terminals with PIN pads (atm-sim) → agent (its own key
//! store, terminal master keys entered through its control socket) → real switch over mutual TLS
//! (zone master key, PIN verification key, the issuer's PVVs) → real ledger-sim.
//!
//! What is proved: each NDC dialect's PIN key load (KVV reply or plain ready), the wait for the
//! custodians' master key, PIN verification with its tries counter and the operator's unblock, the
//! rotation of terminal and zone PIN keys, and what a PIN pad with the wrong master key gets.
//! Background work is awaited by polling with a deadline, never by a fixed sleep.

mod common;

use atm_sim::{AtmSim, Customer, CustomerOutcome, DeclineReason, Outcome, ServiceMode};
use common::*;
use host_switch::ports::Journal;
use serde_json::json;
use testkit::custodian_keys::CustodianKey;

/// A withdrawal every profile's cassettes can make.
const AMOUNT: u64 = 5_000;

/// Customer `pan` asks for [`AMOUNT`], typing the card's PIN or (`wrong`) another one.
async fn withdraw(lab: &Lab, atm: &mut AtmSim, pan: &str, wrong: bool) -> CustomerOutcome {
    let mut customer = Customer::withdrawal(pan, AMOUNT).with_pin(lab.pin_of(pan));
    if wrong {
        customer = customer.with_wrong_pin();
    }
    atm.run_customer(&customer).await.unwrap()
}

fn declined_for(out: &CustomerOutcome) -> Option<DeclineReason> {
    out.outcome.decline_reason()
}

fn tpk(terminal_id: &str) -> String {
    format!("tpk/{terminal_id}")
}

/// Waits until the agent reports the terminal in service with a confirmed PIN key, and checks
/// that the key is the only version in the agent's store and the one in the terminal's PIN pad
/// (same check value). Returns its version.
async fn confirmed_pin_key(lab: &Lab, atm: &AtmSim, terminal_id: &str) -> u64 {
    lab.wait_until(
        "the terminal in service with its PIN key",
        10,
        || async move {
            let s = lab.terminal_status(terminal_id).await;
            s["state"] == "in_service" && s["pin_key"] == "pin key loaded"
        },
    )
    .await;
    let status = lab.terminal_status(terminal_id).await;
    let version = status["pin_key_version"].as_u64().expect("pin_key_version");
    assert_eq!(
        lab.agent_key_versions(&tpk(terminal_id)).await,
        vec![version],
        "only the confirmed version is kept"
    );
    let in_pad = atm.pin_key_kcv().expect("the PIN pad holds a PIN key");
    assert_eq!(
        in_pad.to_string(),
        lab.agent_key_kcv(&tpk(terminal_id), version).await,
        "{terminal_id}: the PIN pad and the agent hold the same PIN key"
    );
    version
}

/// Waits until the terminal's start-up is over although it has no PIN key: the agent reports
/// `pin_key_status` and knows the cassettes (the supply counters are the start-up's last step).
async fn wait_start_up_without_pin_key(lab: &Lab, terminal_id: &str, pin_key_status: &str) {
    lab.wait_until("the start-up to end without a PIN key", 10, || async move {
        let s = lab.terminal_status(terminal_id).await;
        s["pin_key"] == pin_key_status
            && s["cassettes"]
                .as_array()
                .is_some_and(|c| !c.is_empty() && c.iter().all(|c| c["notes"] == 100))
    })
    .await;
}

#[tokio::test]
async fn basic_and_advance_terminals_get_a_pin_key_and_their_pins_are_verified() {
    let lab = &Lab::start_with_pins(&BASIC_AND_ADVANCE).await;
    for i in 0..2 {
        let report = lab.load_master(i).await;
        assert!(report.contains("at next start-up"), "{report}");
    }
    // Basic dialect: the key load is answered with a plain ready `9`; Advance NDC: `23 … 3 FS
    // <KVV>`, checked against the key's check value.
    let mut basic = lab.pin_atm(0, lab.master_key(0)).await;
    let mut advance = lab.pin_atm(1, lab.master_key(1)).await;
    confirmed_pin_key(lab, &basic, "ATM00001").await;
    confirmed_pin_key(lab, &advance, "ATM00002").await;
    assert_ne!(
        basic.pin_key_kcv(),
        advance.pin_key_kcv(),
        "a key per terminal"
    );

    for (atm, pan) in [(&mut basic, ALICE), (&mut advance, BOB)] {
        let out = withdraw(lab, atm, pan, false).await;
        assert_eq!(
            out.outcome,
            Outcome::Approved,
            "{}: {out:?}",
            atm.profile().name
        );
        assert!(out.pin_block_sent, "{out:?}");
        let out = withdraw(lab, atm, pan, true).await;
        assert_eq!(
            declined_for(&out),
            Some(DeclineReason::WrongPin),
            "{}: {out:?}",
            atm.profile().name
        );
    }
    for pan in [ALICE, BOB] {
        lab.eventually_balance(pan, ((START - AMOUNT) as i64, 0))
            .await;
        assert_eq!(lab.captures(pan).await.len(), 1);
    }
    lab.assert_books().await;
}

#[tokio::test]
async fn terminal_without_master_key_waits_out_of_service_until_custodians_enter_it() {
    let lab = &Lab::start_with_pins(&BASIC_PAIR).await;
    // The PIN pad holds its master key; the agent has none for ATM00001 yet.
    let connecting = lab.spawn_pin_atm(0, lab.master_key(0));
    wait_start_up_without_pin_key(lab, "ATM00001", "awaiting master key").await;
    let status = lab.terminal_status("ATM00001").await;
    assert_eq!(status["state"], "out_of_service", "{status}");
    assert_eq!(status["pin_key_version"], json!(null), "{status}");
    assert!(lab.agent_key_versions(&tpk("ATM00001")).await.is_empty());
    // The terminal was never put in service, so no customer can start there (the simulator
    // returns from power-up only when it is).
    assert!(!connecting.is_finished(), "the terminal went in service");
    assert!(lab.switch.switch.journal().txns().unwrap().is_empty());

    // Two custodians at `atmctl keys load-master ATM00001`, one `COMPONENT KCV` line each.
    let mut typed = String::new();
    for (component, kcv) in &lab.pins().keys.terminal_masters[0].components {
        typed.push_str(&format!("{} {kcv}\n", component.as_str()));
    }
    typed.push('\n');
    let mut atmctl = std::process::Command::new(env!("CARGO_BIN_EXE_atmctl"))
        .args(["keys", "load-master", "ATM00001", "--socket"])
        .arg(&lab.agent().control_socket)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(atmctl.stdin.as_mut().unwrap(), typed.as_bytes()).unwrap();
    let out = tokio::task::spawn_blocking(move || atmctl.wait_with_output().unwrap())
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("terminal PIN key: loading"), "{report}");
    let mut atm = tokio::time::timeout(std::time::Duration::from_secs(10), connecting)
        .await
        .expect("the terminal in service after the master key entry")
        .unwrap()
        .unwrap();
    confirmed_pin_key(lab, &atm, "ATM00001").await;
    let out = withdraw(lab, &mut atm, ALICE, false).await;
    assert_eq!(out.outcome, Outcome::Approved, "{out:?}");
    lab.eventually_balance(ALICE, ((START - AMOUNT) as i64, 0))
        .await;
    lab.assert_books().await;
}

#[tokio::test]
async fn three_wrong_pins_block_the_card_until_the_switch_operator_unblocks_it() {
    let lab = &Lab::start_with_pins(&BASIC_PAIR).await;
    lab.load_master(0).await;
    let mut atm = lab.pin_atm(0, lab.master_key(0)).await;
    confirmed_pin_key(lab, &atm, "ATM00001").await;

    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(declined_for(&withdraw(lab, &mut atm, ALICE, true).await));
    }
    assert_eq!(
        seen,
        [
            Some(DeclineReason::WrongPin),
            Some(DeclineReason::WrongPin),
            Some(DeclineReason::PinTriesExceeded)
        ]
    );
    let out = withdraw(lab, &mut atm, ALICE, false).await;
    assert_eq!(
        declined_for(&out),
        Some(DeclineReason::PinTriesExceeded),
        "blocked: even the right PIN is refused: {out:?}"
    );
    let card = lab
        .switch_request(SwitchRequest::card_status(ALICE))
        .await
        .unwrap();
    assert_eq!(
        (card["tries"].as_u64(), card["blocked"].as_bool()),
        (Some(3), Some(true)),
        "{card}"
    );
    assert_eq!(lab.balance(ALICE).await, (START as i64, 0));

    let unblocked = lab
        .switch_request(SwitchRequest::card_unblock(ALICE))
        .await
        .unwrap();
    assert_eq!(unblocked["was_blocked"], true, "{unblocked}");
    let out = withdraw(lab, &mut atm, ALICE, false).await;
    assert_eq!(out.outcome, Outcome::Approved, "{out:?}");
    lab.eventually_balance(ALICE, ((START - AMOUNT) as i64, 0))
        .await;
    assert_eq!(lab.captures(ALICE).await.len(), 1, "exactly one capture");
    lab.assert_books().await;
}

#[tokio::test]
async fn terminal_pin_key_rotation_replaces_the_key_in_the_pin_pad_and_the_store() {
    let lab = &Lab::start_with_pins(&BASIC_PAIR).await;
    lab.load_master(0).await;
    let mut atm = lab.pin_atm(0, lab.master_key(0)).await;
    let v1 = confirmed_pin_key(lab, &atm, "ATM00001").await;
    let kcv1 = atm.pin_key_kcv();
    let out = withdraw(lab, &mut atm, ALICE, false).await;
    assert_eq!(out.outcome, Outcome::Approved, "{out:?}");

    lab.agent_request(AgentRequest::KeysRotate {
        terminal: "ATM00001".into(),
    })
    .await
    .unwrap();
    lab.wait_until("a newer terminal PIN key in service", 10, || async move {
        let s = lab.terminal_status("ATM00001").await;
        s["pin_key_version"].as_u64().is_some_and(|v| v > v1) && s["state"] == "in_service"
    })
    .await;
    // Also: the superseded version is destroyed, the pad holds the new one.
    let v2 = confirmed_pin_key(lab, &atm, "ATM00001").await;
    assert!(v2 > v1);
    assert_ne!(atm.pin_key_kcv(), kcv1, "the PIN pad has a new key");

    let out = withdraw(lab, &mut atm, ALICE, false).await;
    assert_eq!(out.outcome, Outcome::Approved, "{out:?}");
    let out = withdraw(lab, &mut atm, ALICE, true).await;
    assert_eq!(declined_for(&out), Some(DeclineReason::WrongPin), "{out:?}");
    lab.eventually_balance(ALICE, ((START - 2 * AMOUNT) as i64, 0))
        .await;
    lab.assert_books().await;
}

#[tokio::test]
async fn terminal_pin_key_is_replaced_when_its_lifetime_ends() {
    let mut lab = Lab::start_with_pins(&BASIC_PAIR).await;
    // Restart the agent with a 2-second terminal PIN key lifetime (no terminal connected yet).
    lab.agent.take().unwrap().shutdown().await;
    lab.pins.as_mut().unwrap().tpk_rotate_secs = 2;
    lab.start_agent().await;
    let lab = &lab;
    lab.load_master(0).await;
    let mut atm = lab.pin_atm(0, lab.master_key(0)).await;
    let v1 = confirmed_pin_key(lab, &atm, "ATM00001").await;
    let kcv1 = atm.pin_key_kcv();
    lab.wait_until(
        "a scheduled new terminal PIN key in service",
        15,
        || async move {
            let s = lab.terminal_status("ATM00001").await;
            s["pin_key_version"].as_u64().is_some_and(|v| v > v1) && s["state"] == "in_service"
        },
    )
    .await;
    assert_ne!(atm.pin_key_kcv(), kcv1, "the PIN pad has a new key");
    let out = withdraw(lab, &mut atm, ALICE, false).await;
    assert_eq!(out.outcome, Outcome::Approved, "{out:?}");
    lab.assert_books().await;
}

#[tokio::test]
async fn switch_zone_key_rotation_reaches_the_agent_and_pins_still_verify() {
    let lab = &Lab::start_with_pins(&BASIC_PAIR).await;
    lab.load_master(0).await;
    let mut atm = lab.pin_atm(0, lab.master_key(0)).await;
    confirmed_pin_key(lab, &atm, "ATM00001").await;
    assert_eq!(lab.agent_key_versions("zpk").await, vec![1]);
    let out = withdraw(lab, &mut atm, ALICE, false).await;
    assert_eq!(out.outcome, Outcome::Approved, "{out:?}");

    let rotated = lab.switch_request(SwitchRequest::ZpkRotate).await.unwrap();
    assert_eq!(rotated["version"], 2, "{rotated}");
    // The switch announces the version in its echo answers (every 500 ms here).
    lab.wait_until(
        "the agent to fetch zone PIN key version 2",
        15,
        || async move { lab.agent_key_versions("zpk").await.contains(&2) },
    )
    .await;
    assert_eq!(
        lab.agent_key_kcv("zpk", 2).await,
        rotated["kcv"].as_str().unwrap(),
        "the agent holds the switch's key"
    );
    // Once the grace window is over the switch knows only version 2: a PIN that verifies now
    // was translated to it.
    lab.wait_until(
        "the switch to destroy zone PIN key version 1",
        15,
        || async move { lab.switch_key_versions("zpk").await == [2] },
    )
    .await;
    let out = withdraw(lab, &mut atm, ALICE, false).await;
    assert_eq!(out.outcome, Outcome::Approved, "{out:?}");
    let out = withdraw(lab, &mut atm, ALICE, true).await;
    assert_eq!(declined_for(&out), Some(DeclineReason::WrongPin), "{out:?}");
    lab.eventually_balance(ALICE, ((START - 2 * AMOUNT) as i64, 0))
        .await;
    lab.assert_books().await;
}

#[tokio::test]
async fn advance_terminal_with_the_wrong_master_key_refuses_the_pin_key_and_stays_out_of_service() {
    let lab = &Lab::start_with_pins(&BASIC_AND_ADVANCE).await;
    lab.load_master(1).await;
    // The PIN pad was installed with a key the custodians did not enter into the agent: it
    // deciphers the PIN key to something else and reports that key's KVV.
    let connecting = lab.spawn_pin_atm(1, Lab::foreign_master_key());
    wait_start_up_without_pin_key(lab, "ATM00002", "pin key refused").await;
    let status = lab.terminal_status("ATM00002").await;
    assert_eq!(status["state"], "out_of_service", "{status}");
    assert_eq!(status["pin_key_version"], json!(null), "{status}");
    assert!(
        lab.agent_key_versions(&tpk("ATM00002")).await.is_empty(),
        "the refused version is destroyed"
    );
    assert!(!connecting.is_finished(), "the terminal went in service");
    assert!(lab.switch.switch.journal().txns().unwrap().is_empty());
    connecting.abort();
    lab.assert_books().await;
}

#[tokio::test]
async fn advance_terminal_refusing_a_new_pin_key_keeps_the_old_version_and_goes_out_of_service() {
    let lab = &Lab::start_with_pins(&BASIC_AND_ADVANCE).await;
    lab.load_master(1).await;
    let mut atm = lab.pin_atm(1, lab.master_key(1)).await;
    let v1 = confirmed_pin_key(lab, &atm, "ATM00002").await;
    // Custodians enter a master key the PIN pad does not hold: the agent loads a new PIN key
    // under it at once, and the pad reports the check value of whatever it deciphered.
    let (components, kcvs) = CustodianKey::generate().unwrap().components().unwrap();
    let socket = lab.agent().control_socket.clone();
    let report = tokio::task::spawn_blocking(move || {
        atm_agent::cli::keys::load_master(&socket, "ATM00002", &components, &kcvs)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(report.contains("terminal PIN key: loading"), "{report}");
    lab.wait_until("the agent to see the key refused", 10, || async move {
        lab.terminal_status("ATM00002").await["pin_key"] == "pin key refused"
    })
    .await;
    let status = lab.terminal_status("ATM00002").await;
    assert_eq!(status["state"], "out_of_service", "{status}");
    assert_eq!(status["pin_key_version"], v1, "{status}");
    assert_eq!(
        lab.agent_key_versions(&tpk("ATM00002")).await,
        vec![v1],
        "the refused version is destroyed, the confirmed one kept"
    );
    assert!(atm.wait_for_mode(ServiceMode::OutOfService, 5_000).await);
    let out = withdraw(lab, &mut atm, BOB, false).await;
    assert_eq!(out.outcome, Outcome::OutOfService, "{out:?}");
    assert!(lab.switch.switch.journal().txns().unwrap().is_empty());
    lab.assert_books().await;
}

#[tokio::test]
async fn basic_terminal_with_the_wrong_master_key_serves_no_pin_and_posts_nothing() {
    let lab = &Lab::start_with_pins(&BASIC_PAIR).await;
    lab.load_master(0).await;
    // Without a KVV in the answer the agent cannot tell: the terminal goes in service with a PIN
    // key that differs from the agent's.
    let mut atm = lab.pin_atm(0, Lab::foreign_master_key()).await;
    lab.wait_until("the terminal in service", 10, || async move {
        let s = lab.terminal_status("ATM00001").await;
        s["state"] == "in_service" && s["pin_key"] == "pin key loaded"
    })
    .await;
    let version = lab.terminal_status("ATM00001").await["pin_key_version"]
        .as_u64()
        .unwrap();
    assert_ne!(
        atm.pin_key_kcv().unwrap().to_string(),
        lab.agent_key_kcv(&tpk("ATM00001"), version).await
    );

    let out = withdraw(lab, &mut atm, ALICE, false).await;
    assert_eq!(
        declined_for(&out),
        Some(DeclineReason::Declined),
        "the PIN block does not open under the agent's key: {out:?}"
    );
    assert!(out.notes_dispensed.iter().all(|n| *n == 0), "{out:?}");
    assert!(
        lab.switch.switch.journal().txns().unwrap().is_empty(),
        "nothing reached the switch"
    );
    let card = lab
        .switch_request(SwitchRequest::card_status(ALICE))
        .await
        .unwrap();
    assert_eq!(card["tries"], 0, "no PIN try counted: {card}");
    lab.drained().await;
    assert_eq!(lab.balance(ALICE).await, (START as i64, 0));
    assert!(lab.captures(ALICE).await.is_empty());
    lab.assert_books().await;
}
