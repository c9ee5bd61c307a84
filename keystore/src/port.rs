//! The `KeyStore` port: every operation on key or PIN material, named by key and version, so that
//! clear keys and clear PINs never leave the store. The software adapter implements it in this
//! process; a PKCS#11 HSM adapter would implement the same calls with HSM mechanisms (see README).

use protocols::types::Pan;

use crate::types::{
    Component, Cryptogram, EncryptedPinBlock, Kcv, KeyDelivery, KeyInfo, KeyLength, KeyName,
    KeyRef, KeyUsage, KeyVersion, PinVerdict, PinVerification,
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
    /// A key too weak for its usage (single DES, equal halves, identical components, a DES weak
    /// key), or wrapped under a shorter key. Says what is wrong, never the key.
    #[error("{what} refused: {weakness}")]
    WeakKey {
        what: String,
        weakness: crate::crypto::Weakness,
    },
    /// A custodian's component does not give the check value typed with it. Neither value is
    /// quoted: either may be a typing error of the other custodian's secret.
    #[error("component {component} does not match its check value: the component or its check value was mistyped")]
    ComponentKcvMismatch { component: usize },
    /// An export or import outside the named pairs (ZPK under ZMK, TPK under its own TMK).
    #[error("key {key} ({usage}) does not travel under {kek} ({kek_usage}): {rule}")]
    NotExportable {
        key: String,
        usage: KeyUsage,
        kek: String,
        kek_usage: KeyUsage,
        rule: &'static str,
    },
    /// An import of a version not newer than the newest ever stored under that name: a replayed
    /// delivery, or a key destroyed that must not come back.
    #[error("key {key} refused: version {newest} or a newer one was already stored (a replayed or destroyed key is not installed again)")]
    VersionNotNewer { key: String, newest: KeyVersion },
    /// A key delivery whose MAC does not verify under the master key it came under.
    #[error("key delivery {key} under {kek} refused: its MAC does not verify (version or cryptogram altered in transit, or another master key)")]
    DeliveryMac { key: String, kek: String },
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
    /// time) before anything is stored. Components must all have the same length, that of the key:
    /// at least the length of the version they replace. For master, PIN and PIN verification
    /// keys, single-DES components, two identical components and a combined key with equal parts
    /// are refused ([`WeakKey`](KeyStoreError::WeakKey)).
    fn load_components(
        &self,
        name: &KeyName,
        usage: KeyUsage,
        components: &[Component],
        kcvs: &[Kcv],
    ) -> Result<KeyInfo>;

    /// Generates a random key (odd DES parity) as the next version of `name`. Versions never
    /// go backwards: a version once stored (even if destroyed since) is never made again.
    fn generate(&self, name: &KeyName, usage: KeyUsage, length: KeyLength) -> Result<KeyInfo>;

    /// `key` enciphered under `kek` (3DES ECB), to send it to a terminal or a peer. Only the named
    /// pairs travel: a zone PIN key under a zone master key, a terminal PIN key `tpk/<t>` under
    /// its own terminal master key `tmk/<t>` (anything else is
    /// [`NotExportable`](KeyStoreError::NotExportable)); `kek` must be at least as long as `key`.
    fn export_under(&self, key: &KeyRef, kek: &KeyRef) -> Result<Cryptogram>;

    /// Stores a key received enciphered under `kek` as `version` of `name` (the sender decides the
    /// version, so both sides name it alike). Its usage follows from `kek`'s (a zone master key
    /// brings a zone PIN key, `tmk/<t>` brings `tpk/<t>`); its check value must equal `kcv`.
    /// Importing the same version again with the same check value is a no-op; with another one
    /// it is a `Conflict`; a version at or below the newest ever stored under `name` that is not
    /// stored any more is [`VersionNotNewer`](KeyStoreError::VersionNotNewer).
    fn import_under(
        &self,
        name: &KeyName,
        version: KeyVersion,
        kek: &KeyRef,
        cryptogram: &Cryptogram,
        kcv: &Kcv,
    ) -> Result<KeyInfo>;

    /// [`export_under`](KeyStore::export_under) for a peer that checks what it receives: the
    /// cryptogram with `key`'s version and check value, and a MAC over them under a key derived
    /// from `kek` (the zone key exchange).
    fn export_delivery(&self, key: &KeyRef, kek: &KeyRef) -> Result<KeyDelivery>;

    /// Checks `delivery`'s MAC under `kek` for `name` (refused as
    /// [`DeliveryMac`](KeyStoreError::DeliveryMac) before anything is deciphered), then imports it
    /// as [`import_under`](KeyStore::import_under) does, at the version the MAC covers.
    fn import_delivery(
        &self,
        name: &KeyName,
        kek: &KeyRef,
        delivery: &KeyDelivery,
    ) -> Result<KeyInfo>;

    /// Forgets one version (a key a terminal refused, a zone key past its grace window).
    fn destroy(&self, key: &KeyRef) -> Result<()>;

    /// Deciphers an ISO 9564 format 0 PIN block under `from`, checks it against `pan`, and
    /// re-enciphers it under `to`. Both keys must be PIN keys (terminal or zone). The clear block is
    /// zeroized before returning.
    fn translate_pin_block(
        &self,
        from: &KeyRef,
        to: &KeyRef,
        block: &EncryptedPinBlock,
        pan: &Pan,
    ) -> Result<EncryptedPinBlock>;

    /// Deciphers the PIN block under `zpk` (a PIN key) and checks the PIN against the card's
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

    /// The NDC message authentication code of `data` under `key` (usage [`KeyUsage::Mac`], a
    /// double-length DES key): ANSI X9.19 / ISO/IEC 9797-1 MAC algorithm 3 with zero padding
    /// (see `crypto::retail_mac`), all 8 bytes. The caller sends the leftmost bytes it needs.
    fn generate_mac(&self, key: &KeyRef, data: &[u8]) -> Result<[u8; 8]>;

    /// Whether `mac` (the leftmost 4 to 8 bytes of a MAC, as received) is the MAC of `data` under
    /// `key`, compared in constant time. `Ok(false)` is a mismatch; a key that is missing or of
    /// another usage, or a `mac` of another length, is an error.
    fn verify_mac(&self, key: &KeyRef, data: &[u8], mac: &[u8]) -> Result<bool>;
}
