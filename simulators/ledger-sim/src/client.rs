//! A small client of the ledger's own HTTP contract, for the programs that read the ledger back
//! after a run (atm-lab's reconciliation, the daemons' integration tests): every movement, page by
//! page, as `GET /v1/movements` serves them.

use crate::domain::Movement;
use crate::store::MovementPage;

/// Movements asked for per page.
pub const PAGE_LIMIT: usize = 500;

/// A movement page could not be read.
#[derive(Debug, thiserror::Error)]
#[error("GET {url}")]
pub struct FetchError {
    pub url: String,
    #[source]
    pub source: reqwest::Error,
}

/// Reads every ledger movement over HTTP, page by page (`base_url` as
/// [`crate::RunningLedger::base_url`] gives it, without a trailing slash).
pub async fn fetch_movements(base_url: &str) -> Result<Vec<Movement>, FetchError> {
    let client = reqwest::Client::new();
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{base_url}/v1/movements?limit={PAGE_LIMIT}");
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let page = fetch_page(&client, &url)
            .await
            .map_err(|source| FetchError { url, source })?;
        let empty = page.movements.is_empty();
        all.extend(page.movements);
        match page.next_after {
            Some(a) if !empty => after = Some(a),
            _ => break,
        }
    }
    Ok(all)
}

async fn fetch_page(client: &reqwest::Client, url: &str) -> Result<MovementPage, reqwest::Error> {
    client
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())?
        .json()
        .await
}
