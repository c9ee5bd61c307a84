//! Keys as the lab's custodians hold them, made fresh for every run: components with their check
//! values (terminal master keys, zone master key, PIN verification key, the switch's card
//! reference key), the key-encryption keys of the two key stores, the cards' PINs and the issuer's
//! PIN verification file.
//!
//! Every switch needs its card reference key (it refuses to start without): cards' references
//! and wallet accounts are HMAC-SHA-256 of the PAN under it. A test or the lab that seeds the
//! ledger holds the same key, [`CustodianKey::card_reference_mac`] computes what the switch's key
//! store will, and the daemon's own type turns that into the account name
//! (`host_switch::domain::WalletAccount::from_mac`). [`prepare_card_ref_store`] makes a switch key
//! store holding only that key, for a switch without PIN security.
//!
//! The switch's keys are entered before it starts, straight into its key store (what
//! `host-switch keys load-components` does while the switch is stopped). The agent's are entered
//! the way custodians do it in the field, through its control socket with `atmctl`'s own code
//! (`atm_agent::cli::keys`): that part needs the agent, so it lives with the agent's tests and in
//! `atm-lab`. Each terminal simulator holds its master key in its PIN pad and gets its PIN key from
//! the agent over NDC.

use std::path::{Path, PathBuf};

use keystore::{Component, Kcv, KeyInfo, KeyName, KeyStore, KeyUsage, SoftwareKeyStore};
use protocols::types::{Pan, ValueError};
use zeroize::Zeroizing;

use crate::terminals::terminal_id;

/// Name of the lab's PIN verification key in the switch's store.
pub const PVK: &str = "pvk/lab";
/// PVK index the lab's PVVs are made with.
pub const PVKI: u8 = 1;
/// Name of the card reference key in the switch's store (the switch's default `[card_refs] key`).
pub const CARD_REF_KEY: &str = "cardref";

/// The tests' card reference key, as two components: fixed, so that a test names a card's
/// wallet account with a plain function (`account(pan)`) before any store exists.
const TEST_CARD_REF_COMPONENTS: [&str; 2] = [
    "6A0B5C2D7E1F8091A2B3C4D5E6F708192A3B4C5D6E7F8091A2B3C4D5E6F70819",
    "0F1E2D3C4B5A69788796A5B4C3D2E1F00112233445566778899AABBCCDDEEFF0",
];

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

    /// Two random 32-byte components: a card reference key (no DES parity).
    pub fn generate_32() -> Result<Self, CustodianKeyError> {
        let mut components = Vec::new();
        for _ in 0..2 {
            let mut c = Zeroizing::new(vec![0u8; 32]);
            getrandom::getrandom(&mut c).map_err(CustodianKeyError::Random)?;
            components.push(c);
        }
        Self::from_components(components)
    }

    /// The tests' fixed card reference key (the same in every test run).
    pub fn test_card_reference() -> Self {
        let components = TEST_CARD_REF_COMPONENTS
            .iter()
            .map(|c| Zeroizing::new(hex::decode(c).expect("hex")))
            .collect();
        Self::from_components(components).expect("the test key's components")
    }

    fn from_components(components: Vec<Zeroizing<Vec<u8>>>) -> Result<Self, CustodianKeyError> {
        let mut combined = Zeroizing::new(vec![0u8; components[0].len()]);
        let mut out = Vec::new();
        for c in components {
            for (k, b) in combined.iter_mut().zip(c.iter()) {
                *k ^= b;
            }
            let kcv = keystore::crypto::kcv(&c)?;
            out.push((Zeroizing::new(hex::encode_upper(&*c)), kcv));
        }
        Ok(Self {
            components: out,
            combined,
        })
    }

    /// What the switch's key store computes for `pan` under this card reference key
    /// (`KeyStore::card_reference`: HMAC-SHA-256 of the PAN's digits).
    pub fn card_reference_mac(&self, pan: &Pan) -> Result<[u8; 32], CustodianKeyError> {
        Ok(keystore::crypto::hmac_sha256(
            &self.combined,
            pan.expose().as_bytes(),
        )?)
    }

    /// Enters this key into `store` as the switch's card reference key ([`CARD_REF_KEY`]).
    pub fn load_card_reference(&self, store: &dyn KeyStore) -> Result<KeyInfo, CustodianKeyError> {
        let (c, k) = self.components()?;
        Ok(store.load_components(
            &KeyName::new(CARD_REF_KEY)?,
            KeyUsage::CardReference,
            &c,
            &k,
        )?)
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
/// file knows it by (its keyed reference, which is also its wallet account:
/// `host_switch::domain::WalletAccount::from_mac` of [`CustodianKey::card_reference_mac`]).
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
    /// The switch's card reference key (32 bytes).
    pub card_reference: CustodianKey,
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
            card_reference: CustodianKey::generate_32()?,
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
        add(CARD_REF_KEY.into(), &self.card_reference);
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

    /// Writes the switch's KEK file (0600) and enters the zone master key, the PIN verification
    /// key and the card reference key into its store. Returns (KEK file, store file).
    pub fn prepare_switch(&self, dir: &Path) -> Result<(PathBuf, PathBuf), CustodianKeyError> {
        let kek_file = write_secret(&dir.join("switch.kek"), &self.switch_kek)?;
        let store_file = dir.join("switch-keys.json");
        let kek = keystore::Kek::from_file(&kek_file)?;
        let store = SoftwareKeyStore::open(&store_file, kek)?;
        let (c, k) = self.zone_master.components()?;
        store.load_components(&KeyName::zone_master(), KeyUsage::ZoneMaster, &c, &k)?;
        let (c, k) = self.pin_verification.components()?;
        store.load_components(&KeyName::new(PVK)?, KeyUsage::PinVerification, &c, &k)?;
        self.card_reference.load_card_reference(&store)?;
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

/// A switch key store holding only the card reference key `card_ref`, for a switch without PIN
/// security: writes `dir/switch.kek` (0600, a fresh KEK) and `dir/switch-keys.json`. Returns
/// (KEK file, store file).
pub fn prepare_card_ref_store(
    dir: &Path,
    card_ref: &CustodianKey,
) -> Result<(PathBuf, PathBuf), CustodianKeyError> {
    let (_, kek_hex) = keystore::Kek::generate()?;
    let kek_file = write_secret(&dir.join("switch.kek"), &kek_hex)?;
    let store_file = dir.join("switch-keys.json");
    let store = SoftwareKeyStore::open(&store_file, keystore::Kek::from_file(&kek_file)?)?;
    card_ref.load_card_reference(&store)?;
    Ok((kek_file, store_file))
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
