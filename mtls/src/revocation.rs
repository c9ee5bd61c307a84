//! Certificate revocation lists: which certificates the CA has withdrawn before they expire.
//!
//! A stolen agent certificate (an ATM taken away, a disk copied) stays cryptographically valid
//! until it expires; a CRL is how the switch learns to refuse it, and how an agent learns to
//! refuse a switch certificate whose key leaked. Both sides take an optional CRL file (PEM, one or
//! more `X509 CRL` sections, typically one per issuing CA).
//!
//! The policy, the same on both sides:
//! - only the peer's own (end-entity) certificate is checked: an intermediate CA is withdrawn by
//!   removing it from the trust bundle, which every operator can do without a CRL from the root;
//! - a certificate whose issuer has no CRL in the file is refused ("unknown revocation status"):
//!   a CRL file from the wrong CA stops every handshake loudly instead of checking nothing;
//! - an expired CRL (past its `nextUpdate`) is still used: refusing every agent because a CRL was
//!   not refreshed in time would take the whole ATM estate down. Publish CRLs well before
//!   `nextUpdate`; the files are read at start, so a new CRL takes a restart.

use std::path::Path;

use rustls_pki_types::CertificateRevocationListDer;

use crate::{files, TlsError};

/// The CRLs a peer certificate is checked against; [`Crls::none`] checks nothing.
#[derive(Debug, Clone, Default)]
pub struct Crls {
    lists: Vec<CertificateRevocationListDer<'static>>,
    origin: String,
}

impl Crls {
    /// No revocation checking.
    pub fn none() -> Crls {
        Crls::default()
    }

    /// Reads the CRLs of a PEM file; a file without any CRL is an error.
    pub fn load(path: &Path) -> Result<Crls, TlsError> {
        Ok(Crls {
            lists: files::load_crls(path)?,
            origin: path.display().to_string(),
        })
    }

    /// `load` when `path` is given, [`Crls::none`] otherwise (an optional configuration key).
    pub fn load_optional(path: Option<&Path>) -> Result<Crls, TlsError> {
        path.map_or_else(|| Ok(Crls::none()), Crls::load)
    }

    /// Parses in-memory PEM (tests, the lab); `origin` names it in errors.
    pub fn from_pem(pem: &[u8], origin: &str) -> Result<Crls, TlsError> {
        Ok(Crls {
            lists: files::parse_crls(pem, origin)?,
            origin: origin.to_owned(),
        })
    }

    /// Whether any CRL is configured.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// How many CRLs (one per issuing CA, usually).
    pub fn len(&self) -> usize {
        self.lists.len()
    }

    pub(crate) fn into_parts(self) -> (Vec<CertificateRevocationListDer<'static>>, String) {
        (self.lists, self.origin)
    }
}

/// A verifier-builder error, with a broken CRL reported as [`TlsError::BadCrl`] naming its file.
pub(crate) fn builder_error(
    error: rustls::server::VerifierBuilderError,
    crl_origin: &str,
    otherwise: impl FnOnce(rustls::server::VerifierBuilderError) -> TlsError,
) -> TlsError {
    match error {
        rustls::server::VerifierBuilderError::InvalidCrl(e) => TlsError::BadCrl {
            origin: crl_origin.to_owned(),
            reason: format!("{e:?}"),
        },
        other => otherwise(other),
    }
}
