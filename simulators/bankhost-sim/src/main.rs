//! `bankhost-sim`: another bank's ISO 8583 host as a process.
//!
//! ```text
//! bankhost-sim --config bankhost.toml
//! bankhost-sim --listen 127.0.0.1:9300 --spec iso87-binary --card 5413330089020011:100000:1234
//! ```
//! Flags given with `--config` override the file (`--card` adds cards). Logs go to stderr
//! (`RUST_LOG` filters, default `info`), PANs masked; ctrl-c or SIGTERM stops it.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use bankhost_sim::{BankHostConfig, CardConfig, SpecChoice};
use clap::Parser;
use protocols::framing::LengthPrefix;

/// Another bank's ISO 8583 host (issuer): accounts, holds, completions, reversals, rules.
#[derive(Debug, Parser)]
#[command(name = "bankhost-sim", version)]
struct Args {
    /// TOML configuration (see simulators/bankhost-sim/bankhost.example.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:9300).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Built-in spec name (iso87-binary, iso87-ascii) or a spec TOML file.
    #[arg(long)]
    spec: Option<String>,
    /// Length prefix of every frame.
    #[arg(long, value_parser = parse_prefix)]
    length_prefix: Option<LengthPrefix>,
    /// A card: PAN:BALANCE[:PIN], or PREFIX*:BALANCE[:PIN] for a range (repeatable).
    #[arg(long = "card", value_name = "PAN:BALANCE[:PIN]")]
    cards: Vec<CardConfig>,
    /// Zone PIN key shared with the switch, 32 or 48 hex digits.
    #[arg(long, env = "BANKHOST_ZPK_HEX", hide_env_values = true)]
    zpk_hex: Option<String>,
    /// Decline deposits (57).
    #[arg(long)]
    no_deposits: bool,
    /// Latency before every answer, in milliseconds.
    #[arg(long)]
    latency_ms: Option<u64>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

fn parse_prefix(text: &str) -> Result<LengthPrefix, String> {
    match text {
        "binary-u16" => Ok(LengthPrefix::BinaryU16),
        "ascii4" => Ok(LengthPrefix::Ascii4),
        other => Err(format!("{other:?}: expected binary-u16 or ascii4")),
    }
}

fn config(args: Args) -> anyhow::Result<BankHostConfig> {
    let mut config = match &args.config {
        Some(path) => BankHostConfig::load(path)?,
        None => BankHostConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(spec) = &args.spec {
        config.spec = SpecChoice::parse(spec);
    }
    if let Some(prefix) = args.length_prefix {
        config.length_prefix = prefix;
    }
    config.cards.extend(args.cards);
    if args.zpk_hex.is_some() {
        config.zpk_hex = args.zpk_hex;
    }
    if args.no_deposits {
        config.deposits = false;
    }
    if let Some(ms) = args.latency_ms {
        config.latency_ms = ms;
    }
    config.check()?;
    Ok(config)
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
    let config = config(args)?;
    let listen = config.listen;
    let host = bankhost_sim::start(config)
        .await
        .with_context(|| format!("starting bankhost-sim on {listen}"))?;
    println!("bankhost-sim listening on {}", host.addr());

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("ctrl-c: stopping"),
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
    }
    let totals = host.handle().totals();
    tracing::info!(?totals, "final totals");
    host.shutdown().await;
    Ok(())
}
