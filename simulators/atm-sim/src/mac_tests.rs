//! NDC MAC mode at the terminal, against the scripted host of `pin_tests.rs`: after the host
//! loads a MAC key (`3 … 45`), the request carries a TVN and a MAC that verify under that key
//! (ANSI X9.19 over `protocols::ndc::mac`'s bytes); a reply with a wrong MAC is rejected with
//! reason `1`, one that does not echo the TVN with `2`, and a well-MACed reply is performed; the
//! statuses are MACed too.

use keystore::crypto;
use protocols::ndc::{
    mac_field, parse_mac_field, DataCommand, Dialect, FunctionId, HostMessage, KeyChangeModifier,
    KeyLoad, SolicitedStatus, SolicitedStatusInfo, TerminalMessage, TransactionReply,
    TransactionRequest,
};

use super::pin_tests::{start, Host, PAN, TMK_HEX};
use super::{Customer, DeclineReason, Outcome};

const TAK: [u8; 16] = [
    0x2C, 0x4F, 0x6B, 0x8A, 0x91, 0xB3, 0xD5, 0xE7, 0x15, 0x37, 0x58, 0x7A, 0x9D, 0xBF, 0xC1, 0xE3,
];

fn mac_of(input: &[u8]) -> String {
    mac_field(&crypto::retail_mac(&TAK, input).unwrap())
}

impl Host {
    async fn load_mac_key(&mut self) -> TerminalMessage {
        let mut cryptogram = TAK.to_vec();
        crypto::tdes_encrypt_ecb(&hex::decode(TMK_HEX).unwrap(), &mut cryptogram).unwrap();
        let key = KeyLoad::new(cryptogram).unwrap();
        let cmd = DataCommand::extended_key_change(&self.luno, KeyChangeModifier::Mac, &key);
        self.send(HostMessage::DataCommand(cmd)).await;
        self.recv().await
    }

    fn reply(&self, req: &TransactionRequest, tsn: u16, screen: &str) -> TransactionReply {
        let mut reply = TransactionReply {
            response_flag: None,
            luno: self.luno.clone(),
            sequence: req.tvn.clone().unwrap_or_default(),
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
        reply.mac = Some(mac_of(&reply.mac_input(&self.profile.dialect).unwrap()));
        reply
    }

    async fn status(&mut self) -> SolicitedStatus {
        match self.recv().await {
            TerminalMessage::SolicitedStatus(s) => s,
            other => panic!("expected a solicited status, got {other:?}"),
        }
    }

    /// Sends `reply` for the next request and returns the request and the status after it.
    async fn answer(
        &mut self,
        change: impl FnOnce(&mut TransactionReply),
        tsn: u16,
    ) -> (TransactionRequest, SolicitedStatus) {
        let req = self.request().await;
        let declined = self.profile.screens.declined.clone();
        let mut reply = self.reply(&req, tsn, &declined);
        change(&mut reply);
        self.send(HostMessage::TransactionReply(reply)).await;
        let status = self.status().await;
        (req, status)
    }
}

fn assert_maced(status: &SolicitedStatus, host: &Host) {
    let mac = status.mac.as_deref().expect("a MACed status");
    assert!(status.tvn.is_some(), "{status:?}");
    assert_eq!(
        mac,
        mac_of(&status.mac_input(&host.profile.dialect).unwrap())
    );
}

#[tokio::test]
async fn mac_mode_terminal_macs_its_request_and_rejects_a_reply_with_a_bad_mac_or_tvn() {
    let (mut sim, mut host, _pin_key_answer) = start("ncr-advance-ndc-mac", true).await;
    assert!(matches!(
        host.load_mac_key().await,
        TerminalMessage::EncryptorInit(ref e) if e.kvv == crypto::kcv(&TAK).unwrap().to_string()
    ));
    assert_eq!(sim.mac_key_kcv(), Some(crypto::kcv(&TAK).unwrap()));
    let customer = Customer::withdrawal(PAN, 2000).with_pin("4321");

    // A reply whose MAC does not verify: rejected with reason 1, nothing performed.
    let (out, (req, status)) = tokio::join!(
        sim.run_customer(&customer),
        host.answer(|r| r.mac = Some("00000000".into()), 7)
    );
    let mac = req.mac.as_deref().expect("a MACed request");
    assert_eq!(mac, mac_of(&req.mac_input(&host.profile.dialect).unwrap()));
    let tvn = req.tvn.clone().expect("a TVN");
    assert_eq!(tvn.len(), 8);
    assert_eq!(
        status.info,
        SolicitedStatusInfo::SpecificReject { reason: "1".into() }
    );
    assert_maced(&status, &host);
    assert_eq!(
        out.unwrap().outcome,
        Outcome::ReplyRejected { reason: "1".into() }
    );

    // A well-MACed reply that echoes another TVN: rejected with reason 2.
    let (out, (req2, status)) = tokio::join!(
        sim.run_customer(&customer),
        host.answer(
            |r| {
                r.sequence = "0000ABCD".into();
                r.mac = Some(mac_of(&r.mac_input(&Dialect::ncr_advance()).unwrap()));
            },
            8
        )
    );
    assert_ne!(req2.tvn, req.tvn, "a fresh TVN per request");
    assert_eq!(
        status.info,
        SolicitedStatusInfo::SpecificReject { reason: "2".into() }
    );
    assert_eq!(
        out.unwrap().outcome,
        Outcome::ReplyRejected { reason: "2".into() }
    );

    // The reply as the host should send it: performed.
    let (out, (_, status)) = tokio::join!(sim.run_customer(&customer), host.answer(|_| {}, 9));
    assert_maced(&status, &host);
    assert_eq!(
        out.unwrap().outcome.decline_reason(),
        Some(DeclineReason::Declined)
    );
    assert_eq!(sim.status().replies_rejected_for_mac, 2);
    assert!(
        parse_mac_field(mac).is_some(),
        "the MAC field is 8 hex digits"
    );
}
