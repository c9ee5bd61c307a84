//! The agent's own durable state (sled), behind the [`TerminalStore`] port: STAN and TSN
//! counters per terminal, the dispenses whose outcome the terminal has not yet told (the "in
//! doubt" record that survives a crash or a power failure of either side), the card vault (the
//! card numbers of deposits taken while the switch was unreachable, kept apart from the queue,
//! which technicians list, until advised), and the PIN key each terminal confirmed.
//!
//! Counters are reserved in blocks: the ceiling is made durable before any number under it is
//! used, so after a crash numbers are skipped, never reused — a reused STAN on the same day would
//! make the switch answer with another transaction's recorded reply.
//!
//! **Dispenses in doubt** are one record per transaction in the tree `dispenses_in_doubt`, keyed
//! `<terminal> <TSN, 4 digits>` (a terminal id has no space), so the next customer never replaces
//! one; a TSN whose record is still held is skipped when TSNs wrap. Agents before this kept one
//! slot per terminal (tree `pending_dispenses`, keyed by terminal id): at open, each such slot
//! becomes one record, in one transaction. A technician's settlement is journaled in
//! `dispense_settlements` (`<terminal> <TSN> <ms>`), kept.
//!
//! **Card vault.** An offline deposit's card number is kept under its reference
//! (`<terminal>:<STAN>`) in the tree `card_vault` until its advice is answered. With a key store
//! (`[keys]`), it is sealed (AES-256-GCM) under the data protection key [`VAULT_KEY_NAME`], with
//! the reference as associated data (a sealed value copied under another reference does not
//! open) and the key version stored beside it ([`SealedCard`]). Entries an earlier agent wrote in
//! clear are sealed when the store opens; sled never overwrites bytes in place, so their clear
//! bytes can stay in its segment files until it rewrites them (docs/OPERATIONS.md says what an
//! operator does). Without a key store (a lab without `[keys]`) the vault stays in clear, and the
//! agent says so at start.
//!
//! **Holds.** A terminal the agent holds out of service (too many PIN blocks that did not
//! decode) is kept in the tree `terminal_holds` (terminal id → the reason, UTF-8) until an
//! operator releases it, so a restart does not release it.
//!
//! **Electronic journal.** The lines a terminal uploads are kept in the tree
//! `electronic_journal`, keyed `<terminal> <seq, 20 digits>` (one terminal's lines sort together,
//! in the order received), each `{"at_ms", "text"}` JSON, group-committed before the upload is
//! acknowledged, with the end (last character number) of the terminal's last block under
//! `~block_end <terminal>` in the same batch: a block sent again with that end (the
//! acknowledgement was lost) is not stored twice. Policy: at most [`StateStore::journal_limit`] lines per terminal (default
//! [`JOURNAL_LINES_PER_TERMINAL`]); beyond it the oldest are removed, and the count of removed
//! lines is returned to the caller, which logs it. Sequence numbers are never reused.
//!
//! **Stored form.** The records are the JSON written by earlier agents, unchanged
//! ([`PendingRecord`], [`PinKeyRecord`]: strings and plain numbers); they are converted to and
//! from the typed domain values here. A store written by a running agent therefore opens as it
//! is. A record whose values no longer parse (a STAN over six digits, a bad transmission time or
//! check value) is refused with [`StoreError::Corrupt`], naming the record, never guessed at.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use group_commit::GroupCommitter;
use keystore::{KeyLength, KeyName, KeyRef, KeyStore, KeyStoreError, KeyUsage, KeyVersion};
use protocols::iso8583::TransmissionDateTime;
use protocols::types::{Amount, Currency, Pan, Stan, TerminalId};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::domain::acceptance::AcceptanceRecord;
use crate::domain::pending::{Doubt, OperatorSettlement, PendingDispense, Purpose};
use crate::domain::pin::LoadedPinKey;
use crate::ports::{JournalAppend, StoreError, TerminalStore};

const BLOCK: u32 = 1000;

fn storage(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Storage(Box::new(e))
}

fn corrupt(key: &str, e: impl Into<crate::ports::Cause>) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        source: e.into(),
    }
}

/// A dispense in doubt as stored (the JSON of earlier agents, field for field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRecord {
    pub purpose: Purpose,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_ref: Option<String>,
    pub tsn: u16,
    pub stan: u32,
    pub transmitted_at: String,
    /// Written for readers of the raw store; the purpose decides it when read back.
    pub processing_code: String,
    pub amount_minor: u64,
    pub currency: u16,
    pub notes: Vec<u32>,
    pub since_ms: u64,
    /// Absent in records of earlier agents: awaiting the terminal.
    #[serde(default)]
    pub doubt: Doubt,
    /// The settlement advice's STAN and transmission time (absent in records of earlier agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice_stan: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice_transmitted_at: Option<String>,
    /// The transaction's acceptance context, no card data (absent in records of earlier agents).
    #[serde(default, skip_serializing_if = "AcceptanceRecord::is_empty")]
    pub acceptance: AcceptanceRecord,
}

impl From<&PendingDispense> for PendingRecord {
    fn from(p: &PendingDispense) -> Self {
        Self {
            purpose: p.purpose,
            card_ref: p.card_ref.clone(),
            tsn: p.tsn,
            stan: p.stan.value(),
            transmitted_at: p.transmitted_at.to_string(),
            processing_code: p.purpose.transaction().processing_code().to_string(),
            amount_minor: p.amount.minor,
            currency: p.amount.currency.numeric,
            notes: p.notes.clone(),
            since_ms: p.since_ms,
            doubt: p.doubt.clone(),
            advice_stan: p.advice_key.map(|(stan, _)| stan.value()),
            advice_transmitted_at: p.advice_key.map(|(_, at)| at.to_string()),
            acceptance: AcceptanceRecord::from(&p.acceptance),
        }
    }
}

impl PendingRecord {
    fn into_domain(self, key: &str) -> Result<PendingDispense, StoreError> {
        let transmitted_at =
            TransmissionDateTime::parse(&self.transmitted_at).ok_or_else(|| {
                corrupt(
                    key,
                    format!(
                        "transmission time {:?} is not MMDDhhmmss",
                        self.transmitted_at
                    ),
                )
            })?;
        let advice_key = match (self.advice_stan, &self.advice_transmitted_at) {
            (Some(stan), Some(at)) => Some((
                Stan::new(stan).map_err(|e| corrupt(key, e))?,
                TransmissionDateTime::parse(at).ok_or_else(|| {
                    corrupt(
                        key,
                        format!("advice transmission time {at:?} is not MMDDhhmmss"),
                    )
                })?,
            )),
            _ => None,
        };
        let acceptance = self
            .acceptance
            .to_acceptance()
            .map_err(|e| corrupt(key, e))?;
        Ok(PendingDispense {
            acceptance,
            advice_key,
            purpose: self.purpose,
            card_ref: self.card_ref,
            tsn: self.tsn,
            stan: Stan::new(self.stan).map_err(|e| corrupt(key, e))?,
            transmitted_at,
            amount: Amount::new(
                self.amount_minor,
                Currency {
                    numeric: self.currency,
                },
            ),
            notes: self.notes,
            since_ms: self.since_ms,
            doubt: self.doubt,
        })
    }
}

/// A technician's settlement as journaled: the record it settled and the technician's word.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperatorSettlementRecord {
    pub terminal: String,
    pub dispense: PendingRecord,
    pub settlement: OperatorSettlement,
}

/// The key of a record in doubt: `<terminal> <tsn>`, so one terminal's records sort together.
fn pending_key(terminal: &str, tsn: u16) -> String {
    format!("{terminal} {tsn:04}")
}

fn pending_prefix(terminal: &str) -> String {
    format!("{terminal} ")
}

/// Tree of the one-slot-per-terminal records of earlier agents.
const LEGACY_PENDING: &str = "pending_dispenses";
const PENDING: &str = "dispenses_in_doubt";
const OPERATOR_SETTLEMENTS: &str = "dispense_settlements";

/// Moves every slot of an earlier agent's `pending_dispenses` tree into a record of its own, each
/// move one transaction (a crash leaves a slot in exactly one tree). A slot that does not parse
/// stays where it is, logged, for an operator.
fn migrate_slots(legacy: &sled::Tree, records: &sled::Tree) -> Result<usize, StoreError> {
    use sled::Transactional;
    let mut moved = 0;
    for kv in legacy.iter() {
        let (key, value) = kv.map_err(storage)?;
        let terminal = String::from_utf8_lossy(&key).into_owned();
        let record: PendingRecord = match serde_json::from_slice(&value) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(%terminal, error = %e, "dispense in doubt of an earlier agent unreadable: left in pending_dispenses for an operator");
                continue;
            }
        };
        let new_key = pending_key(&terminal, record.tsn);
        (legacy, records)
            .transaction(|(legacy, records)| {
                legacy.remove(&key)?;
                records.insert(new_key.as_bytes(), value.clone())?;
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| StoreError::Storage(format!("{e:?}").into()))?;
        tracing::info!(%terminal, tsn = record.tsn, "dispense in doubt of an earlier agent kept as a record");
        moved += 1;
    }
    Ok(moved)
}

/// The PIN key a terminal holds, as stored (check value as 6 hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinKeyRecord {
    pub version: u32,
    pub kcv: String,
    pub loaded_at_ms: u64,
}

impl PinKeyRecord {
    fn into_domain(self, key: &str) -> Result<LoadedPinKey, StoreError> {
        Ok(LoadedPinKey {
            version: self.version,
            kcv: self.kcv.parse().map_err(|e| corrupt(key, e))?,
            loaded_at_ms: self.loaded_at_ms,
        })
    }
}

impl From<&LoadedPinKey> for PinKeyRecord {
    fn from(k: &LoadedPinKey) -> Self {
        Self {
            version: k.version,
            kcv: k.kcv.to_string(),
            loaded_at_ms: k.loaded_at_ms,
        }
    }
}

/// Name of the data protection key the card vault is sealed under, in the agent's key store.
pub const VAULT_KEY_NAME: &str = "dpk/card-vault";

/// The card vault's data protection key: the agent's key store and the version new entries are
/// sealed under (older versions still open the entries sealed under them).
#[derive(Clone)]
pub struct VaultKey {
    store: Arc<dyn KeyStore>,
    current: KeyRef,
}

impl VaultKey {
    /// The newest version of [`VAULT_KEY_NAME`] in `store`, generated (version 1) when the store
    /// has none: the key protects data this agent alone reads, so it never has to leave the
    /// host and no custodian enters it.
    pub fn open_or_generate(store: Arc<dyn KeyStore>) -> Result<Self, KeyStoreError> {
        let name = KeyName::new(VAULT_KEY_NAME)?;
        let info = match store.current(&name)? {
            Some(info) => info,
            None => {
                let info = store.generate(&name, KeyUsage::DataProtection, KeyLength::Bytes32)?;
                tracing::info!(key = %info.key_ref(), kcv = %info.kcv, "card vault: data protection key generated");
                info
            }
        };
        if info.usage != KeyUsage::DataProtection {
            return Err(KeyStoreError::WrongUsage {
                key: info.key_ref().to_string(),
                actual: info.usage,
                needed: KeyUsage::DataProtection,
            });
        }
        Ok(Self {
            current: info.key_ref(),
            store,
        })
    }

    fn seal(&self, reference: &str, pan: &Pan) -> Result<SealedCard, StoreError> {
        let sealed = self
            .store
            .seal_data(&self.current, pan.expose().as_bytes(), reference.as_bytes())
            .map_err(storage)?;
        Ok(SealedCard {
            key_version: self.current.version,
            sealed: hex::encode(sealed),
        })
    }

    fn open(&self, reference: &str, card: &SealedCard) -> Result<Pan, StoreError> {
        let key = KeyRef::new(self.current.name.clone(), card.key_version);
        let sealed = hex::decode(&card.sealed).map_err(|e| corrupt(reference, e))?;
        let clear = self
            .store
            .open_data(&key, &sealed, reference.as_bytes())
            .map_err(|e| corrupt(reference, e))?;
        let digits = std::str::from_utf8(&clear).map_err(|e| corrupt(reference, e))?;
        Pan::parse(digits).map_err(|e| corrupt(reference, e))
    }
}

/// A card vault entry as stored with a key store: the sealed card number (hex) and the version
/// of [`VAULT_KEY_NAME`] that sealed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedCard {
    pub key_version: KeyVersion,
    pub sealed: String,
}

/// A card vault value: sealed (a JSON object) or, as earlier agents and agents without a key
/// store wrote it, the card number's digits.
enum VaultValue {
    Sealed(SealedCard),
    Clear(Pan),
}

fn read_vault_value(reference: &str, bytes: &[u8]) -> Result<VaultValue, StoreError> {
    if bytes.first() == Some(&b'{') {
        return serde_json::from_slice(bytes)
            .map(VaultValue::Sealed)
            .map_err(|e| corrupt(reference, e));
    }
    let digits = std::str::from_utf8(bytes).map_err(|e| corrupt(reference, e))?;
    Pan::parse(digits)
        .map(VaultValue::Clear)
        .map_err(|e| corrupt(reference, e))
}

/// Seals every clear entry of the vault (written by an earlier agent), each replaced only if it
/// is still the value read. Returns how many were sealed.
fn seal_clear_cards(cards: &sled::Tree, vault: &VaultKey) -> Result<usize, StoreError> {
    let mut sealed = 0;
    for kv in cards.iter() {
        let (key, value) = kv.map_err(storage)?;
        let reference = String::from_utf8_lossy(&key).into_owned();
        let pan = match read_vault_value(&reference, &value) {
            Ok(VaultValue::Clear(pan)) => pan,
            Ok(VaultValue::Sealed(_)) => continue,
            Err(e) => {
                tracing::error!(error = %e, "card vault entry unreadable: left for an operator");
                continue;
            }
        };
        let record = serde_json::to_vec(&vault.seal(&reference, &pan)?).map_err(storage)?;
        cards
            .compare_and_swap(&key, Some(value), Some(record))
            .map_err(storage)?
            .map_err(|_| {
                StoreError::Storage(
                    format!("card vault entry {reference} changed while it was sealed").into(),
                )
            })?;
        sealed += 1;
    }
    Ok(sealed)
}

#[derive(Default)]
struct Counter {
    next: u32,
    ceiling: u32,
}

pub struct StateStore {
    counters: sled::Tree,
    pending: sled::Tree,
    operator_settlements: sled::Tree,
    cards: sled::Tree,
    /// None: no key store, the vault keeps card numbers in clear (a lab without `[keys]`).
    vault: Option<VaultKey>,
    pin_keys: sled::Tree,
    holds: sled::Tree,
    journal: sled::Tree,
    /// Lines kept per terminal in `journal`.
    journal_limit: u64,
    /// Serializes journal appends (the next sequence number and the trim).
    journal_lock: Mutex<()>,
    commits: GroupCommitter,
    live: Mutex<HashMap<String, Counter>>,
}

/// Journal lines kept per terminal unless configured otherwise (`storage.ej_lines_per_terminal`).
pub const JOURNAL_LINES_PER_TERMINAL: u64 = 200_000;

const JOURNAL: &str = "electronic_journal";

/// Where the end (last character number) of the terminal's last stored upload block is kept, in
/// the journal tree so that it is written in the same batch as the block's lines. A terminal id
/// has no `~` or space, so this never falls under a terminal's `<terminal> ` prefix.
fn journal_end_key(terminal: &str) -> String {
    format!("~block_end {terminal}")
}

fn journal_key(terminal: &str, seq: u64) -> String {
    format!("{terminal} {seq:020}")
}

/// The sequence number of a journal key (`<terminal> <seq>`).
fn journal_seq(key: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(key).ok()?;
    text.rsplit_once(' ')?.1.parse().ok()
}

#[derive(Serialize, Deserialize)]
struct JournalRecord {
    at_ms: u64,
    text: String,
}

impl StateStore {
    /// Opens the store without a vault key: card numbers are kept in clear (tests, a lab
    /// without `[keys]`).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_vault(path, None)
    }

    /// Opens the store; with `vault`, every card number is sealed under it, those an earlier
    /// agent kept in clear included (sealed here, before anything else reads the vault).
    pub fn open_with_vault(path: &Path, vault: Option<VaultKey>) -> Result<Self, StoreError> {
        let db = crate::queue::open_sled(path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            source: Box::new(e),
        })?;
        let counters = db.open_tree("counters").map_err(storage)?;
        let pending = db.open_tree(PENDING).map_err(storage)?;
        let legacy = db.open_tree(LEGACY_PENDING).map_err(storage)?;
        if migrate_slots(&legacy, &pending)? > 0 {
            db.flush().map_err(storage)?;
        }
        let operator_settlements = db.open_tree(OPERATOR_SETTLEMENTS).map_err(storage)?;
        let cards = db.open_tree("card_vault").map_err(storage)?;
        match &vault {
            Some(key) => {
                let sealed = seal_clear_cards(&cards, key)?;
                if sealed > 0 {
                    db.flush().map_err(storage)?;
                    tracing::warn!(target: "security", entries = sealed, "card vault: card numbers an earlier agent kept in clear are sealed now; sled's files may still hold the clear bytes until it rewrites them (docs/OPERATIONS.md, \"Card data at rest\")");
                }
            }
            None => {
                tracing::warn!(target: "security", "card vault in clear: without a key store ([keys]) offline deposits' card numbers are stored unencrypted; for a lab only");
            }
        }
        let pin_keys = db.open_tree("terminal_pin_keys").map_err(storage)?;
        let holds = db.open_tree("terminal_holds").map_err(storage)?;
        let journal = db.open_tree(JOURNAL).map_err(storage)?;
        let commits = GroupCommitter::start(db, path, "agent-state").map_err(storage)?;
        Ok(Self {
            counters,
            pending,
            operator_settlements,
            cards,
            vault,
            pin_keys,
            holds,
            journal,
            journal_limit: JOURNAL_LINES_PER_TERMINAL,
            journal_lock: Mutex::new(()),
            commits,
            live: Mutex::new(HashMap::new()),
        })
    }

    /// Keeps at most `lines` journal lines per terminal (at least 1).
    pub fn with_journal_limit(mut self, lines: u64) -> Self {
        self.journal_limit = lines.max(1);
        self
    }

    /// Lines kept per terminal in the electronic journal.
    pub fn journal_limit(&self) -> u64 {
        self.journal_limit
    }

    /// The first and last sequence numbers of the terminal's journal.
    fn journal_bounds(&self, terminal: &str) -> Result<Option<(u64, u64)>, StoreError> {
        let prefix = pending_prefix(terminal);
        let mut lines = self.journal.scan_prefix(prefix.as_bytes()).keys();
        let first = match lines.next() {
            Some(k) => k.map_err(storage)?,
            None => return Ok(None),
        };
        let last = match lines.next_back() {
            Some(k) => k.map_err(storage)?,
            None => first.clone(),
        };
        match (journal_seq(&first), journal_seq(&last)) {
            (Some(a), Some(b)) => Ok(Some((a, b))),
            _ => Err(corrupt(
                &String::from_utf8_lossy(&last),
                "journal key without a sequence number",
            )),
        }
    }

    /// The next value of counter `name` for `terminal`, in `1..=max`, wrapping.
    async fn next(&self, terminal: &str, name: &str, max: u32) -> Result<u32, StoreError> {
        let key = format!("{name}:{terminal}");
        let mut live = self.live.lock().await;
        if !live.contains_key(&key) {
            let ceiling = match self.counters.get(key.as_bytes()).map_err(storage)? {
                Some(v) => v.as_ref().try_into().map(u32::from_be_bytes).unwrap_or(0),
                None => 0,
            };
            live.insert(
                key.clone(),
                Counter {
                    next: ceiling,
                    ceiling,
                },
            );
        }
        let counter = live
            .get_mut(&key)
            .ok_or_else(|| StoreError::Storage("counter vanished".into()))?;
        counter.next = if counter.next >= max {
            1
        } else {
            counter.next + 1
        };
        if counter.next == 1 || counter.next > counter.ceiling {
            // Wrapped or past the reservation: reserve the next block, durably, before use.
            counter.ceiling = counter.next.saturating_add(BLOCK).min(max);
            self.counters
                .insert(key.as_bytes(), &counter.ceiling.to_be_bytes())
                .map_err(storage)?;
            self.commits.durable().await.map_err(storage)?;
        }
        Ok(counter.next)
    }
}

fn read_pending(key: &str, bytes: &[u8]) -> Result<PendingDispense, StoreError> {
    serde_json::from_slice::<PendingRecord>(bytes)
        .map_err(|e| corrupt(key, e))?
        .into_domain(key)
}

impl StateStore {
    /// Every technician's settlement journaled, oldest first per record.
    pub fn operator_settlements(&self) -> Vec<OperatorSettlementRecord> {
        self.operator_settlements
            .iter()
            .filter_map(|kv| kv.ok())
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect()
    }
}

impl TerminalStore for StateStore {
    async fn next_stan(&self, terminal: &TerminalId) -> Result<Stan, StoreError> {
        let v = self.next(terminal.as_str(), "stan", Stan::MAX).await?;
        Stan::new(v).map_err(|e| StoreError::Storage(Box::new(e)))
    }

    async fn next_tsn(&self, terminal: &TerminalId) -> Result<u16, StoreError> {
        // A TSN whose record is still in doubt is skipped (after a wrap), so a new transaction
        // never replaces it. Bounded: at most one turn per possible TSN.
        for _ in 0..9_999 {
            let tsn = self.next(terminal.as_str(), "tsn", 9_999).await? as u16;
            let key = pending_key(terminal.as_str(), tsn);
            if !self.pending.contains_key(key.as_bytes()).map_err(storage)? {
                return Ok(tsn);
            }
            tracing::warn!(%terminal, tsn, "TSN skipped: its dispense is still in doubt");
        }
        Err(StoreError::Storage(
            format!("terminal {terminal}: every TSN has a dispense in doubt").into(),
        ))
    }

    async fn put_pending(
        &self,
        terminal: &TerminalId,
        p: &PendingDispense,
    ) -> Result<(), StoreError> {
        let v = serde_json::to_vec(&PendingRecord::from(p)).map_err(storage)?;
        self.pending
            .insert(pending_key(terminal.as_str(), p.tsn).as_bytes(), v)
            .map_err(storage)?;
        self.commits.durable().await.map_err(storage)
    }

    fn pending(
        &self,
        terminal: &TerminalId,
        tsn: u16,
    ) -> Result<Option<PendingDispense>, StoreError> {
        let key = pending_key(terminal.as_str(), tsn);
        match self.pending.get(key.as_bytes()).map_err(storage)? {
            Some(v) => read_pending(&key, &v).map(Some),
            None => Ok(None),
        }
    }

    fn pending_of(&self, terminal: &TerminalId) -> Result<Vec<PendingDispense>, StoreError> {
        let mut out = Vec::new();
        for kv in self.pending.scan_prefix(pending_prefix(terminal.as_str())) {
            let (k, v) = kv.map_err(storage)?;
            out.push(read_pending(&String::from_utf8_lossy(&k), &v)?);
        }
        out.sort_by_key(|p| p.since_ms);
        Ok(out)
    }

    async fn clear_pending(&self, terminal: &TerminalId, tsn: u16) -> Result<(), StoreError> {
        self.pending
            .remove(pending_key(terminal.as_str(), tsn).as_bytes())
            .map_err(storage)?;
        self.commits.durable().await.map_err(storage)
    }

    fn all_pending(&self) -> Vec<(String, PendingDispense)> {
        self.pending
            .iter()
            .filter_map(|kv| kv.ok())
            .filter_map(|(k, v)| {
                let key = String::from_utf8_lossy(&k).into_owned();
                match read_pending(&key, &v) {
                    Ok(p) => Some((key.split(' ').next().unwrap_or_default().to_owned(), p)),
                    Err(e) => {
                        tracing::error!(error = %e, "dispense in doubt unreadable: needs an operator");
                        None
                    }
                }
            })
            .collect()
    }

    async fn log_operator_settlement(
        &self,
        terminal: &TerminalId,
        pending: &PendingDispense,
        settlement: &OperatorSettlement,
    ) -> Result<(), StoreError> {
        let record = OperatorSettlementRecord {
            terminal: terminal.as_str().to_owned(),
            dispense: PendingRecord::from(pending),
            settlement: settlement.clone(),
        };
        let key = format!(
            "{} {:020}",
            pending_key(terminal.as_str(), pending.tsn),
            settlement.at_ms
        );
        let v = serde_json::to_vec(&record).map_err(storage)?;
        self.operator_settlements
            .insert(key.as_bytes(), v)
            .map_err(storage)?;
        self.commits.durable().await.map_err(storage)
    }

    async fn put_card(&self, reference: &str, pan: &Pan) -> Result<(), StoreError> {
        let value = match &self.vault {
            Some(key) => serde_json::to_vec(&key.seal(reference, pan)?).map_err(storage)?,
            None => pan.expose().as_bytes().to_vec(),
        };
        self.cards
            .insert(reference.as_bytes(), value)
            .map_err(storage)?;
        self.commits.durable().await.map_err(storage)
    }

    fn card(&self, reference: &str) -> Result<Option<Pan>, StoreError> {
        let Some(v) = self.cards.get(reference.as_bytes()).map_err(storage)? else {
            return Ok(None);
        };
        match (read_vault_value(reference, &v)?, &self.vault) {
            (VaultValue::Clear(pan), _) => Ok(Some(pan)),
            (VaultValue::Sealed(card), Some(key)) => key.open(reference, &card).map(Some),
            (VaultValue::Sealed(_), None) => Err(corrupt(
                reference,
                "the card number is sealed and no key store is configured ([keys])",
            )),
        }
    }

    async fn remove_card(&self, reference: &str) -> Result<(), StoreError> {
        self.cards.remove(reference.as_bytes()).map_err(storage)?;
        self.commits.durable().await.map_err(storage)
    }

    async fn put_pin_key(
        &self,
        terminal: &TerminalId,
        key: &LoadedPinKey,
    ) -> Result<(), StoreError> {
        let v = serde_json::to_vec(&PinKeyRecord::from(key)).map_err(storage)?;
        self.pin_keys
            .insert(terminal.as_str().as_bytes(), v)
            .map_err(storage)?;
        self.commits.durable().await.map_err(storage)
    }

    async fn put_hold(
        &self,
        terminal: &TerminalId,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let key = terminal.as_str().as_bytes();
        match reason {
            Some(r) => self.holds.insert(key, r.as_bytes()).map(|_| ()),
            None => self.holds.remove(key).map(|_| ()),
        }
        .map_err(storage)?;
        self.commits.durable().await.map_err(storage)
    }

    async fn append_journal(
        &self,
        terminal: &TerminalId,
        at_ms: u64,
        block_end: Option<u32>,
        lines: &[String],
    ) -> Result<JournalAppend, StoreError> {
        let t = terminal.as_str();
        let _one_at_a_time = self.journal_lock.lock().await;
        let end_key = journal_end_key(t);
        let stored_end = self
            .journal
            .get(end_key.as_bytes())
            .map_err(storage)?
            .and_then(|v| v.as_ref().try_into().ok().map(u32::from_be_bytes));
        if block_end.is_some() && block_end == stored_end {
            // The terminal sent the block again (our acknowledgement did not reach it).
            return Ok(JournalAppend::AlreadyStored);
        }
        let (first, last) = self.journal_bounds(t)?.unwrap_or((1, 0));
        let mut batch = sled::Batch::default();
        if let Some(end) = block_end {
            batch.insert(end_key.as_bytes(), &end.to_be_bytes());
        }
        let mut seq = last;
        for text in lines {
            seq += 1;
            let record = JournalRecord {
                at_ms,
                text: text.clone(),
            };
            let value = serde_json::to_vec(&record).map_err(storage)?;
            batch.insert(journal_key(t, seq).as_bytes(), value);
        }
        // Bounded: the oldest lines beyond the limit go, in the same batch.
        let kept_from = (seq + 1).saturating_sub(self.journal_limit).max(first);
        for old in first..kept_from {
            batch.remove(journal_key(t, old).as_bytes());
        }
        self.journal.apply_batch(batch).map_err(storage)?;
        self.commits.durable().await.map_err(storage)?;
        Ok(JournalAppend::Stored {
            removed: kept_from - first,
        })
    }

    fn journal(
        &self,
        terminal: &str,
        last: usize,
    ) -> Result<Vec<crate::domain::journal::JournalLine>, StoreError> {
        let prefix = pending_prefix(terminal);
        let mut lines = Vec::new();
        for kv in self.journal.scan_prefix(prefix.as_bytes()).rev().take(last) {
            let (k, v) = kv.map_err(storage)?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let seq = journal_seq(&k).ok_or_else(|| corrupt(&key, "no sequence number"))?;
            let r: JournalRecord = serde_json::from_slice(&v).map_err(|e| corrupt(&key, e))?;
            lines.push(crate::domain::journal::JournalLine {
                seq,
                at_ms: r.at_ms,
                text: r.text,
            });
        }
        lines.reverse();
        Ok(lines)
    }

    fn holds(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.holds
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(storage)?;
                Ok((
                    String::from_utf8_lossy(&k).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                ))
            })
            .collect()
    }

    fn pin_key(&self, terminal: &TerminalId) -> Result<Option<LoadedPinKey>, StoreError> {
        let key = terminal.as_str();
        match self.pin_keys.get(key.as_bytes()).map_err(storage)? {
            Some(v) => serde_json::from_slice::<PinKeyRecord>(&v)
                .map_err(|e| corrupt(key, e))?
                .into_domain(key)
                .map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::evidence::{bytes_under, holds};

    fn tid(s: &str) -> TerminalId {
        TerminalId::parse(s).unwrap()
    }

    #[tokio::test]
    async fn stans_are_never_reused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let first: Vec<u32> = {
            let s = StateStore::open(dir.path()).unwrap();
            let mut v = Vec::new();
            for _ in 0..5 {
                v.push(s.next_stan(&tid("ATM1")).await.unwrap().value());
            }
            v
        };
        assert_eq!(first, vec![1, 2, 3, 4, 5]);
        let s = StateStore::open(dir.path()).unwrap();
        let after = s.next_stan(&tid("ATM1")).await.unwrap().value();
        assert!(after > 5, "restart skips the reserved block, got {after}");
        assert_eq!(
            s.next_stan(&tid("ATM2")).await.unwrap().value(),
            1,
            "counters are per terminal"
        );
    }

    #[tokio::test]
    async fn tsn_wraps_at_9999() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        s.live.lock().await.insert(
            "tsn:T".into(),
            Counter {
                next: 9_998,
                ceiling: 9_999,
            },
        );
        assert_eq!(s.next_tsn(&tid("T")).await.unwrap(), 9_999);
        assert_eq!(s.next_tsn(&tid("T")).await.unwrap(), 1);
    }

    fn withdrawal(tsn: u16, stan: u32) -> PendingDispense {
        PendingDispense {
            purpose: Purpose::Withdrawal,
            card_ref: None,
            tsn,
            stan: Stan::new(stan).unwrap(),
            transmitted_at: TransmissionDateTime::parse("1125114000").unwrap(),
            amount: Amount::new(5000, Currency::EUR),
            notes: vec![0, 0, 1, 0],
            since_ms: u64::from(tsn),
            doubt: Doubt::Awaiting,
            advice_key: Some((
                Stan::new(stan + 1).unwrap(),
                TransmissionDateTime::parse("1125114001").unwrap(),
            )),
            acceptance: crate::domain::acceptance::Acceptors::new(Some("42".into())).context(
                &tid("ATM1"),
                Stan::new(stan).unwrap(),
                1_795_606_836,
            ),
        }
    }

    #[tokio::test]
    async fn pending_dispense_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = withdrawal(7, 12);
        {
            let s = StateStore::open(dir.path()).unwrap();
            s.put_pending(&tid("ATM1"), &p).await.unwrap();
        }
        let s = StateStore::open(dir.path()).unwrap();
        assert_eq!(s.pending(&tid("ATM1"), 7).unwrap(), Some(p));
        assert_eq!(s.all_pending().len(), 1);
        assert_eq!(s.all_pending()[0].0, "ATM1");
        s.clear_pending(&tid("ATM1"), 7).await.unwrap();
        assert_eq!(s.pending(&tid("ATM1"), 7).unwrap(), None);
    }

    #[tokio::test]
    async fn each_transaction_keeps_its_own_record_and_a_held_tsn_is_never_handed_out_again() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        let atm = tid("ATM1");
        let first = s.next_tsn(&atm).await.unwrap();
        let mut in_doubt = withdrawal(first, 1);
        in_doubt.doubt = Doubt::Uncounted {
            report: "E3".into(),
        };
        s.put_pending(&atm, &in_doubt).await.unwrap();
        let second = s.next_tsn(&atm).await.unwrap();
        s.put_pending(&atm, &withdrawal(second, 2)).await.unwrap();
        assert_eq!(
            s.pending_of(&atm).unwrap().len(),
            2,
            "the next customer replaced nothing"
        );
        assert_eq!(s.pending(&atm, first).unwrap(), Some(in_doubt));
        s.put_pending(&tid("ATM2"), &withdrawal(first, 1))
            .await
            .unwrap();
        assert_eq!(s.pending_of(&atm).unwrap().len(), 2, "per terminal");

        // TSNs wrap at 9999: the one still held is skipped.
        s.live.lock().await.insert(
            "tsn:ATM1".into(),
            Counter {
                next: 9_999,
                ceiling: 9_999,
            },
        );
        assert_eq!(first, 1);
        assert_eq!(s.next_tsn(&atm).await.unwrap(), 3, "1 and 2 are held");
    }

    /// A store written by an agent that kept one slot per terminal, byte for byte: the slot
    /// becomes one record.
    #[tokio::test]
    async fn a_store_written_by_an_earlier_agent_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let pending = db.open_tree("pending_dispenses").unwrap();
            pending
                .insert(
                    "ATM1",
                    &br#"{"purpose":"StoredDeposit","card_ref":"ATM1:000004","tsn":3,"stan":4,"transmitted_at":"1125114000","processing_code":"210010","amount_minor":2500,"currency":978,"notes":[],"since_ms":9}"#[..],
                )
                .unwrap();
            let keys = db.open_tree("terminal_pin_keys").unwrap();
            keys.insert(
                "ATM1",
                &br#"{"version":2,"kcv":"0A1B2C","loaded_at_ms":5}"#[..],
            )
            .unwrap();
            db.flush().unwrap();
        }
        let s = StateStore::open(dir.path()).unwrap();
        let p = s.pending(&tid("ATM1"), 3).unwrap().unwrap();
        assert_eq!(p.purpose, Purpose::StoredDeposit);
        assert_eq!(p.stan.value(), 4);
        assert_eq!(p.transmitted_at.to_string(), "1125114000");
        assert_eq!(p.amount, Amount::new(2500, Currency::EUR));
        assert_eq!(p.card_ref.as_deref(), Some("ATM1:000004"));
        assert_eq!(p.doubt, Doubt::Awaiting);
        assert_eq!(s.all_pending().len(), 1);
        let k = s.pin_key(&tid("ATM1")).unwrap().unwrap();
        assert_eq!((k.version, k.kcv.to_string()), (2, "0A1B2C".to_owned()));
        // Written back, the record has the same shape.
        let again = serde_json::to_value(PendingRecord::from(&p)).unwrap();
        assert_eq!(again["processing_code"], "210010");
        assert_eq!(again["transmitted_at"], "1125114000");
        // The TSN of the migrated record is not handed out to the next customer.
        s.live.lock().await.insert(
            "tsn:ATM1".into(),
            Counter {
                next: 2,
                ceiling: 9_999,
            },
        );
        assert_eq!(s.next_tsn(&tid("ATM1")).await.unwrap(), 4);
        drop(s);
        let s = StateStore::open(dir.path()).unwrap();
        assert_eq!(s.all_pending().len(), 1, "migrated once, not twice");
    }

    #[tokio::test]
    async fn an_unreadable_record_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let pending = db.open_tree("pending_dispenses").unwrap();
            pending
                .insert(
                    "ATM1",
                    &br#"{"purpose":"Withdrawal","tsn":3,"stan":4,"transmitted_at":"1399114000","processing_code":"011000","amount_minor":2500,"currency":978,"notes":[],"since_ms":9}"#[..],
                )
                .unwrap();
            db.flush().unwrap();
        }
        let s = StateStore::open(dir.path()).unwrap();
        let e = s.pending(&tid("ATM1"), 3).unwrap_err();
        assert!(
            matches!(&e, StoreError::Corrupt { key, .. } if key == "ATM1 0003"),
            "{e}"
        );
    }

    const PAN: &str = "4761739001010010";

    fn vault_key(dir: &Path) -> VaultKey {
        let (kek, _) = keystore::Kek::generate().unwrap();
        let store = keystore::SoftwareKeyStore::open(&dir.join("keys.json"), kek).unwrap();
        VaultKey::open_or_generate(Arc::new(store)).unwrap()
    }

    #[tokio::test]
    async fn the_vault_seals_card_numbers_and_opens_them_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let key = vault_key(dir.path());
        let state = dir.path().join("state");
        {
            let s = StateStore::open_with_vault(&state, Some(key.clone())).unwrap();
            s.put_card("ATM1:000004", &Pan::parse(PAN).unwrap())
                .await
                .unwrap();
        }
        assert!(
            !holds(&bytes_under(&state), PAN),
            "the card number is on disk in clear"
        );
        let s = StateStore::open_with_vault(&state, Some(key)).unwrap();
        assert_eq!(s.card("ATM1:000004").unwrap().unwrap().expose(), PAN);
    }

    #[tokio::test]
    async fn a_sealed_card_copied_under_another_reference_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open_with_vault(&dir.path().join("state"), Some(vault_key(dir.path())))
            .unwrap();
        s.put_card("ATM1:000004", &Pan::parse(PAN).unwrap())
            .await
            .unwrap();
        let sealed = s.cards.get("ATM1:000004").unwrap().unwrap();
        s.cards.insert("ATM1:000005", sealed).unwrap();
        let e = s.card("ATM1:000005").unwrap_err();
        assert!(
            matches!(&e, StoreError::Corrupt { key, .. } if key == "ATM1:000005"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn card_numbers_an_earlier_agent_kept_in_clear_are_sealed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        {
            let db = sled::open(&state).unwrap();
            let cards = db.open_tree("card_vault").unwrap();
            cards.insert("ATM1:000004", PAN.as_bytes()).unwrap();
            db.flush().unwrap();
        }
        let s = StateStore::open_with_vault(&state, Some(vault_key(dir.path()))).unwrap();
        let value = s.cards.get("ATM1:000004").unwrap().unwrap();
        assert!(!holds(&value, PAN), "the entry is sealed in place");
        assert!(matches!(
            read_vault_value("ATM1:000004", &value).unwrap(),
            VaultValue::Sealed(SealedCard { key_version: 1, .. })
        ));
        assert_eq!(s.card("ATM1:000004").unwrap().unwrap().expose(), PAN);
    }

    #[tokio::test]
    async fn a_hold_survives_a_reopen_until_released() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = StateStore::open(dir.path()).unwrap();
            s.put_hold(&tid("ATM1"), Some("5 PIN blocks that did not decode"))
                .await
                .unwrap();
        }
        let s = StateStore::open(dir.path()).unwrap();
        assert_eq!(
            s.holds().unwrap(),
            vec![(
                "ATM1".to_owned(),
                "5 PIN blocks that did not decode".to_owned()
            )]
        );
        s.put_hold(&tid("ATM1"), None).await.unwrap();
        assert!(s.holds().unwrap().is_empty());
    }

    #[tokio::test]
    async fn journal_lines_survive_a_restart_in_order_per_terminal_and_the_oldest_go_beyond_the_limit(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let lines = |r: std::ops::Range<u32>| r.map(|i| format!("LINE {i}")).collect::<Vec<_>>();
        {
            let s = StateStore::open(dir.path()).unwrap().with_journal_limit(5);
            let stored = JournalAppend::Stored { removed: 0 };
            let (atm1, atm11) = (tid("ATM1"), tid("ATM11"));
            let first = lines(1..4);
            assert_eq!(
                s.append_journal(&atm1, 10, Some(30), &first).await.unwrap(),
                stored
            );
            let other = lines(1..2);
            assert_eq!(
                s.append_journal(&atm11, 11, Some(30), &other)
                    .await
                    .unwrap(),
                stored
            );
        }
        let s = StateStore::open(dir.path()).unwrap().with_journal_limit(5);
        let got = s.journal("ATM1", 10).unwrap();
        assert_eq!(got.len(), 3, "ATM11's line is not ATM1's: {got:?}");
        assert_eq!(
            (got[0].seq, got[0].at_ms, got[0].text.as_str()),
            (1, 10, "LINE 1")
        );
        // The same block again (its acknowledgement was lost): not stored twice.
        let atm1 = tid("ATM1");
        let (first, more) = (lines(1..4), lines(4..8));
        let again = s.append_journal(&atm1, 12, Some(30), &first).await.unwrap();
        assert_eq!(again, JournalAppend::AlreadyStored);
        assert_eq!(
            s.append_journal(&atm1, 20, Some(70), &more).await.unwrap(),
            JournalAppend::Stored { removed: 2 },
            "seven lines, five kept"
        );
        let got = s.journal("ATM1", 100).unwrap();
        let seqs: Vec<u64> = got.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, [3, 4, 5, 6, 7]);
        assert_eq!(got[4].text, "LINE 7");
        let last_two: Vec<u64> = s
            .journal("ATM1", 2)
            .unwrap()
            .iter()
            .map(|l| l.seq)
            .collect();
        assert_eq!(last_two, [6, 7]);
        assert_eq!(s.journal("ATM11", 100).unwrap().len(), 1);
        assert!(s.journal("ATM2", 100).unwrap().is_empty());
    }
}
