//! Answering the host's terminal commands (`1`) and data commands (`3`): the part of the NDC
//! conversation that does not involve a customer.
//!
//! Pure functions over [`Terminal`]: one host command in, one solicited status out.
//! - `1` go in service / out of service / no-op → `9`; send config id → `F FS 6<id>`; send
//!   supply counters → `F FS 2…`; send config info (no modifier) → `F FS 1<id>`; anything else →
//!   reject `B04`.
//! - `3` customisation data (screens, states, FITs, config parameters, config id, enhanced
//!   config, date/time, other key changes) → stored, `9`; only out of service (in service →
//!   reject `C03`, as a terminal accepts customisation only in out-of-service or supervisor
//!   mode); unknown identifiers → reject `B04`.
//! - `3 … 45` extended key change of the MAC key (NDC MAC mode): as `42`, into the MAC key slot.
//! - `3 … 42` extended key change of the PIN key, in any mode (the agent takes the terminal out
//!   of service first, but a terminal does not insist): the key field is deciphered under the
//!   master key and becomes the PIN key → `23 FS luno FS FS 3 FS <KVV>` when the dialect has
//!   `key_kvv_reply`, else `9`. No master key → reject `E02`; a bad key field → `B04` (`A` in
//!   dialects without reject reasons).
//! - A command for another LUNO → reject `B04`.

use protocols::ndc::{
    Command, DataCommand, DataCommandData, KeyChangeModifier, KeyLoad, KeyLoadError,
    TerminalCommand, TerminalMessage, TerminalState,
};

use super::epp::EppError;
use super::messages::{self, reason};
use super::terminal::{ServiceMode, Terminal};

fn rejected(t: &mut Terminal, reason: &str) -> TerminalMessage {
    t.command_rejected();
    messages::reject(&t.luno, &t.dialect, reason)
}

/// Answers terminal command `1`.
pub fn terminal_command(t: &mut Terminal, cmd: &TerminalCommand) -> TerminalMessage {
    if cmd.luno != t.luno {
        tracing::warn!(luno = %cmd.luno, ours = %t.luno, "terminal command for another LUNO");
        return rejected(t, reason::BAD_COMMAND);
    }
    let luno = t.luno.clone();
    match &cmd.command {
        Command::GoInService => {
            t.mode = ServiceMode::InService;
            tracing::info!(luno = %luno, "in service");
            messages::ready(&luno)
        }
        Command::GoOutOfService { .. } => {
            t.mode = ServiceMode::OutOfService;
            tracing::info!(luno = %luno, "out of service");
            messages::ready(&luno)
        }
        Command::NoOp => messages::ready(&luno),
        Command::SendConfigurationId => messages::terminal_state(
            &luno,
            TerminalState::ConfigurationId(t.config.config_id.clone()),
        ),
        Command::SendSupplyCounters { .. } => {
            messages::terminal_state(&luno, TerminalState::SupplyCounters(t.supply_counters()))
        }
        Command::SendConfigurationInformation { modifier: None } => messages::terminal_state(
            &luno,
            TerminalState::ConfigurationInfo {
                config_id: t.config.config_id.clone(),
                fields: Vec::new(),
            },
        ),
        other => {
            tracing::warn!(luno = %luno, command = ?other, "unsupported terminal command");
            rejected(t, reason::BAD_COMMAND)
        }
    }
}

/// Answers data command `3`.
pub fn data_command(t: &mut Terminal, cmd: &DataCommand) -> TerminalMessage {
    if cmd.luno != t.luno {
        tracing::warn!(luno = %cmd.luno, ours = %t.luno, "data command for another LUNO");
        return rejected(t, reason::BAD_COMMAND);
    }
    match cmd.data.extended_key_load() {
        Some((Some(KeyChangeModifier::CommsPin), key)) => return load_key(t, key, KeyKind::Pin),
        Some((Some(KeyChangeModifier::Mac), key)) => return load_key(t, key, KeyKind::Mac),
        _ => {}
    }
    if t.mode == ServiceMode::InService && !t.supervisor {
        tracing::warn!(luno = %t.luno, "customisation data while in service");
        return rejected(t, reason::WRONG_MODE);
    }
    let c = &mut t.config;
    match &cmd.data {
        DataCommandData::Screens(screens) => {
            for s in screens {
                c.screens.insert(s.number.clone(), s.data.clone());
            }
        }
        DataCommandData::States(states) => {
            for s in states {
                c.states.insert(s.number.clone(), s.clone());
            }
        }
        DataCommandData::Fits(fits) => c.fits.extend(fits.iter().cloned()),
        DataCommandData::ConfigurationParameters(p) => {
            c.config_parameters.extend(p.iter().cloned())
        }
        DataCommandData::ConfigurationId(id) => {
            tracing::info!(luno = %t.luno, config_id = %id, "configuration id stored");
            c.config_id = id.clone();
        }
        DataCommandData::EnhancedConfiguration {
            options, timers, ..
        } => {
            c.options.extend(options.iter().copied());
            c.timers.extend(timers.iter().copied());
        }
        DataCommandData::DateTime(dt) => c.date_time = Some(dt.clone()),
        DataCommandData::KeyChange { .. } => c.key_changes = c.key_changes.saturating_add(1),
        DataCommandData::Other { identifier, .. } => {
            tracing::warn!(luno = %t.luno, identifier = %identifier, "unsupported data command");
            return rejected(t, reason::BAD_COMMAND);
        }
    }
    messages::ready(&t.luno)
}

/// Which key an extended key change loads.
#[derive(Debug, Clone, Copy)]
enum KeyKind {
    /// `42`: the PIN key.
    Pin,
    /// `45`: the MAC key (NDC MAC mode).
    Mac,
}

/// Extended key change `42` (PIN key) or `45` (MAC key), enciphered under the master key.
fn load_key(
    t: &mut Terminal,
    key: Result<KeyLoad, KeyLoadError>,
    kind: KeyKind,
) -> TerminalMessage {
    let loaded = key.map_err(EppError::from).and_then(|k| match kind {
        KeyKind::Pin => t.epp.load_pin_key(&k),
        KeyKind::Mac => t.epp.load_mac_key(&k),
    });
    match loaded {
        Ok(kcv) => {
            t.config.key_changes = t.config.key_changes.saturating_add(1);
            tracing::info!(luno = %t.luno, kcv = %kcv, key = ?kind, "key loaded");
            if t.dialect.key_kvv_reply {
                messages::new_key_verification(&t.luno, kcv.to_string())
            } else {
                messages::ready(&t.luno)
            }
        }
        Err(e) => {
            tracing::warn!(luno = %t.luno, error = %e, key = ?kind, "key load refused");
            let why = match e {
                EppError::NoMasterKey => reason::NO_MASTER_KEY,
                _ => reason::BAD_COMMAND,
            };
            rejected(t, why)
        }
    }
}

#[cfg(test)]
mod tests {
    use firmware_profiles::Profile;
    use keystore::crypto;
    use protocols::ndc::{
        EncryptorInit, KeyField, SolicitedStatus, SolicitedStatusInfo, TerminalMessage,
    };

    use super::*;
    use crate::cash::Cassettes;
    use crate::epp::ClearKey;

    const TMK_HEX: &str = "0123456789ABCDEFFEDCBA9876543210";
    const TPK: [u8; 16] = [
        0x13, 0x34, 0x57, 0x79, 0x9B, 0xBC, 0xDF, 0xF1, 0x1F, 0x1E, 0x1D, 0x1C, 0x1B, 0x1A, 0x19,
        0x18,
    ];

    fn terminal(profile: &str, tmk: bool) -> Terminal {
        let p = Profile::builtin(profile).expect("builtin profile");
        let luno = if p.dialect.luno_len == 9 {
            "001000001"
        } else {
            "001"
        };
        let c = Cassettes::load(&p, None).unwrap();
        let master_key = tmk.then(|| ClearKey::from_hex(TMK_HEX).unwrap());
        Terminal::new(&p, luno.into(), c, "0000".into()).with_master_key(master_key)
    }

    /// What the host sends: `tpk` enciphered under the TMK in a `42` command.
    fn key_change(t: &Terminal, tpk: &[u8]) -> DataCommand {
        let mut cryptogram = tpk.to_vec();
        crypto::tdes_encrypt_ecb(&hex::decode(TMK_HEX).unwrap(), &mut cryptogram).unwrap();
        let key = KeyLoad::new(cryptogram).unwrap();
        DataCommand::extended_key_change(t.luno.clone(), KeyChangeModifier::CommsPin, &key)
    }

    fn solicited(m: &TerminalMessage) -> &SolicitedStatusInfo {
        match m {
            TerminalMessage::SolicitedStatus(SolicitedStatus { info, .. }) => info,
            other => panic!("expected a solicited status, got {other:?}"),
        }
    }

    #[test]
    fn basic_terminal_acknowledges_a_pin_key_load_with_ready() {
        let mut t = terminal("ncr-selfserv-basic", true);
        let answer = {
            let cmd = key_change(&t, &TPK);
            data_command(&mut t, &cmd)
        };
        assert_eq!(solicited(&answer), &SolicitedStatusInfo::Ready);
        assert_eq!(t.epp.pin_key_kcv(), Some(crypto::kcv(&TPK).unwrap()));
        assert_eq!(t.status().pin_key_kcv, t.epp.pin_key_kcv());
        assert_eq!(t.config.key_changes, 1);
        assert_eq!(t.status().commands_rejected, 0);
    }

    #[test]
    fn advance_terminal_answers_a_pin_key_load_with_its_kvv() {
        let mut t = terminal("ncr-advance-ndc", true);
        let answer = {
            let cmd = key_change(&t, &TPK);
            data_command(&mut t, &cmd)
        };
        let kvv = crypto::kcv(&TPK).unwrap().to_string();
        assert_eq!(kvv.len(), 6);
        assert_eq!(
            answer,
            TerminalMessage::EncryptorInit(EncryptorInit {
                luno: "001000001".into(),
                id: "3".into(),
                kvv: kvv.clone(),
                mac: None,
                extra: Vec::new(),
                trailing_fs: 0,
            })
        );
        assert_eq!(
            answer.encode(&t.dialect).unwrap(),
            format!("23\x1c001000001\x1c\x1c3\x1c{kvv}").as_bytes()
        );
    }

    #[test]
    fn a_pin_key_load_is_taken_in_service_too() {
        let mut t = terminal("ncr-selfserv-basic", true);
        t.mode = ServiceMode::InService;
        let answer = {
            let cmd = key_change(&t, &TPK);
            data_command(&mut t, &cmd)
        };
        assert_eq!(solicited(&answer), &SolicitedStatusInfo::Ready);
        assert!(t.epp.has_pin_key());
        assert_eq!(t.mode, ServiceMode::InService);
    }

    #[test]
    fn without_a_master_key_the_load_is_rejected_so_the_host_sees_it() {
        let mut t = terminal("ncr-selfserv-basic", false);
        let answer = {
            let cmd = key_change(&t, &TPK);
            data_command(&mut t, &cmd)
        };
        assert_eq!(solicited(&answer), &SolicitedStatusInfo::CommandReject);
        let mut adv = terminal("ncr-advance-ndc", false);
        let answer = {
            let cmd = key_change(&adv, &TPK);
            data_command(&mut adv, &cmd)
        };
        assert_eq!(
            solicited(&answer),
            &SolicitedStatusInfo::SpecificReject {
                reason: reason::NO_MASTER_KEY.into()
            }
        );
        assert!(!adv.epp.has_pin_key());
        assert_eq!(adv.status().commands_rejected, 1);
        assert_eq!(adv.config.key_changes, 0);
    }

    #[test]
    fn a_bad_key_field_is_rejected_and_the_old_key_stays() {
        let mut t = terminal("ncr-advance-ndc", true);
        {
            let cmd = key_change(&t, &TPK);
            data_command(&mut t, &cmd)
        };
        let before = t.epp.pin_key_kcv();
        let mut bad = key_change(&t, &TPK);
        bad.data = DataCommandData::KeyChange {
            subclass: '4',
            modifier: "2".into(),
            data: KeyField::new("030123"),
        };
        let answer = data_command(&mut t, &bad);
        assert_eq!(
            solicited(&answer),
            &SolicitedStatusInfo::SpecificReject {
                reason: reason::BAD_COMMAND.into()
            }
        );
        assert_eq!(t.epp.pin_key_kcv(), before);
        assert_eq!(t.config.key_changes, 1);
    }
}
