//! Start-up: power-up with the config id the terminal holds, the agent's download, go in service.

mod atm_sim_support;

use atm_sim::{AtmError, AtmOptions, AtmSim, ServiceMode};
use atm_sim_support::{luno_for, profile, start, FakeHost};
use protocols::ndc::{Command, SolicitedStatusInfo, TerminalState};

#[tokio::test]
async fn fresh_terminal_reports_0000_takes_the_download_and_goes_in_service() {
    let p = profile("ncr-selfserv-basic");
    let host = FakeHost::bind(p.clone()).await;
    let (sim, mut conn) = tokio::join!(
        AtmSim::connect(host.addr, p.clone(), "001", AtmOptions::default()),
        async {
            let mut c = host.accept().await;
            assert_eq!(c.start_up().await, "0000");
            c
        }
    );
    let sim = sim.expect("start-up");
    let status = sim.status();
    assert!(status.connected);
    assert_eq!(status.mode, ServiceMode::InService);
    assert_eq!(status.config_id, p.customization.config_id);
    assert_eq!(status.screens, p.customization.screens.len());
    assert_eq!(status.states, p.customization.states.len());
    assert_eq!(status.fits, p.customization.fits.len());
    assert_eq!(status.options, p.customization.options.len());
    let stored = sim.stored_config().await;
    assert_eq!(stored.screens["068"], "PLEASE TAKE YOUR CASH");
    assert_eq!(
        conn.command(Command::SendConfigurationId).await,
        SolicitedStatusInfo::TerminalState(TerminalState::ConfigurationId("0022".into()))
    );
    let counters = conn.supply_counters().await;
    assert_eq!(counters.notes_in_cassettes, vec![1000; 4]);
    assert_eq!(counters.transaction_count, 0);
}

#[tokio::test]
async fn terminal_with_the_current_config_id_is_not_downloaded() {
    let options = AtmOptions {
        config_id: "0022".into(),
        initial_notes: Some(vec![10, 20, 30, 40]),
        ..AtmOptions::default()
    };
    let (sim, mut conn, _host) = start("ncr-selfserv-basic", options).await;
    assert_eq!(sim.status().screens, 0, "nothing was downloaded");
    assert_eq!(sim.status().config_id, "0022");
    assert_eq!(sim.counters().notes_left, vec![10, 20, 30, 40]);
    assert_eq!(
        conn.supply_counters().await.notes_in_cassettes,
        vec![10, 20, 30, 40]
    );
}

#[tokio::test]
async fn mac_dialect_sends_an_empty_tvn_slot_and_a_nine_character_luno() {
    let p = profile("ncr-advance-ndc");
    let luno = luno_for(&p);
    let host = FakeHost::bind(p.clone()).await;
    let (sim, raw) = tokio::join!(
        AtmSim::connect(host.addr, p.clone(), &luno, AtmOptions::default()),
        async {
            let mut c = host.accept().await;
            let power_up = c.recv_raw().await;
            let luno = c.luno.clone();
            c.send(protocols::ndc::HostMessage::TerminalCommand(
                protocols::ndc::TerminalCommand::new(luno, Command::GoInService),
            ))
            .await;
            (power_up, c.recv_raw().await)
        }
    );
    sim.expect("start-up");
    assert_eq!(raw.0, b"12\x1c001000001\x1c\x1cB0000");
    assert_eq!(raw.1, b"22\x1c001000001\x1c\x1c\x1c9");
}

#[tokio::test]
async fn start_up_times_out_when_the_agent_never_puts_the_terminal_in_service() {
    let p = profile("ncr-selfserv-basic");
    let host = FakeHost::bind(p.clone()).await;
    let options = AtmOptions {
        startup_timeout_ms: 200,
        ..AtmOptions::default()
    };
    let (sim, _conn) = tokio::join!(AtmSim::connect(host.addr, p, "001", options), async {
        let mut c = host.accept().await;
        c.expect_power_up().await;
        c
    });
    assert!(matches!(
        sim,
        Err(AtmError::StartupTimeout { timeout_ms: 200 })
    ));
}

#[tokio::test]
async fn a_luno_of_the_wrong_length_is_refused_before_dialling() {
    let p = profile("ncr-advance-ndc");
    let err = AtmSim::connect("127.0.0.1:9", p, "001", AtmOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, AtmError::Config(_)), "{err}");
}
