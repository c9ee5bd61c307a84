//! `atm-sim`: one simulated NDC terminal against a running agent (the work is in the library,
//! `atm_sim`).
//!
//! ```text
//! atm-sim --agent 127.0.0.1:9100 --profile ncr-selfserv-basic --luno 001 --customers 20 \
//!         --seed 42 --pans 4761739001010010,4761739001010028 [--faults 10] [--json] \
//!         [--master-key-file tmk.hex] [--pin 1234] [--wrong-pins 5] \
//!         [--terminal-faults 20 [--terminal-fault-modes e3,e5,no-status]] [--no-status-hold-ms 0] \
//!         [--truth-file truth.json]
//! ```
//! Prints one line per customer (masked PAN, kind, amount, outcome, dispensed) and the terminal
//! counters at the end, or one JSON object with `--json`. After a simulated power loss the
//! terminal power-cycles and carries on. Logs go to stderr (`RUST_LOG`, default `warn`).
//!
//! With `--master-key-file` (32 hex digits, the terminal master key as the custodians entered
//! it) the PIN pad takes the PIN key the agent loads and enciphers every customer's PIN into PIN
//! buffer A; without it key loads are rejected and PIN buffer A goes empty.
//!
//! `--terminal-faults N` makes N % of the withdrawals meet a terminal fault (`atm_sim::faults`)
//! from `--terminal-fault-modes` (all by default). The truth of every withdrawal and deposit
//! (`atm_sim::TruthRecord`: TSN, notes that left, what reached the customer, what the host was
//! told) is the `truth` array of the `--json` summary and, with `--truth-file`, a JSON array
//! written to that file when the run ends.

use std::path::PathBuf;

use anyhow::Context;
use atm_sim::customer::DEFAULT_PAN;
use atm_sim::{
    AtmError, AtmOptions, AtmSim, Card, ClearKey, CustomerOutcome, FaultMode, Mix, Outcome,
    RandomCustomers, TerminalCounters, TerminalStatus, TruthRecord, DEFAULT_PIN, FRESH_CONFIG_ID,
};
use clap::Parser;
use firmware_profiles::Profile;
use protocols::types::Amount;
use serde::Serialize;

/// Simulated NDC ATM terminal: dials the agent, takes its download, serves random customers.
#[derive(Debug, Parser)]
#[command(name = "atm-sim", version)]
struct Args {
    /// The agent's NDC endpoint (HOST:PORT).
    #[arg(long)]
    agent: String,
    /// Built-in firmware profile name or path to a profile TOML file.
    #[arg(long, default_value = "ncr-selfserv-basic")]
    profile: String,
    /// Logical unit number (3 characters, 9 for dialects with a machine number).
    #[arg(long, default_value = "001")]
    luno: String,
    /// Customers to serve.
    #[arg(long, default_value_t = 20)]
    customers: usize,
    /// Seed of the customer stream and PIN blocks.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Comma-separated card numbers the customers use (default: one test card).
    #[arg(long, value_delimiter = ',')]
    pans: Vec<String>,
    /// The PIN of every card in --pans.
    #[arg(long, default_value = DEFAULT_PIN)]
    pin: String,
    /// Percentage of customers who type a wrong PIN.
    #[arg(long, default_value_t = 0)]
    wrong_pins: u8,
    /// File with the terminal master key in clear: 32 hex digits (16 or 48 also accepted).
    #[arg(long)]
    master_key_file: Option<PathBuf>,
    /// Percentage of withdrawals that go wrong at the cash slot (cancel, short dispense, power loss).
    #[arg(long, default_value_t = 0)]
    faults: u8,
    /// Percentage of withdrawals that meet a terminal fault (E3, E5, counts missing, another
    /// device's fault, no status, power loss at a step of the exchange).
    #[arg(long, default_value_t = 0)]
    terminal_faults: u8,
    /// Comma-separated terminal fault modes to draw from, or `all`: e3, e3-no-counts, e5, short,
    /// short-no-counts, device-fault, no-status, power-before-request, power-awaiting-reply,
    /// power-before-dispense, power-mid-dispense, power-after-dispense.
    #[arg(long, default_value = "all")]
    terminal_fault_modes: String,
    /// How long a terminal with a no-status fault stays silent, in ms (default: the profile's
    /// status_after_reply_ms plus one second).
    #[arg(long)]
    no_status_hold_ms: Option<u64>,
    /// Write the truth of every withdrawal and deposit to this file (a JSON array) at the end.
    #[arg(long)]
    truth_file: Option<PathBuf>,
    /// Config id the terminal holds at power-up (0000: the agent downloads).
    #[arg(long, default_value = FRESH_CONFIG_ID)]
    config_id: String,
    /// Notes loaded per cassette type, comma-separated (default 1000 in each cassette).
    #[arg(long, value_delimiter = ',')]
    notes: Vec<u32>,
    /// Host reply timer in ms (default: the profile's).
    #[arg(long)]
    host_reply_ms: Option<u64>,
    /// How long to wait for the agent to put the terminal in service, in ms.
    #[arg(long, default_value_t = 60_000)]
    startup_timeout_ms: u64,
    /// Run the state table the agent downloaded, state by state: each customer presses the keys
    /// that lead through it to their transaction, and the `11` is built from the buffers the
    /// states fill (needs a download: keep --config-id at 0000 or another id than the profile's).
    #[arg(long)]
    state_table: bool,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Summary<'a> {
    profile: &'a str,
    luno: &'a str,
    customers: &'a [CustomerOutcome],
    counters: TerminalCounters,
    status: TerminalStatus,
    truth: &'a [TruthRecord],
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let profile = Profile::resolve(&args.profile)?;
    let currency = profile.currency;
    let fault_modes =
        FaultMode::parse_list(&args.terminal_fault_modes).map_err(anyhow::Error::msg)?;
    let mix = Mix::for_profile(&profile)
        .with_faults(args.faults)
        .with_wrong_pins(args.wrong_pins)
        .with_terminal_faults(args.terminal_faults, fault_modes);
    let master_key = match &args.master_key_file {
        Some(path) => Some(read_master_key(path)?),
        None => None,
    };
    let options = AtmOptions {
        initial_notes: (!args.notes.is_empty()).then(|| args.notes.clone()),
        config_id: args.config_id.clone(),
        startup_timeout_ms: args.startup_timeout_ms,
        host_reply_timeout_ms: args.host_reply_ms,
        seed: args.seed,
        master_key,
        no_status_hold_ms: args.no_status_hold_ms,
        state_table: args.state_table,
        ..AtmOptions::default()
    };
    let mut sim = AtmSim::connect(&args.agent, profile, &args.luno, options)
        .await
        .with_context(|| format!("terminal {} could not start", args.luno))?;
    let pans = if args.pans.is_empty() {
        vec![DEFAULT_PAN.to_owned()]
    } else {
        args.pans.clone()
    };
    let cards = pans
        .into_iter()
        .map(|pan| Card::new(pan, args.pin.clone()))
        .collect();
    let customers = RandomCustomers::from_cards(args.seed, cards, mix);
    let mut outcomes = Vec::with_capacity(args.customers);
    for customer in customers.take(args.customers) {
        if !sim.is_connected() {
            // The agent hung up: a real terminal redials and powers up again.
            eprintln!("connection lost: power-cycling the terminal");
            sim.power_cycle()
                .await
                .context("reconnect after a lost connection")?;
        }
        let result = match sim.run_customer(&customer).await {
            Ok(r) => r,
            Err(AtmError::Disconnected) => {
                eprintln!("connection lost: power-cycling the terminal");
                sim.power_cycle()
                    .await
                    .context("reconnect after a lost connection")?;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if !args.json {
            println!("{}", result.report_line(currency));
        }
        let power_lost = matches!(result.outcome, Outcome::PowerLoss { .. });
        outcomes.push(result);
        if power_lost {
            sim.power_cycle()
                .await
                .context("power-up after a power loss")?;
        }
    }
    let counters = sim.counters();
    let truth = sim.truth().await;
    if let Some(path) = &args.truth_file {
        write_truth(path, &truth)?;
    }
    if args.json {
        let summary = Summary {
            profile: &args.profile,
            luno: &args.luno,
            customers: &outcomes,
            counters,
            status: sim.status(),
            truth: &truth,
        };
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_counters(&counters, currency);
    }
    sim.shutdown().await;
    Ok(())
}

/// The truth records as a JSON array, written whole (a temporary file renamed over `path`).
fn write_truth(path: &std::path::Path, truth: &[TruthRecord]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(truth)?)
        .with_context(|| format!("cannot write the truth file {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot write the truth file {}", path.display()))
}

/// The terminal master key from a file of hex digits (the file's name is in the error, never its
/// contents).
fn read_master_key(path: &std::path::Path) -> anyhow::Result<ClearKey> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the master key file {}", path.display()))?,
    );
    ClearKey::from_hex(&text).with_context(|| format!("master key file {}", path.display()))
}

fn print_counters(c: &TerminalCounters, currency: protocols::types::Currency) {
    println!("--- terminal counters");
    println!("notes loaded    {:?}", c.notes_loaded);
    println!("notes left      {:?}", c.notes_left);
    println!("notes dispensed {:?}", c.notes_dispensed);
    println!("notes rejected  {:?}", c.notes_rejected);
    println!(
        "dispensed       {}",
        Amount::new(c.dispensed_minor, currency)
    );
    println!(
        "deposited       {} ({} deposits)",
        Amount::new(c.deposited_minor, currency),
        c.deposits
    );
    println!(
        "replies         {} (last TSN {:04})",
        c.transaction_count, c.last_tsn
    );
    let o = &c.customers;
    println!(
        "customers       {} approved {} declined {} (wrong PIN {}, PIN tries exceeded {}) \
         host unavailable {} short {} cancelled {} power loss {} timeout {} rejected {} \
         out of service {} (terminal faults {})",
        o.total(),
        o.approved,
        o.declined,
        o.wrong_pin,
        o.pin_tries_exceeded,
        o.host_unavailable,
        o.short_dispense,
        o.cancelled,
        o.power_loss,
        o.timeout,
        o.reply_rejected,
        o.out_of_service,
        o.terminal_faults
    );
}
