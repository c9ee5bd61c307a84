//! # firmware-profiles — what differs between ATM models, as data
//!
//! One TOML file per ATM model and firmware (in `profiles/`): the NDC dialect, the framing, the
//! cassettes and their denominations, the operation codes its state tables send for each
//! transaction, the screens and next states the host answers with, and the customization data
//! (screens, states, FITs, options, configuration id) the agent downloads into it. The agent
//! and the ATM simulator both read these files, so they agree by construction.
//!
//! A file names its dialect by name (`basic`, `ncr_advance`: see `protocols::ndc::Dialect`).
//! Built-in profiles are embedded; `Profile::load` reads any other file, with errors that name
//! the file, the key and the reason.
#![forbid(unsafe_code)]

use std::path::Path;

use protocols::framing::LengthPrefix;
use protocols::ndc::{Dialect, TvnMode};
use protocols::types::Currency;
use serde::Deserialize;

const BUILTIN: &[(&str, &str)] = &[
    (
        "ncr-selfserv-basic",
        include_str!("../profiles/ncr-selfserv-basic.toml"),
    ),
    (
        "ncr-advance-ndc",
        include_str!("../profiles/ncr-advance-ndc.toml"),
    ),
    (
        "ncr-advance-ndc-mac",
        include_str!("../profiles/ncr-advance-ndc-mac.toml"),
    ),
    (
        "diebold-opteva-ndc",
        include_str!("../profiles/diebold-opteva-ndc.toml"),
    ),
];

#[derive(Debug, thiserror::Error)]
#[error("firmware profile {origin}: {reason}")]
pub struct ProfileError {
    pub origin: String,
    pub reason: String,
}

/// Kinds of customer transaction a profile maps operation codes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionKind {
    Withdrawal,
    Deposit,
    BalanceInquiry,
}

#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub vendor: String,
    pub model: String,
    pub dialect: Dialect,
    pub framing: Framing,
    pub currency: Currency,
    pub cassettes: Vec<Cassette>,
    pub operation_codes: OperationCodes,
    pub screens: ReplyScreens,
    pub next_states: NextStates,
    pub timers: Timers,
    pub customization: Customization,
    /// Which messages carry an NDC MAC; all off unless the file has a `[mac]` table.
    pub mac: MacSelection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: String,
    vendor: String,
    model: String,
    /// A dialect name known to `protocols::ndc::Dialect::by_name`.
    dialect: String,
    framing: Framing,
    /// ISO 4217 numeric code of the notes in the cassettes.
    currency: u16,
    cassettes: Vec<Cassette>,
    operation_codes: OperationCodes,
    screens: ReplyScreens,
    next_states: NextStates,
    #[serde(default)]
    timers: Timers,
    customization: Customization,
    #[serde(default)]
    mac: MacSelection,
}

/// NDC MAC mode: which messages carry a MAC (ANSI X9.19 retail MAC under the terminal MAC key
/// the agent loads with the key change `45`, 8 hex digits as the last field; the bytes covered
/// are `protocols::ndc::mac`'s). A message whose flag is on must carry a valid MAC: the agent
/// refuses a transaction request without one, the terminal rejects such a reply (reason `1`).
/// Needs a dialect with `mac` (and, for the terminal's messages, a TVN slot: the reply echoes the
/// request's TVN, which is what keeps an old reply from being replayed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MacSelection {
    /// `11` from the terminal, with a fresh TVN.
    #[serde(default)]
    pub transaction_request: bool,
    /// `4` from the host, echoing the request's TVN.
    #[serde(default)]
    pub transaction_reply: bool,
    /// `22` from the terminal; the agent checks the one that reports the outcome of a
    /// transaction reply (what the terminal says it dispensed settles money).
    #[serde(default)]
    pub solicited_status: bool,
}

impl MacSelection {
    /// Whether any message is MACed (the terminal then needs a MAC key).
    pub fn enabled(&self) -> bool {
        self.transaction_request || self.transaction_reply || self.solicited_status
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Framing {
    #[serde(default)]
    pub length_prefix: LengthPrefix,
    /// Bytes of fixed header (TPDU) after the length; 0 for none.
    #[serde(default)]
    pub header_len: usize,
    #[serde(default = "default_max_frame")]
    pub max_frame_bytes: usize,
}

fn default_max_frame() -> usize {
    16 * 1024
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Cassette {
    /// NDC cassette type, 1-based: its position in the notes fields.
    pub cassette_type: u8,
    /// Value of one note in minor units.
    pub denomination_minor: u64,
    /// Notes left at which the cassette counts as low.
    #[serde(default = "default_low")]
    pub low_threshold: u32,
}

fn default_low() -> u32 {
    50
}

/// The 8-character operation code buffer the terminal's states produce for each transaction.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationCodes {
    pub withdrawal: String,
    pub deposit: String,
    pub balance_inquiry: String,
}

impl OperationCodes {
    pub fn kind_of(&self, opcode: &str) -> Option<TransactionKind> {
        if opcode == self.withdrawal {
            Some(TransactionKind::Withdrawal)
        } else if opcode == self.deposit {
            Some(TransactionKind::Deposit)
        } else if opcode == self.balance_inquiry {
            Some(TransactionKind::BalanceInquiry)
        } else {
            None
        }
    }
    pub fn for_kind(&self, kind: TransactionKind) -> &str {
        match kind {
            TransactionKind::Withdrawal => &self.withdrawal,
            TransactionKind::Deposit => &self.deposit,
            TransactionKind::BalanceInquiry => &self.balance_inquiry,
        }
    }
}

/// Screen numbers the host shows in its transaction replies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyScreens {
    pub dispense: String,
    pub deposit: String,
    pub balance: String,
    pub declined: String,
    pub insufficient_funds: String,
    /// Incorrect PIN, the customer may try again (the agent shows it for ISO response 55).
    pub wrong_pin: String,
    /// PIN tries exceeded, card blocked (the agent shows it for ISO response 75). Profiles
    /// written before it existed get [`DEFAULT_PIN_TRIES_EXCEEDED_SCREEN`].
    #[serde(default = "default_pin_tries_exceeded")]
    pub pin_tries_exceeded: String,
    pub host_unavailable: String,
    pub cannot_dispense_amount: String,
}

impl ReplyScreens {
    /// Every reply screen number.
    pub fn all(&self) -> [&String; 9] {
        [
            &self.dispense,
            &self.deposit,
            &self.balance,
            &self.declined,
            &self.insufficient_funds,
            &self.wrong_pin,
            &self.pin_tries_exceeded,
            &self.host_unavailable,
            &self.cannot_dispense_amount,
        ]
    }
}

/// The `pin_tries_exceeded` screen of a profile that does not name one.
pub const DEFAULT_PIN_TRIES_EXCEEDED_SCREEN: &str = "079";

fn default_pin_tries_exceeded() -> String {
    DEFAULT_PIN_TRIES_EXCEEDED_SCREEN.to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextStates {
    pub approved: String,
    pub declined: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timers {
    /// How long the agent may take to answer a transaction request before the terminal gives up.
    #[serde(default = "default_reply_ms")]
    pub host_reply_ms: u64,
    /// How long the agent waits for the solicited status after a transaction reply.
    #[serde(default = "default_status_ms")]
    pub status_after_reply_ms: u64,
    /// How long the agent waits for each customization message to be acknowledged.
    #[serde(default = "default_ack_ms")]
    pub command_ack_ms: u64,
}

fn default_reply_ms() -> u64 {
    20_000
}
fn default_status_ms() -> u64 {
    90_000
}
fn default_ack_ms() -> u64 {
    10_000
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            host_reply_ms: default_reply_ms(),
            status_after_reply_ms: default_status_ms(),
            command_ack_ms: default_ack_ms(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScreenDef {
    pub number: String,
    pub data: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionDef {
    pub number: u8,
    pub value: u16,
}

/// What the agent downloads when the terminal reports another configuration id.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customization {
    /// 4 digits; the terminal reports it at power-up (`12 … B<config id>`).
    pub config_id: String,
    #[serde(default)]
    pub screens: Vec<ScreenDef>,
    /// 28-character state records (number 3, type 1, 8 entries of 3).
    #[serde(default)]
    pub states: Vec<String>,
    /// FIT records as sent (3-digit decimals).
    #[serde(default)]
    pub fits: Vec<String>,
    #[serde(default)]
    pub options: Vec<OptionDef>,
    #[serde(default)]
    pub timers: Vec<OptionDef>,
    /// The customization messages this terminal takes, in the order they are sent, and which of
    /// them it may refuse without the load failing. Default [`LoadStep::default_order`].
    #[serde(default = "LoadStep::default_order")]
    pub load: Vec<LoadStep>,
}

/// One customization message a profile carries (`[customization] load`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomizationMessage {
    /// Data command `11`: `customization.screens`.
    Screens,
    /// Data command `12`: `customization.states`.
    States,
    /// Data command `15`: `customization.fits`.
    Fits,
    /// Data command `1A`: `customization.options` and `customization.timers`.
    EnhancedConfig,
    /// Data command `16`: `customization.config_id`. Last and required, so that a terminal whose
    /// load was interrupted still reports its old id and is loaded again.
    ConfigId,
}

impl CustomizationMessage {
    /// The name a profile's `load` list uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::Screens => "screens",
            Self::States => "states",
            Self::Fits => "fits",
            Self::EnhancedConfig => "enhanced_config",
            Self::ConfigId => "config_id",
        }
    }
}

impl std::fmt::Display for CustomizationMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An entry of `[customization] load`: `{ message = "screens" }` or
/// `{ message = "enhanced_config", optional = true }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadStep {
    pub message: CustomizationMessage,
    /// A terminal's rejection of an optional message is logged and the load goes on; a rejected
    /// required message stops the load and leaves the terminal out of service. Default false.
    #[serde(default)]
    pub optional: bool,
}

impl LoadStep {
    /// The order the agent used before profiles named one: enhanced configuration (optional),
    /// screens, states, FITs, configuration id.
    pub fn default_order() -> Vec<LoadStep> {
        use CustomizationMessage as M;
        [
            (M::EnhancedConfig, true),
            (M::Screens, false),
            (M::States, false),
            (M::Fits, false),
            (M::ConfigId, false),
        ]
        .into_iter()
        .map(|(message, optional)| LoadStep { message, optional })
        .collect()
    }
}

impl Customization {
    /// Whether the profile has data for `message` (a message without data is never sent).
    pub fn has_data(&self, message: CustomizationMessage) -> bool {
        match message {
            CustomizationMessage::Screens => !self.screens.is_empty(),
            CustomizationMessage::States => !self.states.is_empty(),
            CustomizationMessage::Fits => !self.fits.is_empty(),
            CustomizationMessage::EnhancedConfig => {
                !self.options.is_empty() || !self.timers.is_empty()
            }
            CustomizationMessage::ConfigId => !self.config_id.is_empty(),
        }
    }

    fn validate_load(&self) -> Result<(), String> {
        let mut seen = Vec::new();
        for step in &self.load {
            if seen.contains(&step.message) {
                return Err(format!(
                    "customization.load: {} appears twice",
                    step.message
                ));
            }
            seen.push(step.message);
        }
        match self.load.last() {
            Some(LoadStep {
                message: CustomizationMessage::ConfigId,
                optional: false,
            }) => {}
            _ => {
                return Err("customization.load: must end with { message = \"config_id\" } (required): a terminal whose load was cut short then still reports its old id and is loaded again".into())
            }
        }
        for m in [
            CustomizationMessage::Screens,
            CustomizationMessage::States,
            CustomizationMessage::Fits,
            CustomizationMessage::EnhancedConfig,
        ] {
            if self.has_data(m) && !seen.contains(&m) {
                return Err(format!(
                    "customization.load: the profile has {m} data but load does not list {{ message = \"{m}\" }}, so it would never be sent"
                ));
            }
        }
        Ok(())
    }
}

impl Profile {
    /// A built-in profile by name.
    pub fn builtin(name: &str) -> Option<Profile> {
        let (_, text) = BUILTIN.iter().find(|(n, _)| *n == name)?;
        // Built-in files are checked by this crate's tests; a broken one is a build defect.
        Self::from_toml_str(text, name).ok()
    }

    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|(n, _)| *n)
    }

    /// A built-in profile name, or a path to a TOML file.
    pub fn resolve(name_or_path: &str) -> Result<Profile, ProfileError> {
        match Self::builtin(name_or_path) {
            Some(p) => Ok(p),
            None => Self::load(Path::new(name_or_path)),
        }
    }

    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ProfileError {
            origin: origin.clone(),
            reason: format!("cannot read: {e}"),
        })?;
        Self::from_toml_str(&text, &origin)
    }

    pub fn from_toml_str(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let err = |reason: String| ProfileError {
            origin: origin.to_owned(),
            reason,
        };
        let f: ProfileFile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let dialect = Dialect::by_name(&f.dialect).ok_or_else(|| {
            err(format!(
                "dialect {:?} is not known (basic, ncr_advance)",
                f.dialect
            ))
        })?;
        let currency = Currency::parse(&format!("{:03}", f.currency))
            .map_err(|e| err(format!("currency: {e}")))?;
        let profile = Profile {
            name: f.name,
            vendor: f.vendor,
            model: f.model,
            dialect,
            framing: f.framing,
            currency,
            cassettes: f.cassettes,
            operation_codes: f.operation_codes,
            screens: f.screens,
            next_states: f.next_states,
            timers: f.timers,
            customization: f.customization,
            mac: f.mac,
        };
        profile.validate().map_err(err)?;
        Ok(profile)
    }

    fn validate(&self) -> Result<(), String> {
        let max_types = self.dialect.cassette_types;
        if self.cassettes.is_empty() {
            return Err("cassettes: at least one cassette is needed".into());
        }
        for c in &self.cassettes {
            if c.cassette_type == 0 || usize::from(c.cassette_type) > max_types {
                return Err(format!(
                    "cassettes: cassette_type {} is outside 1..={max_types} for this dialect",
                    c.cassette_type
                ));
            }
            if c.denomination_minor == 0 {
                return Err(format!(
                    "cassettes: cassette_type {} has a zero denomination",
                    c.cassette_type
                ));
            }
        }
        let mut types: Vec<u8> = self.cassettes.iter().map(|c| c.cassette_type).collect();
        types.sort_unstable();
        types.dedup();
        if types.len() != self.cassettes.len() {
            return Err("cassettes: a cassette_type appears twice".into());
        }
        for (key, code) in [
            ("withdrawal", &self.operation_codes.withdrawal),
            ("deposit", &self.operation_codes.deposit),
            ("balance_inquiry", &self.operation_codes.balance_inquiry),
        ] {
            if code.len() != 8 {
                return Err(format!(
                    "operation_codes.{key} must be exactly 8 characters, got {:?}",
                    code
                ));
            }
        }
        let c = &self.customization;
        if c.config_id.len() != 4 || !c.config_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "customization.config_id must be 4 digits, got {:?}",
                c.config_id
            ));
        }
        if let Some(s) = c.states.iter().find(|s| s.len() != 28 || !s.is_ascii()) {
            return Err(format!(
                "customization.states: {s:?} is not a 28-character state record"
            ));
        }
        c.validate_load()?;
        if !(64..=65535).contains(&self.framing.max_frame_bytes) {
            return Err("framing.max_frame_bytes must be between 64 and 65535".into());
        }
        self.validate_mac()
    }

    fn validate_mac(&self) -> Result<(), String> {
        let m = &self.mac;
        if m.enabled() && !self.dialect.mac {
            return Err(format!(
                "mac: the dialect {:?} has no MAC field; MAC mode needs one (ncr_advance)",
                self.dialect_name()
            ));
        }
        if (m.transaction_request || m.solicited_status) && self.dialect.tvn != TvnMode::Hex8 {
            return Err("mac: a MACed 11 or 22 carries a TVN; the dialect needs tvn = hex8".into());
        }
        if m.transaction_reply && !m.transaction_request {
            // The reply's MAC covers the TVN it echoes; without a MACed request there is no TVN
            // to echo, and a recorded reply could be played again.
            return Err(
                "mac.transaction_reply needs mac.transaction_request (the reply echoes its TVN)"
                    .into(),
            );
        }
        Ok(())
    }

    fn dialect_name(&self) -> &'static str {
        Dialect::NAMES
            .iter()
            .copied()
            .find(|n| Dialect::by_name(n).as_ref() == Some(&self.dialect))
            .unwrap_or("custom")
    }

    /// The denomination of a cassette type, if the profile has it.
    pub fn denomination(&self, cassette_type: u8) -> Option<u64> {
        self.cassettes
            .iter()
            .find(|c| c.cassette_type == cassette_type)
            .map(|c| c.denomination_minor)
    }
}

/// Which entries (1-based, 1..=8) of a state of this type are next states and which are screens,
/// for the state types a customer flow uses (README "Writing a profile's flow"). `None` for a
/// type this table does not describe.
fn state_links(state_type: char) -> Option<(&'static [usize], &'static [usize])> {
    Some(match state_type {
        'A' => (&[2, 8], &[1, 3]),
        'B' => (&[2, 3, 4, 5, 7], &[1]),
        'D' => (&[1], &[]),
        'E' | 'F' => (&[2, 3, 4, 5, 6, 7], &[1]),
        'I' => (&[2], &[1]),
        'J' => (&[], &[1, 3, 4]),
        'K' | 'W' => (&[1, 2, 3, 4, 5, 6, 7, 8], &[]),
        'X' | 'Y' => (&[2, 3, 4, 5], &[1]),
        'Z' => (&[], &[]),
        _ => return None,
    })
}

impl Profile {
    /// What keeps the state table from leading a customer from card read to close: a missing
    /// start state `000`, a next state or a screen that is not in the profile, a reply next state
    /// that is not a close (`J`) state, a state type the flow check does not know. Empty for a
    /// complete flow (every built-in profile; the loader does not insist, so a profile that only
    /// carries part of a table still loads).
    pub fn flow_problems(&self) -> Vec<String> {
        let c = &self.customization;
        let mut problems = Vec::new();
        let state = |n: &str| c.states.iter().find(|s| s.get(0..3) == Some(n));
        let screen = |n: &str| c.screens.iter().any(|s| s.number == n);
        if state("000").is_none() {
            problems.push("no state 000 (where a customer starts)".to_owned());
        }
        for s in &c.states {
            let (number, kind) = (&s[0..3], s[3..4].chars().next().unwrap_or(' '));
            let entry = |i: usize| &s[1 + 3 * i..4 + 3 * i];
            let Some((nexts, screens)) = state_links(kind) else {
                problems.push(format!("state {number}: type {kind:?} is not checked"));
                continue;
            };
            for &i in nexts {
                let n = entry(i);
                if n != "255" && !(kind == 'J' && n == "000") && state(n).is_none() {
                    problems.push(format!(
                        "state {number}: entry {i} leads to missing state {n}"
                    ));
                }
            }
            for &i in screens {
                let n = entry(i);
                if n != "000" && !screen(n) {
                    problems.push(format!(
                        "state {number}: entry {i} shows missing screen {n}"
                    ));
                }
            }
        }
        for (what, n) in [
            ("approved", &self.next_states.approved),
            ("declined", &self.next_states.declined),
        ] {
            if state(n).is_none_or(|s| s.get(3..4) != Some("J")) {
                problems.push(format!("next_states.{what} {n} is not a close (J) state"));
            }
        }
        for n in self.screens.all() {
            if !screen(n) {
                problems.push(format!("reply screen {n} is not in customization.screens"));
            }
        }
        problems
    }
}

#[cfg(test)]
mod flow_tests {
    use super::*;

    #[test]
    fn every_builtin_profile_carries_a_complete_customer_flow() {
        for name in Profile::builtin_names() {
            let p = Profile::builtin(name).unwrap_or_else(|| panic!("{name} loads"));
            assert_eq!(p.flow_problems(), Vec::<String>::new(), "{name}");
            let types: String = p.customization.states.iter().map(|s| &s[3..4]).collect();
            for t in ["A", "B", "E", "F", "I", "J"] {
                assert!(types.contains(t), "{name} has no {t} state");
            }
        }
    }

    #[test]
    fn a_broken_flow_is_explained() {
        let text = BUILTIN[1]
            .1
            .replace("\"125J076000076078000000000000\",\n", "");
        let p = Profile::from_toml_str(&text, "x.toml").unwrap();
        let problems = p.flow_problems().join("; ");
        assert!(problems.contains("next_states.approved 125"), "{problems}");
        let text = BUILTIN[1].1.replace("number = \"002\"", "number = \"902\"");
        let p = Profile::from_toml_str(&text, "x.toml").unwrap();
        let problems = p.flow_problems().join("; ");
        assert!(problems.contains("missing screen 002"), "{problems}");
    }

    #[test]
    fn the_second_vendor_differs_only_in_data() {
        let ncr = Profile::builtin("ncr-selfserv-basic").unwrap();
        let dn = Profile::builtin("diebold-opteva-ndc").unwrap();
        assert_eq!(dn.vendor, "Diebold Nixdorf");
        assert_eq!(dn.dialect, ncr.dialect, "the same basic NDC dialect");
        assert_ne!(
            dn.operation_codes.withdrawal,
            ncr.operation_codes.withdrawal
        );
        assert_ne!(dn.screens.dispense, ncr.screens.dispense);
        assert_ne!(dn.next_states.approved, ncr.next_states.approved);
        assert_ne!(dn.customization.config_id, ncr.customization.config_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_profile_loads() {
        for name in Profile::builtin_names() {
            let text = BUILTIN.iter().find(|(n, _)| *n == name).unwrap().1;
            let p = Profile::from_toml_str(text, name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.name, name);
        }
    }

    #[test]
    fn pin_screens_are_named_and_distinct() {
        for name in Profile::builtin_names() {
            let s = Profile::builtin(name).unwrap().screens;
            assert_eq!(s.wrong_pin, "074", "{name}");
            assert_eq!(s.pin_tries_exceeded, "079", "{name}");
            let all = s.all();
            let mut unique = all.to_vec();
            unique.sort();
            unique.dedup();
            assert_eq!(
                unique.len(),
                all.len(),
                "{name}: a screen number is used twice"
            );
        }
        // A profile written before the screen existed still loads.
        let old = BUILTIN[0].1.replace("pin_tries_exceeded = \"079\"\n", "");
        let p = Profile::from_toml_str(&old, "old.toml").unwrap();
        assert_eq!(
            p.screens.pin_tries_exceeded,
            DEFAULT_PIN_TRIES_EXCEEDED_SCREEN
        );
    }

    #[test]
    fn named_dialects_answer_key_changes_as_their_terminals_do() {
        let basic = Profile::builtin("ncr-selfserv-basic").unwrap();
        let adv = Profile::builtin("ncr-advance-ndc").unwrap();
        assert!(!basic.dialect.key_kvv_reply, "a plain ready 9");
        assert!(adv.dialect.key_kvv_reply, "23 … 3 FS <KVV>");
    }

    #[test]
    fn only_the_mac_profile_turns_mac_mode_on() {
        for name in Profile::builtin_names() {
            let p = Profile::builtin(name).unwrap();
            assert_eq!(p.mac.enabled(), name == "ncr-advance-ndc-mac", "{name}");
        }
        let p = Profile::builtin("ncr-advance-ndc-mac").unwrap();
        assert_eq!(
            p.mac,
            MacSelection {
                transaction_request: true,
                transaction_reply: true,
                solicited_status: true,
            }
        );
        assert!(p.dialect.mac && p.dialect.tvn == TvnMode::Hex8);
        let plain = Profile::builtin("ncr-advance-ndc").unwrap();
        assert_ne!(
            p.customization.config_id, plain.customization.config_id,
            "a terminal moved between the two gets a download"
        );
    }

    #[test]
    fn mac_mode_needs_a_mac_dialect_and_a_maced_request_for_a_maced_reply() {
        let basic = BUILTIN[0].1;
        let err = Profile::from_toml_str(
            &format!("{basic}\n[mac]\ntransaction_request = true\n"),
            "x.toml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("MAC"), "{err}");
        let advance = BUILTIN[1].1;
        let err = Profile::from_toml_str(
            &format!("{advance}\n[mac]\ntransaction_reply = true\n"),
            "x.toml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("transaction_request"), "{err}");
        let err = Profile::from_toml_str(&format!("{advance}\n[mac]\nreplies = true\n"), "x.toml")
            .unwrap_err();
        assert!(err.to_string().contains("replies"), "{err}");
        let p = Profile::from_toml_str(
            &format!("{advance}\n[mac]\ntransaction_request = true\n"),
            "x.toml",
        )
        .unwrap();
        assert!(p.mac.transaction_request && !p.mac.transaction_reply);
    }

    #[test]
    fn operation_codes_map_both_ways() {
        let p = Profile::builtin("ncr-selfserv-basic").unwrap();
        let code = p
            .operation_codes
            .for_kind(TransactionKind::Deposit)
            .to_owned();
        assert_eq!(
            p.operation_codes.kind_of(&code),
            Some(TransactionKind::Deposit)
        );
        assert_eq!(p.operation_codes.kind_of("ZZZZZZZZ"), None);
    }

    #[test]
    fn bad_profiles_are_explained() {
        let text = BUILTIN[0].1;
        let err = Profile::from_toml_str(
            &text.replace("dialect = \"basic\"", "dialect = \"nope\""),
            "x.toml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("dialect"), "{err}");
        let err = Profile::from_toml_str(
            &text.replace("config_id = \"0022\"", "config_id = \"22\""),
            "x.toml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("config_id"), "{err}");
        let err = Profile::from_toml_str(&format!("{text}\nsurprise = 1\n"), "x.toml").unwrap_err();
        assert!(err.to_string().contains("surprise"), "{err}");
    }

    #[test]
    fn builtin_profiles_declare_their_load_and_a_missing_load_gets_the_default() {
        use CustomizationMessage as M;
        for name in Profile::builtin_names() {
            let p = Profile::builtin(name).unwrap();
            assert_eq!(p.customization.load, LoadStep::default_order(), "{name}");
        }
        let text = BUILTIN[0].1;
        let start = text.find("load = [").unwrap();
        let end = start + text[start..].find('\n').unwrap();
        let without = format!("{}{}", &text[..start], &text[end..]);
        let p = Profile::from_toml_str(&without, "old.toml").unwrap();
        let load = &p.customization.load;
        assert_eq!(load.len(), 5);
        assert_eq!(
            load[0],
            LoadStep {
                message: M::EnhancedConfig,
                optional: true
            }
        );
        assert_eq!(load[4].message, M::ConfigId);
        assert!(load[1..].iter().all(|s| !s.optional));
    }

    #[test]
    fn a_load_list_is_checked() {
        let text = BUILTIN[0].1;
        let start = text.find("load = [").unwrap();
        let end = start + text[start..].find('\n').unwrap();
        let with = |load: &str| format!("{}{load}{}", &text[..start], &text[end..]);
        let err = |load: &str| {
            Profile::from_toml_str(&with(load), "x.toml")
                .unwrap_err()
                .to_string()
        };
        let e = err(
            r#"load = [ { message = "screens" }, { message = "states" }, { message = "fits" }, { message = "enhanced_config" } ]"#,
        );
        assert!(e.contains("config_id"), "{e}");
        let e = err(
            r#"load = [ { message = "screens" }, { message = "states" }, { message = "fits" }, { message = "enhanced_config" }, { message = "config_id", optional = true } ]"#,
        );
        assert!(e.contains("config_id"), "{e}");
        let e = err(
            r#"load = [ { message = "screens" }, { message = "screens" }, { message = "states" }, { message = "fits" }, { message = "enhanced_config" }, { message = "config_id" } ]"#,
        );
        assert!(e.contains("twice"), "{e}");
        let e = err(
            r#"load = [ { message = "screens" }, { message = "states" }, { message = "enhanced_config" }, { message = "config_id" } ]"#,
        );
        assert!(e.contains("fits"), "{e}");
        let e = err(r#"load = [ { message = "pictures" }, { message = "config_id" } ]"#);
        assert!(e.contains("pictures"), "{e}");
        let e = err(r#"load = [ { message = "config_id", mandatory = true } ]"#);
        assert!(e.contains("mandatory"), "{e}");
        // The order is the profile's: enhanced configuration after the FITs here.
        let p = Profile::from_toml_str(
            &with(r#"load = [ { message = "screens" }, { message = "states" }, { message = "fits" }, { message = "enhanced_config", optional = true }, { message = "config_id" } ]"#),
            "x.toml",
        )
        .unwrap();
        assert_eq!(
            p.customization.load[3],
            LoadStep {
                message: CustomizationMessage::EnhancedConfig,
                optional: true
            }
        );
    }
}
