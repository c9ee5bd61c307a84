//! `atmctl`: the field technician's command line.
//!
//! Exit codes: 0 success; 2 bad input or arguments, or the agent refused the input (a bad
//! amount); 3 the agent knows no such terminal or dispense in doubt; 4 the record is being settled
//! right now; 1 anything else (the agent unreachable …). One line on stderr.

use std::io::Read;
use std::process::ExitCode;

use atm_agent::cli::{self, CliError};
use atm_agent::control_api::{Action, Request, SettleOutcome};
use clap::{Parser, Subcommand};
use zeroize::Zeroizing;

#[derive(Parser)]
#[command(name = "atmctl", version, about = "Technician CLI for the ATM agent")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode and encode ISO 8583 messages.
    #[command(subcommand)]
    Iso8583(IsoCommand),
    /// Decode NDC messages.
    #[command(subcommand)]
    Ndc(NdcCommand),
    /// The agent's uplink, queue and terminals.
    Status {
        #[command(flatten)]
        socket: SocketArg,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// The store-and-forward queue.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Send a command to a terminal.
    Terminal {
        #[command(flatten)]
        socket: SocketArg,
        /// Terminal id, e.g. ATM00001.
        terminal: String,
        /// in-service, out-of-service or supply-counters.
        action: String,
    },
    /// Keys: custodian entry of master keys, PIN key rotation, listing.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Dispenses in doubt: list them, settle one.
    #[command(subcommand)]
    Dispense(DispenseCommand),
    /// A terminal's electronic journal, as it uploaded it (card numbers masked).
    Ej {
        #[command(flatten)]
        socket: SocketArg,
        /// Terminal id, e.g. ATM00001.
        terminal: String,
        /// How many of the last lines (default 50, at most 10000).
        #[arg(long)]
        last: Option<usize>,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
        /// Show card-number-like digit runs in clear (logged on the agent's audit target).
        #[arg(long)]
        reveal: bool,
    },
}

#[derive(Subcommand)]
enum DispenseCommand {
    /// Dispenses (and deposits) whose outcome the terminal has not told: all, or one terminal's.
    Ls {
        #[command(flatten)]
        socket: SocketArg,
        /// Terminal id, e.g. ATM00001.
        terminal: Option<String>,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Settle a dispense in doubt from what you found at the ATM: a completion (0220) for the
    /// amount dispensed, or a reversal (0420) for nothing. Journaled with who, when and why.
    Settle {
        #[command(flatten)]
        socket: SocketArg,
        /// Terminal id, e.g. ATM00001.
        terminal: String,
        /// The transaction serial number (atmctl dispense ls).
        tsn: u16,
        /// The amount that left the ATM, in minor units (at most the approved amount; a deposit
        /// is taken whole).
        #[arg(
            long,
            value_name = "AMOUNT",
            required_unless_present = "nothing",
            conflicts_with = "nothing"
        )]
        dispensed: Option<u64>,
        /// Nothing left the ATM (nothing was taken, for a deposit).
        #[arg(long)]
        nothing: bool,
        /// Why you say so (what you counted, what the journal printer shows …).
        #[arg(long)]
        reason: String,
        /// Your name, for the journal (default: $USER).
        #[arg(long, env = "USER")]
        by: Option<String>,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Enter a terminal master key as components, one custodian after the other: each types
    /// `COMPONENT_HEX KCV_HEX` (not echoed), an empty line ends; the terminal then gets a new PIN
    /// key.
    LoadMaster {
        #[command(flatten)]
        socket: SocketArg,
        /// Terminal id, e.g. ATM00001.
        terminal: String,
    },
    /// Enter the zone master key shared with the switch, as components.
    LoadZoneMaster {
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Load a new terminal PIN key into a terminal now.
    Rotate {
        #[command(flatten)]
        socket: SocketArg,
        /// Terminal id, e.g. ATM00001.
        terminal: String,
    },
    /// Stored keys: name, version, usage, check value.
    Ls {
        #[command(flatten)]
        socket: SocketArg,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct SocketArg {
    /// The agent's control socket.
    #[arg(
        long,
        env = "ATM_AGENT_SOCKET",
        default_value = "./agent-data/atmctl.sock"
    )]
    socket: std::path::PathBuf,
}

#[derive(Subcommand)]
enum QueueCommand {
    /// List queued advices.
    Ls {
        #[command(flatten)]
        socket: SocketArg,
        #[arg(long)]
        json: bool,
    },
    /// Make queued advices due now (all, or one terminal's).
    Retry {
        #[command(flatten)]
        socket: SocketArg,
        terminal: Option<String>,
    },
    /// Put a parked advice back in its terminal's queue (`queue ls` shows its terminal and seq).
    Requeue {
        #[command(flatten)]
        socket: SocketArg,
        terminal: String,
        seq: u64,
        /// Why it may be sent again (logged with who).
        #[arg(long)]
        reason: String,
        /// Who decides (default: $USER).
        #[arg(long, env = "USER")]
        by: Option<String>,
    },
}

#[derive(Subcommand)]
enum IsoCommand {
    /// Print a packed message (hex) as one JSON object, pyiso8583-style.
    Decode {
        /// iso87-ascii, iso87-binary, or a path to a TOML spec.
        #[arg(long, default_value = "iso87-ascii")]
        spec: String,
        /// Show PAN, track 2 and PIN block in clear.
        #[arg(long)]
        reveal: bool,
        /// The packed message in hex (without length prefix); "-" reads stdin.
        hex: String,
    },
    /// Read one JSON object on stdin and print the packed message as uppercase hex.
    Encode {
        #[arg(long, default_value = "iso87-ascii")]
        spec: String,
    },
}

#[derive(Subcommand)]
enum NdcCommand {
    /// Print one NDC message (hex, without length prefix) as JSON.
    Decode {
        /// Dialect name (see the firmware profiles).
        #[arg(long, default_value = "basic")]
        dialect: String,
        /// Show a transaction request's tracks, PIN buffer A, buffers B and C and id buffers in
        /// clear.
        #[arg(long)]
        reveal: bool,
        /// The message in hex; "-" reads stdin.
        hex: String,
    },
}

/// The most `atmctl` reads from stdin: a message to decode or encode, never more.
const STDIN_MAX: usize = 64 * 1024;

/// Stdin (a message with card data) in a buffer sized once and wiped when dropped: it never
/// grows, so no copy is left behind in freed memory.
fn read_stdin() -> Result<Zeroizing<String>, CliError> {
    let mut s = Zeroizing::new(String::with_capacity(STDIN_MAX + 1));
    let read = std::io::stdin()
        .take(STDIN_MAX as u64 + 1)
        .read_to_string(&mut s)
        .map_err(|e| CliError::new(format!("cannot read stdin: {e}")))?;
    if read > STDIN_MAX {
        return Err(CliError::new(format!(
            "stdin holds more than {STDIN_MAX} bytes: one message at a time"
        )));
    }
    Ok(s)
}

fn arg_or_stdin(arg: String) -> Result<Zeroizing<String>, CliError> {
    if arg == "-" {
        read_stdin()
    } else {
        Ok(Zeroizing::new(arg))
    }
}

fn run(args: Args) -> Result<String, CliError> {
    match args.command {
        Command::Iso8583(IsoCommand::Decode { spec, reveal, hex }) => {
            let spec = cli::iso8583::resolve_spec(&spec)?;
            cli::iso8583::decode(&spec, &arg_or_stdin(hex)?, reveal)
        }
        Command::Iso8583(IsoCommand::Encode { spec }) => {
            let spec = cli::iso8583::resolve_spec(&spec)?;
            cli::iso8583::encode(&spec, &read_stdin()?)
        }
        Command::Ndc(NdcCommand::Decode {
            dialect,
            reveal,
            hex,
        }) => {
            let dialect = cli::ndc::resolve_dialect(&dialect)?;
            cli::ndc::decode(&dialect, &arg_or_stdin(hex)?, reveal)
        }
        Command::Status { socket, json } => {
            let data = cli::control::send(&socket.socket, &Request::Status)?;
            Ok(if json {
                data.to_string()
            } else {
                cli::control::render_status(&data)
            })
        }
        Command::Queue(QueueCommand::Ls { socket, json }) => {
            let data = cli::control::send(&socket.socket, &Request::QueueLs)?;
            Ok(if json {
                data.to_string()
            } else {
                cli::control::render_queue(&data)
            })
        }
        Command::Queue(QueueCommand::Retry { socket, terminal }) => {
            let data = cli::control::send(&socket.socket, &Request::QueueRetry { terminal })?;
            Ok(data.to_string())
        }
        Command::Queue(QueueCommand::Requeue {
            socket,
            terminal,
            seq,
            reason,
            by,
        }) => {
            let request = Request::QueueRequeue {
                terminal,
                seq,
                reason,
                by,
            };
            Ok(cli::control::send(&socket.socket, &request)?.to_string())
        }
        Command::Terminal {
            socket,
            terminal,
            action,
        } => {
            let action: Action = action.parse().map_err(CliError::new)?;
            let request = Request::Terminal { terminal, action };
            Ok(cli::control::send(&socket.socket, &request)?.to_string())
        }
        Command::Keys(KeysCommand::LoadMaster { socket, terminal }) => {
            let (components, kcvs) =
                keystore::ceremony::read_components_from_stdin().map_err(CliError::new)?;
            cli::keys::load_master(&socket.socket, &terminal, &components, &kcvs)
        }
        Command::Keys(KeysCommand::LoadZoneMaster { socket }) => {
            let (components, kcvs) =
                keystore::ceremony::read_components_from_stdin().map_err(CliError::new)?;
            cli::keys::load_zone_master(&socket.socket, &components, &kcvs)
        }
        Command::Keys(KeysCommand::Rotate { socket, terminal }) => {
            let request = Request::KeysRotate { terminal };
            Ok(cli::control::send(&socket.socket, &request)?.to_string())
        }
        Command::Ej {
            socket,
            terminal,
            last,
            json,
            reveal,
        } => {
            let request = Request::Ej {
                terminal,
                last,
                reveal,
            };
            let data = cli::control::send(&socket.socket, &request)?;
            Ok(if json {
                data.to_string()
            } else {
                cli::control::render_journal(&data)
            })
        }
        Command::Dispense(DispenseCommand::Ls {
            socket,
            terminal,
            json,
        }) => {
            let data = cli::control::send(&socket.socket, &Request::DispenseLs { terminal })?;
            Ok(if json {
                data.to_string()
            } else {
                cli::control::render_dispenses(&data)
            })
        }
        Command::Dispense(DispenseCommand::Settle {
            socket,
            terminal,
            tsn,
            dispensed,
            nothing: _,
            reason,
            by,
            json,
        }) => {
            let outcome = match dispensed {
                Some(amount_minor) => SettleOutcome::Dispensed { amount_minor },
                None => SettleOutcome::Nothing,
            };
            let request = Request::DispenseSettle {
                terminal,
                tsn,
                outcome,
                reason,
                by,
            };
            let data = cli::control::send(&socket.socket, &request)?;
            Ok(if json {
                data.to_string()
            } else {
                format!(
                    "{} TSN {}: {} ({} queued)",
                    data["terminal"].as_str().unwrap_or(""),
                    data["tsn"],
                    data["settlement"].as_str().unwrap_or(""),
                    data["advice"].as_str().unwrap_or("no advice")
                )
            })
        }
        Command::Keys(KeysCommand::Ls { socket, json }) => {
            let data = cli::control::send(&socket.socket, &Request::KeysLs)?;
            Ok(if json {
                data.to_string()
            } else {
                cli::keys::render_list(&data)
            })
        }
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("atmctl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
