//! Certificate revocation lists on both sides of the link: a revoked agent certificate is refused
//! by the switch, a revoked switch certificate is refused by the agent, and certificates the CRL
//! does not list still get in. Real handshakes over TCP on 127.0.0.1.

mod common;

use std::sync::Arc;
use std::time::Duration;

use mtls::rustls::{ClientConfig, ServerConfig};
use mtls::{
    client_config_from_pem_with_crls, client_config_with_crls, server_config_from_pem_with_crls,
    server_config_with_crls, CertifiedKeyPem, Crls, TestPki, TlsAcceptor, TlsError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

const STEP: Duration = Duration::from_secs(10);

fn crls(pki: &TestPki, revoked: &[&CertifiedKeyPem]) -> Crls {
    Crls::from_pem(pki.crl_pem(revoked).as_bytes(), "<test CRL>").expect("CRL parses")
}

fn server(pki: &TestPki, switch: &CertifiedKeyPem, crls: Crls) -> Arc<ServerConfig> {
    server_config_from_pem_with_crls(
        switch.cert_pem.as_bytes(),
        switch.key_pem.as_bytes(),
        pki.ca_pem().as_bytes(),
        crls,
    )
    .expect("server config")
}

fn client(pki: &TestPki, agent: &CertifiedKeyPem, crls: Crls) -> Arc<ClientConfig> {
    client_config_from_pem_with_crls(
        agent.cert_pem.as_bytes(),
        agent.key_pem.as_bytes(),
        pki.ca_pem().as_bytes(),
        crls,
    )
    .expect("client config")
}

/// One exchange: the server accepts, reads 4 bytes, answers "0810"; the client sends "0800" and
/// reads the answer. Returns what each side saw.
async fn exchange(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
) -> (Result<(), String>, Result<Vec<u8>, String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server_side = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = TlsAcceptor::from(server)
            .accept(tcp)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        tls.write_all(b"0810").await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())
    });
    let client_side = timeout(STEP, common::exchange(addr, client))
        .await
        .expect("client timed out");
    let server_side = timeout(STEP, server_side)
        .await
        .expect("server timed out")
        .expect("server task panicked");
    (server_side, client_side)
}

#[tokio::test]
async fn a_revoked_agent_certificate_is_refused_by_the_switch() {
    let pki = TestPki::generate();
    let switch = pki.server_cert(&["localhost"]);
    let stolen = pki.client_cert("agent-stolen", &["ATM00001"]);
    let (server_side, client_side) = exchange(
        server(&pki, &switch, crls(&pki, &[&stolen])),
        client(&pki, &stolen, Crls::none()),
    )
    .await;
    let err = server_side.expect_err("the switch must refuse a revoked agent");
    assert!(err.to_lowercase().contains("revoked"), "{err}");
    assert!(client_side.is_err(), "the revoked agent must get no answer");
}

#[tokio::test]
async fn an_agent_the_crl_does_not_list_still_connects() {
    let pki = TestPki::generate();
    let switch = pki.server_cert(&["localhost"]);
    let stolen = pki.client_cert("agent-stolen", &["ATM00001"]);
    let honest = pki.client_cert("agent-honest", &["ATM00002"]);
    let (server_side, client_side) = exchange(
        server(&pki, &switch, crls(&pki, &[&stolen])),
        client(&pki, &honest, crls(&pki, &[])),
    )
    .await;
    server_side.expect("the switch accepts an agent that is not revoked");
    assert_eq!(client_side.expect("answered"), b"0810");
}

#[tokio::test]
async fn a_revoked_switch_certificate_is_refused_by_the_agent() {
    let pki = TestPki::generate();
    let leaked = pki.server_cert(&["localhost"]);
    let agent = pki.client_cert("agent-01", &["ATM00001"]);
    let (server_side, client_side) = exchange(
        server(&pki, &leaked, Crls::none()),
        client(&pki, &agent, crls(&pki, &[&leaked])),
    )
    .await;
    let err = client_side.expect_err("the agent must refuse a revoked switch");
    assert!(err.to_lowercase().contains("revoked"), "{err}");
    assert!(server_side.is_err());
}

#[tokio::test]
async fn a_crl_from_another_ca_refuses_everyone_rather_than_checking_nothing() {
    let pki = TestPki::generate();
    let other = TestPki::generate();
    let switch = pki.server_cert(&["localhost"]);
    let agent = pki.client_cert("agent-01", &["ATM00001"]);
    let (server_side, _) = exchange(
        server(&pki, &switch, crls(&other, &[])),
        client(&pki, &agent, Crls::none()),
    )
    .await;
    let err = server_side.expect_err("unknown revocation status is refused");
    assert!(err.to_lowercase().contains("revocation"), "{err}");
}

#[test]
fn crl_files_are_loaded_and_bad_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate();
    let files = pki.write_to_dir(dir.path()).expect("write pki");
    let crl = dir.path().join("agents.crl.pem");
    std::fs::write(&crl, pki.crl_pem(&[])).unwrap();
    server_config_with_crls(files.server_files(), Crls::load(&crl).unwrap()).expect("server");
    client_config_with_crls(files.client_files(), Crls::load(&crl).unwrap()).expect("client");

    // A certificate where the CRL should be: no CRL in it, and the file is named.
    let err = Crls::load(&files.ca).unwrap_err();
    assert!(matches!(err, TlsError::NoCrl { .. }), "{err}");
    assert!(err.to_string().starts_with(&files.ca.display().to_string()));

    // A CRL section whose DER is not a CRL: refused when the verifier is built, file named.
    let cert_der_as_crl = std::fs::read_to_string(&files.ca)
        .unwrap()
        .replace("CERTIFICATE", "X509 CRL");
    let broken = dir.path().join("broken.crl.pem");
    std::fs::write(&broken, cert_der_as_crl).unwrap();
    let err =
        server_config_with_crls(files.server_files(), Crls::load(&broken).unwrap()).unwrap_err();
    assert!(matches!(err, TlsError::BadCrl { .. }), "{err}");
    assert!(err.to_string().contains("broken.crl.pem"), "{err}");
}
