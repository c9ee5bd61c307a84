//! Dialect options: the differences between terminals that share the NDC envelope.
//!
//! Vendors and firmware options change field presence and widths (LUNO length, TVN slot, MAC
//! trailer, amount width, cassette layout …). They live in one [`Dialect`] value, passed to every
//! `parse`/`encode`, so the codec holds no `if vendor == …` chains and a firmware-profile TOML file
//! can pick or tune a dialect (`Dialect::by_name`, or a `[ndc]` table deserialized into `Dialect`).

use serde::{Deserialize, Deserializer, Serialize};

/// Where the time-variant number (TVN) of MAC mode rides in `22` (and whether `11`/`12` may carry one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TvnMode {
    /// No TVN: `22 FS luno FS FS <descriptor>`; the `11`/`12` slots are empty.
    Absent,
    /// The `22` slot is present but always empty: `22 FS luno FS FS FS <descriptor>`.
    EmptySlot,
    /// MAC mode: the slot holds 8 hex digits, or is empty when the terminal has none (\[UT\] sends both).
    Hex8,
}

/// How the terminal reports "ready" after a transaction reply (option 01 bits 0 and 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadyAfterReply {
    /// `9`, like any other command; descriptor `B` is rejected.
    Nine,
    /// `B`, optionally with `GS` completion data.
    B,
    /// `B` followed by `FS TSN` and optional `FS` dispense/deposit data.
    BWithTsn,
}

/// The options that change NDC layouts. `Default` is [`Dialect::basic`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dialect {
    /// Logical unit number length the agent and the simulator use for the LUNOs they configure
    /// and write: 3, or 9 (3 digits + 6-character machine number). Reading takes the LUNO field
    /// as it is (0 to 9 printable characters), whatever this says.
    #[serde(deserialize_with = "de_luno_len")]
    pub luno_len: usize,
    pub tvn: TvnMode,
    /// A final 8-hex MAC field may follow a message. It is optional per message (the MAC field
    /// selection decides which messages carry one), so parse takes a last field of exactly 8 hex
    /// digits as the MAC.
    pub mac: bool,
    /// The host puts a response flag after its message class (`40`); `encode` requires one.
    /// Parsing accepts host messages with or without it.
    pub host_response_flag: bool,
    /// Transaction request amount width: 8 or 12 (option 01 bit 3).
    #[serde(deserialize_with = "de_amount_len")]
    pub amount_len: usize,
    /// Cassette (note) types: 4, or 7 with option 76 bit 0.
    #[serde(deserialize_with = "de_cassette_types")]
    pub cassette_types: usize,
    /// Digits per note count in replies and `E` status: 2, or 4 with option 76 bit 2.
    #[serde(deserialize_with = "de_note_digits")]
    pub note_digits: usize,
    pub ready_after_reply: ReadyAfterReply,
    /// Specific command reject `C` + reason (option 12); without it only `A` is valid.
    pub reject_reasons: bool,
    /// Transaction requests carry the last transaction status `2…` (option 15).
    pub last_txn_status: bool,
    /// Track 1 in `11` is prefixed by its identifier `1` (\[JN\], \[HY\]); \[EA\] sends it bare.
    pub track1_id: bool,
    /// Kept so that existing profiles still load; it no longer changes anything: every message
    /// reads with any number of trailing FS, counted on the message and written back.
    pub tolerate_trailing_fs: bool,
    /// The terminal answers an extended key change (`42` …) with encryptor initialisation data
    /// `23 FS luno FS FS 3 FS <KVV>` (the new key's check value, 6 hex digits, \[UT\]) instead of
    /// a plain ready `22 … 9`.
    pub key_kvv_reply: bool,
}

impl Default for Dialect {
    fn default() -> Self {
        Self::basic()
    }
}

impl Dialect {
    /// Names accepted by [`Dialect::by_name`].
    pub const NAMES: &'static [&'static str] = &["basic", "ncr_advance"];

    /// NCR Advance NDC as in the \[UT\] captures: 9-character LUNO, TVN + MAC, 12-digit amount,
    /// last transaction status, `B` after a reply, specific reject reasons, track 1 id, key
    /// changes answered with the key's KVV.
    pub fn ncr_advance() -> Self {
        Self {
            luno_len: 9,
            tvn: TvnMode::Hex8,
            mac: true,
            host_response_flag: false,
            amount_len: 12,
            cassette_types: 4,
            note_digits: 2,
            ready_after_reply: ReadyAfterReply::B,
            reject_reasons: true,
            last_txn_status: true,
            track1_id: true,
            tolerate_trailing_fs: true,
            key_kvv_reply: true,
        }
    }

    /// A plain NDC terminal as emulated by \[EA\]/\[NP\]: 3-digit LUNO, no TVN, no MAC, 12-digit
    /// amount, `9` after a reply, `A` rejects only, no last transaction status, bare track 1,
    /// trailing FS tolerated (\[EA\] ends `11` with one), key changes answered with a plain `9`.
    pub fn basic() -> Self {
        Self {
            luno_len: 3,
            tvn: TvnMode::Absent,
            mac: false,
            host_response_flag: false,
            amount_len: 12,
            cassette_types: 4,
            note_digits: 2,
            ready_after_reply: ReadyAfterReply::Nine,
            reject_reasons: false,
            last_txn_status: false,
            track1_id: false,
            tolerate_trailing_fs: true,
            key_kvv_reply: false,
        }
    }

    /// A built-in dialect by the name a firmware profile uses (`"ncr_advance"`, `"basic"`;
    /// case and `-`/`_` do not matter).
    pub fn by_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "ncr_advance" => Some(Self::ncr_advance()),
            "basic" => Some(Self::basic()),
            _ => None,
        }
    }

    /// Every built-in dialect with its name.
    pub fn builtin() -> Vec<(&'static str, Self)> {
        vec![
            ("basic", Self::basic()),
            ("ncr_advance", Self::ncr_advance()),
        ]
    }
}

fn de_one_of<'de, D: Deserializer<'de>>(
    d: D,
    allowed: &[usize],
    what: &str,
) -> Result<usize, D::Error> {
    let v = usize::deserialize(d)?;
    if allowed.contains(&v) {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(format!(
            "{what} must be one of {allowed:?}, got {v}"
        )))
    }
}
fn de_luno_len<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    de_one_of(d, &[3, 9], "luno_len")
}
fn de_amount_len<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    de_one_of(d, &[8, 12], "amount_len")
}
fn de_cassette_types<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    de_one_of(d, &[4, 7], "cassette_types")
}
fn de_note_digits<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    de_one_of(d, &[2, 4], "note_digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_keys() {
        let d: Dialect = toml::from_str("luno_len = 9\nmac = true\ntvn = \"hex8\"").unwrap();
        assert_eq!(d.luno_len, 9);
        assert!(d.mac);
        assert_eq!(d.amount_len, Dialect::basic().amount_len);
        assert!(toml::from_str::<Dialect>("lunolen = 9").is_err());
        assert!(toml::from_str::<Dialect>("luno_len = 5").is_err());
        assert!(toml::from_str::<Dialect>("note_digits = 3").is_err());
        assert!(!d.key_kvv_reply, "defaults to basic's plain ready");
        let kvv: Dialect = toml::from_str("key_kvv_reply = true").unwrap();
        assert!(kvv.key_kvv_reply);
    }

    #[test]
    fn key_change_answer_follows_the_named_dialect() {
        assert!(Dialect::ncr_advance().key_kvv_reply);
        assert!(!Dialect::basic().key_kvv_reply);
    }

    #[test]
    fn named_dialects_are_found() {
        assert_eq!(
            Dialect::by_name("ncr_advance"),
            Some(Dialect::ncr_advance())
        );
        assert_eq!(Dialect::by_name("basic"), Some(Dialect::default()));
        assert_eq!(
            Dialect::by_name("NCR-Advance"),
            Some(Dialect::ncr_advance())
        );
        assert_eq!(Dialect::by_name("diebold"), None);
        for n in Dialect::NAMES {
            assert!(Dialect::by_name(n).is_some());
        }
    }
}
