//! `atm-lab`: the whole ATM gateway in one command — ledger-sim, the host switch, an agent and
//! simulated NDC terminals, random customers, an optional fault drill, and a reconciliation of
//! terminals vs switch journal vs ledger at the end. Exit code 0 only when reconciled.
//!
//! Hidden: `atm-lab --role switch|agent --config FILE` runs one child role (the lab re-runs
//! itself that way so the crash drills can SIGKILL the switch and the agent).

use std::path::PathBuf;
use std::time::Duration;

use atm_lab::{self as lab, LabOptions, Scenario};
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "atm-lab",
    version,
    about = "The whole ATM gateway in one command: ledger, switch, agent, simulated ATMs, customers, fault drills, reconciliation"
)]
struct Args {
    /// Simulated ATMs (1 to 32; LUNO 00N = ATM0000N, the lab certificate is made for them).
    #[arg(long, default_value_t = 3)]
    atms: usize,
    /// Customers spread over the ATMs.
    #[arg(long, default_value_t = 300)]
    customers: usize,
    /// Stop taking new customers after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Fault drill: none, ledger-outage, agent-crash, switch-crash, link-flap, slow-ledger, garbage,
    /// ambiguous-ledger (the ledger applies writes and loses the answers), terminal-faults (E3, E5,
    /// counts missing, no status, power lost at every step; the lab settles what is left in doubt
    /// as the technician), bank-host-outage (the other bank's host loses two answers, then stops
    /// answering until the switch's breaker opens; the switch reverses at the host), chaos (a mix
    /// of all of them chosen and timed by --seed).
    #[arg(long, default_value = "none")]
    faults: String,
    /// Length of an outage / link cut, in seconds.
    #[arg(long, default_value_t = 4.0)]
    outage: f64,
    /// Seeds the customers and the drills (which ones `chaos` mixes, when and for how long).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Pause on each ATM between two customers, in milliseconds.
    #[arg(long, default_value_t = 50)]
    think_ms: u64,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
    /// Run without PIN security (no keys, no PIN verification, no PIN drill).
    #[arg(long)]
    no_pins: bool,
    /// Share of customers (0 to 1) whose card is another bank's: the switch forwards them over
    /// ISO 8583 to a bank host (bankhost-sim in the lab's process), and the run reconciles against
    /// the host's record too. 0: no bank host at all.
    #[arg(long, default_value_t = lab::DEFAULT_BANK_SHARE)]
    bank_share: f64,
    /// The built-in firmware profile of the simulated terminals (ncr-selfserv-basic,
    /// ncr-advance-ndc, ncr-advance-ndc-mac, diebold-opteva-ndc): customers go through its state
    /// table.
    #[arg(long, default_value = lab::PROFILE)]
    profile: String,
    #[arg(long, hide = true)]
    role: Option<String>,
    #[arg(long, hide = true)]
    config: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let default_log = if args.role.is_some() { "off" } else { "error" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("atm-lab: cannot start the runtime: {e}");
            std::process::exit(2);
        }
    };
    if let Some(role) = &args.role {
        let result = lab::role::parse_role(role).and_then(|r| {
            let config = args
                .config
                .clone()
                .ok_or_else(|| anyhow::anyhow!("--role needs --config"))?;
            runtime.block_on(lab::role::run_role(r, &config))
        });
        if let Err(e) = result {
            eprintln!("atm-lab --role {role}: {e:#}");
            std::process::exit(2);
        }
        return;
    }
    let scenario: Scenario = match args.faults.parse() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("atm-lab: {e}");
            std::process::exit(2);
        }
    };
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("atm-lab: cannot find my own executable: {e}");
            std::process::exit(2);
        }
    };
    let mut opts = LabOptions::new(exe);
    opts.atms = args.atms;
    opts.customers = args.customers;
    opts.duration = args.duration.map(Duration::from_secs_f64);
    opts.scenario = scenario;
    opts.seed = args.seed;
    opts.outage = Duration::from_secs_f64(args.outage.max(0.1));
    opts.progress = !args.quiet;
    opts.think = Duration::from_millis(args.think_ms);
    opts.pins = !args.no_pins;
    opts.bank_share = args.bank_share;
    opts.profile = args.profile.clone();
    match runtime.block_on(lab::run(&opts)) {
        Ok(report) => {
            if args.json {
                match serde_json::to_string(&report) {
                    Ok(j) => println!("{j}"),
                    Err(e) => eprintln!("atm-lab: {e}"),
                }
            } else {
                print!("{}", report.table());
            }
            std::process::exit(if report.reconciled { 0 } else { 1 });
        }
        Err(e) => {
            // The whole chain of causes: "cannot start the lab: ledger-sim: start: …".
            eprintln!("atm-lab: {:#}", anyhow::Error::new(e));
            std::process::exit(2);
        }
    }
}
