//! ledger-sim for the daemons' tests: started in-process on `127.0.0.1:0` with wallet accounts
//! seeded, read back over its HTTP contract, and the check every test ends with (the books
//! balance, no hold captured twice).
//!
//! Accounts are named by the caller: the mapping from a card to its wallet account is the
//! switch's (`host_switch::domain::WalletAccount`, a keyed MAC of the PAN: see
//! [`crate::custodian_keys::CustodianKey::card_reference_mac`]), which this crate does not depend on.

use std::path::Path;

use ledger_sim::domain::Movement;
use ledger_sim::{AccountSeed, LedgerConfig, LedgerServer, RunningLedger};

pub use ledger_sim::client::fetch_movements;

/// Starts ledger-sim with its database in `dir/ledger` and `accounts` (name, EUR minor units)
/// opened.
pub async fn start_seeded(dir: &Path, accounts: &[(String, u64)]) -> RunningLedger {
    let mut cfg = LedgerConfig::new(dir.join("ledger"));
    cfg.seeds = accounts
        .iter()
        .map(|(account, balance_minor)| AccountSeed {
            account: account.clone(),
            currency: "EUR".into(),
            balance_minor: *balance_minor,
        })
        .collect();
    LedgerServer::start(cfg).await.expect("ledger-sim starts")
}

/// `GET /v1/balances/{account}` as JSON (`balance_minor`, `held_minor`, …).
pub async fn balance(ledger: &RunningLedger, account: &str) -> serde_json::Value {
    reqwest::get(format!("{}/v1/balances/{account}", ledger.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The first page of `GET /v1/movements` as JSON, without the opening balances (`funding`);
/// fails if there is more than one page (a test stays within one).
pub async fn movements_one_page(ledger: &RunningLedger) -> Vec<serde_json::Value> {
    let page: serde_json::Value = reqwest::get(format!("{}/v1/movements", ledger.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        page.get("next_after").is_none(),
        "tests stay within one page"
    );
    page["movements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] != "funding")
        .cloned()
        .collect()
}

/// Every movement, all pages.
pub async fn all_movements(ledger: &RunningLedger) -> Vec<Movement> {
    fetch_movements(&ledger.base_url()).await.unwrap()
}

/// The ledger's own invariants: the books balance in every currency and no hold was captured
/// twice.
pub async fn assert_books_balance(ledger: &RunningLedger) {
    let inv = ledger.invariants().await.unwrap();
    assert_eq!(inv.holds_captured_twice, 0, "{inv:?}");
    assert!(
        inv.sum_minor_by_currency.values().all(|v| *v == 0),
        "{inv:?}"
    );
}
