//! Command-line interface: one module per subcommand.

pub(crate) mod logging;
mod readers;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Connects a cloud access-control API to the card encoders on this machine.
#[derive(Debug, Parser)]
#[command(name = "encoder-bridge", version, about)]
pub(crate) struct Cli {
    /// More log output (-v debug, -vv trace); `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List every card reader with its state and the card on it.
    Readers(readers::Args),
}

impl Command {
    /// Runs the subcommand; `Err` is printed as `error: ...` with exit status 1.
    pub(crate) fn run(self) -> Result<ExitCode, Box<dyn std::error::Error>> {
        match self {
            Self::Readers(args) => readers::run(&args),
        }
    }
}
