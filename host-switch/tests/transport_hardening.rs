//! The switch's transport and storage hardening, against a real switch on 127.0.0.1: the cap on
//! connections still in the TLS handshake, revoked agent certificates, a private journal
//! directory. (No ledger is needed: an echo is answered by the switch itself.)

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use host_switch::config::{Config, KeysConfig, LedgerConfig, ListenConfig, TlsConfig};
use host_switch::domain::routing::{Route, RouteEntry};
use host_switch::runtime::{self, StartError};
use mtls::{CertifiedKeyPem, PkiFiles};
use testkit::iso_client::IsoClient;
use testkit::iso_messages::echo;
use tokio::time::timeout;

/// Generous: only a broken switch takes this long.
const STEP: Duration = Duration::from_secs(30);

/// A switch configuration as a file would give it, listening with mutual TLS on 127.0.0.1.
fn config(dir: &Path, files: &PkiFiles, listen: ListenConfig) -> Config {
    let mut cfg = Config::new(listen, LedgerConfig::new("http://127.0.0.1:9"));
    cfg.tls = Some(TlsConfig {
        cert: files.switch_cert.clone(),
        key: files.switch_key.clone(),
        client_ca: files.ca.clone(),
    });
    cfg.journal.path = dir.join("journal");
    // The card reference key every switch needs, in a key store of its own.
    let (kek, store) = testkit::custodian_keys::prepare_card_ref_store(
        dir,
        &testkit::custodian_keys::CustodianKey::test_card_reference(),
    )
    .unwrap();
    cfg.keys = Some(KeysConfig::with_kek_file(store, kek));
    // A bank-host route only: nothing here needs the wallet (or a decision about its PINs).
    cfg.routes = vec![RouteEntry {
        host: None,
        prefix: "5".into(),
        route: Route::BankHost,
    }];
    Config::parse(&cfg.to_toml().unwrap(), "test").unwrap()
}

fn listen() -> ListenConfig {
    ListenConfig::new("127.0.0.1:0".parse().unwrap())
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Whether the switch has closed this connection: a direct, non-blocking read sees the end of
/// the stream (no waiting, no guessing how long a close takes to show).
fn closed_by_the_switch(stream: &std::net::TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    matches!((&*stream).read(&mut byte), Ok(0))
}

#[tokio::test]
async fn silent_connections_beyond_the_handshake_cap_wait_and_a_real_agent_gets_in_once_they_time_out(
) {
    let dir = tempfile::tempdir().unwrap();
    let (_pki, files) = testkit::pki_in(dir.path());
    let mut listen = listen();
    listen.max_handshakes = 2;
    listen.handshake_timeout_ms = 300;
    let switch = runtime::start(&config(dir.path(), &files, listen))
        .await
        .unwrap();
    let addr = switch.local_addr;

    // Twice the cap of connections that never send a ClientHello, queued before the agent.
    let silent: Vec<std::net::TcpStream> = (0..4)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let mut agent = timeout(STEP, IsoClient::connect(addr, &files))
        .await
        .expect("the agent got in within 30 s")
        .expect("the agent's handshake succeeded");

    // Two handshakes at a time: the agent was accepted only after all four silent connections
    // had timed out and been closed (without the cap it gets in at once, beside them).
    for (i, s) in silent.iter().enumerate() {
        assert!(
            closed_by_the_switch(s),
            "silent connection {i} was still open when the agent got in"
        );
    }
    let answer = timeout(STEP, agent.request(&echo(1))).await.unwrap();
    assert_eq!(answer.mti().as_str(), "0810");
    assert_eq!(answer.get_str(39), Some("00"));
    switch.shutdown().await;
}

#[tokio::test]
async fn a_revoked_agent_certificate_is_refused_and_others_still_get_in() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, files) = testkit::pki_in(dir.path());
    let stolen = CertifiedKeyPem {
        cert_pem: std::fs::read_to_string(&files.agent_cert).unwrap(),
        key_pem: std::fs::read_to_string(&files.agent_key).unwrap(),
    };
    let crl = dir.path().join("agents.crl.pem");
    std::fs::write(&crl, pki.crl_pem(&[&stolen])).unwrap();
    let mut listen = listen();
    listen.client_crl = Some(crl);
    let switch = runtime::start(&config(dir.path(), &files, listen))
        .await
        .unwrap();

    let agent = mtls::client_config(files.client_files()).unwrap();
    let err = timeout(STEP, echo_over_tls(switch.local_addr, agent))
        .await
        .unwrap()
        .expect_err("the revoked agent certificate got an answer");
    assert!(!err.is_empty());

    let honest = pki.client_cert("agent-02", &["ATM00002"]);
    let cfg = mtls::client_config_from_pem(
        honest.cert_pem.as_bytes(),
        honest.key_pem.as_bytes(),
        pki.ca_pem().as_bytes(),
    )
    .unwrap();
    let answer = timeout(STEP, echo_over_tls(switch.local_addr, cfg))
        .await
        .unwrap()
        .expect("an agent the CRL does not list is answered");
    assert_eq!(answer.get_str(39), Some("00"));
    switch.shutdown().await;
}

/// One echo over mutual TLS, framed by hand so that a refusal at any step (the handshake, the
/// write, the read: TLS 1.3 lets the client finish before the switch judges its certificate)
/// comes back as an error instead of a panic.
async fn echo_over_tls(
    addr: std::net::SocketAddr,
    cfg: std::sync::Arc<mtls::rustls::ClientConfig>,
) -> Result<protocols::iso8583::Message, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let spec = protocols::iso8583::Spec::iso87_ascii();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = mtls::server_name("localhost").map_err(|e| e.to_string())?;
    let mut tls = mtls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let body = spec.pack(&echo(1)).map_err(|e| e.to_string())?;
    let mut frame = (body.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    tls.write_all(&frame).await.map_err(|e| e.to_string())?;
    let mut len = [0u8; 2];
    tls.read_exact(&mut len).await.map_err(|e| e.to_string())?;
    let mut answer = vec![0u8; u16::from_be_bytes(len) as usize];
    tls.read_exact(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    spec.unpack(&answer).map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_journal_directory_is_made_private_and_a_writable_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_pki, files) = testkit::pki_in(dir.path());
    let cfg = config(dir.path(), &files, listen());
    std::fs::create_dir(&cfg.journal.path).unwrap();
    std::fs::set_permissions(&cfg.journal.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let switch = runtime::start(&cfg).await.unwrap();
    assert_eq!(mode(&cfg.journal.path), 0o700);
    let mut files_seen = 0;
    for entry in std::fs::read_dir(&cfg.journal.path).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            files_seen += 1;
            assert_eq!(mode(&entry.path()), 0o600, "{}", entry.path().display());
        }
    }
    assert!(files_seen > 0, "sled made its files");
    switch.shutdown().await;

    std::fs::set_permissions(&cfg.journal.path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = runtime::start(&cfg).await.err().expect("refused");
    assert!(matches!(err, StartError::DataDir(_)), "{err}");
    let text = format!("{:#}", anyhow::Error::from(err));
    assert!(text.contains("chmod 700"), "{text}");
}

#[tokio::test]
async fn plain_mode_off_loopback_is_refused_at_start_even_when_built_in_code() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::new(
        ListenConfig::new("0.0.0.0:0".parse().unwrap()),
        LedgerConfig::new("http://127.0.0.1:9"),
    );
    cfg.listen.mode = host_switch::config::ListenMode::Plain;
    cfg.journal.path = dir.path().join("journal");
    let err = runtime::start(&cfg).await.err().expect("refused");
    assert!(err.to_string().contains("listen.mode"), "{err}");
    assert!(
        !cfg.journal.path.exists(),
        "refused before anything was opened"
    );
}
