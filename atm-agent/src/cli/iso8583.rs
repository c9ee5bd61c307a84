//! `atmctl iso8583 decode|encode`: ISO 8583 messages as the JSON dictionary pyiso8583 uses
//! (`"t"` for the MTI, field numbers as string keys, binary fields as uppercase hex), so a
//! technician can paste a trace from either tool into the other.

use std::path::Path;

use protocols::iso8583::{Message, Spec};

use super::{hex_input::decode_hex, CliError};

/// Resolves `--spec`: a built-in name (`iso87-ascii`, `iso87-binary`) or a path to a TOML spec.
pub fn resolve_spec(name: &str) -> Result<Spec, CliError> {
    if let Some(spec) = Spec::builtin(name) {
        return Ok(spec.clone());
    }
    let path = Path::new(name);
    if path.extension().is_some_and(|e| e == "toml") || path.exists() {
        return Spec::load(path).map_err(|e| CliError::new(format!("spec {name}: {e}")));
    }
    Err(CliError::new(format!(
        "unknown spec {name:?}: use iso87-ascii, iso87-binary or a path to a .toml spec"
    )))
}

/// Decodes a hex message into the pyiso8583 dictionary, masked unless `reveal`.
pub fn decode(spec: &Spec, hex_input: &str, reveal: bool) -> Result<String, CliError> {
    let bytes = decode_hex(hex_input)?;
    let msg = spec
        .unpack(&bytes)
        .map_err(|e| CliError::new(format!("cannot decode: {e}")))?;
    let map = msg.to_json(spec, reveal);
    Ok(serde_json::Value::Object(map).to_string())
}

/// Encodes a pyiso8583 dictionary (JSON text) into the packed message as uppercase hex.
pub fn encode(spec: &Spec, json_input: &str) -> Result<String, CliError> {
    let value: serde_json::Value = serde_json::from_str(json_input)
        .map_err(|e| CliError::new(format!("input is not JSON: {e}")))?;
    let map = value
        .as_object()
        .ok_or_else(|| CliError::new("input must be one JSON object of field number to string"))?;
    let msg =
        Message::from_json(map, spec).map_err(|e| CliError::new(format!("cannot encode: {e}")))?;
    let bytes = spec
        .pack(&msg)
        .map_err(|e| CliError::new(format!("cannot encode: {e}")))?;
    Ok(hex::encode_upper(bytes))
}
