//! `host-switch --config switch.toml`: the central switch daemon.
//! `host-switch keys load-components|list --config switch.toml`: offline key entry (the switch
//! stopped: a running switch holds the key store's lock).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use host_switch::cli::{keys as keys_cli, CliError};
use host_switch::config::Config;
use keystore::{KeyName, KeyStore, KeyUsage};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "host-switch",
    version,
    about = "Central ATM switch for the wallet route"
)]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, global = true, default_value = "host-switch.toml")]
    config: PathBuf,
    /// Log as JSON lines (for log shippers) instead of human-readable text.
    #[arg(long)]
    log_json: bool,
    /// Without a command: run the switch.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The key store (offline: stop the switch first).
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Combine key components typed by their custodians (stdin, one `COMPONENT_HEX KCV_HEX` per
    /// line, empty line or end of input to finish) into the next version of NAME.
    LoadComponents {
        /// Key name: `zmk` for the zone master key, `pvk/<name>` for a PIN verification key.
        name: String,
        /// `zone_master` for `zmk`, `pin_verification` for a PVK (the usages of before, `master`
        /// and `pin`, named terminal and zone keys alike and are no longer taken).
        #[arg(long, value_parser = ["zone_master", "pin_verification"])]
        usage: String,
    },
    /// Every key version: name, version, usage, check value (never a key).
    List,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        None => match run_switch(args.config, args.log_json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("host-switch: {e:#}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Keys(cmd)) => match keys(&args.config, cmd) {
            Ok(out) => {
                println!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("host-switch: {e}");
                ExitCode::from(2)
            }
        },
    }
}

#[tokio::main]
async fn run_switch(config: PathBuf, log_json: bool) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let config = Config::load(&config)?;
    // Installed before start-up, so a SIGTERM during start-up is a stop request, not a kill.
    let stop = daemon::stop::install().context("cannot install the SIGTERM/SIGINT handlers")?;
    let running = host_switch::runtime::start(&config)
        .await
        .context("cannot start the switch")?;
    let signal = stop.await;
    tracing::info!(%signal, "stopping: no new connections, finishing in-flight requests");
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

fn keys(config: &std::path::Path, cmd: KeysCommand) -> Result<String, CliError> {
    let config = Config::load(config).map_err(|e| CliError::new(e.report()))?;
    let keys = config
        .keys
        .as_ref()
        .ok_or_else(|| CliError::new("the configuration has no [keys] section"))?;
    let store = host_switch::runtime::open_key_store(keys)
        .map_err(|e| CliError::new(format!("{e} (is the switch running? it locks the store)")))?;
    match cmd {
        KeysCommand::List => {
            let list = store.list().map_err(|e| CliError::new(e.to_string()))?;
            Ok(keys_cli::render_list(&list))
        }
        KeysCommand::LoadComponents { name, usage } => {
            let name = KeyName::new(name).map_err(|e| CliError::new(e.to_string()))?;
            let usage: KeyUsage = usage
                .parse()
                .map_err(|e: keystore::KeyStoreError| CliError::new(e.to_string()))?;
            let (components, kcvs) =
                keystore::ceremony::read_components_from_stdin().map_err(CliError::new)?;
            let info = store
                .load_components(&name, usage, &components, &kcvs)
                .map_err(|e| CliError::new(e.to_string()))?;
            Ok(keys_cli::render_loaded(&info))
        }
    }
}
