//! `switchctl`: the operator's command line for a running switch, over its control socket.
//!
//! ```text
//! switchctl --socket PATH card status CARD      # CARD: card reference (card-…) or PAN
//! switchctl --socket PATH card unblock CARD
//! switchctl --socket PATH keys rotate-zpk
//! switchctl --socket PATH keys ls
//! switchctl --socket PATH exceptions ls
//! switchctl --socket PATH exceptions resolve TXN --retry|--write-off --by NAME --reason TEXT
//! ```
//! Exit codes: 0 success, 2 with one line on stderr on any error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use host_switch::app::exceptions::Resolution;
use host_switch::cli::control;
use host_switch::cli::CliError;
use host_switch::control_api::Request;

#[derive(Parser)]
#[command(
    name = "switchctl",
    version,
    about = "Operator CLI for the host switch"
)]
struct Args {
    /// The switch's control socket (`control_socket` in its configuration).
    #[arg(
        long,
        global = true,
        env = "HOST_SWITCH_SOCKET",
        default_value = "/run/host-switch/control.sock"
    )]
    socket: PathBuf,
    /// Print the raw JSON answer.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A card's PIN state.
    #[command(subcommand)]
    Card(CardCommand),
    /// The key store.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Money the switch owes that the ledger refused (offline deposits): list and resolve.
    #[command(subcommand)]
    Exceptions(ExceptionsCommand),
    /// The bank hosts: link signed on, breaker, advices waiting for the host.
    BankHosts,
}

#[derive(Subcommand)]
enum ExceptionsCommand {
    /// Every unresolved exception.
    Ls,
    /// Close one: post it again, or write it off.
    Resolve {
        /// The transaction key, as `exceptions ls` prints it.
        txn: String,
        /// Post the credit again (after the account was opened, say).
        #[arg(
            long,
            conflicts_with = "write_off",
            required_unless_present = "write_off"
        )]
        retry: bool,
        /// Close it without moving money in the ledger.
        #[arg(long)]
        write_off: bool,
        /// Who decides (journaled with the transaction).
        #[arg(long)]
        by: String,
        /// Why (journaled with the transaction).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum CardCommand {
    /// Wrong PIN tries and blocked state.
    Status { card: String },
    /// Reset the wrong PIN counter and lift a block.
    Unblock { card: String },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new zone PIN key version now (agents fetch it on their next echo).
    RotateZpk,
    /// Every key version (name, version, usage, check value).
    Ls,
}

fn run(args: Args) -> Result<String, CliError> {
    let (request, render): (_, fn(&serde_json::Value) -> String) = match &args.command {
        Command::Card(CardCommand::Status { card }) => {
            (Request::card_status(card), control::render_card)
        }
        Command::Card(CardCommand::Unblock { card }) => {
            (Request::card_unblock(card), control::render_card)
        }
        Command::Keys(KeysCommand::RotateZpk) => (Request::ZpkRotate, control::render_key),
        Command::Keys(KeysCommand::Ls) => (Request::KeysList, control::render_keys),
        Command::BankHosts => (Request::BankHosts, control::render_bank_hosts),
        Command::Exceptions(ExceptionsCommand::Ls) => {
            (Request::ExceptionsList, control::render_exceptions)
        }
        Command::Exceptions(ExceptionsCommand::Resolve {
            txn,
            retry,
            by,
            reason,
            ..
        }) => (
            Request::ExceptionResolve {
                txn: txn.clone(),
                resolution: if *retry {
                    Resolution::Retry
                } else {
                    Resolution::WriteOff
                },
                by: by.clone(),
                reason: reason.clone(),
            },
            control::render_exception,
        ),
    };
    let data = control::send(&args.socket, &request)?;
    Ok(if args.json {
        data.to_string()
    } else {
        render(&data)
    })
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(out) => {
            println!("{}", out.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchctl: {e}");
            ExitCode::from(2)
        }
    }
}
