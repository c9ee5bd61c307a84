//! Shared harness for the ledger integration tests: a real server on 127.0.0.1:0 with a fresh
//! sled database, a reqwest client, and a closing check that the books still balance.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use ledger_sim::{AccountSeed, LedgerConfig, LedgerServer, RunningLedger};
use reqwest::StatusCode;
use serde_json::{json, Value};

pub struct Ledger {
    pub running: RunningLedger,
    pub client: reqwest::Client,
    pub base: String,
    pub db_path: PathBuf,
}

/// An HTTP answer: status, JSON body (Null if none) and whether it was an idempotent replay.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub replayed: bool,
}

pub fn seeds() -> Vec<AccountSeed> {
    vec![
        AccountSeed {
            account: "alice".into(),
            currency: "EUR".into(),
            balance_minor: 100_000,
        },
        AccountSeed {
            account: "bob".into(),
            currency: "EUR".into(),
            balance_minor: 5_000,
        },
    ]
}

impl Ledger {
    /// A fresh ledger with alice (1000.00 EUR) and bob (50.00 EUR).
    pub async fn start(dir: &Path) -> Ledger {
        Ledger::start_at(dir.join("ledger-db")).await
    }

    pub async fn start_at(db_path: PathBuf) -> Ledger {
        let mut config = LedgerConfig::new(&db_path);
        config.seeds = seeds();
        Ledger::start_with(config).await
    }

    pub async fn start_with(config: LedgerConfig) -> Ledger {
        let db_path = config.db_path.clone();
        let running = LedgerServer::start(config).await.expect("ledger starts");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Ledger {
            base: running.base_url(),
            running,
            client,
            db_path,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("request sent");
        answer(response).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        let response = self
            .client
            .put(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("request sent");
        answer(response).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request sent");
        answer(response).await
    }

    pub async fn hold(&self, key: &str, account: &str, amount_minor: u64) -> Answer {
        self.post(
            "/v1/holds",
            json!({"idempotency_key": key, "account": account, "amount_minor": amount_minor,
                   "currency": "EUR", "reference": format!("ref-{key}")}),
        )
        .await
    }

    pub async fn capture(&self, hold_id: &str, key: &str, amount_minor: u64) -> Answer {
        self.post(
            &format!("/v1/holds/{hold_id}/capture"),
            json!({"idempotency_key": key, "amount_minor": amount_minor}),
        )
        .await
    }

    pub async fn void(&self, hold_id: &str, key: &str) -> Answer {
        self.post(
            &format!("/v1/holds/{hold_id}/void"),
            json!({"idempotency_key": key}),
        )
        .await
    }

    pub async fn transaction(
        &self,
        key: &str,
        account: &str,
        kind: &str,
        amount_minor: u64,
    ) -> Answer {
        self.post(
            "/v1/transactions",
            json!({"idempotency_key": key, "account": account, "kind": kind,
                   "amount_minor": amount_minor, "currency": "EUR", "reference": format!("ref-{key}")}),
        )
        .await
    }

    /// (balance_minor, held_minor, available_minor)
    pub async fn balance(&self, account: &str) -> (i64, u64, i64) {
        let answer = self.get(&format!("/v1/balances/{account}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        let b = &answer.body;
        (
            b["balance_minor"].as_i64().expect("balance"),
            b["held_minor"].as_u64().expect("held"),
            b["available_minor"].as_i64().expect("available"),
        )
    }

    pub async fn movements(&self, query: &str) -> Vec<Value> {
        let answer = self.get(&format!("/v1/movements{query}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        answer.body["movements"]
            .as_array()
            .expect("movements")
            .clone()
    }

    /// The books balance: every currency sums to zero, no hold captured twice.
    pub async fn assert_books_balanced(&self) {
        let answer = self.get("/admin/invariants").await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        let inv = &answer.body;
        assert_eq!(inv["ok"], json!(true), "{inv}");
        assert_eq!(inv["holds_captured_twice"], json!(0), "{inv}");
        for (currency, sum) in inv["sum_minor_by_currency"].as_object().expect("sums") {
            assert_eq!(sum, &json!(0), "books of {currency} do not balance: {inv}");
        }
    }

    /// Checks the books, then stops the server and closes the database.
    pub async fn finish(self) {
        self.running.faults().clear();
        self.assert_books_balanced().await;
        self.running.shutdown().await.expect("clean shutdown");
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v.as_bytes() == b"true");
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    if !status.is_success() {
        assert!(
            body["error"].is_string() && body["message"].is_string(),
            "error body shape: {body}"
        );
    }
    Answer {
        status,
        body,
        replayed,
    }
}
