//! An in-memory certificate authority for tests and for `atm-lab`.
//!
//! [`TestPki::generate`] makes a fresh CA (ECDSA P-256, via rcgen with ring) that lives only in
//! memory; it then issues a switch certificate ([`TestPki::server_cert`]) and agent certificates
//! ([`TestPki::client_cert`], one DNS SAN per terminal id). Two calls give two unrelated CAs, which
//! is how tests present "a certificate from the wrong CA". [`TestPki::write_to_dir`] writes the
//! usual file set so the lab and the README can point real processes at it.
//!
//! [`TestPki::crl_pem`] issues a certificate revocation list withdrawing chosen certificates, so
//! tests can show that a revoked agent or switch is refused.
//!
//! This is not a production CA: no serial bookkeeping, and certificates valid for rcgen's default
//! span (1975 to 4096).

use std::fmt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{ClientTlsFiles, ServerTlsFiles, TlsError};

/// Host names in the switch certificate written by [`TestPki::write_to_dir`].
pub const LAB_SWITCH_HOSTNAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];
/// Common name of the agent certificate written by [`TestPki::write_to_dir`].
pub const LAB_AGENT_COMMON_NAME: &str = "agent-lab";
/// Terminal ids (DNS SANs) of the agent certificate written by [`TestPki::write_to_dir`].
pub const LAB_TERMINAL_IDS: &[&str] = &["ATM00001", "ATM00002", "ATM00003", "ATM00004"];

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct CertifiedKeyPem {
    /// The leaf certificate (`BEGIN CERTIFICATE`).
    pub cert_pem: String,
    /// Its private key (`BEGIN PRIVATE KEY`, PKCS#8).
    pub key_pem: String,
}

/// Hides the key: test keys still should not end up in logs by habit.
impl fmt::Debug for CertifiedKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertifiedKeyPem")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// An in-memory CA. See the module documentation.
pub struct TestPki {
    ca_cert: Certificate,
    ca_key: KeyPair,
}

impl fmt::Debug for TestPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPki").finish_non_exhaustive()
    }
}

/// The paths written by [`TestPki::write_to_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiFiles {
    /// `ca.pem`: the CA certificate, trusted by both sides.
    pub ca: PathBuf,
    /// `switch.pem`: the switch certificate.
    pub switch_cert: PathBuf,
    /// `switch.key`: the switch private key (mode 0600 on Unix).
    pub switch_key: PathBuf,
    /// `agent.pem`: the agent certificate.
    pub agent_cert: PathBuf,
    /// `agent.key`: the agent private key (mode 0600 on Unix).
    pub agent_key: PathBuf,
}

impl PkiFiles {
    /// The switch's view of these files.
    pub fn server_files(&self) -> ServerTlsFiles {
        ServerTlsFiles {
            cert: self.switch_cert.clone(),
            key: self.switch_key.clone(),
            client_ca: self.ca.clone(),
        }
    }

    /// The agent's view of these files.
    pub fn client_files(&self) -> ClientTlsFiles {
        ClientTlsFiles {
            cert: self.agent_cert.clone(),
            key: self.agent_key.clone(),
            server_ca: self.ca.clone(),
        }
    }
}

impl TestPki {
    /// Makes a fresh CA.
    ///
    /// # Panics
    /// Only if ring cannot generate or sign with a P-256 key, which means the process is broken.
    pub fn generate() -> TestPki {
        Self::try_generate().expect("ring failed to generate a P-256 CA key")
    }

    /// Makes a fresh CA, reporting a failure instead of panicking.
    pub fn try_generate() -> Result<TestPki, TlsError> {
        let ca_key = KeyPair::generate()?;
        // A name unique to this CA (from its public key): two test CAs with one name would make
        // a wrong-CA certificate fail as "bad signature" instead of the clearer "unknown issuer".
        let fingerprint: String = ca_key.public_key_raw()[1..9]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(
            DnType::CommonName,
            format!("ATM gateway test CA {fingerprint}"),
        );
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = params.self_signed(&ca_key)?;
        Ok(TestPki { ca_cert, ca_key })
    }

    /// The CA certificate, PEM: the trust anchor for both the switch and the agents.
    pub fn ca_pem(&self) -> String {
        self.ca_cert.pem()
    }

    /// Issues a switch (server) certificate for `hostnames` (DNS names or IP addresses).
    ///
    /// # Panics
    /// If a host name is not ASCII; see [`TestPki::try_server_cert`].
    pub fn server_cert(&self, hostnames: &[&str]) -> CertifiedKeyPem {
        self.try_server_cert(hostnames)
            .unwrap_or_else(|e| panic!("test server certificate for {hostnames:?}: {e}"))
    }

    /// Issues a switch (server) certificate, reporting bad names instead of panicking.
    pub fn try_server_cert(&self, hostnames: &[&str]) -> Result<CertifiedKeyPem, TlsError> {
        let names: Vec<String> = hostnames.iter().map(|h| (*h).to_owned()).collect();
        // rcgen turns names that parse as IP addresses into IP SANs, the rest into DNS SANs.
        let mut params = CertificateParams::new(names)?;
        if let Some(first) = hostnames.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// Issues an agent (client) certificate with subject CN `common_name` and one DNS SAN per
    /// terminal id.
    ///
    /// # Panics
    /// If a name is not ASCII; see [`TestPki::try_client_cert`].
    pub fn client_cert(&self, common_name: &str, terminal_ids: &[&str]) -> CertifiedKeyPem {
        self.try_client_cert(common_name, terminal_ids)
            .unwrap_or_else(|e| panic!("test client certificate for {common_name:?}: {e}"))
    }

    /// Issues an agent (client) certificate, reporting bad names instead of panicking.
    pub fn try_client_cert(
        &self,
        common_name: &str,
        terminal_ids: &[&str],
    ) -> Result<CertifiedKeyPem, TlsError> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.subject_alt_names = terminal_ids
            .iter()
            .map(|id| Ok(rcgen::SanType::DnsName((*id).try_into()?)))
            .collect::<Result<_, rcgen::Error>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    /// Writes `ca.pem`, `switch.pem`, `switch.key`, `agent.pem` and `agent.key` into `dir`
    /// (which must exist), for [`LAB_SWITCH_HOSTNAMES`], [`LAB_AGENT_COMMON_NAME`] and
    /// [`LAB_TERMINAL_IDS`]. Existing files are overwritten.
    pub fn write_to_dir(&self, dir: impl AsRef<Path>) -> Result<PkiFiles, TlsError> {
        self.write_to_dir_with(
            dir,
            LAB_SWITCH_HOSTNAMES,
            LAB_AGENT_COMMON_NAME,
            LAB_TERMINAL_IDS,
        )
    }

    /// Like [`TestPki::write_to_dir`], with the names chosen by the caller.
    pub fn write_to_dir_with(
        &self,
        dir: impl AsRef<Path>,
        switch_hostnames: &[&str],
        agent_common_name: &str,
        terminal_ids: &[&str],
    ) -> Result<PkiFiles, TlsError> {
        let dir = dir.as_ref();
        let switch = self.try_server_cert(switch_hostnames)?;
        let agent = self.try_client_cert(agent_common_name, terminal_ids)?;
        let files = PkiFiles {
            ca: dir.join("ca.pem"),
            switch_cert: dir.join("switch.pem"),
            switch_key: dir.join("switch.key"),
            agent_cert: dir.join("agent.pem"),
            agent_key: dir.join("agent.key"),
        };
        write_file(&files.ca, &self.ca_pem(), false)?;
        write_file(&files.switch_cert, &switch.cert_pem, false)?;
        write_file(&files.switch_key, &switch.key_pem, true)?;
        write_file(&files.agent_cert, &agent.cert_pem, false)?;
        write_file(&files.agent_key, &agent.key_pem, true)?;
        Ok(files)
    }

    /// A CRL (PEM) from this CA withdrawing `revoked` (certificates it issued): what the CA
    /// would publish after an agent's key was stolen. An empty list gives a CRL revoking nothing.
    ///
    /// # Panics
    /// If a certificate does not parse; see [`TestPki::try_crl_pem`].
    pub fn crl_pem(&self, revoked: &[&CertifiedKeyPem]) -> String {
        self.try_crl_pem(revoked)
            .unwrap_or_else(|e| panic!("test CRL: {e}"))
    }

    /// Issues a CRL, reporting a certificate that does not parse instead of panicking.
    pub fn try_crl_pem(&self, revoked: &[&CertifiedKeyPem]) -> Result<String, TlsError> {
        let revoked_certs = revoked
            .iter()
            .map(|cert| {
                Ok(RevokedCertParams {
                    serial_number: serial_of(&cert.cert_pem)?,
                    revocation_time: rcgen::date_time_ymd(2020, 1, 1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, TlsError>>()?;
        let params = CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2020, 1, 1),
            next_update: rcgen::date_time_ymd(4096, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.ca_cert, &self.ca_key)?.pem()?)
    }

    fn issue(&self, params: CertificateParams) -> Result<CertifiedKeyPem, TlsError> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key)?;
        Ok(CertifiedKeyPem {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The serial number of a PEM certificate, as a CRL names it.
fn serial_of(cert_pem: &str) -> Result<SerialNumber, TlsError> {
    let der = crate::files::parse_certs(cert_pem.as_bytes(), "<certificate to revoke>")?;
    let (_, cert) =
        X509Certificate::from_der(der[0].as_ref()).map_err(|e| TlsError::BadPeerCertificate {
            reason: e.to_string(),
        })?;
    Ok(SerialNumber::from(cert.raw_serial().to_vec()))
}

fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), TlsError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    options
        .open(path)
        .and_then(|mut file| file.write_all(contents.as_bytes()))
        .map_err(|error| TlsError::FileUnwritable {
            path: path.to_owned(),
            error,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_pkis_have_different_cas() {
        assert_ne!(TestPki::generate().ca_pem(), TestPki::generate().ca_pem());
    }

    #[test]
    fn non_ascii_terminal_id_is_an_error() {
        let pki = TestPki::generate();
        assert!(matches!(
            pki.try_client_cert("agent", &["ATMé"]),
            Err(TlsError::Pki(_))
        ));
    }

    #[test]
    fn certificate_without_any_name_is_refused_as_identity() {
        let pki = TestPki::generate();
        let cert = pki.client_cert("", &[]);
        let der = crate::files::parse_certs(cert.cert_pem.as_bytes(), "t").unwrap();
        assert!(matches!(
            crate::PeerIdentity::from_certificate(&der[0]),
            Err(TlsError::NoTerminalIds)
        ));
    }

    #[test]
    fn a_crl_is_pem_and_loads() {
        let pki = TestPki::generate();
        let agent = pki.client_cert("agent", &["ATM1"]);
        let pem = pki.crl_pem(&[&agent]);
        assert!(pem.contains("BEGIN X509 CRL"), "{pem}");
        let crls = crate::Crls::from_pem(pem.as_bytes(), "crl").unwrap();
        assert_eq!(crls.len(), 1);
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let cert = TestPki::generate().client_cert("agent", &["ATM1"]);
        assert!(!format!("{cert:?}").contains("PRIVATE KEY"));
    }
}
