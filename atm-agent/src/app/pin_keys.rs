//! The PIN key path: terminal master keys (entered by two custodians), terminal PIN keys (generated
//! here, loaded into each terminal over NDC), and the zone keys shared with the switch (the zone
//! master key entered by custodians, the zone PIN key received under it).
//!
//! Every operation on key or PIN material is one call of the [`KeyStore`]; this module only
//! decides which key versions to name. The PIN path is [`PinKeys::translate`]: the terminal's PIN
//! block, under the terminal PIN key the terminal confirmed, becomes a block under the current zone
//! PIN key, for field 52 (with the zone key's version in field 53).

use std::sync::Arc;
use std::time::Duration;

use keystore::{
    Component, EncryptedPinBlock, Kcv, KeyDelivery, KeyInfo, KeyName, KeyRef, KeyStore,
    KeyStoreError, KeyUsage, KeyVersion, SoftwareKeyStore,
};
use protocols::types::Pan;

use crate::config::{Config, KeysConfig};
pub use crate::domain::pin::ZonePinBlock;

/// Why a PIN could not be made ready for the switch. Carries no PIN data.
#[derive(Debug, thiserror::Error)]
pub enum PinPathError {
    #[error("the PIN buffer is not a PIN block in the terminal's character set")]
    Buffer,
    #[error("the terminal has no confirmed PIN key")]
    NoTerminalKey,
    #[error("no zone PIN key from the switch yet")]
    NoZoneKey,
    #[error("key store: {0}")]
    Store(#[from] KeyStoreError),
}

pub struct PinKeys {
    store: Arc<dyn KeyStore>,
    /// A terminal PIN key older than this is replaced (None: only on command).
    pub rotate_after: Option<Duration>,
}

impl PinKeys {
    /// Opens the software key store named by `[keys]`.
    pub fn open(config: &Config, keys: &KeysConfig) -> Result<Self, KeyStoreError> {
        let kek =
            keystore::KekSource::from_config(keys.kek_file.as_deref(), keys.kek_env.as_deref())?
                .load()?;
        let path = config
            .key_store_path()
            .ok_or_else(|| KeyStoreError::Invalid("no [keys] section".into()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| KeyStoreError::Storage {
                path: dir.display().to_string(),
                reason: e.to_string(),
            })?;
        }
        let store = SoftwareKeyStore::open(&path, kek)?;
        Ok(Self::new(
            Arc::new(store),
            (keys.tpk_rotate_secs > 0).then(|| Duration::from_secs(keys.tpk_rotate_secs)),
        ))
    }

    pub fn new(store: Arc<dyn KeyStore>, rotate_after: Option<Duration>) -> Self {
        Self {
            store,
            rotate_after,
        }
    }

    pub fn store(&self) -> &dyn KeyStore {
        self.store.as_ref()
    }

    /// Terminal master key entry: two or more custodians' components, each with its check value.
    pub fn load_master(
        &self,
        terminal: &str,
        components: &[Component],
        kcvs: &[Kcv],
    ) -> Result<KeyInfo, KeyStoreError> {
        let name = KeyName::terminal_master(terminal)?;
        self.store
            .load_components(&name, KeyUsage::TerminalMaster, components, kcvs)
    }

    /// Zone master key entry (the same key the switch's custodians load).
    pub fn load_zone_master(
        &self,
        components: &[Component],
        kcvs: &[Kcv],
    ) -> Result<KeyInfo, KeyStoreError> {
        self.store.load_components(
            &KeyName::zone_master(),
            KeyUsage::ZoneMaster,
            components,
            kcvs,
        )
    }

    pub fn master_key(&self, terminal: &str) -> Result<Option<KeyInfo>, KeyStoreError> {
        self.store.current(&KeyName::terminal_master(terminal)?)
    }

    pub fn zone_master_key(&self) -> Result<Option<KeyInfo>, KeyStoreError> {
        self.store.current(&KeyName::zone_master())
    }

    pub fn zone_pin_key(&self) -> Result<Option<KeyInfo>, KeyStoreError> {
        self.store.current(&KeyName::zone_pin())
    }

    /// A new terminal PIN key for `terminal` and its value under the terminal's master key, for
    /// the NDC key load. The new version is not used for PINs until the terminal confirms it.
    pub fn new_terminal_pin_key(
        &self,
        terminal: &str,
    ) -> Result<Option<(KeyInfo, keystore::Cryptogram)>, KeyStoreError> {
        let Some(master) = self.master_key(terminal)? else {
            return Ok(None);
        };
        let info = self.store.generate(
            &KeyName::terminal_pin(terminal)?,
            KeyUsage::TerminalPin,
            keystore::KeyLength::Double,
        )?;
        match self.store.export_under(&info.key_ref(), &master.key_ref()) {
            Ok(c) => Ok(Some((info, c))),
            Err(e) => {
                let _ = self.store.destroy(&info.key_ref());
                Err(e)
            }
        }
    }

    /// Forgets a terminal PIN key version the terminal refused or a superseded one.
    pub fn discard(&self, key: &KeyRef) {
        if let Err(e) = self.store.destroy(key) {
            tracing::warn!(key = %key, error = %e, "could not destroy a key version");
        }
    }

    /// Stores the zone PIN key the switch sent under the zone master key, once its MAC shows the
    /// version is the one the switch stored it as; a version not newer than the newest ever held
    /// (an old answer replayed) is refused by the store.
    pub fn import_zone_pin_key(&self, delivery: &KeyDelivery) -> Result<KeyInfo, KeyStoreError> {
        let zmk = self.zone_master_key()?.ok_or_else(|| {
            KeyStoreError::NotFound(
                "zmk: load the zone master key with `atmctl keys load-zone-master`".into(),
            )
        })?;
        self.store
            .import_delivery(&KeyName::zone_pin(), &zmk.key_ref(), delivery)
    }

    /// Translates the terminal's PIN block (under its confirmed PIN key `tpk_version`) to the
    /// current zone PIN key, in one key-store call.
    pub fn translate(
        &self,
        terminal: &str,
        tpk_version: Option<KeyVersion>,
        block: [u8; 8],
        pan: &Pan,
    ) -> Result<ZonePinBlock, PinPathError> {
        let tpk = KeyRef::new(
            KeyName::terminal_pin(terminal)?,
            tpk_version.ok_or(PinPathError::NoTerminalKey)?,
        );
        let zpk = self.zone_pin_key()?.ok_or(PinPathError::NoZoneKey)?;
        let out =
            self.store
                .translate_pin_block(&tpk, &zpk.key_ref(), &EncryptedPinBlock(block), pan)?;
        Ok(ZonePinBlock {
            block: out,
            zone_key_version: zpk.version,
        })
    }
}
