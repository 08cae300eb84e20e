//! `encoder-bridge readers`: every reader, its recognised family (the hal's dialect table,
//! or `baseline` for a reader it does not know), its state, and the card on it.
//!
//! When the daemon runs, it is asked (over its control socket) for the encoders it drives:
//! opening them here would fight it for the devices. `--direct` lists the readers from this
//! process as before (pcscd's readers and the configured PN532 encoders, opened briefly).

use std::process::ExitCode;

use encoder_hal::ErrorKind;
use encoder_hal::pcsc::{ReaderSnapshot, ReaderState, snapshot};
use encoder_protocol::hex::encode as compact;

/// Options of `readers`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print JSON (one object with a `readers` array) instead of a table.
    #[arg(long)]
    json: bool,
    /// Also list the PN532 encoders this configuration names (opening each briefly).
    #[arg(long, short)]
    config: Option<std::path::PathBuf>,
    /// Look at the readers from this process even when the daemon runs.
    #[arg(long)]
    direct: bool,
    /// The daemon's control socket (default: `[control] socket` of the configuration).
    #[arg(long)]
    socket: Option<std::path::PathBuf>,
}

/// The daemon's encoders, when one answers on the control socket.
fn from_daemon(args: &Args) -> Option<Vec<crate::control::wire::EncoderStatus>> {
    let config = args
        .config
        .clone()
        .unwrap_or_else(|| crate::config::DEFAULT_CONFIG.into());
    let socket = super::status::socket_of(args.socket.as_deref(), &config);
    if !socket.exists() {
        return None;
    }
    crate::control::client::call(
        &socket,
        crate::control::wire::Op::Status,
        Some(std::time::Duration::from_secs(5)),
    )
    .ok()?
    .status
    .map(|s| s.encoders)
}

fn daemon_state(e: &crate::control::wire::EncoderStatus) -> &'static str {
    match (e.online, e.card_present) {
        (false, _) => ReaderState::Unavailable.name(),
        (true, true) => ReaderState::CardPresent.name(),
        (true, false) => ReaderState::Empty.name(),
    }
}

/// Prints the daemon's encoders (`readers` while the daemon runs).
fn print_daemon(
    encoders: &[crate::control::wire::EncoderStatus],
    json: bool,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    if json {
        let list: Vec<_> = encoders
            .iter()
            .map(|e| {
                serde_json::json!({
                    "name": e.reader,
                    "kind": e.kind,
                    "family": family_of(&e.reader, &e.kind),
                    "state": daemon_state(e),
                    "display_name": e.display_name,
                    "encoder_id": e.encoder_id,
                    "busy_with": e.busy_with,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"daemon": true, "readers": list}))?
        );
    } else {
        println!("(as the running encoder-bridge service drives them; --direct to look yourself)");
        for e in encoders {
            let mut line = format!(
                "{:<28} {:<5} {:<13} {:<12}",
                e.reader,
                e.kind,
                family_of(&e.reader, &e.kind),
                daemon_state(e)
            );
            if let Some(busy) = &e.busy_with {
                line.push_str(" busy with ");
                line.push_str(busy);
            }
            println!("{}", line.trim_end());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The configured PN532 encoders, each opened briefly to see its card.
fn pn532_readers(
    path: &std::path::Path,
) -> Result<Vec<ReaderSnapshot>, Box<dyn std::error::Error>> {
    use encoder_hal::Encoder as _;
    let config = crate::config::Config::load(path)?;
    let mut out = Vec::new();
    for entry in &config.encoders.pn532 {
        let device = entry.device.display().to_string();
        let mut snap = ReaderSnapshot {
            name: device.clone(),
            state: ReaderState::Unavailable,
            card: None,
            error: None,
        };
        if let Err(e) = crate::discovery::serial_access(&device) {
            snap.error = Some(e.on_reader(&device));
            out.push(snap);
            continue;
        }
        let mut encoder = encoder_hal::Pn532Encoder::new(device.clone());
        match encoder.wait_for_card(std::time::Duration::from_millis(300)) {
            Ok(false) => snap.state = ReaderState::Empty,
            Ok(true) => match encoder.open_session() {
                Ok(session) => {
                    snap.state = ReaderState::CardPresent;
                    snap.card = Some(session.info().clone());
                }
                Err(e) => {
                    snap.state = ReaderState::Mute;
                    snap.error = Some(e);
                }
            },
            Err(e) => {
                if e.kind() == ErrorKind::Busy {
                    snap.state = ReaderState::InUse;
                }
                snap.error = Some(e);
            }
        }
        out.push(snap);
    }
    Ok(out)
}

/// Lists the readers. Exit status 0 even when there are none; when pcscd is not running the
/// configured PN532 encoders are still listed and pcscd is reported as not running: exit 0
/// when at least one of them is usable, else 1.
pub(crate) fn run(args: &Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    if !args.direct
        && let Some(encoders) = from_daemon(args)
    {
        return print_daemon(&encoders, args.json);
    }
    let serial = match &args.config {
        Some(path) => pn532_readers(path)?,
        None => Vec::new(),
    };
    let (mut readers, pcscd) = match snapshot() {
        Ok(readers) => (readers, None),
        Err(e) if e.kind() == ErrorKind::NoService => (Vec::new(), Some(e)),
        Err(e) => return Err(e.into()),
    };
    readers.extend(serial);
    if args.json {
        let list: Vec<_> = readers.iter().map(ReaderJson::of).collect();
        let out = ListJson {
            readers: list,
            error: pcscd.as_ref().map(ErrorJson::of),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for reader in &readers {
            println!("{}", reader_line(reader));
        }
        if let Some(e) = &pcscd {
            println!("pcscd: not running ({}: {})", e.kind(), e.hint());
        } else if readers.is_empty() {
            println!(
                "no readers (is the reader plugged in? `lsusb`, and pcscd's log: `journalctl -u pcscd`)"
            );
        }
    }
    let usable = readers.iter().any(|r| {
        r.error.is_none() && matches!(r.state, ReaderState::Empty | ReaderState::CardPresent)
    });
    Ok(if pcscd.is_some() && !usable {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The reader family: the dialect the hal speaks to a PC/SC reader of this name (`baseline`
/// when unknown); `pn532` for a PN532.
fn family_of(name: &str, kind: &str) -> &'static str {
    if kind == "pcsc" {
        encoder_hal::pcsc::dialect::recognise(name).id
    } else {
        "pn532"
    }
}

/// Serial devices are named by path; PC/SC readers never start with `/`.
fn kind(reader: &ReaderSnapshot) -> &'static str {
    if reader.name.starts_with('/') {
        "pn532"
    } else {
        "pcsc"
    }
}

/// `readers --json`: `{"readers": [...]}`, and `error` when pcscd is unreachable.
#[derive(Debug, serde::Serialize)]
struct ListJson<'a> {
    readers: Vec<ReaderJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorJson<'a>>,
}

#[derive(Debug, serde::Serialize)]
struct ReaderJson<'a> {
    name: &'a str,
    kind: &'static str,
    family: &'static str,
    state: &'static str,
    card: Option<CardJson>,
    error: Option<ErrorJson<'a>>,
}

#[derive(Debug, serde::Serialize)]
struct CardJson {
    #[serde(rename = "type")]
    card_type: &'static str,
    atr: Option<String>,
    uid: Option<String>,
}

#[derive(Debug, serde::Serialize)]
struct ErrorJson<'a> {
    kind: &'static str,
    message: &'a str,
    hint: &'static str,
}

impl<'a> ReaderJson<'a> {
    fn of(reader: &'a ReaderSnapshot) -> Self {
        Self {
            name: &reader.name,
            kind: kind(reader),
            family: family_of(&reader.name, kind(reader)),
            state: reader.state.name(),
            card: reader.card.as_ref().map(|card| CardJson {
                card_type: card.card_type().name(),
                atr: card.atr.as_deref().map(compact),
                uid: (!card.uid.is_empty()).then(|| compact(&card.uid)),
            }),
            error: reader.error.as_ref().map(ErrorJson::of),
        }
    }
}

impl<'a> ErrorJson<'a> {
    fn of(e: &'a encoder_hal::HalError) -> Self {
        Self {
            kind: e.kind().name(),
            message: e.detail(),
            hint: e.hint(),
        }
    }
}

fn reader_line(reader: &ReaderSnapshot) -> String {
    use std::fmt::Write as _;
    let mut line = format!(
        "{:<28} {:<5} {:<13} {:<12}",
        reader.name,
        kind(reader),
        family_of(&reader.name, kind(reader)),
        reader.state.name()
    );
    // Writing to a String cannot fail.
    if let Some(card) = &reader.card {
        let _ = write!(line, " {:<12}", card.card_type().name());
        if !card.uid.is_empty() {
            let _ = write!(line, " uid {}", compact(&card.uid));
        }
    }
    if let Some(e) = &reader.error {
        let _ = write!(line, "  ({}: {})", e.kind(), e.hint());
    }
    line.trim_end().to_owned()
}
