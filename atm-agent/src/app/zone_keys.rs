//! Keeps the agent's zone PIN key equal to the switch's.
//!
//! The switch announces its current zone PIN key version in field 53 of every sign-on and echo
//! answer. When that differs from the newest version in the agent's store (or the zone master key
//! was just entered), the agent asks for the key with a key change request (0800, network code
//! 161); the answer carries the key under the zone master key, its version and a MAC binding the
//! two, which the link port reads out of the 0810. The key store checks the MAC before it
//! deciphers anything and refuses a version not newer than the newest it ever held, so an 0810
//! replayed after its key was destroyed, or one whose version was edited, installs nothing. The
//! switch keeps accepting the previous version for a grace window, so PINs translated just before
//! the change still verify.

use std::sync::Arc;
use std::time::Duration;

use keystore::{KeyName, KeyRef};
use tokio::sync::{watch, Notify};

use super::pin_keys::PinKeys;
use crate::ports::SwitchLink;

/// Zone PIN key versions kept besides the current one.
const KEEP_OLD: u32 = 1;

/// Runs until shutdown. `zmk_loaded` is notified when custodians enter a zone master key.
pub async fn run<L: SwitchLink>(
    keys: Arc<PinKeys>,
    uplink: &L,
    zmk_loaded: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut announced = uplink.announced_zone_key();
    loop {
        let wanted = *announced.borrow_and_update();
        if let Some(version) = wanted {
            if needs(&keys, version) {
                if let Err(e) = fetch(&keys, uplink).await {
                    tracing::warn!(error = %e, "zone PIN key exchange failed: retrying in 5 s");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
        tokio::select! {
            r = announced.changed() => if r.is_err() { return },
            _ = zmk_loaded.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}

fn needs(keys: &PinKeys, announced: u32) -> bool {
    match keys.zone_master_key() {
        Ok(None) => {
            tracing::warn!("no zone master key: PINs cannot reach the switch until custodians run `atmctl keys load-zone-master`");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "key store unreadable");
            false
        }
        Ok(Some(_)) => !matches!(keys.zone_pin_key(), Ok(Some(k)) if k.version == announced),
    }
}

/// Asks the switch for its zone PIN key and stores it.
async fn fetch<L: SwitchLink>(keys: &PinKeys, uplink: &L) -> Result<(), FetchError> {
    let delivery = uplink.zone_pin_key().await?;
    let info = keys.import_zone_pin_key(&delivery)?;
    tracing::info!(version = info.version, kcv = %info.kcv, "zone PIN key received from the switch");
    // Old versions are of no use to the agent once a newer one is here (it translates to the
    // newest); keep one for a PIN in flight.
    if let Ok(all) = keys.store().list() {
        for k in all
            .into_iter()
            .filter(|k| k.name == KeyName::zone_pin() && k.version + KEEP_OLD < info.version)
        {
            keys.discard(&KeyRef::new(k.name, k.version));
        }
    }
    Ok(())
}

/// Why the zone PIN key could not be fetched (retried in 5 s).
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("key change request: {0}")]
    Link(#[from] crate::ports::LinkError),
    #[error("zone PIN key not stored: {0}")]
    Store(#[from] keystore::KeyStoreError),
}
