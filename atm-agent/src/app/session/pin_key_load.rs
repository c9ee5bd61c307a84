//! Loading a terminal PIN key into a terminal over NDC.
//!
//! The agent generates a new terminal PIN key (TPK), enciphers it under the terminal's master key
//! (TMK, entered by two custodians with `atmctl keys load-master`), and sends it with the extended
//! encryption key change data command (`3 … FS 42 FS <length><key as 3-digit decimals>`). The
//! terminal answers with its key verification value (`23 … 3 FS <KVV>`, dialect option
//! `key_kvv_reply`), which must equal the key's check value, or with a plain ready `9`. Only
//! then is the new version recorded as the terminal's (durably), and PINs translated from it.
//! A refused or mismatching load destroys the new version; the terminal stays out of service.
//!
//! In NDC MAC mode (the profile's `[mac]`) the terminal MAC key follows the PIN key, with the
//! key change `45` and the same confirmation (`load_mac_key`); it is loaded at every start-up
//! (a connection's MACs are under a key the terminal confirmed on it) and with every PIN key.
//!
//! When: at start-up when the terminal has no confirmed key, or its key is older than
//! `keys.tpk_rotate_secs`; on `atmctl keys rotate ID`; after `atmctl keys load-master ID`; and by
//! schedule while idle (the terminal goes out of service for the load, then back in service).

use std::time::Duration;

use keystore::{Kcv, KeyName, KeyRef};
use protocols::ndc::{
    DataCommand, HostMessage, KeyChangeModifier, KeyLoad, KeyLoadError, SolicitedStatusInfo,
    TerminalMessage,
};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Session, SessionEnd};
use crate::domain::pin::LoadedPinKey;
use crate::ports::{AdviceQueue, SwitchLink, TerminalStore};

/// What became of a key load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinKeyStatus {
    /// No `[keys]` configured: PINs are not handled.
    Disabled,
    /// The terminal holds a confirmed, current PIN key.
    Ready,
    /// No terminal master key yet: the terminal waits out of service for the custodians.
    NoMasterKey,
    /// The terminal refused the key or reported another check value.
    Refused,
}

impl<IO, L, S, Q> Session<IO, L, S, Q>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    L: SwitchLink,
    S: TerminalStore,
    Q: AdviceQueue,
{
    /// Whether the terminal's PIN key must be (re)loaded now.
    pub(super) fn pin_key_due(&self) -> bool {
        let Some(keys) = &self.svc.keys else {
            return false;
        };
        let loaded = match self.svc.state.pin_key(&self.terminal_id) {
            Ok(Some(k)) => k,
            Ok(None) => return true,
            Err(e) => {
                tracing::error!(terminal = self.tid(), error = %e, "agent state unreadable");
                return true;
            }
        };
        let in_store = KeyName::terminal_pin(self.tid())
            .and_then(|n| keys.store().info(&KeyRef::new(n, loaded.version)))
            .is_ok();
        let expired = keys.rotate_after.is_some_and(|max| {
            crate::clock::now_ms().saturating_sub(loaded.loaded_at_ms) >= max.as_millis() as u64
        });
        !in_store || expired
    }

    /// Loads a new PIN key if one is due (or `force`), with the terminal out of service.
    pub(super) async fn ensure_pin_key(&mut self, force: bool) -> Result<PinKeyStatus, SessionEnd> {
        if self.svc.keys.is_none() {
            if self.profile.mac.enabled() {
                tracing::error!(target: "security", terminal = self.tid(), profile = %self.profile.name, "the profile is in MAC mode but the agent has no [keys]: every transaction request is refused");
            }
            return Ok(PinKeyStatus::Disabled);
        }
        if !force && !self.pin_key_due() {
            return self.ensure_mac_key().await;
        }
        self.load_keys().await
    }

    /// The PIN key, then (MAC mode) the MAC key.
    async fn load_keys(&mut self) -> Result<PinKeyStatus, SessionEnd> {
        match self.load_pin_key().await? {
            PinKeyStatus::Ready => {
                self.mac.key = None;
                self.ensure_mac_key().await
            }
            other => Ok(other),
        }
    }

    /// In MAC mode, loads a MAC key unless the terminal confirmed one on this connection.
    async fn ensure_mac_key(&mut self) -> Result<PinKeyStatus, SessionEnd> {
        if !self.profile.mac.enabled() || self.mac.key.is_some() {
            return Ok(PinKeyStatus::Ready);
        }
        self.load_mac_key().await
    }

    async fn load_pin_key(&mut self) -> Result<PinKeyStatus, SessionEnd> {
        let Some(keys) = self.svc.keys.clone() else {
            return Ok(PinKeyStatus::Disabled);
        };
        let tid = self.tid().to_owned();
        let (info, cryptogram) = match keys.new_terminal_pin_key(&tid) {
            Ok(Some(k)) => k,
            Ok(None) => {
                tracing::error!(terminal = %tid, "no terminal master key: the terminal stays out of service until two custodians run `atmctl keys load-master {tid}`");
                self.set_key_status("awaiting master key");
                return Ok(PinKeyStatus::NoMasterKey);
            }
            Err(e) => {
                tracing::error!(terminal = %tid, error = %e, "cannot make a terminal PIN key");
                self.set_key_status("key store error");
                return Ok(PinKeyStatus::Refused);
            }
        };
        let load = match self.key_change(KeyChangeModifier::CommsPin, &cryptogram) {
            Ok(load) => load,
            Err(e) => {
                tracing::error!(terminal = %tid, error = %e, "cannot encode the key load");
                keys.discard(&info.key_ref());
                return Ok(PinKeyStatus::Refused);
            }
        };
        let verdict = self.confirm_key_load(load, &info.kcv).await?;
        if let Err(why) = verdict {
            tracing::error!(terminal = %tid, key = %info.key_ref(), reason = %why, "terminal PIN key load failed: the terminal stays out of service");
            keys.discard(&info.key_ref());
            self.set_key_status("pin key refused");
            return Ok(PinKeyStatus::Refused);
        }
        let previous = self.svc.state.pin_key(&self.terminal_id).ok().flatten();
        self.svc
            .state
            .put_pin_key(
                &self.terminal_id,
                &LoadedPinKey {
                    version: info.version,
                    kcv: info.kcv,
                    loaded_at_ms: crate::clock::now_ms(),
                },
            )
            .await?;
        if let Some(old) = previous.filter(|p| p.version != info.version) {
            keys.discard(&KeyRef::new(info.name.clone(), old.version));
        }
        tracing::info!(terminal = %tid, version = info.version, kcv = %info.kcv, "terminal PIN key loaded and confirmed");
        self.set_key_status("pin key loaded");
        Ok(PinKeyStatus::Ready)
    }

    /// A scheduled or commanded key change while the terminal may be serving customers: out of
    /// service, load, back in service (the session is between customers when this runs).
    pub(super) async fn rotate_pin_key(&mut self, force: bool) -> Result<(), SessionEnd> {
        if self.svc.keys.is_none() || (!force && !self.pin_key_due()) {
            return Ok(());
        }
        let view = self.svc.registry.view(self.tid());
        let was_in_service = view.as_ref().is_some_and(|v| v.state.serves_customers());
        // A terminal held out of service for want of a key goes in service once it has one; one
        // a technician put out of service (or in supervisor mode) stays as it was.
        let waited_for_key = view.as_ref().is_some_and(|v| {
            !v.state.serves_customers()
                && v.state != crate::domain::terminal::TerminalState::Supervisor
                && v.pin_key.as_deref().is_some_and(|k| k != "pin key loaded")
        });
        if was_in_service {
            self.go_out_of_service().await?;
        }
        match self.load_keys().await? {
            PinKeyStatus::Ready | PinKeyStatus::Disabled if was_in_service || waited_for_key => {
                self.go_in_service().await
            }
            _ => Ok(()),
        }
    }

    /// Sends a key change and checks the terminal's answer: the key verification value its
    /// dialect reports (equal to `kcv`), or a plain ready. `Err` says why the load failed.
    async fn confirm_key_load(
        &mut self,
        load: HostMessage,
        kcv: &Kcv,
    ) -> Result<Result<(), String>, SessionEnd> {
        Ok(match self.exchange_key(load).await? {
            KeyAnswer::Kvv(kvv) if self.profile.dialect.key_kvv_reply => {
                match kvv.trim().to_ascii_uppercase().parse::<Kcv>() {
                    Ok(k) if k.ct_eq(kcv) => Ok(()),
                    Ok(k) => Err(format!(
                        "terminal reports check value {k}, the key's is {kcv}"
                    )),
                    Err(_) => Err("terminal reports an unreadable check value".to_owned()),
                }
            }
            KeyAnswer::Kvv(_) => Ok(()),
            KeyAnswer::Status(SolicitedStatusInfo::Ready)
                if !self.profile.dialect.key_kvv_reply =>
            {
                Ok(())
            }
            KeyAnswer::Status(SolicitedStatusInfo::Ready) => {
                Err("terminal answered ready without the check value its dialect reports".into())
            }
            KeyAnswer::Status(other) => Err(format!("terminal refused the key: {other:?}")),
        })
    }

    /// Loads a new terminal MAC key (`tak/<terminal>`) with the key change `45`, under the
    /// terminal master key, and keeps it for this connection once the terminal confirmed it.
    /// The version it replaces is destroyed; a refused one too (the terminal stays out of
    /// service: in MAC mode it cannot serve a customer without it).
    async fn load_mac_key(&mut self) -> Result<PinKeyStatus, SessionEnd> {
        let Some(keys) = self.svc.keys.clone() else {
            return Ok(PinKeyStatus::Disabled);
        };
        let tid = self.tid().to_owned();
        let previous = keys.terminal_mac_key(&tid).ok().flatten();
        let (info, cryptogram) = match keys.new_terminal_mac_key(&tid) {
            Ok(Some(k)) => k,
            Ok(None) => {
                tracing::error!(terminal = %tid, "no terminal master key: no MAC key can be loaded, the terminal stays out of service");
                self.set_key_status("awaiting master key");
                return Ok(PinKeyStatus::NoMasterKey);
            }
            Err(e) => {
                tracing::error!(terminal = %tid, error = %e, "cannot make a terminal MAC key");
                self.set_key_status("mac key store error");
                return Ok(PinKeyStatus::Refused);
            }
        };
        let load = match self.key_change(KeyChangeModifier::Mac, &cryptogram) {
            Ok(load) => load,
            Err(e) => {
                tracing::error!(terminal = %tid, error = %e, "cannot encode the MAC key load");
                keys.discard(&info.key_ref());
                return Ok(PinKeyStatus::Refused);
            }
        };
        if let Err(why) = self.confirm_key_load(load, &info.kcv).await? {
            tracing::error!(target: "security", terminal = %tid, key = %info.key_ref(), reason = %why, "terminal MAC key load failed: the terminal stays out of service");
            keys.discard(&info.key_ref());
            self.set_key_status("mac key refused");
            return Ok(PinKeyStatus::Refused);
        }
        self.mac.key = Some(info.version);
        if let Some(old) = previous.filter(|p| p.version != info.version) {
            keys.discard(&old.key_ref());
        }
        tracing::info!(terminal = %tid, version = info.version, kcv = %info.kcv, "terminal MAC key loaded and confirmed");
        // Reached only with a confirmed PIN key: both keys are in place (this also clears a
        // `mac key refused` left by an earlier connection).
        self.set_key_status("pin key loaded");
        Ok(PinKeyStatus::Ready)
    }

    /// The extended key change that loads `cryptogram` (a key under the terminal master key) as
    /// the key `modifier` names.
    fn key_change(
        &self,
        modifier: KeyChangeModifier,
        cryptogram: &keystore::Cryptogram,
    ) -> Result<HostMessage, KeyLoadError> {
        Ok(HostMessage::DataCommand(DataCommand {
            response_flag: None,
            luno: self.terminal.luno.clone(),
            sequence: String::new(),
            data: KeyLoad::new(cryptogram.0.clone())?.data(modifier),
            extra: Vec::new(),
            mac: None,
            trailing_fs: 0,
        }))
    }

    fn set_key_status(&self, status: &str) {
        let status = status.to_owned();
        let version = self.svc.state.pin_key(&self.terminal_id).ok().flatten();
        self.svc.registry.update(self.tid(), |v| {
            v.pin_key = Some(status);
            v.pin_key_version = version.map(|k| k.version);
        });
    }

    /// Sends a key change and waits for the encryptor data or the solicited status.
    async fn exchange_key(&mut self, msg: HostMessage) -> Result<KeyAnswer, SessionEnd> {
        self.send(msg).await?;
        let wait = Duration::from_millis(self.profile.timers.command_ack_ms);
        loop {
            match self.next_message(Some(wait)).await? {
                TerminalMessage::EncryptorInit(e) => return Ok(KeyAnswer::Kvv(e.kvv)),
                TerminalMessage::SolicitedStatus(s) => return Ok(KeyAnswer::Status(s.info)),
                TerminalMessage::UnsolicitedStatus(u) => Box::pin(self.unsolicited(u)).await?,
                other => {
                    tracing::info!(
                        terminal = self.tid(),
                        "message during a key load: served after it"
                    );
                    if self.deferred.len() >= 8 {
                        return Err(SessionEnd::Refused("key load acknowledgement"));
                    }
                    self.deferred.push_back(other);
                }
            }
        }
    }
}

enum KeyAnswer {
    Kvv(String),
    Status(SolicitedStatusInfo),
}
