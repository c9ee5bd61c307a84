//! `atmctl ndc decode`: one NDC message (the payload, without the length prefix) as JSON.
//!
//! Any bytes decode ([`NdcMessage::decode`]): a message of a class the codec does not type, or
//! one whose typed form would not give back the same bytes, shows as `Unknown` with its raw
//! fields. Card data is masked like `atmctl iso8583 decode` does: track data, PIN buffer A,
//! buffers B and C and the id buffers of a transaction request, PAN-like digit runs in journal
//! text, in a reply's screen update, printer data and id buffers and in raw fields, every field
//! after the MCN of a raw transaction request. `--reveal`
//! shows them in clear, for a technician on a test terminal. Key material is never shown.

use protocols::ndc::{
    Dialect, HostMessage, JournalUpload, NdcMessage, TerminalMessage, TransactionReply,
    TransactionRequest, UnknownMessage,
};
use serde_json::Value;

use super::{hex_input::decode_hex, CliError};

/// Resolves `--dialect` by name.
pub fn resolve_dialect(name: &str) -> Result<Dialect, CliError> {
    Dialect::by_name(name).ok_or_else(|| CliError::new(format!("unknown NDC dialect {name:?}")))
}

/// Decodes a hex NDC message into JSON, masked unless `reveal`.
pub fn decode(dialect: &Dialect, hex_input: &str, reveal: bool) -> Result<String, CliError> {
    let bytes = decode_hex(hex_input)?;
    if bytes.is_empty() {
        return Err(CliError::new("cannot decode: empty NDC message"));
    }
    let msg = NdcMessage::decode(&bytes, dialect);
    let mut json = serde_json::to_value(&msg)
        .map_err(|e| CliError::new(format!("cannot render JSON: {e}")))?;
    if reveal {
        reveal_message(&mut json, &msg);
    }
    Ok(json.to_string())
}

/// Puts the clear values back where `Serialize` masked them (the types mask themselves, so
/// revealing is this one explicit place).
fn reveal_message(json: &mut Value, msg: &NdcMessage) {
    match msg {
        NdcMessage::Terminal(TerminalMessage::TransactionRequest(r)) => {
            reveal_request(&mut json["Terminal"]["TransactionRequest"], r)
        }
        NdcMessage::Terminal(TerminalMessage::JournalUpload(u)) => {
            reveal_journal(&mut json["Terminal"]["JournalUpload"], u)
        }
        NdcMessage::Terminal(TerminalMessage::Unknown(u)) => {
            reveal_unknown(&mut json["Terminal"]["Unknown"], u)
        }
        NdcMessage::Host(HostMessage::TransactionReply(r)) => {
            reveal_reply(&mut json["Host"]["TransactionReply"], r)
        }
        NdcMessage::Host(HostMessage::Unknown(u)) => {
            reveal_unknown(&mut json["Host"]["Unknown"], u)
        }
        NdcMessage::Unknown(u) => reveal_unknown(&mut json["Unknown"], u),
        _ => {}
    }
}

fn clear(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn reveal_request(json: &mut Value, r: &TransactionRequest) {
    for (field, track) in [
        ("track1", &r.track1),
        ("track2", &r.track2),
        ("track3", &r.track3),
    ] {
        if let Some(t) = track {
            json[field] = clear(t.expose());
        }
    }
    if let Some(p) = &r.pin_buffer_a {
        json["pin_buffer_a"] = clear(p.expose());
    }
    json["buffer_b"] = clear(&r.buffer_b);
    json["buffer_c"] = clear(&r.buffer_c);
    for (i, b) in r.buffers.iter().enumerate() {
        json["buffers"][i]["data"] = clear(&b.data);
    }
}

fn reveal_reply(json: &mut Value, r: &TransactionReply) {
    json["screen_update"] = clear(&r.screen_update);
    for (i, p) in r.printer.iter().enumerate() {
        json["printer"][i]["data"] = clear(&p.data);
    }
    for (i, b) in r.buffers.iter().enumerate() {
        json["buffers"][i]["data"] = clear(&b.data);
    }
}

fn reveal_journal(json: &mut Value, u: &JournalUpload) {
    json["text"] = clear(u.text.expose());
}

fn reveal_unknown(json: &mut Value, u: &UnknownMessage) {
    json["fields"] = Value::Array(u.fields.iter().map(|f| clear(f)).collect());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02X}")).collect()
    }

    const PAN: &str = "4761739001010010";

    fn request() -> Vec<u8> {
        format!(
            "11\x1c001\x1c\x1c\x1c11\x1c;{PAN}=301210100000000?\x1c\x1cA       \x1c000000005000\x1c0:1;2<3=4>5?6789\x1c\x1c"
        )
        .into_bytes()
    }

    #[test]
    fn card_data_is_masked_unless_revealed() {
        let d = Dialect::basic();
        let journal =
            format!("61\x1c\x1c\x1c\x1c000001261204101500000100000130030CARD {PAN}\r\nOK\r\n");
        let unknown_request =
            format!("11\x1c001\x1c\x1c\x1cXYZ\x1c;{PAN}=3012?\x1c0:1;2<3=4>5?6789");
        let unknown = format!("51\x1c001\x1cPAN {PAN} seen");
        let reply = format!("4\x1c001\x1c\x1c125\x1c\x1c00003070\x1c102CARD {PAN}");
        for msg in [
            reply.into_bytes(),
            request(),
            journal.into_bytes(),
            unknown_request.into_bytes(),
            unknown.into_bytes(),
        ] {
            let masked = decode(&d, &hex(&msg), false).unwrap();
            assert!(!masked.contains(PAN), "{masked}");
            assert!(!masked.contains("0:1;2<3=4>5?6789"), "{masked}");
            let clear = decode(&d, &hex(&msg), true).unwrap();
            assert!(clear.contains(PAN), "{clear}");
        }
    }

    #[test]
    fn any_message_decodes_and_unknown_ones_show_their_fields() {
        let d = Dialect::ncr_advance();
        // A 3-character LUNO in a 9-character dialect, and an EMV configuration message.
        let json = decode(&d, &hex(b"22\x1c001\x1c\x1c\x1c9"), false).unwrap();
        assert!(json.contains("\"luno\":\"001\""), "{json}");
        let json = decode(&d, &hex(b"8\x1c001\x1c1\x1c01\x1c0978"), false).unwrap();
        assert!(json.contains("EmvConfiguration"), "{json}");
        let json = decode(&d, &hex(b"99\x1c001\x1cA\x1c\x1cB"), false).unwrap();
        assert!(json.contains("\"Unknown\""), "{json}");
        assert!(json.contains("\"class\":\"99\""), "{json}");
        assert!(decode(&d, "", false).is_err());
    }
}
