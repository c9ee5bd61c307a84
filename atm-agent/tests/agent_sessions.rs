//! Host-led sessions (issue 13): the agent identifies a terminal by the address or the port it
//! connects to, leads its start-up whether or not it speaks first, loads its customization as the
//! profile lists it, declines a transaction request it cannot read, and refuses a LUNO from a
//! connection not bound to it.
//!
//! The terminals here are raw NDC over TCP (`RawAtm`), so a test decides every byte: a terminal
//! that stays silent, that rejects a chosen customization message, that sends a broken `11`. The
//! agent runs without a switch (its uplink points at a closed port): nothing here needs one.
//! Every wait is for a condition, with a deadline.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atm_agent::config::{self as agent_config, Config, NdcConfig, StorageConfig, TerminalConfig};
use atm_agent::domain::terminal::TerminalState;
use atm_agent::ports::TerminalStore;
use atm_agent::runtime::RunningAgent;
use firmware_profiles::Profile;
use futures::{SinkExt, StreamExt};
use protocols::framing::FrameCodec;
use protocols::ndc::{HostMessage, TerminalMessage};
use testkit::evidence::CapturedLogs;
use tokio::sync::mpsc;

const BASIC: &str = "ncr-selfserv-basic";

/// An agent serving `terminals`, its uplink down (no switch), its data in `dir`.
async fn agent(dir: &tempfile::TempDir, terminals: Vec<TerminalConfig>) -> RunningAgent {
    let mut uplink = agent_config::uplink_to("127.0.0.1:9");
    uplink.tls = false;
    let mut cfg = Config::new(
        NdcConfig::new("127.0.0.1:0".parse().unwrap()),
        terminals,
        uplink,
    );
    cfg.storage = StorageConfig {
        dir: dir.path().join("agent"),
    };
    let cfg = Config::parse(&cfg.to_toml().unwrap(), "test agent").unwrap();
    atm_agent::runtime::start(&cfg).await.unwrap()
}

fn bound(luno: &str, id: &str, from: Ipv4Addr) -> TerminalConfig {
    TerminalConfig::bound_to(luno, id, BASIC, from.into())
}

/// How a raw terminal answers the host.
#[derive(Clone, Default)]
struct Behaviour {
    /// Its configuration id (answer to command `3`).
    config_id: String,
    /// Rejects data commands whose identifier starts with this, with this reason (`C`).
    reject: Option<(&'static str, &'static str)>,
    /// Sends a power-up with its configuration id as soon as it is connected.
    power_up: bool,
    /// The dialect has a TVN slot in `22` (Advance NDC): written empty.
    tvn_slot: bool,
}

/// A terminal speaking raw NDC: answers command `3` with its configuration id, every other
/// command and data with `9` (or the chosen reject), and records what the host sent.
struct RawAtm {
    luno: String,
    received: Arc<Mutex<Vec<String>>>,
    outgoing: mpsc::Sender<String>,
    closed: Arc<Mutex<bool>>,
}

impl RawAtm {
    async fn connect(agent: SocketAddr, from: Ipv4Addr, luno: &str, b: Behaviour) -> RawAtm {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((from, 0))).unwrap();
        let tcp = socket.connect(agent).await.unwrap();
        let mut framed = tokio_util::codec::Framed::new(tcp, FrameCodec::default());
        let received = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(Mutex::new(false));
        let (outgoing, mut to_send) = mpsc::channel::<String>(8);
        let (rec, done, luno_owned) = (received.clone(), closed.clone(), luno.to_owned());
        if b.power_up {
            let _ = outgoing
                .send(format!("12\x1c{luno}\x1c\x1cB{}", b.config_id))
                .await;
        }
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    f = framed.next() => {
                        let Some(Ok(f)) = f else { break };
                        let text = String::from_utf8_lossy(&f.payload).into_owned();
                        rec.lock().unwrap().push(text.clone());
                        if let Some(answer) = answer(&text, &luno_owned, &b) {
                            if framed.send(bytes::Bytes::from(answer)).await.is_err() {
                                break;
                            }
                        }
                    }
                    Some(m) = to_send.recv() => {
                        if framed.send(bytes::Bytes::from(m)).await.is_err() {
                            break;
                        }
                    }
                }
            }
            *done.lock().unwrap() = true;
        });
        RawAtm {
            luno: luno.to_owned(),
            received,
            outgoing,
            closed,
        }
    }

    async fn send(&self, msg: String) {
        self.outgoing.send(msg).await.unwrap();
    }

    fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }

    fn is_closed(&self) -> bool {
        *self.closed.lock().unwrap()
    }

    /// Host messages whose first field starts with `class` (`1` commands, `3` data, `4` replies).
    fn received_of(&self, class: char) -> Vec<String> {
        self.received()
            .into_iter()
            .filter(|m| m.starts_with(class))
            .collect()
    }
}

fn answer(host: &str, luno: &str, b: &Behaviour) -> Option<String> {
    let fields: Vec<&str> = host.split('\x1c').collect();
    let status = |rest: &str| {
        let tvn = if b.tvn_slot { "\x1c" } else { "" };
        format!("22\x1c{luno}\x1c\x1c{tvn}{rest}")
    };
    match fields.first()? {
        &"1" if fields.get(3) == Some(&"3") => Some(status(&format!("F\x1c6{}", b.config_id))),
        &"1" | &"4" => Some(status("9")),
        &"3" => match b.reject {
            // `A`: a command reject without a reason (dialects without reject reasons).
            Some((id, "A")) if fields.get(3)?.starts_with(id) => Some(status("A")),
            Some((id, reason)) if fields.get(3)?.starts_with(id) => {
                Some(status(&format!("C\x1c{reason}")))
            }
            _ => Some(status("9")),
        },
        _ => None,
    }
}

async fn wait_state(agent: &RunningAgent, terminal: &str, state: TerminalState) {
    testkit::wait::wait_until(&format!("{terminal} {state:?}"), 15, || async {
        agent
            .services
            .registry
            .view(terminal)
            .is_some_and(|v| v.state == state)
    })
    .await;
}

/// Routes this thread's warn-and-above events to `logs` (a `tokio::test` runs the agent's tasks
/// on this thread).
fn capture_warnings(logs: &CapturedLogs) -> tracing::subscriber::DefaultGuard {
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_default(subscriber)
}

#[tokio::test]
async fn a_terminal_that_connects_and_stays_silent_is_loaded_and_brought_into_service() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(&dir, vec![bound("001", "ATM00001", Ipv4Addr::LOCALHOST)]).await;
    let atm = RawAtm::connect(
        agent.ndc_addr,
        Ipv4Addr::LOCALHOST,
        "001",
        Behaviour {
            config_id: "0000".into(),
            ..Behaviour::default()
        },
    )
    .await;
    wait_state(&agent, "ATM00001", TerminalState::InService).await;
    let got = atm.received();
    assert_eq!(got[0], "1\x1c001\x1c\x1c3", "the agent asks first: {got:?}");
    // A stale configuration: taken out of service (it may be in service), then the profile's
    // five messages, configuration id last, then in service.
    let data = atm.received_of('3');
    assert_eq!(data.len(), 5, "{data:?}");
    assert!(data[4].ends_with("\x1c16\x1c0022"), "{data:?}");
    let commands = atm.received_of('1');
    assert!(
        commands.contains(&"1\x1c001\x1c\x1c2".to_owned()),
        "{commands:?}"
    );
    assert!(
        commands.contains(&"1\x1c001\x1c\x1c1".to_owned()),
        "{commands:?}"
    );
    let view = agent.services.registry.view("ATM00001").unwrap();
    assert_eq!(view.config_id.as_deref(), Some("0022"));
    assert!(view.peer.unwrap().starts_with("127.0.0.1:"));
    agent.shutdown().await;
}

#[tokio::test]
async fn a_reconnect_without_power_up_is_back_in_service_without_a_reload_and_replaces_the_old_connection(
) {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(&dir, vec![bound("001", "ATM00001", Ipv4Addr::LOCALHOST)]).await;
    let current = Behaviour {
        config_id: "0022".into(),
        ..Behaviour::default()
    };
    let first = RawAtm::connect(
        agent.ndc_addr,
        Ipv4Addr::LOCALHOST,
        "001",
        Behaviour {
            power_up: true,
            ..current.clone()
        },
    )
    .await;
    wait_state(&agent, "ATM00001", TerminalState::InService).await;
    assert!(first.received_of('3').is_empty(), "configuration current");

    // The network is cut without the first connection closing; the terminal dials again and
    // says nothing.
    let logs = CapturedLogs::default();
    let guard = capture_warnings(&logs);
    let second = RawAtm::connect(agent.ndc_addr, Ipv4Addr::LOCALHOST, "001", current).await;
    testkit::wait::wait_until("the old connection closed", 10, || async {
        first.is_closed()
    })
    .await;
    testkit::wait::wait_until("the new one put in service", 10, || async {
        second
            .received_of('1')
            .contains(&"1\x1c001\x1c\x1c1".to_owned())
    })
    .await;
    wait_state(&agent, "ATM00001", TerminalState::InService).await;
    drop(guard);
    let replaced = logs.lines_with("a new connection replaces the terminal's session");
    assert_eq!(replaced.len(), 1, "{replaced:#?}");
    assert!(replaced[0].contains("ATM00001"), "{}", replaced[0]);
    assert!(
        second.received_of('3').is_empty(),
        "no reload: {:?}",
        second.received()
    );
    assert_eq!(second.received()[0], "1\x1c001\x1c\x1c3");
    assert!(!second.is_closed());
    agent.shutdown().await;
}

#[tokio::test]
async fn a_luno_from_a_connection_not_bound_to_it_is_refused_on_any_message() {
    let dir = tempfile::tempdir().unwrap();
    // ATM00001 connects from 127.0.0.1 to the shared port; ATM00002 has a port of its own.
    let mut own_port = bound("002", "ATM00002", Ipv4Addr::LOCALHOST);
    own_port.listen = Some("127.0.0.1:0".parse().unwrap());
    let agent = agent(
        &dir,
        vec![bound("001", "ATM00001", Ipv4Addr::LOCALHOST), own_port],
    )
    .await;
    let port_of_2 = agent.terminal_addrs["ATM00002"];
    let logs = CapturedLogs::default();
    let guard = capture_warnings(&logs);

    // On ATM00002's port, whoever connects is ATM00002: a power-up in ATM00001's LUNO is refused.
    let intruder = RawAtm::connect(
        port_of_2,
        Ipv4Addr::LOCALHOST,
        "001",
        Behaviour {
            config_id: "0022".into(),
            power_up: true,
            ..Behaviour::default()
        },
    )
    .await;
    testkit::wait::wait_until("intruder closed", 15, || async { intruder.is_closed() }).await;

    // ATM00001 on the shared port is served; a later message in ATM00002's LUNO closes it.
    let atm = RawAtm::connect(
        agent.ndc_addr,
        Ipv4Addr::LOCALHOST,
        "001",
        Behaviour {
            config_id: "0022".into(),
            ..Behaviour::default()
        },
    )
    .await;
    wait_state(&agent, "ATM00001", TerminalState::InService).await;
    atm.send("12\x1c002\x1c\x1cP21".into()).await;
    testkit::wait::wait_until("connection closed", 10, || async { atm.is_closed() }).await;
    wait_state(&agent, "ATM00001", TerminalState::Disconnected).await;
    drop(guard);

    let refused = logs.lines_with("not bound to");
    assert_eq!(refused.len(), 2, "{refused:#?}");
    assert!(
        refused.iter().all(|l| l.contains("security")),
        "{refused:#?}"
    );
    assert!(
        refused[0].contains("ATM00002") && refused[0].contains("claimed_terminal=ATM00001"),
        "{}",
        refused[0]
    );
    assert!(
        refused[1].contains("ATM00001") && refused[1].contains("claimed_terminal=ATM00002"),
        "{}",
        refused[1]
    );
    assert_eq!(
        agent.services.registry.view("ATM00002").unwrap().state,
        TerminalState::Disconnected
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn a_refused_optional_customization_message_is_skipped_and_the_load_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // Advance NDC: rejects carry a reason (`C FS B04`).
    let advance = TerminalConfig::bound_to(
        "000000001",
        "ATM00001",
        "ncr-advance-ndc",
        Ipv4Addr::LOCALHOST.into(),
    );
    let agent = agent(&dir, vec![advance]).await;
    let logs = CapturedLogs::default();
    let guard = capture_warnings(&logs);
    let atm = RawAtm::connect(
        agent.ndc_addr,
        Ipv4Addr::LOCALHOST,
        "000000001",
        Behaviour {
            config_id: "0000".into(),
            reject: Some(("1A", "B04")),
            power_up: true,
            tvn_slot: true,
        },
    )
    .await;
    wait_state(&agent, "ATM00001", TerminalState::InService).await;
    drop(guard);
    assert_eq!(atm.received_of('3').len(), 5);
    let view = agent.services.registry.view("ATM00001").unwrap();
    assert_eq!(view.load_failure, None);
    assert_eq!(view.config_id.as_deref(), Some("0031"));
    let line = logs.lines_with("optional customization message");
    assert!(
        line.len() == 1 && line[0].contains("enhanced_config") && line[0].contains("B04"),
        "{line:#?}"
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn a_refused_required_customization_message_leaves_the_terminal_out_of_service_with_the_reason(
) {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(&dir, vec![bound("001", "ATM00001", Ipv4Addr::LOCALHOST)]).await;
    let atm = RawAtm::connect(
        agent.ndc_addr,
        Ipv4Addr::LOCALHOST,
        "001",
        Behaviour {
            config_id: "0000".into(),
            reject: Some(("12", "A")),
            power_up: true,
            ..Behaviour::default()
        },
    )
    .await;
    testkit::wait::wait_until("load failure recorded", 15, || async {
        agent
            .services
            .registry
            .view("ATM00001")
            .is_some_and(|v| v.load_failure.is_some() && v.state == TerminalState::OutOfService)
    })
    .await;
    let data = atm.received_of('3');
    assert_eq!(data.len(), 3, "stopped at the states: {data:?}");
    assert!(
        !data.iter().any(|d| d.contains("\x1c16\x1c")),
        "no config id"
    );
    assert!(!atm
        .received_of('1')
        .contains(&"1\x1c001\x1c\x1c1".to_owned()));
    assert!(!atm.is_closed(), "the terminal stays connected");

    let socket = agent.control_socket.clone();
    let status = tokio::task::spawn_blocking(move || {
        atm_agent::cli::control::send(&socket, &atm_agent::control_api::Request::Status)
    })
    .await
    .unwrap()
    .unwrap();
    let text = atm_agent::cli::control::render_status(&status);
    assert!(
        text.contains("ATM00001 out of service, customization not loaded: terminal refused states (reason A (command reject))"),
        "{text}"
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn an_unparseable_transaction_request_is_declined_within_the_terminals_timer() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(&dir, vec![bound("001", "ATM00001", Ipv4Addr::LOCALHOST)]).await;
    let profile = Profile::builtin(BASIC).unwrap();
    let atm = RawAtm::connect(
        agent.ndc_addr,
        Ipv4Addr::LOCALHOST,
        "001",
        Behaviour {
            config_id: "0022".into(),
            power_up: true,
            ..Behaviour::default()
        },
    )
    .await;
    wait_state(&agent, "ATM00001", TerminalState::InService).await;
    // Requests the codec refuses (the first of them that it still refuses is sent).
    let broken = [
        "11\x1c001\x1c\x1c\x1c17\x1c;4761739001010010=2512?\x1c\x1cA       \x1c0000000x0000\x1c\x1c\x1c",
        "11\x1c001\x1c\x1c\x1c17\x1c;4761739001010010=2512?\x1c\x1cA       \x1c000000010000\x1czz\x1c\x1c",
        "11\x1c001\x1c\x1c\x1c17\x1c;4761739001010010=2512?",
    ]
    .into_iter()
    .find(|m| TerminalMessage::parse(m.as_bytes(), &profile.dialect).is_err())
    .expect("one of the broken requests still fails to parse");
    let sent = tokio::time::Instant::now();
    atm.send(broken.to_owned()).await;
    testkit::wait::wait_until("a transaction reply", 10, || async {
        !atm.received_of('4').is_empty()
    })
    .await;
    assert!(
        sent.elapsed() < Duration::from_millis(profile.timers.host_reply_ms),
        "inside the terminal's timer"
    );
    let reply = atm.received_of('4').remove(0);
    let HostMessage::TransactionReply(r) =
        HostMessage::parse(reply.as_bytes(), &profile.dialect).unwrap()
    else {
        panic!("not a transaction reply: {reply:?}");
    };
    assert_eq!(r.luno, atm.luno);
    assert_eq!(r.mcn, '7', "the request's MCN echoed");
    assert_eq!(r.next_state, profile.next_states.declined);
    assert_eq!(r.screen, profile.screens.declined);
    assert_eq!(r.card_flag, '0', "card returned");
    assert!(r.notes_to_dispense.iter().all(|n| *n == 0));
    assert!(!atm.is_closed());
    agent.shutdown().await;
}

#[tokio::test]
async fn journal_uploads_are_stored_before_they_are_acknowledged_and_shown_masked_by_atmctl_ej() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(&dir, vec![bound("001", "ATM00001", Ipv4Addr::LOCALHOST)]).await;
    let profile = Profile::builtin(BASIC).unwrap();
    let atm = RawAtm::connect(
        agent.ndc_addr,
        Ipv4Addr::LOCALHOST,
        "001",
        Behaviour {
            config_id: "0022".into(),
            power_up: true,
            ..Behaviour::default()
        },
    )
    .await;
    wait_state(&agent, "ATM00001", TerminalState::InService).await;

    // A block as real terminals send it: no LUNO, characters 1000 to 1000 + its length.
    let text = "CARD 4761739001010010\r\nWITHDRAWAL 100.00\r\n";
    let block = protocols::ndc::JournalUpload::new("", "000001", "261204", "101500", 1000, text);
    let end = block.last_char().unwrap();
    let raw = String::from_utf8(block.encode(&profile.dialect).unwrap()).unwrap();
    atm.send(raw.clone()).await;
    let ack = format!("6\x1c\x1c\x1c1{end:06}");
    testkit::wait::wait_until("the block acknowledged", 10, || async {
        atm.received().contains(&ack)
    })
    .await;
    // Acknowledged means stored.
    let stored = agent.services.state.journal("ATM00001", 10).unwrap();
    let texts: Vec<&str> = stored.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["CARD 4761739001010010", "WITHDRAWAL 100.00"]);

    // Sent again (as after a lost acknowledgement): acknowledged again, not stored twice.
    atm.send(raw).await;
    testkit::wait::wait_until("the block acknowledged twice", 10, || async {
        atm.received().iter().filter(|m| **m == ack).count() == 2
    })
    .await;
    assert_eq!(
        agent.services.state.journal("ATM00001", 10).unwrap().len(),
        2
    );

    // atmctl ej shows the lines, the card number masked unless --reveal.
    let socket = agent.control_socket.clone();
    let shown = atmctl_ej(&socket, &["ATM00001"]).await;
    assert_eq!(shown.0, Some(0), "{shown:?}");
    assert!(shown.1.contains("CARD 476173******0010"), "{shown:?}");
    assert!(!shown.1.contains("4761739001010010"), "{shown:?}");
    assert!(shown.1.contains("WITHDRAWAL 100.00"), "{shown:?}");
    let json = atmctl_ej(&socket, &["ATM00001", "--json", "--last", "1"]).await;
    let json: serde_json::Value = serde_json::from_str(&json.1).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["text"], "WITHDRAWAL 100.00");
    assert_eq!(json[0]["seq"], 2);
    let revealed = atmctl_ej(&socket, &["ATM00001", "--reveal"]).await;
    assert!(revealed.1.contains("4761739001010010"), "{revealed:?}");
    let unknown = atmctl_ej(&socket, &["ATM00009"]).await;
    assert_eq!(unknown.0, Some(3), "{unknown:?}");
    agent.shutdown().await;
}

/// Runs `atmctl ej --socket SOCKET ARGS…` off the runtime (the agent answers on it): exit code
/// and standard output.
async fn atmctl_ej(socket: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_atmctl"));
    cmd.arg("ej").arg("--socket").arg(socket).args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap())
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut uplink = agent_config::uplink_to("127.0.0.1:9");
    uplink.tls = false;
    let mut ndc = NdcConfig::new("127.0.0.1:0".parse().unwrap());
    ndc.max_connections = 1;
    let mut cfg = Config::new(
        ndc,
        vec![bound("001", "ATM00001", Ipv4Addr::LOCALHOST)],
        uplink,
    );
    cfg.storage = StorageConfig {
        dir: dir.path().join("agent"),
    };
    let agent = atm_agent::runtime::start(&cfg).await.unwrap();
    let logs = CapturedLogs::default();
    let guard = capture_warnings(&logs);
    let current = Behaviour {
        config_id: "0022".into(),
        ..Behaviour::default()
    };
    let first = RawAtm::connect(agent.ndc_addr, Ipv4Addr::LOCALHOST, "001", current.clone()).await;
    wait_state(&agent, "ATM00001", TerminalState::InService).await;
    let second = RawAtm::connect(agent.ndc_addr, Ipv4Addr::LOCALHOST, "001", current).await;
    testkit::wait::wait_until("the second connection closed", 10, || async {
        second.is_closed()
    })
    .await;
    drop(guard);
    assert!(second.received().is_empty(), "not a word to it");
    assert!(!first.is_closed(), "the session in place is kept");
    assert_eq!(logs.lines_with("too many terminal connections").len(), 1);
    agent.shutdown().await;
}
