//! The lab's moving parts outside this process: the switch and the agent as child processes
//! (the lab executable re-run with `--role switch|agent --config FILE`), their configurations,
//! a cuttable TCP relay between agent and switch, and the agent's control socket.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mtls::PkiFiles;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::LabError;

/// A free port on 127.0.0.1 (bound, then released: the child binds it).
pub fn free_port() -> Result<SocketAddr, LabError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| LabError::Start(format!("no free port: {e}")))?;
    l.local_addr()
        .map_err(|e| LabError::Start(format!("no free port: {e}")))
}

/// Which role a child plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Switch,
    Agent,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Switch => "switch",
            Role::Agent => "agent",
        }
    }
}

/// Where a child's log goes when it is kept (an audit run): its stderr, appended to `file` across
/// restarts, at `filter` (`RUST_LOG` syntax).
#[derive(Debug, Clone)]
pub struct ChildLog {
    pub file: PathBuf,
    pub filter: String,
}

/// A child process running one role; killed when dropped.
pub struct ChildRole {
    role: Role,
    exe: PathBuf,
    config: PathBuf,
    log: Option<ChildLog>,
    child: Option<Child>,
    pub restarts: u32,
}

impl ChildRole {
    pub fn spawn(
        exe: &Path,
        role: Role,
        config: &Path,
        log: Option<ChildLog>,
    ) -> Result<Self, LabError> {
        let mut c = ChildRole {
            role,
            exe: exe.to_owned(),
            config: config.to_owned(),
            log,
            child: None,
            restarts: 0,
        };
        c.start()?;
        Ok(c)
    }

    fn start(&mut self) -> Result<(), LabError> {
        let (filter, stderr) = match &self.log {
            Some(l) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&l.file)
                    .map_err(|e| LabError::Start(format!("{}: {e}", l.file.display())))?;
                (l.filter.clone(), Stdio::from(file))
            }
            None => (
                std::env::var("ATM_LAB_CHILD_LOG").unwrap_or_else(|_| "off".into()),
                Stdio::inherit(),
            ),
        };
        let child = Command::new(&self.exe)
            .arg("--role")
            .arg(self.role.name())
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| {
                LabError::Start(format!(
                    "cannot run {} --role {}: {e}",
                    self.exe.display(),
                    self.role.name()
                ))
            })?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    pub fn restart(&mut self) -> Result<(), LabError> {
        self.kill9();
        self.restarts += 1;
        self.start()
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for ChildRole {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A TCP relay that can be cut (all connections dropped, new ones refused) and restored.
pub struct Relay {
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    cut: Arc<Notify>,
}

impl Relay {
    pub async fn start(target: SocketAddr) -> Result<Relay, LabError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| LabError::Start(format!("relay: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| LabError::Start(format!("relay: {e}")))?;
        let open = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(Notify::new());
        let (o, c) = (open.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let c = c.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = c.notified() => {}
                    }
                });
            }
        });
        Ok(Relay { addr, open, cut })
    }
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.cut.notify_waiters();
    }
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// The switch's PIN security in the lab: its key store, the issuer's PVV file, its control socket.
pub struct SwitchPinFiles {
    pub kek_file: PathBuf,
    pub store: PathBuf,
    pub cards_file: PathBuf,
    pub control_socket: PathBuf,
}

/// The switch's `control_socket` line and its `[keys]`/`[pin]` sections for the lab's PIN files
/// (one BIN rule: the lab's wallet cards, Visa PVV under [`super::keys::PVK`], 3 tries).
pub fn switch_pin_config_text(p: &SwitchPinFiles, zpk_grace_secs: u64) -> (String, String) {
    (
        format!("control_socket = \"{}\"\n", p.control_socket.display()),
        format!(
            r#"
[keys]
store = "{store}"
kek_file = "{kek}"
zpk_rotate_secs = 0
zpk_grace_secs = {zpk_grace_secs}
[pin]
max_tries = 3
cards_file = "{cards}"
[[pin.bins]]
prefix = "476173"
method = "visa_pvv"
pvk = "{pvk}"
"#,
            store = p.store.display(),
            kek = p.kek_file.display(),
            cards = p.cards_file.display(),
            pvk = super::keys::PVK,
        ),
    )
}

pub fn switch_config_text(
    files: &PkiFiles,
    listen: SocketAddr,
    journal: &Path,
    ledger_url: &str,
    pin: Option<&SwitchPinFiles>,
) -> String {
    let (control, pin) = pin.map_or((String::new(), String::new()), |p| {
        switch_pin_config_text(p, 300)
    });
    format!(
        r#"{control}
[listen]
address = "{listen}"
[tls]
cert = "{cert}"
key = "{key}"
client_ca = "{ca}"
[journal]
path = "{journal}"
[ledger]
url = "{ledger_url}"
[recovery]
resume_interval_ms = 200
[[routes]]
prefix = "476173"
route = "wallet"
{pin}"#,
        cert = files.switch_cert.display(),
        key = files.switch_key.display(),
        ca = files.ca.display(),
        journal = journal.display(),
    )
}

pub fn terminal_id(i: usize) -> String {
    format!("ATM{:05}", i + 1)
}

pub fn luno(i: usize) -> String {
    format!("{:03}", i + 1)
}

pub fn agent_config_text(
    files: &PkiFiles,
    ndc: SocketAddr,
    uplink: SocketAddr,
    dir: &Path,
    atms: usize,
    kek_file: Option<&Path>,
) -> String {
    let keys = kek_file.map_or(String::new(), |k| {
        format!(
            "[keys]\nkek_file = \"{}\"\ntpk_rotate_secs = 0\n",
            k.display()
        )
    });
    let mut terminals = String::new();
    for i in 0..atms {
        terminals.push_str(&format!(
            "[[terminals]]\nluno = \"{}\"\nterminal_id = \"{}\"\nprofile = \"ncr-selfserv-basic\"\n",
            luno(i),
            terminal_id(i)
        ));
    }
    format!(
        r#"
[ndc]
listen = "{ndc}"
{terminals}
[uplink]
address = "{uplink}"
server_name = "localhost"
echo_interval_ms = 1000
backoff_min_ms = 50
backoff_max_ms = 500
[tls]
cert = "{cert}"
key = "{key}"
server_ca = "{ca}"
[storage]
dir = "{dir}"
[queue]
retry_backoff_min_ms = 20
retry_backoff_max_ms = 500
[timeouts]
authorization_ms = 8000
advice_ms = 4000
{keys}"#,
        cert = files.agent_cert.display(),
        key = files.agent_key.display(),
        ca = files.ca.display(),
        dir = dir.display(),
    )
}

/// The agent's status over its control socket (`None` when it does not answer).
pub async fn agent_status(socket: &Path) -> Option<Value> {
    let socket = socket.to_owned();
    tokio::task::spawn_blocking(move || {
        atm_agent::cli::control::request(&socket, &json!({"cmd": "status"})).ok()
    })
    .await
    .ok()
    .flatten()
}

/// Polls the agent's status until `check` holds or `timeout` passes; the last status seen.
pub async fn wait_agent(
    socket: &Path,
    timeout: Duration,
    check: impl Fn(&Value) -> bool,
) -> (bool, Option<Value>) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    loop {
        if let Some(s) = agent_status(socket).await {
            if check(&s) {
                return (true, Some(s));
            }
            last = Some(s);
        }
        if tokio::time::Instant::now() >= deadline {
            return (false, last);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the agent's key store holds a zone PIN key (fetched from the switch).
pub async fn wait_zone_key(socket: &Path, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        let s = socket.to_owned();
        let keys = tokio::task::spawn_blocking(move || {
            atm_agent::cli::control::request(&s, &json!({"cmd": "keys_ls"})).ok()
        })
        .await
        .ok()
        .flatten();
        if keys
            .as_ref()
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().any(|k| k["name"] == "zpk"))
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The last `n` lines of a child's log file (empty when there is none).
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Waits until something accepts TCP connections at `addr`.
pub async fn wait_listening(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if TcpStream::connect(addr).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
