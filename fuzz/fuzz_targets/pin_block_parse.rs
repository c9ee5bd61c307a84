//! Fuzz the key store's parsers of outside bytes: a deciphered PIN block (what a wrong key or a
//! corrupted message produces), a key cryptogram in hex, and an AES-wrapped key record. None may
//! panic; a block that decodes must re-encode to itself, and a record that unwraps must re-wrap to
//! itself.
#![no_main]

use keystore::{crypto, Cryptogram, KeyStoreError};
use libfuzzer_sys::fuzz_target;
use protocols::types::Pan;

/// Any fixed key: the fuzzer explores the unwrap code paths, not the key space.
const KEK: [u8; 32] = [0x5A; 32];

fuzz_target!(|data: &[u8]| {
    let pan = Pan::parse("4761739001010010").expect("a valid PAN");
    if let Some(block) = data.get(..8) {
        let block: [u8; 8] = block.try_into().expect("8 bytes");
        match crypto::pin_from_format0(&block, &pan) {
            Ok(pin) => {
                let again = crypto::pin_block_format0(&pin, &pan).expect("a decoded PIN encodes");
                assert_eq!(*again, block, "decode then encode changed the block");
            }
            Err(KeyStoreError::PinBlockFormat(_)) => {}
            Err(e) => panic!("a bad PIN block must be a PinBlockFormat error, got {e}"),
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = Cryptogram::from_hex(text) {
            assert!(matches!(c.0.len(), 8 | 16 | 24));
        }
    }
    if let Ok(plain) = crypto::aes_key_unwrap(&KEK, data) {
        let again = crypto::aes_key_wrap(&KEK, &plain).expect("an unwrapped key wraps");
        assert_eq!(again, data, "unwrap then wrap changed the record");
    }
});
