//! The local key-encryption key (KEK) that wraps every stored key: 32 bytes, given as 64 hex digits
//! in a file readable by its owner only (mode 0600 or stricter), or in an environment variable.

use zeroize::Zeroizing;

use crate::KeyStoreError;

/// A loaded KEK. `Debug` shows `****`.
pub struct Kek(pub(crate) Zeroizing<[u8; 32]>);

impl Kek {
    /// Reads a KEK file: 64 hex digits (surrounding whitespace allowed); refuses a file whose mode
    /// lets group or others read it.
    pub fn from_file(path: &std::path::Path) -> Result<Self, KeyStoreError> {
        let _ = path;
        todo!()
    }
    /// Reads the KEK from environment variable `var`.
    pub fn from_env(var: &str) -> Result<Self, KeyStoreError> {
        let _ = var;
        todo!()
    }
    /// 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, KeyStoreError> {
        let _ = s;
        todo!()
    }
    /// A fresh random KEK (lab and first install), with its hex form to write to a 0600 file.
    pub fn generate() -> Result<(Self, Zeroizing<String>), KeyStoreError> {
        todo!()
    }
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(****)")
    }
}
