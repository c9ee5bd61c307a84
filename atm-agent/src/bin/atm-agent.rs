//! `atm-agent --config agent.toml`: the edge daemon.

use std::path::PathBuf;

use anyhow::Context;
use atm_agent::config::Config;
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "atm-agent",
    version,
    about = "Edge daemon between NDC ATMs and the host switch"
)]
struct Args {
    #[arg(long, default_value = "atm-agent.toml")]
    config: PathBuf,
    /// Log as JSON lines instead of human-readable text.
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
    // Installed before start-up, so a SIGTERM during start-up is a stop request, not a kill.
    let stop = daemon::stop::install().context("cannot install the SIGTERM/SIGINT handlers")?;
    let running = atm_agent::runtime::start(&config)
        .await
        .context("cannot start the agent")?;
    let signal = stop.await;
    tracing::info!(%signal, "stopping: no new terminals, finishing customers in flight; queued advices stay on disk");
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
