//! The one error type of this crate.
//!
//! Each variant says what is wrong in words an operator can act on, and names the file (or the
//! in-memory source, such as `<in-memory client CA>`) it is about.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while loading TLS material, building a configuration or reading a
/// peer's identity.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file does not exist.
    #[error("{path}: file not found")]
    FileMissing { path: PathBuf },

    /// The file exists but could not be read (permissions, a directory, an I/O error).
    #[error("{path}: cannot read the file: {error}")]
    FileUnreadable { path: PathBuf, error: io::Error },

    /// A file could not be written (only [`crate::TestPki::write_to_dir`] writes files).
    #[error("{path}: cannot write the file: {error}")]
    FileUnwritable { path: PathBuf, error: io::Error },

    /// The PEM text itself is broken (an unterminated section, bad base64, ...).
    #[error("{origin}: not valid PEM: {reason}")]
    BadPem { origin: String, reason: String },

    /// The PEM holds no `CERTIFICATE` section.
    #[error("{origin}: no certificate in it (expected a PEM \"BEGIN CERTIFICATE\" section)")]
    NoCertificate { origin: String },

    /// The PEM holds no private key section (PKCS#8, PKCS#1 or SEC1).
    #[error("{origin}: no private key in it (expected a PEM \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\" section)")]
    NoPrivateKey { origin: String },

    /// A CA certificate could not be used as a trust anchor.
    #[error("{origin}: unusable CA certificate: {reason}")]
    BadCaCertificate { origin: String, reason: String },

    /// rustls refused the configuration (for example: the key does not match the certificate).
    #[error("cannot build the TLS configuration: {0}")]
    Config(#[from] rustls::Error),

    /// The client-certificate verifier could not be built (for example: an empty CA bundle).
    #[error("cannot build the client certificate verifier: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),

    /// The server-certificate verifier (the agent's) could not be built.
    #[error("cannot build the server certificate verifier: {0}")]
    ServerVerifier(#[source] rustls::server::VerifierBuilderError),

    /// The PEM holds no `X509 CRL` section.
    #[error("{origin}: no certificate revocation list in it (expected a PEM \"BEGIN X509 CRL\" section)")]
    NoCrl { origin: String },

    /// A certificate revocation list could not be used (not a CRL, or its DER is broken).
    #[error("{origin}: unusable certificate revocation list: {reason} (re-export it from the CA as PEM)")]
    BadCrl { origin: String, reason: String },

    /// A host name given for the switch is not a valid DNS name or IP address.
    #[error("{name:?} is not a valid server name (a DNS name or an IP address)")]
    BadServerName { name: String },

    /// The peer presented no certificate (the handshake has not completed, or the
    /// configuration does not require client certificates).
    #[error("the peer presented no certificate")]
    NoPeerCertificate,

    /// The peer's certificate could not be parsed.
    #[error("the peer certificate cannot be parsed: {reason}")]
    BadPeerCertificate { reason: String },

    /// The peer's certificate names no terminal: no subject CN and no DNS SubjectAltName.
    #[error("the peer certificate names no terminal (no subject CN and no DNS SubjectAltName)")]
    NoTerminalIds,

    /// The test PKI could not issue a certificate (for example: a name that is not ASCII).
    #[error("cannot issue a test certificate: {0}")]
    Pki(#[from] rcgen::Error),
}
