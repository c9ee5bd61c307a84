//! The values that cross the [`KeyStore`](crate::KeyStore) port. None of them holds clear key or PIN
//! material except [`Component`], which masks itself and is zeroized on drop.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::KeyStoreError;

/// What a key may be used for. The store refuses an operation with a key of the wrong usage.
///
/// Terminal and zone keys have usages of their own so that one kind can never stand in for the
/// other: a zone master key cannot wrap a terminal PIN key for a terminal, nor a terminal master
/// key receive the zone PIN key. Export and import follow named pairs only (see
/// [`KeyUsage::exported_under`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyUsage {
    /// Terminal master key (TMK), `tmk/<terminal>`: wraps that terminal's PIN key, nothing else.
    TerminalMaster,
    /// Zone master key (ZMK), shared with the peer (agent ↔ switch): wraps zone PIN keys.
    ZoneMaster,
    /// Terminal PIN key (TPK), `tpk/<terminal>`: PIN blocks from that terminal's PIN pad.
    TerminalPin,
    /// Zone PIN key (ZPK): PIN blocks between the agent and the switch.
    ZonePin,
    /// MAC key.
    Mac,
    /// PIN verification key (PVK): Visa PVV or IBM 3624 natural PIN. Never exported.
    PinVerification,
    /// Card reference key (32 bytes, HMAC-SHA-256): derives the token a card is known by, so that
    /// a masked PAN (first 6, last 4) cannot be completed by hashing the 10^5 candidates.
    CardReference,
    /// Data protection key (32 bytes, AES-256-GCM): card data kept at rest (an offline deposit's
    /// PAN, a card's PVV or offset).
    DataProtection,
}

impl KeyUsage {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyUsage::TerminalMaster => "terminal_master",
            KeyUsage::ZoneMaster => "zone_master",
            KeyUsage::TerminalPin => "terminal_pin",
            KeyUsage::ZonePin => "zone_pin",
            KeyUsage::Mac => "mac",
            KeyUsage::PinVerification => "pin_verification",
            KeyUsage::CardReference => "card_reference",
            KeyUsage::DataProtection => "data_protection",
        }
    }

    /// Whether keys of this usage are DES keys (8, 16 or 24 bytes, odd parity, 3DES check value)
    /// rather than 32-byte keys for HMAC-SHA-256 or AES-256.
    pub fn is_des(self) -> bool {
        !matches!(self, KeyUsage::CardReference | KeyUsage::DataProtection)
    }

    /// A key-encrypting key (terminal or zone master key).
    pub fn is_master(self) -> bool {
        matches!(self, KeyUsage::TerminalMaster | KeyUsage::ZoneMaster)
    }

    /// A PIN-encrypting key (terminal or zone PIN key).
    pub fn is_pin(self) -> bool {
        matches!(self, KeyUsage::TerminalPin | KeyUsage::ZonePin)
    }

    /// Keys held to the weak-key rules (no single DES, no equal halves, no identical components):
    /// master, PIN and PIN verification keys, which protect PINs directly or through other keys.
    pub fn is_strict(self) -> bool {
        self.is_master() || self.is_pin() || self == KeyUsage::PinVerification
    }

    /// The usage of the key a master key of this usage wraps: the named pairs, and nothing else.
    /// A PIN verification key, a card reference key and a data protection key are under none, so
    /// they never leave the store; a master key is never wrapped either.
    pub fn exported_under(self) -> Option<KeyUsage> {
        match self {
            KeyUsage::ZonePin => Some(KeyUsage::ZoneMaster),
            KeyUsage::TerminalPin => Some(KeyUsage::TerminalMaster),
            // NDC MAC mode: the terminal MAC key `tak/<t>` travels under its own `tmk/<t>` (the
            // key change `45`). It is only ever exported: `wraps` stays one-to-one.
            KeyUsage::Mac => Some(KeyUsage::TerminalMaster),
            _ => None,
        }
    }

    /// The usage of a key received under a master key of this usage (the inverse of
    /// [`exported_under`](KeyUsage::exported_under)): an import's usage follows from its wrapping
    /// key, the caller does not choose it.
    pub fn wraps(self) -> Option<KeyUsage> {
        match self {
            KeyUsage::ZoneMaster => Some(KeyUsage::ZonePin),
            KeyUsage::TerminalMaster => Some(KeyUsage::TerminalPin),
            _ => None,
        }
    }

    /// The name prefix a key of this usage must carry, for the usages whose pair is per
    /// terminal (`tmk/<terminal>` wraps only `tpk/<terminal>` and `tak/<terminal>`).
    pub fn name_prefix(self) -> Option<&'static str> {
        match self {
            KeyUsage::TerminalMaster => Some(TMK_PREFIX),
            KeyUsage::TerminalPin => Some(TPK_PREFIX),
            KeyUsage::Mac => Some(TAK_PREFIX),
            _ => None,
        }
    }
}

const TMK_PREFIX: &str = "tmk/";
const TPK_PREFIX: &str = "tpk/";
const TAK_PREFIX: &str = "tak/";

impl fmt::Display for KeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyUsage {
    type Err = KeyStoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "terminal_master" | "terminal-master" | "tmk" => Ok(KeyUsage::TerminalMaster),
            "zone_master" | "zone-master" | "zmk" => Ok(KeyUsage::ZoneMaster),
            "terminal_pin" | "terminal-pin" | "tpk" => Ok(KeyUsage::TerminalPin),
            "zone_pin" | "zone-pin" | "zpk" => Ok(KeyUsage::ZonePin),
            "mac" => Ok(KeyUsage::Mac),
            "pin_verification" | "pin-verification" | "pvk" => Ok(KeyUsage::PinVerification),
            "card_reference" | "card-reference" => Ok(KeyUsage::CardReference),
            "data_protection" | "data-protection" => Ok(KeyUsage::DataProtection),
            // The old usages named two kinds of key each: which one is meant is not a guess.
            "master" | "pin" => Err(KeyStoreError::Invalid(format!(
                "key usage {s:?} is no longer used: say terminal_{s} or zone_{s}"
            ))),
            other => Err(KeyStoreError::Invalid(format!(
                "unknown key usage {other:?}: use terminal_master, zone_master, terminal_pin, \
                 zone_pin, mac, pin_verification, card_reference or data_protection"
            ))),
        }
    }
}

/// A key's name in the store: 1 to 64 characters of `A-Z a-z 0-9 . _ - /`.
/// By convention `tmk/<terminal>`, `tpk/<terminal>`, `zmk`, `zpk`, `pvk/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyName(String);

impl KeyName {
    pub fn new(s: impl Into<String>) -> Result<Self, KeyStoreError> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'));
        if ok {
            Ok(Self(s))
        } else {
            Err(KeyStoreError::Invalid(format!(
                "bad key name {s:?}: 1-64 characters of A-Z a-z 0-9 . _ - /"
            )))
        }
    }
    /// `tmk/<terminal>`: the terminal master key, entered in components.
    pub fn terminal_master(terminal: &str) -> Result<Self, KeyStoreError> {
        Self::new(format!("tmk/{terminal}"))
    }
    /// `tpk/<terminal>`: the terminal PIN key, generated by the agent and loaded over NDC.
    pub fn terminal_pin(terminal: &str) -> Result<Self, KeyStoreError> {
        Self::new(format!("tpk/{terminal}"))
    }
    /// `zmk`: the zone master key shared by agent and switch.
    pub fn zone_master() -> Self {
        Self("zmk".to_owned())
    }
    /// `zpk`: the zone PIN key, generated by the switch and sent under the ZMK.
    pub fn zone_pin() -> Self {
        Self("zpk".to_owned())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The terminal a `tmk/<terminal>`, `tpk/<terminal>` or `tak/<terminal>` name is for.
    pub fn terminal(&self) -> Option<&str> {
        self.0
            .strip_prefix(TMK_PREFIX)
            .or_else(|| self.0.strip_prefix(TPK_PREFIX))
            .or_else(|| self.0.strip_prefix(TAK_PREFIX))
    }
}

impl TryFrom<String> for KeyName {
    type Error = KeyStoreError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<KeyName> for String {
    fn from(k: KeyName) -> String {
        k.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Key versions count from 1; each load, import or generation under a name makes the next one.
pub type KeyVersion = u32;

/// One version of one key: what every cryptographic operation names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyRef {
    pub name: KeyName,
    pub version: KeyVersion,
}

impl KeyRef {
    pub fn new(name: KeyName, version: KeyVersion) -> Self {
        Self { name, version }
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} v{}", self.name, self.version)
    }
}

/// Key check value: the first 3 bytes of the key encrypting a block of zeros. Shown as 6 hex digits.
/// Compared in constant time.
#[derive(Clone, Copy, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Kcv(pub [u8; 3]);

impl Kcv {
    pub fn ct_eq(&self, other: &Kcv) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl PartialEq for Kcv {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

// Written out (not derived) beside the constant-time `PartialEq`; it hashes the same bytes, so
// equal values hash alike.
impl std::hash::Hash for Kcv {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Display for Kcv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode_upper(self.0))
    }
}

impl fmt::Debug for Kcv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kcv({self})")
    }
}

impl FromStr for Kcv {
    type Err = KeyStoreError;
    /// 6 hex digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // What was typed is not quoted: a custodian may have put a component where the check
        // value goes.
        let bad = || {
            KeyStoreError::Invalid(format!(
                "a key check value is 6 hex digits, got {} characters",
                s.chars().count()
            ))
        };
        if s.len() != 6 {
            return Err(bad());
        }
        let mut out = [0u8; 3];
        hex::decode_to_slice(s, &mut out).map_err(|_| bad())?;
        Ok(Kcv(out))
    }
}

impl TryFrom<String> for Kcv {
    type Error = KeyStoreError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Kcv> for String {
    fn from(k: Kcv) -> String {
        k.to_string()
    }
}

/// Length of a generated key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyLength {
    /// 16 bytes, 2-key 3DES.
    Double,
    /// 24 bytes, 3-key 3DES.
    Triple,
    /// 32 bytes: the only length of card reference and data protection keys.
    Bytes32,
}

impl KeyLength {
    pub fn bytes(self) -> usize {
        match self {
            KeyLength::Double => 16,
            KeyLength::Triple => 24,
            KeyLength::Bytes32 => 32,
        }
    }
}

/// What the store tells about a key version. Never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub name: KeyName,
    pub usage: KeyUsage,
    pub version: KeyVersion,
    pub kcv: Kcv,
    /// Key length in bytes (8, 16 or 24 for DES keys, 32 for the others).
    pub length: usize,
    /// Seconds since the Unix epoch when this version was stored.
    pub created_unix: u64,
}

impl KeyInfo {
    pub fn key_ref(&self) -> KeyRef {
        KeyRef::new(self.name.clone(), self.version)
    }
}

/// One clear key component as a key custodian typed it (16, 32 or 48 hex digits for DES keys, 64
/// for card reference and data protection keys). Zeroized on drop;
/// `Debug` shows `****`. It exists only between the custodian's keyboard and
/// [`KeyStore::load_components`](crate::KeyStore::load_components).
pub struct Component(Zeroizing<Vec<u8>>);

impl Component {
    pub fn from_hex(s: &str) -> Result<Self, KeyStoreError> {
        let s = s.trim();
        if !matches!(s.len(), 16 | 32 | 48 | 64) {
            return Err(KeyStoreError::Invalid(format!(
                "a key component is 16, 32, 48 or 64 hex digits, got {} characters",
                s.len()
            )));
        }
        let bytes =
            Zeroizing::new(hex::decode(s).map_err(|_| {
                KeyStoreError::Invalid("a key component is hex digits only".into())
            })?);
        Ok(Self(bytes))
    }
    pub fn from_bytes(bytes: Zeroizing<Vec<u8>>) -> Result<Self, KeyStoreError> {
        if !matches!(bytes.len(), 8 | 16 | 24 | 32) {
            return Err(KeyStoreError::Invalid(format!(
                "a key component is 8, 16, 24 or 32 bytes, got {}",
                bytes.len()
            )));
        }
        Ok(Self(bytes))
    }
    /// The clear bytes. Only key-store code calls this.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Component(****)")
    }
}

/// A key enciphered under another key (3DES ECB, block by block): what goes to a terminal in an NDC
/// key load, or to the agent in the zone PIN key exchange. Not secret without the wrapping key, but
/// still kept out of logs (`Debug` shows its length only).
#[derive(Clone, PartialEq, Eq)]
pub struct Cryptogram(pub Vec<u8>);

impl Cryptogram {
    pub fn to_hex(&self) -> String {
        hex::encode_upper(&self.0)
    }
    pub fn from_hex(s: &str) -> Result<Self, KeyStoreError> {
        let bytes = hex::decode(s)
            .map_err(|_| KeyStoreError::Invalid("a key cryptogram is hex digits".into()))?;
        if !matches!(bytes.len(), 8 | 16 | 24) {
            return Err(KeyStoreError::Invalid(format!(
                "a key cryptogram is 8, 16 or 24 bytes, got {}",
                bytes.len()
            )));
        }
        Ok(Self(bytes))
    }
}

impl fmt::Debug for Cryptogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cryptogram({} bytes)", self.0.len())
    }
}

/// A key sent to a peer under a shared master key (the zone PIN key under the zone master key),
/// bound to the version the sender stored it as. The MAC is made under a key derived from the
/// master key over the key's name, version, cryptogram and check value (see
/// [`crypto::key_delivery_mac`](crate::crypto::key_delivery_mac)), so that a version edited in
/// transit, or a cryptogram moved under another version, does not verify; the receiver's store
/// also refuses any version not newer than the newest it ever held, so an old delivery replayed
/// does not bring back a destroyed key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyDelivery {
    pub version: KeyVersion,
    pub cryptogram: Cryptogram,
    pub kcv: Kcv,
    pub mac: [u8; DELIVERY_MAC_LEN],
}

/// Bytes of a [`KeyDelivery`] MAC (16 hex digits on the wire).
pub const DELIVERY_MAC_LEN: usize = 8;

impl KeyDelivery {
    /// What travels beside the version: the cryptogram in hex, the 6-hex check value, then the
    /// MAC in 16 hex digits.
    pub fn body(&self) -> String {
        format!(
            "{}{}{}",
            self.cryptogram.to_hex(),
            self.kcv,
            hex::encode_upper(self.mac)
        )
    }

    /// Reads [`body`](KeyDelivery::body) for `version`. A body without a MAC (a switch from before
    /// the binding) is refused: an unbound key is not installed.
    pub fn from_body(version: KeyVersion, body: &str) -> Result<Self, KeyStoreError> {
        let mac_hex = 2 * DELIVERY_MAC_LEN;
        // A double- or triple-length key's cryptogram (32 or 48 hex digits): so a body from
        // before the MAC (cryptogram and check value only) cannot read as a shorter key plus MAC.
        let cryptogram_hex = body.len().checked_sub(6 + mac_hex);
        if !body.is_ascii() || !matches!(cryptogram_hex, Some(32 | 48)) {
            return Err(KeyStoreError::Invalid(format!(
                "a key delivery is a cryptogram of 32 or 48 hex digits, a 6-hex check value and \
                 a {mac_hex}-hex MAC, got {} characters",
                body.len()
            )));
        }
        let (rest, mac_text) = body.split_at(body.len() - mac_hex);
        let (cryptogram, kcv) = rest.split_at(rest.len() - 6);
        let mut mac = [0u8; DELIVERY_MAC_LEN];
        hex::decode_to_slice(mac_text, &mut mac)
            .map_err(|_| KeyStoreError::Invalid("a key delivery's MAC is hex digits".into()))?;
        Ok(Self {
            version,
            cryptogram: Cryptogram::from_hex(cryptogram)?,
            kcv: kcv.parse()?,
            mac,
        })
    }
}

impl fmt::Debug for KeyDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyDelivery")
            .field("version", &self.version)
            .field("cryptogram", &self.cryptogram)
            .field("kcv", &self.kcv)
            .finish_non_exhaustive()
    }
}

/// An ISO 9564 PIN block enciphered under a PIN key (8 bytes). `Debug` shows `****`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EncryptedPinBlock(pub [u8; 8]);

impl EncryptedPinBlock {
    pub fn from_slice(b: &[u8]) -> Result<Self, KeyStoreError> {
        let arr: [u8; 8] = b.try_into().map_err(|_| {
            KeyStoreError::Invalid(format!("a PIN block is 8 bytes, got {}", b.len()))
        })?;
        Ok(Self(arr))
    }
    pub fn from_hex(s: &str) -> Result<Self, KeyStoreError> {
        let mut out = [0u8; 8];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| KeyStoreError::Invalid("a PIN block is 16 hex digits".into()))?;
        Ok(Self(out))
    }
    pub fn to_hex(&self) -> String {
        hex::encode_upper(self.0)
    }
}

impl fmt::Debug for EncryptedPinBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptedPinBlock(****)")
    }
}

/// How a card's PIN is verified, with the card's verification data. `Debug` hides the PVV/offset.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum PinVerification {
    /// Visa PVV: the 4-digit PVV and the PVK index (0-9) it was made with.
    VisaPvv { pvki: u8, pvv: String },
    /// IBM 3624: the natural PIN from the validation data under the PVK, decimalized, plus the
    /// card's offset (digit-wise, mod 10). The PIN length is the offset's length (4-12).
    /// Validation data = `pan[validation_start .. validation_start + validation_len]` padded on the
    /// right to 16 hex digits with `pad`.
    Ibm3624 {
        offset: String,
        decimalization: String,
        validation_start: usize,
        validation_len: usize,
        pad: char,
    },
}

impl fmt::Debug for PinVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinVerification::VisaPvv { pvki, .. } => {
                write!(f, "VisaPvv {{ pvki: {pvki}, pvv: **** }}")
            }
            PinVerification::Ibm3624 { .. } => f.write_str("Ibm3624 { offset: **** }"),
        }
    }
}

/// The answer of a PIN verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinVerdict {
    Match,
    Mismatch,
}
