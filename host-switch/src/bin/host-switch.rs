//! `host-switch --config switch.toml`: the central switch daemon.
//! `host-switch keys load-components|generate|list --config switch.toml`: offline key entry (the
//! switch stopped: a running switch holds the key store's lock).
//! `host-switch cards map-refs|rewrite-file|rekey-pins`: the move to keyed card references
//! (offline too; see OPERATIONS.md).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use host_switch::adapters::sled_cards::{CardDataSeal, SledCardPins};
use host_switch::adapters::sled_journal::SledDb;
use host_switch::app::card_refs::CardReferences;
use host_switch::cli::{cards as cards_cli, keys as keys_cli, CliError};
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
    /// The move from legacy to keyed card references (offline: stop the switch first).
    #[command(subcommand)]
    Cards(CardsCommand),
}

#[derive(Subcommand)]
enum CardsCommand {
    /// Read PANs on stdin (one per line) and print `LEGACY_REF KEYED_REF` for each: the map the
    /// wallet renames its accounts with.
    MapRefs,
    /// Print FILE (the issuer's cards file) with its legacy references replaced through the map.
    RewriteFile {
        file: PathBuf,
        #[arg(long)]
        map: PathBuf,
    },
    /// Move the switch's PIN records (tries, blocks) from legacy to keyed references.
    RekeyPins {
        #[arg(long)]
        map: PathBuf,
    },
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
    /// Make a random key the switch alone holds: the card reference key (once) or a data
    /// protection key (a new version each time).
    Generate {
        name: String,
        #[arg(long, value_parser = ["card_reference", "data_protection"])]
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
        Some(Command::Cards(cmd)) => match cards(&args.config, cmd) {
            Ok(out) => {
                print!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("host-switch: {e}");
                ExitCode::from(2)
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
    let (_, store) = open_store(config)?;
    match cmd {
        KeysCommand::Generate { name, usage } => {
            let info = keys_cli::generate(&store, &name, &usage)?;
            Ok(keys_cli::render_generated(&info))
        }
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

fn cards(config_path: &std::path::Path, cmd: CardsCommand) -> Result<String, CliError> {
    use std::io::Read;
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))
    };
    match cmd {
        CardsCommand::RewriteFile { file, map } => {
            cards_cli::rewrite_file(&read(&file)?, &read(&map)?)
        }
        CardsCommand::MapRefs => {
            let (config, store) = open_store(config_path)?;
            let name = config.card_refs.key_name().map_err(CliError::new)?;
            let refs = CardReferences::open(std::sync::Arc::new(store), &name)
                .map_err(|e| CliError::new(e.to_string()))?;
            let mut input = zeroize::Zeroizing::new(String::new());
            std::io::stdin()
                .read_to_string(&mut input)
                .map_err(|e| CliError::new(format!("cannot read stdin: {e}")))?;
            cards_cli::map_refs(&refs, &input)
        }
        CardsCommand::RekeyPins { map } => {
            let map = host_switch::adapters::cards_file::parse_map(&read(&map)?)
                .map_err(CliError::new)?;
            let (config, store) = open_store(config_path)?;
            let name = config.card_data.key_name().map_err(CliError::new)?;
            let (seal, _) = CardDataSeal::open_or_generate(std::sync::Arc::new(store), &name)
                .map_err(|e| CliError::new(e.to_string()))?;
            let fail = |e: host_switch::ports::JournalError| {
                CliError::new(format!("{e} (is the switch running? it locks the journal)"))
            };
            let db = SledDb::open(&config.journal.path).map_err(fail)?;
            let pins = SledCardPins::in_db(&db, seal).map_err(fail)?;
            let pairs: Vec<_> = map.into_iter().collect();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| CliError::new(format!("cannot start a runtime: {e}")))?;
            let report = runtime.block_on(pins.rekey(&pairs)).map_err(fail)?;
            Ok(format!(
                "{} pairs: {} PIN records moved to their keyed reference, {} had none\n",
                report.pairs, report.moved, report.absent
            ))
        }
    }
}

/// The configuration and its key store, opened for an offline command.
fn open_store(path: &std::path::Path) -> Result<(Config, keystore::SoftwareKeyStore), CliError> {
    let config = Config::load(path).map_err(|e| CliError::new(e.report()))?;
    let keys = config
        .keys
        .as_ref()
        .ok_or_else(|| CliError::new("the configuration has no [keys] section"))?;
    let store = host_switch::runtime::open_key_store(keys)
        .map_err(|e| CliError::new(format!("{e} (is the switch running? it locks the store)")))?;
    Ok((config, store))
}
