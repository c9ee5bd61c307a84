//! The cards' PIN records on sled: tree `card_pins` in the journal's database, one JSON record per
//! card reference, made durable through the journal's group committer (a wrong-try count is on
//! disk before the decline that depends on it leaves).
//!
//! A card's verification data (its PVV or IBM 3624 offset) is never written in clear: it is
//! sealed with AES-256-GCM under the switch's data protection key (`[card_data] key`, in the key
//! store, see [`CardDataSeal`]) and stored as `sealed_data` — the key's name and version beside the
//! sealed bytes, so records sealed under an older version still open after a new one is made. The
//! record's store key (the card reference) is the associated data: sealed data copied under
//! another card does not open. The counters stay in clear (they are not card data).
//!
//! Records written before sealing, with `data` in clear, are still read; provisioning (at every
//! start) rewrites them sealed, and any record sealed under an older key version under the
//! current one. Sled does not erase the old bytes in place: they go when sled reclaims the
//! segment, so OPERATIONS.md has a database that once held clear data treated as card data.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use group_commit::GroupCommitter;
use keystore::{KeyLength, KeyName, KeyRef, KeyStore, KeyStoreError, KeyUsage, KeyVersion};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

use super::sled_journal::{storage, SledDb};
use crate::domain::pin::{CardPinRecord, CardRef, PinData, PinStatus};
use crate::ports::{CardPinStore, JournalError, ProvisionReport};

/// Why the data protection key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CardDataKeyError {
    #[error("key {name} has usage {actual}; the cards' data is sealed under a data_protection key (`[card_data] key` names another key?)")]
    WrongUsage { name: String, actual: KeyUsage },
    #[error("data protection key {name}")]
    KeyStore {
        name: String,
        #[source]
        source: KeyStoreError,
    },
}

/// Seals and opens cards' verification data under the data protection key.
pub struct CardDataSeal {
    keys: Arc<dyn KeyStore>,
    current: KeyRef,
}

/// Sealed verification data as stored: which key version sealed it, and the sealed bytes (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedData {
    key: String,
    version: KeyVersion,
    sealed_hex: String,
}

impl CardDataSeal {
    /// The newest version of `name`, generated now when there is none: the key protects data
    /// that never leaves the switch, so nobody else needs to hold it. Returns whether it was made.
    pub fn open_or_generate(
        keys: Arc<dyn KeyStore>,
        name: &KeyName,
    ) -> Result<(Self, bool), CardDataKeyError> {
        let fail = |source| CardDataKeyError::KeyStore {
            name: name.to_string(),
            source,
        };
        let (info, made) = match keys.current(name).map_err(fail)? {
            Some(info) => (info, false),
            None => {
                let info = keys
                    .generate(name, KeyUsage::DataProtection, KeyLength::Bytes32)
                    .map_err(fail)?;
                (info, true)
            }
        };
        if info.usage != KeyUsage::DataProtection {
            return Err(CardDataKeyError::WrongUsage {
                name: name.to_string(),
                actual: info.usage,
            });
        }
        Ok((
            Self {
                keys,
                current: info.key_ref(),
            },
            made,
        ))
    }

    /// The key version new records are sealed under.
    pub fn current(&self) -> &KeyRef {
        &self.current
    }

    fn seal(&self, store_key: &[u8], data: &PinData) -> Result<SealedData, JournalError> {
        let clear = zeroize::Zeroizing::new(serde_json::to_vec(data).map_err(encode_failed)?);
        self.seal_bytes(&clear, store_key)
            .map_err(|e| key_failed("seal a card's PIN data", e))
    }

    fn open(&self, store_key: &[u8], sealed: &SealedData) -> Result<PinData, JournalError> {
        let corrupt = |reason: &str| JournalError::Corrupt {
            key: String::from_utf8_lossy(store_key).into_owned(),
            source: reason.into(),
        };
        let clear = self.open_bytes(sealed, store_key).map_err(|e| match e {
            OpenError::Corrupt(reason) => corrupt(reason),
            OpenError::Key(e) => key_failed("open a card's PIN data", e),
        })?;
        serde_json::from_slice(&clear).map_err(|_| corrupt("sealed_data does not hold PIN data"))
    }

    /// Seals `clear` under the current version, bound to `aad` (the record's store key).
    pub fn seal_bytes(&self, clear: &[u8], aad: &[u8]) -> Result<SealedData, KeyStoreError> {
        let sealed = self.keys.seal_data(&self.current, clear, aad)?;
        Ok(SealedData {
            key: self.current.name.to_string(),
            version: self.current.version,
            sealed_hex: sealed.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }

    /// Opens what [`seal_bytes`](Self::seal_bytes) made with the same `aad`.
    pub fn open_bytes(
        &self,
        sealed: &SealedData,
        aad: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, OpenError> {
        let bytes =
            from_hex(&sealed.sealed_hex).ok_or(OpenError::Corrupt("sealed_data is not hex"))?;
        let name = KeyName::new(sealed.key.clone())
            .map_err(|_| OpenError::Corrupt("sealed_data names no valid key"))?;
        self.keys
            .open_data(&KeyRef::new(name, sealed.version), &bytes, aad)
            .map_err(OpenError::Key)
    }
}

/// Why sealed bytes did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Corrupt(&'static str),
    #[error(transparent)]
    Key(KeyStoreError),
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn encode_failed(e: serde_json::Error) -> JournalError {
    JournalError::Storage {
        context: "encode a card's PIN record".into(),
        source: Box::new(e),
    }
}

fn key_failed(context: &str, e: KeyStoreError) -> JournalError {
    JournalError::Storage {
        context: format!("{context} (key store)"),
        source: Box::new(e),
    }
}

/// What re-keying legacy records did (`host-switch cards rekey-pins`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RekeyReport {
    /// Pairs in the map.
    pub pairs: usize,
    /// Legacy records moved to their keyed reference.
    pub moved: usize,
    /// Pairs whose legacy reference had no record.
    pub absent: usize,
}

pub struct SledCardPins {
    cards: sled::Tree,
    commits: Arc<GroupCommitter>,
    seal: CardDataSeal,
}

impl SledCardPins {
    pub fn in_db(db: &SledDb, seal: CardDataSeal) -> Result<Self, JournalError> {
        Ok(Self {
            cards: db.db.open_tree("card_pins").map_err(storage)?,
            commits: db.commits.clone(),
            seal,
        })
    }

    /// The record as stored: its data sealed under the current key version.
    fn encode(&self, record: &CardPinRecord) -> Result<Vec<u8>, JournalError> {
        let mut value = serde_json::to_value(record).map_err(encode_failed)?;
        if let (Some(data), Some(fields)) = (&record.data, value.as_object_mut()) {
            fields.remove("data");
            let sealed = self.seal.seal(record.card.as_str().as_bytes(), data)?;
            fields.insert(
                "sealed_data".into(),
                serde_json::to_value(sealed).map_err(encode_failed)?,
            );
        }
        serde_json::to_vec(&value).map_err(encode_failed)
    }

    /// A stored record, and whether it should be written again: its data in clear (written
    /// before sealing) or sealed under an older key version.
    fn decode(&self, key: &[u8], bytes: &[u8]) -> Result<(CardPinRecord, bool), JournalError> {
        let corrupt = |e: serde_json::Error| JournalError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            source: Box::new(e),
        };
        let mut value: Value = serde_json::from_slice(bytes).map_err(corrupt)?;
        let mut stale = false;
        if let Some(fields) = value.as_object_mut() {
            match fields.remove("sealed_data") {
                Some(sealed) => {
                    let sealed: SealedData = serde_json::from_value(sealed).map_err(corrupt)?;
                    stale = sealed.version != self.seal.current.version
                        || sealed.key != self.seal.current.name.as_str();
                    let data = self.seal.open(key, &sealed)?;
                    fields.insert(
                        "data".into(),
                        serde_json::to_value(data).map_err(encode_failed)?,
                    );
                }
                None => stale = fields.get("data").is_some_and(|d| !d.is_null()),
            }
        }
        let record = serde_json::from_value(value).map_err(corrupt)?;
        Ok((record, stale))
    }

    fn insert(&self, record: &CardPinRecord) -> Result<(), JournalError> {
        self.cards
            .insert(record.card.as_str().as_bytes(), self.encode(record)?)
            .map_err(storage)?;
        Ok(())
    }

    fn get(&self, card: &CardRef) -> Result<Option<CardPinRecord>, JournalError> {
        let key = card.as_str().as_bytes();
        match self.cards.get(key).map_err(storage)? {
            Some(v) => self.decode(key, &v).map(|(r, _)| Some(r)),
            None => Ok(None),
        }
    }

    fn provision_now(
        &self,
        cards: Vec<(CardRef, PinData)>,
    ) -> Result<ProvisionReport, JournalError> {
        let mut report = ProvisionReport {
            cards: cards.len(),
            ..ProvisionReport::default()
        };
        let mut listed: BTreeMap<CardRef, PinData> = cards.into_iter().collect();
        let mut resealed = 0usize;
        let mut legacy = 0usize;
        for kv in self.cards.iter() {
            let (k, v) = kv.map_err(storage)?;
            let (current, stale) = self.decode(&k, &v)?;
            legacy += usize::from(current.card.is_legacy());
            let data = listed.remove(&current.card);
            if data.is_none() && current.data.is_some() {
                report.cleared += 1;
            }
            if data != current.data {
                self.insert(&current.reprovisioned(data))?;
            } else if stale {
                resealed += 1;
                self.insert(&current)?;
            }
        }
        for (card, data) in listed {
            report.added += 1;
            self.insert(&CardPinRecord::new(card, Some(data)))?;
        }
        if resealed > 0 {
            tracing::info!(
                records = resealed,
                key = %self.seal.current,
                "cards' PIN data written in clear or under an older key version: sealed again"
            );
        }
        if legacy > 0 {
            tracing::warn!(
                records = legacy,
                "PIN records under legacy (unkeyed) card references: their counters apply to no card until `host-switch cards rekey-pins` moves them (see OPERATIONS.md)"
            );
        }
        Ok(report)
    }

    /// Moves each legacy record in `pairs` (legacy reference, keyed reference) to its keyed
    /// reference, keeping the stricter of the two records' PIN states (a card blocked under its
    /// old reference stays blocked) and the keyed record's data if it has some. Durable on return.
    pub async fn rekey(&self, pairs: &[(CardRef, CardRef)]) -> Result<RekeyReport, JournalError> {
        let mut report = RekeyReport {
            pairs: pairs.len(),
            ..RekeyReport::default()
        };
        for (legacy, keyed) in pairs {
            let Some(old) = self.get(legacy)? else {
                report.absent += 1;
                continue;
            };
            let moved = match self.get(keyed)? {
                Some(new) => CardPinRecord {
                    status: stricter(old.status, new.status),
                    data: new.data.clone().or(old.data),
                    ..new
                },
                None => CardPinRecord {
                    card: keyed.clone(),
                    ..old
                },
            };
            self.insert(&moved)?;
            self.cards
                .remove(legacy.as_str().as_bytes())
                .map_err(storage)?;
            report.moved += 1;
        }
        self.commits.durable().await?;
        Ok(report)
    }
}

/// Blocked beats active; between two active states, more wrong tries.
fn stricter(a: PinStatus, b: PinStatus) -> PinStatus {
    match (a, b) {
        (PinStatus::Blocked, _) | (_, PinStatus::Blocked) => PinStatus::Blocked,
        (PinStatus::Active { wrong_tries: x }, PinStatus::Active { wrong_tries: y }) => {
            PinStatus::Active {
                wrong_tries: x.max(y),
            }
        }
    }
}

impl CardPinStore for SledCardPins {
    fn card(&self, card: &CardRef) -> Result<Option<CardPinRecord>, JournalError> {
        self.get(card)
    }

    fn save(&self, record: CardPinRecord) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async move {
            self.insert(&record)?;
            self.commits.durable().await?;
            Ok(())
        })
    }

    fn provision(
        &self,
        cards: Vec<(CardRef, PinData)>,
    ) -> BoxFuture<'_, Result<ProvisionReport, JournalError>> {
        Box::pin(async move {
            let report = self.provision_now(cards)?;
            self.commits.durable().await?;
            Ok(report)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keystore::{Kek, SoftwareKeyStore};
    use std::path::Path;
    use testkit::evidence::{bytes_under, holds};

    fn card(n: u8) -> CardRef {
        CardRef::for_tests(n)
    }

    fn key_store(dir: &Path) -> Arc<dyn KeyStore> {
        let kek = Kek::from_hex(&"22".repeat(32)).unwrap();
        Arc::new(SoftwareKeyStore::open(&dir.join("keys.json"), kek).unwrap())
    }

    fn seal(keys: &Arc<dyn KeyStore>) -> CardDataSeal {
        CardDataSeal::open_or_generate(keys.clone(), &KeyName::new("carddata").unwrap())
            .unwrap()
            .0
    }

    #[tokio::test]
    async fn reprovisioning_updates_data_and_keeps_counters_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let keys = key_store(dir.path());
        let db_dir = dir.path().join("db");
        let (a, b) = (card(1), card(2));
        {
            let db = SledDb::open(&db_dir).unwrap();
            let store = SledCardPins::in_db(&db, seal(&keys)).unwrap();
            let report = store
                .provision(vec![
                    (a.clone(), PinData::visa_pvv(1, "1234").unwrap()),
                    (b.clone(), PinData::ibm3624("7710").unwrap()),
                ])
                .await
                .unwrap();
            assert_eq!((report.cards, report.added, report.cleared), (2, 2, 0));
            let mut rec = store.card(&a).unwrap().unwrap();
            rec.status = PinStatus::Blocked;
            store.save(rec).await.unwrap();
        }
        let db = SledDb::open(&db_dir).unwrap();
        let store = SledCardPins::in_db(&db, seal(&keys)).unwrap();
        let report = store
            .provision(vec![(a.clone(), PinData::visa_pvv(2, "9999").unwrap())])
            .await
            .unwrap();
        assert_eq!((report.cards, report.added, report.cleared), (1, 0, 1));
        let rec = store.card(&a).unwrap().unwrap();
        assert_eq!(rec.status, PinStatus::Blocked, "counters survive reload");
        assert_eq!(rec.data, Some(PinData::visa_pvv(2, "9999").unwrap()));
        assert_eq!(store.card(&b).unwrap().unwrap().data, None);
        assert_eq!(store.card(&card(3)).unwrap(), None);
    }

    #[tokio::test]
    async fn pin_data_is_sealed_on_disk_and_opens_after_a_restart_and_a_key_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let keys = key_store(dir.path());
        let db_dir = dir.path().join("db");
        let a = card(1);
        {
            let db = SledDb::open(&db_dir).unwrap();
            let store = SledCardPins::in_db(&db, seal(&keys)).unwrap();
            store
                .provision(vec![(a.clone(), PinData::visa_pvv(1, "4821").unwrap())])
                .await
                .unwrap();
            db.db.flush().unwrap();
        }
        let raw = bytes_under(&db_dir);
        assert!(holds(&raw, a.as_str()), "the reference is the store key");
        for clear in ["\"pvv\":\"4821\"", "visa_pvv", "\"pvv\""] {
            assert!(!holds(&raw, clear), "{clear} is in the db files in clear");
        }
        // A new version of the data protection key: old records still open, and provisioning
        // seals them again under it.
        keys.generate(
            &KeyName::new("carddata").unwrap(),
            KeyUsage::DataProtection,
            KeyLength::Bytes32,
        )
        .unwrap();
        let db = SledDb::open(&db_dir).unwrap();
        let store = SledCardPins::in_db(&db, seal(&keys)).unwrap();
        assert_eq!(store.seal.current().version, 2);
        let rec = store.card(&a).unwrap().unwrap();
        assert_eq!(rec.data, Some(PinData::visa_pvv(1, "4821").unwrap()));
        store
            .provision(vec![(a.clone(), PinData::visa_pvv(1, "4821").unwrap())])
            .await
            .unwrap();
        let stored = store.cards.get(a.as_str().as_bytes()).unwrap().unwrap();
        let (_, stale) = store.decode(a.as_str().as_bytes(), &stored).unwrap();
        assert!(!stale, "sealed under the current version");
        assert!(holds(&stored, "\"version\":2"));
        // Sealed data moved under another card does not open.
        let b = card(2);
        store.cards.insert(b.as_str().as_bytes(), stored).unwrap();
        assert!(store.card(&b).is_err());
    }

    #[tokio::test]
    async fn clear_records_from_before_are_read_and_sealed_by_provisioning() {
        let dir = tempfile::tempdir().unwrap();
        let keys = key_store(dir.path());
        let db = SledDb::open(&dir.path().join("db")).unwrap();
        let store = SledCardPins::in_db(&db, seal(&keys)).unwrap();
        let a = card(1);
        let old = CardPinRecord::new(a.clone(), Some(PinData::ibm3624("7710").unwrap()));
        store
            .cards
            .insert(a.as_str().as_bytes(), serde_json::to_vec(&old).unwrap())
            .unwrap();
        assert_eq!(store.card(&a).unwrap().unwrap(), old);
        store
            .provision(vec![(a.clone(), PinData::ibm3624("7710").unwrap())])
            .await
            .unwrap();
        let stored = store.cards.get(a.as_str().as_bytes()).unwrap().unwrap();
        assert!(!holds(&stored, "7710") && holds(&stored, "sealed_data"));
        assert_eq!(store.card(&a).unwrap().unwrap(), old);
    }

    #[tokio::test]
    async fn rekeying_moves_legacy_records_and_keeps_the_stricter_state() {
        let dir = tempfile::tempdir().unwrap();
        let keys = key_store(dir.path());
        let db = SledDb::open(&dir.path().join("db")).unwrap();
        let store = SledCardPins::in_db(&db, seal(&keys)).unwrap();
        let pan = protocols::types::Pan::parse("4761739001010010").unwrap();
        let legacy = CardRef::legacy_for_card(&pan);
        let keyed = card(1);
        let mut old = CardPinRecord::new(legacy.clone(), Some(PinData::ibm3624("1111").unwrap()));
        old.status = PinStatus::Blocked;
        store.save(old).await.unwrap();
        store
            .provision(vec![(keyed.clone(), PinData::ibm3624("2222").unwrap())])
            .await
            .unwrap();
        let report = store
            .rekey(&[(legacy.clone(), keyed.clone()), (card(9), card(8))])
            .await
            .unwrap();
        assert_eq!((report.pairs, report.moved, report.absent), (2, 1, 1));
        assert_eq!(store.card(&legacy).unwrap(), None);
        let rec = store.card(&keyed).unwrap().unwrap();
        assert_eq!(
            rec.status,
            PinStatus::Blocked,
            "still blocked under its new reference"
        );
        assert_eq!(rec.data, Some(PinData::ibm3624("2222").unwrap()));
    }
}
