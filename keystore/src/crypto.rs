//! The algorithms, as pure functions over byte slices. Every buffer that holds a clear key, PIN or
//! PIN block is a `Zeroizing` one. Known-answer tests from published examples sit beside each.

use protocols::types::Pan;
use zeroize::Zeroizing;

use crate::types::{EncryptedPinBlock, Kcv};
use crate::KeyStoreError;

/// 3DES (or single DES for an 8-byte key) ECB encryption in place. `key` is 8, 16 or 24 bytes;
/// `data` a multiple of 8 bytes.
pub fn tdes_encrypt_ecb(key: &[u8], data: &mut [u8]) -> Result<(), KeyStoreError> {
    let _ = (key, data);
    todo!()
}

/// 3DES ECB decryption in place.
pub fn tdes_decrypt_ecb(key: &[u8], data: &mut [u8]) -> Result<(), KeyStoreError> {
    let _ = (key, data);
    todo!()
}

/// Key check value: the first 3 bytes of the key encrypting 8 zero bytes.
pub fn kcv(key: &[u8]) -> Result<Kcv, KeyStoreError> {
    let _ = key;
    todo!()
}

/// Sets odd parity on every byte (DES convention); the KCV does not change.
pub fn set_odd_parity(key: &mut [u8]) {
    let _ = key;
    todo!()
}

/// ISO 9564-1 format 0 clear PIN block for `pin` (4-12 digits) and `pan`.
pub fn pin_block_format0(pin: &str, pan: &Pan) -> Result<Zeroizing<[u8; 8]>, KeyStoreError> {
    let _ = (pin, pan);
    todo!()
}

/// The PIN digits of a clear format 0 block for `pan`; `PinBlockFormat` when it is not one.
pub fn pin_from_format0(block: &[u8; 8], pan: &Pan) -> Result<Zeroizing<String>, KeyStoreError> {
    let _ = (block, pan);
    todo!()
}

/// What a PIN pad does: format 0 block for `pin` and `pan`, enciphered under `pin_key`.
pub fn encrypt_pin(pin_key: &[u8], pin: &str, pan: &Pan) -> Result<EncryptedPinBlock, KeyStoreError> {
    let _ = (pin_key, pin, pan);
    todo!()
}

/// Visa PVV (4 digits) for `pin` (its first 4 digits are used), `pan` and PVK index `pvki`.
pub fn visa_pvv(pvk: &[u8], pvki: u8, pin: &str, pan: &Pan) -> Result<Zeroizing<String>, KeyStoreError> {
    let _ = (pvk, pvki, pin, pan);
    todo!()
}

/// IBM 3624 offset for `pin` (see [`crate::PinVerification::Ibm3624`] for the parameters).
pub fn ibm3624_offset(
    pvk: &[u8],
    pin: &str,
    pan: &Pan,
    decimalization: &str,
    validation_start: usize,
    validation_len: usize,
    pad: char,
) -> Result<Zeroizing<String>, KeyStoreError> {
    let _ = (pvk, pin, pan, decimalization, validation_start, validation_len, pad);
    todo!()
}

/// AES key wrap (RFC 3394) of `plaintext` (a multiple of 8 bytes, at least 16) under a 32-byte KEK.
pub fn aes_key_wrap(kek: &[u8; 32], plaintext: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
    let _ = (kek, plaintext);
    todo!()
}

/// AES key unwrap (RFC 3394); `Kek` error when the integrity check fails.
pub fn aes_key_unwrap(kek: &[u8; 32], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
    let _ = (kek, wrapped);
    todo!()
}
