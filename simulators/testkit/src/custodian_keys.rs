//! Keys as the lab's custodians hold them, made fresh for every run: components with their check
//! values (terminal master keys, zone master key, PIN verification key), the key-encryption keys
//! of the two key stores, the cards' PINs and the issuer's PIN verification file.
//!
//! The switch's keys are entered before it starts, straight into its key store (what
//! `host-switch keys load-components` does while the switch is stopped). The agent's are entered
//! the way custodians do it in the field, through its control socket with `atmctl`'s own code
//! (`atm_agent::cli::keys`): that part needs the agent, so it lives with the agent's tests and in
//! `atm-lab`. Each terminal simulator holds its master key in its PIN pad and gets its PIN key from
//! the agent over NDC.

use std::path::{Path, PathBuf};

use keystore::{Component, Kcv, KeyName, KeyStore, KeyUsage, SoftwareKeyStore};
use protocols::types::{Pan, ValueError};
use zeroize::Zeroizing;

use crate::terminals::terminal_id;

/// Name of the lab's PIN verification key in the switch's store.
pub const PVK: &str = "pvk/lab";
/// PVK index the lab's PVVs are made with.
pub const PVKI: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CustodianKeyError {
    #[error("no randomness from the operating system")]
    Random(#[source] getrandom::Error),
    #[error("key store")]
    KeyStore(#[from] keystore::KeyStoreError),
    #[error("card {reference}")]
    Card {
        reference: String,
        #[source]
        source: ValueError,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A key as custodians hold it: components (each with its check value) and, for the lab's own
/// bookkeeping, the combined key.
pub struct CustodianKey {
    pub components: Vec<(Zeroizing<String>, Kcv)>,
    pub combined: Zeroizing<Vec<u8>>,
}

impl CustodianKey {
    /// Two random double-length components.
    pub fn generate() -> Result<Self, CustodianKeyError> {
        let mut combined = Zeroizing::new(vec![0u8; 16]);
        let mut components = Vec::new();
        for _ in 0..2 {
            let mut c = Zeroizing::new(vec![0u8; 16]);
            getrandom::getrandom(&mut c).map_err(CustodianKeyError::Random)?;
            keystore::crypto::set_odd_parity(&mut c);
            for (k, b) in combined.iter_mut().zip(c.iter()) {
                *k ^= b;
            }
            let kcv = keystore::crypto::kcv(&c)?;
            components.push((Zeroizing::new(hex::encode_upper(&*c)), kcv));
        }
        keystore::crypto::set_odd_parity(&mut combined);
        Ok(Self {
            components,
            combined,
        })
    }

    /// The components and check values as custodians type them.
    pub fn components(&self) -> Result<(Vec<Component>, Vec<Kcv>), CustodianKeyError> {
        let mut cs = Vec::new();
        let mut ks = Vec::new();
        for (c, k) in &self.components {
            cs.push(Component::from_hex(c)?);
            ks.push(*k);
        }
        Ok((cs, ks))
    }
}

/// A card the lab's issuer gave a PIN: its number, its PIN and the reference the switch's cards
/// file knows it by (its wallet account, `host_switch::domain::WalletAccount::for_card`).
#[derive(Debug, Clone)]
pub struct IssuedCard {
    pub reference: String,
    pub pan: String,
    pub pin: String,
}

/// Every key the lab's custodians hold.
pub struct LabKeys {
    pub zone_master: CustodianKey,
    pub pin_verification: CustodianKey,
    /// One per terminal, in terminal order.
    pub terminal_masters: Vec<CustodianKey>,
    /// Key-encryption keys of the two stores, as written to their 0600 files.
    pub switch_kek: Zeroizing<String>,
    pub agent_kek: Zeroizing<String>,
}

impl LabKeys {
    pub fn generate(atms: usize) -> Result<Self, CustodianKeyError> {
        Ok(Self {
            zone_master: CustodianKey::generate()?,
            pin_verification: CustodianKey::generate()?,
            terminal_masters: (0..atms)
                .map(|_| CustodianKey::generate())
                .collect::<Result<_, _>>()?,
            switch_kek: keystore::Kek::generate()?.1,
            agent_kek: keystore::Kek::generate()?.1,
        })
    }

    /// Every clear key and component, labelled, for an audit that looks for them in logs.
    pub fn secrets(&self) -> Vec<(String, Zeroizing<Vec<u8>>)> {
        let mut out = Vec::new();
        let mut add = |label: String, k: &CustodianKey| {
            out.push((label.clone(), k.combined.clone()));
            for (i, (c, _)) in k.components.iter().enumerate() {
                if let Ok(bytes) = hex::decode(c.as_str()) {
                    out.push((
                        format!("{label} component {}", i + 1),
                        Zeroizing::new(bytes),
                    ));
                }
            }
        };
        add("zmk".into(), &self.zone_master);
        add(PVK.into(), &self.pin_verification);
        for (i, k) in self.terminal_masters.iter().enumerate() {
            add(format!("tmk/{}", terminal_id(i)), k);
        }
        for (label, kek) in [
            ("switch KEK", &self.switch_kek),
            ("agent KEK", &self.agent_kek),
        ] {
            if let Ok(bytes) = hex::decode(kek.trim()) {
                out.push((label.to_owned(), Zeroizing::new(bytes)));
            }
        }
        out
    }

    /// Writes the switch's KEK file (0600) and enters the zone master key and the PIN
    /// verification key into its store. Returns (KEK file, store file).
    pub fn prepare_switch(&self, dir: &Path) -> Result<(PathBuf, PathBuf), CustodianKeyError> {
        let kek_file = write_secret(&dir.join("switch.kek"), &self.switch_kek)?;
        let store_file = dir.join("switch-keys.json");
        let kek = keystore::Kek::from_file(&kek_file)?;
        let store = SoftwareKeyStore::open(&store_file, kek)?;
        let (c, k) = self.zone_master.components()?;
        store.load_components(&KeyName::zone_master(), KeyUsage::Master, &c, &k)?;
        let (c, k) = self.pin_verification.components()?;
        store.load_components(&KeyName::new(PVK)?, KeyUsage::PinVerification, &c, &k)?;
        Ok((kek_file, store_file))
    }

    /// Writes the agent's KEK file (0600).
    pub fn prepare_agent(&self, dir: &Path) -> Result<PathBuf, CustodianKeyError> {
        write_secret(&dir.join("agent.kek"), &self.agent_kek)
    }

    /// The issuer's PIN verification file for the switch: each card's reference and Visa PVV.
    pub fn cards_file_text(&self, cards: &[IssuedCard]) -> Result<String, CustodianKeyError> {
        let mut out = String::from(
            "# PIN verification data per card (Visa PVV), made by the lab's issuer.\n",
        );
        for card in cards {
            let pan = Pan::parse(&card.pan).map_err(|source| CustodianKeyError::Card {
                reference: card.reference.clone(),
                source,
            })?;
            let pvv =
                keystore::crypto::visa_pvv(&self.pin_verification.combined, PVKI, &card.pin, &pan)?;
            out.push_str(&format!(
                "[[card]]\ncard = \"{}\"\npvki = {PVKI}\npvv = \"{}\"\n",
                card.reference,
                pvv.as_str()
            ));
        }
        Ok(out)
    }
}

/// A card's PIN in the lab: four digits derived from its position.
pub fn lab_pin(i: usize) -> String {
    format!("{:04}", (1357 + 2113 * i) % 10_000)
}

fn write_secret(path: &Path, text: &str) -> Result<PathBuf, CustodianKeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |source| CustodianKeyError::Write {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(fail)?;
    Ok(path.to_owned())
}
