//! Dispenses in doubt end to end (issue 12, defects 3 and 4): a simulated terminal reports a
//! short dispense without note counts, the next customer is served, the record stays (one per
//! transaction), `atmctl dispense ls` lists it, and a technician settles it with
//! `atmctl dispense settle`, which captures what left. The technician's refusals have their exit
//! codes.

mod common;

use atm_agent::control_api::SettleOutcome;
use atm_sim::{Behaviour, Customer, Outcome, Partial, TerminalFault};
use common::*;

fn atmctl(socket: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atmctl"))
        .arg("dispense")
        .args(args)
        .arg("--socket")
        .arg(socket)
        .env("USER", "tech-jane")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_short_dispense_without_counts_waits_for_a_technician_and_is_captured_as_settled() {
    let lab = Lab::start().await;
    let mut atm = lab.atm("001").await;
    let fault = TerminalFault::ShortWithoutCounts {
        delivered: Partial::Notes(vec![0, 0, 0, 1]),
    };
    let out = atm
        .run_customer(
            &Customer::withdrawal(ALICE, 30_000).with_behaviour(Behaviour::TerminalFault(fault)),
        )
        .await
        .unwrap();
    assert_eq!(out.dispensed_minor, 10_000, "{out:?}");
    // The next customer is served and settled; the first record stays.
    let out = atm
        .run_customer(&Customer::withdrawal(BOB, 5_000))
        .await
        .unwrap();
    assert_eq!(out.outcome, Outcome::Approved, "{out:?}");
    lab.eventually_balance(BOB, ((START - 5_000) as i64, 0))
        .await;

    let listed = lab
        .agent_request(AgentRequest::DispenseLs { terminal: None })
        .await
        .unwrap();
    let records = listed.as_array().unwrap();
    assert_eq!(records.len(), 1, "{listed}");
    let record = &records[0];
    assert_eq!(record["terminal"], "ATM00001");
    assert_eq!(record["amount_minor"], 30_000);
    assert_eq!(record["needs_technician"], true, "{record}");
    let tsn = record["tsn"].as_u64().unwrap();
    let status = lab.terminal_status("ATM00001").await;
    assert_eq!(status["dispenses_in_doubt"], 1, "{status}");
    assert_eq!(
        lab.balance(ALICE).await.0,
        START as i64,
        "nothing captured by a guess"
    );

    let socket = lab.agent().control_socket.clone();
    let tsn_text = tsn.to_string();
    let (code, _, err) = tokio::task::spawn_blocking({
        let socket = socket.clone();
        move || {
            atmctl(
                &socket,
                &["settle", "ATM00001", "9998", "--nothing", "--reason", "x"],
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 3, "unknown TSN: {err}");
    let (code, _, err) = tokio::task::spawn_blocking({
        let socket = socket.clone();
        move || {
            atmctl(
                &socket,
                &["settle", "ATM00009", "1", "--nothing", "--reason", "x"],
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 3, "unknown ATM: {err}");
    let (code, _, err) = tokio::task::spawn_blocking({
        let (socket, tsn) = (socket.clone(), tsn_text.clone());
        move || {
            atmctl(
                &socket,
                &[
                    "settle",
                    "ATM00001",
                    &tsn,
                    "--dispensed",
                    "30001",
                    "--reason",
                    "x",
                ],
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 2, "above the approved amount: {err}");
    let (code, out, err) = tokio::task::spawn_blocking({
        let (socket, tsn) = (socket.clone(), tsn_text.clone());
        move || {
            atmctl(
                &socket,
                &[
                    "settle",
                    "ATM00001",
                    &tsn,
                    "--dispensed",
                    "10000",
                    "--reason",
                    "one 100 note short in the cassette count",
                    "--json",
                ],
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("Completion"), "{out}");
    // Attributed to the process that connected, as the kernel says (this test's user).
    let me = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&socket).unwrap());
    let answer: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(answer["peer_uid"], me, "{out}");

    // Captured what left; the rest of the hold released.
    lab.eventually_balance(ALICE, ((START - 10_000) as i64, 0))
        .await;
    let listed = lab
        .agent_request(AgentRequest::DispenseLs { terminal: None })
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 0, "{listed}");
    let again = lab
        .agent_request(AgentRequest::DispenseSettle {
            terminal: "ATM00001".into(),
            tsn: tsn as u16,
            outcome: SettleOutcome::Nothing,
            reason: "twice".into(),
            by: None,
        })
        .await;
    assert!(again.unwrap_err().contains("not found"), "settled once");
    lab.assert_books().await;
}
