//! The wallet ledger over REST (the contract is `simulators/ledger-sim/openapi/ledger-v1.json`).
//!
//! Every call goes through, in order: the circuit breaker (an open breaker answers at once), a
//! timeout, and — since every ledger call carries an idempotency key — a short retry with
//! exponential backoff for transient failures (5xx, connection errors, timeouts). Business answers
//! (402, 404, 409, 422) are not failures for the breaker: the ledger is healthy and said no.
//!
//! A call whose first attempt reached the ledger and failed ambiguously (a timeout, a 5xx, a lost
//! connection: the ledger may have applied it) stays ambiguous whatever its retries meet: when the
//! breaker refuses a retry, the caller gets the ambiguous error, never `BreakerOpen`, which means
//! "not sent" and lets the caller treat it as a plain decline.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use protocols::types::{Amount, Currency};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;

use crate::breaker::CircuitBreaker;
use crate::config::LedgerConfig;
use crate::domain::reconcile::{LedgerMovement, MovementKind};
use crate::ports::{Balance, Hold, Ledger, LedgerError, PostingKind};

pub struct HttpLedger {
    client: reqwest::Client,
    base: String,
    timeout: Duration,
    retries: usize,
    breaker: Arc<CircuitBreaker>,
}

#[derive(Deserialize)]
struct HoldBody {
    hold_id: String,
    amount_minor: u64,
}

#[derive(Deserialize)]
struct TransactionBody {
    transaction_id: String,
}

#[derive(Deserialize)]
struct BalanceBody {
    currency: String,
    balance_minor: i64,
    available_minor: i64,
}

#[derive(Deserialize)]
struct MovementPage {
    movements: Vec<MovementBody>,
    #[serde(default)]
    next_after: Option<String>,
}

#[derive(Deserialize)]
struct MovementBody {
    kind: String,
    amount_minor: u64,
    reference: String,
}

#[derive(Deserialize, Serialize)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: String,
}

impl HttpLedger {
    pub fn new(
        config: &LedgerConfig,
        breaker: Arc<CircuitBreaker>,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Self {
            client,
            base: config.url.trim_end_matches('/').to_owned(),
            timeout: Duration::from_millis(config.timeout_ms),
            retries: config.retries,
            breaker,
        })
    }

    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }

    /// One attempt: breaker permit, timeout, classification of the answer.
    async fn attempt(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, bytes::Bytes), LedgerError> {
        let permit = self
            .breaker
            .try_acquire()
            .map_err(|_| LedgerError::BreakerOpen)?;
        let started = Instant::now();
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(b) = body {
            req = req.json(b);
        }
        let outcome = tokio::time::timeout(self.timeout, async {
            let resp = req.send().await?;
            let status = resp.status();
            let bytes = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        })
        .await;
        let elapsed = started.elapsed();
        match outcome {
            Err(_) => {
                permit.failure(elapsed);
                Err(LedgerError::Timeout(self.timeout.as_millis() as u64))
            }
            Ok(Err(e)) => {
                permit.failure(elapsed);
                Err(LedgerError::Unavailable(e.without_url().to_string()))
            }
            Ok(Ok((status, _))) if status.is_server_error() => {
                permit.failure(elapsed);
                Err(LedgerError::Unavailable(format!("HTTP {status}")))
            }
            Ok(Ok((status, bytes))) => {
                permit.success(elapsed);
                Ok((status, bytes))
            }
        }
    }

    /// A call with retries for transient failures (all ledger calls are idempotent).
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, LedgerError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(25))
            .with_max_delay(Duration::from_millis(250))
            .with_max_times(self.retries)
            .with_jitter();
        // The last attempt that may have reached the books, if any failed that way.
        let ambiguous: std::sync::Mutex<Option<LedgerError>> = std::sync::Mutex::new(None);
        let outcome = (|| async {
            let result = self.attempt(method.clone(), path, body.as_ref()).await;
            if let Err(e) = &result {
                if e.may_have_applied() {
                    if let Ok(mut last) = ambiguous.lock() {
                        *last = Some(e.clone());
                    }
                }
            }
            result
        })
        .retry(backoff)
        .when(|e: &LedgerError| e.may_have_applied())
        .await;
        let (status, bytes) = match outcome {
            Ok(answer) => answer,
            Err(LedgerError::BreakerOpen) => {
                let earlier = ambiguous.lock().ok().and_then(|mut last| last.take());
                return Err(earlier.unwrap_or(LedgerError::BreakerOpen));
            }
            Err(e) => return Err(e),
        };
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                LedgerError::Unavailable(format!(
                    "ledger answered {status} with an unreadable body: {e}"
                ))
            });
        }
        let err: ErrorBody = serde_json::from_slice(&bytes).unwrap_or(ErrorBody {
            error: String::new(),
            message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
        });
        Err(match status {
            StatusCode::PAYMENT_REQUIRED => LedgerError::InsufficientFunds,
            StatusCode::NOT_FOUND => LedgerError::UnknownAccount,
            StatusCode::CONFLICT => {
                LedgerError::Conflict(format!("{}: {}", err.error, err.message))
            }
            _ => LedgerError::Invalid(format!("HTTP {status} {}: {}", err.error, err.message)),
        })
    }
}

fn currency_code(c: Currency) -> Result<&'static str, LedgerError> {
    c.alpha().ok_or_else(|| {
        LedgerError::Invalid(format!(
            "currency {c} has no alphabetic code known to the switch"
        ))
    })
}

impl Ledger for HttpLedger {
    async fn hold(
        &self,
        key: &str,
        account: &str,
        amount: Amount,
        reference: &str,
    ) -> Result<Hold, LedgerError> {
        let body = json!({
            "idempotency_key": key, "account": account, "amount_minor": amount.minor,
            "currency": currency_code(amount.currency)?, "reference": reference,
        });
        let h: HoldBody = self
            .call(reqwest::Method::POST, "/v1/holds", Some(body))
            .await?;
        Ok(Hold {
            hold_id: h.hold_id,
            amount: Amount::new(h.amount_minor, amount.currency),
        })
    }

    async fn capture(
        &self,
        key: &str,
        hold_id: &str,
        amount_minor: u64,
    ) -> Result<(), LedgerError> {
        let body = json!({ "idempotency_key": key, "amount_minor": amount_minor });
        let _: serde_json::Value = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/holds/{hold_id}/capture"),
                Some(body),
            )
            .await?;
        Ok(())
    }

    async fn void(&self, key: &str, hold_id: &str) -> Result<(), LedgerError> {
        let body = json!({ "idempotency_key": key });
        let _: serde_json::Value = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/holds/{hold_id}/void"),
                Some(body),
            )
            .await?;
        Ok(())
    }

    async fn post(
        &self,
        key: &str,
        kind: PostingKind,
        account: &str,
        amount: Amount,
        reference: &str,
    ) -> Result<String, LedgerError> {
        let kind = match kind {
            PostingKind::Credit => "credit",
            PostingKind::Debit => "debit",
        };
        let body = json!({
            "idempotency_key": key, "account": account, "kind": kind, "amount_minor": amount.minor,
            "currency": currency_code(amount.currency)?, "reference": reference,
        });
        let t: TransactionBody = self
            .call(reqwest::Method::POST, "/v1/transactions", Some(body))
            .await?;
        Ok(t.transaction_id)
    }

    async fn balance(&self, account: &str) -> Result<Balance, LedgerError> {
        let b: BalanceBody = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/balances/{account}"),
                None,
            )
            .await?;
        let currency = Currency::from_alpha(&b.currency)
            .or_else(|| Currency::parse(&b.currency).ok())
            .ok_or_else(|| {
                LedgerError::Invalid(format!(
                    "ledger answered with unknown currency {:?}",
                    b.currency
                ))
            })?;
        Ok(Balance {
            available_minor: b.available_minor,
            balance_minor: b.balance_minor,
            currency,
        })
    }

    async fn movements(&self) -> Result<Vec<LedgerMovement>, LedgerError> {
        let mut all = Vec::new();
        let mut path = "/v1/movements".to_owned();
        loop {
            let page: MovementPage = self.call(reqwest::Method::GET, &path, None).await?;
            all.extend(page.movements);
            match page.next_after {
                Some(after) => path = format!("/v1/movements?after={after}"),
                None => break,
            }
        }
        // Only the kinds the switch posts take part in reconciliation; the ledger's own
        // (opening balances, "funding") are not the switch's business.
        Ok(all
            .into_iter()
            .filter_map(|m| {
                let kind = match m.kind.as_str() {
                    "capture" => MovementKind::Capture,
                    "credit" => MovementKind::Credit,
                    "debit" => MovementKind::Debit,
                    _ => return None,
                };
                Some(LedgerMovement {
                    kind,
                    amount_minor: m.amount_minor,
                    reference: m.reference,
                })
            })
            .collect())
    }
}
