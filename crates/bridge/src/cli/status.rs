//! `encoder-bridge status`: what the running daemon is doing, asked over its control socket
//! (docs/control-protocol.md). Exit code 0 when healthy, 1 when the cloud link is down or an
//! encoder is offline, 2 when no daemon answers: a monitoring check as it is.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{Config, DEFAULT_CONFIG};
use crate::control::client;
use crate::control::wire::{Op, Status};

/// Options of `status`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The configuration (for `[control] socket`).
    #[arg(long, short, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// The control socket (default: `[control] socket` of the configuration, else
    /// /run/encoder-bridge/control.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Print the daemon's answer as JSON.
    #[arg(long)]
    json: bool,
}

/// The control socket: `--socket`, else the configuration's, else the default. The
/// configuration may be unreadable for a group member (it holds paths to secrets): then the
/// default.
pub(crate) fn socket_of(socket: Option<&Path>, config: &Path) -> PathBuf {
    if let Some(s) = socket {
        return s.to_owned();
    }
    Config::load(config).map_or_else(
        |_| PathBuf::from(crate::control::DEFAULT_SOCKET),
        |c| c.control.socket,
    )
}

/// How long `status` waits for an answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// `status`.
pub(crate) fn run(args: &Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let socket = socket_of(args.socket.as_deref(), &args.config);
    let answer = match client::call(&socket, Op::Status, Some(ANSWER_WITHIN)) {
        Ok(answer) => answer,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let Some(status) = answer.status else {
        let why = answer
            .error
            .map_or_else(|| "no status in the answer".to_owned(), |e| e.message);
        eprintln!("error: the daemon did not answer: {why}");
        return Ok(ExitCode::from(2));
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", text(&status));
    }
    Ok(if status.healthy() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn yes_no(b: bool, yes: &str, no: &str) -> String {
    if b { yes.to_owned() } else { no.to_owned() }
}

/// The status for a person.
fn text(status: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "bridge {} (encoder-bridge {}){}",
        status.bridge_id,
        status.version,
        if status.stopping { ", stopping" } else { "" }
    );
    let cloud = &status.cloud;
    if cloud.connected {
        let _ = write!(out, "cloud: connected to {}", cloud.url);
        if let Some(since) = &cloud.connected_since {
            let _ = write!(out, " since {since}");
        }
        if let Some(skew) = cloud.clock_skew_secs {
            let _ = write!(out, ", clock skew {skew:+} s");
        }
        out.push('\n');
    } else {
        let _ = writeln!(out, "cloud: DOWN ({})", cloud.url);
    }
    if let Some(e) = &cloud.last_error {
        let _ = writeln!(out, "  last error: {e}");
    }
    let _ = writeln!(out, "encoders: {}", status.encoders.len());
    for e in &status.encoders {
        let _ = write!(
            out,
            "  {:<5} {:<28} {}, {}",
            e.kind,
            e.reader,
            yes_no(e.online, "online", "OFFLINE"),
            yes_no(e.card_present, "card present", "no card"),
        );
        if let Some(busy) = &e.busy_with {
            let _ = write!(out, ", busy with {busy}");
        }
        let _ = writeln!(out, "  [{}]", e.encoder_id);
    }
    let _ = writeln!(
        out,
        "attempts in flight: {}, results awaiting acknowledgement: {}, operator jobs: {}",
        status.attempts_in_flight, status.outbox, status.local_jobs
    );
    let _ = writeln!(
        out,
        "health: {}",
        yes_no(status.healthy(), "ok", "DEGRADED")
    );
    out
}
