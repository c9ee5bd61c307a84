//! The zone PIN key's lifecycle on the switch side: generated at start once the zone master key is
//! loaded, handed to agents under the ZMK (0800/161), rotated on a schedule or by an operator,
//! older versions accepted for a grace window after their successor and then destroyed.
//! The rules themselves are `domain::zone_key`; this file applies them to the key store.

use std::sync::Arc;
use std::time::Duration;

use keystore::{
    KeyDelivery, KeyInfo, KeyLength, KeyName, KeyRef, KeyStore, KeyStoreError, KeyUsage, KeyVersion,
};
use tokio::sync::{watch, Mutex};

use super::now_unix;
use crate::domain::zone_key::{self, ZpkRejected, ZpkVersion};
use crate::domain::{RecordedReply, ResponseCode};

/// How often the schedule and the grace windows are looked at.
const TICK: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ZoneKeyError {
    #[error("no zone master key `zmk` in the key store: load it with `host-switch keys load-components --config FILE zmk --usage zone_master` while the switch is stopped")]
    NoZmk,
    #[error("no zone PIN key `zpk` in the key store: the switch generates it at start once `zmk` is loaded, or `switchctl keys rotate-zpk` makes one now")]
    NoZpk,
    #[error(transparent)]
    Rejected(#[from] ZpkRejected),
    #[error("key store: {0}")]
    Store(#[from] KeyStoreError),
    #[error("key store task failed: {0}")]
    Task(String),
}

/// The current ZPK as an agent receives it: under the ZMK, with its version and check value
/// bound to the cryptogram by a MAC under a key derived from the ZMK (see [`KeyDelivery`]), so an
/// agent refuses a version edited in transit, and (its store keeping the newest version it ever
/// held) an old answer replayed.
pub type ZpkExport = KeyDelivery;

/// The key change answer (0810, network code 161) for `export`: field 53 the version, field 48
/// the cryptogram, check value and MAC ([`KeyDelivery::body`]).
pub fn key_change_reply(export: &ZpkExport) -> RecordedReply {
    RecordedReply {
        zpk_version: Some(export.version),
        zpk_under_zmk: Some(export.body()),
        ..RecordedReply::code(ResponseCode::Approved)
    }
}

pub struct ZoneKeys {
    store: Arc<dyn KeyStore>,
    rotate_secs: u64,
    grace_secs: u64,
    /// Serializes rotations and destructions (the schedule and an operator at the same time
    /// must not make two versions).
    lifecycle: Mutex<()>,
}

impl ZoneKeys {
    pub fn new(store: Arc<dyn KeyStore>, rotate_secs: u64, grace_secs: u64) -> Self {
        Self {
            store,
            rotate_secs,
            grace_secs,
            lifecycle: Mutex::new(()),
        }
    }

    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.store
    }

    /// At start: a ZPK exists whenever the ZMK does. Returns the version generated, if any.
    pub async fn ensure_zpk(&self) -> Result<Option<KeyInfo>, ZoneKeyError> {
        let _lifecycle = self.lifecycle.lock().await;
        if self.store.current(&KeyName::zone_master())?.is_none() {
            return Err(ZoneKeyError::NoZmk);
        }
        if self.store.current(&KeyName::zone_pin())?.is_some() {
            return Ok(None);
        }
        self.generate("first start with a zone master key")
            .await
            .map(Some)
    }

    /// The current ZPK version, for field 53 of sign-on and echo answers.
    pub fn current_version(&self) -> Option<KeyVersion> {
        match self.store.current(&KeyName::zone_pin()) {
            Ok(info) => info.map(|i| i.version),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the current ZPK version");
                None
            }
        }
    }

    /// The current ZPK under the current ZMK, bound to its version (answer to a key change
    /// request).
    pub fn export(&self) -> Result<ZpkExport, ZoneKeyError> {
        let zmk = self
            .store
            .current(&KeyName::zone_master())?
            .ok_or(ZoneKeyError::NoZmk)?;
        let zpk = self
            .store
            .current(&KeyName::zone_pin())?
            .ok_or(ZoneKeyError::NoZpk)?;
        Ok(self.store.export_delivery(&zpk.key_ref(), &zmk.key_ref())?)
    }

    /// The ZPK version a PIN block says it is under, if it is still accepted.
    pub fn accept(&self, version: KeyVersion) -> Result<KeyRef, ZoneKeyError> {
        zone_key::accept(&self.versions()?, version, now_unix(), self.grace_secs)?;
        Ok(KeyRef::new(KeyName::zone_pin(), version))
    }

    /// Makes the next ZPK version now (an operator's command).
    pub async fn rotate(&self, why: &str) -> Result<KeyInfo, ZoneKeyError> {
        let _lifecycle = self.lifecycle.lock().await;
        if self.store.current(&KeyName::zone_master())?.is_none() {
            return Err(ZoneKeyError::NoZmk);
        }
        self.generate(why).await
    }

    /// Every key in the store (names, versions, check values: never a key).
    pub fn list(&self) -> Result<Vec<KeyInfo>, KeyStoreError> {
        self.store.list()
    }

    /// Runs the schedule and the grace windows until `shutdown`.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.tick().await {
                tracing::error!(error = %e, "zone key maintenance failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One look: rotate if the schedule says so, destroy versions past their grace window.
    pub async fn tick(&self) -> Result<(), ZoneKeyError> {
        let _lifecycle = self.lifecycle.lock().await;
        let now = now_unix();
        if let Some(current) = self.store.current(&KeyName::zone_pin())? {
            if zone_key::rotation_due(current.created_unix, now, self.rotate_secs) {
                self.generate("rotation schedule (zpk_rotate_secs)").await?;
            }
        }
        for version in zone_key::expired(&self.versions()?, now, self.grace_secs) {
            let key = KeyRef::new(KeyName::zone_pin(), version);
            self.blocking(move |store| store.destroy(&key)).await?;
            tracing::info!(
                zpk_version = version,
                grace_secs = self.grace_secs,
                "old ZPK version destroyed: its grace window is over"
            );
        }
        Ok(())
    }

    fn versions(&self) -> Result<Vec<ZpkVersion>, KeyStoreError> {
        let zpk = KeyName::zone_pin();
        Ok(self
            .store
            .list()?
            .into_iter()
            .filter(|k| k.name == zpk)
            .map(|k| ZpkVersion {
                version: k.version,
                created_unix: k.created_unix,
            })
            .collect())
    }

    /// Generates the next version; the caller holds the lifecycle lock.
    async fn generate(&self, why: &str) -> Result<KeyInfo, ZoneKeyError> {
        let info = self
            .blocking(|store| {
                store.generate(&KeyName::zone_pin(), KeyUsage::ZonePin, KeyLength::Double)
            })
            .await?;
        tracing::info!(zpk_version = info.version, kcv = %info.kcv, reason = why, "new zone PIN key version");
        Ok(info)
    }

    /// A key store call that writes its file (and fsyncs), off the runtime threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn KeyStore) -> Result<T, KeyStoreError> + Send + 'static,
    ) -> Result<T, ZoneKeyError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| ZoneKeyError::Task(e.to_string()))?
            .map_err(ZoneKeyError::from)
    }
}
