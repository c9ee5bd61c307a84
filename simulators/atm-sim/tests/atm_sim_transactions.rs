//! Customers: the `11` the terminal builds, the `4` it accepts or rejects, and what it reports.

mod atm_sim_support;

use atm_sim::{AtmOptions, Customer, DeclineReason, Kind, Outcome};
use atm_sim_support::start;
use protocols::ndc::{LastStatus, SolicitedStatusInfo};

const PAN: &str = "4761739001010010";

#[tokio::test]
async fn approved_withdrawal_dispenses_the_notes_and_updates_the_counters() {
    let (mut sim, mut conn, _host) = start("ncr-selfserv-basic", AtmOptions::default()).await;
    let customer = Customer::withdrawal(PAN, 8000);
    let (out, req) = tokio::join!(sim.run_customer(&customer), async {
        let req = conn.expect_request().await;
        let reply = conn.reply_to(&req, 17, '2', vec![1, 1, 1, 0], "068");
        conn.reply(reply).await;
        conn.expect_ready_after_reply().await;
        req
    });
    // The request, as the agent reads it.
    assert_eq!(req.mcn, '1');
    assert!(req.top_of_receipt);
    assert_eq!(req.card().expect("track 2").pan().expose(), PAN);
    assert_eq!(req.operation_code, "A       ");
    assert_eq!(req.amount, Some(8000));
    assert!(
        req.pin_buffer_a
            .as_ref()
            .is_none_or(|p| p.expose().is_empty()),
        "no PIN key loaded: PIN buffer A goes empty"
    );
    assert_eq!(req.last_transaction_status, None, "basic dialect has none");
    // The outcome and the counters.
    let out = out.expect("customer");
    assert_eq!(out.outcome, Outcome::Approved);
    assert_eq!(out.kind, Kind::Withdrawal);
    assert_eq!(out.pan_masked, "476173******0010");
    assert_eq!((out.requested_minor, out.dispensed_minor), (8000, 8000));
    assert_eq!(out.notes_dispensed, vec![1, 1, 1, 0]);
    assert_eq!(out.tsn, Some(17));
    let c = sim.counters();
    assert_eq!(c.notes_left, vec![999, 999, 999, 1000]);
    assert_eq!(c.notes_dispensed, vec![1, 1, 1, 0]);
    assert_eq!(c.dispensed_minor, 8000);
    assert_eq!(c.customers.approved, 1);
    let sc = conn.supply_counters().await;
    assert_eq!(sc.tsn, 17);
    assert_eq!(sc.transaction_count, 1);
    assert_eq!(sc.notes_in_cassettes, vec![999, 999, 999, 1000]);
    assert_eq!(sc.last_transaction_notes_dispensed, vec![1, 1, 1, 0]);
}

#[tokio::test]
async fn deposit_inquiry_and_declines_are_read_from_the_reply() {
    let (mut sim, mut conn, _host) = start("ncr-selfserv-basic", AtmOptions::default()).await;
    let p = conn.profile.clone();
    let cases = [
        (Customer::deposit(PAN, 5000), '1', p.screens.deposit.clone()),
        (
            Customer::balance_inquiry(PAN),
            '3',
            p.screens.balance.clone(),
        ),
        (
            Customer::withdrawal(PAN, 90000),
            '5',
            p.screens.insufficient_funds.clone(),
        ),
        (
            Customer::withdrawal(PAN, 2000),
            '3',
            p.screens.host_unavailable.clone(),
        ),
        (
            Customer::withdrawal(PAN, 2000),
            '9',
            p.screens.wrong_pin.clone(),
        ),
    ];
    let mut outcomes = Vec::new();
    for (i, (customer, function, screen)) in cases.iter().enumerate() {
        let (out, req) = tokio::join!(sim.run_customer(customer), async {
            let req = conn.expect_request().await;
            let reply = conn.reply_to(&req, 100 + i as u16, *function, vec![], screen);
            conn.reply(reply).await;
            conn.expect_ready_after_reply().await;
            req
        });
        let expected_opcode = p.operation_codes.for_kind(customer.kind.transaction_kind());
        assert_eq!(req.operation_code, expected_opcode);
        outcomes.push((req.amount, out.expect("customer")));
    }
    assert_eq!(outcomes[0].0, Some(5000));
    assert_eq!(outcomes[0].1.outcome, Outcome::Approved);
    assert_eq!(outcomes[0].1.deposited_minor, 5000);
    assert_eq!(outcomes[1].0, Some(0), "an inquiry sends a zero amount");
    assert_eq!(outcomes[1].1.outcome, Outcome::Approved);
    assert!(matches!(
        outcomes[2].1.outcome,
        Outcome::Declined {
            reason: DeclineReason::InsufficientFunds,
            ..
        }
    ));
    assert!(matches!(
        outcomes[3].1.outcome,
        Outcome::HostUnavailable { .. }
    ));
    assert!(matches!(
        outcomes[4].1.outcome,
        Outcome::Declined {
            reason: DeclineReason::WrongPin,
            ..
        }
    ));
    let mcns: String = outcomes.iter().filter_map(|(_, o)| o.mcn).collect();
    assert_eq!(mcns, "12345", "the MCN advances with every request");
    let c = sim.counters();
    assert_eq!(
        (c.deposited_minor, c.deposits, c.dispensed_minor),
        (5000, 1, 0)
    );
    assert_eq!(
        (
            c.customers.approved,
            c.customers.declined,
            c.customers.host_unavailable
        ),
        (2, 2, 1)
    );
}

#[tokio::test]
async fn mcn_mismatch_is_rejected_b09_and_reported_in_the_next_last_status() {
    let (mut sim, mut conn, _host) = start("ncr-advance-ndc", AtmOptions::default()).await;
    let customer = Customer::withdrawal(PAN, 2000);
    let (out, ()) = tokio::join!(sim.run_customer(&customer), async {
        let req = conn.expect_request().await;
        let mut reply = conn.reply_to(&req, 41, '2', vec![0, 1, 0, 0], "068");
        reply.mcn = '9';
        conn.reply(reply).await;
        assert_eq!(
            conn.expect_solicited().await,
            SolicitedStatusInfo::SpecificReject {
                reason: "B09".into()
            }
        );
    });
    let out = out.expect("customer");
    assert_eq!(
        out.outcome,
        Outcome::ReplyRejected {
            reason: "B09".into()
        }
    );
    assert_eq!(out.dispensed_minor, 0);
    assert_eq!(sim.counters().notes_dispensed, vec![0; 4]);
    // The next request says the last reply (TSN 41) was rejected.
    let customer = Customer::balance_inquiry(PAN);
    let (_, req) = tokio::join!(sim.run_customer(&customer), async {
        let req = conn.expect_request().await;
        let reply = conn.reply_to(&req, 42, '3', vec![], "071");
        conn.reply(reply).await;
        conn.expect_ready_after_reply().await;
        req
    });
    let last = req
        .last_transaction_status
        .expect("last transaction status");
    assert_eq!(
        (last.tsn, last.status, last.notes_dispensed),
        (41, LastStatus::ReplyRejected, vec![0; 4])
    );
}

#[tokio::test]
async fn mcn_mismatch_is_a_plain_command_reject_without_reject_reasons() {
    let (mut sim, mut conn, _host) = start("ncr-selfserv-basic", AtmOptions::default()).await;
    let customer = Customer::withdrawal(PAN, 2000);
    let (out, ()) = tokio::join!(sim.run_customer(&customer), async {
        let req = conn.expect_request().await;
        let mut reply = conn.reply_to(&req, 1, '2', vec![0, 1, 0, 0], "068");
        reply.mcn = '?';
        conn.reply(reply).await;
        assert_eq!(
            conn.expect_solicited().await,
            SolicitedStatusInfo::CommandReject
        );
    });
    assert!(matches!(
        out.expect("customer").outcome,
        Outcome::ReplyRejected { .. }
    ));
}

#[tokio::test]
async fn a_reply_after_the_host_timer_is_rejected_and_the_customer_timed_out() {
    let options = AtmOptions {
        host_reply_timeout_ms: Some(100),
        ..AtmOptions::default()
    };
    let (mut sim, mut conn, _host) = start("ncr-advance-ndc", options).await;
    let customer = Customer::withdrawal(PAN, 2000);
    let (out, req) = tokio::join!(sim.run_customer(&customer), async {
        conn.expect_request().await
    });
    let out = out.expect("customer");
    assert_eq!(out.outcome, Outcome::Timeout);
    let late = conn.reply_to(&req, 77, '2', vec![0, 1, 0, 0], "068");
    conn.reply(late).await;
    assert_eq!(
        conn.expect_solicited().await,
        SolicitedStatusInfo::SpecificReject {
            reason: "C01".into()
        }
    );
    assert_eq!(sim.counters().dispensed_minor, 0);
    assert_eq!(sim.counters().customers.timeout, 1);
}

#[tokio::test]
async fn a_dispense_for_a_deposit_or_from_a_missing_cassette_is_rejected() {
    let (mut sim, mut conn, _host) = start("ncr-advance-ndc", AtmOptions::default()).await;
    let customer = Customer::deposit(PAN, 2000);
    let (out, ()) = tokio::join!(sim.run_customer(&customer), async {
        let req = conn.expect_request().await;
        conn.reply(conn.reply_to(&req, 5, '2', vec![0, 1, 0, 0], "068"))
            .await;
        assert_eq!(
            conn.expect_solicited().await,
            SolicitedStatusInfo::SpecificReject {
                reason: "B06".into()
            }
        );
    });
    assert!(matches!(
        out.expect("customer").outcome,
        Outcome::ReplyRejected { .. }
    ));
    let customer = Customer::withdrawal(PAN, 2000);
    let (out, ()) = tokio::join!(sim.run_customer(&customer), async {
        let req = conn.expect_request().await;
        conn.reply(conn.reply_to(&req, 6, '2', vec![], "068")).await;
        assert_eq!(
            conn.expect_solicited().await,
            SolicitedStatusInfo::SpecificReject {
                reason: "B11".into()
            }
        );
    });
    assert!(matches!(
        out.expect("customer").outcome,
        Outcome::ReplyRejected { .. }
    ));
}
