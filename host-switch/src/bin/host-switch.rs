//! `host-switch --config switch.toml`: the central switch daemon.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use host_switch::config::Config;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "host-switch",
    version,
    about = "Central ATM switch for the wallet route"
)]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, default_value = "host-switch.toml")]
    config: PathBuf,
    /// Log as JSON lines (for log shippers) instead of human-readable text.
    #[arg(long)]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if args.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let config = Config::load(&args.config)?;
    let running = host_switch::runtime::start(&config)
        .await
        .context("cannot start the switch")?;
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for ctrl-c")?;
    tracing::info!("shutting down: finishing in-flight requests");
    running.shutdown().await;
    Ok(())
}
