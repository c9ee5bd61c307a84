//! PIN verification and the zone PIN key exchange, end to end: a real switch with a key store and
//! an issuer's cards file, a real ledger-sim, and a test agent that asks the switch for its zone
//! PIN key (0800/161), imports it under the shared zone master key into its own key store, and
//! makes PIN blocks the way the agent does: under a terminal PIN key, translated to the ZPK.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use host_switch::cli::control;
use host_switch::config::{BinRuleConfig, KeysConfig, PinConfig, PinMethodName};
use host_switch::control_api::Request;
use keystore::crypto;
use keystore::{
    Component, Kcv, Kek, KeyDelivery, KeyName, KeyRef, KeyStore, KeyUsage, SoftwareKeyStore,
};
use protocols::iso8583::Message;
use protocols::types::Pan;
use serde_json::Value;

const KEK_HEX: &str = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";
const ZMK_COMPONENTS: [&str; 2] = [
    "0123456789ABCDEFFEDCBA9876543210",
    "1F1F1F1F0E0E0E0E1010101001010101",
];
const PVK_COMPONENTS: [&str; 2] = [
    "89ABCDEF01234567FEDCBA9876543210",
    "2323232345454545676767678989898A",
];
const TPK_COMPONENTS: [&str; 2] = [
    "C1C1C1C1C1C1C1C1A2A2A2A2A2A2A2A2",
    "1302130213021302E0E0E0E0E0E0E0E0",
];
const ALICE_PIN: &str = "1234";
const IBM_DECIMALIZATION: &str = "0123456789012345";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    VisaPvv,
    Ibm3624,
}

/// The switch's key store, cards file and control socket, in a directory of the test's own.
struct Fixture {
    dir: tempfile::TempDir,
    pvk_clear: Vec<u8>,
}

impl Fixture {
    /// Loads ZMK and PVK by components (the switch is not running yet: it locks the store), and
    /// writes a cards file giving ALICE's PIN data for `method`; BOB_POOR has none.
    fn new(method: Method) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let kek = dir.path().join("kek");
        std::fs::write(&kek, KEK_HEX).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o600)).unwrap();
        let store = SoftwareKeyStore::open(&dir.path().join("keys.json"), kek_value()).unwrap();
        load(&store, "zmk", KeyUsage::ZoneMaster, ZMK_COMPONENTS);
        load(
            &store,
            "pvk/wallet",
            KeyUsage::PinVerification,
            PVK_COMPONENTS,
        );
        drop(store);
        let fixture = Fixture {
            dir,
            pvk_clear: clear_key(PVK_COMPONENTS),
        };
        fixture.write_cards(method);
        fixture
    }

    fn write_cards(&self, method: Method) {
        let pan = Pan::parse(ALICE).unwrap();
        let entry = match method {
            Method::VisaPvv => {
                let pvv = crypto::visa_pvv(&self.pvk_clear, 1, ALICE_PIN, &pan).unwrap();
                format!("pvki = 1\npvv = \"{}\"", pvv.as_str())
            }
            Method::Ibm3624 => {
                let offset = crypto::ibm3624_offset(
                    &self.pvk_clear,
                    ALICE_PIN,
                    &pan,
                    IBM_DECIMALIZATION,
                    4,
                    11,
                    'F',
                )
                .unwrap();
                format!("offset = \"{}\"", offset.as_str())
            }
        };
        let text = format!("[[card]]\ncard = \"{}\"\n{entry}\n", account(ALICE));
        std::fs::write(self.path("cards.toml"), text).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn socket(&self) -> PathBuf {
        self.path("control.sock")
    }

    fn config(&self, method: Method, grace_secs: u64, rotate_secs: u64) -> ExtraConfig {
        let mut rule = BinRuleConfig::visa_pvv("476173", "pvk/wallet");
        if let Method::Ibm3624 = method {
            rule.method = PinMethodName::Ibm3624;
            rule.decimalization = Some(IBM_DECIMALIZATION.into());
            rule.validation_start = Some(4);
            rule.validation_len = Some(11);
            rule.pad = Some('F');
        }
        let mut keys = KeysConfig::with_kek_file(self.path("keys.json"), self.path("kek"));
        keys.zpk_grace_secs = grace_secs;
        keys.zpk_rotate_secs = rotate_secs;
        let mut pin = PinConfig::new(self.path("cards.toml"));
        pin.max_tries = 3;
        pin.bins.push(rule);
        ExtraConfig {
            control_socket: Some(self.socket()),
            keys: Some(keys),
            pin: Some(pin),
            bank: None,
        }
    }

    /// Operator request through `switchctl`'s client code (blocking, so off the runtime).
    async fn control(&self, request: Request) -> Result<Value, String> {
        let socket = self.socket();
        tokio::task::spawn_blocking(move || control::send(&socket, &request))
            .await
            .unwrap()
            .map_err(|e| e.to_string())
    }

    async fn tries(&self, card: &str) -> (u64, bool) {
        let s = self.control(Request::card_status(card)).await.unwrap();
        (
            s["tries"].as_u64().unwrap(),
            s["blocked"].as_bool().unwrap(),
        )
    }
}

fn kek_value() -> Kek {
    Kek::from_hex(KEK_HEX).unwrap()
}

fn load(store: &SoftwareKeyStore, name: &str, usage: KeyUsage, parts: [&str; 2]) {
    let components: Vec<Component> = parts
        .iter()
        .map(|h| Component::from_hex(h).unwrap())
        .collect();
    let kcvs: Vec<Kcv> = components
        .iter()
        .map(|c| crypto::kcv(c.expose()).unwrap())
        .collect();
    store
        .load_components(&KeyName::new(name).unwrap(), usage, &components, &kcvs)
        .unwrap();
}

/// The key the store makes of two components (XOR; parity does not matter to DES).
fn clear_key(parts: [&str; 2]) -> Vec<u8> {
    let a = hex_bytes(parts[0]);
    let b = hex_bytes(parts[1]);
    a.iter().zip(&b).map(|(x, y)| x ^ y).collect()
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The agent's side: its own key store with the same ZMK and a terminal PIN key it knows.
struct Agent {
    _dir: tempfile::TempDir,
    store: SoftwareKeyStore,
    tpk: KeyRef,
    tpk_clear: Vec<u8>,
}

impl Agent {
    fn new() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SoftwareKeyStore::open(&dir.path().join("agent-keys.json"), kek_value()).unwrap();
        load(&store, "zmk", KeyUsage::ZoneMaster, ZMK_COMPONENTS);
        load(
            &store,
            "tpk/ATM00001",
            KeyUsage::TerminalPin,
            TPK_COMPONENTS,
        );
        Agent {
            _dir: dir,
            store,
            tpk: KeyRef::new(KeyName::new("tpk/ATM00001").unwrap(), 1),
            tpk_clear: clear_key(TPK_COMPONENTS),
        }
    }

    /// 0800/161: asks for the zone PIN key and imports it. Returns its version.
    async fn fetch_zpk(&self, c: &mut IsoClient, stan: u32) -> u32 {
        let r = c.request(&key_change(stan)).await;
        assert_eq!((r.mti().as_str(), code(&r)), ("0810", "00"));
        assert_eq!(r.get_str(70), Some("161"));
        let version: u32 = r.get_str(53).unwrap().parse().unwrap();
        let f48 = r.get_str(48).unwrap();
        assert_eq!(
            f48.len(),
            54,
            "32 hex of cryptogram + 6 hex of KCV + 16 hex of MAC"
        );
        let delivery = KeyDelivery::from_body(version, f48).unwrap();
        let zmk = KeyRef::new(KeyName::zone_master(), 1);
        self.store
            .import_delivery(&KeyName::zone_pin(), &zmk, &delivery)
            .unwrap();
        version
    }

    /// Field 52 for `pin` under ZPK `version`: enciphered under the TPK, translated to the ZPK.
    fn pin_block(&self, pin: &str, pan: &str, version: u32) -> String {
        let pan = Pan::parse(pan).unwrap();
        let under_tpk = crypto::encrypt_pin(&self.tpk_clear, pin, &pan).unwrap();
        let zpk = KeyRef::new(KeyName::zone_pin(), version);
        self.store
            .translate_pin_block(&self.tpk, &zpk, &under_tpk, &pan)
            .unwrap()
            .to_hex()
    }
}

fn key_change(stan: u32) -> Message {
    let mut m = echo(stan);
    m.set_str(70, "161").unwrap();
    m.set_str(41, "ATM00001").unwrap();
    m
}

fn with_pin(mut m: Message, block: &str, version: u32) -> Message {
    m.set_str(52, block).unwrap();
    m.set_str(53, &format!("{version:016}")).unwrap();
    m
}

/// A lab with PIN verification, a fixture, an agent that holds the current ZPK, and a client.
async fn pin_lab(method: Method, grace_secs: u64) -> (Lab, Fixture, Agent, IsoClient, u32) {
    let fixture = Fixture::new(method);
    let lab = Lab::start_with(fixture.config(method, grace_secs, 0)).await;
    let agent = Agent::new();
    let mut c = lab.client().await;
    let version = agent.fetch_zpk(&mut c, 900).await;
    (lab, fixture, agent, c, version)
}

/// Polls for background work (a grace window, a schedule) instead of sleeping a fixed time.
struct Deadline(Instant, &'static str);

impl Deadline {
    fn in_secs(secs: u64, what: &'static str) -> Self {
        Self(Instant::now() + Duration::from_secs(secs), what)
    }
    async fn tick(&self) {
        assert!(Instant::now() < self.0, "timed out waiting for {}", self.1);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn right_pin_is_approved_and_echo_carries_the_zpk_version() {
    let (lab, _fx, agent, mut c, v) = pin_lab(Method::VisaPvv, 300).await;
    assert_eq!(v, 1, "generated at start");
    let r = c.request(&echo(1)).await;
    assert_eq!(r.get_str(53), Some("0000000000000001"));
    let block = agent.pin_block(ALICE_PIN, ALICE, v);
    let r = c
        .request(&with_pin(withdrawal(2, ALICE, 10_000), &block, v))
        .await;
    assert_eq!(code(&r), "00");
    assert_eq!(r.get_str(52), None, "a PIN block is never echoed");
    assert_eq!(lab.balance(ALICE).await["held_minor"], 10_000);
    let r = c
        .request(&with_pin(balance_inquiry(3, ALICE), &block, v))
        .await;
    assert_eq!(code(&r), "00");
    let r = c
        .request(&with_pin(deposit(4, ALICE, 5_000), &block, v))
        .await;
    assert_eq!(code(&r), "00");
    lab.assert_books().await;
}

#[tokio::test]
async fn wrong_pin_is_declined_55_counted_and_nothing_is_held() {
    let (lab, fx, agent, mut c, v) = pin_lab(Method::VisaPvv, 300).await;
    let wrong = agent.pin_block("9999", ALICE, v);
    let r = c
        .request(&with_pin(withdrawal(1, ALICE, 10_000), &wrong, v))
        .await;
    assert_eq!(code(&r), "55");
    assert_eq!(fx.tries(ALICE).await, (1, false));
    assert_eq!(lab.balance(ALICE).await["held_minor"], 0);
    // The right PIN resets the counter.
    let right = agent.pin_block(ALICE_PIN, ALICE, v);
    let r = c
        .request(&with_pin(balance_inquiry(2, ALICE), &right, v))
        .await;
    assert_eq!(code(&r), "00");
    assert_eq!(fx.tries(&account(ALICE)).await, (0, false));
    lab.assert_books().await;
}

#[tokio::test]
async fn three_wrong_pins_block_the_card_until_an_operator_unblocks_it() {
    let (lab, fx, agent, mut c, v) = pin_lab(Method::VisaPvv, 300).await;
    let wrong = agent.pin_block("1111", ALICE, v);
    let right = agent.pin_block(ALICE_PIN, ALICE, v);
    for (stan, expected) in [(1, "55"), (2, "55"), (3, "75")] {
        let r = c
            .request(&with_pin(withdrawal(stan, ALICE, 1_000), &wrong, v))
            .await;
        assert_eq!(code(&r), expected, "attempt {stan}");
    }
    assert_eq!(fx.tries(ALICE).await, (3, true));
    let r = c
        .request(&with_pin(withdrawal(4, ALICE, 1_000), &right, v))
        .await;
    assert_eq!(code(&r), "75", "blocked: even the right PIN is refused");

    let unblocked = fx.control(Request::card_unblock(ALICE)).await.unwrap();
    assert_eq!(unblocked["was_blocked"], true);
    assert_eq!(
        unblocked["card"],
        account(ALICE),
        "answered by reference, never the PAN"
    );
    let r = c
        .request(&with_pin(withdrawal(5, ALICE, 1_000), &right, v))
        .await;
    assert_eq!(code(&r), "00");
    assert_eq!(lab.balance(ALICE).await["held_minor"], 1_000);
    lab.assert_books().await;
}

#[tokio::test]
async fn a_replayed_wrong_pin_gets_its_answer_and_is_not_counted_twice() {
    let (lab, fx, agent, mut c, v) = pin_lab(Method::VisaPvv, 300).await;
    let wrong = agent.pin_block("4321", ALICE, v);
    let m = with_pin(withdrawal(1, ALICE, 1_000), &wrong, v);
    assert_eq!(code(&c.request(&m).await), "55");
    assert_eq!(code(&c.request(&m).await), "55", "the recorded answer");
    assert_eq!(fx.tries(ALICE).await, (1, false));
    // A balance inquiry is not journaled, but its replay does not count twice either.
    let q = with_pin(balance_inquiry(2, ALICE), &wrong, v);
    assert_eq!(code(&c.request(&q).await), "55");
    assert_eq!(code(&c.request(&q).await), "55");
    assert_eq!(fx.tries(ALICE).await, (2, false));
    lab.assert_books().await;
}

#[tokio::test]
async fn old_zpk_is_accepted_within_grace_then_refused_96() {
    let (lab, fx, agent, mut c, v1) = pin_lab(Method::VisaPvv, 2).await;
    let rotated = fx.control(Request::ZpkRotate).await.unwrap();
    assert_eq!(rotated["version"], 2);
    let r = c.request(&echo(1)).await;
    assert_eq!(
        r.get_str(53),
        Some("0000000000000002"),
        "agents see the rotation"
    );
    let old = agent.pin_block(ALICE_PIN, ALICE, v1);
    let r = c
        .request(&with_pin(balance_inquiry(2, ALICE), &old, v1))
        .await;
    assert_eq!(code(&r), "00", "within the grace window");

    let v2 = agent.fetch_zpk(&mut c, 3).await;
    assert_eq!(v2, 2);
    let deadline = Deadline::in_secs(15, "the old ZPK to be refused");
    for stan in 10.. {
        let m = with_pin(balance_inquiry(stan, ALICE), &old, v1);
        match code(&c.request(&m).await) {
            "96" => break,
            other => assert_eq!(other, "00"),
        }
        deadline.tick().await;
    }
    assert_eq!(fx.tries(ALICE).await, (0, false), "a 96 counts no try");
    let zpk_versions = |keys: &Value| -> Vec<u64> {
        keys.as_array()
            .unwrap()
            .iter()
            .filter(|k| k["name"] == "zpk")
            .map(|k| k["version"].as_u64().unwrap())
            .collect()
    };
    let deadline = Deadline::in_secs(15, "the old ZPK to be destroyed");
    while zpk_versions(&fx.control(Request::KeysList).await.unwrap()) != vec![2] {
        deadline.tick().await;
    }
    let new = agent.pin_block(ALICE_PIN, ALICE, v2);
    let r = c
        .request(&with_pin(balance_inquiry(99, ALICE), &new, v2))
        .await;
    assert_eq!(code(&r), "00");
    lab.assert_books().await;
}

#[tokio::test]
async fn zpk_rotates_on_its_schedule() {
    let fixture = Fixture::new(Method::VisaPvv);
    let lab = Lab::start_with(fixture.config(Method::VisaPvv, 300, 1)).await;
    let mut c = lab.client().await;
    let deadline = Deadline::in_secs(15, "a scheduled rotation");
    for stan in 1.. {
        let r = c.request(&echo(stan)).await;
        if r.get_str(53).is_some_and(|v| v != "0000000000000001") {
            break;
        }
        deadline.tick().await;
    }
    lab.assert_books().await;
}

#[tokio::test]
async fn restart_keeps_tries_and_blocked_state() {
    let (mut lab, fx, agent, mut c, v) = pin_lab(Method::VisaPvv, 300).await;
    let wrong = agent.pin_block("0000", ALICE, v);
    for stan in 1..=3 {
        c.request(&with_pin(withdrawal(stan, ALICE, 1_000), &wrong, v))
            .await;
    }
    drop(c);
    lab.stop_switch().await;
    lab.start_switch().await;
    let mut c = lab.client().await;
    let r = c.request(&echo(4)).await;
    assert_eq!(
        r.get_str(53),
        Some("0000000000000001"),
        "same ZPK after restart"
    );
    let right = agent.pin_block(ALICE_PIN, ALICE, v);
    let r = c
        .request(&with_pin(withdrawal(5, ALICE, 1_000), &right, v))
        .await;
    assert_eq!(code(&r), "75");
    assert_eq!(fx.tries(ALICE).await, (3, true));
    lab.assert_books().await;
}

#[tokio::test]
async fn a_deposit_without_a_pin_block_is_credited_even_on_a_blocked_card() {
    // The agent advises a deposit it took while the switch was unreachable without a PIN block
    // (PIN blocks are never stored); the cash is in the terminal, so the credit must go through.
    let (lab, fx, agent, mut c, v) = pin_lab(Method::VisaPvv, 300).await;
    let wrong = agent.pin_block("1111", ALICE, v);
    for stan in 1..=3 {
        c.request(&with_pin(withdrawal(stan, ALICE, 1_000), &wrong, v))
            .await;
    }
    assert_eq!(fx.tries(ALICE).await, (3, true));
    let r = c.request(&deposit(4, ALICE, 7_000)).await;
    assert_eq!(code(&r), "00", "money in needs no PIN");
    let r = c
        .request(&with_pin(deposit(5, ALICE, 7_000), &wrong, v))
        .await;
    assert_eq!(
        code(&r),
        "75",
        "a deposit with a PIN block is checked like the rest"
    );
    assert_eq!(fx.tries(ALICE).await, (3, true));
    lab.assert_books().await;
}

#[tokio::test]
async fn missing_pin_data_or_pin_block_is_declined_55_without_counting() {
    let (lab, fx, agent, mut c, v) = pin_lab(Method::VisaPvv, 300).await;
    let block = agent.pin_block("1234", BOB_POOR, v);
    let r = c
        .request(&with_pin(withdrawal(1, BOB_POOR, 500), &block, v))
        .await;
    assert_eq!(code(&r), "55", "no PIN data for this wallet card");
    let err = fx
        .control(Request::card_status(BOB_POOR))
        .await
        .unwrap_err();
    assert!(err.contains("no PIN record"), "{err}");
    let r = c.request(&withdrawal(2, ALICE, 500)).await;
    assert_eq!(code(&r), "55", "no field 52");
    assert_eq!(fx.tries(ALICE).await, (0, false));
    assert_eq!(lab.balance(BOB_POOR).await["held_minor"], 0);
    lab.assert_books().await;
}

#[tokio::test]
async fn unusable_pin_blocks_are_refused_96_without_counting() {
    let (lab, fx, agent, mut c, v) = pin_lab(Method::VisaPvv, 300).await;
    let block = agent.pin_block(ALICE_PIN, ALICE, v);
    let r = c
        .request(&with_pin(withdrawal(1, ALICE, 500), &block, 7))
        .await;
    assert_eq!(code(&r), "96", "unknown ZPK version");
    let r = c
        .request(&with_pin(withdrawal(2, ALICE, 500), "NOTAHEXPINBLOCKX", v))
        .await;
    assert_eq!(code(&r), "96", "unreadable field 52");
    let mut m = withdrawal(3, ALICE, 500);
    m.set_str(52, &block).unwrap();
    assert_eq!(code(&c.request(&m).await), "96", "no field 53");
    assert_eq!(fx.tries(ALICE).await, (0, false));
    // 96 is not recorded: the same request with a usable block goes through.
    let r = c
        .request(&with_pin(withdrawal(1, ALICE, 500), &block, v))
        .await;
    assert_eq!(code(&r), "00");
    lab.assert_books().await;
}

#[tokio::test]
async fn ibm3624_bin_rule_verifies_the_offset() {
    let (lab, fx, agent, mut c, v) = pin_lab(Method::Ibm3624, 300).await;
    let right = agent.pin_block(ALICE_PIN, ALICE, v);
    let r = c
        .request(&with_pin(withdrawal(1, ALICE, 2_000), &right, v))
        .await;
    assert_eq!(code(&r), "00");
    let wrong = agent.pin_block("1235", ALICE, v);
    let r = c
        .request(&with_pin(withdrawal(2, ALICE, 2_000), &wrong, v))
        .await;
    assert_eq!(code(&r), "55");
    let s = fx.control(Request::card_status(ALICE)).await.unwrap();
    assert_eq!(
        (s["method"].as_str(), s["tries"].as_u64()),
        (Some("ibm3624"), Some(1))
    );
    lab.assert_books().await;
}

#[tokio::test]
async fn without_keys_the_switch_answers_key_change_96_and_checks_no_pin() {
    let lab = Lab::start().await;
    let mut c = lab.client().await;
    let r = c.request(&key_change(1)).await;
    assert_eq!((r.mti().as_str(), code(&r)), ("0810", "96"));
    assert_eq!(c.request(&echo(2)).await.get_str(53), None);
    let r = c
        .request(&with_pin(
            withdrawal(3, ALICE, 1_000),
            "0123456789ABCDEF",
            1,
        ))
        .await;
    assert_eq!(code(&r), "00", "an exempt route: the PIN is not checked");
    lab.assert_books().await;
}

#[tokio::test]
async fn a_store_without_zmk_answers_key_change_96() {
    let dir = tempfile::tempdir().unwrap();
    let kek = dir.path().join("kek");
    std::fs::write(&kek, KEK_HEX).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o600)).unwrap();
    let extra = ExtraConfig {
        keys: Some(KeysConfig::with_kek_file(
            dir.path().join("keys.json"),
            &kek,
        )),
        ..ExtraConfig::default()
    };
    let lab = Lab::start_with(extra).await;
    let mut c = lab.client().await;
    assert_eq!(code(&c.request(&key_change(1)).await), "96");
    assert_eq!(c.request(&echo(2)).await.get_str(53), None);
    lab.assert_books().await;
}

#[tokio::test]
async fn switchctl_speaks_to_the_control_socket_and_fails_with_exit_2() {
    let (lab, fx, _agent, _c, _v) = pin_lab(Method::VisaPvv, 300).await;
    let bin = env!("CARGO_BIN_EXE_switchctl");
    let socket = fx.socket();
    let run = move |args: &[&str]| {
        let mut cmd = std::process::Command::new(bin);
        cmd.arg("--socket").arg(&socket).args(args);
        cmd
    };
    let card = account(ALICE);
    let out = tokio::task::spawn_blocking({
        let mut cmd = run(&["card", "status", &card]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("tries 0/3"),
        "{out:?}"
    );
    let out = tokio::task::spawn_blocking({
        let mut cmd = run(&["keys", "ls"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listing.contains("zmk") && listing.contains("pvk/wallet"),
        "{listing}"
    );
    let out = tokio::task::spawn_blocking({
        let mut cmd = run(&["card", "unblock", "card-000000000000000000000000"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no PIN record"), "{stderr}");
    let missing = std::process::Command::new(bin)
        .args(["--socket", "/nonexistent/switch.sock", "keys", "ls"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    lab.assert_books().await;
}

#[test]
fn host_switch_keys_loads_components_from_stdin_and_lists_them() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let kek = dir.path().join("kek");
    std::fs::write(&kek, KEK_HEX).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("switch.toml");
    std::fs::write(
        &config,
        format!(
            "[listen]\naddress = \"127.0.0.1:0\"\nmode = \"plain\"\n[ledger]\nurl = \"http://127.0.0.1:1\"\n[keys]\nstore = \"{}\"\nkek_file = \"{}\"\n",
            dir.path().join("keys.json").display(),
            kek.display()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_host-switch");
    let input: String = ZMK_COMPONENTS
        .iter()
        .map(|c| {
            let kcv = crypto::kcv(&hex_bytes(c)).unwrap();
            format!("{c} {kcv}\n")
        })
        .collect();
    let mut child = std::process::Command::new(bin)
        .args(["keys", "load-components", "--config"])
        .arg(&config)
        .args(["zmk", "--usage", "zone_master"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let zmk_kcv = crypto::kcv(&clear_key(ZMK_COMPONENTS)).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("zmk v1") && stdout.contains(&zmk_kcv.to_string()),
        "{stdout}"
    );
    assert!(
        !stdout.contains(ZMK_COMPONENTS[0]),
        "components are never printed"
    );

    let out = std::process::Command::new(bin)
        .args(["keys", "list", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("zone_master"));

    let bad = std::process::Command::new(bin)
        .args(["keys", "load-components", "--config"])
        .arg(&config)
        .args(["zmk", "--usage", "zone_master"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
}

// ── Issue 14: PIN guessing, failing open, PVK versions ──

/// A second version of the lab's PVK (other components): what an issuer loads to move its cards
/// to a new key over time, the cards made under version 1 still in use.
const PVK2_COMPONENTS: [&str; 2] = [
    "3B5D7F9113355779E0C2A48668AACCEE",
    "4C6E8092A4B6C8DA1F3D5B7997B5D3F1",
];
/// The test's terminal (field 41 of every test message).
const TERMINAL: &str = "ATM00001";

impl Fixture {
    /// Loads the next version of `pvk/wallet` (the switch must not be running).
    fn load_second_pvk(&self) {
        let store = SoftwareKeyStore::open(&self.path("keys.json"), kek_value()).unwrap();
        load(
            &store,
            "pvk/wallet",
            KeyUsage::PinVerification,
            PVK2_COMPONENTS,
        );
    }

    /// The cards file with ALICE's PVV made under PVK version 1 (PVKI 1) and BOB_POOR's made
    /// under version 2 (PVKI 2).
    fn write_cards_under_two_pvks(&self) {
        let v1 =
            crypto::visa_pvv(&self.pvk_clear, 1, ALICE_PIN, &Pan::parse(ALICE).unwrap()).unwrap();
        let v2 = crypto::visa_pvv(
            &clear_key(PVK2_COMPONENTS),
            2,
            ALICE_PIN,
            &Pan::parse(BOB_POOR).unwrap(),
        )
        .unwrap();
        let text = format!(
            "[[card]]\ncard = \"{}\"\npvki = 1\npvv = \"{}\"\n\n[[card]]\ncard = \"{}\"\npvki = 2\npvv = \"{}\"\n",
            account(ALICE),
            v1.as_str(),
            account(BOB_POOR),
            v2.as_str()
        );
        std::fs::write(self.path("cards.toml"), text).unwrap();
    }
}

/// The PIN guesses of a 4-digit PIN, in order.
fn every_pin() -> impl Iterator<Item = String> {
    (0..10_000).map(|n| format!("{n:04}"))
}

/// Sends `message(i)` with the block of the i-th PIN of [`every_pin`] until the switch answers 75;
/// returns how many requests were verified (the last of them is the one that blocked the card).
/// Any other answer than 55 before that fails the test: a 00 is a guessed PIN.
async fn guess_until_blocked(
    c: &mut IsoClient,
    agent: &Agent,
    v: u32,
    message: impl Fn(usize) -> Message,
) -> usize {
    for (i, guess) in every_pin().enumerate() {
        let block = agent.pin_block(&guess, ALICE, v);
        let r = c.request(&with_pin(message(i), &block, v)).await;
        match code(&r) {
            "55" => {}
            "75" => return i + 1,
            other => panic!("guess {i} answered {other}: the PIN was guessed"),
        }
    }
    panic!("10,000 guesses and the card is not blocked")
}

#[tokio::test]
async fn guessing_every_pin_through_balance_inquiries_blocks_the_card_after_max_tries() {
    let (lab, fx, agent, mut c, v) = pin_lab(Method::VisaPvv, 300).await;
    let right = agent.pin_block(ALICE_PIN, ALICE, v);

    // Fields 41, 11 and 7 kept, field 52 changed: every block is a guess and is counted.
    let verified = guess_until_blocked(&mut c, &agent, v, |_| balance_inquiry(100, ALICE)).await;
    assert_eq!(verified, 3, "blocked by the max_tries-th wrong PIN");
    assert_eq!(fx.tries(ALICE).await, (3, true));
    let r = c
        .request(&with_pin(balance_inquiry(101, ALICE), &right, v))
        .await;
    assert_eq!(code(&r), "75", "blocked: the right PIN is refused");
    let r = c
        .request(&with_pin(withdrawal(102, ALICE, 1_000), &right, v))
        .await;
    assert_eq!(code(&r), "75");

    // A new STAN for every guess: the same.
    fx.control(Request::card_unblock(ALICE)).await.unwrap();
    let verified = guess_until_blocked(&mut c, &agent, v, |i| {
        balance_inquiry(1_000 + i as u32, ALICE)
    })
    .await;
    assert_eq!(verified, 3);
    let r = c
        .request(&with_pin(balance_inquiry(200, ALICE), &right, v))
        .await;
    assert_eq!(code(&r), "75");
    assert_eq!(fx.tries(ALICE).await, (3, true));
    assert_eq!(lab.balance(ALICE).await["held_minor"], 0);
    lab.assert_books().await;
}

#[tokio::test]
async fn a_repeated_inquiry_counts_once_only_with_the_same_pin_block() {
    let (lab, fx, agent, mut c, v) = pin_lab(Method::VisaPvv, 300).await;
    let (a, b) = (
        agent.pin_block("1111", ALICE, v),
        agent.pin_block("2222", ALICE, v),
    );
    let q = |block: &str| with_pin(balance_inquiry(7, ALICE), block, v);
    assert_eq!(code(&c.request(&q(&a)).await), "55");
    assert_eq!(code(&c.request(&q(&a)).await), "55", "a replay");
    assert_eq!(fx.tries(ALICE).await, (1, false));
    assert_eq!(code(&c.request(&q(&b)).await), "55", "another block");
    assert_eq!(fx.tries(ALICE).await, (2, false));
    lab.assert_books().await;
}

/// A PIN lab whose `[pin]` is changed by `tune` before the switch starts.
async fn pin_lab_with(tune: impl FnOnce(&mut PinConfig)) -> (Lab, Fixture, Agent, IsoClient, u32) {
    let fixture = Fixture::new(Method::VisaPvv);
    let mut extra = fixture.config(Method::VisaPvv, 300, 0);
    tune(extra.pin.as_mut().unwrap());
    let lab = Lab::start_with(extra).await;
    let agent = Agent::new();
    let mut c = lab.client().await;
    let version = agent.fetch_zpk(&mut c, 900).await;
    (lab, fixture, agent, c, version)
}

#[tokio::test]
async fn a_terminal_past_its_wrong_pin_limit_is_refused_58_without_verifying() {
    let (lab, fx, agent, mut c, v) = pin_lab_with(|pin| {
        pin.max_tries = 5;
        pin.card_max_wrong = 5;
        pin.terminal_max_wrong = 3;
    })
    .await;
    let wrong = agent.pin_block("9999", ALICE, v);
    for stan in 1..=3 {
        let r = c
            .request(&with_pin(balance_inquiry(stan, ALICE), &wrong, v))
            .await;
        assert_eq!(code(&r), "55", "attempt {stan}");
    }
    let right = agent.pin_block(ALICE_PIN, ALICE, v);
    let r = c
        .request(&with_pin(withdrawal(4, ALICE, 1_000), &right, v))
        .await;
    assert_eq!(
        code(&r),
        "58",
        "the terminal is refused, even with the right PIN"
    );
    let r = c
        .request(&with_pin(balance_inquiry(5, ALICE), &wrong, v))
        .await;
    assert_eq!(code(&r), "58");
    assert_eq!(
        fx.tries(ALICE).await,
        (3, false),
        "nothing verified, nothing counted"
    );
    // Not recorded: the refusal is no answer a replay must repeat.
    assert_eq!(lab.balance(ALICE).await["held_minor"], 0);
    let r = c.request(&deposit(6, ALICE, 1_000)).await;
    assert_eq!(code(&r), "00", "a deposit without a PIN block takes no PIN");
    lab.assert_books().await;
}

#[tokio::test]
async fn a_card_past_its_wrong_pin_limit_is_refused_75_even_after_right_pins() {
    let (lab, fx, agent, mut c, v) = pin_lab_with(|pin| {
        pin.max_tries = 3;
        pin.card_max_wrong = 3;
    })
    .await;
    let wrong = agent.pin_block("9999", ALICE, v);
    let right = agent.pin_block(ALICE_PIN, ALICE, v);
    // Two guesses, the cardholder's right PIN (the counter goes back to 0), one more guess.
    for (stan, block, expected) in [
        (1, &wrong, "55"),
        (2, &wrong, "55"),
        (3, &right, "00"),
        (4, &wrong, "55"),
    ] {
        let r = c
            .request(&with_pin(balance_inquiry(stan, ALICE), block, v))
            .await;
        assert_eq!(code(&r), expected, "attempt {stan}");
    }
    assert_eq!(fx.tries(ALICE).await, (1, false));
    let r = c
        .request(&with_pin(balance_inquiry(5, ALICE), &right, v))
        .await;
    assert_eq!(code(&r), "75", "three wrong PINs in the card's window");
    assert_eq!(
        fx.tries(ALICE).await,
        (1, false),
        "refused without verifying"
    );
    lab.assert_books().await;
}

#[tokio::test]
async fn wrong_pins_and_refusals_are_security_events_with_the_terminal_and_no_card_data() {
    let logs = testkit::evidence::CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (lab, _fx, agent, mut c, v) = pin_lab_with(|pin| {
        pin.max_tries = 3;
        pin.terminal_max_wrong = 3;
    })
    .await;
    let wrong = agent.pin_block("9999", ALICE, v);
    for stan in 1..=4 {
        c.request(&with_pin(balance_inquiry(stan, ALICE), &wrong, v))
            .await;
    }
    let lines = logs.lines_with(" security:");
    let find = |what: &str| {
        lines
            .iter()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no security event {what:?} in {lines:#?}"))
            .clone()
    };
    for what in ["wrong PIN: 55", "wrong PIN: card blocked, 75", "refused 58"] {
        let line = find(what);
        assert!(line.contains(&format!("terminal={TERMINAL}")), "{line}");
    }
    let pan = Pan::parse(ALICE).unwrap();
    let everything = logs.text();
    for secret in [ALICE.to_owned(), pan.masked().to_string(), wrong.clone()] {
        assert!(!everything.contains(&secret), "{secret} in the logs");
    }
    lab.assert_books().await;
}

#[tokio::test]
async fn a_second_pvk_version_mapped_by_pvk_index_keeps_cards_of_the_first_verifying() {
    let fixture = Fixture::new(Method::VisaPvv);
    fixture.load_second_pvk();
    fixture.write_cards_under_two_pvks();
    let mut extra = fixture.config(Method::VisaPvv, 300, 0);
    extra.pin.as_mut().unwrap().bins[0].pvki = [("1".to_owned(), 1), ("2".to_owned(), 2)]
        .into_iter()
        .collect();
    let lab = Lab::start_with(extra).await;
    let agent = Agent::new();
    let mut c = lab.client().await;
    let v = agent.fetch_zpk(&mut c, 900).await;
    let right = agent.pin_block(ALICE_PIN, ALICE, v);
    let r = c
        .request(&with_pin(withdrawal(1, ALICE, 1_000), &right, v))
        .await;
    assert_eq!(code(&r), "00", "PVV made under version 1 (PVKI 1)");
    let bob = agent.pin_block(ALICE_PIN, BOB_POOR, v);
    let r = c
        .request(&with_pin(balance_inquiry(2, BOB_POOR), &bob, v))
        .await;
    assert_eq!(code(&r), "00", "PVV made under version 2 (PVKI 2)");
    let wrong = agent.pin_block("9999", ALICE, v);
    let r = c
        .request(&with_pin(balance_inquiry(3, ALICE), &wrong, v))
        .await;
    assert_eq!(code(&r), "55");
    assert_eq!(fixture.tries(ALICE).await, (1, false));
    lab.assert_books().await;
}

#[tokio::test]
async fn a_second_pvk_version_without_a_pvk_index_map_refuses_to_start() {
    let fixture = Fixture::new(Method::VisaPvv);
    fixture.load_second_pvk();
    let mut lab = Lab::start().await;
    lab.stop_switch().await;
    lab.extra = fixture.config(Method::VisaPvv, 300, 0);
    ensure_card_ref_key(lab.extra.keys.as_ref().unwrap());
    let err = match host_switch::runtime::start(&lab.config()).await {
        Ok(_) => panic!("started with two PVK versions and no PVKI map"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("pvk/wallet") && err.contains("pvki") && err.contains("476173"),
        "{err}"
    );
}

#[tokio::test]
async fn a_switch_whose_wallet_route_has_no_pin_rule_refuses_to_start() {
    let mut lab = Lab::start().await;
    lab.stop_switch().await;
    // Built in code, never parsed: the start itself refuses.
    let mut config = lab.config();
    config.pin = None;
    let err = match host_switch::runtime::start(&config).await {
        Ok(_) => panic!("started with a wallet route and no PIN rule"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("wallet route \"476173\""), "{err}");
    // The daemon, from its file.
    let file = lab.dir.path().join("no-pin.toml");
    std::fs::write(&file, config.to_toml().unwrap()).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_host-switch"))
            .arg("--config")
            .arg(&file)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("wallet route \"476173\"") && stderr.contains("pin.exempt"),
        "{stderr}"
    );
}

/// The zone PIN key shared with the bank host, by components (the host holds the same clear key).
const BANK_ZPK_COMPONENTS: [&str; 2] = [
    "4C4C4C4C3B3B3B3B5D5D5D5D2A2A2A2A",
    "0101010170707070161616166B6B6B6B",
];
const BANK_PIN: &str = "4321";

/// A PIN lab whose cards starting with 5 go to a bankhost-sim that checks PINs under its own
/// zone PIN key; `with_zpk`: the switch has that key (`zpk/acme`) and translates to it.
async fn bank_pin_lab(
    with_zpk: bool,
) -> (
    Lab,
    Fixture,
    Agent,
    IsoClient,
    u32,
    bankhost_sim::RunningBankHost,
) {
    let fixture = Fixture::new(Method::VisaPvv);
    if with_zpk {
        let store = SoftwareKeyStore::open(&fixture.path("keys.json"), kek_value()).unwrap();
        load(&store, "zpk/acme", KeyUsage::ZonePin, BANK_ZPK_COMPONENTS);
    }
    let mut sim = bankhost_sim::BankHostConfig::new();
    sim.cards
        .push(bankhost_sim::CardConfig::new(BANK_CARD, 100_000).with_pin(BANK_PIN));
    sim.zpk_hex = Some(
        clear_key(BANK_ZPK_COMPONENTS)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect(),
    );
    let host = bankhost_sim::start(sim).await.unwrap();
    let mut extra = fixture.config(Method::VisaPvv, 300, 0);
    let mut bank =
        host_switch::config::BankHostConfig::new("acme", host.addr().to_string(), "1234567");
    bank.zpk = with_zpk.then(|| "zpk/acme".to_owned());
    extra.bank = Some(bank);
    let lab = Lab::start_with(extra).await;
    let agent = Agent::new();
    let mut c = lab.client().await;
    let version = agent.fetch_zpk(&mut c, 900).await;
    let switch = lab.switch().switch.clone();
    testkit::wait::wait_until("the switch to sign on at the bank host", 10, || {
        let s = switch.clone();
        async move { s.issuer_status("acme").is_some_and(|st| st.connected) }
    })
    .await;
    (lab, fixture, agent, c, version, host)
}

#[tokio::test]
async fn bank_card_pins_are_translated_to_the_hosts_key_and_checked_there() {
    let (_lab, _fx, agent, mut c, v, host) = bank_pin_lab(true).await;
    let right = agent.pin_block(BANK_PIN, BANK_CARD, v);
    let r = c
        .request(&with_pin(withdrawal(1, BANK_CARD, 10_000), &right, v))
        .await;
    assert_eq!(code(&r), "00", "the host read the right PIN under its key");
    let wrong = agent.pin_block("1111", BANK_CARD, v);
    let r = c
        .request(&with_pin(withdrawal(2, BANK_CARD, 10_000), &wrong, v))
        .await;
    assert_eq!(code(&r), "55", "the host's verdict reaches the terminal");
    let sent = host.handle().received();
    let block = sent
        .iter()
        .find(|e| e.mti.as_str() == "0100")
        .and_then(|e| e.request.get(52))
        .unwrap()
        .to_vec();
    assert_eq!(block.len(), 8, "a binary spec carries 8 bytes");
    assert_ne!(
        hex_bytes(&right),
        block,
        "never forwarded under our own zone key"
    );
}

#[tokio::test]
async fn a_pin_is_never_sent_to_a_host_without_its_zone_pin_key() {
    let (_lab, _fx, agent, mut c, v, host) = bank_pin_lab(false).await;
    let block = agent.pin_block(BANK_PIN, BANK_CARD, v);
    let r = c
        .request(&with_pin(withdrawal(1, BANK_CARD, 10_000), &block, v))
        .await;
    assert_eq!(code(&r), "96");
    assert!(
        !host
            .handle()
            .received()
            .iter()
            .any(|e| e.mti.as_str() == "0100"),
        "nothing was sent"
    );
}
