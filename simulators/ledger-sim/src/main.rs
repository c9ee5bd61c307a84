//! `ledger-sim`: the wallet ledger simulator as a process.
//!
//! ```text
//! ledger-sim --listen 127.0.0.1:8081 --db ./ledger-db --seed alice:EUR:100000 --latency-ms 200
//! ```
//! Logs go to stderr (`RUST_LOG` filters, default `info`); ctrl-c (or SIGTERM) stops it gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use ledger_sim::{
    AccountSeed, FaultConfig, LedgerConfig, LedgerServer, LostAnswer, IN_FLIGHT_MAX_DEFAULT,
};

/// Wallet ledger simulator: holds, captures, voids, deposits and balances over HTTP
/// (contract: simulators/ledger-sim/openapi/ledger-v1.json).
#[derive(Debug, Parser)]
#[command(name = "ledger-sim", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// sled database directory (created if missing; all state survives restarts).
    #[arg(long, default_value = "./ledger-db")]
    db: PathBuf,
    /// Open an account at start if it does not exist yet: ACCOUNT:CURRENCY:MINOR (repeatable).
    #[arg(long = "seed", value_name = "ACCOUNT:CURRENCY:MINOR", value_parser = parse_seed)]
    seeds: Vec<AccountSeed>,
    /// Latency added to every wallet API request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of wallet API requests answered 503 (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Start "down": every wallet API request is answered 503 until PUT /admin/faults.
    #[arg(long)]
    down: bool,
    /// Share of wallet API writes applied to the books whose answer is then lost (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0)]
    lost_answer_rate: f64,
    /// How such an answer is lost: drop (connection closed, no response), server_error (503
    /// answer_lost) or late:MS (the real answer, MS milliseconds late).
    #[arg(long, default_value = "drop")]
    lost_answer: LostAnswer,
    /// Most requests handled at once; past it requests are answered 503 "overloaded".
    #[arg(long, default_value_t = IN_FLIGHT_MAX_DEFAULT)]
    in_flight_max: usize,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

fn parse_seed(text: &str) -> Result<AccountSeed, ledger_sim::LedgerError> {
    text.parse()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_json {
        logs.json().init();
    } else {
        logs.init();
    }

    let config = LedgerConfig {
        listen: args.listen,
        db_path: args.db.clone(),
        seeds: args.seeds,
        faults: FaultConfig {
            latency_ms: args.latency_ms,
            error_rate: args.error_rate,
            down: args.down,
            lost_answer_rate: args.lost_answer_rate,
            lost_answer: args.lost_answer,
        },
        in_flight_max: args.in_flight_max,
    };
    // Installed before start-up, so a SIGTERM during start-up is a stop request, not a kill.
    let stop = daemon::stop::install().context("installing the SIGTERM/SIGINT handlers")?;
    let ledger = LedgerServer::start(config).await.with_context(|| {
        format!(
            "starting ledger-sim on {} with db {}",
            args.listen,
            args.db.display()
        )
    })?;
    println!("ledger-sim listening on {}", ledger.base_url());

    let signal = stop.await;
    tracing::info!(%signal, "stopping: no new requests, finishing those in flight");
    ledger
        .shutdown()
        .await
        .context("shutting down ledger-sim")?;
    Ok(())
}
