//! The agent's defences on its own side (security issue 14): card numbers at rest in its data
//! directory, terminals bound to the addresses they connect from, and terminals whose PIN blocks
//! keep failing to decode taken out of service.
//!
//! Everything runs end to end (simulated or raw NDC terminals → agent → real switch → real
//! ledger); background work is awaited by polling with a deadline, never by a fixed sleep.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use atm_agent::control_api::Action;
use atm_agent::domain::terminal::TerminalState;
use atm_sim::{Customer, DeclineReason, Outcome, ServiceMode};
use common::*;
use futures::{SinkExt, StreamExt};
use host_switch::ports::Journal;
use protocols::framing::FrameCodec;
use testkit::evidence::{bytes_under, holds, CapturedLogs};

#[tokio::test]
async fn an_offline_deposits_card_number_is_sealed_on_disk_and_advised_after_a_restart() {
    let mut lab = Lab::start_with_pins(&BASIC_PAIR).await;
    lab.load_master(0).await;
    let mut atm = lab.pin_atm(0, lab.master_key(0)).await;
    lab.relay.cut();
    lab.wait_uplink(false).await;
    let out = atm
        .run_customer(&Customer::deposit(BOB, 7_000).with_pin(lab.pin_of(BOB)))
        .await
        .unwrap();
    assert_eq!(out.outcome, Outcome::Approved, "taken offline: {out:?}");
    let l = &lab;
    l.wait_until("the deposit's advice queued", 10, || async move {
        l.agent()
            .services
            .queue
            .list()
            .iter()
            .any(|e| !e.payload["card_ref"].is_null())
    })
    .await;

    let raw = bytes_under(&lab.agent_dir());
    assert!(!raw.is_empty());
    assert!(
        !holds(&raw, BOB),
        "the card number is in the agent's data directory in clear"
    );

    // After a restart the vault still opens: the advice carries the right card number, so the
    // right account is credited, once.
    lab.agent.take().unwrap().shutdown().await;
    lab.relay.restore();
    lab.start_agent().await;
    lab.eventually_balance(BOB, ((START + 7_000) as i64, 0))
        .await;
    assert_eq!(lab.balance(ALICE).await, (START as i64, 0));
    lab.assert_books().await;
}

/// Routes this thread's warn-and-above events to `logs` until the guard drops (a `tokio::test`
/// runs the agent's tasks on this thread).
fn capture_warnings(logs: &CapturedLogs) -> tracing::subscriber::DefaultGuard {
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_default(subscriber)
}

/// Connects to the agent from `from` and powers up as `luno` (configuration id `0022`, the
/// profile's, so no download), answering the agent's question for the configuration id. `true`
/// when the agent went on with the start-up (a command other than that question), `false` when
/// it closed the connection.
async fn claim(agent: SocketAddr, from: Ipv4Addr, luno: &str) -> bool {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    let tcp = socket.connect(agent).await.unwrap();
    let mut framed = tokio_util::codec::Framed::new(tcp, FrameCodec::default());
    framed
        .send(bytes::Bytes::from(format!("12\x1c{luno}\x1c\x1cB0022")))
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), framed.next()).await {
            // Identified by its address, the connection is asked for its configuration id
            // before the agent reads the power-up.
            Ok(Some(Ok(f))) if f.payload.ends_with(b"\x1c3") => framed
                .send(bytes::Bytes::from(format!(
                    "22\x1c{luno}\x1c\x1cF\x1c60022"
                )))
                .await
                .unwrap_or_default(),
            Ok(Some(Ok(_))) => return true,
            Ok(None) | Ok(Some(Err(_))) => return false,
            Err(_) => panic!("the agent neither answered nor closed within 10 s"),
        }
    }
}

#[tokio::test]
async fn a_luno_claimed_from_an_address_it_is_not_bound_to_is_refused() {
    // 127.0.0.0/8 is loopback on Linux: a socket bound to 127.0.0.2 reaches the agent from there.
    let terminals = [
        BASIC_PAIR[0],
        TerminalSpec {
            address: Ipv4Addr::new(127, 0, 0, 2),
            ..BASIC_PAIR[1]
        },
    ];
    let lab = Lab::start_with(&terminals).await;
    let agent = lab.agent().ndc_addr;
    let log = CapturedLogs::default();
    let guard = capture_warnings(&log);

    assert!(
        !claim(agent, Ipv4Addr::LOCALHOST, "002").await,
        "ATM00002 is bound to 127.0.0.2: a connection from 127.0.0.1 must not speak for it"
    );
    assert!(
        !claim(agent, Ipv4Addr::new(127, 0, 0, 2), "001").await,
        "ATM00001 is bound to 127.0.0.1"
    );
    let view = lab.agent().services.registry.view("ATM00002").unwrap();
    assert_eq!(view.state, TerminalState::Disconnected, "{view:?}");
    let refused: Vec<String> = log
        .lines_with("")
        .into_iter()
        .filter(|l| l.contains("security") && l.contains("not bound to"))
        .collect();
    assert_eq!(refused.len(), 2, "{refused:#?}");
    assert!(
        refused[0].contains("ATM00002") && refused[0].contains("127.0.0.1:"),
        "the line names the terminal and the peer: {}",
        refused[0]
    );

    // From its own address the terminal is served.
    assert!(claim(agent, Ipv4Addr::new(127, 0, 0, 2), "002").await);
    drop(guard);
    let atm = lab.atm("001").await;
    lab.wait_until("ATM00001 in service", 10, || async {
        lab.agent()
            .services
            .registry
            .view("ATM00001")
            .unwrap()
            .state
            == TerminalState::InService
    })
    .await;
    drop(atm);
}

#[tokio::test]
async fn repeated_pin_blocks_that_do_not_decode_take_the_terminal_out_of_service() {
    let mut lab = Lab::start_with_pins(&BASIC_PAIR).await;
    held_after_pin_format_errors(&lab).await;

    // The hold is durable: after a restart of the agent, the terminal powers up and stays out.
    lab.agent.take().unwrap().shutdown().await;
    lab.start_agent().await;
    let lab = &lab;
    assert!(
        lab.terminal_status("ATM00001").await["out_of_service_reason"].is_string(),
        "the hold survived the restart"
    );
    let connecting = lab.spawn_pin_atm(0, Lab::foreign_master_key());
    lab.wait_until(
        "the terminal back, held out of service",
        10,
        || async move {
            let s = lab.terminal_status("ATM00001").await;
            s["state"] == "out_of_service" && !s["cassettes"].as_array().unwrap().is_empty()
        },
    )
    .await;
    assert!(!connecting.is_finished(), "the terminal went in service");

    // The operator puts it back.
    lab.agent_request(AgentRequest::Terminal {
        terminal: "ATM00001".into(),
        action: Action::InService,
    })
    .await
    .unwrap();
    let atm = tokio::time::timeout(Duration::from_secs(10), connecting)
        .await
        .expect("the terminal in service after the operator's command")
        .unwrap()
        .unwrap();
    assert!(atm.wait_for_mode(ServiceMode::InService, 10_000).await);
    lab.wait_until("the hold released", 10, || async move {
        let s = lab.terminal_status("ATM00001").await;
        s["state"] == "in_service" && s["out_of_service_reason"].is_null()
    })
    .await;
    lab.assert_books().await;
}

/// Enters the first terminal's master key and connects it with a PIN pad holding another one;
/// its PIN blocks fail to decode until the agent holds it out of service.
async fn held_after_pin_format_errors(lab: &Lab) {
    lab.load_master(0).await;
    // A basic-dialect PIN pad answers a key load without a check value: installed with a master
    // key the custodians did not enter, it goes in service with another PIN key than the agent's,
    // and every PIN block it sends fails to decode (what a PAN-substitution attack looks like).
    let mut atm = lab.pin_atm(0, Lab::foreign_master_key()).await;
    lab.wait_until("the terminal in service", 10, || async move {
        lab.terminal_status("ATM00001").await["state"] == "in_service"
    })
    .await;
    let limit = atm_agent::app::pin_keys::PIN_FORMAT_ERRORS_MAX;
    for i in 1..limit {
        let out = atm
            .run_customer(&Customer::withdrawal(ALICE, 5_000).with_pin(lab.pin_of(ALICE)))
            .await
            .unwrap();
        assert_eq!(out.outcome.decline_reason(), Some(DeclineReason::Declined));
        let status = lab.terminal_status("ATM00001").await;
        assert_eq!(status["state"], "in_service", "after {i} errors: {status}");
    }
    let out = atm
        .run_customer(&Customer::withdrawal(ALICE, 5_000).with_pin(lab.pin_of(ALICE)))
        .await
        .unwrap();
    assert_eq!(out.outcome.decline_reason(), Some(DeclineReason::Declined));
    assert!(
        atm.wait_for_mode(ServiceMode::OutOfService, 10_000).await,
        "the agent took the terminal out of service"
    );
    lab.wait_until("the agent to report why", 10, || async move {
        let s = lab.terminal_status("ATM00001").await;
        s["state"] == "out_of_service"
            && s["out_of_service_reason"]
                .as_str()
                .is_some_and(|r| r.contains("PIN blocks that did not decode"))
    })
    .await;
    assert!(
        lab.switch.switch.journal().txns().unwrap().is_empty(),
        "no PIN block reached the switch"
    );
    drop(atm);
}
