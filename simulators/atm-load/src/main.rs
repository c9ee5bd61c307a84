//! `atm-load`: the load generator as a process (the work is in `atm_load`).
//!
//! ```text
//! atm-load --duration 10 --connections 8 --in-flight 8            # in-process ledger + switch
//! atm-load --switch 127.0.0.1:8583 --pki ./pki --rate 2000 --json  # a running switch
//! ```
//! Logs go to stderr (`RUST_LOG` filters, default `warn`, so logging does not skew the figures).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use atm_load::{self as load, LoadOptions, Target, Workload};
use clap::Parser;

/// Load generator for the host switch: authorizations and withdrawal sagas over ISO 8583 /
/// mutual TLS, beside a bare TLS echo baseline measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "atm-load", version)]
struct Args {
    /// Seconds per phase (echo, authorizations, sagas).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Concurrent TLS connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Operations outstanding per connection (pipelining).
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// Operations started per second over all connections; flat out when left out.
    #[arg(long)]
    rate: Option<u32>,
    /// A running switch (HOST:PORT); by default ledger-sim and the switch start in this process.
    #[arg(long, requires = "pki")]
    switch: Option<String>,
    /// PKI directory of the running switch (ca.pem, agent.pem, agent.key).
    #[arg(long, requires = "switch")]
    pki: Option<PathBuf>,
    /// Wallet cards to spread the load over (a running ledger must have their accounts).
    #[arg(long, default_value_t = load::CARDS_DEFAULT)]
    cards: usize,
    /// Phases to run, in order (comma-separated): echo, auth, saga.
    #[arg(long, value_delimiter = ',', default_value = "echo,auth,saga", value_parser = parse_phase)]
    phases: Vec<Workload>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let target = match (args.switch, args.pki) {
        (Some(switch), Some(pki_dir)) => Target::External { switch, pki_dir },
        _ => Target::InProcess,
    };
    let options = LoadOptions {
        duration: Duration::from_secs(args.duration),
        connections: args.connections,
        in_flight: args.in_flight,
        rate: args.rate,
        cards: args.cards,
        phases: args.phases,
        target,
        ..LoadOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let report = runtime
        .block_on(load::run(&options))
        .context("load run failed")?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

fn parse_phase(name: &str) -> Result<Workload, String> {
    match name {
        "echo" => Ok(Workload::Echo),
        "auth" => Ok(Workload::Authorization),
        "saga" => Ok(Workload::Saga),
        other => Err(format!("unknown phase {other:?} (echo, auth, saga)")),
    }
}
