//! Faults at the cash slot: short dispense (`8 E1`), cancel (`8 E2`), power loss (no status, the
//! connection drops, the next `11` tells), and a cassette going low (`12 … E`).

mod atm_sim_support;

use atm_sim::{AtmOptions, Behaviour, Customer, Outcome, Partial};
use atm_sim_support::start;
use protocols::ndc::{
    CashHandlerStatus, DeviceState, DispenseOutcome, LastStatus, SolicitedStatusInfo,
};

const PAN: &str = "4761739001010010";

fn cash_fault(info: SolicitedStatusInfo) -> (CashHandlerStatus, Option<String>) {
    match info {
        SolicitedStatusInfo::DeviceFault(dev) => match dev.state {
            DeviceState::CashHandler(c) => (c, dev.supplies),
            other => panic!("expected a cash handler status, got {other:?}"),
        },
        other => panic!("expected a device fault, got {other:?}"),
    }
}

#[tokio::test]
async fn partial_dispense_reports_e1_with_the_notes_that_left() {
    let (mut sim, mut conn, _host) = start("ncr-selfserv-basic", AtmOptions::default()).await;
    let customer = Customer::withdrawal(PAN, 9000)
        .with_behaviour(Behaviour::PartialDispense(Partial::Notes(vec![0, 1, 0, 0])));
    let (out, (fault, raw)) = tokio::join!(sim.run_customer(&customer), async {
        let req = conn.expect_request().await;
        conn.reply(conn.reply_to(&req, 3, '2', vec![0, 2, 1, 0], "068"))
            .await;
        let raw = conn.recv_raw().await;
        let msg = protocols::ndc::TerminalMessage::parse(&raw, &conn.dialect).expect("parses");
        let protocols::ndc::TerminalMessage::SolicitedStatus(s) = msg else {
            panic!("expected a solicited status")
        };
        (cash_fault(s.info), raw)
    });
    assert!(
        raw.starts_with(b"22\x1c001\x1c\x1c8\x1cE100010000\x1c"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    assert_eq!(fault.0.outcome, DispenseOutcome::ShortDispense);
    assert_eq!(fault.0.notes_dispensed, vec![0, 1, 0, 0]);
    assert_eq!(fault.1.as_deref(), Some("11111"));
    let out = out.expect("customer");
    assert_eq!(out.outcome, Outcome::ShortDispense);
    assert_eq!((out.requested_minor, out.dispensed_minor), (9000, 2000));
    assert_eq!(out.notes_dispensed, vec![0, 1, 0, 0]);
    let c = sim.counters();
    assert_eq!(c.notes_left, vec![1000, 999, 1000, 1000]);
    assert_eq!((c.dispensed_minor, c.customers.short_dispense), (2000, 1));
    assert_eq!(
        conn.supply_counters()
            .await
            .last_transaction_notes_dispensed,
        vec![0, 1, 0, 0]
    );
}

#[tokio::test]
async fn cancel_at_the_cash_slot_reports_e2_with_zero_notes() {
    let (mut sim, mut conn, _host) = start("ncr-advance-ndc", AtmOptions::default()).await;
    let customer = Customer::withdrawal(PAN, 5000).with_behaviour(Behaviour::CancelAtCashSlot);
    let (out, fault) = tokio::join!(sim.run_customer(&customer), async {
        let req = conn.expect_request().await;
        conn.reply(conn.reply_to(&req, 8, '8', vec![0, 0, 1, 0], "068"))
            .await;
        cash_fault(conn.expect_solicited().await)
    });
    assert_eq!(fault.0.outcome, DispenseOutcome::NoneDispensed);
    assert_eq!(fault.0.notes_dispensed, vec![0; 4]);
    let out = out.expect("customer");
    assert_eq!(out.outcome, Outcome::Cancelled);
    assert_eq!(out.dispensed_minor, 0);
    assert_eq!(sim.counters().notes_left, vec![1000; 4]);
    // The next request: TSN 8 ended in error, nothing dispensed.
    let next = Customer::balance_inquiry(PAN);
    let (_, req) = tokio::join!(sim.run_customer(&next), async {
        let req = conn.expect_request().await;
        conn.reply(conn.reply_to(&req, 9, '3', vec![], "071")).await;
        conn.expect_ready_after_reply().await;
        req
    });
    let last = req
        .last_transaction_status
        .expect("last transaction status");
    assert_eq!(
        (last.tsn, last.status, last.notes_dispensed),
        (8, LastStatus::Error, vec![0; 4])
    );
}

async fn power_loss(notes_leave: bool) {
    let (mut sim, mut conn, host) = start("ncr-advance-ndc", AtmOptions::default()).await;
    let customer = Customer::withdrawal(PAN, 7000)
        .with_behaviour(Behaviour::PowerLossDuringDispense { notes_leave });
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
            notes_left: notes_leave
        }
    );
    assert!(!sim.is_connected());
    let (expected_notes, expected_minor) = if notes_leave {
        (vec![0, 1, 1, 0], 7000)
    } else {
        (vec![0; 4], 0)
    };
    assert_eq!(out.dispensed_minor, expected_minor);
    assert_eq!(sim.counters().dispensed_minor, expected_minor);
    // Power comes back: power-up with the downloaded config id, no new download.
    let (cycled, mut conn) = tokio::join!(sim.power_cycle(), async {
        let mut c = host.accept().await;
        assert_eq!(c.start_up().await, "0031");
        c
    });
    cycled.expect("power cycle");
    let next = Customer::balance_inquiry(PAN);
    let (_, req) = tokio::join!(sim.run_customer(&next), async {
        let req = conn.expect_request().await;
        conn.reply(conn.reply_to(&req, 1235, '3', vec![], "071"))
            .await;
        conn.expect_ready_after_reply().await;
        req
    });
    let last = req
        .last_transaction_status
        .expect("last transaction status");
    assert_eq!(last.tsn, 1234);
    assert_eq!(last.status, LastStatus::None, "no status was sent");
    assert_eq!(last.notes_dispensed, expected_notes);
}

#[tokio::test]
async fn power_loss_with_notes_out_drops_the_connection_and_the_next_request_tells() {
    power_loss(true).await;
}

#[tokio::test]
async fn power_loss_before_the_notes_left_reports_zero_notes() {
    power_loss(false).await;
}

#[tokio::test]
async fn a_cassette_going_low_sends_an_unsolicited_supplies_status_after_the_ready() {
    let options = AtmOptions {
        initial_notes: Some(vec![500, 101, 500, 500]),
        ..AtmOptions::default()
    };
    let (mut sim, mut conn, _host) = start("ncr-selfserv-basic", options).await;
    let customer = Customer::withdrawal(PAN, 4000);
    let (out, status) = tokio::join!(sim.run_customer(&customer), async {
        let req = conn.expect_request().await;
        conn.reply(conn.reply_to(&req, 2, '2', vec![0, 2, 0, 0], "068"))
            .await;
        conn.expect_ready_after_reply().await;
        conn.expect_unsolicited().await
    });
    assert_eq!(out.expect("customer").outcome, Outcome::Approved);
    let DeviceState::CashHandler(c) = &status.device.state else {
        panic!("expected a cash handler status, got {status:?}")
    };
    assert_eq!(c.outcome, DispenseOutcome::Success);
    assert_eq!(status.device.supplies.as_deref(), Some("11211"));
    // Another dispense from the already-low cassette does not repeat the report.
    let customer = Customer::withdrawal(PAN, 1000);
    let (_, ()) = tokio::join!(sim.run_customer(&customer), async {
        let req = conn.expect_request().await;
        conn.reply(conn.reply_to(&req, 3, '2', vec![1, 0, 0, 0], "068"))
            .await;
        conn.expect_ready_after_reply().await;
        conn.expect_silence(100).await;
    });
}
