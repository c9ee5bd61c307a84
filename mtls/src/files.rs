//! Loading certificates, private keys and CA bundles from PEM.
//!
//! Files are read whole first and parsed second, so that "the file is missing", "the file cannot
//! be read" and "the file holds no key" are told apart in the error, which always names the file.
//! The same parsers serve in-memory PEM (tests, the lab), labelled with an `origin` such as
//! `<in-memory client CA>`.

use std::path::Path;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::TlsError;

/// Loads a certificate chain (leaf first, then intermediates) from a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    parse_certs(&pem, &path.display().to_string())
}

/// Loads a private key (PKCS#8, PKCS#1 or SEC1) from a PEM file; the first key found is used.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    parse_private_key(&pem, &path.display().to_string())
}

/// Loads a CA bundle (one or more CA certificates) from a PEM file.
pub fn load_ca_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    load_certs(path)
}

/// Loads certificate revocation lists (one or more `X509 CRL` sections) from a PEM file.
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let pem = read(path)?;
    parse_crls(&pem, &path.display().to_string())
}

/// Parses every `X509 CRL` section of `pem`; other sections are skipped, and a PEM without any
/// is refused (an operator who configured a CRL file wants revocation checked, not silently off).
pub fn parse_crls(
    pem: &[u8],
    origin: &str,
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let crls = CertificateRevocationListDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_pem(origin, e))?;
    if crls.is_empty() {
        return Err(TlsError::NoCrl {
            origin: origin.to_owned(),
        });
    }
    Ok(crls)
}

/// Parses every `CERTIFICATE` section of `pem`; other sections are skipped.
/// `origin` names the source in errors.
pub fn parse_certs(pem: &[u8], origin: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_pem(origin, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            origin: origin.to_owned(),
        });
    }
    Ok(certs)
}

/// Parses the first private key section of `pem`. `origin` names the source in errors.
pub fn parse_private_key(pem: &[u8], origin: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsError::NoPrivateKey {
            origin: origin.to_owned(),
        }),
        Err(e) => Err(bad_pem(origin, e)),
    }
}

/// Builds a trust store from CA certificates, refusing an empty bundle and naming `origin` when a
/// certificate cannot serve as a trust anchor.
pub(crate) fn root_store(
    cas: Vec<CertificateDer<'static>>,
    origin: &str,
) -> Result<rustls::RootCertStore, TlsError> {
    if cas.is_empty() {
        return Err(TlsError::NoCertificate {
            origin: origin.to_owned(),
        });
    }
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots.add(ca).map_err(|e| TlsError::BadCaCertificate {
            origin: origin.to_owned(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => TlsError::FileMissing {
            path: path.to_owned(),
        },
        _ => TlsError::FileUnreadable {
            path: path.to_owned(),
            error,
        },
    })
}

fn bad_pem(origin: &str, error: pem::Error) -> TlsError {
    TlsError::BadPem {
        origin: origin.to_owned(),
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_sections_has_no_certificate_and_no_key() {
        let text = b"hello, this is not PEM\n";
        assert!(matches!(
            parse_certs(text, "x.pem"),
            Err(TlsError::NoCertificate { origin }) if origin == "x.pem"
        ));
        assert!(matches!(
            parse_private_key(text, "x.key"),
            Err(TlsError::NoPrivateKey { origin }) if origin == "x.key"
        ));
    }

    #[test]
    fn unterminated_section_is_bad_pem() {
        let text = b"-----BEGIN CERTIFICATE-----\nMIIB\n";
        let err = parse_certs(text, "broken.pem").unwrap_err();
        assert!(matches!(err, TlsError::BadPem { .. }), "{err}");
        assert!(
            err.to_string().starts_with("broken.pem: not valid PEM"),
            "{err}"
        );
    }

    #[test]
    fn missing_file_is_named() {
        let err = load_certs(Path::new("/nonexistent/dir/switch.pem")).unwrap_err();
        assert!(matches!(err, TlsError::FileMissing { .. }));
        assert_eq!(
            err.to_string(),
            "/nonexistent/dir/switch.pem: file not found"
        );
    }

    #[test]
    fn empty_ca_bundle_is_refused() {
        assert!(matches!(
            root_store(Vec::new(), "ca.pem"),
            Err(TlsError::NoCertificate { .. })
        ));
    }
}
