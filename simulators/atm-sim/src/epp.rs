//! The terminal's encrypting PIN pad (EPP): its keys and the PIN blocks it makes.
//!
//! A real EPP holds a terminal master key (TMK), entered in components by two custodians at
//! installation, and a terminal PIN key (TPK) that the host generates and sends enciphered under
//! the TMK in an extended key change `3 … 42` (see `protocols::ndc::key_load`). When a customer
//! types a PIN, the EPP builds the ISO 9564 format 0 block for it and the card's PAN and
//! enciphers it under the TPK: that is PIN buffer A of the transaction request `11`. The PIN and
//! the clear keys never leave it.
//!
//! In NDC MAC mode the host also sends a terminal MAC key (TAK) under the TMK, in the key change
//! `3 … 45`; the EPP keeps it and computes the MACs of the terminal's messages and checks those
//! of the host's replies with it (ANSI X9.19 retail MAC, `keystore::crypto::retail_mac`, over the
//! bytes `protocols::ndc::mac` fixes).
//!
//! Here the TMK is given in clear at construction ([`ClearKey`], from `AtmOptions::master_key`
//! or `atm-sim --master-key-file`). Without a TMK the terminal rejects key loads; without a TPK
//! it sends PIN buffer A empty. Keys survive a power cycle (EPP memory is non-volatile).
//! Nothing here prints a key or a PIN: [`ClearKey`] and [`Epp`] show `****` and check values.

use std::fmt;

use keystore::{crypto, Kcv, KeyStoreError};
use protocols::ndc::{KeyLoad, KeyLoadError, PinBuffer, KEY_LENGTHS};
use protocols::types::Pan;
use zeroize::Zeroizing;

/// Why the EPP refused. Carries no key or PIN material.
#[derive(Debug, thiserror::Error)]
pub enum EppError {
    #[error("a clear key is 16, 32 or 48 hex digits (8, 16 or 24 bytes)")]
    BadClearKey,
    #[error("the EPP has no terminal master key: it cannot decipher a key load")]
    NoMasterKey,
    #[error("key load: {0}")]
    KeyField(#[from] KeyLoadError),
    #[error("EPP cryptography: {0}")]
    Crypto(#[from] KeyStoreError),
}

/// A clear DES/3DES key (8, 16 or 24 bytes), zeroized on drop, shown as `ClearKey(****)`.
#[derive(Clone)]
pub struct ClearKey(Zeroizing<Vec<u8>>);

impl ClearKey {
    pub fn new(bytes: Vec<u8>) -> Result<Self, EppError> {
        let bytes = Zeroizing::new(bytes);
        if !KEY_LENGTHS.contains(&bytes.len()) {
            return Err(EppError::BadClearKey);
        }
        Ok(Self(bytes))
    }

    /// From 16, 32 or 48 hex digits (surrounding whitespace ignored, as in a key file).
    pub fn from_hex(hex_digits: &str) -> Result<Self, EppError> {
        let decoded = hex::decode(hex_digits.trim()).map_err(|_| EppError::BadClearKey)?;
        Self::new(decoded)
    }

    /// The clear key. Call it only to encipher or decipher with it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for ClearKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClearKey(****)")
    }
}

/// The PIN pad: a master key from installation, a PIN key from the host.
#[derive(Default)]
pub struct Epp {
    master_key: Option<ClearKey>,
    pin_key: Option<ClearKey>,
    pin_key_kcv: Option<Kcv>,
    mac_key: Option<ClearKey>,
    mac_key_kcv: Option<Kcv>,
}

impl Epp {
    pub fn new(master_key: Option<ClearKey>) -> Self {
        Self {
            master_key,
            ..Self::default()
        }
    }

    pub fn has_master_key(&self) -> bool {
        self.master_key.is_some()
    }

    pub fn has_pin_key(&self) -> bool {
        self.pin_key.is_some()
    }

    /// The check value of the loaded PIN key (what `23 … 3 FS <KVV>` reports).
    pub fn pin_key_kcv(&self) -> Option<Kcv> {
        self.pin_key_kcv
    }

    /// Deciphers a PIN key sent under the master key and keeps it; returns its check value. The
    /// old PIN key stays in place when anything fails.
    pub fn load_pin_key(&mut self, key: &KeyLoad) -> Result<Kcv, EppError> {
        let tmk = self.master_key.as_ref().ok_or(EppError::NoMasterKey)?;
        let mut clear = Zeroizing::new(key.key_bytes().to_vec());
        crypto::tdes_decrypt_ecb(tmk.expose(), &mut clear)?;
        let kcv = crypto::kcv(&clear)?;
        self.pin_key = Some(ClearKey(clear));
        self.pin_key_kcv = Some(kcv);
        Ok(kcv)
    }

    /// PIN buffer A for `pin` typed with the card `pan`: the ISO 9564 format 0 block enciphered
    /// under the PIN key, in the terminal charset. `None` without a PIN key (the buffer is sent
    /// empty).
    pub fn pin_buffer(&self, pin: &str, pan: &Pan) -> Result<Option<PinBuffer>, EppError> {
        let Some(tpk) = &self.pin_key else {
            return Ok(None);
        };
        let block = crypto::encrypt_pin(tpk.expose(), pin, pan)?;
        Ok(Some(PinBuffer::from_bytes(&block.0)))
    }

    /// Deciphers a MAC key sent under the master key (`3 … 45`) and keeps it; returns its check
    /// value. The old MAC key stays in place when anything fails.
    pub fn load_mac_key(&mut self, key: &KeyLoad) -> Result<Kcv, EppError> {
        let tmk = self.master_key.as_ref().ok_or(EppError::NoMasterKey)?;
        let mut clear = Zeroizing::new(key.key_bytes().to_vec());
        crypto::tdes_decrypt_ecb(tmk.expose(), &mut clear)?;
        if clear.len() != 16 {
            // The retail MAC takes a double-length key; refuse anything else at load time.
            return Err(EppError::BadClearKey);
        }
        let kcv = crypto::kcv(&clear)?;
        self.mac_key = Some(ClearKey(clear));
        self.mac_key_kcv = Some(kcv);
        Ok(kcv)
    }

    /// The check value of the loaded MAC key.
    pub fn mac_key_kcv(&self) -> Option<Kcv> {
        self.mac_key_kcv
    }

    /// The retail MAC of `data` under the MAC key; `None` without one.
    pub fn mac(&self, data: &[u8]) -> Result<Option<[u8; 8]>, EppError> {
        let Some(tak) = &self.mac_key else {
            return Ok(None);
        };
        Ok(Some(crypto::retail_mac(tak.expose(), data)?))
    }

    /// Whether `mac` (the 4 bytes of a MAC field) is the MAC of `data`; false without a MAC key.
    pub fn verify_mac(&self, data: &[u8], mac: &[u8]) -> Result<bool, EppError> {
        let Some(tak) = &self.mac_key else {
            return Ok(false);
        };
        Ok(crypto::retail_mac_verify(tak.expose(), data, mac)?)
    }

    /// The clear PIN key, for tests and audits that check it never left the system (a leak scan
    /// greps logs and files for it). Not for the terminal's own work.
    pub fn pin_key_for_audit(&self) -> Option<Zeroizing<Vec<u8>>> {
        self.pin_key
            .as_ref()
            .map(|k| Zeroizing::new(k.expose().to_vec()))
    }
}

impl fmt::Debug for Epp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Epp")
            .field("master_key", &self.master_key.as_ref().map(|_| "****"))
            .field("pin_key_kcv", &self.pin_key_kcv)
            .field("mac_key_kcv", &self.mac_key_kcv)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TMK_HEX: &str = "0123456789ABCDEFFEDCBA9876543210";
    const TPK: [u8; 16] = [
        0x13, 0x34, 0x57, 0x79, 0x9B, 0xBC, 0xDF, 0xF1, 0x1F, 0x1E, 0x1D, 0x1C, 0x1B, 0x1A, 0x19,
        0x18,
    ];
    const PAN: &str = "4761739001010010";

    /// The host's side: the TPK enciphered under the TMK.
    fn key_load(tmk: &ClearKey, tpk: &[u8]) -> KeyLoad {
        let mut c = tpk.to_vec();
        crypto::tdes_encrypt_ecb(tmk.expose(), &mut c).unwrap();
        KeyLoad::new(c).unwrap()
    }

    #[test]
    fn clear_keys_are_8_16_or_24_bytes_and_never_shown() {
        let k = ClearKey::from_hex(&format!(" {TMK_HEX}\n")).unwrap();
        assert_eq!(k.expose().len(), 16);
        assert_eq!(format!("{k:?}"), "ClearKey(****)");
        assert!(ClearKey::from_hex("0123").is_err());
        assert!(ClearKey::from_hex(&"X".repeat(32)).is_err());
        let epp = Epp::new(Some(k));
        assert!(!format!("{epp:?}").contains("0123"));
    }

    #[test]
    fn without_a_pin_key_there_is_no_pin_buffer() {
        let epp = Epp::new(None);
        let pan = Pan::parse(PAN).unwrap();
        assert!(epp.pin_buffer("1234", &pan).unwrap().is_none());
        assert!(!epp.has_pin_key());
    }

    #[test]
    fn without_a_master_key_a_key_load_is_refused() {
        let mut epp = Epp::new(None);
        let load = KeyLoad::new(vec![0; 16]).unwrap();
        assert!(matches!(
            epp.load_pin_key(&load),
            Err(EppError::NoMasterKey)
        ));
        assert!(!epp.has_pin_key());
    }

    #[test]
    fn loaded_pin_key_enciphers_format_0_pin_blocks() {
        let tmk = ClearKey::from_hex(TMK_HEX).unwrap();
        let mut epp = Epp::new(Some(tmk.clone()));
        let kcv = epp.load_pin_key(&key_load(&tmk, &TPK)).unwrap();
        assert_eq!(kcv, crypto::kcv(&TPK).unwrap());
        assert_eq!(epp.pin_key_kcv(), Some(kcv));
        assert_eq!(
            epp.pin_key_for_audit().as_deref().map(Vec::as_slice),
            Some(&TPK[..])
        );
        let pan = Pan::parse(PAN).unwrap();
        let buffer = epp
            .pin_buffer("1234", &pan)
            .unwrap()
            .expect("a PIN key is loaded");
        let mut block = buffer.to_bytes().unwrap();
        crypto::tdes_decrypt_ecb(&TPK, &mut block).unwrap();
        assert_eq!(*crypto::pin_from_format0(&block, &pan).unwrap(), "1234");
        assert_eq!(
            buffer.to_bytes().unwrap(),
            crypto::encrypt_pin(&TPK, "1234", &pan).unwrap().0
        );
    }

    #[test]
    fn loaded_mac_key_macs_and_verifies() {
        let tmk = ClearKey::from_hex(TMK_HEX).unwrap();
        let mut epp = Epp::new(Some(tmk.clone()));
        assert!(epp.mac(b"11\x1c").unwrap().is_none(), "no MAC key yet");
        let tak = [0x5Bu8; 16];
        let kcv = epp.load_mac_key(&key_load(&tmk, &tak)).unwrap();
        assert_eq!(epp.mac_key_kcv(), Some(kcv));
        let mac = epp.mac(b"11\x1c").unwrap().unwrap();
        assert_eq!(mac, crypto::retail_mac(&tak, b"11\x1c").unwrap());
        assert!(epp.verify_mac(b"11\x1c", &mac[..4]).unwrap());
        assert!(!epp.verify_mac(b"12\x1c", &mac[..4]).unwrap());
        assert!(!format!("{epp:?}").contains("5B5B"));
        let single = key_load(&tmk, &[0x5B; 8]);
        assert!(
            epp.load_mac_key(&single).is_err(),
            "a MAC key is double length"
        );
        assert_eq!(epp.mac_key_kcv(), Some(kcv), "the old key stays");
    }
}
