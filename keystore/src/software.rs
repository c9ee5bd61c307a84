//! The software adapter of [`KeyStore`]: one JSON file of key records, each key wrapped under the
//! local KEK, replaced atomically (write, fsync, rename, fsync directory) on every change, and an
//! exclusive lock so two processes never share it.
//!
//! # File format
//!
//! ```json
//! {"format":1,"keys":[
//!   {"name":"zpk","usage":"pin","version":3,"kcv":"08D7B4","length":16,
//!    "created_unix":1767225600,"wrapped":"<hex>"}
//! ]}
//! ```
//!
//! `wrapped` is the AES key wrap (RFC 3394, default IV `A6A6A6A6A6A6A6A6`, see
//! [`crypto::aes_key_wrap`]) under the 32-byte KEK of a 16-byte header followed by the clear key:
//!
//! | bytes  | content                                                       |
//! |--------|---------------------------------------------------------------|
//! | 0      | usage: 1 master, 2 pin, 3 mac, 4 pin_verification,            |
//! |        | 5 card_reference, 6 data_protection                           |
//! | 1      | key length in bytes (8, 16 or 24; 32 for usages 5 and 6)      |
//! | 2..6   | version, big-endian u32                                       |
//! | 6..8   | zero                                                          |
//! | 8..16  | first 8 bytes of SHA-256 of the key name (UTF-8)              |
//! | 16..   | the key                                                       |
//!
//! So `crypto::aes_key_unwrap(kek, &hex::decode(wrapped)?)?[16..]` is the clear key. The header
//! binds the key to its record: editing a record's name, usage or version on disk, or swapping two
//! records' `wrapped` values, is caught when the key is unwrapped (at open and on every use), as is
//! a `kcv` that does not match the key.
//!
//! # Memory
//!
//! Records stay wrapped in memory; each operation unwraps the keys it needs into `Zeroizing`
//! buffers that are wiped when it returns.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use protocols::types::Pan;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::crypto;
use crate::port::{KeyStore, KeyStoreError, Result};
use crate::types::*;
use crate::Kek;

/// The only file format this code reads and writes.
const FORMAT: u32 = 1;
/// Size of the header wrapped in front of each key.
const HEADER_LEN: usize = 16;

pub struct SoftwareKeyStore {
    path: PathBuf,
    kek: Kek,
    /// Sorted by name, then version. Replaced only after the file has been written.
    records: Mutex<Vec<Record>>,
    /// Holds the exclusive lock on `<path>.lock` for the store's lifetime (released on drop).
    _lock: File,
}

/// One key version as stored on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    name: KeyName,
    usage: KeyUsage,
    version: KeyVersion,
    kcv: Kcv,
    length: usize,
    created_unix: u64,
    /// Hex of the AES-wrapped header + key.
    wrapped: String,
}

impl Record {
    fn info(&self) -> KeyInfo {
        KeyInfo {
            name: self.name.clone(),
            usage: self.usage,
            version: self.version,
            kcv: self.kcv,
            length: self.length,
            created_unix: self.created_unix,
        }
    }
    fn key_ref(&self) -> KeyRef {
        KeyRef::new(self.name.clone(), self.version)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    format: u32,
    keys: Vec<Record>,
}

fn usage_code(usage: KeyUsage) -> u8 {
    match usage {
        KeyUsage::Master => 1,
        KeyUsage::Pin => 2,
        KeyUsage::Mac => 3,
        KeyUsage::PinVerification => 4,
        KeyUsage::CardReference => 5,
        KeyUsage::DataProtection => 6,
    }
}

/// A key length that fits `usage`: 8, 16 or 24 bytes for DES keys, 32 for the others.
fn check_length(usage: KeyUsage, length: usize) -> Result<()> {
    let ok = if usage.is_des() {
        matches!(length, 8 | 16 | 24)
    } else {
        length == 32
    };
    if ok {
        Ok(())
    } else if usage.is_des() {
        Err(KeyStoreError::Invalid(format!(
            "a {usage} key is 8, 16 or 24 bytes (DES), got {length}"
        )))
    } else {
        Err(KeyStoreError::Invalid(format!(
            "a {usage} key is 32 bytes, got {length}"
        )))
    }
}

/// The header that binds a wrapped key to its record (see the module doc).
fn header(name: &KeyName, usage: KeyUsage, version: KeyVersion, length: usize) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0] = usage_code(usage);
    h[1] = length as u8;
    h[2..6].copy_from_slice(&version.to_be_bytes());
    h[8..16].copy_from_slice(&Sha256::digest(name.as_str().as_bytes())[..8]);
    h
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `<path><suffix>`: a sibling file (`store.json.lock`, `store.json.tmp`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn check_usage(key: &KeyRef, actual: KeyUsage, needed: KeyUsage) -> Result<()> {
    if actual != needed {
        return Err(KeyStoreError::WrongUsage {
            key: key.to_string(),
            actual,
            needed,
        });
    }
    Ok(())
}

impl SoftwareKeyStore {
    /// Opens (or creates) the store file at `path`, locking it, and checks that `kek` opens every
    /// record in it.
    pub fn open(path: &Path, kek: Kek) -> Result<Self> {
        let lock = Self::lock(path)?;
        let mut store = Self {
            path: path.to_owned(),
            kek,
            records: Mutex::new(Vec::new()),
            _lock: lock,
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                let records = store.parse(&bytes)?;
                *store.records.get_mut().unwrap_or_else(|e| e.into_inner()) = records;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                store.persist(&[])?;
                info!(path = %path.display(), "created an empty key store");
            }
            Err(e) => return Err(store.storage(format!("cannot read: {e}"))),
        }
        Ok(store)
    }

    /// Takes the exclusive lock on `<path>.lock`.
    fn lock(path: &Path) -> Result<File> {
        let lock_path = sibling(path, ".lock");
        let storage = |reason: String| KeyStoreError::Storage {
            path: path.display().to_string(),
            reason,
        };
        let mut opts = OpenOptions::new();
        opts.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let file = opts.open(&lock_path).map_err(|e| {
            storage(format!(
                "cannot open lock file {}: {e}",
                lock_path.display()
            ))
        })?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(storage(
                "locked by another process (is the daemon running?)".into(),
            )),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(storage(format!("cannot lock {}: {e}", lock_path.display())))
            }
        }
    }

    /// Parses the file and checks every record: unique, and opened by the KEK with a matching
    /// header and check value.
    fn parse(&self, bytes: &[u8]) -> Result<Vec<Record>> {
        let file: StoreFile = serde_json::from_slice(bytes)
            .map_err(|e| self.storage(format!("not a key store file: {e}")))?;
        if file.format != FORMAT {
            return Err(self.storage(format!(
                "file format {} is not supported (this version reads format {FORMAT})",
                file.format
            )));
        }
        let mut records = file.keys;
        records.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
        if let Some(w) = records
            .windows(2)
            .find(|w| w[0].name == w[1].name && w[0].version == w[1].version)
        {
            return Err(self.storage(format!("key {} appears twice", w[0].key_ref())));
        }
        for record in &records {
            self.unwrap_record(record)?;
        }
        Ok(records)
    }

    fn storage(&self, reason: String) -> KeyStoreError {
        KeyStoreError::Storage {
            path: self.path.display().to_string(),
            reason,
        }
    }

    fn records(&self) -> MutexGuard<'_, Vec<Record>> {
        // Records are replaced whole, after the file write: a panic elsewhere cannot leave them
        // half-changed, so a poisoned lock still guards consistent data.
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The clear key of `record`, after checking its header and check value.
    fn unwrap_record(&self, record: &Record) -> Result<Zeroizing<Vec<u8>>> {
        let key_ref = record.key_ref();
        let tampered = |what: &str| {
            self.storage(format!(
                "record {key_ref} does not match its wrapped key ({what}; edited on disk?)"
            ))
        };
        let wrapped = hex::decode(&record.wrapped).map_err(|_| tampered("wrapped is not hex"))?;
        let plain = crypto::aes_key_unwrap(&self.kek.0, &wrapped).map_err(|e| match e {
            KeyStoreError::Kek(_) => KeyStoreError::Kek(format!(
                "it does not open key {key_ref} in {} (wrong KEK, or the record was altered)",
                self.path.display()
            )),
            _ => tampered("wrapped has a bad length"),
        })?;
        if check_length(record.usage, record.length).is_err()
            || plain.len() != HEADER_LEN + record.length
        {
            return Err(tampered("length"));
        }
        if plain[..HEADER_LEN] != header(&record.name, record.usage, record.version, record.length)
        {
            return Err(tampered("name, usage or version"));
        }
        let key = Zeroizing::new(plain[HEADER_LEN..].to_vec());
        if !crypto::kcv(&key)?.ct_eq(&record.kcv) {
            return Err(tampered("check value"));
        }
        Ok(key)
    }

    /// A new record for `key`, wrapped under the KEK.
    fn seal(
        &self,
        name: &KeyName,
        usage: KeyUsage,
        version: KeyVersion,
        key: &[u8],
    ) -> Result<Record> {
        let mut plain = Zeroizing::new(Vec::with_capacity(HEADER_LEN + key.len()));
        plain.extend_from_slice(&header(name, usage, version, key.len()));
        plain.extend_from_slice(key);
        let wrapped = crypto::aes_key_wrap(&self.kek.0, &plain)?;
        Ok(Record {
            name: name.clone(),
            usage,
            version,
            kcv: crypto::kcv(key)?,
            length: key.len(),
            created_unix: now_unix(),
            wrapped: hex::encode_upper(wrapped),
        })
    }

    /// The record and clear key of `key`, checking its usage.
    fn key(&self, key: &KeyRef, needed: Option<KeyUsage>) -> Result<(Record, Zeroizing<Vec<u8>>)> {
        let record = self
            .records()
            .iter()
            .find(|r| r.name == key.name && r.version == key.version)
            .cloned()
            .ok_or_else(|| KeyStoreError::NotFound(key.to_string()))?;
        if let Some(needed) = needed {
            check_usage(key, record.usage, needed)?;
        }
        let clear = self.unwrap_record(&record)?;
        Ok((record, clear))
    }

    /// Writes `records` to the file atomically: `<path>.tmp` (mode 0600), fsync, rename over the
    /// file, fsync the directory so the rename itself survives a power cut. On error the old file
    /// is left as it was.
    fn persist(&self, records: &[Record]) -> Result<()> {
        let doc = serde_json::json!({ "format": FORMAT, "keys": records });
        let mut text = serde_json::to_vec_pretty(&doc)
            .map_err(|e| self.storage(format!("cannot encode: {e}")))?;
        text.push(b'\n');
        let tmp = sibling(&self.path, ".tmp");
        let result = self.write_replace(&tmp, &text);
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn write_replace(&self, tmp: &Path, text: &[u8]) -> Result<()> {
        let io = |what: &str, e: std::io::Error| self.storage(format!("{what}: {e}"));
        // A stale temporary file may have another mode; start afresh so ours is 0600.
        match std::fs::remove_file(tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(&format!("cannot remove {}", tmp.display()), e))
            }
            _ => {}
        }
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts
            .open(tmp)
            .map_err(|e| io(&format!("cannot create {}", tmp.display()), e))?;
        file.write_all(text).map_err(|e| io("cannot write", e))?;
        file.sync_all().map_err(|e| io("cannot sync", e))?;
        drop(file);
        std::fs::rename(tmp, &self.path)
            .map_err(|e| io(&format!("cannot rename {}", tmp.display()), e))?;
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(&format!("cannot sync directory {}", dir.display()), e))
    }

    /// Adds `record` (a new version, or an import) and writes the file; memory changes only once
    /// the file is written.
    fn insert(&self, records: &mut MutexGuard<'_, Vec<Record>>, record: Record) -> Result<KeyInfo> {
        let mut next = (**records).clone();
        let at = next
            .binary_search_by(|r| (&r.name, r.version).cmp(&(&record.name, record.version)))
            .unwrap_or_else(|i| i);
        next.insert(at, record.clone());
        self.persist(&next)?;
        **records = next;
        Ok(record.info())
    }

    fn next_version(records: &[Record], name: &KeyName) -> Result<KeyVersion> {
        let current = records
            .iter()
            .filter(|r| &r.name == name)
            .map(|r| r.version)
            .max()
            .unwrap_or(0);
        current
            .checked_add(1)
            .ok_or_else(|| KeyStoreError::Invalid(format!("key {name} has no version left")))
    }

    /// Stores `key` as the next version of `name`.
    fn store_next(&self, name: &KeyName, usage: KeyUsage, key: &[u8]) -> Result<KeyInfo> {
        check_length(usage, key.len())?;
        let mut records = self.records();
        let version = Self::next_version(&records, name)?;
        let record = self.seal(name, usage, version, key)?;
        self.insert(&mut records, record)
    }

    /// Deciphers a PIN block under a Pin key and extracts the PIN for `pan`.
    fn open_pin_block(
        &self,
        key: &KeyRef,
        block: &EncryptedPinBlock,
        pan: &Pan,
    ) -> Result<Zeroizing<String>> {
        let (_, clear_key) = self.key(key, Some(KeyUsage::Pin))?;
        let mut clear = Zeroizing::new(block.0);
        crypto::tdes_decrypt_ecb(&clear_key, &mut clear[..])?;
        crypto::pin_from_format0(&clear, pan).inspect_err(|e| {
            warn!(key = %key, error = %e, "PIN block does not decode under this key");
        })
    }
}

impl KeyStore for SoftwareKeyStore {
    fn list(&self) -> Result<Vec<KeyInfo>> {
        Ok(self.records().iter().map(Record::info).collect())
    }

    fn current(&self, name: &KeyName) -> Result<Option<KeyInfo>> {
        // Sorted by version within a name: the last one is the newest.
        Ok(self
            .records()
            .iter()
            .rfind(|r| &r.name == name)
            .map(Record::info))
    }

    fn info(&self, key: &KeyRef) -> Result<KeyInfo> {
        self.records()
            .iter()
            .find(|r| r.name == key.name && r.version == key.version)
            .map(Record::info)
            .ok_or_else(|| KeyStoreError::NotFound(key.to_string()))
    }

    fn load_components(
        &self,
        name: &KeyName,
        usage: KeyUsage,
        components: &[Component],
        kcvs: &[Kcv],
    ) -> Result<KeyInfo> {
        if components.len() < 2 {
            return Err(KeyStoreError::Invalid(format!(
                "a key is loaded from at least 2 components, got {}",
                components.len()
            )));
        }
        if kcvs.len() != components.len() {
            return Err(KeyStoreError::Invalid(format!(
                "{} components but {} check values: one per component",
                components.len(),
                kcvs.len()
            )));
        }
        let length = components[0].expose().len();
        if components.iter().any(|c| c.expose().len() != length) {
            return Err(KeyStoreError::Invalid(
                "key components must all have the same length".into(),
            ));
        }
        let mut key = Zeroizing::new(vec![0u8; length]);
        for (i, (component, expected)) in components.iter().zip(kcvs).enumerate() {
            let computed = crypto::kcv(component.expose())?;
            if !computed.ct_eq(expected) {
                return Err(KeyStoreError::KcvMismatch {
                    what: format!("component {}", i + 1),
                    expected: *expected,
                    computed,
                });
            }
            for (k, c) in key.iter_mut().zip(component.expose()) {
                *k ^= c;
            }
        }
        // The XOR of two odd-parity components has even parity; DES ignores parity bits, so
        // fixing them does not change the key or its check value.
        if usage.is_des() {
            crypto::set_odd_parity(&mut key);
        }
        let info = self.store_next(name, usage, &key)?;
        info!(key = %name, version = info.version, kcv = %info.kcv, usage = %usage,
            components = components.len(), "loaded key from components");
        Ok(info)
    }

    fn generate(&self, name: &KeyName, usage: KeyUsage, length: KeyLength) -> Result<KeyInfo> {
        let mut key = Zeroizing::new(vec![0u8; length.bytes()]);
        getrandom::getrandom(&mut key).map_err(|e| {
            KeyStoreError::Invalid(format!("no randomness from the operating system: {e}"))
        })?;
        if usage.is_des() {
            crypto::set_odd_parity(&mut key);
        }
        let info = self.store_next(name, usage, &key)?;
        info!(key = %name, version = info.version, kcv = %info.kcv, usage = %usage, "generated key");
        Ok(info)
    }

    fn export_under(&self, key: &KeyRef, kek: &KeyRef) -> Result<Cryptogram> {
        let (_, wrapping) = self.key(kek, Some(KeyUsage::Master))?;
        let (record, clear) = self.key(key, None)?;
        if record.usage == KeyUsage::Master {
            return Err(KeyStoreError::Invalid(format!(
                "key {key} is a master key: master keys are never exported"
            )));
        }
        let mut out = clear.to_vec();
        crypto::tdes_encrypt_ecb(&wrapping, &mut out)?;
        Ok(Cryptogram(out))
    }

    fn import_under(
        &self,
        name: &KeyName,
        usage: KeyUsage,
        version: KeyVersion,
        kek: &KeyRef,
        cryptogram: &Cryptogram,
        kcv: &Kcv,
    ) -> Result<KeyInfo> {
        if version == 0 {
            return Err(KeyStoreError::Invalid("key versions count from 1".into()));
        }
        if !matches!(cryptogram.0.len(), 8 | 16 | 24) {
            return Err(KeyStoreError::Invalid(format!(
                "a key cryptogram is 8, 16 or 24 bytes, got {}",
                cryptogram.0.len()
            )));
        }
        let (_, wrapping) = self.key(kek, Some(KeyUsage::Master))?;
        let mut clear = Zeroizing::new(cryptogram.0.clone());
        crypto::tdes_decrypt_ecb(&wrapping, &mut clear)?;
        let computed = crypto::kcv(&clear)?;
        let key_ref = KeyRef::new(name.clone(), version);
        if !computed.ct_eq(kcv) {
            return Err(KeyStoreError::KcvMismatch {
                what: format!("imported key {key_ref}"),
                expected: *kcv,
                computed,
            });
        }
        let mut records = self.records();
        if let Some(existing) = records
            .iter()
            .find(|r| &r.name == name && r.version == version)
        {
            // A retried delivery is fine; different material under the same name and version is not.
            if !existing.kcv.ct_eq(kcv) {
                return Err(KeyStoreError::Conflict(key_ref.to_string()));
            }
            check_usage(&key_ref, existing.usage, usage)?;
            return Ok(existing.info());
        }
        // Versions may arrive out of order (a delayed older key): any unused version is accepted.
        let record = self.seal(name, usage, version, &clear)?;
        let info = self.insert(&mut records, record)?;
        info!(key = %name, version, kcv = %info.kcv, usage = %usage, under = %kek, "imported key");
        Ok(info)
    }

    fn destroy(&self, key: &KeyRef) -> Result<()> {
        let mut records = self.records();
        let at = records
            .iter()
            .position(|r| r.name == key.name && r.version == key.version)
            .ok_or_else(|| KeyStoreError::NotFound(key.to_string()))?;
        let mut next = records.clone();
        let gone = next.remove(at);
        self.persist(&next)?;
        *records = next;
        info!(key = %gone.name, version = gone.version, kcv = %gone.kcv, usage = %gone.usage, "destroyed key");
        Ok(())
    }

    fn translate_pin_block(
        &self,
        from: &KeyRef,
        to: &KeyRef,
        block: &EncryptedPinBlock,
        pan: &Pan,
    ) -> Result<EncryptedPinBlock> {
        let (_, to_key) = self.key(to, Some(KeyUsage::Pin))?;
        let pin = self.open_pin_block(from, block, pan)?;
        crypto::encrypt_pin(&to_key, &pin, pan)
    }

    fn verify_pin(
        &self,
        zpk: &KeyRef,
        block: &EncryptedPinBlock,
        pan: &Pan,
        pvk: &KeyRef,
        method: &PinVerification,
    ) -> Result<PinVerdict> {
        let (_, pvk_key) = self.key(pvk, Some(KeyUsage::PinVerification))?;
        let pin = self.open_pin_block(zpk, block, pan)?;
        match method {
            PinVerification::VisaPvv { pvki, pvv } => {
                crypto::visa_pvv_verify(&pvk_key, *pvki, &pin, pan, pvv)
            }
            PinVerification::Ibm3624 {
                offset,
                decimalization,
                validation_start,
                validation_len,
                pad,
            } => crypto::ibm3624_verify(
                &pvk_key,
                &pin,
                pan,
                offset,
                decimalization,
                *validation_start,
                *validation_len,
                *pad,
            ),
        }
    }

    fn card_reference(&self, key: &KeyRef, pan: &Pan) -> Result<[u8; 32]> {
        let (_, clear) = self.key(key, Some(KeyUsage::CardReference))?;
        crypto::hmac_sha256(&clear, pan.expose().as_bytes())
    }

    fn seal_data(&self, key: &KeyRef, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let (_, clear) = self.key(key, Some(KeyUsage::DataProtection))?;
        crypto::aead_seal(&clear, plaintext, aad)
    }

    fn open_data(&self, key: &KeyRef, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let (_, clear) = self.key(key, Some(KeyUsage::DataProtection))?;
        crypto::aead_open(&clear, sealed, aad)
    }
}

impl std::fmt::Debug for SoftwareKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareKeyStore")
            .field("path", &self.path)
            .field("keys", &self.records().len())
            .finish()
    }
}
