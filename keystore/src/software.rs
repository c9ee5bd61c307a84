//! The software adapter of [`KeyStore`]: one JSON file of key records, each key wrapped under the
//! local KEK, replaced atomically (write, fsync, rename, fsync directory) on every change, and an
//! exclusive lock so two processes never share it.
//!
//! # File format
//!
//! ```json
//! {"format":1,"keys":[
//!   {"name":"zpk","usage":"zone_pin","version":3,"kcv":"08D7B4","length":16,
//!    "created_unix":1767225600,"wrapped":"<hex>"}
//! ],"high_water":{"zpk":3}}
//! ```
//!
//! `high_water` is the newest version ever stored under each name, destroyed or not: the next
//! version made is above it, and an import at or below it is refused unless that very version is
//! still stored (a retry). A file without it (written before it existed) starts from the newest
//! version of each name it holds.
//!
//! `wrapped` is the AES key wrap (RFC 3394, default IV `A6A6A6A6A6A6A6A6`, see
//! [`crypto::aes_key_wrap`]) under the 32-byte KEK of a 16-byte header followed by the clear key:
//!
//! | bytes  | content                                                       |
//! |--------|---------------------------------------------------------------|
//! | 0      | usage: 3 mac, 4 pin_verification, 5 card_reference,           |
//! |        | 6 data_protection, 7 terminal_master, 8 zone_master,          |
//! |        | 9 terminal_pin, 10 zone_pin (1 master, 2 pin: old records)    |
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
//! # Records written before terminal and zone usages were told apart
//!
//! Files written by earlier versions hold the usages `master` (code 1) and `pin` (code 2), each
//! of which served terminal and zone keys alike. Such a record is read as it is, by its name:
//! `tmk/<terminal>` is a terminal master key and any other `master` a zone master key (`zmk`);
//! `tpk/<terminal>` is a terminal PIN key and any other `pin` a zone PIN key (`zpk`). It is not
//! rewritten: its header still binds the old code, so an edit of its usage on disk is caught as
//! before, and new versions are stored with the new usages. Old records are not re-checked
//! against the weak-key rules (those apply where a key comes in: components, generation, import);
//! replace a weak one by loading or generating a new version.
//!
//! # Memory
//!
//! Records stay wrapped in memory; each operation unwraps the keys it needs into `Zeroizing`
//! buffers that are wiped when it returns.

use std::collections::BTreeMap;
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
    /// Newest version ever stored per name (see the module doc). Locked only while `records` is
    /// held, and replaced with it.
    high_water: Mutex<BTreeMap<KeyName, KeyVersion>>,
    /// Holds the exclusive lock on `<path>.lock` for the store's lifetime (released on drop).
    _lock: File,
}

/// One key version as stored on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    name: KeyName,
    usage: StoredUsage,
    version: KeyVersion,
    kcv: Kcv,
    length: usize,
    created_unix: u64,
    /// Hex of the AES-wrapped header + key.
    wrapped: String,
}

/// A record's `usage` as written: one of today's, or an old `master`/`pin` read by the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum StoredUsage {
    Current(KeyUsage),
    Old(OldUsage),
}

/// The usages of files written before terminal and zone keys were told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OldUsage {
    Master,
    Pin,
}

impl StoredUsage {
    /// The usage the key has today (see the module doc for old records).
    fn resolve(self, name: &KeyName) -> KeyUsage {
        let terminal = name.terminal().is_some();
        match self {
            StoredUsage::Current(u) => u,
            StoredUsage::Old(OldUsage::Master) if terminal => KeyUsage::TerminalMaster,
            StoredUsage::Old(OldUsage::Master) => KeyUsage::ZoneMaster,
            StoredUsage::Old(OldUsage::Pin) if terminal => KeyUsage::TerminalPin,
            StoredUsage::Old(OldUsage::Pin) => KeyUsage::ZonePin,
        }
    }

    /// The usage byte of the wrapped header.
    fn code(self) -> u8 {
        match self {
            StoredUsage::Current(u) => usage_code(u),
            StoredUsage::Old(OldUsage::Master) => 1,
            StoredUsage::Old(OldUsage::Pin) => 2,
        }
    }
}

impl Record {
    fn usage(&self) -> KeyUsage {
        self.usage.resolve(&self.name)
    }
    fn info(&self) -> KeyInfo {
        KeyInfo {
            name: self.name.clone(),
            usage: self.usage(),
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
    /// Newest version ever stored per name (absent in files from before it existed).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    high_water: BTreeMap<KeyName, KeyVersion>,
}

fn usage_code(usage: KeyUsage) -> u8 {
    match usage {
        KeyUsage::Mac => 3,
        KeyUsage::PinVerification => 4,
        KeyUsage::CardReference => 5,
        KeyUsage::DataProtection => 6,
        KeyUsage::TerminalMaster => 7,
        KeyUsage::ZoneMaster => 8,
        KeyUsage::TerminalPin => 9,
        KeyUsage::ZonePin => 10,
    }
}

/// A new key of `usage` (`what` names it in errors): the right length, and for master, PIN and
/// PVK keys none of the weaknesses of [`crypto::des_key_weakness`].
fn check_new_key(usage: KeyUsage, what: &dyn std::fmt::Display, key: &[u8]) -> Result<()> {
    if usage.is_strict() {
        if let Some(weakness) = crypto::des_key_weakness(key) {
            return Err(KeyStoreError::WeakKey {
                what: what.to_string(),
                weakness,
            });
        }
    }
    check_length(usage, key.len())
}

/// Terminal keys carry their terminal in their name (`tmk/<t>`, `tpk/<t>`), which is how a TPK
/// is matched with its own TMK; no other usage may take those names.
fn check_name(name: &KeyName, usage: KeyUsage) -> Result<()> {
    let wanted = usage.name_prefix();
    let fits = match (wanted, name.terminal()) {
        (Some(prefix), Some(t)) => name.as_str().starts_with(prefix) && !t.is_empty(),
        (None, None) => true,
        _ => false,
    };
    if fits {
        return Ok(());
    }
    Err(KeyStoreError::Invalid(match wanted {
        Some(prefix) => format!("a {usage} key is named {prefix}<terminal>, not {name}"),
        None => format!("{name} is a terminal key name: a {usage} key cannot take it"),
    }))
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
fn header(
    name: &KeyName,
    usage: StoredUsage,
    version: KeyVersion,
    length: usize,
) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0] = usage.code();
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

/// Whether two of `components` are the same DES key (parity bits ignored), compared in constant
/// time.
fn any_identical(components: &[Component]) -> bool {
    let same = |a: &[u8], b: &[u8]| {
        let diff = a
            .iter()
            .zip(b)
            .fold(0u8, |acc, (x, y)| acc | ((x ^ y) & 0xFE));
        diff == 0
    };
    components.iter().enumerate().any(|(i, a)| {
        components[i + 1..]
            .iter()
            .any(|b| same(a.expose(), b.expose()))
    })
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
            high_water: Mutex::new(BTreeMap::new()),
            _lock: lock,
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                let (records, high_water) = store.parse(&bytes)?;
                *store.records.get_mut().unwrap_or_else(|e| e.into_inner()) = records;
                *store
                    .high_water
                    .get_mut()
                    .unwrap_or_else(|e| e.into_inner()) = high_water;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                store.persist(&[], &BTreeMap::new())?;
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
    /// header and check value. Returns the records and the high-water marks (at least the newest
    /// version of each name).
    fn parse(&self, bytes: &[u8]) -> Result<(Vec<Record>, BTreeMap<KeyName, KeyVersion>)> {
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
        let mut high_water = file.high_water;
        for record in &records {
            self.unwrap_record(record)?;
            let mark = high_water.entry(record.name.clone()).or_insert(0);
            *mark = (*mark).max(record.version);
        }
        Ok((records, high_water))
    }

    fn high_water(&self) -> MutexGuard<'_, BTreeMap<KeyName, KeyVersion>> {
        // Replaced whole after the file write, like `records`.
        self.high_water.lock().unwrap_or_else(|e| e.into_inner())
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
        if check_length(record.usage(), record.length).is_err()
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
        let usage = StoredUsage::Current(usage);
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
            check_usage(key, record.usage(), needed)?;
        }
        let clear = self.unwrap_record(&record)?;
        Ok((record, clear))
    }

    /// Writes `records` to the file atomically: `<path>.tmp` (mode 0600), fsync, rename over the
    /// file, fsync the directory so the rename itself survives a power cut. On error the old file
    /// is left as it was.
    fn persist(
        &self,
        records: &[Record],
        high_water: &BTreeMap<KeyName, KeyVersion>,
    ) -> Result<()> {
        let doc =
            serde_json::json!({ "format": FORMAT, "keys": records, "high_water": high_water });
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
        let mut high_water = self.high_water();
        let mut marks = high_water.clone();
        let mark = marks.entry(record.name.clone()).or_insert(0);
        *mark = (*mark).max(record.version);
        self.persist(&next, &marks)?;
        **records = next;
        *high_water = marks;
        Ok(record.info())
    }

    /// The version after the newest ever stored under `name` (destroyed ones included).
    fn next_version(&self, name: &KeyName) -> Result<KeyVersion> {
        let newest = self.high_water().get(name).copied().unwrap_or(0);
        newest
            .checked_add(1)
            .ok_or_else(|| KeyStoreError::Invalid(format!("key {name} has no version left")))
    }

    /// Stores `key` as the next version of `name`. A new version keeps the usage of the one it
    /// follows and is at least as long.
    fn store_next(&self, name: &KeyName, usage: KeyUsage, key: &[u8]) -> Result<KeyInfo> {
        check_name(name, usage)?;
        check_new_key(usage, name, key)?;
        let mut records = self.records();
        if let Some(current) = records.iter().rfind(|r| &r.name == name) {
            Self::check_successor(current, usage, key.len())?;
        }
        let version = self.next_version(name)?;
        let record = self.seal(name, usage, version, key)?;
        self.insert(&mut records, record)
    }

    /// A new version of `current`'s name must keep its usage and be no shorter.
    fn check_successor(current: &Record, usage: KeyUsage, length: usize) -> Result<()> {
        let current_usage = current.usage();
        if current_usage != usage {
            return Err(KeyStoreError::Invalid(format!(
                "{} has usage {current_usage}: a new version cannot be {usage}",
                current.key_ref()
            )));
        }
        if length < current.length {
            return Err(KeyStoreError::Invalid(format!(
                "{} is {} bytes: a new version of {length} bytes would be shorter (enter \
                 components as long as the key)",
                current.key_ref(),
                current.length
            )));
        }
        Ok(())
    }

    /// The usage a key named `name` arriving under `kek` takes (from the pair, not the caller):
    /// `tpk/<t>` under `tmk/<t>` is a terminal PIN key, any other name under a zone master key a
    /// zone PIN key.
    fn import_usage(name: &KeyName, version: KeyVersion, kek: &Record) -> Result<KeyUsage> {
        let usage = if name.as_str().starts_with("tpk/") {
            KeyUsage::TerminalPin
        } else {
            KeyUsage::ZonePin
        };
        let needed = usage.exported_under().unwrap_or(KeyUsage::ZoneMaster);
        check_usage(&kek.key_ref(), kek.usage(), needed)?;
        check_name(name, usage)?;
        Self::check_pair(
            &KeyRef::new(name.clone(), version),
            usage,
            &kek.key_ref(),
            kek.usage(),
        )?;
        Ok(usage)
    }

    /// The named pairs: a zone PIN key under a zone master key, `tpk/<t>` under `tmk/<t>`.
    fn check_pair(key: &KeyRef, usage: KeyUsage, kek: &KeyRef, kek_usage: KeyUsage) -> Result<()> {
        let refused = |rule| KeyStoreError::NotExportable {
            key: key.to_string(),
            usage,
            kek: kek.to_string(),
            kek_usage,
            rule,
        };
        match usage.exported_under() {
            None => Err(refused("keys of this usage never leave the store")),
            Some(needed) if needed != kek_usage => Err(refused(
                "a zone PIN key travels under a zone master key, a terminal PIN key under its terminal's master key",
            )),
            Some(_) if key.name.terminal() != kek.name.terminal() => Err(refused(
                "a terminal PIN key travels only under its own terminal's master key",
            )),
            Some(_) => Ok(()),
        }
    }

    /// Deciphers a PIN block under a Pin key and extracts the PIN for `pan`.
    fn open_pin_block(
        &self,
        key: &KeyRef,
        block: &EncryptedPinBlock,
        pan: &Pan,
    ) -> Result<Zeroizing<String>> {
        let (record, clear_key) = self.key(key, None)?;
        if !record.usage().is_pin() {
            return Err(KeyStoreError::WrongUsage {
                key: key.to_string(),
                actual: record.usage(),
                needed: KeyUsage::ZonePin,
            });
        }
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
        check_name(name, usage)?;
        // A component is as long as the key it makes: a short one is a single-DES key part.
        if usage.is_strict() && length == 8 {
            return Err(KeyStoreError::WeakKey {
                what: format!("components of {name}"),
                weakness: crypto::Weakness::SingleDes,
            });
        }
        check_length(usage, length)?;
        let mut key = Zeroizing::new(vec![0u8; length]);
        for (i, (component, expected)) in components.iter().zip(kcvs).enumerate() {
            let computed = crypto::kcv(component.expose())?;
            if !computed.ct_eq(expected) {
                return Err(KeyStoreError::ComponentKcvMismatch { component: i + 1 });
            }
            for (k, c) in key.iter_mut().zip(component.expose()) {
                *k ^= c;
            }
        }
        // Two equal components cancel out (XOR): the key would be the others' alone, known to
        // fewer custodians than the ceremony says. Compared without parity bits, as DES does.
        if usage.is_strict() && any_identical(components) {
            return Err(KeyStoreError::WeakKey {
                what: format!("components of {name}"),
                weakness: crypto::Weakness::IdenticalComponents,
            });
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
        // A random key with equal parts or a DES weak part is a 2^-56 event, drawn again rather
        // than refused.
        for _ in 0..4 {
            getrandom::getrandom(&mut key).map_err(|e| {
                KeyStoreError::Invalid(format!("no randomness from the operating system: {e}"))
            })?;
            if usage.is_des() {
                crypto::set_odd_parity(&mut key);
            }
            if !usage.is_strict() || crypto::des_key_weakness(&key).is_none() {
                break;
            }
        }
        let info = self.store_next(name, usage, &key)?;
        info!(key = %name, version = info.version, kcv = %info.kcv, usage = %usage, "generated key");
        Ok(info)
    }

    fn export_under(&self, key: &KeyRef, kek: &KeyRef) -> Result<Cryptogram> {
        let (kek_record, wrapping) = self.key(kek, None)?;
        let (record, clear) = self.key(key, None)?;
        Self::check_pair(key, record.usage(), kek, kek_record.usage())?;
        if wrapping.len() < clear.len() {
            return Err(KeyStoreError::WeakKey {
                what: format!("export of {key} under {kek}"),
                weakness: crypto::Weakness::ShorterWrappingKey,
            });
        }
        let mut out = clear.to_vec();
        crypto::tdes_encrypt_ecb(&wrapping, &mut out)?;
        Ok(Cryptogram(out))
    }

    fn import_under(
        &self,
        name: &KeyName,
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
        let key_ref = KeyRef::new(name.clone(), version);
        let (kek_record, wrapping) = self.key(kek, None)?;
        let usage = Self::import_usage(name, version, &kek_record)?;
        if wrapping.len() < cryptogram.0.len() {
            return Err(KeyStoreError::WeakKey {
                what: format!("import of {key_ref} under {kek}"),
                weakness: crypto::Weakness::ShorterWrappingKey,
            });
        }
        let mut clear = Zeroizing::new(cryptogram.0.clone());
        crypto::tdes_decrypt_ecb(&wrapping, &mut clear)?;
        let computed = crypto::kcv(&clear)?;
        if !computed.ct_eq(kcv) {
            return Err(KeyStoreError::KcvMismatch {
                what: format!("imported key {key_ref}"),
                expected: *kcv,
                computed,
            });
        }
        check_new_key(usage, &key_ref, &clear)?;
        let mut records = self.records();
        if let Some(existing) = records
            .iter()
            .find(|r| &r.name == name && r.version == version)
        {
            // A retried delivery is fine; different material under the same name and version is not.
            if !existing.kcv.ct_eq(kcv) {
                return Err(KeyStoreError::Conflict(key_ref.to_string()));
            }
            check_usage(&key_ref, existing.usage(), usage)?;
            return Ok(existing.info());
        }
        // Versions only go forward: an older version arriving late, or a delivery replayed after
        // its key was destroyed, must not (re)install a key the sender has moved on from.
        let newest = self.high_water().get(name).copied().unwrap_or(0);
        if version <= newest {
            return Err(KeyStoreError::VersionNotNewer {
                key: key_ref.to_string(),
                newest,
            });
        }
        if let Some(current) = records.iter().rfind(|r| &r.name == name) {
            Self::check_successor(current, usage, clear.len())?;
        }
        let record = self.seal(name, usage, version, &clear)?;
        let info = self.insert(&mut records, record)?;
        info!(key = %name, version, kcv = %info.kcv, usage = %usage, under = %kek, "imported key");
        Ok(info)
    }

    fn export_delivery(&self, key: &KeyRef, kek: &KeyRef) -> Result<KeyDelivery> {
        let cryptogram = self.export_under(key, kek)?;
        let (_, wrapping) = self.key(kek, None)?;
        let kcv = self.info(key)?.kcv;
        let mac = crypto::key_delivery_mac(
            &wrapping,
            key.name.as_str(),
            key.version,
            &cryptogram.0,
            &kcv,
        )?;
        Ok(KeyDelivery {
            version: key.version,
            cryptogram,
            kcv,
            mac,
        })
    }

    fn import_delivery(
        &self,
        name: &KeyName,
        kek: &KeyRef,
        delivery: &KeyDelivery,
    ) -> Result<KeyInfo> {
        let (kek_record, wrapping) = self.key(kek, None)?;
        // The pair first: no MAC is computed under a key that is not a master key of the pair.
        Self::import_usage(name, delivery.version, &kek_record)?;
        let expected = crypto::key_delivery_mac(
            &wrapping,
            name.as_str(),
            delivery.version,
            &delivery.cryptogram.0,
            &delivery.kcv,
        )?;
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            &expected[..],
            &delivery.mac[..],
        )) {
            let key = KeyRef::new(name.clone(), delivery.version);
            warn!(key = %key, under = %kek, "key delivery refused: its MAC does not verify");
            return Err(KeyStoreError::DeliveryMac {
                key: key.to_string(),
                kek: kek.to_string(),
            });
        }
        self.import_under(
            name,
            delivery.version,
            kek,
            &delivery.cryptogram,
            &delivery.kcv,
        )
    }

    fn destroy(&self, key: &KeyRef) -> Result<()> {
        let mut records = self.records();
        let at = records
            .iter()
            .position(|r| r.name == key.name && r.version == key.version)
            .ok_or_else(|| KeyStoreError::NotFound(key.to_string()))?;
        let mut next = records.clone();
        let gone = next.remove(at);
        // The high-water mark stays: a destroyed version is never made or imported again.
        self.persist(&next, &self.high_water())?;
        *records = next;
        info!(key = %gone.name, version = gone.version, kcv = %gone.kcv, usage = %gone.usage(), "destroyed key");
        Ok(())
    }

    fn translate_pin_block(
        &self,
        from: &KeyRef,
        to: &KeyRef,
        block: &EncryptedPinBlock,
        pan: &Pan,
    ) -> Result<EncryptedPinBlock> {
        // PINs leave the agent under the zone PIN key only.
        let (_, to_key) = self.key(to, Some(KeyUsage::ZonePin))?;
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
        check_usage(zpk, self.info(zpk)?.usage, KeyUsage::ZonePin)?;
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

    fn generate_mac(&self, key: &KeyRef, data: &[u8]) -> Result<[u8; 8]> {
        let (_, clear) = self.key(key, Some(KeyUsage::Mac))?;
        crypto::retail_mac(&clear, data)
    }

    fn verify_mac(&self, key: &KeyRef, data: &[u8], mac: &[u8]) -> Result<bool> {
        let (_, clear) = self.key(key, Some(KeyUsage::Mac))?;
        crypto::retail_mac_verify(&clear, data, mac)
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
