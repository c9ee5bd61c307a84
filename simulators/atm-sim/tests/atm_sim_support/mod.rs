//! A scripted fake host for the `atm_sim_*` tests: it plays the agent's side of the NDC contract
//! over a real TCP socket (`127.0.0.1:0`, the profile's framing), one expectation at a time, and
//! fails the test with a clear message when the terminal says something else.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use atm_sim::{AtmOptions, AtmSim};
use firmware_profiles::Profile;
use futures::{SinkExt, StreamExt};
use protocols::framing::{Frame, FrameCodec};
use protocols::ndc::{
    Command, DataCommand, DataCommandData, DeviceState, Dialect, FunctionId, HostMessage,
    NumberedValue, PrinterData, Screen, SolicitedStatusInfo, State, SupplyCounters,
    TerminalCommand, TerminalMessage, TerminalState, TransactionReply, TransactionRequest,
    UnsolicitedStatus,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

/// How long the fake host waits for the terminal before failing the test.
pub const WAIT: Duration = Duration::from_secs(5);

pub fn profile(name: &str) -> Profile {
    Profile::builtin(name).expect("built-in profile")
}

/// A LUNO of the right length for the profile's dialect.
pub fn luno_for(p: &Profile) -> String {
    if p.dialect.luno_len == 9 {
        "001000001".to_owned()
    } else {
        "001".to_owned()
    }
}

pub struct FakeHost {
    listener: TcpListener,
    pub addr: SocketAddr,
    pub profile: Profile,
}

impl FakeHost {
    pub async fn bind(profile: Profile) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        Self {
            listener,
            addr,
            profile,
        }
    }

    pub async fn accept(&self) -> HostConn {
        let (stream, _) = tokio::time::timeout(WAIT, self.listener.accept())
            .await
            .expect("the terminal did not dial in")
            .expect("accept");
        let f = &self.profile.framing;
        let codec = FrameCodec::new(f.length_prefix)
            .with_header_len(f.header_len)
            .with_max_frame_len(f.max_frame_bytes);
        HostConn {
            framed: Framed::new(stream, codec),
            dialect: self.profile.dialect.clone(),
            profile: self.profile.clone(),
            luno: luno_for(&self.profile),
        }
    }
}

/// Starts a terminal against a fresh fake host that downloads (if the config id is stale), puts
/// it in service and reads its supply counters.
pub async fn start(profile_name: &str, options: AtmOptions) -> (AtmSim, HostConn, FakeHost) {
    let p = profile(profile_name);
    let host = FakeHost::bind(p.clone()).await;
    let luno = luno_for(&p);
    let (sim, conn) = tokio::join!(AtmSim::connect(host.addr, p, &luno, options), async {
        let mut c = host.accept().await;
        c.start_up().await;
        c
    });
    (sim.expect("terminal start-up"), conn, host)
}

pub struct HostConn {
    framed: Framed<TcpStream, FrameCodec>,
    pub dialect: Dialect,
    pub profile: Profile,
    pub luno: String,
}

impl HostConn {
    pub async fn recv_raw(&mut self) -> Vec<u8> {
        let frame = tokio::time::timeout(WAIT, self.framed.next())
            .await
            .expect("the terminal sent nothing in time")
            .expect("the terminal closed the connection")
            .expect("bad frame");
        frame.payload.to_vec()
    }

    /// The next payload, or `None` when the terminal hangs up.
    pub async fn try_recv_raw(&mut self) -> Option<Vec<u8>> {
        match self.framed.next().await {
            Some(Ok(frame)) => Some(frame.payload.to_vec()),
            _ => None,
        }
    }

    pub async fn recv(&mut self) -> TerminalMessage {
        let raw = self.recv_raw().await;
        TerminalMessage::parse(&raw, &self.dialect).unwrap_or_else(|e| {
            panic!(
                "terminal message does not parse: {e}: {:?}",
                String::from_utf8_lossy(&raw)
            )
        })
    }

    /// Nothing arrives for `ms` (the connection may not close either).
    pub async fn expect_silence(&mut self, ms: u64) {
        if let Ok(got) = tokio::time::timeout(Duration::from_millis(ms), self.framed.next()).await {
            panic!("expected silence, got {got:?}");
        }
    }

    /// The terminal drops the connection without sending anything.
    pub async fn expect_closed(&mut self) {
        match tokio::time::timeout(WAIT, self.framed.next()).await {
            Ok(None) | Ok(Some(Err(_))) => {}
            Ok(Some(Ok(f))) => panic!(
                "expected the connection to drop, got {:?}",
                String::from_utf8_lossy(&f.payload)
            ),
            Err(_) => panic!("the connection stayed open"),
        }
    }

    pub async fn send_raw(&mut self, payload: &[u8]) {
        let header = vec![b'0'; self.profile.framing.header_len];
        self.framed
            .send(Frame {
                header: header.into(),
                payload: payload.to_vec().into(),
            })
            .await
            .expect("send to terminal");
    }

    pub async fn send(&mut self, msg: HostMessage) {
        let bytes = msg.encode(&self.dialect).expect("encode host message");
        self.send_raw(&bytes).await;
    }

    /// Sends `msg` if the terminal is still there; `false` when the connection is gone (a
    /// terminal whose power failed).
    pub async fn try_send(&mut self, msg: HostMessage) -> bool {
        let bytes = msg.encode(&self.dialect).expect("encode host message");
        let header = vec![b'0'; self.profile.framing.header_len];
        self.framed
            .send(Frame {
                header: header.into(),
                payload: bytes.into(),
            })
            .await
            .is_ok()
    }

    pub async fn expect_unsolicited(&mut self) -> UnsolicitedStatus {
        match self.recv().await {
            TerminalMessage::UnsolicitedStatus(s) => s,
            other => panic!("expected an unsolicited status, got {other:?}"),
        }
    }

    /// Power-up `12 … B<config id>`; returns the config id.
    pub async fn expect_power_up(&mut self) -> String {
        let s = self.expect_unsolicited().await;
        assert_eq!(s.luno, self.luno);
        match s.device.state {
            DeviceState::PowerUp { config_id } => config_id,
            other => panic!("expected power-up, got {other:?}"),
        }
    }

    pub async fn expect_solicited(&mut self) -> SolicitedStatusInfo {
        match self.recv().await {
            TerminalMessage::SolicitedStatus(s) => {
                assert_eq!(s.luno, self.luno);
                s.info
            }
            other => panic!("expected a solicited status, got {other:?}"),
        }
    }

    pub async fn expect_ready(&mut self) {
        let info = self.expect_solicited().await;
        assert_eq!(info, SolicitedStatusInfo::Ready);
    }

    /// `9`, or `B` in dialects that report ready after a reply that way.
    pub async fn expect_ready_after_reply(&mut self) {
        match self.expect_solicited().await {
            SolicitedStatusInfo::Ready | SolicitedStatusInfo::ReadyAfterReply { .. } => {}
            other => panic!("expected ready after the reply, got {other:?}"),
        }
    }

    pub async fn command(&mut self, command: Command) -> SolicitedStatusInfo {
        let luno = self.luno.clone();
        self.send(HostMessage::TerminalCommand(TerminalCommand::new(
            luno, command,
        )))
        .await;
        self.expect_solicited().await
    }

    pub async fn supply_counters(&mut self) -> SupplyCounters {
        match self
            .command(Command::SendSupplyCounters { modifier: None })
            .await
        {
            SolicitedStatusInfo::TerminalState(TerminalState::SupplyCounters(c)) => c,
            other => panic!("expected supply counters, got {other:?}"),
        }
    }

    pub fn data_command(&self, data: DataCommandData) -> HostMessage {
        HostMessage::DataCommand(DataCommand {
            response_flag: None,
            luno: self.luno.clone(),
            sequence: String::new(),
            data,
            mac: None,
            extra: Vec::new(),
            trailing_fs: 0,
        })
    }

    /// The profile's customisation, as the agent downloads it.
    pub fn download_commands(&self) -> Vec<HostMessage> {
        let c = &self.profile.customization;
        let values = |v: &[firmware_profiles::OptionDef]| {
            v.iter()
                .map(|o| NumberedValue {
                    number: o.number,
                    value: o.value,
                })
                .collect::<Vec<_>>()
        };
        let states = c
            .states
            .iter()
            .map(|s| State {
                number: s[0..3].to_owned(),
                state_type: s[3..4].chars().next().unwrap_or(' '),
                entries: std::array::from_fn(|k| s[4 + 3 * k..7 + 3 * k].to_owned()),
            })
            .collect();
        vec![
            self.data_command(DataCommandData::EnhancedConfiguration {
                luno: self.luno.clone(),
                options: values(&c.options),
                timers: values(&c.timers),
            }),
            self.data_command(DataCommandData::Screens(
                c.screens
                    .iter()
                    .map(|s| Screen {
                        number: s.number.clone(),
                        data: s.data.clone(),
                    })
                    .collect(),
            )),
            self.data_command(DataCommandData::States(states)),
            self.data_command(DataCommandData::Fits(c.fits.clone())),
            self.data_command(DataCommandData::ConfigurationId(c.config_id.clone())),
        ]
    }

    /// The agent's start-up: power-up, download if the config id is stale, go in service, read
    /// the counters. Returns the config id the terminal reported.
    pub async fn start_up(&mut self) -> String {
        let config_id = self.start_up_without_counters().await;
        self.supply_counters().await;
        config_id
    }

    /// Start-up without the counters query: for hosts whose terminal serves customers at once
    /// (the first `11` may come right after the go-in-service acknowledgement).
    pub async fn start_up_without_counters(&mut self) -> String {
        let config_id = self.expect_power_up().await;
        if config_id != self.profile.customization.config_id {
            for msg in self.download_commands() {
                self.send(msg).await;
                self.expect_ready().await;
            }
        }
        assert_eq!(
            self.command(Command::GoInService).await,
            SolicitedStatusInfo::Ready
        );
        config_id
    }

    pub async fn expect_request(&mut self) -> TransactionRequest {
        match self.recv().await {
            TerminalMessage::TransactionRequest(r) => {
                assert_eq!(r.luno, self.luno);
                r
            }
            other => panic!("expected a transaction request, got {other:?}"),
        }
    }

    /// A reply to `req` (its MCN echoed).
    pub fn reply_to(
        &self,
        req: &TransactionRequest,
        tsn: u16,
        function: char,
        notes: Vec<u32>,
        screen: &str,
    ) -> TransactionReply {
        let approved = matches!(function, '1' | '2' | '7' | '8');
        TransactionReply {
            response_flag: None,
            luno: self.luno.clone(),
            sequence: String::new(),
            next_state: if approved {
                self.profile.next_states.approved.clone()
            } else {
                self.profile.next_states.declined.clone()
            },
            notes_to_dispense: notes,
            tsn,
            function: FunctionId::from_code(function),
            screen: screen.to_owned(),
            screen_update: String::new(),
            mcn: req.mcn,
            card_flag: '0',
            printer: vec![PrinterData {
                printer: '2',
                data: "RECEIPT".into(),
            }],
            buffers: Vec::new(),
            mac: None,
            trailing_fs: 0,
        }
    }

    pub async fn reply(&mut self, r: TransactionReply) {
        self.send(HostMessage::TransactionReply(r)).await;
    }
}

/// Notes for `amount`, largest denomination first (at most 99 per cassette).
pub fn notes_for(p: &Profile, mut amount: u64) -> Vec<u32> {
    let mut notes = vec![0u32; p.dialect.cassette_types];
    let mut cassettes = p.cassettes.clone();
    cassettes.sort_by_key(|c| std::cmp::Reverse(c.denomination_minor));
    for c in cassettes {
        let n = (amount / c.denomination_minor).min(99);
        notes[usize::from(c.cassette_type) - 1] = n as u32;
        amount -= n * c.denomination_minor;
    }
    notes
}

/// Approves everything, on every connection the terminal makes, until the test ends; a
/// terminal that drops mid-exchange (a power failure) is simply awaited again.
pub fn spawn_auto_host(host: FakeHost) {
    tokio::spawn(async move {
        let mut tsn = 0u16;
        loop {
            let mut conn = host.accept().await;
            conn.start_up_without_counters().await;
            let p = conn.profile.clone();
            loop {
                let next = tokio::time::timeout(Duration::from_secs(30), conn.try_recv_raw());
                let Ok(Some(raw)) = next.await else {
                    break;
                };
                let Ok(TerminalMessage::TransactionRequest(req)) =
                    TerminalMessage::parse(&raw, &conn.dialect)
                else {
                    continue;
                };
                tsn += 1;
                let reply = match p.operation_codes.kind_of(&req.operation_code) {
                    Some(firmware_profiles::TransactionKind::Withdrawal) => {
                        let notes = notes_for(&p, req.amount.unwrap_or(0));
                        conn.reply_to(&req, tsn, '2', notes, &p.screens.dispense)
                    }
                    Some(firmware_profiles::TransactionKind::Deposit) => {
                        conn.reply_to(&req, tsn, '1', vec![], &p.screens.deposit)
                    }
                    _ => conn.reply_to(&req, tsn, '3', vec![], &p.screens.balance),
                };
                if !conn.try_send(HostMessage::TransactionReply(reply)).await {
                    break;
                }
            }
        }
    });
}
