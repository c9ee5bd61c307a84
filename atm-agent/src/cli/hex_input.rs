//! Hex input as technicians paste it (`atmctl iso8583 decode`, `atmctl ndc decode`): upper or
//! lower case, spaces and line breaks ignored.

use super::CliError;

/// Decodes a hex string, ignoring ASCII whitespace.
pub fn decode_hex(input: &str) -> Result<Vec<u8>, CliError> {
    let compact: String = input.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(CliError::new("no hex input given"));
    }
    hex::decode(&compact).map_err(|e| CliError::new(format!("input is not valid hex: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_and_case_are_ignored() {
        assert_eq!(decode_hex("0a 0B\n0c").unwrap(), vec![10, 11, 12]);
    }

    #[test]
    fn odd_length_and_empty_are_errors() {
        assert!(decode_hex("abc").is_err());
        assert!(decode_hex("  ").is_err());
        assert!(decode_hex("zz").is_err());
    }
}
