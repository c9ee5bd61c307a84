//! The host as a network peer: network management, concurrency, garbage, outages, latency.

mod support;

use std::time::Duration;

use bankhost_sim::{Fate, Outage, Rule, RuleAction};
use protocols::types::Pan;
use support::*;

#[tokio::test]
async fn sign_on_echo_and_sign_off_are_answered_00() {
    let host = host().await;
    let mut c = Client::connect(host.addr()).await;
    for (n, code_70) in [(1u32, 1u16), (2, 301), (3, 2)] {
        let request = sign_on(code_70, n);
        let answer = c.call(&request).await;
        assert_eq!(answer.mti().as_str(), "0810");
        assert_eq!(code(&answer), "00");
        assert_eq!(answer.get(11), request.get(11));
        assert_eq!(answer.get(7), request.get(7));
        assert_eq!(answer.network_management_code().unwrap(), Some(code_70));
    }
    assert_eq!(
        code(&c.call(&sign_on(161, 4)).await),
        "12",
        "no key change here"
    );
    assert_eq!(host.handle().stats().received_by_mti["0800"], 4);
    host.shutdown().await;
}

#[tokio::test]
async fn garbage_closes_that_connection_only() {
    let host = host().await;
    let mut healthy = Client::connect(host.addr()).await;
    let mut bad = Client::connect(host.addr()).await;
    bad.send_raw(b"this is not ISO 8583".to_vec()).await;
    assert!(
        bad.closed_by_host().await,
        "an undecodable frame closes the connection"
    );

    // A length header announcing more than the frame limit: also closed, nothing allocated.
    let mut huge = tokio::net::TcpStream::connect(host.addr()).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut huge, &[0xFF, 0xFF, b'0', b'1'])
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(TIMEOUT, tokio::io::AsyncReadExt::read(&mut huge, &mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    assert_eq!(code(&healthy.call(&sign_on(301, 1)).await), "00");
    let mut again = Client::connect(host.addr()).await;
    assert_eq!(code(&again.call(&sign_on(301, 2)).await), "00");
    assert_eq!(host.handle().stats().undecodable_frames, 2);
    host.shutdown().await;
}

#[tokio::test]
async fn answers_on_one_connection_leave_as_they_are_ready() {
    let host = host().await;
    let h = host.handle();
    h.push_rule(Rule::new(RuleAction::LatencyMs(400)).card_prefix(OTHER_PAN))
        .unwrap();
    let mut c = Client::connect(host.addr()).await;
    c.send(&withdrawal(OTHER_PAN, 100, 1)).await;
    c.send(&withdrawal(PAN, 100, 2)).await;
    let first = c.recv().await;
    let second = c.recv().await;
    assert_eq!(first.get_str(11), Some("000002"), "the quick answer first");
    assert_eq!(second.get_str(11), Some("000001"));
    wait_until("both answers to be recorded as written", || {
        h.received().iter().all(|e| e.fate == Fate::Answered)
    })
    .await;
    host.shutdown().await;
}

#[tokio::test]
async fn many_connections_at_once() {
    let host = host_with(|c| {
        c.cards
            .push(bankhost_sim::CardConfig::new("541333*", 1_000_000));
    })
    .await;
    let addr = host.addr();
    let mut tasks = Vec::new();
    for conn in 0..16u32 {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            for i in 0..10u32 {
                let pan = format!("54133399{conn:04}{i:04}");
                let answer = c.call(&withdrawal(&pan, 100, conn * 100 + i + 1)).await;
                assert_eq!(code(&answer), "00");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let totals = host.handle().totals();
    assert_eq!(totals.approved, 160);
    assert_eq!(totals.position.held, 16_000);
    assert_eq!(host.handle().stats().connections_accepted, 16);
    host.shutdown().await;
}

#[tokio::test]
async fn silent_outage_reads_but_neither_applies_nor_answers() {
    let host = host().await;
    let h = host.handle();
    let mut c = Client::connect(host.addr()).await;
    h.set_outage(Outage::Silent);
    c.send(&withdrawal(PAN, 1_000, 1)).await;
    wait_until("the request to be recorded", || h.received().len() == 1).await;
    assert_eq!(h.received()[0].fate, Fate::Swallowed);
    assert!(c.recv_within(Duration::from_millis(200)).await.is_none());
    assert_eq!(h.position(&Pan::parse(PAN).unwrap()).held, 0);

    h.set_outage(Outage::None);
    assert_eq!(code(&c.call(&withdrawal(PAN, 1_000, 2)).await), "00");
    host.shutdown().await;
}

#[tokio::test]
async fn an_answer_waiting_when_the_host_goes_silent_is_lost_but_applied() {
    let host = host().await;
    let h = host.handle();
    h.set_latency(Duration::from_millis(300));
    let mut c = Client::connect(host.addr()).await;
    c.send(&withdrawal(PAN, 1_000, 1)).await;
    wait_until("the withdrawal to be applied", || {
        h.position(&Pan::parse(PAN).unwrap()).held == 1_000
    })
    .await;
    h.set_outage(Outage::Silent);
    wait_until("the answer to be given up", || {
        h.received()[0].fate == Fate::AnswerDropped
    })
    .await;
    h.set_outage(Outage::None);
    h.set_latency(Duration::ZERO);
    assert_eq!(
        code(&c.call(&sign_on(301, 2)).await),
        "00",
        "only the echo answer comes"
    );
    host.shutdown().await;
}

#[tokio::test]
async fn refuse_outage_closes_existing_and_new_connections() {
    let host = host().await;
    let h = host.handle();
    let mut c = Client::connect(host.addr()).await;
    assert_eq!(code(&c.call(&sign_on(1, 1)).await), "00");
    h.set_outage(Outage::Refuse);
    assert!(c.closed_by_host().await, "existing connection closed");
    let mut late = Client::connect(host.addr()).await;
    assert!(late.closed_by_host().await, "new connection closed");
    assert!(h.stats().connections_refused >= 2);

    h.set_outage(Outage::None);
    let mut back = Client::connect(host.addr()).await;
    assert_eq!(code(&back.call(&sign_on(1, 2)).await), "00");
    host.shutdown().await;
}

#[tokio::test]
async fn drop_next_answers_globally_spares_network_management() {
    let host = host().await;
    let h = host.handle();
    h.drop_next_answers(None, 1);
    let mut c = Client::connect(host.addr()).await;
    assert_eq!(code(&c.call(&sign_on(301, 1)).await), "00");
    c.send(&withdrawal(PAN, 100, 2)).await;
    assert!(c.recv_within(Duration::from_millis(200)).await.is_none());
    assert_eq!(code(&c.call(&withdrawal(PAN, 100, 3)).await), "00");
    assert_eq!(h.position(&Pan::parse(PAN).unwrap()).held, 200);
    assert_eq!(h.stats().answers_dropped, 1);
    host.shutdown().await;
}

#[tokio::test]
async fn swallowing_rule_applies_nothing() {
    let host = host().await;
    let h = host.handle();
    h.push_rule(Rule::new(RuleAction::NoApplyNoAnswer).mti("0420"))
        .unwrap();
    let mut c = Client::connect(host.addr()).await;
    let auth = withdrawal(PAN, 700, 1);
    assert_eq!(code(&c.call(&auth).await), "00");
    c.send(&follow_up("0420", &auth, None, 2)).await;
    wait_until("the reversal to be recorded", || h.received().len() == 2).await;
    assert_eq!(h.received()[1].fate, Fate::Swallowed);
    assert_eq!(h.position(&Pan::parse(PAN).unwrap()).held, 700);
    // Once the rule is gone, the repeat is applied.
    h.clear_rules();
    assert_eq!(
        code(&c.call(&follow_up("0421", &auth, None, 2)).await),
        "00"
    );
    assert_eq!(h.position(&Pan::parse(PAN).unwrap()).held, 0);
    host.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_connections() {
    let host = host().await;
    let mut c = Client::connect(host.addr()).await;
    assert_eq!(code(&c.call(&sign_on(1, 1)).await), "00");
    let addr = host.addr();
    host.shutdown().await;
    assert!(c.closed_by_host().await);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
