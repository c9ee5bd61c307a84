//! The agent side: a [`rustls::ClientConfig`] that presents the agent's certificate and trusts
//! only the CA that signed the switch's certificate (never the system's web roots).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::ClientConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::revocation::{builder_error, Crls};
use crate::{files, provider, TlsError};

/// Where the agent finds its TLS material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsFiles {
    /// The agent's certificate chain (PEM, leaf first).
    pub cert: PathBuf,
    /// The agent's private key (PEM).
    pub key: PathBuf,
    /// The CA bundle (PEM) that the switch's certificate must chain to.
    pub server_ca: PathBuf,
}

/// Builds the agent's TLS configuration from PEM files, without revocation checking.
pub fn client_config(files: ClientTlsFiles) -> Result<Arc<ClientConfig>, TlsError> {
    client_config_with_crls(files, Crls::none())
}

/// Builds the agent's TLS configuration from PEM files; a switch certificate listed in `crls` is
/// refused at the handshake (see [`crate::revocation`] for the policy).
pub fn client_config_with_crls(
    files: ClientTlsFiles,
    crls: Crls,
) -> Result<Arc<ClientConfig>, TlsError> {
    let chain = files::load_certs(&files.cert)?;
    let key = files::load_private_key(&files.key)?;
    let cas = files::load_ca_bundle(&files.server_ca)?;
    build(
        chain,
        key,
        cas,
        &files.server_ca.display().to_string(),
        crls,
    )
}

/// Builds the agent's TLS configuration from in-memory PEM (tests, the lab).
pub fn client_config_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    server_ca_pem: &[u8],
) -> Result<Arc<ClientConfig>, TlsError> {
    let chain = files::parse_certs(cert_pem, "<in-memory client certificate>")?;
    let key = files::parse_private_key(key_pem, "<in-memory client key>")?;
    let origin = "<in-memory server CA>";
    let cas = files::parse_certs(server_ca_pem, origin)?;
    build(chain, key, cas, origin, Crls::none())
}

/// As [`client_config_from_pem`], refusing switch certificates listed in `crls`.
pub fn client_config_from_pem_with_crls(
    cert_pem: &[u8],
    key_pem: &[u8],
    server_ca_pem: &[u8],
    crls: Crls,
) -> Result<Arc<ClientConfig>, TlsError> {
    let chain = files::parse_certs(cert_pem, "<in-memory client certificate>")?;
    let key = files::parse_private_key(key_pem, "<in-memory client key>")?;
    let origin = "<in-memory server CA>";
    let cas = files::parse_certs(server_ca_pem, origin)?;
    build(chain, key, cas, origin, crls)
}

/// Builds the agent's TLS configuration from DER values already in memory.
pub fn client_config_from_der(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    server_cas: Vec<CertificateDer<'static>>,
) -> Result<Arc<ClientConfig>, TlsError> {
    build(
        cert_chain,
        key,
        server_cas,
        "<in-memory server CA>",
        Crls::none(),
    )
}

/// The name the agent expects in the switch's certificate (a DNS name or an IP address), as
/// [`tokio_rustls::TlsConnector::connect`] wants it.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_owned()).map_err(|_| TlsError::BadServerName {
        name: host.to_owned(),
    })
}

fn build(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    server_cas: Vec<CertificateDer<'static>>,
    ca_origin: &str,
    crls: Crls,
) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = Arc::new(files::root_store(server_cas, ca_origin)?);
    let provider = provider();
    let (crls, crl_origin) = crls.into_parts();
    let mut verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone());
    if !crls.is_empty() {
        verifier = verifier.with_crls(crls).only_check_end_entity_revocation();
    }
    let verifier = verifier
        .build()
        .map_err(|e| builder_error(e, &crl_origin, TlsError::ServerVerifier))?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(chain, key)?;
    Ok(Arc::new(config))
}
