//! Keys and PINs for the agent and the switch.
//!
//! - [`KeyStore`]: the port. Operations name keys by [`KeyRef`] (name + version); clear keys and
//!   clear PINs exist only inside an implementation, in zeroized buffers.
//! - [`SoftwareKeyStore`]: the software adapter. Keys are kept in one file, each wrapped under a
//!   local key-encryption key (AES-256 key wrap, RFC 3394) loaded from a mode-0600 file or an
//!   environment variable ([`Kek`]).
//! - [`ceremony`]: key entry by custodians (components and their check values, not echoed).
//! - [`crypto`]: the algorithms, as pure functions with known-answer tests: 3DES ECB, key check
//!   values, ISO 9564 format 0 PIN blocks, Visa PVV, IBM 3624 offsets, AES key wrap.

pub mod ceremony;
pub mod crypto;
mod kek;
mod port;
mod software;
mod types;

pub use crypto::Weakness;
pub use kek::{Kek, KekSource};
pub use port::{KeyStore, KeyStoreError, Result};
pub use software::SoftwareKeyStore;
pub use types::{
    Component, Cryptogram, EncryptedPinBlock, Kcv, KeyDelivery, KeyInfo, KeyLength, KeyName,
    KeyRef, KeyUsage, KeyVersion, PinVerdict, PinVerification, DELIVERY_MAC_LEN,
};
