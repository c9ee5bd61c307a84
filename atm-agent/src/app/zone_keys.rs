//! Keeps the agent's zone PIN key equal to the switch's.
//!
//! The switch announces its current zone PIN key version in field 53 of every sign-on and echo
//! answer. When that differs from the newest version in the agent's store (or the zone master key
//! was just entered), the agent asks for the key with an 0800 key change request (field 70 `161`);
//! the 0810 carries the key under the zone master key (field 48: cryptogram hex + 6-hex check value)
//! and its version (field 53). The switch keeps accepting the previous version for a grace window,
//! so PINs translated just before the change still verify.

use std::sync::Arc;
use std::time::Duration;

use keystore::{Cryptogram, Kcv, KeyName, KeyRef};
use tokio::sync::{watch, Notify};

use super::keys::PinKeys;
use crate::adapters::uplink::Uplink;

/// Network management code of a key change request.
pub const KEY_CHANGE: &str = "161";
/// Zone PIN key versions kept besides the current one.
const KEEP_OLD: u32 = 1;

/// Runs until shutdown. `zmk_loaded` is notified when custodians enter a zone master key.
pub async fn run(
    keys: Arc<PinKeys>,
    uplink: Uplink,
    zmk_loaded: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut announced = uplink.announced_zone_key();
    loop {
        let wanted = *announced.borrow_and_update();
        if let Some(version) = wanted {
            if needs(&keys, version) {
                if let Err(e) = fetch(&keys, &uplink).await {
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
async fn fetch(keys: &PinKeys, uplink: &Uplink) -> Result<(), String> {
    let resp = uplink
        .network_request(KEY_CHANGE)
        .await
        .map_err(|e| e.to_string())?;
    if resp.get_str(39) != Some("00") {
        return Err(format!(
            "switch answered the key change request with {:?}",
            resp.get_str(39)
        ));
    }
    let version: u32 = resp
        .get_str(53)
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .ok_or("0810 key change without a key version in field 53")?;
    let data = resp.get_str(48).ok_or("0810 key change without field 48")?;
    if data.len() < 6 || !data.is_ascii() {
        return Err("field 48 too short for a key and its check value".into());
    }
    let (cryptogram, kcv) = data.split_at(data.len() - 6);
    let cryptogram = Cryptogram::from_hex(cryptogram).map_err(|e| e.to_string())?;
    let kcv: Kcv = kcv
        .parse()
        .map_err(|e: keystore::KeyStoreError| e.to_string())?;
    let info = keys
        .import_zone_pin_key(version, &cryptogram, &kcv)
        .map_err(|e| e.to_string())?;
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
