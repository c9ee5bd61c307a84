//! The bank host route end to end: a real switch forwarding cards that start with 5 to a real
//! bankhost-sim over ISO 8583 (iso87-binary, 2-byte length), the test speaking to the switch as an
//! agent does. Every drill ends on the host's own record: what it holds, debited and reversed.

mod common;

use std::time::Duration;

use bankhost_sim::{CardConfig, Outage, Rule, RuleAction};
use common::*;
use host_switch::breaker::{BreakerConfig, BreakerState};
use host_switch::config::BankHostConfig;
use host_switch::domain::TxnState;
use protocols::types::Pan;
use testkit::wait::wait_until;

const BANK_BALANCE: u64 = 500_000;

struct BankLab {
    lab: Lab,
    host: bankhost_sim::RunningBankHost,
}

impl BankLab {
    async fn start() -> BankLab {
        Self::start_with(|_| {}).await
    }

    async fn start_with(tune: impl FnOnce(&mut BankHostConfig)) -> BankLab {
        let mut sim = bankhost_sim::BankHostConfig::new();
        sim.cards.push(CardConfig::new(BANK_CARD, BANK_BALANCE));
        let host = bankhost_sim::start(sim).await.unwrap();
        let mut bank = BankHostConfig::new("acme", host.addr().to_string(), "1234567");
        // Generous: a test that expects an answer must not get 91 because the machine is busy.
        bank.timeout_ms = 2000;
        bank.retry_min_ms = 50;
        bank.retry_max_ms = 300;
        bank.echo_interval_ms = 500;
        bank.acceptor_location = Some("OUR ATM NETWORK          LISBON       PT".into());
        tune(&mut bank);
        let lab = Lab::start_with(ExtraConfig {
            bank: Some(bank),
            ..ExtraConfig::default()
        })
        .await;
        signed_on(&lab).await;
        BankLab { lab, host }
    }

    fn position(&self) -> bankhost_sim::Position {
        self.host.handle().position(&Pan::parse(BANK_CARD).unwrap())
    }

    fn received(&self, mti: &str) -> Vec<bankhost_sim::Exchange> {
        self.host
            .handle()
            .received()
            .into_iter()
            .filter(|e| e.mti.as_str() == mti)
            .collect()
    }

    fn state(&self, stan: u32) -> TxnState {
        let key = format!("{TERMINAL}:{stan:06}:{AT}");
        self.lab
            .switch()
            .switch
            .journal()
            .txn(&key)
            .unwrap()
            .unwrap_or_else(|| panic!("no journal record {key}"))
            .state
    }
}

use host_switch::ports::Journal;

/// Waits until the switch has a signed-on link to the bank host (its 0810 read, not only sent).
async fn signed_on(lab: &Lab) {
    let switch = lab.switch().switch.clone();
    wait_until("the switch to sign on at the bank host", 10, || {
        let s = switch.clone();
        async move { s.issuer_status("acme").is_some_and(|st| st.connected) }
    })
    .await;
}

#[tokio::test]
async fn approved_withdrawal_is_completed_at_the_host() {
    let bl = BankLab::start().await;
    let mut atm = bl.lab.client().await;
    let resp = atm.request(&withdrawal(1, BANK_CARD, 20_000)).await;
    assert_eq!(code(&resp), "00");
    assert!(resp.get_str(38).is_some(), "approval code");
    assert!(matches!(bl.state(1), TxnState::Held { .. }));
    assert_eq!(bl.position().held, 20_000);

    let resp = atm
        .request(&completion(2, 1, BANK_CARD, 20_000, 20_000))
        .await;
    assert_eq!(code(&resp), "00");
    assert!(matches!(
        bl.state(1),
        TxnState::Captured {
            amount_minor: 20_000,
            ..
        }
    ));
    let p = bl.position();
    assert_eq!((p.held, p.debited), (0, 20_000));

    // What the host got is a card-present ATM message, decoded with the host's own spec.
    let auth = &bl.received("0100")[0].request;
    for field in [2, 3, 4, 7, 11, 12, 13, 18, 22, 32, 37, 41, 42, 43, 49] {
        assert!(auth.contains(field), "0100 without field {field}");
    }
    assert_eq!(auth.get_str(18), Some("6011"));
    assert_eq!(auth.get_str(32), Some("1234567"));
    let advice = &bl.received("0220")[0].request;
    let original = advice.original_data().unwrap().unwrap();
    assert_eq!(original.mti.as_str(), "0100");
    assert_eq!(original.stan, auth.stan().unwrap().unwrap());
    assert_eq!(original.acquirer_id, 1_234_567);
    assert_eq!(advice.get_str(37), auth.get_str(37), "the original's RRN");
    assert!(!advice.contains(35), "advices never carry track 2");
    assert!(
        !advice.contains(95),
        "a full dispense needs no replacement amount"
    );
    bl.lab.assert_books().await;
}

#[tokio::test]
async fn host_declines_are_passed_to_the_terminal() {
    let bl = BankLab::start().await;
    bl.host
        .handle()
        .push_rule(Rule::new(RuleAction::Decline("51".into())).amount_range(Some(100_000), None))
        .unwrap();
    let mut atm = bl.lab.client().await;
    let resp = atm.request(&withdrawal(1, BANK_CARD, 150_000)).await;
    assert_eq!(code(&resp), "51");
    assert!(matches!(bl.state(1), TxnState::Declined { .. }));
    // A replay gets the recorded answer; the host is not asked twice.
    let again = atm.request(&withdrawal(1, BANK_CARD, 150_000)).await;
    assert_eq!(code(&again), "51");
    assert_eq!(bl.received("0100").len(), 1);
    let p = bl.position();
    assert_eq!((p.held, p.debited, p.net), (0, 0, 0));
}

#[tokio::test]
async fn an_approval_lost_on_the_way_back_is_reversed_until_the_host_acknowledges() {
    let bl = BankLab::start().await;
    let handle = bl.host.handle();
    // The host applies the 0100 and its answer is lost; the first two reversals' answers too.
    handle
        .push_rule(Rule::new(RuleAction::DropAnswer).mti("0100"))
        .unwrap();
    let mut atm = bl.lab.client().await;
    let resp = atm.request(&withdrawal(1, BANK_CARD, 30_000)).await;
    assert_eq!(code(&resp), "91", "an unknown outcome is never an approval");
    assert_eq!(bl.position().held, 30_000, "the host did apply it");
    handle.clear_rules();
    handle.drop_next_answers(Some("5"), 2);
    wait_until("the host to acknowledge the reversal", 20, || {
        let h = handle.clone();
        async move {
            h.received()
                .iter()
                .any(|e| e.mti.as_str().starts_with("042") && e.answered())
        }
    })
    .await;
    wait_until("the journal to record the void", 10, || {
        let s = bl.state(1);
        async move { s == TxnState::Voided }
    })
    .await;
    let reversals: Vec<_> = handle
        .received()
        .into_iter()
        .filter(|e| e.mti.as_str().starts_with("042"))
        .collect();
    assert_eq!(reversals[0].mti.as_str(), "0420");
    assert!(
        reversals.len() >= 3,
        "two answers dropped, then acknowledged"
    );
    assert!(
        reversals[1..].iter().all(|e| e.mti.as_str() == "0421"),
        "every resend is a repeat"
    );
    let auth = &bl.received("0100")[0].request;
    let original = reversals[0].request.original_data().unwrap().unwrap();
    assert_eq!(original.stan, auth.stan().unwrap().unwrap());
    assert_eq!(
        original.transmission,
        auth.transmission_datetime().unwrap(),
        "field 90 names the original exactly"
    );
    let p = bl.position();
    assert_eq!(
        (p.held, p.debited, p.net),
        (0, 0, 0),
        "the host's record nets to zero: {p:?}"
    );
    // The terminal's own reversal of the 91 changes nothing more.
    let resp = atm
        .request(&reversal(2, 1, BANK_CARD, 30_000, "011000"))
        .await;
    assert_eq!(code(&resp), "00");
    assert_eq!(bl.position().net, 0);
}

#[tokio::test]
async fn a_partial_dispense_is_a_completion_with_replacement_amounts() {
    let bl = BankLab::start().await;
    let mut atm = bl.lab.client().await;
    assert_eq!(
        code(&atm.request(&withdrawal(1, BANK_CARD, 20_000)).await),
        "00"
    );
    let resp = atm
        .request(&completion(2, 1, BANK_CARD, 20_000, 15_000))
        .await;
    assert_eq!(code(&resp), "00");
    let advice = &bl.received("0220")[0].request;
    assert_eq!(
        advice.amount().unwrap(),
        Some(20_000),
        "field 4 is the original amount"
    );
    let replaced = advice.replacement_amounts().unwrap().unwrap();
    assert_eq!(replaced.actual_amount, 15_000);
    let p = bl.position();
    assert_eq!((p.held, p.debited), (0, 15_000));
    assert!(matches!(
        bl.state(1),
        TxnState::Captured {
            amount_minor: 15_000,
            ..
        }
    ));
}

#[tokio::test]
async fn balance_inquiry_and_deposit_follow_the_host() {
    let bl = BankLab::start_with(|b| b.deposits = true).await;
    let mut atm = bl.lab.client().await;
    let resp = atm.request(&balance_inquiry(1, BANK_CARD)).await;
    assert_eq!(code(&resp), "00");
    assert!(resp.contains(54), "balances");
    let resp = atm.request(&deposit(2, BANK_CARD, 7_000)).await;
    assert_eq!(code(&resp), "00");
    assert_eq!(bl.position().credited, 7_000);
    // Reversing the deposit debits it back at the host.
    let resp = atm
        .request(&reversal(3, 2, BANK_CARD, 7_000, "210010"))
        .await;
    assert_eq!(code(&resp), "00");
    assert_eq!(bl.position().net, 0);
    assert!(matches!(bl.state(2), TxnState::Compensated { .. }));
}

#[tokio::test]
async fn deposits_are_refused_when_the_host_takes_none() {
    let bl = BankLab::start().await;
    let mut atm = bl.lab.client().await;
    let resp = atm.request(&deposit(1, BANK_CARD, 7_000)).await;
    assert_eq!(code(&resp), "12");
    assert!(bl.received("0200").is_empty());
}

#[tokio::test]
async fn the_hosts_breaker_opens_answers_91_at_once_and_closes_after_recovery() {
    let bl = BankLab::start_with(|b| {
        b.timeout_ms = 300;
        b.breaker = BreakerConfig {
            window_calls: 4,
            minimum_calls: 2,
            open_ms: 500,
            half_open_calls: 1,
            ..BreakerConfig::default()
        };
    })
    .await;
    let handle = bl.host.handle();
    handle.set_outage(Outage::Silent);
    let mut atm = bl.lab.client().await;
    let mut stan = 1;
    let breaker_open = || {
        let issuers = bl.lab.switch().switch.clone();
        async move {
            issuers
                .issuer_status("acme")
                .is_some_and(|s| s.breaker == BreakerState::Open)
        }
    };
    while !breaker_open().await {
        assert!(stan < 20, "the breaker never opened");
        let resp = atm.request(&withdrawal(stan, BANK_CARD, 1_000)).await;
        assert_eq!(code(&resp), "91");
        stan += 1;
    }
    // Open: answered at once, nothing sent.
    let before = handle.received().len();
    let started = std::time::Instant::now();
    let resp = atm.request(&withdrawal(100, BANK_CARD, 1_000)).await;
    assert_eq!(code(&resp), "91");
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "not waited for a timeout"
    );
    assert_eq!(handle.received().len(), before);

    handle.set_outage(Outage::None);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut next = 200;
    loop {
        next += 1;
        if code(&atm.request(&withdrawal(next, BANK_CARD, 1_000)).await) == "00" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the breaker never closed after the host came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every request that may have reached the silent host is reversed there (it applied none).
    let unanswered = u64::from(stan - 1);
    wait_until("the reversals of the unanswered requests", 20, || {
        let h = handle.clone();
        async move { h.totals().reversals_unmatched >= unanswered }
    })
    .await;
    let p = bl.position();
    assert_eq!(
        (p.held, p.debited),
        (1_000, 0),
        "only the last approval stands: {p:?}"
    );
}

#[tokio::test]
async fn a_queued_reversal_survives_a_switch_restart_and_is_sent_as_a_repeat() {
    let mut bl = BankLab::start().await;
    let handle = bl.host.handle();
    handle
        .push_rule(Rule::new(RuleAction::DropAnswer).mti("0100"))
        .unwrap();
    let mut atm = bl.lab.client().await;
    assert_eq!(
        code(&atm.request(&withdrawal(1, BANK_CARD, 40_000)).await),
        "91"
    );
    // The host hears the reversal but answers nothing: it stays queued in the switch.
    handle.set_outage(Outage::Silent);
    wait_until("the first reversal to reach the host", 10, || {
        let h = handle.clone();
        async move { h.received().iter().any(|e| e.mti.as_str() == "0420") }
    })
    .await;
    drop(atm);
    bl.lab.stop_switch().await;
    let before_restart = handle.received().len();
    handle.clear_rules();
    handle.set_outage(Outage::None);
    bl.lab.start_switch().await;
    wait_until(
        "the reversal to be acknowledged after the restart",
        20,
        || {
            let s = bl.state(1);
            async move { s == TxnState::Voided }
        },
    )
    .await;
    let after: Vec<_> = handle.received().into_iter().skip(before_restart).collect();
    let resent = after
        .iter()
        .find(|e| e.mti.as_str().starts_with("042"))
        .expect("a reversal after the restart");
    assert_eq!(
        resent.mti.as_str(),
        "0421",
        "a resend after a restart is a repeat"
    );
    let p = bl.position();
    assert_eq!((p.held, p.debited, p.net), (0, 0, 0), "{p:?}");
}

/// Terminates TLS (the host's side, client certificates required) in front of the plain sim.
async fn tls_front(files: &mtls::PkiFiles, backend: std::net::SocketAddr) -> std::net::SocketAddr {
    let config = mtls::server_config(files.server_files()).unwrap();
    let acceptor = mtls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn the_host_is_reached_over_tls_with_our_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (_pki, files) = testkit::pki_in(dir.path());
    let mut sim = bankhost_sim::BankHostConfig::new();
    sim.cards.push(CardConfig::new(BANK_CARD, BANK_BALANCE));
    let host = bankhost_sim::start(sim).await.unwrap();
    let front = tls_front(&files, host.addr()).await;
    let mut bank = BankHostConfig::new("acme", front.to_string(), "1234567");
    bank.tls = Some(host_switch::config::BankHostTls {
        ca: files.ca.clone(),
        cert: files.agent_cert.clone(),
        key: files.agent_key.clone(),
        server_name: Some("localhost".into()),
    });
    let lab = Lab::start_with(ExtraConfig {
        bank: Some(bank),
        ..ExtraConfig::default()
    })
    .await;
    signed_on(&lab).await;
    let mut atm = lab.client().await;
    let resp = atm.request(&withdrawal(1, BANK_CARD, 5_000)).await;
    assert_eq!(code(&resp), "00");
    assert_eq!(
        host.handle().position(&Pan::parse(BANK_CARD).unwrap()).held,
        5_000
    );
}

#[tokio::test]
async fn switchctl_shows_each_bank_host() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let mut sim = bankhost_sim::BankHostConfig::new();
    sim.cards.push(CardConfig::new(BANK_CARD, BANK_BALANCE));
    let host = bankhost_sim::start(sim).await.unwrap();
    let lab = Lab::start_with(ExtraConfig {
        bank: Some(BankHostConfig::new("acme", host.addr().to_string(), "1")),
        control_socket: Some(socket.clone()),
        ..ExtraConfig::default()
    })
    .await;
    signed_on(&lab).await;
    let ask = |socket: std::path::PathBuf| async move {
        tokio::task::spawn_blocking(move || {
            host_switch::cli::control::send(&socket, &host_switch::control_api::Request::BankHosts)
        })
        .await
        .unwrap()
        .unwrap()
    };
    let data = ask(socket.clone()).await;
    assert_eq!(data[0]["name"], "acme");
    assert_eq!(data[0]["connected"], true);
    assert_eq!(data[0]["breaker"], "closed");
    let text = host_switch::cli::control::render_bank_hosts(&data);
    assert_eq!(text, "acme  signed on  breaker closed  0 advices queued");
    host.shutdown().await;
    let switch = lab.switch().switch.clone();
    wait_until("the link to the stopped host to go down", 10, || {
        let s = switch.clone();
        async move { s.issuer_status("acme").is_some_and(|st| !st.connected) }
    })
    .await;
    let text = host_switch::cli::control::render_bank_hosts(&ask(socket).await);
    assert!(text.contains("NOT CONNECTED"), "{text}");
}
