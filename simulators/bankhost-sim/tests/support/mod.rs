//! What the bank host tests share: a framed ISO 8583 client (the switch's side), message
//! builders, and waiting for a condition with a deadline.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bankhost_sim::{BankHostConfig, CardConfig, RunningBankHost};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use protocols::framing::{FrameCodec, LengthPrefix};
use protocols::iso8583::{Message, OriginalData, ReplacementAmounts, Sign, SignedAmount, Spec};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

pub const PAN: &str = "5413330089020011";
pub const OTHER_PAN: &str = "5413330089020029";
pub const ZPK: &str = "0123456789ABCDEFFEDCBA9876543210";
pub const TERMINAL: &str = "ATM00001";
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A host on 127.0.0.1:0 with PAN (100.00 EUR, PIN 1234) and OTHER_PAN (20.00 EUR).
pub async fn host() -> RunningBankHost {
    host_with(|_| {}).await
}

pub async fn host_with(adjust: impl FnOnce(&mut BankHostConfig)) -> RunningBankHost {
    let mut config = BankHostConfig::new();
    config
        .cards
        .push(CardConfig::new(PAN, 10_000).with_pin("1234"));
    config.cards.push(CardConfig::new(OTHER_PAN, 2_000));
    adjust(&mut config);
    bankhost_sim::start(config).await.expect("bank host starts")
}

/// The switch's end of a connection.
pub struct Client {
    framed: Framed<TcpStream, FrameCodec>,
    spec: &'static Spec,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Self::connect_with(addr, Spec::iso87_binary(), LengthPrefix::BinaryU16).await
    }

    pub async fn connect_with(
        addr: SocketAddr,
        spec: &'static Spec,
        prefix: LengthPrefix,
    ) -> Client {
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Client {
            framed: Framed::new(stream, FrameCodec::new(prefix)),
            spec,
        }
    }

    pub async fn send(&mut self, m: &Message) {
        let bytes = self.spec.pack(m).expect("request packs");
        self.send_raw(bytes).await;
    }

    pub async fn send_raw(&mut self, payload: Vec<u8>) {
        self.framed
            .send(Bytes::from(payload))
            .await
            .expect("request written");
    }

    /// The next message, or `None` if none comes within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Message> {
        match tokio::time::timeout(wait, self.framed.next()).await {
            Err(_) => None,
            Ok(Some(Ok(frame))) => Some(self.spec.unpack(&frame.payload).expect("answer unpacks")),
            Ok(other) => panic!("connection ended instead of an answer: {other:?}"),
        }
    }

    pub async fn recv(&mut self) -> Message {
        self.recv_within(TIMEOUT).await.expect("an answer in time")
    }

    pub async fn call(&mut self, m: &Message) -> Message {
        self.send(m).await;
        self.recv().await
    }

    /// Whether the host closes the connection (end of stream or reset) within the timeout.
    pub async fn closed_by_host(&mut self) -> bool {
        matches!(
            tokio::time::timeout(TIMEOUT, self.framed.next()).await,
            Ok(None) | Ok(Some(Err(_)))
        )
    }
}

/// A card request: 0100 / 0200 with the fields a switch sends a bank host.
pub fn request(mti: &str, pan: &str, processing: &str, amount: Option<u64>, stan: u32) -> Message {
    let mut m = Message::new(mti).unwrap();
    m.set_str(2, pan).unwrap();
    m.set_str(3, processing).unwrap();
    if let Some(a) = amount {
        m.set_amount(a).unwrap();
    }
    m.set_str(7, "1204102030").unwrap();
    m.set_str(11, &format!("{stan:06}")).unwrap();
    m.set_str(12, "112030").unwrap();
    m.set_str(13, "1204").unwrap();
    m.set_str(32, "12345").unwrap();
    m.set_str(37, &format!("000000{stan:06}")).unwrap();
    m.set_str(41, TERMINAL).unwrap();
    m.set_str(42, "ACQ000000000001").unwrap();
    m.set_str(49, "978").unwrap();
    m
}

pub fn withdrawal(pan: &str, amount: u64, stan: u32) -> Message {
    request("0100", pan, "011000", Some(amount), stan)
}

/// An advice (0220/0221) or reversal (0420/0421) of `original`, with its own STAN, and field 95
/// when `actual` is given.
pub fn follow_up(mti: &str, original: &Message, actual: Option<u64>, stan: u32) -> Message {
    let mut m = Message::new(mti).unwrap();
    for n in [2, 3, 4, 12, 13, 32, 37, 41, 42, 49] {
        if let Some(v) = original.get(n) {
            m.set(n, v).unwrap();
        }
    }
    m.set_str(7, "1204102530").unwrap();
    m.set_str(11, &format!("{stan:06}")).unwrap();
    m.set_original_data(&OriginalData {
        mti: original.mti(),
        stan: original.stan().unwrap().unwrap(),
        transmission: original.transmission_datetime().unwrap(),
        acquirer_id: 12345,
        forwarding_id: 0,
    })
    .unwrap();
    if let Some(actual) = actual {
        let zero = SignedAmount {
            sign: Sign::Debit,
            minor: 0,
        };
        m.set_replacement_amounts(&ReplacementAmounts {
            actual_amount: actual,
            settlement_amount: 0,
            transaction_fee: zero,
            settlement_fee: zero,
        })
        .unwrap();
    }
    m
}

pub fn sign_on(code: u16, stan: u32) -> Message {
    let mut m = Message::new("0800").unwrap();
    m.set_str(7, "1204102030").unwrap();
    m.set_str(11, &format!("{stan:06}")).unwrap();
    m.set_network_management_code(code).unwrap();
    m
}

pub fn code(m: &Message) -> &str {
    m.get_str(39).expect("field 39")
}

/// Polls `check` until it holds; fails naming `what` after 5 s.
pub async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
