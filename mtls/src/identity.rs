//! Who is on the other end: the terminal ids a client certificate vouches for.
//!
//! An agent may serve one ATM or a whole branch. Its certificate names the agent in the subject
//! common name and carries one DNS SubjectAltName per terminal id (ISO 8583 field 41). The switch
//! reads a [`PeerIdentity`] once per connection, after the handshake, and checks every message's
//! terminal id with [`PeerIdentity::allows`], so a stolen agent certificate cannot transact for
//! ATMs it was not issued for.
//!
//! The certificate has already been verified against the CA by rustls; here it is only parsed.
//! Odd certificates (no CN, a CN that is not text, IP or e-mail SANs, a malformed extension) never
//! panic: unusable names are skipped, and a certificate that yields no name at all is an error.

use std::collections::BTreeSet;
use std::fmt;

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::TlsError;

/// The set of terminal ids a client certificate vouches for: its subject common name plus its DNS
/// SubjectAltNames. Matching is exact (case-sensitive), as terminal ids are compared in field 41.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    common_name: Option<String>,
    subject_alt_names: BTreeSet<String>,
}

impl PeerIdentity {
    /// Reads the identity of the client on an accepted server connection (its leaf certificate).
    pub fn from_connection(
        connection: &rustls::ServerConnection,
    ) -> Result<PeerIdentity, TlsError> {
        let leaf = connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .ok_or(TlsError::NoPeerCertificate)?;
        Self::from_certificate(leaf)
    }

    /// Reads the identity carried by one DER certificate.
    pub fn from_certificate(certificate: &CertificateDer<'_>) -> Result<PeerIdentity, TlsError> {
        let (_, cert) = X509Certificate::from_der(certificate.as_ref()).map_err(|e| {
            TlsError::BadPeerCertificate {
                reason: e.to_string(),
            }
        })?;
        // A certificate may in theory carry several CNs; the first textual one names the peer.
        let common_name = cert
            .subject()
            .iter_common_name()
            .find_map(|attr| attr.as_str().ok())
            .map(str::to_owned)
            .filter(|cn| !cn.is_empty());
        let subject_alt_names = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) if !dns.is_empty() => Some((*dns).to_owned()),
                    _ => None,
                })
                .collect(),
            Ok(None) => BTreeSet::new(),
            // A duplicated or malformed SAN extension: refuse rather than guess which one counts.
            Err(e) => {
                return Err(TlsError::BadPeerCertificate {
                    reason: format!("SubjectAltName: {e}"),
                })
            }
        };
        if common_name.is_none() && subject_alt_names.is_empty() {
            return Err(TlsError::NoTerminalIds);
        }
        Ok(PeerIdentity {
            common_name,
            subject_alt_names,
        })
    }

    /// Whether the certificate vouches for `terminal_id` (its CN or one of its DNS SANs).
    pub fn allows(&self, terminal_id: &str) -> bool {
        self.common_name.as_deref() == Some(terminal_id)
            || self.subject_alt_names.contains(terminal_id)
    }

    /// The subject common name, if the certificate has a textual one.
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The DNS SubjectAltNames, sorted.
    pub fn subject_alt_names(&self) -> impl Iterator<Item = &str> {
        self.subject_alt_names.iter().map(String::as_str)
    }

    /// Every id this identity allows: the CN (if any) followed by the SANs, without duplicates.
    pub fn terminal_ids(&self) -> impl Iterator<Item = &str> {
        let cn = self.common_name();
        cn.into_iter()
            .chain(self.subject_alt_names().filter(move |san| Some(*san) != cn))
    }
}

/// `CN=agent-01 SAN=ATM00001,ATM00002` (either part is left out when absent).
impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(cn) = &self.common_name {
            write!(f, "CN={cn}")?;
            sep = " ";
        }
        if !self.subject_alt_names.is_empty() {
            write!(f, "{sep}SAN=")?;
            for (i, san) in self.subject_alt_names.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                f.write_str(san)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestPki;

    fn identity_of(pem: &str) -> Result<PeerIdentity, TlsError> {
        let certs = crate::files::parse_certs(pem.as_bytes(), "test")?;
        PeerIdentity::from_certificate(&certs[0])
    }

    #[test]
    fn agent_certificate_vouches_for_its_cn_and_each_san() {
        let pki = TestPki::generate();
        let agent = pki.client_cert("agent-01", &["ATM00001", "ATM00002"]);
        let id = identity_of(&agent.cert_pem).unwrap();
        assert_eq!(id.common_name(), Some("agent-01"));
        assert!(id.allows("agent-01"));
        assert!(id.allows("ATM00001"));
        assert!(id.allows("ATM00002"));
        assert!(!id.allows("ATM00003"));
        assert!(!id.allows("atm00001"), "matching is exact");
        assert!(!id.allows(""));
        assert_eq!(
            id.terminal_ids().collect::<Vec<_>>(),
            ["agent-01", "ATM00001", "ATM00002"]
        );
        assert_eq!(id.to_string(), "CN=agent-01 SAN=ATM00001,ATM00002");
    }

    #[test]
    fn certificate_with_only_a_cn_allows_the_cn() {
        let pki = TestPki::generate();
        let agent = pki.client_cert("ATM00009", &[]);
        let id = identity_of(&agent.cert_pem).unwrap();
        assert!(id.allows("ATM00009"));
        assert_eq!(id.to_string(), "CN=ATM00009");
    }

    #[test]
    fn garbage_der_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"\x30", b"\x30\x03\x02\x01\x00", &[0xff; 64]] {
            let err = PeerIdentity::from_certificate(&CertificateDer::from(bytes.to_vec()));
            assert!(matches!(err, Err(TlsError::BadPeerCertificate { .. })));
        }
    }
}
