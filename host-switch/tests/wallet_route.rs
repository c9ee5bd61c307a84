//! The wallet route end to end: a real switch (TLS, sled journal) and a real ledger-sim, driven
//! by a test ISO 8583 client. Every test ends by checking the books (see `Lab::assert_books`).

mod common;

use std::time::Duration;

use common::*;
use host_switch::breaker::BreakerState;
use ledger_sim::FaultConfig;
use protocols::iso8583::Spec;

#[tokio::test]
async fn echo_and_sign_on_are_answered() {
    let lab = Lab::start().await;
    let mut c = lab.client().await;
    let r = c.request(&echo(1)).await;
    assert_eq!(r.mti().as_str(), "0810");
    assert_eq!(code(&r), "00");
    assert_eq!(r.get_str(11), Some("000001"));
    // Which cards' deposits the agent may take offline: the wallet's, by the routing table.
    let offline = protocols::dialect::Answer::from_message(&r)
        .unwrap()
        .offline_deposits
        .expect("field 63");
    assert_eq!(offline.to_field(), "476173+,5-");
    lab.assert_books().await;
}

#[tokio::test]
async fn approved_withdrawal_is_held_then_captured_in_full() {
    let lab = Lab::start().await;
    let mut c = lab.client().await;
    let r = c.request(&withdrawal(1, ALICE, 20_000)).await;
    assert_eq!((r.mti().as_str(), code(&r)), ("0110", "00"));
    assert_eq!(r.get_str(38).map(str::len), Some(6), "approval code");
    assert_eq!(r.get_str(2), Some(ALICE), "echo of the PAN");
    assert_eq!(lab.balance(ALICE).await["held_minor"], 20_000);

    let r = c.request(&completion(2, 1, ALICE, 20_000, 20_000)).await;
    assert_eq!((r.mti().as_str(), code(&r)), ("0230", "00"));
    let b = lab.balance(ALICE).await;
    assert_eq!(
        (b["balance_minor"].as_i64(), b["held_minor"].as_i64()),
        (Some(80_000), Some(0))
    );
    lab.assert_books().await;
}

#[tokio::test]
async fn insufficient_funds_is_declined_51_and_nothing_moves() {
    let lab = Lab::start().await;
    let mut c = lab.client().await;
    let r = c.request(&withdrawal(1, BOB_POOR, 5_000)).await;
    assert_eq!(code(&r), "51");
    assert_eq!(lab.balance(BOB_POOR).await["held_minor"], 0);
    assert!(lab.movements().await.is_empty());
    lab.assert_books().await;
}

#[tokio::test]
async fn partial_dispense_captures_only_dispensed_amount() {
    let lab = Lab::start().await;
    let mut c = lab.client().await;
    assert_eq!(code(&c.request(&withdrawal(1, ALICE, 30_000)).await), "00");
    assert_eq!(
        code(&c.request(&completion(2, 1, ALICE, 30_000, 10_000)).await),
        "00"
    );
    let b = lab.balance(ALICE).await;
    assert_eq!(
        (b["balance_minor"].as_i64(), b["held_minor"].as_i64()),
        (Some(90_000), Some(0))
    );
    lab.assert_books().await;
}

#[tokio::test]
async fn reversal_voids_the_hold() {
    let lab = Lab::start().await;
    let mut c = lab.client().await;
    assert_eq!(code(&c.request(&withdrawal(1, ALICE, 30_000)).await), "00");
    let r = c.request(&reversal(2, 1, ALICE, 30_000, "011000")).await;
    assert_eq!((r.mti().as_str(), code(&r)), ("0430", "00"));
    let b = lab.balance(ALICE).await;
    assert_eq!(
        (b["balance_minor"].as_i64(), b["held_minor"].as_i64()),
        (Some(START_BALANCE as i64), Some(0))
    );
    // The repeat (0421) gets the recorded answer.
    let mut repeat = reversal(2, 1, ALICE, 30_000, "011000");
    repeat.set_mti(protocols::iso8583::Mti::parse("0421").unwrap());
    assert_eq!(code(&c.request(&repeat).await), "00");
    lab.assert_books().await;
}

#[tokio::test]
async fn reversal_after_capture_credits_the_customer_back() {
    let lab = Lab::start().await;
    let mut c = lab.client().await;
    assert_eq!(code(&c.request(&withdrawal(1, ALICE, 10_000)).await), "00");
    assert_eq!(
        code(&c.request(&completion(2, 1, ALICE, 10_000, 10_000)).await),
        "00"
    );
    assert_eq!(
        code(&c.request(&reversal(3, 1, ALICE, 10_000, "011000")).await),
        "00"
    );
    assert_eq!(lab.balance(ALICE).await["balance_minor"], START_BALANCE);
    lab.assert_books().await;
}

#[tokio::test]
async fn reversal_before_its_original_declines_the_late_original() {
    let lab = Lab::start().await;
    let mut c = lab.client().await;
    assert_eq!(
        code(&c.request(&reversal(2, 1, ALICE, 10_000, "011000")).await),
        "00"
    );
    assert_ne!(code(&c.request(&withdrawal(1, ALICE, 10_000)).await), "00");
    assert_eq!(lab.balance(ALICE).await["held_minor"], 0);
    lab.assert_books().await;
}

#[tokio::test]
async fn duplicate_request_gets_the_recorded_answer_and_one_hold() {
    let lab = Lab::start().await;
    let mut c = lab.client().await;
    let first = c.request(&withdrawal(1, ALICE, 20_000)).await;
    let second = c.request(&withdrawal(1, ALICE, 20_000)).await;
    assert_eq!(code(&first), "00");
    assert_eq!(
        Spec::iso87_ascii().pack(&first).unwrap(),
        Spec::iso87_ascii().pack(&second).unwrap()
    );
    assert_eq!(lab.balance(ALICE).await["held_minor"], 20_000, "held once");
    // Concurrent duplicates on two connections: still one hold.
    let (mut a, mut b) = (lab.client().await, lab.client().await);
    let m = withdrawal(7, ALICE, 1_000);
    let (ra, rb) = tokio::join!(a.request(&m), b.request(&m));
    assert_eq!((code(&ra), code(&rb)), ("00", "00"));
    assert_eq!(lab.balance(ALICE).await["held_minor"], 21_000);
    lab.assert_books().await;
}

#[tokio::test]
async fn duplicate_advice_captures_once() {
    let lab = Lab::start().await;
    let mut c = lab.client().await;
    assert_eq!(code(&c.request(&withdrawal(1, ALICE, 20_000)).await), "00");
    assert_eq!(
        code(&c.request(&completion(2, 1, ALICE, 20_000, 20_000)).await),
        "00"
    );
    let mut repeat = completion(2, 1, ALICE, 20_000, 20_000);
    repeat.set_mti(protocols::iso8583::Mti::parse("0221").unwrap());
    assert_eq!(code(&c.request(&repeat).await), "00");
    // The same advice under another STAN (an agent that lost its queue position).
    assert_eq!(
        code(&c.request(&completion(3, 1, ALICE, 20_000, 20_000)).await),
        "00"
    );
    let captures = lab
        .movements()
        .await
        .into_iter()
        .filter(|m| m["kind"] == "capture")
        .count();
    assert_eq!(captures, 1);
    assert_eq!(lab.balance(ALICE).await["balance_minor"], 80_000);
    lab.assert_books().await;
}

#[tokio::test]
async fn deposit_is_credited_and_its_reversal_compensated() {
    let lab = Lab::start().await;
    let mut c = lab.client().await;
    let r = c.request(&deposit(1, ALICE, 5_000)).await;
    assert_eq!((r.mti().as_str(), code(&r)), ("0210", "00"));
    assert_eq!(
        lab.balance(ALICE).await["balance_minor"],
        START_BALANCE + 5_000
    );
    assert_eq!(
        code(&c.request(&deposit(1, ALICE, 5_000)).await),
        "00",
        "replay"
    );
    assert_eq!(
        lab.balance(ALICE).await["balance_minor"],
        START_BALANCE + 5_000,
        "credited once"
    );
    assert_eq!(
        code(&c.request(&reversal(2, 1, ALICE, 5_000, "210010")).await),
        "00"
    );
    assert_eq!(lab.balance(ALICE).await["balance_minor"], START_BALANCE);
    lab.assert_books().await;
}

#[tokio::test]
async fn balance_inquiry_answers_field_54() {
    let lab = Lab::start().await;
    let mut c = lab.client().await;
    let r = c.request(&balance_inquiry(1, ALICE)).await;
    assert_eq!(code(&r), "00");
    assert_eq!(
        r.get_str(54),
        Some("0001978C0000001000000002978C000000100000")
    );
    lab.assert_books().await;
}

#[tokio::test]
async fn unknown_mti_and_processing_code_get_12_and_the_connection_stays_up() {
    let lab = Lab::start().await;
    let mut c = lab.client().await;
    let mut m = withdrawal(1, ALICE, 1_000);
    m.set_str(3, "401000").unwrap();
    assert_eq!(code(&c.request(&m).await), "12");
    let mut m = withdrawal(2, ALICE, 1_000);
    m.set_mti(protocols::iso8583::Mti::parse("0600").unwrap());
    assert_eq!(code(&c.request(&m).await), "12");
    assert_eq!(code(&c.request(&echo(3)).await), "00", "still connected");
    assert_eq!(
        code(&c.request(&withdrawal(4, BANK_CARD, 1_000)).await),
        "14",
        "not a wallet card"
    );
    lab.assert_books().await;
}

#[tokio::test]
async fn restart_in_the_middle_of_a_saga_finishes_it() {
    let mut lab = Lab::start().await;
    {
        let mut c = lab.client().await;
        assert_eq!(code(&c.request(&withdrawal(1, ALICE, 20_000)).await), "00");
        assert_eq!(code(&c.request(&withdrawal(2, ALICE, 10_000)).await), "00");
        // The ledger goes down: the completion of #2 is journaled as pending, answered 91.
        lab.ledger()
            .faults()
            .set(FaultConfig {
                down: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            code(&c.request(&completion(3, 2, ALICE, 10_000, 10_000)).await),
            "91"
        );
    }
    lab.stop_switch().await;
    lab.ledger().faults().clear();
    lab.start_switch().await;
    // The resumer captures #2 by itself, with nobody asking.
    let mut captured = false;
    for _ in 0..200 {
        if lab.movements().await.iter().any(|m| m["kind"] == "capture") {
            captured = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        captured,
        "the pending capture was resumed after the restart"
    );
    let mut c = lab.client().await;
    // #1 was approved before the restart; its advice after the restart captures it.
    assert_eq!(
        code(&c.request(&completion(4, 1, ALICE, 20_000, 20_000)).await),
        "00"
    );
    // The agent repeats #2's advice: the recorded outcome, no second capture.
    assert_eq!(
        code(&c.request(&completion(3, 2, ALICE, 10_000, 10_000)).await),
        "00"
    );
    assert_eq!(lab.balance(ALICE).await["balance_minor"], 70_000);
    lab.assert_books().await;
}

#[tokio::test]
async fn ledger_down_opens_the_breaker_answers_91_and_closes_after_recovery() {
    let lab = Lab::start().await;
    let mut c = lab.client().await;
    lab.ledger()
        .faults()
        .set(FaultConfig {
            down: true,
            ..Default::default()
        })
        .unwrap();
    let breaker = lab.switch().switch.ledger().breaker().clone();
    let mut stan = 0;
    while breaker.state() != BreakerState::Open {
        stan += 1;
        assert!(stan < 40, "breaker never opened");
        assert_eq!(
            code(&c.request(&withdrawal(stan, ALICE, 1_000)).await),
            "91"
        );
    }
    // Open: declined with 91 without a ledger call.
    let rejected_before = breaker.stats().rejected;
    stan += 1;
    assert_eq!(
        code(&c.request(&withdrawal(stan, ALICE, 1_000)).await),
        "91"
    );
    assert!(
        breaker.stats().rejected > rejected_before,
        "answered by the open breaker"
    );

    lab.ledger().faults().clear();
    // Recovery, waited for as a condition: while the breaker is open, requests are still answered
    // 91 at once; once its open time has passed, trial calls reach the ledger again and close it.
    // It must then approve ten withdrawals in a row.
    let recovery_deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut approved = 0;
    let mut in_a_row = 0;
    while in_a_row < 10 {
        assert!(
            tokio::time::Instant::now() < recovery_deadline,
            "the breaker did not close within 30 s of the ledger's recovery"
        );
        stan += 1;
        match code(&c.request(&withdrawal(stan, ALICE, 1_000)).await) {
            "00" => {
                approved += 1;
                in_a_row += 1;
            }
            "91" => {
                in_a_row = 0;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("after recovery: answered {other}"),
        }
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    // The holds that timed out are voided in the background: nothing stays held for them.
    testkit::wait::wait_until("only the approved holds held", 60, || async {
        lab.balance(ALICE).await["held_minor"] == approved * 1_000
    })
    .await;
    assert_eq!(lab.balance(ALICE).await["held_minor"], approved * 1_000);
    lab.assert_books().await;
}

#[tokio::test]
async fn client_without_a_valid_certificate_is_refused() {
    let lab = Lab::start().await;
    // A certificate from another CA.
    let rogue = mtls::TestPki::generate();
    let cert = rogue.client_cert("agent-rogue", &["ATM00001"]);
    let cfg = mtls::client_config_from_pem(
        cert.cert_pem.as_bytes(),
        cert.key_pem.as_bytes(),
        lab.pki.ca_pem().as_bytes(),
    )
    .unwrap();
    let refused = match lab.client_with(cfg).await {
        Err(_) => true,
        Ok(mut c) => {
            c.send_raw(&Spec::iso87_ascii().pack(&echo(1)).unwrap())
                .await;
            c.recv_raw().await.is_none()
        }
    };
    assert!(
        refused,
        "a certificate from another CA must not get an answer"
    );
    // A valid certificate that does not cover the terminal in field 41: 58, then closed.
    let cert = lab.pki.client_cert("agent-other", &["ATM99999"]);
    let cfg = mtls::client_config_from_pem(
        cert.cert_pem.as_bytes(),
        cert.key_pem.as_bytes(),
        lab.pki.ca_pem().as_bytes(),
    )
    .unwrap();
    let mut c = lab.client_with(cfg).await.unwrap();
    let r = c.request(&withdrawal(1, ALICE, 1_000)).await;
    assert_eq!(code(&r), "58");
    assert!(
        c.recv_raw().await.is_none(),
        "connection closed after the security refusal"
    );
    assert_eq!(lab.balance(ALICE).await["held_minor"], 0);
    lab.assert_books().await;
}

#[tokio::test]
async fn malformed_frames_get_an_error_and_nothing_is_posted() {
    let lab = Lab::start().await;
    let mut c = lab.client().await;
    // A valid MTI followed by a bitmap that promises fields that are not there.
    c.send_raw(b"0100F23C000000000000").await;
    let r = Spec::iso87_ascii()
        .unpack(&c.recv_raw().await.unwrap())
        .unwrap();
    assert_eq!((r.mti().as_str(), code(&r)), ("0110", "30"));
    assert_eq!(
        code(&c.request(&echo(1)).await),
        "00",
        "connection kept after one malformed message"
    );
    // A hostile length header: the connection is closed.
    c.send_bytes_unframed(b"\xff\xff0100").await;
    assert!(c.recv_raw().await.is_none());
    assert!(lab.movements().await.is_empty());
    assert_eq!(lab.balance(ALICE).await["held_minor"], 0);
    lab.assert_books().await;
}
