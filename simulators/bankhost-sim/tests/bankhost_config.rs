//! The example configuration loads and runs; a spec file is found relative to the config.

mod support;

use bankhost_sim::{BankHostConfig, SpecChoice};
use support::*;

#[test]
fn the_example_configuration_loads() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/bankhost.example.toml");
    let config = BankHostConfig::load(path).unwrap();
    assert_eq!(config.spec, SpecChoice::Builtin("iso87-binary".into()));
    assert!(!config.cards.is_empty());
    assert!(!config.rules.is_empty());
}

#[test]
fn errors_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:0\"\n[[cards]]\npan = \"5413330089020011\"\nbalance = 5\n",
    )
    .unwrap();
    let e = BankHostConfig::load(&path).unwrap_err().to_string();
    assert!(e.contains("bank.toml"), "{e}");
    assert!(e.contains("balance"), "{e}");
    let e = BankHostConfig::load(dir.path().join("missing.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.toml"), "{e}");
}

#[tokio::test]
async fn a_spec_file_beside_the_config_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let spec = include_str!("../../../protocols/src/iso8583/specs/iso87_binary.toml");
    std::fs::write(dir.path().join("mybank.toml"), spec).unwrap();
    let path = dir.path().join("bankhost.toml");
    std::fs::write(
        &path,
        format!("listen = \"127.0.0.1:0\"\nspec = \"mybank.toml\"\n[[cards]]\npan = \"{PAN}\"\nbalance_minor = 500\n"),
    )
    .unwrap();
    let config = BankHostConfig::load(&path).unwrap();
    assert_eq!(
        config.spec,
        SpecChoice::File(dir.path().join("mybank.toml"))
    );
    let host = bankhost_sim::start(config).await.unwrap();
    let mut c = Client::connect(host.addr()).await;
    assert_eq!(code(&c.call(&withdrawal(PAN, 500, 1)).await), "00");
    host.shutdown().await;

    let mut broken = BankHostConfig::new();
    broken.spec = SpecChoice::File(dir.path().join("nope.toml"));
    let e = bankhost_sim::start(broken).await.err().unwrap().to_string();
    assert!(e.contains("nope.toml"), "{e}");
}
