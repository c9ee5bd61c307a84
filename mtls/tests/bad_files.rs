//! Bad TLS files give errors that name the file and say what is wrong with it.

use std::path::Path;

use mtls::{client_config, server_config, ClientTlsFiles, ServerTlsFiles, TestPki, TlsError};

fn lab(dir: &Path) -> mtls::PkiFiles {
    TestPki::generate().write_to_dir(dir).expect("write pki")
}

#[test]
fn missing_key_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let files = lab(dir.path());
    let missing = dir.path().join("nope.key");
    let err = server_config(ServerTlsFiles {
        key: missing.clone(),
        ..files.server_files()
    })
    .unwrap_err();
    assert!(
        matches!(&err, TlsError::FileMissing { path } if *path == missing),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!("{}: file not found", missing.display())
    );
}

#[test]
fn directory_instead_of_file_is_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let files = lab(dir.path());
    let err = client_config(ClientTlsFiles {
        cert: dir.path().to_owned(),
        ..files.client_files()
    })
    .unwrap_err();
    assert!(matches!(err, TlsError::FileUnreadable { .. }), "{err}");
    assert!(err.to_string().contains("cannot read the file"), "{err}");
}

#[test]
fn key_given_as_certificate_says_no_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let files = lab(dir.path());
    let err = server_config(ServerTlsFiles {
        cert: files.switch_key.clone(),
        ..files.server_files()
    })
    .unwrap_err();
    assert!(
        matches!(&err, TlsError::NoCertificate { origin } if origin.ends_with("switch.key")),
        "{err}"
    );
    assert!(err.to_string().contains("no certificate in it"), "{err}");
}

#[test]
fn certificate_given_as_key_says_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let files = lab(dir.path());
    let err = client_config(ClientTlsFiles {
        key: files.agent_cert.clone(),
        ..files.client_files()
    })
    .unwrap_err();
    assert!(
        matches!(&err, TlsError::NoPrivateKey { origin } if origin.ends_with("agent.pem")),
        "{err}"
    );
    assert!(err.to_string().contains("no private key in it"), "{err}");
}

#[test]
fn empty_ca_bundle_says_no_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let files = lab(dir.path());
    let empty = dir.path().join("empty-ca.pem");
    std::fs::write(&empty, "").unwrap();
    let err = server_config(ServerTlsFiles {
        client_ca: empty,
        ..files.server_files()
    })
    .unwrap_err();
    assert!(
        matches!(&err, TlsError::NoCertificate { origin } if origin.ends_with("empty-ca.pem")),
        "{err}"
    );
}

#[test]
fn truncated_pem_is_reported_as_bad_pem() {
    let dir = tempfile::tempdir().unwrap();
    let files = lab(dir.path());
    let pem = std::fs::read_to_string(&files.agent_cert).unwrap();
    let truncated = dir.path().join("truncated.pem");
    std::fs::write(&truncated, &pem[..pem.len() / 2]).unwrap();
    let err = client_config(ClientTlsFiles {
        cert: truncated,
        ..files.client_files()
    })
    .unwrap_err();
    assert!(matches!(err, TlsError::BadPem { .. }), "{err}");
    assert!(
        err.to_string().contains("truncated.pem: not valid PEM"),
        "{err}"
    );
}

#[test]
fn key_that_does_not_match_the_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let files = lab(dir.path());
    let err = server_config(ServerTlsFiles {
        key: files.agent_key.clone(),
        ..files.server_files()
    })
    .unwrap_err();
    assert!(matches!(err, TlsError::Config(_)), "{err}");
}
