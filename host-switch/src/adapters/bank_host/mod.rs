//! The bank host route's outbound adapter: another bank's host over ISO 8583, in that host's
//! dialect (a spec file), over TCP or TLS.
//!
//! - `link`: a pool of signed-on connections with echo, matching and reconnect;
//! - `messages`: the messages the switch sends and the answers it reads, field by field;
//! - `saf`: the durable store-and-forward queue for advices (0220/0221, 0420/0421) and the sealed
//!   card data of every original, so a timeout reversal names the card after a crash;
//! - `traces`: STANs and retrieval references unique per host.
//!
//! Every request goes through the host's circuit breaker and timeout. A request that got no
//! answer (timeout, line lost after the send, an answer that does not read) is an unknown
//! outcome (`IssuerError::may_have_applied`): the application reverses it.

mod link;
pub mod messages;
mod saf;
mod traces;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use protocols::iso8583::Spec;
use tokio::sync::watch;

use crate::adapters::sled_cards::CardDataSeal;
use crate::adapters::sled_journal::SledDb;
use crate::breaker::CircuitBreaker;
use crate::config::BankHostConfig;
use crate::domain::issuer::{
    AdviceKind, HostAdvice, HostAnswer, HostRequest, HostTrace, HostTxn, IssuerError,
};
use crate::domain::ResponseCode;
use crate::ports::IssuerHost;
use link::{LinkError, LinkSettings, Pool};
use messages::{Acquirer, AdviceParts};
use saf::Saf;
use traces::Traces;

/// Exponential backoff with jitter between `min` and `max`, for reconnects and advice repeats.
fn retry_backoff(min: Duration, max: Duration) -> backon::ExponentialBackoff {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Why a bank host cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum BankHostError {
    #[error("bank host {host}: {reason}")]
    Config { host: String, reason: String },
    #[error("bank host {host}: store-and-forward queue: {source}")]
    Saf {
        host: String,
        #[source]
        source: saf::SafError,
    },
}

pub struct BankHost {
    name: String,
    spec: Arc<Spec>,
    acquirer: Acquirer,
    pool: Arc<Pool>,
    breaker: Arc<CircuitBreaker>,
    traces: Arc<Traces>,
    saf: Arc<Saf>,
    timeout: Duration,
    deposits: bool,
    /// The host's zone PIN key, when one is configured.
    zpk: Option<keystore::KeyName>,
}

impl BankHost {
    /// Starts the host's connections and its advice worker; they stop with `shutdown`.
    pub fn start(
        config: &BankHostConfig,
        db: &SledDb,
        seal: Option<Arc<CardDataSeal>>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(Arc<BankHost>, Vec<tokio::task::JoinHandle<()>>), BankHostError> {
        let host = config.name.clone();
        let bad = |reason: String| BankHostError::Config {
            host: host.clone(),
            reason,
        };
        let spec = Arc::new(config.load_spec().map_err(bad)?);
        let prefix = config.length_prefix().map_err(bad)?;
        let tls = match &config.tls {
            None => None,
            Some(t) => {
                let client = mtls::client_config(mtls::ClientTlsFiles {
                    cert: t.cert.clone(),
                    key: t.key.clone(),
                    server_ca: t.ca.clone(),
                })
                .map_err(|e| bad(format!("tls: {e}")))?;
                let name = t.server_name.clone().unwrap_or_else(|| {
                    config
                        .address
                        .rsplit_once(':')
                        .map(|(h, _)| h.to_owned())
                        .unwrap_or_default()
                });
                let server_name =
                    mtls::server_name(&name).map_err(|e| bad(format!("tls.server_name: {e}")))?;
                Some((tokio_rustls::TlsConnector::from(client), server_name))
            }
        };
        let zpk = config
            .zpk
            .as_ref()
            .map(|z| keystore::KeyName::new(z.clone()))
            .transpose()
            .map_err(|e| bad(format!("zpk: {e}")))?;
        let settings = LinkSettings {
            host: host.clone(),
            address: config.address.clone(),
            spec: spec.clone(),
            prefix,
            tls,
            timeout: Duration::from_millis(config.timeout_ms),
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            echo_interval: Duration::from_millis(config.echo_interval_ms),
            retry_min: Duration::from_millis(config.retry_min_ms),
            retry_max: Duration::from_millis(config.retry_max_ms),
        };
        if seal.is_none() {
            tracing::warn!(target: "security", host = %host, "no data protection key: the bank host's store-and-forward queue keeps card numbers in clear");
        }
        let saf = Arc::new(
            Saf::open(db, &host, seal).map_err(|source| BankHostError::Saf {
                host: host.clone(),
                source,
            })?,
        );
        let traces = Arc::new(Traces::new(db.db.clone(), &host));
        let (pool, mut tasks) = Pool::start(
            settings,
            config.connections,
            traces.clone(),
            shutdown.clone(),
        );
        tasks.push(tokio::spawn(saf.clone().run(
            pool.clone(),
            spec.clone(),
            Duration::from_millis(config.retry_min_ms),
            Duration::from_millis(config.retry_max_ms),
            shutdown,
        )));
        let breaker = Arc::new(CircuitBreaker::new(
            &format!("bank-host:{host}"),
            config.breaker.clone(),
        ));
        tracing::info!(host = %host, address = %config.address, spec = spec.name(), connections = config.connections, queued_advices = saf.depth(), "bank host route configured");
        Ok((
            Arc::new(BankHost {
                name: host,
                spec,
                acquirer: Acquirer {
                    id: config.acquirer_id.clone(),
                    location: config.acceptor_location.clone(),
                },
                pool,
                breaker,
                traces,
                saf,
                timeout: Duration::from_millis(config.timeout_ms),
                deposits: config.deposits,
                zpk,
            }),
            tasks,
        ))
    }

    fn error(&self, e: LinkError) -> IssuerError {
        let host = self.name.clone();
        match e {
            LinkError::NotConnected(reason) | LinkError::Pack(reason) => {
                IssuerError::NotConnected { host, reason }
            }
            LinkError::Lost(reason) => IssuerError::ConnectionLost { host, reason },
            LinkError::Timeout => IssuerError::Timeout {
                host,
                ms: self.timeout.as_millis() as u64,
            },
        }
    }

    async fn send_request(&self, req: HostRequest) -> Result<HostAnswer, IssuerError> {
        if req.txn == HostTxn::Deposit && !self.deposits {
            tracing::info!(host = %self.name, "the bank host takes no deposits: declined 12");
            return Ok(HostAnswer {
                code: ResponseCode::InvalidTransaction,
                approval_code: None,
                balances: None,
            });
        }
        let msg = messages::request(&self.spec, &self.acquirer, &req).map_err(|e| {
            IssuerError::NotConnected {
                host: self.name.clone(),
                reason: format!("the request cannot be written in the host's dialect: {e}"),
            }
        })?;
        if req.txn != HostTxn::BalanceInquiry {
            // Durable before anything leaves: a reversal must be able to name this card.
            self.saf
                .remember(&req.trace, &messages::original_card(&req))
                .await
                .map_err(|e| IssuerError::Storage {
                    host: self.name.clone(),
                    reason: e.to_string(),
                })?;
        }
        let permit = self
            .breaker
            .try_acquire()
            .map_err(|_| IssuerError::BreakerOpen(self.name.clone()))?;
        let started = Instant::now();
        let result = self.pool.exchange(msg).await;
        let elapsed = started.elapsed();
        match result {
            Ok(answer) => match messages::answer(&answer) {
                Ok(a) => {
                    permit.success(elapsed);
                    if a.code == ResponseCode::DoNotHonour
                        && answer.get_str(39).is_some_and(|c| c != "05")
                    {
                        tracing::warn!(host = %self.name, code = answer.get_str(39).unwrap_or(""), "bank host answered a code the dialect does not know: told the terminal 05");
                    }
                    Ok(a)
                }
                Err(reason) => {
                    permit.failure(elapsed);
                    Err(IssuerError::BadAnswer {
                        host: self.name.clone(),
                        reason,
                    })
                }
            },
            Err(e) => {
                permit.failure(elapsed);
                Err(self.error(e))
            }
        }
    }

    async fn queue_advice(&self, advice: HostAdvice, wait: bool) -> Result<(), IssuerError> {
        let storage = |e: saf::SafError| IssuerError::Storage {
            host: self.name.clone(),
            reason: e.to_string(),
        };
        if self.saf.state(&advice.id).map_err(storage)?.is_none() {
            let card = match self.saf.original(&advice.original) {
                Ok(card) => card,
                // Its card data is written before a request leaves: without it, the request
                // never left (the switch stopped in between), and there is nothing to reverse.
                Err(saf::SafError::NoOriginal(key)) if advice.kind == AdviceKind::Reversal => {
                    tracing::info!(host = %self.name, advice = %advice.id, original = %key, "the original never left the switch: nothing to reverse at the host");
                    return Ok(());
                }
                Err(e) => return Err(storage(e)),
            };
            let (stan, transmitted_at) =
                self.traces.next_stan().map_err(|e| IssuerError::Storage {
                    host: self.name.clone(),
                    reason: e.to_string(),
                })?;
            let msg = messages::advice(
                &self.acquirer,
                &AdviceParts {
                    kind: advice.kind,
                    original: &advice.original,
                    original_txn: advice.original_txn,
                    card: &card,
                    terminal: &advice.terminal,
                    amount: advice.amount,
                    actual_minor: advice.actual_minor,
                    stan,
                    transmitted_at: &transmitted_at,
                },
            )
            .map_err(|e| IssuerError::Storage {
                host: self.name.clone(),
                reason: format!("the advice cannot be written: {e}"),
            })?;
            let packed = zeroize::Zeroizing::new(self.spec.pack(&msg).map_err(|e| {
                IssuerError::Storage {
                    host: self.name.clone(),
                    reason: format!("the advice cannot be packed: {e}"),
                }
            })?);
            self.saf
                .enqueue(&advice.id, &packed)
                .await
                .map_err(storage)?;
            let what = match advice.kind {
                AdviceKind::Completion => "completion",
                AdviceKind::Reversal => "reversal",
            };
            tracing::info!(host = %self.name, advice = %advice.id, original_stan = advice.original.stan, what, "advice for the bank host queued");
        }
        let wait_for = if wait { self.timeout } else { Duration::ZERO };
        if self
            .saf
            .wait_acknowledged(&advice.id, wait_for)
            .await
            .map_err(storage)?
        {
            Ok(())
        } else {
            Err(IssuerError::Queued {
                host: self.name.clone(),
                id: advice.id,
            })
        }
    }
}

impl IssuerHost for BankHost {
    fn name(&self) -> &str {
        &self.name
    }

    fn trace(&self, txn: HostTxn) -> Result<HostTrace, IssuerError> {
        self.traces.trace(txn).map_err(|e| IssuerError::Storage {
            host: self.name.clone(),
            reason: e.to_string(),
        })
    }

    fn status(&self) -> crate::domain::issuer::IssuerStatus {
        crate::domain::issuer::IssuerStatus {
            connected: self.pool.is_up(),
            breaker: self.breaker.state(),
            queued_advices: self.saf.depth(),
        }
    }

    fn zpk(&self) -> Option<&keystore::KeyName> {
        self.zpk.as_ref()
    }

    fn request(&self, request: HostRequest) -> BoxFuture<'_, Result<HostAnswer, IssuerError>> {
        Box::pin(self.send_request(request))
    }

    fn advise(&self, advice: HostAdvice, wait: bool) -> BoxFuture<'_, Result<(), IssuerError>> {
        Box::pin(self.queue_advice(advice, wait))
    }
}
