//! The HTTP face of the ledger: axum routes, request parsing, error bodies.
//!
//! The contract is `openapi/ledger-v1.json`; [`ROUTES`] lists what this file serves and a test
//! checks the two agree. Handlers are thin: parse the body into a validated command (a value
//! that exists is valid), hand it to the store, map the outcome to a status code.
//!
//! Layers, outermost first: an in-flight cap (503 `overloaded` past it, so load tests see load
//! shedding rather than an ever-growing queue), a body size limit, then — on `/v1` only — fault
//! injection: before the handler (down, error rate, latency) and after it (a lost answer: the
//! handler ran, the books changed, and the answer is dropped with the connection, replaced by a
//! 503 `answer_lost`, or held back; see [`crate::faults`] and [`crate::connection`]).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{response, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::connection::ConnectionCutter;
use super::domain::{
    self, AmountMinor, Currency, CustomerAccount, DomainError, HoldStatus, IdempotencyKey,
    Reference, Transaction, TransactionKind,
};
use super::faults::{Applied, FaultConfig, Faults, LostAnswer, Verdict};
use super::store::{
    self, CaptureHold, NewHold, NewTransaction, OpenAccount, Recorded, Store, StoreError, VoidHold,
};

/// Every (method, path template) served, in OpenAPI path syntax.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/holds"),
    ("get", "/v1/holds/{hold_id}"),
    ("post", "/v1/holds/{hold_id}/capture"),
    ("post", "/v1/holds/{hold_id}/void"),
    ("post", "/v1/transactions"),
    ("get", "/v1/balances/{account}"),
    ("get", "/v1/movements"),
    ("post", "/admin/accounts"),
    ("get", "/admin/faults"),
    ("put", "/admin/faults"),
    ("get", "/admin/invariants"),
    ("get", "/admin/holds"),
];

/// Header set on an answer that was replayed from an idempotency record (no new effect).
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Largest request body accepted.
pub const BODY_BYTES_MAX: usize = 16 * 1024;
/// Default page size of `GET /v1/movements`.
pub const MOVEMENTS_PAGE_DEFAULT: usize = 1_000;
/// Default number of holds `GET /admin/holds` lists.
pub const HOLDS_PAGE_DEFAULT: usize = 1_000;
/// Largest answer the fault layer reads back when it loses one (wallet answers are small JSON).
const ANSWER_BYTES_MAX: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub faults: Faults,
    pub in_flight: Arc<Semaphore>,
}

pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/v1/holds", post(create_hold))
        .route("/v1/holds/{hold_id}", get(get_hold))
        .route("/v1/holds/{hold_id}/capture", post(capture_hold))
        .route("/v1/holds/{hold_id}/void", post(void_hold))
        .route("/v1/transactions", post(create_transaction))
        .route("/v1/balances/{account}", get(get_balance))
        .route("/v1/movements", get(list_movements))
        .route_layer(middleware::from_fn_with_state(
            state.faults.clone(),
            inject_faults,
        ));
    let admin = Router::new()
        .route("/admin/accounts", post(open_account))
        .route("/admin/faults", get(get_faults).put(put_faults))
        .route("/admin/invariants", get(get_invariants))
        .route("/admin/holds", get(list_holds));
    v1.merge(admin)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(middleware::from_fn_with_state(
            state.in_flight.clone(),
            limit_in_flight,
        ))
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// The error body of every non-2xx answer: `{"error": code, "message": text}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_owned(),
            message: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        let status = match &error {
            DomainError::InsufficientFunds { .. } => StatusCode::PAYMENT_REQUIRED,
            DomainError::UnknownAccount(_) | DomainError::UnknownHold(_) => StatusCode::NOT_FOUND,
            DomainError::IdempotencyConflict(_)
            | DomainError::HoldVoided(_)
            | DomainError::HoldCaptured { .. }
            | DomainError::AccountExists { .. } => StatusCode::CONFLICT,
            DomainError::InvalidAmount(_)
            | DomainError::InvalidCurrency(_)
            | DomainError::InvalidAccount(_)
            | DomainError::InvalidReference(_)
            | DomainError::InvalidIdempotencyKey(_)
            | DomainError::CurrencyMismatch { .. }
            | DomainError::CaptureExceedsHold { .. }
            | DomainError::Overflow(_) => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, error.code(), error.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Rejected(domain) => domain.into(),
            other => {
                tracing::error!(error = %other, "ledger storage failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    other.to_string(),
                )
            }
        }
    }
}

/// `Json<T>` whose rejection is our error body (400 `invalid_request`).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                rejection.body_text(),
            )),
        }
    }
}

/// A query string that does not parse: 400 `invalid_request`, with axum's reason.
fn bad_query(rejection: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        rejection.body_text(),
    )
}

fn answer<T: Serialize>(status: StatusCode, recorded: Recorded<T>) -> Response {
    let mut response = (status, Json(recorded.value)).into_response();
    if recorded.replayed {
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
}

/// The current time as the RFC 3339 text stored in holds and movements.
pub(crate) fn now() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    domain::rfc3339_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

// ---------------------------------------------------------------------------------------------
// Wallet API
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldRequest {
    idempotency_key: String,
    account: String,
    amount_minor: u64,
    currency: String,
    #[serde(default)]
    reference: String,
}

async fn create_hold(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<HoldRequest>,
) -> Result<Response, ApiError> {
    let cmd = NewHold {
        key: IdempotencyKey::parse(&body.idempotency_key)?,
        account: CustomerAccount::parse(&body.account)?,
        amount: AmountMinor::new(body.amount_minor)?,
        currency: Currency::parse(&body.currency)?,
        reference: Reference::parse(&body.reference)?,
    };
    let now = now();
    let recorded = state.store.write(move |s| s.place_hold(&cmd, &now)).await?;
    Ok(answer(StatusCode::CREATED, recorded))
}

async fn get_hold(
    State(state): State<AppState>,
    Path(hold_id): Path<String>,
) -> Result<Response, ApiError> {
    let hold = state.store.read(move |s| s.hold(&hold_id)).await?;
    Ok(Json(hold).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptureRequest {
    idempotency_key: String,
    amount_minor: u64,
}

async fn capture_hold(
    State(state): State<AppState>,
    Path(hold_id): Path<String>,
    ApiJson(body): ApiJson<CaptureRequest>,
) -> Result<Response, ApiError> {
    let cmd = CaptureHold {
        key: IdempotencyKey::parse(&body.idempotency_key)?,
        hold_id,
        amount: AmountMinor::new(body.amount_minor)?,
    };
    let now = now();
    let recorded = state
        .store
        .write(move |s| s.capture_hold(&cmd, &now))
        .await?;
    Ok(answer(StatusCode::OK, recorded))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VoidRequest {
    idempotency_key: String,
}

async fn void_hold(
    State(state): State<AppState>,
    Path(hold_id): Path<String>,
    ApiJson(body): ApiJson<VoidRequest>,
) -> Result<Response, ApiError> {
    let cmd = VoidHold {
        key: IdempotencyKey::parse(&body.idempotency_key)?,
        hold_id,
    };
    let recorded = state.store.write(move |s| s.void_hold(&cmd)).await?;
    Ok(answer(StatusCode::OK, recorded))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransactionRequest {
    idempotency_key: String,
    account: String,
    kind: TransactionKind,
    amount_minor: u64,
    currency: String,
    #[serde(default)]
    reference: String,
}

async fn create_transaction(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TransactionRequest>,
) -> Result<Response, ApiError> {
    let cmd = NewTransaction {
        key: IdempotencyKey::parse(&body.idempotency_key)?,
        account: CustomerAccount::parse(&body.account)?,
        kind: body.kind,
        amount: AmountMinor::new(body.amount_minor)?,
        currency: Currency::parse(&body.currency)?,
        reference: Reference::parse(&body.reference)?,
    };
    let now = now();
    let recorded = state
        .store
        .write(move |s| s.post_transaction(&cmd, &now))
        .await?;
    Ok(answer(StatusCode::CREATED, recorded))
}

async fn get_balance(
    State(state): State<AppState>,
    Path(account): Path<String>,
) -> Result<Response, ApiError> {
    let balance = state.store.read(move |s| s.balance(&account)).await?;
    Ok(Json(balance).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MovementsQuery {
    reference: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

async fn list_movements(
    State(state): State<AppState>,
    query: Result<Query<MovementsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let after = match &query.after {
        None => None,
        Some(id) => Some(store::parse_movement_id(id).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!(
                    "after: {:?} is not a movement id",
                    id.chars().take(40).collect::<String>()
                ),
            )
        })?),
    };
    let limit = query.limit.unwrap_or(MOVEMENTS_PAGE_DEFAULT);
    let page = state
        .store
        .read(move |s| s.list_movements(query.reference.as_deref(), after, limit))
        .await?;
    Ok(Json(page).into_response())
}

// ---------------------------------------------------------------------------------------------
// Admin API (never subject to fault injection)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenAccountRequest {
    account: String,
    currency: String,
    #[serde(default)]
    balance_minor: u64,
}

async fn open_account(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<OpenAccountRequest>,
) -> Result<Response, ApiError> {
    let cmd = OpenAccount {
        account: CustomerAccount::parse(&body.account)?,
        currency: Currency::parse(&body.currency)?,
        balance_minor: body.balance_minor,
    };
    let now = now();
    let recorded = state
        .store
        .write(move |s| s.open_account(&cmd, &now))
        .await?;
    let status = if recorded.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(answer(status, recorded))
}

async fn get_faults(State(state): State<AppState>) -> Json<FaultConfig> {
    Json(state.faults.get())
}

async fn put_faults(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<FaultConfig>,
) -> Result<Json<FaultConfig>, ApiError> {
    state.faults.set(body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_faults",
            e.to_string(),
        )
    })?;
    tracing::info!(?body, "faults changed");
    Ok(Json(state.faults.get()))
}

async fn get_invariants(State(state): State<AppState>) -> Result<Response, ApiError> {
    let invariants = state.store.read(|s| s.invariants()).await?;
    if !invariants.ok {
        tracing::error!(?invariants, "ledger invariants broken");
    }
    Ok(Json(invariants).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldsQuery {
    status: Option<HoldStatus>,
    limit: Option<usize>,
}

/// `GET /admin/holds?status=held`: the holds still open, say, oldest first, and how many.
async fn list_holds(
    State(state): State<AppState>,
    query: Result<Query<HoldsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let limit = query.limit.unwrap_or(HOLDS_PAGE_DEFAULT);
    let list = state
        .store
        .read(move |s| s.holds(query.status, limit))
        .await?;
    Ok(Json(list).into_response())
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

// ---------------------------------------------------------------------------------------------
// Middleware
// ---------------------------------------------------------------------------------------------

async fn inject_faults(State(faults): State<Faults>, req: Request, next: Next) -> Response {
    match faults.verdict() {
        Verdict::Down => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ledger_down",
            "ledger is down (injected fault)",
        )
        .into_response(),
        Verdict::Fail(delay) => {
            tokio::time::sleep(delay).await;
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "injected_error",
                "injected error; nothing was done",
            )
            .into_response()
        }
        Verdict::Pass(delay) => {
            tokio::time::sleep(delay).await;
            // Only writes have an outcome to be ambiguous about.
            let lost = match *req.method() {
                Method::POST => faults.lose_answer(),
                _ => None,
            };
            let Some(how) = lost else {
                return next.run(req).await;
            };
            let cutter = req
                .extensions()
                .get::<ConnectInfo<ConnectionCutter>>()
                .map(|c| c.0.clone());
            let path = req.uri().path().to_owned();
            let response = next.run(req).await;
            lose_answer(&faults, how, &path, cutter, response).await
        }
    }
}

/// The request has been handled (its effect, if any, is on disk): its answer is lost as `how`
/// says, and counted.
async fn lose_answer(
    faults: &Faults,
    how: LostAnswer,
    path: &str,
    cutter: Option<ConnectionCutter>,
    response: Response,
) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, ANSWER_BYTES_MAX).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!(%error, path, "could not read back an answer to lose");
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the answer could not be read back",
            )
            .into_response();
        }
    };
    let applied = applied(path, &parts, &bytes);
    faults.note_lost(applied);
    tracing::info!(
        path,
        status = parts.status.as_u16(),
        mode = how.mode(),
        ?applied,
        "answer lost after the request was handled (injected fault)"
    );
    match how {
        LostAnswer::Late { ms } => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Response::from_parts(parts, Body::from(bytes))
        }
        LostAnswer::Drop => match cutter {
            // The 503 below is never written: the connection refuses it and closes.
            Some(cutter) => {
                cutter.cut();
                answer_lost()
            }
            None => {
                tracing::warn!(
                    path,
                    "no connection to cut (router served without connect info): answering 503"
                );
                answer_lost()
            }
        },
        LostAnswer::ServerError => answer_lost(),
    }
}

fn answer_lost() -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "answer_lost",
        "injected fault: the request was handled and its answer lost; \
         repeat it with the same idempotency key to learn the outcome",
    )
    .into_response()
}

/// Which operation took effect, from the answer the handler gave (2xx and not a replay).
fn applied(path: &str, parts: &response::Parts, body: &[u8]) -> Option<Applied> {
    if !parts.status.is_success() || parts.headers.contains_key(REPLAYED_HEADER) {
        return None;
    }
    if path == "/v1/holds" {
        Some(Applied::Hold)
    } else if path.ends_with("/capture") {
        Some(Applied::Capture)
    } else if path.ends_with("/void") {
        Some(Applied::Void)
    } else if path == "/v1/transactions" {
        let txn: Transaction = serde_json::from_slice(body).ok()?;
        Some(match txn.kind {
            TransactionKind::Credit => Applied::Credit,
            TransactionKind::Debit => Applied::Debit,
        })
    } else {
        None
    }
}

async fn limit_in_flight(
    State(permits): State<Arc<Semaphore>>,
    req: Request,
    next: Next,
) -> Response {
    let Ok(_permit) = permits.try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in flight",
        )
        .into_response();
    };
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request");
    response
}
