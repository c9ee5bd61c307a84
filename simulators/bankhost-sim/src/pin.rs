//! PIN verification as an issuer does it: field 52 is an ISO 9564 format 0 block enciphered
//! under the zone PIN key shared with the acquirer (the switch); decipher it, read the PIN and
//! compare it with the card's.
//!
//! Field 52 arrives as 8 bytes (binary specs) or as 16 hex characters (ASCII specs); both are
//! accepted. A block that does not decipher to a valid format 0 block is a wrong PIN, as for a
//! real host (it cannot tell a wrong key from a wrong PIN).

use protocols::types::Pan;
use subtle_free::constant_time_eq;
use zeroize::Zeroizing;

/// The zone PIN key, never printed.
pub struct Zpk(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Zpk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Zpk(****)")
    }
}

impl Zpk {
    pub fn from_hex(text: &str) -> Result<Zpk, crate::config::ConfigError> {
        crate::config::parse_zpk(text).map(Zpk)
    }

    /// Whether the enciphered block `field52` carries `expected` for `pan`.
    pub fn verify(&self, field52: &[u8], pan: &Pan, expected: &str) -> bool {
        let Some(mut block) = block_bytes(field52) else {
            return false;
        };
        if keystore::crypto::tdes_decrypt_ecb(&self.0, &mut block[..]).is_err() {
            return false;
        }
        match keystore::crypto::pin_from_format0(&block, pan) {
            Ok(pin) => constant_time_eq(pin.as_bytes(), expected.as_bytes()),
            Err(_) => false,
        }
    }

    /// What a PIN pad (or the switch translating to this host's key) sends: for tests.
    pub fn encrypt(&self, pin: &str, pan: &Pan) -> Option<[u8; 8]> {
        keystore::crypto::encrypt_pin(&self.0, pin, pan)
            .ok()
            .map(|b| b.0)
    }
}

/// The 8 block bytes of field 52: as they are, or from 16 hex characters.
fn block_bytes(field52: &[u8]) -> Option<Zeroizing<[u8; 8]>> {
    let mut out = Zeroizing::new([0u8; 8]);
    match field52.len() {
        8 => out.copy_from_slice(field52),
        16 => hex::decode_to_slice(field52, &mut out[..]).ok()?,
        _ => return None,
    }
    Some(out)
}

/// Equality without an early exit (a simulator, but the habit costs nothing).
mod subtle_free {
    pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZPK: &str = "0123456789ABCDEFFEDCBA9876543210";

    #[test]
    fn right_pin_verifies_in_binary_and_hex_form() {
        let zpk = Zpk::from_hex(ZPK).unwrap();
        let pan = Pan::parse("5413330089020011").unwrap();
        let block = zpk.encrypt("1234", &pan).unwrap();
        assert!(zpk.verify(&block, &pan, "1234"));
        let hex_block = hex::encode_upper(block);
        assert!(zpk.verify(hex_block.as_bytes(), &pan, "1234"));
        assert!(!zpk.verify(&block, &pan, "4321"));
        assert!(!zpk.verify(b"short", &pan, "1234"));
        assert!(!zpk.verify(b"zzzzzzzzzzzzzzzz", &pan, "1234"));
    }

    #[test]
    fn a_block_under_another_key_is_a_wrong_pin() {
        let zpk = Zpk::from_hex(ZPK).unwrap();
        let other = Zpk::from_hex("FEDCBA98765432100123456789ABCDEF").unwrap();
        let pan = Pan::parse("5413330089020011").unwrap();
        let block = other.encrypt("1234", &pan).unwrap();
        assert!(!zpk.verify(&block, &pan, "1234"));
        assert_eq!(format!("{zpk:?}"), "Zpk(****)");
    }
}
