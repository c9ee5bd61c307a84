//! Terminal faults that leave the host unsure what the customer got: for each mode, the NDC the
//! terminal sends (or the silence), the terminal's own later reports (last transaction status,
//! supply counters), and the truth record, which must match the notes that really left.

mod atm_sim_support;

use std::time::{Duration, Instant};

use atm_sim::{
    AtmOptions, AtmSim, Behaviour, Customer, CustomerOutcome, Kind, Outcome, Partial, Reported,
    TerminalFault, TruthRecord,
};
use atm_sim_support::{luno_for, profile, start, FakeHost, HostConn};
use protocols::ndc::{LastStatus, SolicitedStatusInfo, SupplyCounters, TerminalMessage};

const PAN: &str = "4761739001010010";

/// One withdrawal of `amount_minor` under `fault`, replied with `notes` and TSN `tsn`; returns
/// the outcome and the raw message the terminal sent after the reply.
async fn faulty_withdrawal(
    sim: &mut AtmSim,
    conn: &mut HostConn,
    fault: TerminalFault,
    amount_minor: u64,
    tsn: u16,
    notes: Vec<u32>,
) -> (CustomerOutcome, Vec<u8>) {
    let customer =
        Customer::withdrawal(PAN, amount_minor).with_behaviour(Behaviour::TerminalFault(fault));
    let (out, raw) = tokio::join!(sim.run_customer(&customer), async {
        let req = conn.expect_request().await;
        conn.reply(conn.reply_to(&req, tsn, '2', notes, "068"))
            .await;
        conn.recv_raw().await
    });
    // What the agent reads: a solicited device fault, whatever the device.
    match TerminalMessage::parse(&raw, &conn.dialect) {
        Ok(TerminalMessage::SolicitedStatus(s)) => assert!(
            matches!(s.info, SolicitedStatusInfo::DeviceFault(_)),
            "{:?}",
            s.info
        ),
        other => panic!("expected a solicited status, got {other:?}"),
    }
    (out.expect("customer"), raw)
}

/// The only truth record, checked against the customer's outcome and the counters.
async fn only_truth(sim: &AtmSim, out: &CustomerOutcome) -> TruthRecord {
    let truth = sim.truth().await;
    assert_eq!(truth.len(), 1, "{truth:?}");
    let t = truth[0].clone();
    assert!(t.notes_add_up(), "{t:?}");
    assert_eq!(t.seq, 1);
    assert_eq!((t.kind, t.tsn, t.mcn), (Kind::Withdrawal, out.tsn, out.mcn));
    assert_eq!(t.fault, out.terminal_fault);
    assert_eq!(t.notes_delivered, out.notes_dispensed);
    assert_eq!(t.dispensed_minor, out.dispensed_minor);
    let c = sim.counters();
    assert_eq!(c.dispensed_minor, t.dispensed_minor);
    for i in 0..c.notes_loaded.len() {
        assert_eq!(
            c.notes_left[i] + c.notes_dispensed[i] + c.notes_rejected[i],
            c.notes_loaded[i]
        );
    }
    assert_eq!(c.customers.terminal_faults, 1);
    t
}

fn text(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

#[tokio::test]
async fn e3_with_counts_reports_the_requested_notes_and_the_truth_keeps_what_the_customer_got() {
    let (mut sim, mut conn, _host) = start("ncr-selfserv-basic", AtmOptions::default()).await;
    let fault = TerminalFault::Unknown {
        delivered: Partial::Percent(50),
    };
    let (out, raw) = faulty_withdrawal(&mut sim, &mut conn, fault, 9000, 3, vec![0, 2, 1, 0]).await;
    assert!(
        raw.starts_with(b"22\x1c001\x1c\x1c8\x1cE300020100\x1c2"),
        "{}",
        text(&raw)
    );
    // Half of the 20s reached the customer; the other 20 and the single 50 were purged.
    assert_eq!(out.outcome, Outcome::ShortDispense);
    let t = only_truth(&sim, &out).await;
    assert_eq!(t.reported, Reported::UnknownWithCounts);
    assert_eq!(t.notes_picked, vec![0, 2, 1, 0]);
    assert_eq!(t.notes_delivered, vec![0, 1, 0, 0]);
    assert_eq!(t.notes_diverted, vec![0, 1, 1, 0]);
    assert_eq!((t.tsn, t.dispensed_minor), (Some(3), 2000));
    let counters: SupplyCounters = conn.supply_counters().await;
    assert_eq!(counters.tsn, 3);
    assert_eq!(counters.notes_in_cassettes, vec![1000, 998, 999, 1000]);
    assert_eq!(counters.notes_dispensed, vec![0, 1, 0, 0]);
    assert_eq!(counters.notes_rejected, vec![0, 1, 1, 0]);
    assert_eq!(counters.last_transaction_notes_dispensed, vec![0, 1, 0, 0]);
}

#[tokio::test]
async fn e3_without_counts_sends_the_outcome_alone_and_the_next_request_tells_the_truth() {
    let (mut sim, mut conn, _host) = start("ncr-advance-ndc", AtmOptions::default()).await;
    let fault = TerminalFault::UnknownWithoutCounts {
        delivered: Partial::Percent(100),
    };
    let (out, raw) =
        faulty_withdrawal(&mut sim, &mut conn, fault, 7000, 41, vec![0, 1, 1, 0]).await;
    assert!(
        raw.starts_with(b"22\x1c001000001\x1c\x1c\x1c8\x1cE3\x1c"),
        "{}",
        text(&raw)
    );
    // Everything reached the customer: for the customer it went well.
    assert_eq!(out.outcome, Outcome::Approved);
    let t = only_truth(&sim, &out).await;
    assert_eq!(t.reported, Reported::UnknownWithoutCounts);
    assert_eq!((t.notes_diverted, t.dispensed_minor), (vec![0; 4], 7000));
    let req = next_request_last_status(&mut sim, &mut conn).await;
    assert_eq!(req, (41, LastStatus::Error, vec![0, 1, 1, 0]));
}

#[tokio::test]
async fn e5_retracted_reports_the_presented_notes_and_counts_them_rejected() {
    let (mut sim, mut conn, _host) = start("ncr-selfserv-basic", AtmOptions::default()).await;
    let fault = TerminalFault::Retracted {
        taken: Partial::Percent(0),
    };
    let (out, raw) = faulty_withdrawal(&mut sim, &mut conn, fault, 6000, 5, vec![1, 0, 1, 0]).await;
    assert!(
        raw.starts_with(b"22\x1c001\x1c\x1c8\x1cE501000100\x1c2"),
        "{}",
        text(&raw)
    );
    assert_eq!(out.outcome, Outcome::ShortDispense);
    let t = only_truth(&sim, &out).await;
    assert_eq!(t.reported, Reported::Retracted);
    assert_eq!(t.notes_picked, vec![1, 0, 1, 0]);
    assert_eq!(t.notes_diverted, vec![1, 0, 1, 0]);
    assert_eq!(t.dispensed_minor, 0);
    let counters = conn.supply_counters().await;
    assert_eq!(counters.notes_rejected, vec![1, 0, 1, 0]);
    assert_eq!(counters.notes_dispensed, vec![0; 4]);
    assert_eq!(counters.last_transaction_notes_dispensed, vec![0; 4]);
}

#[tokio::test]
async fn a_short_dispense_with_counts_says_what_left() {
    let (mut sim, mut conn, _host) = start("ncr-selfserv-basic", AtmOptions::default()).await;
    let fault = TerminalFault::Short {
        delivered: Partial::Percent(50),
    };
    let (out, raw) = faulty_withdrawal(&mut sim, &mut conn, fault, 4000, 6, vec![0, 2, 0, 0]).await;
    assert!(
        raw.starts_with(b"22\x1c001\x1c\x1c8\x1cE100010000\x1c"),
        "{}",
        text(&raw)
    );
    assert_eq!(out.outcome, Outcome::ShortDispense);
    let t = only_truth(&sim, &out).await;
    assert_eq!(t.reported, Reported::ShortDispense);
    assert!(t.reported.told_the_host_exactly());
    assert_eq!(
        (t.notes_delivered.clone(), t.dispensed_minor),
        (vec![0, 1, 0, 0], 2000)
    );
}

#[tokio::test]
async fn a_short_dispense_without_counts_hides_the_cash_that_did_leave() {
    let (mut sim, mut conn, _host) = start("ncr-selfserv-basic", AtmOptions::default()).await;
    let fault = TerminalFault::ShortWithoutCounts {
        delivered: Partial::Percent(50),
    };
    let (out, raw) = faulty_withdrawal(&mut sim, &mut conn, fault, 8000, 7, vec![0, 4, 0, 0]).await;
    assert!(
        raw.starts_with(b"22\x1c001\x1c\x1c8\x1cE1\x1c2"),
        "{}",
        text(&raw)
    );
    assert_eq!(out.outcome, Outcome::ShortDispense);
    let t = only_truth(&sim, &out).await;
    assert_eq!(t.reported, Reported::ShortWithoutCounts);
    assert!(!t.reported.told_the_host_exactly());
    assert_eq!(t.notes_picked, vec![0, 2, 0, 0]);
    assert_eq!(
        (t.notes_delivered.clone(), t.dispensed_minor),
        (vec![0, 2, 0, 0], 4000)
    );
    assert_eq!(
        conn.supply_counters()
            .await
            .last_transaction_notes_dispensed,
        vec![0, 2, 0, 0]
    );
}

#[tokio::test]
async fn a_receipt_printer_fault_takes_the_place_of_the_ready_after_a_full_dispense() {
    let (mut sim, mut conn, _host) = start("ncr-selfserv-basic", AtmOptions::default()).await;
    let (out, raw) = faulty_withdrawal(
        &mut sim,
        &mut conn,
        TerminalFault::DeviceFault,
        5000,
        8,
        vec![0, 0, 1, 0],
    )
    .await;
    assert_eq!(text(&raw), "22\x1c001\x1c\x1c8\x1cG1\x1c2\x1c\x1c1");
    assert_eq!(out.outcome, Outcome::Approved);
    let t = only_truth(&sim, &out).await;
    assert_eq!(t.reported, Reported::OtherDeviceFault);
    assert_eq!(
        (t.notes_delivered.clone(), t.dispensed_minor),
        (vec![0, 0, 1, 0], 5000)
    );
}

#[tokio::test]
async fn no_status_keeps_the_terminal_silent_past_the_agents_status_timer() {
    let mut p = profile("ncr-selfserv-basic");
    p.timers.status_after_reply_ms = 200;
    let host = FakeHost::bind(p.clone()).await;
    let luno = luno_for(&p);
    let (sim, conn) = tokio::join!(
        AtmSim::connect(host.addr, p, &luno, AtmOptions::default()),
        async {
            let mut c = host.accept().await;
            c.start_up().await;
            c
        }
    );
    let (mut sim, mut conn) = (sim.expect("start-up"), conn);
    let customer = Customer::withdrawal(PAN, 5000)
        .with_behaviour(Behaviour::TerminalFault(TerminalFault::NoStatus));
    let started = Instant::now();
    let (out, next) = tokio::join!(
        async {
            let out = sim.run_customer(&customer).await.expect("customer");
            let held = started.elapsed();
            // The next customer's request is the first thing the host hears after the reply.
            let next = Customer::balance_inquiry(PAN);
            let _ = sim.run_customer(&next).await;
            (out, held)
        },
        async {
            let req = conn.expect_request().await;
            conn.reply(conn.reply_to(&req, 9, '2', vec![0, 0, 1, 0], "068"))
                .await;
            let next = conn.recv().await;
            if let TerminalMessage::TransactionRequest(r) = &next {
                conn.reply(conn.reply_to(r, 0, '3', vec![], "071")).await;
                conn.expect_ready_after_reply().await;
            }
            next
        }
    );
    let (out, held) = out;
    assert!(
        matches!(next, TerminalMessage::TransactionRequest(_)),
        "expected the next request, got {next:?}"
    );
    assert!(
        held >= Duration::from_millis(200 + atm_sim::NO_STATUS_GRACE_MS),
        "silent for only {held:?}"
    );
    assert_eq!(out.outcome, Outcome::Approved);
    let t = only_truth(&sim, &out).await;
    assert_eq!(t.reported, Reported::NoStatus);
    assert_eq!((t.tsn, t.dispensed_minor), (Some(9), 5000));
    let counters = conn.supply_counters().await;
    assert_eq!(
        (counters.tsn, counters.last_transaction_notes_dispensed),
        (0, vec![0; 4])
    );
}

#[tokio::test]
async fn the_no_status_hold_can_be_shortened_and_nothing_is_sent_meanwhile() {
    let options = AtmOptions {
        no_status_hold_ms: Some(0),
        ..AtmOptions::default()
    };
    let (mut sim, mut conn, _host) = start("ncr-advance-ndc", options).await;
    let customer = Customer::withdrawal(PAN, 5000)
        .with_behaviour(Behaviour::TerminalFault(TerminalFault::NoStatus));
    let (out, ()) = tokio::join!(sim.run_customer(&customer), async {
        let req = conn.expect_request().await;
        conn.reply(conn.reply_to(&req, 12, '2', vec![0, 0, 1, 0], "068"))
            .await;
    });
    let out = out.expect("customer");
    // The next request carries TSN 12 with no status sent and the note that left.
    let last = next_request_last_status(&mut sim, &mut conn).await;
    assert_eq!(last, (12, LastStatus::None, vec![0, 0, 1, 0]));
    assert_eq!(only_truth(&sim, &out).await.dispensed_minor, 5000);
}

/// Serves a balance inquiry and returns the last transaction status its `11` carried.
async fn next_request_last_status(
    sim: &mut AtmSim,
    conn: &mut HostConn,
) -> (u16, LastStatus, Vec<u32>) {
    let next = Customer::balance_inquiry(PAN);
    let (_, req) = tokio::join!(sim.run_customer(&next), async {
        let req = conn.expect_request().await;
        conn.reply(conn.reply_to(&req, 0, '3', vec![], "071")).await;
        conn.expect_ready_after_reply().await;
        req
    });
    let last = req
        .last_transaction_status
        .expect("last transaction status");
    (last.tsn, last.status, last.notes_dispensed)
}

/// Power fails at a step after the reply; the next power-up's counters and request tell the
/// truth.
async fn power_loss_after_the_reply(fault: TerminalFault, delivered: Vec<u32>, minor: u64) {
    let (mut sim, mut conn, host) = start("ncr-advance-ndc", AtmOptions::default()).await;
    let customer =
        Customer::withdrawal(PAN, 7000).with_behaviour(Behaviour::TerminalFault(fault.clone()));
    let (out, ()) = tokio::join!(sim.run_customer(&customer), async {
        let req = conn.expect_request().await;
        conn.reply(conn.reply_to(&req, 1234, '2', vec![0, 1, 1, 0], "068"))
            .await;
        conn.expect_closed().await;
    });
    let out = out.expect("customer");
    assert_eq!(
        out.outcome,
        Outcome::PowerLoss {
            notes_left: minor > 0
        }
    );
    assert!(!sim.is_connected());
    let t = only_truth(&sim, &out).await;
    assert_eq!(t.reported, Reported::PowerLoss);
    assert_eq!((t.tsn, t.fault.as_ref()), (Some(1234), Some(&fault)));
    assert_eq!(
        (t.notes_delivered.clone(), t.dispensed_minor),
        (delivered.clone(), minor)
    );
    // Power comes back: the counters at start-up carry TSN 1234 and what reached the customer.
    let (cycled, mut conn) = tokio::join!(sim.power_cycle(), async {
        let mut c = host.accept().await;
        c.start_up_without_counters().await;
        let counters = c.supply_counters().await;
        assert_eq!(counters.tsn, 1234);
        assert_eq!(counters.last_transaction_notes_dispensed, delivered);
        c
    });
    cycled.expect("power cycle");
    let last = next_request_last_status(&mut sim, &mut conn).await;
    assert_eq!(last, (1234, LastStatus::None, delivered));
}

#[tokio::test]
async fn power_loss_after_the_reply_before_a_note_moves() {
    power_loss_after_the_reply(TerminalFault::PowerBeforeDispense, vec![0; 4], 0).await;
}

#[tokio::test]
async fn power_loss_mid_dispense_delivers_part() {
    let fault = TerminalFault::PowerMidDispense {
        delivered: Partial::Notes(vec![0, 1, 0, 0]),
    };
    power_loss_after_the_reply(fault, vec![0, 1, 0, 0], 2000).await;
}

#[tokio::test]
async fn power_loss_after_the_dispense_before_the_status() {
    power_loss_after_the_reply(TerminalFault::PowerAfterDispense, vec![0, 1, 1, 0], 7000).await;
}

#[tokio::test]
async fn power_loss_before_the_request_sends_nothing() {
    let (mut sim, mut conn, host) = start("ncr-advance-ndc", AtmOptions::default()).await;
    let customer = Customer::withdrawal(PAN, 5000)
        .with_behaviour(Behaviour::TerminalFault(TerminalFault::PowerBeforeRequest));
    let (out, ()) = tokio::join!(sim.run_customer(&customer), conn.expect_closed());
    let out = out.expect("customer");
    assert_eq!(out.outcome, Outcome::PowerLoss { notes_left: false });
    assert_eq!((out.mcn, out.tsn), (None, None));
    let t = only_truth(&sim, &out).await;
    assert_eq!(
        (t.reported, t.tsn, t.mcn),
        (Reported::PowerLoss, None, None)
    );
    assert_eq!(t.dispensed_minor, 0);
    let (cycled, mut conn) = tokio::join!(sim.power_cycle(), async {
        let mut c = host.accept().await;
        c.start_up().await;
        c
    });
    cycled.expect("power cycle");
    // Nothing was ever processed: the last transaction is still the fresh terminal's.
    let last = next_request_last_status(&mut sim, &mut conn).await;
    assert_eq!(last, (0, LastStatus::None, vec![0; 4]));
}

#[tokio::test]
async fn power_loss_awaiting_the_reply_sends_the_request_then_drops() {
    let (mut sim, mut conn, host) = start("ncr-selfserv-basic", AtmOptions::default()).await;
    let customer = Customer::withdrawal(PAN, 5000)
        .with_behaviour(Behaviour::TerminalFault(TerminalFault::PowerAwaitingReply));
    let (out, amount) = tokio::join!(sim.run_customer(&customer), async {
        let req = conn.expect_request().await;
        conn.expect_closed().await;
        // The host's reply goes nowhere.
        let _ = conn
            .try_send(protocols::ndc::HostMessage::TransactionReply(
                conn.reply_to(&req, 77, '2', vec![0, 0, 1, 0], "068"),
            ))
            .await;
        req.amount
    });
    assert_eq!(amount, Some(5000));
    let out = out.expect("customer");
    assert_eq!(out.outcome, Outcome::PowerLoss { notes_left: false });
    assert!(out.mcn.is_some());
    let t = only_truth(&sim, &out).await;
    assert_eq!(
        (t.reported, t.tsn, t.dispensed_minor),
        (Reported::PowerLoss, None, 0)
    );
    // The counters at the next power-up still name the last reply processed before (none).
    let (cycled, _conn) = tokio::join!(sim.power_cycle(), async {
        let mut c = host.accept().await;
        c.start_up_without_counters().await;
        let counters = c.supply_counters().await;
        assert_eq!((counters.tsn, counters.transaction_count), (0, 0));
        c
    });
    cycled.expect("power cycle");
    assert_eq!(atm_sim::truth::dispensed_for_tsn(&sim.truth().await, 77), 0);
}

#[tokio::test]
async fn a_declined_withdrawal_is_not_struck_by_a_dispense_fault() {
    let (mut sim, mut conn, _host) = start("ncr-selfserv-basic", AtmOptions::default()).await;
    let customer = Customer::withdrawal(PAN, 5000).with_behaviour(Behaviour::TerminalFault(
        TerminalFault::Unknown {
            delivered: Partial::Percent(100),
        },
    ));
    let (out, ()) = tokio::join!(sim.run_customer(&customer), async {
        let req = conn.expect_request().await;
        conn.reply(conn.reply_to(&req, 0, '3', vec![], "072")).await;
        conn.expect_ready_after_reply().await;
    });
    let out = out.expect("customer");
    assert!(matches!(out.outcome, Outcome::Declined { .. }), "{out:?}");
    assert_eq!(out.terminal_fault, None);
    let truth = sim.truth().await;
    assert_eq!(truth.len(), 1);
    assert_eq!(
        (truth[0].reported, truth[0].fault.clone()),
        (Reported::Ready, None)
    );
    assert_eq!(sim.counters().customers.terminal_faults, 0);
}
