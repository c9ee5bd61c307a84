//! A key-encryption key given in an environment variable is removed from the daemon's
//! environment once its key store is open, so no child process inherits it: the switch and the
//! agent. One test in its own binary: it changes the process environment.

use atm_agent::config::Config as AgentConfig;

const KEK: &str = "5be0c3a1d2f4e6b8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7a";

fn child_sees(var: &str) -> bool {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printenv {var} || true"))
        .output()
        .unwrap();
    !out.stdout.is_empty()
}

#[tokio::test]
async fn a_kek_from_the_environment_is_gone_once_the_key_store_is_open() {
    let tmp = tempfile::tempdir().unwrap();
    let (_pki, files) = testkit::pki_in(tmp.path());

    // The switch needs its card reference key: a store made with a KEK file, whose KEK the
    // switch then gets from the environment instead.
    let (kek_file, store) = testkit::custodian_keys::prepare_card_ref_store(
        tmp.path(),
        &testkit::custodian_keys::CustodianKey::test_card_reference(),
    )
    .unwrap();
    let switch_kek = std::fs::read_to_string(kek_file).unwrap();
    std::env::set_var("TEST_SWITCH_KEK", switch_kek.trim());
    assert!(
        child_sees("TEST_SWITCH_KEK"),
        "the test can see what a child inherits"
    );
    let switch_cfg = host_switch::config::Config::parse(
        &format!(
            r#"
            [listen]
            address = "127.0.0.1:0"
            [tls]
            cert = "{}"
            key = "{}"
            client_ca = "{}"
            [journal]
            path = "{}"
            [ledger]
            url = "http://127.0.0.1:9"
            [[routes]]
            prefix = "5"
            route = "bank-host"
            [keys]
            store = "{}"
            kek_env = "TEST_SWITCH_KEK"
            "#,
            files.switch_cert.display(),
            files.switch_key.display(),
            files.ca.display(),
            tmp.path().join("journal").display(),
            store.display(),
        ),
        "test switch",
    )
    .unwrap();
    let switch = host_switch::runtime::start(&switch_cfg).await.unwrap();
    assert!(std::env::var_os("TEST_SWITCH_KEK").is_none());
    assert!(!child_sees("TEST_SWITCH_KEK"));
    switch.shutdown().await;

    std::env::set_var("TEST_AGENT_KEK", KEK);
    let agent_cfg = AgentConfig::parse(
        &format!(
            r#"
            [ndc]
            listen = "127.0.0.1:0"
            [[terminals]]
            luno = "001"
            terminal_id = "ATM00001"
            profile = "ncr-selfserv-basic"
            address = "127.0.0.1"
            [uplink]
            address = "127.0.0.1:9"
            [tls]
            cert = "{}"
            key = "{}"
            server_ca = "{}"
            [storage]
            dir = "{}"
            [keys]
            kek_env = "TEST_AGENT_KEK"
            "#,
            files.agent_cert.display(),
            files.agent_key.display(),
            files.ca.display(),
            tmp.path().join("agent").display(),
        ),
        "test agent",
    )
    .unwrap();
    let agent = atm_agent::runtime::start(&agent_cfg).await.unwrap();
    assert!(std::env::var_os("TEST_AGENT_KEK").is_none());
    assert!(!child_sees("TEST_AGENT_KEK"));
    agent.shutdown().await;
}
