//! The other bank: cards the switch forwards over ISO 8583 to a bank host (issue 15's bank host
//! route), played by `bankhost-sim` in this process, like ledger-sim.
//!
//! A share of the lab's customers (`--bank-share`) use cards of that bank ([`bank_cards`]: PANs
//! starting with [`BANK_ROUTE_PREFIX`], outside the wallet's range), each registered at the host
//! with a balance and, with PIN security, a PIN the host checks under its own zone PIN key. The
//! switch is given the same key in its store (`zpk/bankhost`, usage `zone_pin`) before it starts
//! and translates the terminals' PIN blocks to it; the switch never verifies these cards' PINs.
//!
//! After the run the host's record is the third witness for these cards, as the ledger is for
//! the wallet's: [`expected_from_journal`] reads what the switch's journal says each card should
//! stand at, at the host (pure), and [`compare`] sets it beside what the host says (pure).
//! [`wait_settled`] first waits, while the switch runs, for its advices to the host to be
//! acknowledged and the host's record to stop changing.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bankhost_sim::{BankHostHandle, CardConfig, Position, RunningBankHost, Totals};
use host_switch::domain::{TxnKind, TxnRecord, TxnState};
use keystore::{KeyName, KeyStore, KeyUsage, SoftwareKeyStore};
use protocols::types::Pan;
use serde::Serialize;
use serde_json::Value;
use testkit::custodian_keys::{CustodianKey, CustodianKeyError};
use tokio::time::Instant;

use crate::LabError;

/// The switch's route for the bank's cards (and every bank PAN's first digits).
pub const BANK_ROUTE_PREFIX: &str = "5";
/// The bank's cards in the lab: `5413337` and 9 digits.
const BANK_PAN_PREFIX: &str = "5413337";
/// Rich bank cards; one poor one follows, which runs into the host's insufficient funds (51).
pub const BANK_RICH_CARDS: usize = 4;
pub const BANK_RICH_BALANCE_MINOR: u64 = 1_000_000_000;
pub const BANK_POOR_BALANCE_MINOR: u64 = 3_000;
/// The name of the host in the switch's `[[bank_hosts]]` and of its key in the switch's store.
pub const BANK_HOST_NAME: &str = "bankhost";
pub const BANK_ZPK_NAME: &str = "zpk/bankhost";
/// Field 32 the switch sends the host.
pub const ACQUIRER_ID: &str = "4401234";
/// The bank cards' PINs are the lab's PIN formula from here on (apart from the wallet cards').
const BANK_PIN_OFFSET: usize = 100;

/// One of the bank's cards.
#[derive(Debug, Clone)]
pub struct BankCard {
    pub pan: String,
    pub pin: String,
    /// The switch's name for the card in its journal (its keyed card reference, the same name a
    /// wallet account would have).
    pub account: String,
    pub balance_minor: u64,
}

/// The bank's cards: [`BANK_RICH_CARDS`] rich ones, then the poor one. `account` is filled by
/// the caller (it needs the switch's card reference key).
pub fn bank_cards() -> Vec<BankCard> {
    (0..=BANK_RICH_CARDS)
        .map(|i| BankCard {
            pan: format!("{BANK_PAN_PREFIX}{i:09}"),
            pin: testkit::custodian_keys::lab_pin(BANK_PIN_OFFSET + i),
            account: String::new(),
            balance_minor: if i == BANK_RICH_CARDS {
                BANK_POOR_BALANCE_MINOR
            } else {
                BANK_RICH_BALANCE_MINOR
            },
        })
        .collect()
}

/// The bank side of a run: the host, its cards, and its zone PIN key in clear (for an audit).
pub struct BankSide {
    pub host: RunningBankHost,
    pub cards: Vec<BankCard>,
    pub zpk: Option<CustodianKey>,
}

/// A fresh double-length zone PIN key for the host (odd parity, from two random components, as
/// custodians would enter it), entered into the switch's key store (`store`, opened with the KEK
/// in `kek_file`) as [`BANK_ZPK_NAME`] with usage `zone_pin`. The switch must not be running.
pub fn load_host_zpk(store: &Path, kek_file: &Path) -> Result<CustodianKey, LabError> {
    let key = CustodianKey::generate()?;
    let (components, kcvs) = key.components()?;
    let kek = keystore::Kek::from_file(kek_file).map_err(CustodianKeyError::from)?;
    let store = SoftwareKeyStore::open(store, kek).map_err(CustodianKeyError::from)?;
    let name = KeyName::new(BANK_ZPK_NAME).map_err(CustodianKeyError::from)?;
    store
        .load_components(&name, KeyUsage::ZonePin, &components, &kcvs)
        .map_err(CustodianKeyError::from)?;
    Ok(key)
}

/// Starts the host with `cards` (with their PINs when `zpk` is given) and deposits on.
pub async fn start(cards: Vec<BankCard>, zpk: Option<CustodianKey>) -> Result<BankSide, LabError> {
    let mut config = bankhost_sim::BankHostConfig::new();
    config.deposits = true;
    config.zpk_hex = zpk.as_ref().map(|k| hex::encode_upper(&*k.combined));
    for c in &cards {
        let card = CardConfig::new(c.pan.clone(), c.balance_minor);
        config.cards.push(if zpk.is_some() {
            card.with_pin(c.pin.clone())
        } else {
            card
        });
    }
    let host = bankhost_sim::start(config)
        .await
        .map_err(|e| LabError::Start(format!("bankhost-sim: {e}")))?;
    Ok(BankSide { host, cards, zpk })
}

/// The switch's bank hosts as `switchctl bank-hosts --json` lists them (name, connected, breaker,
/// queued_advices); `None` when the switch does not answer.
pub async fn switch_bank_hosts(switch_socket: &Path) -> Option<Vec<Value>> {
    let socket = switch_socket.to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        host_switch::cli::control::send(&socket, &host_switch::control_api::Request::BankHosts)
    })
    .await
    .ok()?
    .ok()?;
    answer.as_array().cloned()
}

/// Whether the switch's breaker towards the host is open (or half open) now.
pub async fn breaker_open(switch_socket: &Path) -> bool {
    switch_bank_hosts(switch_socket)
        .await
        .is_some_and(|hosts| hosts.iter().any(|h| h["breaker"] != "closed"))
}

/// What [`wait_settled`] saw last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SettleState {
    /// Advices (0220, 0420) the switch still queued for the host.
    pub queued_advices: u64,
    /// The switch's link to the host is signed on.
    pub connected: bool,
    /// The wait ended on its deadline.
    pub timed_out: bool,
}

/// How long the host's record must stay unchanged, with nothing queued at the switch, before the
/// bank side counts as settled: a few of the switch's resume rounds and advice retries.
const QUIET: Duration = Duration::from_millis(1500);
/// Longest wait for the bank side to settle.
const PATIENCE: Duration = Duration::from_secs(60);

/// Waits while the switch runs until it has no advice queued for the host, its link is signed on,
/// and the host's record has not changed for [`QUIET`]; or [`PATIENCE`].
pub async fn wait_settled(switch_socket: &Path, host: &BankHostHandle) -> SettleState {
    let deadline = Instant::now() + PATIENCE;
    let mut last: Option<Totals> = None;
    let mut unchanged_since = Instant::now();
    let mut state = SettleState::default();
    loop {
        let hosts = switch_bank_hosts(switch_socket).await.unwrap_or_default();
        state.queued_advices = hosts
            .iter()
            .map(|h| h["queued_advices"].as_u64().unwrap_or(u64::MAX))
            .sum();
        state.connected = !hosts.is_empty() && hosts.iter().all(|h| h["connected"] == true);
        let totals = host.totals();
        if last != Some(totals) || state.queued_advices > 0 || !state.connected {
            (last, unchanged_since) = (Some(totals), Instant::now());
        } else if unchanged_since.elapsed() >= QUIET {
            return state;
        }
        if Instant::now() >= deadline {
            state.timed_out = true;
            return state;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the journal says a card should stand at, at the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Expected {
    /// Approved withdrawals with neither completion nor reversal yet (`Held`).
    pub held: u64,
    /// Withdrawals completed (`Captured`, or `CapturePending`: its advice is owed), what was
    /// dispensed.
    pub debited: u64,
    /// Deposits credited (`Credited`).
    pub credited: u64,
}

/// Per card account, what the journal's bank-route records add up to; also how many records are
/// still waiting for an outcome from the host (`HoldRequested`, `CreditRequested`), and what is
/// being driven (pending advices), one line each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalBank {
    pub by_account: BTreeMap<String, Expected>,
    pub records: usize,
    pub unanswered: Vec<String>,
    pub exceptions: Vec<String>,
    /// Captured (or owed) withdrawals and credited deposits per terminal id, for the terminals'
    /// side of the reconciliation: (dispensed, deposited).
    pub by_terminal: BTreeMap<String, (u64, u64)>,
}

/// Reads the journal's bank-route records (those with `issuer`). `Voided`, `VoidPending`,
/// `Compensated`, `CompensationPending`, `Declined`, `ReversedUnseen`, `Resolved`: nothing at the
/// host.
pub fn expected_from_journal(txns: &[TxnRecord]) -> JournalBank {
    let mut out = JournalBank::default();
    for rec in txns.iter().filter(|r| r.issuer.is_some()) {
        out.records += 1;
        let e = out.by_account.entry(rec.account.clone()).or_default();
        let terminal = rec.key.split(':').next().unwrap_or("").to_owned();
        let (dispensed, deposited) = match (&rec.state, rec.kind) {
            (TxnState::Held { .. }, _) => {
                e.held += rec.amount.minor;
                (0, 0)
            }
            (
                TxnState::Captured { amount_minor, .. }
                | TxnState::CapturePending { amount_minor, .. },
                TxnKind::Withdrawal,
            ) => {
                e.debited += amount_minor;
                (*amount_minor, 0)
            }
            (TxnState::Credited { .. }, TxnKind::Deposit) => {
                e.credited += rec.amount.minor;
                (0, rec.amount.minor)
            }
            (TxnState::HoldRequested | TxnState::CreditRequested, _) => {
                out.unanswered.push(format!(
                    "{} {:?} {}: no outcome from the host journaled",
                    rec.key, rec.kind, rec.amount.minor
                ));
                (0, 0)
            }
            (TxnState::Exception { reason }, _) => {
                out.exceptions.push(format!("{}: {reason}", rec.key));
                (0, 0)
            }
            _ => (0, 0),
        };
        let t = out.by_terminal.entry(terminal).or_default();
        t.0 += dispensed;
        t.1 += deposited;
    }
    out
}

/// The bank side's verdict: the journal against the host's record, card by card.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BankVerdict {
    /// Bank-route records in the journal.
    pub journal_records: usize,
    /// What the journal says the host should hold, have debited and credited (all cards).
    pub journal_held_minor: u64,
    pub journal_debited_minor: u64,
    pub journal_credited_minor: u64,
    /// The host's totals.
    pub host_held_minor: u64,
    pub host_debited_minor: u64,
    pub host_credited_minor: u64,
    pub host_reversed_minor: u64,
    pub host_approved: u64,
    pub host_declined: u64,
    pub host_reversals_applied: u64,
    pub host_reversals_unmatched: u64,
    pub host_completions_applied: u64,
    pub host_repeats_ignored: u64,
    /// Money the journal moved that the host did not (a debit the host does not have: the bank
    /// never charged a customer who got cash; a credit missing: a deposit never credited).
    pub lost: Vec<String>,
    /// Money the host moved that the journal does not have (a debit twice, a withdrawal the
    /// switch gave up on but never reversed).
    pub duplicated: Vec<String>,
    /// Everything else that does not agree: holds that differ, records with no outcome,
    /// exceptions, a wait that ran out.
    pub mismatched: Vec<String>,
    pub settle: SettleState,
}

/// Sets the journal's expectations beside the host's record for every bank card.
pub fn compare(
    journal: &JournalBank,
    cards: &[BankCard],
    position: impl Fn(&str) -> Position,
    totals: &Totals,
    settle: SettleState,
) -> BankVerdict {
    let mut v = BankVerdict {
        journal_records: journal.records,
        host_held_minor: totals.position.held,
        host_debited_minor: totals.position.debited,
        host_credited_minor: totals.position.credited,
        host_reversed_minor: totals.position.reversed,
        host_approved: totals.approved,
        host_declined: totals.declined,
        host_reversals_applied: totals.reversals_applied,
        host_reversals_unmatched: totals.reversals_unmatched,
        host_completions_applied: totals.completions_applied,
        host_repeats_ignored: totals.repeats_ignored,
        settle,
        ..BankVerdict::default()
    };
    for e in journal.by_account.values() {
        v.journal_held_minor += e.held;
        v.journal_debited_minor += e.debited;
        v.journal_credited_minor += e.credited;
    }
    for (i, card) in cards.iter().enumerate() {
        let want = journal
            .by_account
            .get(&card.account)
            .copied()
            .unwrap_or_default();
        let got = position(&card.pan);
        let name = format!("bank card {i}");
        for (what, journal_minor, host_minor) in [
            ("debited", want.debited, got.debited),
            ("credited", want.credited, got.credited),
        ] {
            if journal_minor > host_minor {
                v.lost.push(format!(
                    "{name}: journal {what} {journal_minor} but the host {host_minor}: {} missing at the host",
                    journal_minor - host_minor
                ));
            } else if host_minor > journal_minor {
                v.duplicated.push(format!(
                    "{name}: host {what} {host_minor} but the journal {journal_minor}: {} the journal does not have",
                    host_minor - journal_minor
                ));
            }
        }
        if want.held != got.held {
            v.mismatched.push(format!(
                "{name}: journal holds {} at the host, the host holds {}",
                want.held, got.held
            ));
        }
    }
    // A hold still standing at the end is money reserved that nobody will release.
    if totals.position.held > 0 {
        v.mismatched.push(format!(
            "host: {} still held (approved withdrawals neither completed nor reversed)",
            totals.position.held
        ));
    }
    let known: std::collections::BTreeSet<&str> =
        cards.iter().map(|c| c.account.as_str()).collect();
    for (account, e) in &journal.by_account {
        if !known.contains(account.as_str()) && *e != Expected::default() {
            v.mismatched.push(format!(
                "journal: bank-route record for an unknown card: {e:?}"
            ));
        }
    }
    v.mismatched.extend(journal.unanswered.iter().cloned());
    v.mismatched
        .extend(journal.exceptions.iter().map(|x| format!("journal: {x}")));
    if v.settle.timed_out {
        v.mismatched.push(format!(
            "the bank side did not settle in time: {} advices queued at the switch, link {}",
            v.settle.queued_advices,
            if v.settle.connected { "up" } else { "down" }
        ));
    }
    v
}

impl BankVerdict {
    pub fn reconciled(&self) -> bool {
        self.lost.is_empty() && self.duplicated.is_empty() && self.mismatched.is_empty()
    }
}

/// The card whose PAN is `pan`, as the host's `position` wants it.
pub fn pan(pan: &str) -> Option<Pan> {
    Pan::parse(pan).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use host_switch::domain::issuer::HostTrace;
    use protocols::types::{Amount, Currency};

    fn rec(key: &str, kind: TxnKind, account: &str, amount: u64, state: TxnState) -> TxnRecord {
        let mut r = TxnRecord {
            key: key.into(),
            kind,
            account: account.into(),
            amount: Amount::new(amount, Currency::EUR),
            state,
            created_at_ms: 0,
            updated_at_ms: 0,
            answer: None,
            operator_notes: Vec::new(),
            issuer: None,
        };
        r.issuer = Some(Box::new(HostTrace {
            host: BANK_HOST_NAME.into(),
            stan: 1,
            transmitted_at: "1204110000".into(),
            rrn: "433811000001".into(),
            mti: "0100".into(),
            local_time: "110000".into(),
            local_date: "1204".into(),
        }));
        r
    }

    fn cards() -> Vec<BankCard> {
        bank_cards()
            .into_iter()
            .enumerate()
            .map(|(i, c)| BankCard {
                account: format!("acct{i}"),
                ..c
            })
            .collect()
    }

    fn journal() -> Vec<TxnRecord> {
        let captured = TxnState::Captured {
            hold_id: "h".into(),
            amount_minor: 1500,
        };
        let mut wallet = rec(
            "ATM00001:000009:1204110000",
            TxnKind::Withdrawal,
            "w",
            9,
            captured.clone(),
        );
        wallet.issuer = None;
        vec![
            rec(
                "ATM00001:000001:1204110000",
                TxnKind::Withdrawal,
                "acct0",
                2000,
                captured,
            ),
            rec(
                "ATM00002:000002:1204110000",
                TxnKind::Withdrawal,
                "acct0",
                4000,
                TxnState::Voided,
            ),
            rec(
                "ATM00002:000003:1204110000",
                TxnKind::Deposit,
                "acct1",
                7000,
                TxnState::Credited {
                    movement_id: "m".into(),
                },
            ),
            rec(
                "ATM00001:000004:1204110000",
                TxnKind::Withdrawal,
                "acct1",
                3000,
                TxnState::Declined {
                    code: host_switch::domain::ResponseCode::IssuerUnavailable,
                },
            ),
            wallet,
        ]
    }

    fn position(debited: u64, credited: u64) -> Position {
        Position {
            debited,
            credited,
            net: credited as i64 - debited as i64,
            ..Position::default()
        }
    }

    #[test]
    fn the_journal_says_what_the_host_should_hold_and_the_host_agrees() {
        let j = expected_from_journal(&journal());
        assert_eq!(j.records, 4, "the wallet record is not the host's");
        assert_eq!(j.by_account["acct0"].debited, 1500, "what was dispensed");
        assert_eq!(j.by_account["acct1"].credited, 7000);
        assert_eq!(j.by_terminal["ATM00001"], (1500, 0));
        assert_eq!(j.by_terminal["ATM00002"], (0, 7000));
        let cards = cards();
        let host = |pan: &str| match pan {
            p if p == cards[0].pan => position(1500, 0),
            p if p == cards[1].pan => position(0, 7000),
            _ => Position::default(),
        };
        let v = compare(&j, &cards, host, &Totals::default(), SettleState::default());
        assert!(v.reconciled(), "{v:?}");
        assert_eq!(v.journal_debited_minor, 1500);
    }

    #[test]
    fn a_debit_missing_at_the_host_is_lost_and_one_too_many_duplicated() {
        let j = expected_from_journal(&journal());
        let cards = cards();
        let host = |pan: &str| match pan {
            p if p == cards[0].pan => position(0, 0),
            p if p == cards[1].pan => position(3000, 7000),
            _ => Position::default(),
        };
        let v = compare(&j, &cards, host, &Totals::default(), SettleState::default());
        assert!(!v.reconciled());
        assert_eq!(v.lost.len(), 1, "{v:?}");
        assert!(v.lost[0].contains("bank card 0") && v.lost[0].contains("1500 missing"));
        assert_eq!(v.duplicated.len(), 1, "{v:?}");
        assert!(v.duplicated[0].contains("bank card 1"));
        assert!(!v.lost[0].contains(&cards[0].pan), "no PAN in the verdict");
    }

    #[test]
    fn a_hold_left_a_record_without_outcome_or_a_wait_that_ran_out_fails_the_bank_side() {
        let mut txns = journal();
        txns.push(rec(
            "ATM00001:000005:1204110000",
            TxnKind::Withdrawal,
            "acct2",
            1000,
            TxnState::HoldRequested,
        ));
        let j = expected_from_journal(&txns);
        let cards = cards();
        let host = |pan: &str| match pan {
            p if p == cards[0].pan => position(1500, 0),
            p if p == cards[1].pan => position(0, 7000),
            _ => Position::default(),
        };
        let v = compare(&j, &cards, host, &Totals::default(), SettleState::default());
        assert_eq!(v.mismatched.len(), 1, "{v:?}");
        let held = Totals {
            position: Position {
                held: 500,
                ..Position::default()
            },
            ..Totals::default()
        };
        let late = SettleState {
            queued_advices: 2,
            connected: false,
            timed_out: true,
        };
        let v = compare(
            &expected_from_journal(&journal()),
            &cards,
            host,
            &held,
            late,
        );
        assert_eq!((v.lost.len(), v.duplicated.len()), (0, 0));
        assert_eq!(v.mismatched.len(), 2, "{v:?}");
    }
}
