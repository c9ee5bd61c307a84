//! State-table mode: the terminal runs the state table the host downloaded, and customers press
//! keys. For every built-in profile, a withdrawal (a fixed amount and another amount), a deposit
//! and a balance inquiry are served purely by keys: the `11` the host gets is built from the
//! buffers the states filled.

mod atm_sim_support;

use atm_sim::{AtmError, AtmOptions, AtmSim, Customer, FlowError, Key, Kind, Outcome};
use atm_sim_support::{luno_for, notes_for, profile, FakeHost, HostConn};
use firmware_profiles::Profile;
use keystore::crypto;
use protocols::ndc::{mac_field, DataCommand, HostMessage, KeyChangeModifier, KeyLoad};

const PAN: &str = "4761739001010010";
const TMK_HEX: &str = "0123456789ABCDEFFEDCBA9876543210";
const TAK: [u8; 16] = [
    0x2C, 0x4F, 0x6B, 0x8A, 0x91, 0xB3, 0xD5, 0xE7, 0x15, 0x37, 0x58, 0x7A, 0x9D, 0xBF, 0xC1, 0xE3,
];

fn options() -> AtmOptions {
    AtmOptions {
        state_table: true,
        master_key: Some(atm_sim::ClearKey::from_hex(TMK_HEX).expect("TMK")),
        ..AtmOptions::default()
    }
}

/// A terminal in state-table mode, started by a fake host that downloads `p`.
async fn start(p: Profile) -> (AtmSim, HostConn, FakeHost) {
    let host = FakeHost::bind(p.clone()).await;
    let luno = luno_for(&p);
    let (sim, conn) = tokio::join!(AtmSim::connect(host.addr, p, &luno, options()), async {
        let mut c = host.accept().await;
        c.start_up().await;
        if c.profile.mac.enabled() {
            load_mac_key(&mut c).await;
        }
        c
    });
    (sim.expect("terminal start-up"), conn, host)
}

/// The MAC key (`3 … 45` under the terminal master key), for a profile in MAC mode.
async fn load_mac_key(c: &mut HostConn) {
    let mut cryptogram = TAK.to_vec();
    crypto::tdes_encrypt_ecb(&hex::decode(TMK_HEX).expect("hex"), &mut cryptogram).expect("3DES");
    let key = KeyLoad::new(cryptogram).expect("key field");
    let cmd = DataCommand::extended_key_change(c.luno.clone(), KeyChangeModifier::Mac, &key);
    c.send(HostMessage::DataCommand(cmd)).await;
    c.recv().await;
}

fn keys(script: &str) -> Vec<Key> {
    Key::parse_script(script).expect("key script")
}

/// One customer who presses `script`; the host checks the request and approves it.
async fn serve(
    sim: &mut AtmSim,
    conn: &mut HostConn,
    tsn: u16,
    script: &str,
    kind: Kind,
    amount_minor: u64,
) {
    let p = conn.profile.clone();
    let customer = Customer::pressing(PAN, keys(script));
    let (out, req) = tokio::join!(sim.run_customer(&customer), async {
        let req = conn.expect_request().await;
        let (function, notes, screen) = match kind {
            Kind::Withdrawal => ('2', notes_for(&p, amount_minor), &p.screens.dispense),
            Kind::Deposit => ('1', vec![], &p.screens.deposit),
            Kind::BalanceInquiry => ('3', vec![], &p.screens.balance),
        };
        let mut reply = conn.reply_to(&req, tsn, function, notes, screen);
        if p.mac.transaction_reply {
            reply.sequence = req.tvn.clone().unwrap_or_default();
            let input = reply.mac_input(&p.dialect).expect("MAC input");
            reply.mac = Some(mac_field(&crypto::retail_mac(&TAK, &input).expect("MAC")));
        }
        let next_state = reply.next_state.clone();
        conn.reply(reply).await;
        conn.expect_ready_after_reply().await;
        (req, next_state)
    });
    let (req, next_state) = req;
    let name = &p.name;
    assert_eq!(
        req.operation_code,
        p.operation_codes.for_kind(kind.transaction_kind()),
        "{name} {script}"
    );
    assert_eq!(req.amount, Some(amount_minor), "{name} {script}");
    assert_eq!(req.card().expect("track 2").pan().expose(), PAN);
    let out = out.expect("customer");
    assert_eq!(out.outcome, Outcome::Approved, "{name} {script}");
    assert_eq!(out.kind, kind, "{name} {script}");
    let flow = sim.last_flow().expect("a state-table run");
    assert_eq!(flow.states.first().map(String::as_str), Some("000"));
    assert_eq!(
        flow.states.last(),
        Some(&next_state),
        "{name} {script}: the reply's next state closes"
    );
    let screens = &p.customization.screens;
    for s in &flow.screens {
        assert!(
            screens.iter().any(|d| &d.number == s),
            "{name}: screen {s} shown but not downloaded"
        );
    }
}

/// The keys of each profile's flow (its screens say which FDK does what).
fn scripts(p: &Profile) -> [(&'static str, Kind, u64); 5] {
    if p.name == "diebold-opteva-ndc" {
        [
            ("B A", Kind::Withdrawal, 4000),
            ("B D 7000 ENTER", Kind::Withdrawal, 7000),
            ("B C", Kind::Withdrawal, 20000),
            ("C 4200 A", Kind::Deposit, 4200),
            ("A", Kind::BalanceInquiry, 0),
        ]
    } else {
        [
            ("A B", Kind::Withdrawal, 5000),
            ("A D 8000 ENTER", Kind::Withdrawal, 8000),
            ("A A", Kind::Withdrawal, 2000),
            ("C 4200 A", Kind::Deposit, 4200),
            ("B", Kind::BalanceInquiry, 0),
        ]
    }
}

#[tokio::test]
async fn every_builtin_profile_serves_withdrawal_deposit_and_balance_by_keys() {
    for name in firmware_profiles::Profile::builtin_names() {
        let p = profile(name);
        let (mut sim, mut conn, _host) = start(p.clone()).await;
        assert_eq!(sim.status().states, p.customization.states.len());
        for (i, (script, kind, amount)) in scripts(&p).into_iter().enumerate() {
            serve(&mut sim, &mut conn, 10 + i as u16, script, kind, amount).await;
        }
        let c = sim.counters();
        assert_eq!(c.customers.approved, 5, "{name}");
        assert_eq!(c.deposited_minor, 4200, "{name}");
        let dispensed: u64 = scripts(&p)
            .iter()
            .filter(|(_, k, _)| *k == Kind::Withdrawal)
            .map(|(_, _, a)| a)
            .sum();
        assert_eq!(c.dispensed_minor, dispensed, "{name}");
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn a_customer_without_keys_presses_the_ones_that_lead_to_the_transaction() {
    let (mut sim, mut conn, _host) = start(profile("ncr-advance-ndc")).await;
    let customer = Customer::withdrawal(PAN, 7000);
    let (out, req) = tokio::join!(sim.run_customer(&customer), async {
        let req = conn.expect_request().await;
        let p = conn.profile.clone();
        let reply = conn.reply_to(&req, 3, '2', notes_for(&p, 7000), &p.screens.dispense);
        conn.reply(reply).await;
        conn.expect_ready_after_reply().await;
        req
    });
    assert_eq!(req.operation_code, "A       ");
    assert_eq!(req.amount, Some(7000));
    assert_eq!(out.expect("customer").dispensed_minor, 7000);
    let flow = sim.last_flow().expect("a state-table run");
    assert!(flow.states.contains(&"080".to_owned()), "{:?}", flow.states);
}

#[tokio::test]
async fn a_customer_who_cancels_sends_no_request() {
    let (mut sim, mut conn, _host) = start(profile("ncr-advance-ndc")).await;
    let out = sim
        .run_customer(&Customer::pressing(PAN, keys("A D 50 CANCEL")))
        .await
        .expect("customer");
    assert_eq!(out.outcome, Outcome::Cancelled);
    assert_eq!(out.mcn, None);
    conn.expect_silence(200).await;
    assert_eq!(
        sim.last_flow()
            .and_then(|f| f.states.last())
            .map(String::as_str),
        Some("127")
    );
}

#[tokio::test]
async fn an_unknown_state_type_stops_the_customer_with_a_clear_error() {
    let text = include_str!("../../../firmware-profiles/profiles/ncr-advance-ndc.toml");
    let text = text.replace(
        "\"060E003127127070100090255000\"",
        "\"060Q003127127070100090255000\"",
    );
    let p = Profile::from_toml_str(&text, "odd.toml").expect("profile");
    let (mut sim, mut conn, _host) = start(p).await;
    let err = sim
        .run_customer(&Customer::pressing(PAN, keys("A B")))
        .await
        .expect_err("the customer is stopped");
    assert!(
        matches!(
            err,
            AtmError::StateFlow(FlowError::UnsupportedType { ref state, state_type: 'Q' })
                if state == "060"
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("060") && text.contains("'Q'") && text.contains("does not execute"),
        "{text}"
    );
    conn.expect_silence(200).await;
}

#[tokio::test]
async fn without_a_downloaded_table_the_customer_is_stopped() {
    let p = profile("ncr-selfserv-basic");
    let host = FakeHost::bind(p.clone()).await;
    let luno = luno_for(&p);
    let opts = AtmOptions {
        // The terminal already holds the profile's id: nothing is downloaded.
        config_id: p.customization.config_id.clone(),
        ..options()
    };
    let (sim, _conn) = tokio::join!(AtmSim::connect(host.addr, p, &luno, opts), async {
        let mut c = host.accept().await;
        c.start_up().await;
        c
    });
    let mut sim = sim.expect("start-up");
    let err = sim
        .run_customer(&Customer::pressing(PAN, keys("B")))
        .await
        .expect_err("no table");
    assert!(
        matches!(err, AtmError::StateFlow(FlowError::NoStates)),
        "{err:?}"
    );
}
