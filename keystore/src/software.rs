//! The software adapter of [`KeyStore`]: one JSON file of key records, each key wrapped under the
//! local KEK, replaced atomically (write, fsync, rename, fsync directory) on every change, and an
//! exclusive lock so two processes never share it.

use std::path::Path;

use protocols::types::Pan;

use crate::port::{KeyStore, Result};
use crate::types::*;
use crate::Kek;

pub struct SoftwareKeyStore {
    _private: (),
}

impl SoftwareKeyStore {
    /// Opens (or creates) the store file at `path`, locking it, and checks that `kek` opens every
    /// record in it.
    pub fn open(path: &Path, kek: Kek) -> Result<Self> {
        let _ = (path, kek);
        todo!()
    }
}

impl KeyStore for SoftwareKeyStore {
    fn list(&self) -> Result<Vec<KeyInfo>> {
        todo!()
    }
    fn current(&self, name: &KeyName) -> Result<Option<KeyInfo>> {
        let _ = name;
        todo!()
    }
    fn info(&self, key: &KeyRef) -> Result<KeyInfo> {
        let _ = key;
        todo!()
    }
    fn load_components(&self, name: &KeyName, usage: KeyUsage, components: &[Component], kcvs: &[Kcv]) -> Result<KeyInfo> {
        let _ = (name, usage, components, kcvs);
        todo!()
    }
    fn generate(&self, name: &KeyName, usage: KeyUsage, length: KeyLength) -> Result<KeyInfo> {
        let _ = (name, usage, length);
        todo!()
    }
    fn export_under(&self, key: &KeyRef, kek: &KeyRef) -> Result<Cryptogram> {
        let _ = (key, kek);
        todo!()
    }
    fn import_under(&self, name: &KeyName, usage: KeyUsage, version: KeyVersion, kek: &KeyRef, cryptogram: &Cryptogram, kcv: &Kcv) -> Result<KeyInfo> {
        let _ = (name, usage, version, kek, cryptogram, kcv);
        todo!()
    }
    fn destroy(&self, key: &KeyRef) -> Result<()> {
        let _ = key;
        todo!()
    }
    fn translate_pin_block(&self, from: &KeyRef, to: &KeyRef, block: &EncryptedPinBlock, pan: &Pan) -> Result<EncryptedPinBlock> {
        let _ = (from, to, block, pan);
        todo!()
    }
    fn verify_pin(&self, zpk: &KeyRef, block: &EncryptedPinBlock, pan: &Pan, pvk: &KeyRef, method: &PinVerification) -> Result<PinVerdict> {
        let _ = (zpk, block, pan, pvk, method);
        todo!()
    }
}
