//! The switch side: a [`rustls::ServerConfig`] that requires a client certificate.
//!
//! An agent that presents no certificate, or one not signed by the configured CA, is refused
//! during the handshake; the switch never sees an ISO 8583 byte from it. What a valid certificate
//! *allows* (which terminals) is decided afterwards from [`crate::PeerIdentity`].

use std::path::PathBuf;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::revocation::{builder_error, Crls};
use crate::{files, provider, TlsError};

/// Where the switch finds its TLS material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// The switch's certificate chain (PEM, leaf first).
    pub cert: PathBuf,
    /// The switch's private key (PEM).
    pub key: PathBuf,
    /// The CA bundle (PEM) that agent certificates must chain to.
    pub client_ca: PathBuf,
}

/// Builds the switch's TLS configuration from PEM files, without revocation checking.
pub fn server_config(files: ServerTlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with_crls(files, Crls::none())
}

/// Builds the switch's TLS configuration from PEM files; an agent certificate listed in `crls`
/// is refused at the handshake (see [`crate::revocation`] for the policy).
pub fn server_config_with_crls(
    files: ServerTlsFiles,
    crls: Crls,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = files::load_certs(&files.cert)?;
    let key = files::load_private_key(&files.key)?;
    let cas = files::load_ca_bundle(&files.client_ca)?;
    build(
        chain,
        key,
        cas,
        &files.client_ca.display().to_string(),
        crls,
    )
}

/// Builds the switch's TLS configuration from in-memory PEM (tests, the lab).
pub fn server_config_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: &[u8],
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = files::parse_certs(cert_pem, "<in-memory server certificate>")?;
    let key = files::parse_private_key(key_pem, "<in-memory server key>")?;
    let origin = "<in-memory client CA>";
    let cas = files::parse_certs(client_ca_pem, origin)?;
    build(chain, key, cas, origin, Crls::none())
}

/// As [`server_config_from_pem`], refusing agent certificates listed in `crls`.
pub fn server_config_from_pem_with_crls(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: &[u8],
    crls: Crls,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = files::parse_certs(cert_pem, "<in-memory server certificate>")?;
    let key = files::parse_private_key(key_pem, "<in-memory server key>")?;
    let origin = "<in-memory client CA>";
    let cas = files::parse_certs(client_ca_pem, origin)?;
    build(chain, key, cas, origin, crls)
}

/// Builds the switch's TLS configuration from DER values already in memory.
pub fn server_config_from_der(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_cas: Vec<CertificateDer<'static>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    build(
        cert_chain,
        key,
        client_cas,
        "<in-memory client CA>",
        Crls::none(),
    )
}

fn build(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_cas: Vec<CertificateDer<'static>>,
    ca_origin: &str,
    crls: Crls,
) -> Result<Arc<ServerConfig>, TlsError> {
    let roots = Arc::new(files::root_store(client_cas, ca_origin)?);
    let provider = provider();
    let (crls, crl_origin) = crls.into_parts();
    // No `allow_unauthenticated()`: a client without a certificate fails the handshake.
    let mut verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
    if !crls.is_empty() {
        verifier = verifier.with_crls(crls).only_check_end_entity_revocation();
    }
    let verifier = verifier
        .build()
        .map_err(|e| builder_error(e, &crl_origin, TlsError::ClientVerifier))?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}
