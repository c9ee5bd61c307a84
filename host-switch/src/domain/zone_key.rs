//! The zone PIN key's (ZPK) lifecycle rules, as pure functions over the versions in the key store.
//!
//! The switch generates the ZPK and hands it to the agents under the zone master key. Rotation
//! makes a new version; an older version stays accepted for a grace window after its *successor*
//! was created (agents that have not asked for the new key yet keep working), then it is
//! destroyed. Everything is derived from the versions' creation times in the store, so the rules
//! hold across restarts without any state of their own.

use keystore::KeyVersion;

/// One stored ZPK version: its number and when it was created (seconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZpkVersion {
    pub version: KeyVersion,
    pub created_unix: u64,
}

/// Why a PIN block's ZPK version is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ZpkRejected {
    #[error("no ZPK version {0} in the key store")]
    Unknown(KeyVersion),
    #[error("ZPK version {version} was superseded at {superseded_unix} and its grace window of {grace_secs} s is over")]
    PastGrace {
        version: KeyVersion,
        superseded_unix: u64,
        grace_secs: u64,
    },
}

/// When `version` stopped being current: the creation time of the next newer stored version.
fn superseded_at(versions: &[ZpkVersion], version: KeyVersion) -> Option<u64> {
    versions
        .iter()
        .filter(|v| v.version > version)
        .min_by_key(|v| v.version)
        .map(|v| v.created_unix)
}

/// Whether a PIN block under `version` is accepted at `now_unix`. Times are whole seconds, so the
/// window is `grace_secs` to `grace_secs + 1` seconds: never shorter than configured.
pub fn accept(
    versions: &[ZpkVersion],
    version: KeyVersion,
    now_unix: u64,
    grace_secs: u64,
) -> Result<(), ZpkRejected> {
    if !versions.iter().any(|v| v.version == version) {
        return Err(ZpkRejected::Unknown(version));
    }
    match superseded_at(versions, version) {
        None => Ok(()),
        Some(at) if now_unix <= at.saturating_add(grace_secs) => Ok(()),
        Some(at) => Err(ZpkRejected::PastGrace {
            version,
            superseded_unix: at,
            grace_secs,
        }),
    }
}

/// The versions past their grace window at `now_unix`, to destroy.
pub fn expired(versions: &[ZpkVersion], now_unix: u64, grace_secs: u64) -> Vec<KeyVersion> {
    versions
        .iter()
        .filter(|v| {
            matches!(
                accept(versions, v.version, now_unix, grace_secs),
                Err(ZpkRejected::PastGrace { .. })
            )
        })
        .map(|v| v.version)
        .collect()
}

/// Whether the schedule asks for a new version: `rotate_secs` (0 = never) after the current one
/// was created.
pub fn rotation_due(current_created_unix: u64, now_unix: u64, rotate_secs: u64) -> bool {
    rotate_secs > 0 && now_unix >= current_created_unix.saturating_add(rotate_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(version: KeyVersion, created_unix: u64) -> ZpkVersion {
        ZpkVersion {
            version,
            created_unix,
        }
    }

    #[test]
    fn current_version_is_always_accepted_and_unknown_never() {
        let vs = [v(1, 100)];
        assert_eq!(accept(&vs, 1, 1_000_000, 0), Ok(()));
        assert_eq!(accept(&vs, 2, 100, 300), Err(ZpkRejected::Unknown(2)));
    }

    #[test]
    fn old_version_is_accepted_within_grace_after_its_successor() {
        let vs = [v(1, 100), v(2, 1000)];
        assert_eq!(accept(&vs, 1, 1000, 300), Ok(()));
        assert_eq!(accept(&vs, 1, 1300, 300), Ok(()));
        assert!(matches!(
            accept(&vs, 1, 1301, 300),
            Err(ZpkRejected::PastGrace { version: 1, .. })
        ));
        assert_eq!(expired(&vs, 1301, 300), vec![1]);
        assert!(expired(&vs, 1300, 300).is_empty());
    }

    #[test]
    fn grace_counts_from_the_next_version_not_the_newest() {
        let vs = [v(1, 100), v(2, 1000), v(3, 5000)];
        assert_eq!(expired(&vs, 5001, 300), vec![1]);
        assert_eq!(accept(&vs, 2, 5200, 300), Ok(()));
    }

    #[test]
    fn rotation_schedule() {
        assert!(!rotation_due(100, 1_000_000, 0), "0 = no schedule");
        assert!(!rotation_due(100, 199, 100));
        assert!(rotation_due(100, 200, 100));
    }
}
