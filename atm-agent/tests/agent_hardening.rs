//! The agent's data on disk, its control socket and its uplink's transport: a storage directory
//! left open to others is made private (0700, files 0600) at start, a file where the control
//! socket belongs stops the start instead of being deleted, a plain uplink to another machine is
//! refused, and `uplink.server_crl` is read at start.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use atm_agent::config::Config;
use atm_agent::runtime;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A lab agent: plain uplink to a switch on this machine that is not there (the uplink keeps
/// redialling in the background; nothing here needs it).
fn config(storage: &Path, socket: &Path) -> Config {
    Config::parse(
        &format!(
            r#"
            [ndc]
            listen = "127.0.0.1:0"
            [[terminals]]
            luno = "001"
            terminal_id = "ATM00001"
            profile = "ncr-selfserv-basic"
            address = "127.0.0.1"
            [uplink]
            address = "127.0.0.1:9"
            tls = false
            [storage]
            dir = "{}"
            [control]
            socket = "{}"
            "#,
            storage.display(),
            socket.display()
        ),
        "test agent",
    )
    .unwrap()
}

#[tokio::test]
async fn a_storage_directory_open_to_others_is_made_private_with_its_files_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("agent");
    std::fs::create_dir(&storage).unwrap();
    std::fs::set_permissions(&storage, std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent = runtime::start(&config(&storage, &tmp.path().join("atmctl.sock")))
        .await
        .unwrap();
    assert_eq!(mode(&storage), 0o700);
    let mut pending = vec![storage.clone()];
    let mut files = 0;
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                assert_eq!(mode(&entry.path()), 0o700, "{}", entry.path().display());
                pending.push(entry.path());
            } else if kind.is_file() {
                files += 1;
                assert_eq!(mode(&entry.path()), 0o600, "{}", entry.path().display());
            }
        }
    }
    assert!(files > 0, "the queue and the state made their files");
    agent.shutdown().await;
}

#[tokio::test]
async fn a_file_at_the_control_socket_path_stops_the_start_and_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("atmctl.sock");
    std::fs::write(&socket, b"an operator's notes").unwrap();
    let err = runtime::start(&config(&tmp.path().join("agent"), &socket))
        .await
        .err()
        .expect("refused");
    let text = format!("{:#}", anyhow::Error::from(err));
    assert!(text.contains("atmctl.sock"), "{text}");
    assert!(text.contains("refusing to remove it"), "{text}");
    assert_eq!(std::fs::read(&socket).unwrap(), b"an operator's notes");
}

#[tokio::test]
async fn a_plain_uplink_to_another_machine_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(&tmp.path().join("agent"), &tmp.path().join("atmctl.sock"));
    cfg.uplink.address = "10.20.30.40:8583".into();
    let err = runtime::start(&cfg).await.err().expect("refused");
    assert!(err.to_string().contains("uplink.tls = false"), "{err}");
    assert!(
        !tmp.path().join("agent").exists(),
        "refused before anything was made"
    );
}

#[tokio::test]
async fn a_server_crl_file_without_a_crl_stops_the_start_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (_pki, files) = testkit::pki_in(tmp.path());
    let mut cfg = config(&tmp.path().join("agent"), &tmp.path().join("atmctl.sock"));
    cfg.uplink.tls = true;
    // The CA certificate where its CRL should be.
    cfg.uplink.server_crl = Some(files.ca.clone());
    cfg.tls = Some(atm_agent::config::TlsConfig {
        cert: files.agent_cert.clone(),
        key: files.agent_key.clone(),
        server_ca: files.ca.clone(),
    });
    let err = runtime::start(&cfg).await.err().expect("refused");
    let text = format!("{:#}", anyhow::Error::from(err));
    assert!(text.contains("no certificate revocation list"), "{text}");
    assert!(text.contains("ca.pem"), "{text}");
}
