//! The agent end to end: simulated NDC terminals (atm-sim) → agent → real switch over mutual TLS
//! → real ledger-sim. Every test ends by checking the books.

mod common;

use std::time::Duration;

use atm_agent::domain::terminal::TerminalState;
use atm_sim::{Behaviour, Customer, Outcome, Partial};
use common::*;
use host_switch::ports::Journal;

#[tokio::test]
async fn terminal_connects_downloads_its_configuration_and_goes_in_service() {
    let lab = Lab::start().await;
    let atm = lab.atm("001").await;
    assert_eq!(
        atm.stored_config().await.config_id,
        "0022",
        "the profile's customization was downloaded"
    );
    let mut view = lab.agent().services.registry.view("ATM00001").unwrap();
    for _ in 0..50 {
        if view.state == TerminalState::InService
            && !view.cassettes.is_empty()
            && view.cassettes[0].notes > 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        view = lab.agent().services.registry.view("ATM00001").unwrap();
    }
    assert_eq!(view.state, TerminalState::InService);
    assert_eq!(
        view.cassettes.iter().map(|c| c.notes).collect::<Vec<_>>(),
        vec![100, 100, 100, 100]
    );
    lab.assert_books().await;
}

#[tokio::test]
async fn approved_withdrawal_dispenses_the_right_mix_and_is_captured() {
    let lab = Lab::start().await;
    let mut atm = lab.atm("001").await;
    let out = atm
        .run_customer(&Customer::withdrawal(ALICE, 18_000))
        .await
        .unwrap();
    assert_eq!(out.outcome, Outcome::Approved, "{out:?}");
    assert_eq!(
        out.notes_dispensed,
        vec![1, 1, 1, 1],
        "10+20+50+100 is the fewest notes"
    );
    assert_eq!(out.dispensed_minor, 18_000);
    lab.eventually_balance(ALICE, ((START - 18_000) as i64, 0))
        .await;
    lab.assert_books().await;
}

#[tokio::test]
async fn amount_the_cassettes_cannot_make_is_declined_without_asking_the_switch() {
    let lab = Lab::start().await;
    let mut atm = lab.atm("001").await;
    let out = atm
        .run_customer(&Customer::withdrawal(ALICE, 1_550))
        .await
        .unwrap();
    assert!(matches!(out.outcome, Outcome::Declined { .. }), "{out:?}");
    assert_eq!(lab.balance(ALICE).await, (START as i64, 0));
    assert_eq!(lab.switch.switch.journal().txns().unwrap().len(), 0);
}

#[tokio::test]
async fn partial_dispense_completes_for_what_left_the_cassettes() {
    let lab = Lab::start().await;
    let mut atm = lab.atm("001").await;
    let customer = Customer::withdrawal(ALICE, 30_000)
        .with_behaviour(Behaviour::PartialDispense(Partial::Notes(vec![0, 0, 0, 1])));
    let out = atm.run_customer(&customer).await.unwrap();
    assert_eq!(out.dispensed_minor, 10_000, "{out:?}");
    // Captured 100.00, the rest released.
    lab.eventually_balance(ALICE, ((START - 10_000) as i64, 0))
        .await;
    lab.assert_books().await;
}

#[tokio::test]
async fn cancelled_at_the_cash_slot_is_reversed() {
    let lab = Lab::start().await;
    let mut atm = lab.atm("001").await;
    let out = atm
        .run_customer(
            &Customer::withdrawal(ALICE, 5_000).with_behaviour(Behaviour::CancelAtCashSlot),
        )
        .await
        .unwrap();
    assert_eq!(out.dispensed_minor, 0, "{out:?}");
    // Hold voided.
    lab.eventually_balance(ALICE, (START as i64, 0)).await;
    lab.assert_books().await;
}

#[tokio::test]
async fn power_loss_during_dispense_is_settled_after_the_terminal_comes_back() {
    let lab = Lab::start().await;
    let mut atm = lab.atm("001").await;
    let out = atm
        .run_customer(
            &Customer::withdrawal(ALICE, 20_000)
                .with_behaviour(Behaviour::PowerLossDuringDispense { notes_leave: true }),
        )
        .await
        .unwrap();
    assert!(matches!(out.outcome, Outcome::PowerLoss { .. }), "{out:?}");
    atm.power_cycle().await.unwrap();
    // The notes that left were captured.
    lab.eventually_balance(ALICE, ((START - 20_000) as i64, 0))
        .await;
    assert!(
        !lab.agent()
            .services
            .registry
            .view("ATM00001")
            .unwrap()
            .dispense_in_doubt
    );
    lab.assert_books().await;
}

#[tokio::test]
async fn balance_inquiry_and_deposit_online() {
    let lab = Lab::start().await;
    let mut atm = lab.atm("001").await;
    let out = atm
        .run_customer(&Customer::balance_inquiry(ALICE))
        .await
        .unwrap();
    assert_eq!(out.outcome, Outcome::Approved, "{out:?}");
    let out = atm
        .run_customer(&Customer::deposit(ALICE, 7_000))
        .await
        .unwrap();
    assert_eq!(out.outcome, Outcome::Approved, "{out:?}");
    assert_eq!(out.deposited_minor, 7_000);
    lab.eventually_balance(ALICE, ((START + 7_000) as i64, 0))
        .await;
    lab.assert_books().await;
}

#[tokio::test]
async fn switch_unreachable_declines_withdrawals_queues_deposits_and_drains_each_once() {
    let lab = Lab::start().await;
    let mut atm = lab.atm("001").await;
    lab.relay.cut();
    lab.wait_uplink(false).await;
    let out = atm
        .run_customer(&Customer::withdrawal(ALICE, 5_000))
        .await
        .unwrap();
    assert!(
        matches!(out.outcome, Outcome::HostUnavailable { .. }),
        "withdrawals are declined at once: {out:?}"
    );
    for _ in 0..5 {
        let out = atm
            .run_customer(&Customer::deposit(BOB, 1_000))
            .await
            .unwrap();
        assert_eq!(
            out.outcome,
            Outcome::Approved,
            "deposits are still taken: {out:?}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let queued = lab.agent().services.queue.len();
    assert!(queued >= 5, "queue grew while the link was down: {queued}");
    assert_eq!(
        lab.balance(BOB).await,
        (START as i64, 0),
        "nothing reached the ledger yet"
    );
    lab.relay.restore();
    lab.wait_uplink(true).await;
    // Each deposit credited exactly once.
    lab.eventually_balance(BOB, ((START + 5_000) as i64, 0))
        .await;
    assert_eq!(lab.balance(ALICE).await, (START as i64, 0));
    lab.assert_books().await;
}

#[tokio::test]
async fn malformed_ndc_is_logged_the_connection_closed_and_nothing_queued() {
    use futures::SinkExt;
    use protocols::framing::FrameCodec;
    let lab = Lab::start().await;
    let tcp = tokio::net::TcpStream::connect(lab.agent().ndc_addr)
        .await
        .unwrap();
    let mut framed = tokio_util::codec::Framed::new(tcp, FrameCodec::default());
    framed
        .send(bytes::Bytes::from_static(b"12\x1c001\x1c\x1cB0022"))
        .await
        .unwrap();
    for _ in 0..3 {
        framed
            .send(bytes::Bytes::from_static(b"11\x1c001\x1c"))
            .await
            .unwrap();
    }
    use futures::StreamExt;
    let mut closed = false;
    for _ in 0..20 {
        match tokio::time::timeout(Duration::from_secs(5), framed.next()).await {
            Ok(None) | Ok(Some(Err(_))) => {
                closed = true;
                break;
            }
            Ok(Some(Ok(_))) => continue, // the start-up commands addressed to the terminal
            Err(_) => break,
        }
    }
    assert!(
        closed,
        "the agent closed the connection after repeated malformed messages"
    );
    // Only the power-up status advice may be queued; no customer advice.
    let kinds: Vec<String> = lab
        .agent()
        .services
        .queue
        .list()
        .iter()
        .map(|e| e.payload["kind"].to_string())
        .collect();
    assert!(kinds.iter().all(|k| k.contains("Status")), "{kinds:?}");
}
