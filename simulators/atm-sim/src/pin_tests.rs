//! Keys and PINs end to end, against a minimal scripted host on `127.0.0.1:0`: the host loads a
//! PIN key at start-up (answered per dialect), the terminal's PIN buffer A deciphers to the PIN
//! the customer typed, the PIN decline screens become their outcomes, and a terminal without a
//! master key rejects the load and sends PIN buffer A empty.

use std::time::Duration;

use bytes::Bytes;
use firmware_profiles::Profile;
use futures::{SinkExt, StreamExt};
use keystore::crypto;
use protocols::framing::{Frame, FrameCodec};
use protocols::ndc::{
    DataCommand, EncryptorInit, FunctionId, HostMessage, KeyChangeModifier, KeyLoad,
    SolicitedStatusInfo, TerminalMessage, TransactionReply, TransactionRequest,
};
use protocols::types::Pan;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

use super::{AtmOptions, AtmSim, ClearKey, Customer, DeclineReason, Outcome, ServiceMode};

pub(crate) const WAIT: Duration = Duration::from_secs(5);
pub(crate) const TMK_HEX: &str = "0123456789ABCDEFFEDCBA9876543210";
pub(crate) const TPK: [u8; 16] = [
    0x13, 0x34, 0x57, 0x79, 0x9B, 0xBC, 0xDF, 0xF1, 0x1F, 0x1E, 0x1D, 0x1C, 0x1B, 0x1A, 0x19, 0x18,
];
pub(crate) const PAN: &str = "4761739001010010";

pub(crate) struct Host {
    pub(crate) framed: Framed<TcpStream, FrameCodec>,
    pub(crate) profile: Profile,
    pub(crate) luno: String,
}

impl Host {
    pub(crate) async fn send(&mut self, msg: HostMessage) {
        let payload = msg.encode(&self.profile.dialect).expect("encode");
        let frame = Frame {
            header: Bytes::from(vec![b'0'; self.profile.framing.header_len]),
            payload: payload.into(),
        };
        self.framed.send(frame).await.expect("send");
    }

    pub(crate) async fn recv(&mut self) -> TerminalMessage {
        let frame = tokio::time::timeout(WAIT, self.framed.next())
            .await
            .expect("the terminal sent nothing in time")
            .expect("the terminal hung up")
            .expect("frame");
        TerminalMessage::parse(&frame.payload, &self.profile.dialect).expect("parse")
    }

    pub(crate) async fn solicited(&mut self) -> SolicitedStatusInfo {
        match self.recv().await {
            TerminalMessage::SolicitedStatus(s) => s.info,
            other => panic!("expected a solicited status, got {other:?}"),
        }
    }

    /// The TPK enciphered under the TMK, in an extended key change `42`.
    async fn load_pin_key(&mut self) {
        let mut cryptogram = TPK.to_vec();
        crypto::tdes_encrypt_ecb(&hex::decode(TMK_HEX).unwrap(), &mut cryptogram).unwrap();
        let key = KeyLoad::new(cryptogram).unwrap();
        let cmd = DataCommand::extended_key_change(&self.luno, KeyChangeModifier::CommsPin, &key);
        self.send(HostMessage::DataCommand(cmd)).await;
    }

    async fn go_in_service(&mut self) {
        let raw = format!("1\x1c{}\x1c\x1c1", self.luno);
        let cmd = HostMessage::parse(raw.as_bytes(), &self.profile.dialect).unwrap();
        self.send(cmd).await;
        assert_eq!(self.solicited().await, SolicitedStatusInfo::Ready);
    }

    pub(crate) async fn request(&mut self) -> TransactionRequest {
        match self.recv().await {
            TerminalMessage::TransactionRequest(r) => r,
            other => panic!("expected a transaction request, got {other:?}"),
        }
    }

    /// A display-and-print reply on `screen`, and the terminal's ready after it.
    pub(crate) async fn display(&mut self, req: &TransactionRequest, tsn: u16, screen: &str) {
        let reply = TransactionReply {
            response_flag: None,
            luno: self.luno.clone(),
            sequence: String::new(),
            next_state: self.profile.next_states.declined.clone(),
            notes_to_dispense: Vec::new(),
            tsn,
            function: FunctionId::from_code('3'),
            screen: screen.to_owned(),
            screen_update: String::new(),
            mcn: req.mcn,
            card_flag: '0',
            printer: Vec::new(),
            buffers: Vec::new(),
            mac: None,
            trailing_fs: 0,
        };
        self.send(HostMessage::TransactionReply(reply)).await;
        let _ready = self.solicited().await;
    }
}

/// A terminal (with the TMK or not) whose host loads the PIN key at start-up; returns the
/// terminal, the host and the host's view of the key load answer.
pub(crate) async fn start(profile_name: &str, with_tmk: bool) -> (AtmSim, Host, TerminalMessage) {
    let profile = Profile::builtin(profile_name).expect("builtin profile");
    let luno = if profile.dialect.luno_len == 9 {
        "001000001"
    } else {
        "001"
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = AtmOptions {
        config_id: profile.customization.config_id.clone(),
        master_key: with_tmk.then(|| ClearKey::from_hex(TMK_HEX).unwrap()),
        ..AtmOptions::default()
    };
    let host = async {
        let (stream, _) = listener.accept().await.unwrap();
        let f = &profile.framing;
        let codec = FrameCodec::new(f.length_prefix)
            .with_header_len(f.header_len)
            .with_max_frame_len(f.max_frame_bytes);
        let mut host = Host {
            framed: Framed::new(stream, codec),
            profile: profile.clone(),
            luno: luno.to_owned(),
        };
        assert!(matches!(
            host.recv().await,
            TerminalMessage::UnsolicitedStatus(_)
        ));
        host.load_pin_key().await;
        let answer = host.recv().await;
        host.go_in_service().await;
        (host, answer)
    };
    let (sim, (host, answer)) =
        tokio::join!(AtmSim::connect(addr, profile.clone(), luno, options), host);
    (sim.expect("start-up"), host, answer)
}

fn deciphered_pin(req: &TransactionRequest) -> String {
    let buffer = req.pin_buffer_a.as_ref().expect("PIN buffer A");
    let mut block = buffer
        .to_bytes()
        .expect("16 characters of the terminal charset");
    crypto::tdes_decrypt_ecb(&TPK, &mut block).unwrap();
    let pan = Pan::parse(PAN).unwrap();
    crypto::pin_from_format0(&block, &pan).unwrap().to_string()
}

#[tokio::test]
async fn advance_terminal_answers_the_key_load_with_its_kvv_and_enciphers_pins() {
    let (mut sim, mut host, answer) = start("ncr-advance-ndc", true).await;
    let kcv = crypto::kcv(&TPK).unwrap();
    assert_eq!(
        answer,
        TerminalMessage::EncryptorInit(EncryptorInit {
            luno: "001000001".into(),
            id: "3".into(),
            kvv: kcv.to_string(),
            mac: None,
            extra: Vec::new(),
            trailing_fs: 0,
        })
    );
    assert!(sim.has_pin_key());
    assert_eq!(sim.pin_key_kcv(), Some(kcv));
    assert_eq!(sim.wait_for_pin_key(100).await, Some(kcv));
    assert_eq!(
        sim.terminal_pin_key_for_audit()
            .await
            .as_deref()
            .map(Vec::as_slice),
        Some(&TPK[..])
    );
    assert!(sim.status().master_key_loaded);
    let wrong_pin = host.profile.screens.wrong_pin.clone();
    let customer = Customer::withdrawal(PAN, 2000).with_pin("4321");
    let (out, req) = tokio::join!(sim.run_customer(&customer), async {
        let req = host.request().await;
        host.display(&req, 1, &wrong_pin).await;
        req
    });
    assert_eq!(deciphered_pin(&req), "4321");
    let out = out.unwrap();
    assert!(out.pin_block_sent && !out.wrong_pin_entered);
    assert_eq!(out.outcome.decline_reason(), Some(DeclineReason::WrongPin));
}

#[tokio::test]
async fn basic_terminal_acknowledges_the_key_load_and_a_wrong_pin_is_what_goes_out() {
    let (mut sim, mut host, answer) = start("ncr-selfserv-basic", true).await;
    assert!(matches!(
        answer,
        TerminalMessage::SolicitedStatus(ref s) if s.info == SolicitedStatusInfo::Ready
    ));
    assert_eq!(sim.pin_key_kcv(), Some(crypto::kcv(&TPK).unwrap()));
    let screens = host.profile.screens.clone();
    let customer = Customer::balance_inquiry(PAN)
        .with_pin("4321")
        .with_wrong_pin();
    let (out, req) = tokio::join!(sim.run_customer(&customer), async {
        let req = host.request().await;
        host.display(&req, 2, &screens.pin_tries_exceeded).await;
        req
    });
    assert_eq!(deciphered_pin(&req), "5432", "each digit plus one");
    let out = out.unwrap();
    assert!(out.wrong_pin_entered);
    assert_eq!(
        out.outcome,
        Outcome::Declined {
            screen: screens.pin_tries_exceeded.clone(),
            reason: DeclineReason::PinTriesExceeded
        }
    );
    let c = sim.counters().customers;
    assert_eq!((c.declined, c.pin_tries_exceeded, c.wrong_pin), (1, 1, 0));
}

#[tokio::test]
async fn without_a_master_key_the_load_is_rejected_and_pin_buffer_a_goes_empty() {
    let (mut sim, mut host, answer) = start("ncr-advance-ndc", false).await;
    assert!(matches!(
        answer,
        TerminalMessage::SolicitedStatus(ref s)
            if s.info == SolicitedStatusInfo::SpecificReject { reason: "E02".into() }
    ));
    assert!(!sim.has_pin_key());
    assert!(sim.terminal_pin_key_for_audit().await.is_none());
    assert_eq!(sim.status().mode, ServiceMode::InService);
    let declined = host.profile.screens.declined.clone();
    let customer = Customer::withdrawal(PAN, 2000);
    let (out, req) = tokio::join!(sim.run_customer(&customer), async {
        let req = host.request().await;
        host.display(&req, 3, &declined).await;
        req
    });
    assert_eq!(req.pin_buffer_a, None);
    assert!(!out.unwrap().pin_block_sent);
}
