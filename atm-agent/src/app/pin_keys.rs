//! The PIN key path: terminal master keys (entered by two custodians), terminal PIN keys (generated
//! here, loaded into each terminal over NDC), and the zone keys shared with the switch (the zone
//! master key entered by custodians, the zone PIN key received under it).
//!
//! Every operation on key or PIN material is one call of the [`KeyStore`]; this module only
//! decides which key versions to name. The PIN path is [`PinKeys::translate`]: the terminal's PIN
//! block, under the terminal PIN key the terminal confirmed, becomes a block under the current zone
//! PIN key, for field 52 (with the zone key's version in field 53).
//!
//! A terminal's PIN block that does not decode under its PIN key for the card's PAN is counted
//! per terminal ([`PinFormatErrors`]): the session takes a terminal past the limit out of service
//! (the ISO 9564 format-0 PAN-substitution oracle needs many such blocks).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keystore::{
    Component, EncryptedPinBlock, Kcv, KeyDelivery, KeyInfo, KeyName, KeyRef, KeyStore,
    KeyStoreError, KeyUsage, KeyVersion, SoftwareKeyStore,
};
use protocols::types::Pan;

use crate::config::{Config, KeysConfig};
pub use crate::domain::pin::ZonePinBlock;
use crate::domain::terminal::PinFormatErrors;

/// Default limit of PIN blocks that do not decode, per terminal (`ndc.max_pin_format_errors`).
pub const PIN_FORMAT_ERRORS_MAX: u32 = 5;
/// Default window of that limit (`ndc.pin_format_window_secs`).
pub const PIN_FORMAT_WINDOW: Duration = Duration::from_secs(3_600);

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
    /// PIN blocks that did not decode, by terminal id; kept across the terminal's reconnections
    /// (a new connection must not start a fresh count).
    format_errors: Mutex<HashMap<String, PinFormatErrors>>,
    format_errors_max: u32,
    format_window: Duration,
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
        )
        .with_pin_format_limit(
            config.ndc.max_pin_format_errors,
            Duration::from_secs(config.ndc.pin_format_window_secs),
        ))
    }

    pub fn new(store: Arc<dyn KeyStore>, rotate_after: Option<Duration>) -> Self {
        Self {
            store,
            rotate_after,
            format_errors: Mutex::new(HashMap::new()),
            format_errors_max: PIN_FORMAT_ERRORS_MAX,
            format_window: PIN_FORMAT_WINDOW,
        }
    }

    /// `max` PIN blocks that do not decode within `window` take a terminal out of service.
    pub fn with_pin_format_limit(mut self, max: u32, window: Duration) -> Self {
        self.format_errors_max = max.max(1);
        self.format_window = window;
        self
    }

    /// The limit and window of PIN blocks that do not decode.
    pub fn pin_format_limit(&self) -> (u32, Duration) {
        (self.format_errors_max, self.format_window)
    }

    /// PIN blocks from `terminal` that did not decode within the window, now.
    pub fn pin_format_errors(&self, terminal: &str) -> usize {
        let now = crate::clock::now_ms();
        self.format_errors
            .lock()
            .ok()
            .and_then(|m| m.get(terminal).map(|e| e.count(now)))
            .unwrap_or(0)
    }

    /// Forgets `terminal`'s count (an operator put it back in service).
    pub fn forget_pin_format_errors(&self, terminal: &str) {
        if let Ok(mut m) = self.format_errors.lock() {
            m.remove(terminal);
        }
    }

    fn note_pin_format_error(&self, terminal: &str) {
        let now = crate::clock::now_ms();
        let (max, window) = (self.format_errors_max, self.format_window);
        if let Ok(mut m) = self.format_errors.lock() {
            m.entry(terminal.to_owned())
                .or_insert_with(|| PinFormatErrors::new(max, window.as_millis() as u64))
                .record(now);
        }
    }

    pub fn store(&self) -> &dyn KeyStore {
        self.store.as_ref()
    }

    /// The key store itself, for the other users of the agent's keys (the card vault's data
    /// protection key): the software store locks its file, so it is opened once.
    pub fn shared_store(&self) -> Arc<dyn KeyStore> {
        self.store.clone()
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
        self.new_key_under_master(
            terminal,
            &KeyName::terminal_pin(terminal)?,
            KeyUsage::TerminalPin,
        )
    }

    /// A new double-length key `name` of `usage` and its value under `terminal`'s master key;
    /// `None` without a master key. A key that cannot be exported is destroyed at once.
    fn new_key_under_master(
        &self,
        terminal: &str,
        name: &KeyName,
        usage: KeyUsage,
    ) -> Result<Option<(KeyInfo, keystore::Cryptogram)>, KeyStoreError> {
        let Some(master) = self.master_key(terminal)? else {
            return Ok(None);
        };
        let info = self
            .store
            .generate(name, usage, keystore::KeyLength::Double)?;
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
        let out = self
            .store
            .translate_pin_block(&tpk, &zpk.key_ref(), &EncryptedPinBlock(block), pan)
            .inspect_err(|e| {
                if matches!(e, KeyStoreError::PinBlockFormat(_)) {
                    self.note_pin_format_error(terminal);
                }
            })?;
        Ok(ZonePinBlock {
            block: out,
            zone_key_version: zpk.version,
        })
    }

    /// A new terminal MAC key for `terminal` (NDC MAC mode, `tak/<terminal>`) and its value under
    /// the terminal's master key, for the key change `45`. As with the PIN key, the new version
    /// is only used once the terminal confirmed it; `None` without a master key.
    pub fn new_terminal_mac_key(
        &self,
        terminal: &str,
    ) -> Result<Option<(KeyInfo, keystore::Cryptogram)>, KeyStoreError> {
        self.new_key_under_master(terminal, &terminal_mac_key_name(terminal)?, KeyUsage::Mac)
    }

    /// The newest terminal MAC key version of `terminal` in the store.
    pub fn terminal_mac_key(&self, terminal: &str) -> Result<Option<KeyInfo>, KeyStoreError> {
        self.store.current(&terminal_mac_key_name(terminal)?)
    }

    /// The NDC MAC of `data` under the terminal MAC key `key` (ANSI X9.19, all 8 bytes).
    pub fn mac(&self, key: &KeyRef, data: &[u8]) -> Result<[u8; 8], KeyStoreError> {
        self.store.generate_mac(key, data)
    }

    /// Whether `mac` (a MAC field's 4 bytes) is the MAC of `data` under `key`, in constant time.
    pub fn verify_mac(&self, key: &KeyRef, data: &[u8], mac: &[u8]) -> Result<bool, KeyStoreError> {
        self.store.verify_mac(key, data, mac)
    }
}

/// `tak/<terminal>`: the terminal MAC key of NDC MAC mode, generated here and loaded over NDC
/// like the terminal PIN key.
pub fn terminal_mac_key_name(terminal: &str) -> Result<KeyName, KeyStoreError> {
    KeyName::new(format!("tak/{terminal}"))
}
