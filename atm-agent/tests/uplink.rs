//! The uplink against a real switch (plain TCP, lab mode): the link state it reports.

use std::time::Duration;

use atm_agent::adapters::uplink::{Connector, Uplink, UplinkConfig};
use tokio::sync::watch;

/// Regression: the link state was a `watch` value set with `send`, which drops the value when no
/// receiver exists yet — an agent whose start-up was slow (opening its key store) signed on before
/// anything watched the link and reported "down" for ever.
#[tokio::test]
async fn signed_on_is_reported_even_when_nobody_watches_the_link() {
    let dir = tempfile::tempdir().unwrap();
    // Every switch holds its card reference key.
    let (kek, store) = testkit::custodian_keys::prepare_card_ref_store(
        dir.path(),
        &testkit::custodian_keys::CustodianKey::test_card_reference(),
    )
    .unwrap();
    let cfg = host_switch::config::Config::parse(
        &format!(
            r#"
            [listen]
            address = "127.0.0.1:0"
            mode = "plain"
            [journal]
            path = "{}"
            [ledger]
            url = "http://127.0.0.1:9"
            [[routes]]
            prefix = "476173"
            route = "wallet"
            [pin]
            exempt = ["476173"]
            [keys]
            store = "{}"
            kek_file = "{}"
            "#,
            dir.path().join("journal").display(),
            store.display(),
            kek.display()
        ),
        "test switch",
    )
    .unwrap();
    let switch = host_switch::runtime::start(&cfg).await.unwrap();
    let uplink_cfg: UplinkConfig = toml::from_str(&format!(
        "address = \"{}\"\ntls = false\necho_interval_ms = 60000\n",
        switch.local_addr
    ))
    .unwrap();
    let (_stop, stopped) = watch::channel(false);
    let connector = Connector {
        address: uplink_cfg.address.clone(),
        server_name: "localhost".into(),
        tls: None,
        connect_timeout: Duration::from_secs(5),
    };
    let (uplink, _late) = Uplink::start(&uplink_cfg, connector, stopped);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !uplink.is_up() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "signed on, but the uplink says it is down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    switch.shutdown().await;
}
