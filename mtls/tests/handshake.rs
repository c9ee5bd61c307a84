//! Real handshakes over TCP on 127.0.0.1: who gets in, who does not, and what the switch learns
//! about the agent that got in.

mod common;

use std::sync::Arc;
use std::time::Duration;

use mtls::rustls::{self, ClientConfig, ServerConfig};
use mtls::{
    client_config, client_config_from_pem, server_config, server_config_from_pem, CertifiedKeyPem,
    PeerIdentity, TestPki, TlsAcceptor,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

const STEP: Duration = Duration::from_secs(10);

fn server_for(pki: &TestPki) -> Arc<ServerConfig> {
    let switch = pki.server_cert(&["localhost"]);
    server_config_from_pem(
        switch.cert_pem.as_bytes(),
        switch.key_pem.as_bytes(),
        pki.ca_pem().as_bytes(),
    )
    .expect("server config")
}

fn client_with(cert: &CertifiedKeyPem, trusted_ca: &TestPki) -> Arc<ClientConfig> {
    client_config_from_pem(
        cert.cert_pem.as_bytes(),
        cert.key_pem.as_bytes(),
        trusted_ca.ca_pem().as_bytes(),
    )
    .expect("client config")
}

/// What the server side of one connection saw.
type ServerOutcome = Result<(PeerIdentity, Vec<u8>), String>;

/// Accepts one connection: on success reads the identity and 4 bytes, answers "0810".
async fn serve_one(listener: TcpListener, config: Arc<ServerConfig>) -> ServerOutcome {
    let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
    let mut tls = TlsAcceptor::from(config)
        .accept(tcp)
        .await
        .map_err(|e| e.to_string())?;
    let identity = PeerIdentity::from_connection(tls.get_ref().1).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4];
    tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    tls.write_all(b"0810").await.map_err(|e| e.to_string())?;
    tls.shutdown().await.map_err(|e| e.to_string())?;
    Ok((identity, buf.to_vec()))
}

async fn run(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
) -> (ServerOutcome, Result<Vec<u8>, String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server_task = tokio::spawn(serve_one(listener, server));
    let client_result = timeout(STEP, common::exchange(addr, client))
        .await
        .expect("client timed out");
    let server_result = timeout(STEP, server_task)
        .await
        .expect("server timed out")
        .expect("server task panicked");
    (server_result, client_result)
}

#[tokio::test]
async fn agent_with_valid_certificate_connects_and_switch_reads_its_terminals() {
    let pki = TestPki::generate();
    let agent = pki.client_cert("agent-07", &["ATM00071", "ATM00072"]);
    let (server, client) = run(server_for(&pki), client_with(&agent, &pki)).await;

    let (identity, request) = server.expect("server accepted");
    assert_eq!(request, b"0800");
    assert_eq!(client.expect("client exchanged"), b"0810");
    assert_eq!(identity.common_name(), Some("agent-07"));
    assert!(identity.allows("ATM00071"));
    assert!(identity.allows("ATM00072"));
    assert!(!identity.allows("ATM00073"));
    assert_eq!(identity.to_string(), "CN=agent-07 SAN=ATM00071,ATM00072");
}

#[tokio::test]
async fn agent_certificate_from_another_ca_is_refused_at_the_handshake() {
    let pki = TestPki::generate();
    let rogue = TestPki::generate();
    let agent = rogue.client_cert("agent-rogue", &["ATM00001"]);
    // The agent trusts the real switch, but its own certificate comes from the rogue CA.
    let (server, client) = run(server_for(&pki), client_with(&agent, &pki)).await;

    let err = server.expect_err("server must refuse");
    assert!(
        err.contains("UnknownIssuer") || err.contains("unknown issuer"),
        "{err}"
    );
    assert!(client.is_err(), "client must not get an answer");
}

#[tokio::test]
async fn agent_without_certificate_is_refused_at_the_handshake() {
    let pki = TestPki::generate();
    let mut roots = rustls::RootCertStore::empty();
    for ca in mtls::files::parse_certs(pki.ca_pem().as_bytes(), "ca").unwrap() {
        roots.add(ca).unwrap();
    }
    let anonymous =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let (server, client) = run(server_for(&pki), Arc::new(anonymous)).await;

    let err = server.expect_err("server must refuse");
    assert!(err.contains("no certificates"), "{err}");
    assert!(client.is_err(), "client must not get an answer");
}

#[tokio::test]
async fn agent_refuses_a_switch_from_another_ca() {
    let pki = TestPki::generate();
    let rogue = TestPki::generate();
    let agent = pki.client_cert("agent-01", &["ATM00001"]);
    let (server, client) = run(server_for(&rogue), client_with(&agent, &pki)).await;

    let err = client.expect_err("client must refuse");
    assert!(
        err.contains("UnknownIssuer") || err.contains("unknown issuer"),
        "{err}"
    );
    assert!(server.is_err());
}

#[tokio::test]
async fn configs_loaded_from_files_written_by_the_test_pki_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::generate();
    let files = pki.write_to_dir(dir.path()).expect("write pki");
    for name in [
        "ca.pem",
        "switch.pem",
        "switch.key",
        "agent.pem",
        "agent.key",
    ] {
        assert!(dir.path().join(name).is_file(), "{name} written");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files.agent_key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "agent.key is private");
    }

    let server = server_config(files.server_files()).expect("server config from files");
    let client = client_config(files.client_files()).expect("client config from files");
    let (server, client) = run(server, client).await;

    let (identity, _) = server.expect("server accepted");
    assert_eq!(client.expect("client exchanged"), b"0810");
    assert_eq!(
        identity.common_name(),
        Some(mtls::pki::LAB_AGENT_COMMON_NAME)
    );
    for id in mtls::pki::LAB_TERMINAL_IDS {
        assert!(identity.allows(id), "{id}");
    }
}
