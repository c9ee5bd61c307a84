//! `atmctl ndc decode`: one NDC message (the payload, without the length prefix) as JSON, with
//! track data and PIN buffer masked.

use protocols::ndc::{Dialect, NdcMessage};

use super::{hex_input::decode_hex, CliError};

/// Resolves `--dialect` by name.
pub fn resolve_dialect(name: &str) -> Result<Dialect, CliError> {
    Dialect::by_name(name).ok_or_else(|| CliError::new(format!("unknown NDC dialect {name:?}")))
}

/// Decodes a hex NDC message into JSON.
pub fn decode(dialect: &Dialect, hex_input: &str) -> Result<String, CliError> {
    let bytes = decode_hex(hex_input)?;
    let msg = NdcMessage::parse(&bytes, dialect)
        .map_err(|e| CliError::new(format!("cannot decode: {e}")))?;
    serde_json::to_string(&msg).map_err(|e| CliError::new(format!("cannot render JSON: {e}")))
}
