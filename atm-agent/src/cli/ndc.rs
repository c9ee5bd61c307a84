//! `atmctl ndc decode`: one NDC message (the payload, without the length prefix) as JSON, with
//! track data, PIN buffer A, buffers B and C and the id buffers (new-PIN blocks, smart card data)
//! masked; `--reveal` shows a transaction request's in clear, for a technician on a test terminal.

use protocols::ndc::{Dialect, NdcMessage, TerminalMessage, TransactionRequest};
use serde_json::Value;

use super::{hex_input::decode_hex, CliError};

/// Resolves `--dialect` by name.
pub fn resolve_dialect(name: &str) -> Result<Dialect, CliError> {
    Dialect::by_name(name).ok_or_else(|| CliError::new(format!("unknown NDC dialect {name:?}")))
}

/// Decodes a hex NDC message into JSON, masked unless `reveal`.
pub fn decode(dialect: &Dialect, hex_input: &str, reveal: bool) -> Result<String, CliError> {
    let bytes = decode_hex(hex_input)?;
    let msg = NdcMessage::parse(&bytes, dialect)
        .map_err(|e| CliError::new(format!("cannot decode: {e}")))?;
    let mut json = serde_json::to_value(&msg)
        .map_err(|e| CliError::new(format!("cannot render JSON: {e}")))?;
    if reveal {
        if let NdcMessage::Terminal(TerminalMessage::TransactionRequest(r)) = &msg {
            reveal_request(&mut json["Terminal"]["TransactionRequest"], r);
        }
    }
    Ok(json.to_string())
}

/// Puts the clear values back where `Serialize` masked them (the types mask themselves, so
/// revealing is this one explicit place).
fn reveal_request(json: &mut Value, r: &TransactionRequest) {
    let clear = |s: &str| Value::String(s.to_owned());
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
