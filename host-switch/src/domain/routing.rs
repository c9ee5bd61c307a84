//! Which issuer a card belongs to: a BIN/prefix table, longest prefix wins. Routing is data.

use protocols::types::Pan;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Route {
    /// The mobile wallet's ledger (REST).
    Wallet,
    /// Another bank's host over ISO 8583 (`host` names its `[[bank_hosts]]` entry).
    BankHost,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    /// 1 to 11 leading digits of the PAN.
    pub prefix: String,
    pub route: Route,
    /// The `[[bank_hosts]] name` of a `bank-host` route; may be left out when one host is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// Sorted longest prefix first.
    entries: Vec<RouteEntry>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("route prefix {prefix:?} must be 1 to 11 digits")]
pub struct RouteError {
    pub prefix: String,
}

impl RouteTable {
    pub fn new(mut entries: Vec<RouteEntry>) -> Result<Self, RouteError> {
        if let Some(bad) = entries.iter().find(|e| {
            e.prefix.is_empty()
                || e.prefix.len() > 11
                || !e.prefix.bytes().all(|b| b.is_ascii_digit())
        }) {
            return Err(RouteError {
                prefix: bad.prefix.clone(),
            });
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.prefix.len()));
        Ok(Self { entries })
    }

    /// The ranges whose deposits an agent may take while the switch is unreachable: the wallet's
    /// (the switch credits them later); every other range is listed as refused, so the longest
    /// prefix decides on the agent as it does here.
    pub fn offline_deposits(&self) -> protocols::dialect::OfflineDeposits {
        protocols::dialect::OfflineDeposits::new(
            self.entries
                .iter()
                .map(|e| (e.prefix.clone(), e.route == Route::Wallet)),
        )
        .unwrap_or_default()
    }

    pub fn route(&self, pan: &Pan) -> Option<Route> {
        self.entry(pan).map(|e| e.route)
    }

    /// The entry that routes `pan`: the longest prefix it starts with.
    pub fn entry(&self, pan: &Pan) -> Option<&RouteEntry> {
        self.entries
            .iter()
            .find(|e| pan.expose().starts_with(&e.prefix))
    }

    /// Every entry, longest prefix first.
    pub fn entries(&self) -> &[RouteEntry] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let t = RouteTable::new(vec![
            RouteEntry {
                prefix: "4".into(),
                route: Route::BankHost,
                host: None,
            },
            RouteEntry {
                prefix: "476173".into(),
                route: Route::Wallet,
                host: None,
            },
        ])
        .unwrap();
        assert_eq!(
            t.route(&Pan::parse("4761739001010010").unwrap()),
            Some(Route::Wallet)
        );
        assert_eq!(
            t.route(&Pan::parse("4000000000000002").unwrap()),
            Some(Route::BankHost)
        );
        assert_eq!(t.route(&Pan::parse("5000000000000002").unwrap()), None);
    }

    #[test]
    fn bad_prefix_is_named() {
        let err = RouteTable::new(vec![RouteEntry {
            prefix: "47x".into(),
            route: Route::Wallet,
            host: None,
        }])
        .unwrap_err();
        assert_eq!(err.prefix, "47x");
    }
}
