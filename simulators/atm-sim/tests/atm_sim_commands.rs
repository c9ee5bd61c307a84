//! Host commands outside a customer: out of service, rejects, supervisor mode.

mod atm_sim_support;

use atm_sim::{AtmOptions, Customer, Outcome, ServiceMode};
use atm_sim_support::start;
use protocols::ndc::{Command, DataCommandData, DeviceState, SolicitedStatusInfo};

const PAN: &str = "4761739001010010";

#[tokio::test]
async fn out_of_service_turns_customers_away_until_back_in_service() {
    let (mut sim, mut conn, _host) = start("ncr-selfserv-basic", AtmOptions::default()).await;
    let ack = conn
        .command(Command::GoOutOfService { modifier: None })
        .await;
    assert_eq!(ack, SolicitedStatusInfo::Ready);
    assert_eq!(sim.status().mode, ServiceMode::OutOfService);
    let customer = Customer::withdrawal(PAN, 2000);
    let out = sim.run_customer(&customer).await.expect("customer");
    assert_eq!(out.outcome, Outcome::OutOfService);
    assert_eq!(out.mcn, None, "no request was sent");
    conn.expect_silence(50).await;
    assert_eq!(sim.counters().customers.out_of_service, 1);
    assert_eq!(
        conn.command(Command::GoInService).await,
        SolicitedStatusInfo::Ready
    );
    let (out, ()) = tokio::join!(sim.run_customer(&customer), async {
        let req = conn.expect_request().await;
        conn.reply(conn.reply_to(&req, 1, '2', vec![0, 1, 0, 0], "068"))
            .await;
        conn.expect_ready_after_reply().await;
    });
    assert_eq!(out.expect("customer").outcome, Outcome::Approved);
}

#[tokio::test]
async fn a_waiting_customer_is_served_once_the_terminal_is_back_in_service() {
    let options = AtmOptions {
        wait_in_service_ms: 5_000,
        ..AtmOptions::default()
    };
    let (mut sim, mut conn, _host) = start("ncr-selfserv-basic", options).await;
    conn.command(Command::GoOutOfService { modifier: None })
        .await;
    let customer = Customer::balance_inquiry(PAN);
    let (out, ()) = tokio::join!(sim.run_customer(&customer), async {
        conn.expect_silence(50).await;
        conn.command(Command::GoInService).await;
        let req = conn.expect_request().await;
        conn.reply(conn.reply_to(&req, 1, '3', vec![], "071")).await;
        conn.expect_ready_after_reply().await;
    });
    assert_eq!(out.expect("customer").outcome, Outcome::Approved);
}

#[tokio::test]
async fn unparseable_or_unexpected_host_messages_get_a_command_reject() {
    let (sim, mut conn, _host) = start("ncr-selfserv-basic", AtmOptions::default()).await;
    conn.send_raw(b"9\x1cnot an NDC message").await;
    assert_eq!(
        conn.expect_solicited().await,
        SolicitedStatusInfo::CommandReject
    );
    conn.send_raw(b"4\x1c001\x1c\x1c12").await;
    assert_eq!(
        conn.expect_solicited().await,
        SolicitedStatusInfo::CommandReject
    );
    // Customisation data while in service.
    let msg = conn.data_command(DataCommandData::ConfigurationId("0099".into()));
    conn.send(msg).await;
    assert_eq!(
        conn.expect_solicited().await,
        SolicitedStatusInfo::CommandReject
    );
    assert_eq!(sim.status().config_id, "0022");
    assert_eq!(sim.status().commands_rejected, 3);
}

#[tokio::test]
async fn rejects_carry_reasons_in_dialects_that_have_them() {
    let (_sim, mut conn, _host) = start("ncr-advance-ndc", AtmOptions::default()).await;
    conn.send_raw(b"1\x1c001000001\x1c\x1cZ").await;
    assert_eq!(
        conn.expect_solicited().await,
        SolicitedStatusInfo::SpecificReject {
            reason: "B04".into()
        }
    );
    let msg = conn.data_command(DataCommandData::ConfigurationId("0099".into()));
    conn.send(msg).await;
    assert_eq!(
        conn.expect_solicited().await,
        SolicitedStatusInfo::SpecificReject {
            reason: "C03".into()
        }
    );
}

#[tokio::test]
async fn a_transaction_reply_nobody_asked_for_is_rejected_c01() {
    let (_sim, mut conn, _host) = start("ncr-advance-ndc", AtmOptions::default()).await;
    let req = protocols::ndc::TransactionRequest {
        luno: conn.luno.clone(),
        tvn: None,
        top_of_receipt: true,
        mcn: '1',
        track2: None,
        track3: None,
        operation_code: String::new(),
        amount: None,
        pin_buffer_a: None,
        buffer_b: String::new(),
        buffer_c: String::new(),
        track1: None,
        last_transaction_status: None,
        buffers: Vec::new(),
        mac: None,
        trailing_fs: 0,
    };
    conn.reply(conn.reply_to(&req, 9, '2', vec![0, 1, 0, 0], "068"))
        .await;
    assert_eq!(
        conn.expect_solicited().await,
        SolicitedStatusInfo::SpecificReject {
            reason: "C01".into()
        }
    );
}

#[tokio::test]
async fn supervisor_mode_is_reported_and_turns_customers_away() {
    let (mut sim, mut conn, _host) = start("ncr-selfserv-basic", AtmOptions::default()).await;
    sim.enter_supervisor().await.expect("enter supervisor");
    let s = conn.expect_unsolicited().await;
    assert_eq!(s.device.state, DeviceState::Supervisor { entered: true });
    let customer = Customer::withdrawal(PAN, 2000);
    assert_eq!(
        sim.run_customer(&customer).await.expect("customer").outcome,
        Outcome::OutOfService
    );
    sim.exit_supervisor().await.expect("exit supervisor");
    let s = conn.expect_unsolicited().await;
    assert_eq!(s.device.state, DeviceState::Supervisor { entered: false });
    assert!(sim.status().mode == ServiceMode::InService && !sim.status().supervisor);
}
