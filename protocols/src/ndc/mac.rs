//! NDC message authentication: which bytes a MAC covers and how the MAC field is written.
//!
//! In MAC mode (a firmware profile's `[mac]` table says which messages) the sender computes a
//! MAC under the terminal MAC key (TAK, loaded into the terminal with the key change `45`) and
//! appends it as the message's last FS field, 8 hex digits. The algorithm (ANSI X9.19 retail MAC)
//! is the key store's; this module fixes the bytes it runs over:
//!
//! **MAC input** = the message exactly as [`encode`](super::TerminalMessage::encode) writes it
//! *without* its MAC field, from the first byte of the message class up to the end of the last
//! field before the MAC, followed by the one FS that separates the MAC field. Framing (the length
//! prefix, a TPDU header) is not covered. For the `11` of `NDC.md` section 10 that is
//! `11 FS 001000001 FS FS 01A468E4 FS 14 FS … FS U FS 5CAM…` + `FS`, and the field after it is
//! the MAC. The time-variant number (TVN) sits inside the covered bytes (slot 3 of `11`/`22`, the
//! sequence field of the reply `4` that echoes it), so a reply cannot be replayed against a later
//! request.
//!
//! **MAC field** = the leftmost 4 bytes of the 8-byte MAC as 8 uppercase hex digits; both case
//! forms are read.
//!
//! The receiver recomputes the input from the message it parsed ([`TransactionRequest::mac_input`]
//! and friends), i.e. over the encoding of what it acts on. The codec writes back what it read
//! (trailing FS and extra fields included), so this is the received byte string up to the FS
//! before the MAC field; trailing FS after the MAC field are outside the input. A message whose
//! typed reading would not give back its bytes does not verify, which fails closed.

use super::dialect::Dialect;
use super::error::NdcError;
use super::fields::FS;
use super::status::SolicitedStatus;
use super::transaction_reply::TransactionReply;
use super::transaction_request::TransactionRequest;

/// Bytes of the MAC sent in the MAC field (the leftmost of the 8 the algorithm gives).
pub const MAC_FIELD_BYTES: usize = 4;

/// The MAC input for a message encoded without its MAC field: the bytes and the FS after them.
pub fn mac_input(encoded_without_mac: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(encoded_without_mac.len() + 1);
    v.extend_from_slice(encoded_without_mac);
    v.push(FS);
    v
}

/// The MAC field for a full 8-byte MAC: its leftmost 4 bytes as 8 uppercase hex digits.
pub fn mac_field(mac: &[u8; 8]) -> String {
    mac[..MAC_FIELD_BYTES]
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// The 4 bytes of a MAC field; `None` unless it is exactly 8 hex digits.
pub fn parse_mac_field(field: &str) -> Option<[u8; MAC_FIELD_BYTES]> {
    let b = field.as_bytes();
    if b.len() != 2 * MAC_FIELD_BYTES || !b.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; MAC_FIELD_BYTES];
    for (o, pair) in out.iter_mut().zip(b.chunks(2)) {
        let s = std::str::from_utf8(pair).ok()?;
        *o = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

impl TransactionRequest {
    /// The bytes this request's MAC covers (see the module doc); the `mac` field is ignored.
    pub fn mac_input(&self, dialect: &Dialect) -> Result<Vec<u8>, NdcError> {
        let unmaced = Self {
            mac: None,
            trailing_fs: 0,
            ..self.clone()
        };
        unmaced.encode(dialect).map(|b| mac_input(&b))
    }
}

impl TransactionReply {
    /// The bytes this reply's MAC covers (see the module doc); the `mac` field is ignored.
    pub fn mac_input(&self, dialect: &Dialect) -> Result<Vec<u8>, NdcError> {
        let unmaced = Self {
            mac: None,
            trailing_fs: 0,
            ..self.clone()
        };
        unmaced.encode(dialect).map(|b| mac_input(&b))
    }
}

impl SolicitedStatus {
    /// The bytes this status's MAC covers (see the module doc); the `mac` field is ignored.
    pub fn mac_input(&self, dialect: &Dialect) -> Result<Vec<u8>, NdcError> {
        let unmaced = Self {
            mac: None,
            trailing_fs: 0,
            ..self.clone()
        };
        unmaced.encode(dialect).map(|b| mac_input(&b))
    }
}

#[cfg(test)]
mod tests {
    use super::super::sensitive::{CardTrack, PinBuffer, TrackKind};
    use super::super::transaction_reply::{FunctionId, PrinterData};
    use super::super::TerminalMessage;
    use super::*;

    fn request(d: &Dialect) -> TransactionRequest {
        let r = TransactionRequest {
            luno: "001000001".into(),
            tvn: Some("01A468E4".into()),
            top_of_receipt: true,
            mcn: '4',
            track2: Some(CardTrack::new(TrackKind::Track2, ";4761739001010010=3012?")),
            track3: None,
            operation_code: "A       ".into(),
            amount: Some(10_000),
            pin_buffer_a: PinBuffer::from_hex_digits("0412AC89ABCDEF12"),
            buffer_b: String::new(),
            buffer_c: String::new(),
            track1: None,
            last_transaction_status: None,
            buffers: Vec::new(),
            mac: Some("766A0E2F".into()),
            trailing_fs: 0,
        };
        assert_eq!(r.luno.len(), d.luno_len);
        r
    }

    #[test]
    fn a_maced_request_round_trips_and_its_mac_input_ends_at_the_fs_before_the_mac() {
        let d = Dialect::ncr_advance();
        let req = request(&d);
        let bytes = req.encode(&d).unwrap();
        assert!(bytes.ends_with(b"\x1c766A0E2F"));
        let parsed = TransactionRequest::parse(&bytes, &d).unwrap();
        assert_eq!(parsed, req);
        assert_eq!(parsed.tvn.as_deref(), Some("01A468E4"));
        let input = parsed.mac_input(&d).unwrap();
        assert_eq!(input, bytes[..bytes.len() - 8]);
        assert!(input.starts_with(b"11\x1c001000001\x1c\x1c01A468E4\x1c14\x1c"));
        assert_eq!(
            TerminalMessage::parse(&bytes, &d).unwrap(),
            TerminalMessage::TransactionRequest(req)
        );
    }

    #[test]
    fn the_amount_and_the_tvn_are_inside_the_mac_input() {
        let d = Dialect::ncr_advance();
        let req = request(&d);
        let other_amount = TransactionRequest {
            amount: Some(90_000),
            ..req.clone()
        };
        let other_tvn = TransactionRequest {
            tvn: Some("01A468E5".into()),
            ..req.clone()
        };
        let input = req.mac_input(&d).unwrap();
        assert_ne!(other_amount.mac_input(&d).unwrap(), input);
        assert_ne!(other_tvn.mac_input(&d).unwrap(), input);
        let unmaced = TransactionRequest {
            mac: None,
            ..req.clone()
        };
        assert_eq!(
            unmaced.mac_input(&d).unwrap(),
            input,
            "the MAC field is not covered"
        );
    }

    #[test]
    fn a_maced_reply_echoes_the_tvn_and_round_trips() {
        let d = Dialect::ncr_advance();
        let reply = TransactionReply {
            response_flag: None,
            luno: "001000001".into(),
            sequence: "01A468E4".into(),
            next_state: "125".into(),
            notes_to_dispense: vec![0, 0, 1, 0],
            tsn: 1642,
            function: FunctionId::DispenseAndPrint { code: '2' },
            screen: "068".into(),
            screen_update: String::new(),
            mcn: '4',
            card_flag: '0',
            printer: vec![PrinterData {
                printer: '2',
                data: "WITHDRAWAL 50.00".into(),
            }],
            buffers: Vec::new(),
            mac: Some("06E356AF".into()),
            trailing_fs: 0,
        };
        let bytes = reply.encode(&d).unwrap();
        let parsed = TransactionReply::parse(&bytes, &d).unwrap();
        assert_eq!(parsed, reply);
        assert_eq!(parsed.mac_input(&d).unwrap(), bytes[..bytes.len() - 8]);
    }

    #[test]
    fn mac_fields_are_the_leftmost_four_bytes_in_hex() {
        let mac = [0x76, 0x6A, 0x0E, 0x2F, 1, 2, 3, 4];
        assert_eq!(mac_field(&mac), "766A0E2F");
        assert_eq!(parse_mac_field("766a0e2f"), Some([0x76, 0x6A, 0x0E, 0x2F]));
        assert_eq!(parse_mac_field("766A0E2"), None);
        assert_eq!(parse_mac_field("766A0E2G"), None);
        assert_eq!(parse_mac_field("+66A0E2F"), None);
    }
}
