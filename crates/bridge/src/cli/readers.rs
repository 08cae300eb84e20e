//! `encoder-bridge readers`: every reader, its state, and the card on it.

use std::process::ExitCode;

use encoder_hal::pcsc::{ReaderSnapshot, snapshot};
use encoder_hal::{ErrorKind, hex};
use serde_json::json;

/// Options of `readers`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print JSON (one object with a `readers` array) instead of a table.
    #[arg(long)]
    json: bool,
}

/// Lists the readers. Exit status 0 even when there are none; 1 when pcscd is unreachable.
pub(crate) fn run(args: &Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let readers = match snapshot() {
        Ok(readers) => readers,
        Err(e) if e.kind() == ErrorKind::NoService && args.json => {
            println!("{}", json!({ "readers": [], "error": error_json(&e) }));
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        let list: Vec<_> = readers.iter().map(reader_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "readers": list }))?
        );
    } else if readers.is_empty() {
        println!(
            "no readers (is the reader plugged in? `lsusb`, and pcscd's log: `journalctl -u pcscd`)"
        );
    } else {
        for reader in &readers {
            println!("{}", reader_line(reader));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn card_type(atr: &[u8]) -> &'static str {
    encoder_protocol::card::identify(atr, None).name()
}

fn reader_json(reader: &ReaderSnapshot) -> serde_json::Value {
    json!({
        "name": reader.name,
        "kind": "pcsc",
        "state": reader.state.name(),
        "card": reader.card.as_ref().map(|card| json!({
            "type": card_type(&card.atr),
            "atr": hex(&card.atr).replace(' ', ""),
            "uid": if card.uid.is_empty() { None } else { Some(hex(&card.uid).replace(' ', "")) },
        })),
        "error": reader.error.as_ref().map(error_json),
    })
}

fn error_json(e: &encoder_hal::HalError) -> serde_json::Value {
    json!({ "kind": e.kind().name(), "message": e.detail(), "hint": e.hint() })
}

fn reader_line(reader: &ReaderSnapshot) -> String {
    use std::fmt::Write as _;
    let mut line = format!("{:<28} pcsc  {:<12}", reader.name, reader.state.name());
    // Writing to a String cannot fail.
    if let Some(card) = &reader.card {
        let _ = write!(line, " {:<12}", card_type(&card.atr));
        if !card.uid.is_empty() {
            let _ = write!(line, " uid {}", hex(&card.uid).replace(' ', ""));
        }
    }
    if let Some(e) = &reader.error {
        let _ = write!(line, "  ({}: {})", e.kind(), e.hint());
    }
    line.trim_end().to_owned()
}
