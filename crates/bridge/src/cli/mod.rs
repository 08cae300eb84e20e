//! Command-line interface: one module per subcommand.

mod card;
mod decode;
mod doctor;
pub mod logging;
mod readers;
mod run;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Connects a cloud access-control API to the card encoders on this machine.
#[derive(Debug, Parser)]
#[command(name = "encoder-bridge", version, about)]
struct Cli {
    /// More log output (-v debug with the masked APDU trace, -vv trace); `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Log format on stderr (text is journald-friendly under systemd).
    #[arg(long, value_enum, default_value_t, global = true)]
    log_format: logging::LogFormat,

    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: connect to the cloud and serve encode and scan attempts.
    Run(run::Args),
    /// Scan the card on an encoder and print what it holds.
    Scan(card::ScanArgs),
    /// Encode a credential (JSON file) onto the card on an encoder.
    Encode(card::EncodeArgs),
    /// Ask the running daemon what it is doing (exit 0 healthy, 1 degraded, 2 no daemon).
    Status(status::Args),
    /// List every card reader (and configured PN532 encoder) with its state and card.
    Readers(readers::Args),
    /// Check the configuration, secrets, readers, devices and the cloud; print fixes.
    Doctor(doctor::Args),
    /// Decode a saved card image (.mfd) offline with the site keys: state, credential, checks.
    Decode(decode::Args),
}

/// Parses the command line, sets up logging and runs the subcommand.
pub fn main() -> ExitCode {
    let args = Cli::parse();
    logging::init(args.verbose, args.log_format);
    let outcome = match args.command {
        Command::Run(a) => run::run(&a),
        Command::Scan(a) => card::scan(&a),
        Command::Encode(a) => card::encode(&a),
        Command::Readers(a) => readers::run(&a),
        Command::Status(a) => status::run(&a),
        Command::Doctor(a) => doctor::run(&a),
        Command::Decode(a) => decode::run(&a),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
