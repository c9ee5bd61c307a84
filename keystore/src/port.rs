//! The `KeyStore` port: every operation on key or PIN material, named by key and version, so that
//! clear keys and clear PINs never leave the store. The software adapter implements it in this
//! process; a PKCS#11 HSM adapter would implement the same calls with HSM mechanisms (see README).

use protocols::types::Pan;

use crate::types::{
    Component, Cryptogram, EncryptedPinBlock, Kcv, KeyInfo, KeyLength, KeyName, KeyRef, KeyUsage,
    KeyVersion, PinVerdict, PinVerification,
};

/// Errors of the key store. None of them carries key or PIN material.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("{0}")]
    Invalid(String),
    #[error("no key {0}")]
    NotFound(String),
    #[error("key {key} has usage {actual}, this operation needs {needed}")]
    WrongUsage {
        key: String,
        actual: KeyUsage,
        needed: KeyUsage,
    },
    #[error("key check value mismatch for {what}: expected {expected}, computed {computed}")]
    KcvMismatch {
        what: String,
        expected: Kcv,
        computed: Kcv,
    },
    /// Version already stored with different material (an import that would silently replace a key).
    #[error("key {0} already exists with another check value")]
    Conflict(String),
    /// The deciphered PIN block is not a valid ISO 9564 format 0 block for this PAN (wrong key,
    /// wrong PAN, or a corrupted block). Carries no digits.
    #[error("PIN block does not decode as ISO 9564 format 0: {0}")]
    PinBlockFormat(&'static str),
    /// The key-encryption key is missing, unreadable, too open, or does not open the stored keys.
    #[error("key-encryption key: {0}")]
    Kek(String),
    /// The KEK file named in the configuration cannot be read (the cause says why).
    #[error("key-encryption key: cannot read the KEK file {path}")]
    KekFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("key store file {path}: {reason}")]
    Storage { path: String, reason: String },
    /// Sealed data (see [`KeyStore::seal_data`]) that does not open. Carries no data.
    #[error("sealed data {0}")]
    Sealed(&'static str),
}

pub type Result<T> = std::result::Result<T, KeyStoreError>;

/// Key management and PIN processing. Implementations are synchronous (a PKCS#11 call blocks too);
/// async callers use `spawn_blocking` for HSM adapters, the software one is fast enough inline.
pub trait KeyStore: Send + Sync + 'static {
    /// Every stored key version, sorted by name then version.
    fn list(&self) -> Result<Vec<KeyInfo>>;

    /// The newest version of `name`, if any.
    fn current(&self, name: &KeyName) -> Result<Option<KeyInfo>>;

    /// One version.
    fn info(&self, key: &KeyRef) -> Result<KeyInfo>;

    /// Combines two or more clear components by XOR into the next version of `name`. Each component
    /// must match its custodian's key check value (`kcvs[i]` for `components[i]`, compared in constant
    /// time) before anything is stored. Components must all have the same length.
    fn load_components(
        &self,
        name: &KeyName,
        usage: KeyUsage,
        components: &[Component],
        kcvs: &[Kcv],
    ) -> Result<KeyInfo>;

    /// Generates a random key (odd DES parity) as the next version of `name`.
    fn generate(&self, name: &KeyName, usage: KeyUsage, length: KeyLength) -> Result<KeyInfo>;

    /// `key` enciphered under `kek` (3DES ECB), to send it to a terminal or a peer. `kek` must have
    /// usage [`KeyUsage::Master`]; a master key is never exported.
    fn export_under(&self, key: &KeyRef, kek: &KeyRef) -> Result<Cryptogram>;

    /// Stores a key received enciphered under `kek` as `version` of `name` (the sender decides the
    /// version, so both sides name it alike). Its check value must equal `kcv`. Importing the same
    /// version again with the same check value is a no-op; with another one it is a `Conflict`.
    fn import_under(
        &self,
        name: &KeyName,
        usage: KeyUsage,
        version: KeyVersion,
        kek: &KeyRef,
        cryptogram: &Cryptogram,
        kcv: &Kcv,
    ) -> Result<KeyInfo>;

    /// Forgets one version (a key a terminal refused, a zone key past its grace window).
    fn destroy(&self, key: &KeyRef) -> Result<()>;

    /// Deciphers an ISO 9564 format 0 PIN block under `from`, checks it against `pan`, and
    /// re-enciphers it under `to`. Both keys must have usage [`KeyUsage::Pin`]. The clear block is
    /// zeroized before returning.
    fn translate_pin_block(
        &self,
        from: &KeyRef,
        to: &KeyRef,
        block: &EncryptedPinBlock,
        pan: &Pan,
    ) -> Result<EncryptedPinBlock>;

    /// Deciphers the PIN block under `zpk` (usage Pin) and checks the PIN against the card's
    /// verification data with `pvk` (usage PinVerification). The clear PIN is zeroized before
    /// returning; only the verdict leaves.
    fn verify_pin(
        &self,
        zpk: &KeyRef,
        block: &EncryptedPinBlock,
        pan: &Pan,
        pvk: &KeyRef,
        method: &PinVerification,
    ) -> Result<PinVerdict>;

    /// HMAC-SHA-256 of the PAN's digits under `key` (usage [`KeyUsage::CardReference`]): the
    /// keyed value card references are made from. Without the key, a masked PAN's 10^5
    /// candidates cannot be tested against a reference.
    fn card_reference(&self, key: &KeyRef, pan: &Pan) -> Result<[u8; 32]>;

    /// Encrypts `plaintext` under `key` (usage [`KeyUsage::DataProtection`], AES-256-GCM, random
    /// nonce). `aad` is authenticated with it: pass what names the record (its store key), so a
    /// sealed value copied into another record does not open there.
    fn seal_data(&self, key: &KeyRef, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>>;

    /// Decrypts what [`seal_data`](KeyStore::seal_data) made under the same key and `aad`; the clear bytes
    /// are wiped when dropped.
    fn open_data(
        &self,
        key: &KeyRef,
        sealed: &[u8],
        aad: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>>;
}
