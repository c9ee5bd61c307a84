//! PIN-related values the agent keeps or passes on: which terminal PIN key a terminal confirmed
//! it holds, and a PIN block translated for the switch. Key material itself never appears here:
//! it stays in the key store (`keystore::KeyStore`).

use keystore::{EncryptedPinBlock, Kcv, KeyVersion};

/// The terminal PIN key a terminal confirmed it holds (its version in the key store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedPinKey {
    pub version: KeyVersion,
    pub kcv: Kcv,
    pub loaded_at_ms: u64,
}

/// A PIN block under the zone PIN key, and that key's version (what the switch needs to verify).
#[derive(Debug, Clone, Copy)]
pub struct ZonePinBlock {
    pub block: EncryptedPinBlock,
    pub zone_key_version: KeyVersion,
}
