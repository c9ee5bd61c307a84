//! 0800 network management: sign-on (001), sign-off (002), echo (301) and the zone PIN key
//! exchange (161).
//!
//! Answers to sign-on and echo carry the current ZPK version (field 53) when there is one, so an
//! agent notices a rotation and asks again. A key change request is answered with the version
//! (53) and the ZPK enciphered under the zone master key followed by its check value and the MAC
//! that binds them to the version (48, see `zone_keys::key_change_reply`).

use keystore::KeyVersion;
use protocols::dialect::NetworkCode;

use super::zone_keys::key_change_reply;
use super::Switch;
use crate::domain::{RecordedReply, ResponseCode};
use crate::ports::{Journal, Ledger};

impl<L: Ledger, J: Journal> Switch<L, J> {
    pub(super) fn network_management(&self, code: NetworkCode, terminal: &str) -> RecordedReply {
        match code {
            NetworkCode::SignOn | NetworkCode::Echo => RecordedReply {
                zpk_version: self.zpk_version(),
                offline_deposits: Some(self.routes.offline_deposits()),
                ..RecordedReply::code(ResponseCode::Approved)
            },
            NetworkCode::SignOff => RecordedReply::code(ResponseCode::Approved),
            NetworkCode::KeyChange => self.key_change(terminal),
            NetworkCode::Other(other) => {
                tracing::warn!(code = other, "unknown network management code");
                RecordedReply::code(ResponseCode::InvalidTransaction)
            }
        }
    }

    fn zpk_version(&self) -> Option<KeyVersion> {
        self.zone.as_ref().and_then(|z| z.current_version())
    }

    fn key_change(&self, terminal: &str) -> RecordedReply {
        let Some(zone) = &self.zone else {
            tracing::warn!(terminal, "key change request (161) refused 96: no key store is configured; add a [keys] section and load the zone master key with `host-switch keys load-components --config FILE zmk --usage zone_master`");
            return RecordedReply::code(ResponseCode::SystemError);
        };
        match zone.export() {
            Ok(zpk) => {
                tracing::info!(terminal, zpk_version = zpk.version, kcv = %zpk.kcv, "zone PIN key sent under the zone master key");
                key_change_reply(&zpk)
            }
            Err(e) => {
                tracing::warn!(terminal, error = %e, "key change request (161) refused 96");
                RecordedReply::code(ResponseCode::SystemError)
            }
        }
    }
}
