//! Test harness: a real ledger-sim and a real switch on 127.0.0.1:0, test certificates made on
//! the fly, and a small ISO 8583 client that speaks to the switch like an agent does.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use host_switch::config::Config;
use host_switch::domain::WalletAccount;
use host_switch::runtime::{self, RunningSwitch};
use mtls::{PkiFiles, TestPki};
use protocols::framing::FrameCodec;
use protocols::iso8583::{Message, Spec};
use protocols::types::Pan;
use simulators::ledger::{AccountSeed, LedgerConfig, LedgerServer, RunningLedger};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

pub const ALICE: &str = "4761739001010010";
pub const BOB_POOR: &str = "4761739001010028";
pub const BANK_CARD: &str = "5413330089020011";
pub const START_BALANCE: u64 = 100_000;

pub fn account(pan: &str) -> String {
    WalletAccount::for_card(&Pan::parse(pan).unwrap())
        .as_str()
        .to_owned()
}

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub pki: TestPki,
    pub files: PkiFiles,
    pub ledger: Option<RunningLedger>,
    pub ledger_addr: SocketAddr,
    pub switch: Option<RunningSwitch>,
    pub switch_addr: SocketAddr,
    /// Configuration added by a test: top-level keys (before the first section) and sections.
    pub extra: ExtraConfig,
}

#[derive(Debug, Clone, Default)]
pub struct ExtraConfig {
    pub top: String,
    pub sections: String,
}

impl Lab {
    pub async fn start() -> Lab {
        Self::start_with(ExtraConfig::default()).await
    }

    /// A lab whose switch configuration has `extra` in it.
    pub async fn start_with(extra: ExtraConfig) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate();
        let files = pki.write_to_dir(dir.path()).unwrap();
        let mut cfg = LedgerConfig::new(dir.path().join("ledger"));
        cfg.seeds = vec![
            AccountSeed {
                account: account(ALICE),
                currency: "EUR".into(),
                balance_minor: START_BALANCE,
            },
            AccountSeed {
                account: account(BOB_POOR),
                currency: "EUR".into(),
                balance_minor: 1_000,
            },
        ];
        let ledger = LedgerServer::start(cfg).await.unwrap();
        let ledger_addr = ledger.local_addr();
        let mut lab = Lab {
            dir,
            pki,
            files,
            ledger: Some(ledger),
            ledger_addr,
            switch: None,
            switch_addr: "127.0.0.1:0".parse().unwrap(),
            extra,
        };
        lab.start_switch().await;
        lab
    }

    pub fn config(&self) -> Config {
        let text = format!(
            r#"
            {top}
            [listen]
            address = "{addr}"
            mode = "tls"
            [tls]
            cert = "{cert}"
            key = "{key}"
            client_ca = "{ca}"
            [journal]
            path = "{journal}"
            [ledger]
            url = "http://{ledger}"
            timeout_ms = 1000
            retries = 1
            [ledger.breaker]
            window_calls = 20
            minimum_calls = 10
            open_ms = 300
            half_open_calls = 3
            [recovery]
            resume_interval_ms = 200
            [[routes]]
            prefix = "476173"
            route = "wallet"
            [[routes]]
            prefix = "5"
            route = "bank-host"
            {sections}
            "#,
            top = self.extra.top,
            sections = self.extra.sections,
            addr = self.switch_addr,
            cert = self.files.switch_cert.display(),
            key = self.files.switch_key.display(),
            ca = self.files.ca.display(),
            journal = self.journal_path().display(),
            ledger = self.ledger_addr,
        );
        Config::parse(&text, "test").unwrap()
    }

    pub fn journal_path(&self) -> PathBuf {
        self.dir.path().join("journal")
    }

    pub async fn start_switch(&mut self) {
        let running = runtime::start(&self.config()).await.unwrap();
        // Keep the port across restarts, as a real deployment does.
        self.switch_addr = running.local_addr;
        self.switch = Some(running);
    }

    pub async fn stop_switch(&mut self) {
        if let Some(s) = self.switch.take() {
            s.shutdown().await;
        }
    }

    pub fn ledger(&self) -> &RunningLedger {
        self.ledger.as_ref().unwrap()
    }

    pub fn switch(&self) -> &RunningSwitch {
        self.switch.as_ref().unwrap()
    }

    pub async fn client(&self) -> IsoClient {
        let cfg = mtls::client_config(self.files.client_files()).unwrap();
        self.client_with(cfg).await.unwrap()
    }

    pub async fn client_with(
        &self,
        cfg: Arc<mtls::rustls::ClientConfig>,
    ) -> std::io::Result<IsoClient> {
        let tcp = TcpStream::connect(self.switch_addr).await?;
        let tls = mtls::TlsConnector::from(cfg)
            .connect(mtls::server_name("localhost").unwrap(), tcp)
            .await?;
        Ok(IsoClient::new(tls))
    }

    pub async fn balance(&self, pan: &str) -> serde_json::Value {
        reqwest::get(format!(
            "{}/v1/balances/{}",
            self.ledger().base_url(),
            account(pan)
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
    }

    /// The ledger's movements made by the switch (opening balances left out).
    pub async fn movements(&self) -> Vec<serde_json::Value> {
        let page: serde_json::Value =
            reqwest::get(format!("{}/v1/movements", self.ledger().base_url()))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        assert!(
            page.get("next_after").is_none(),
            "tests stay within one page"
        );
        page["movements"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["kind"] != "funding")
            .cloned()
            .collect()
    }

    /// The invariant checked at the end of every test: the ledger's books balance, no hold was
    /// captured twice, and the ledger's movements equal the journal's captured/credited totals.
    pub async fn assert_books(&self) {
        let inv = self.ledger().invariants().await.unwrap();
        assert_eq!(inv.holds_captured_twice, 0, "{inv:?}");
        assert!(
            inv.sum_minor_by_currency.values().all(|v| *v == 0),
            "{inv:?}"
        );
        let rec = self.switch().switch.reconcile().await.unwrap();
        assert!(rec.is_reconciled(), "{rec:#?}");
        assert_eq!(
            rec.journal_captured_minor, rec.ledger_captured_minor,
            "{rec:#?}"
        );
    }
}

/// A framed ISO 8583 client over any stream.
pub struct IsoClient {
    framed: Framed<Box<dyn Stream>, FrameCodec>,
}

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl IsoClient {
    pub fn new(stream: impl Stream + 'static) -> Self {
        Self {
            framed: Framed::new(Box::new(stream), FrameCodec::default()),
        }
    }

    pub async fn send_raw(&mut self, payload: &[u8]) {
        self.framed
            .send(Bytes::copy_from_slice(payload))
            .await
            .unwrap();
    }

    pub async fn send_bytes_unframed(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.framed.get_mut().write_all(bytes).await.unwrap();
    }

    /// The next frame, or `None` when the switch closed the connection.
    pub async fn recv_raw(&mut self) -> Option<Bytes> {
        match tokio::time::timeout(Duration::from_secs(10), self.framed.next())
            .await
            .expect("no answer within 10 s")
        {
            Some(Ok(f)) => Some(f.payload),
            _ => None,
        }
    }

    pub async fn request(&mut self, msg: &Message) -> Message {
        let spec = Spec::iso87_ascii();
        self.send_raw(&spec.pack(msg).unwrap()).await;
        let answer = self
            .recv_raw()
            .await
            .expect("connection closed instead of an answer");
        spec.unpack(&answer).unwrap()
    }
}

pub const AT: &str = "1125114000";

fn base(mti: &str, stan: u32, terminal: &str) -> Message {
    let mut m = Message::new(mti).unwrap();
    m.set_str(7, AT).unwrap();
    m.set_str(11, &format!("{stan:06}")).unwrap();
    m.set_str(41, &format!("{terminal:<8}")).unwrap();
    m.set_str(49, "978").unwrap();
    m
}

pub fn withdrawal(stan: u32, pan: &str, minor: u64) -> Message {
    let mut m = base("0100", stan, "ATM00001");
    m.set_str(2, pan).unwrap();
    m.set_str(3, "011000").unwrap();
    m.set_str(4, &format!("{minor:012}")).unwrap();
    m
}

pub fn deposit(stan: u32, pan: &str, minor: u64) -> Message {
    let mut m = withdrawal(stan, pan, minor);
    m.set_mti(protocols::iso8583::Mti::parse("0200").unwrap());
    m.set_str(3, "210010").unwrap();
    m
}

pub fn balance_inquiry(stan: u32, pan: &str) -> Message {
    let mut m = withdrawal(stan, pan, 0);
    m.set_str(3, "311000").unwrap();
    m
}

fn original_data(orig_mti: &str, orig_stan: u32) -> String {
    format!("{orig_mti}{orig_stan:06}{AT}{:011}{:011}", 0, 0)
}

/// 0220 for `orig_stan`, saying `dispensed` of `requested` left the ATM.
pub fn completion(stan: u32, orig_stan: u32, pan: &str, requested: u64, dispensed: u64) -> Message {
    let mut m = withdrawal(stan, pan, requested);
    m.set_mti(protocols::iso8583::Mti::parse("0220").unwrap());
    m.set_str(90, &original_data("0100", orig_stan)).unwrap();
    m.set_str(95, &format!("{dispensed:012}{:012}C00000000C00000000", 0))
        .unwrap();
    m
}

pub fn reversal(stan: u32, orig_stan: u32, pan: &str, requested: u64, proc: &str) -> Message {
    let mut m = withdrawal(stan, pan, requested);
    m.set_mti(protocols::iso8583::Mti::parse("0420").unwrap());
    m.set_str(3, proc).unwrap();
    m.set_str(
        90,
        &original_data(
            if proc.starts_with("21") {
                "0200"
            } else {
                "0100"
            },
            orig_stan,
        ),
    )
    .unwrap();
    m
}

pub fn echo(stan: u32) -> Message {
    let mut m = Message::new("0800").unwrap();
    m.set_str(7, AT).unwrap();
    m.set_str(11, &format!("{stan:06}")).unwrap();
    m.set_str(70, "301").unwrap();
    m
}

pub fn code(m: &Message) -> &str {
    m.get_str(39).unwrap_or("--")
}
