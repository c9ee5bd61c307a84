//! Mutual TLS for the agent ↔ switch link.
//!
//! The agent speaks ISO 8583 to the switch over TLS, and both ends prove who they are with
//! certificates signed by the gateway's own CA: the switch proves it is the switch, the agent
//! proves which ATMs it speaks for. This crate is the one place that turns PEM files into rustls
//! configurations and a client certificate into the set of terminal ids it vouches for, so the
//! switch, the agent, the tests and the lab cannot drift apart.
//!
//! Every configuration is built with `rustls::crypto::ring::default_provider()` passed explicitly;
//! nothing here relies on (or installs) a process-wide default crypto provider.
//!
//! # Layout
//!
//! - [`error`]: [`TlsError`], one variant per thing an operator can fix (which file, what is wrong).
//! - [`files`]: load a certificate chain, a private key or a CA bundle from PEM files or memory.
//! - [`server`]: the switch side, a [`rustls::ServerConfig`] that *requires* a client
//!   certificate signed by the agents' CA.
//! - [`client`]: the agent side, a [`rustls::ClientConfig`] that presents the agent's certificate
//!   and trusts only the switch's CA.
//! - [`revocation`]: [`Crls`], the certificate revocation lists both sides may check the peer's
//!   certificate against, and the policy (end-entity only, unknown status refused).
//! - [`identity`]: [`PeerIdentity`], the terminal ids a client certificate vouches for
//!   (subject CN plus DNS SubjectAltNames), read from an accepted connection.
//! - [`pki`]: [`TestPki`], an in-memory CA issuing switch and agent certificates, for tests and
//!   for `atm-lab` at runtime (so it is not behind `cfg(test)`).
//!
//! # Example
//!
//! ```
//! use mtls::{client_config_from_pem, server_config_from_pem, TestPki};
//!
//! let pki = TestPki::generate();
//! let switch = pki.server_cert(&["localhost"]);
//! let agent = pki.client_cert("agent-01", &["ATM00001", "ATM00002"]);
//! let ca = pki.ca_pem();
//! let server = server_config_from_pem(switch.cert_pem.as_bytes(), switch.key_pem.as_bytes(), ca.as_bytes())?;
//! let client = client_config_from_pem(agent.cert_pem.as_bytes(), agent.key_pem.as_bytes(), ca.as_bytes())?;
//! # let _ = (server, client);
//! # Ok::<(), mtls::TlsError>(())
//! ```
#![forbid(unsafe_code)]

pub mod client;
pub mod error;
pub mod files;
pub mod identity;
pub mod pki;
pub mod revocation;
pub mod server;

pub use client::{
    client_config, client_config_from_der, client_config_from_pem,
    client_config_from_pem_with_crls, client_config_with_crls, server_name, ClientTlsFiles,
};
pub use error::TlsError;
pub use identity::PeerIdentity;
pub use pki::{CertifiedKeyPem, PkiFiles, TestPki};
pub use revocation::Crls;
pub use server::{
    server_config, server_config_from_der, server_config_from_pem,
    server_config_from_pem_with_crls, server_config_with_crls, ServerTlsFiles,
};

/// Re-exported so that users build acceptors and connectors against the same versions as the
/// configurations made here.
pub use rustls;
pub use rustls_pki_types;
pub use tokio_rustls;
pub use tokio_rustls::{TlsAcceptor, TlsConnector};

use std::sync::Arc;

/// The crypto provider every configuration in this crate is built with: ring, always passed
/// explicitly so that a second provider linked into the process (or none installed as default)
/// changes nothing.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
