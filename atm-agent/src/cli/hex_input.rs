//! Hex input as technicians paste it (`atmctl iso8583 decode`, `atmctl ndc decode`): upper or
//! lower case, spaces and line breaks ignored.
//!
//! A pasted message may carry a PIN block, track 2 or a key under field 48, so the compacted text
//! and the decoded bytes live in zeroizing buffers sized once (no regrowth leaves a copy behind),
//! and an error never quotes the input.

use zeroize::Zeroizing;

use super::CliError;

/// Decodes a hex string, ignoring ASCII whitespace, into a buffer wiped when dropped.
pub fn decode_hex(input: &str) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let mut compact = Zeroizing::new(String::with_capacity(input.len()));
    compact.extend(input.chars().filter(|c| !c.is_ascii_whitespace()));
    if compact.is_empty() {
        return Err(CliError::new("no hex input given"));
    }
    if !compact.len().is_multiple_of(2) {
        return Err(CliError::new(format!(
            "input is not valid hex: {} digits, an odd number",
            compact.len()
        )));
    }
    let mut bytes = Zeroizing::new(vec![0u8; compact.len() / 2]);
    hex::decode_to_slice(compact.as_bytes(), &mut bytes)
        .map_err(|e| CliError::new(format!("input is not valid hex: {e}")))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_and_case_are_ignored() {
        assert_eq!(*decode_hex("0a 0B\n0c").unwrap(), vec![10, 11, 12]);
    }

    #[test]
    fn decoded_bytes_are_held_in_a_zeroizing_buffer_of_exactly_their_length() {
        let bytes: Zeroizing<Vec<u8>> = decode_hex("0a 0B\n0c").unwrap();
        assert_eq!(bytes.capacity(), 3);
    }

    #[test]
    fn odd_length_and_empty_are_errors() {
        assert!(decode_hex("abc").is_err());
        assert!(decode_hex("  ").is_err());
        assert!(decode_hex("zz").is_err());
    }
}
