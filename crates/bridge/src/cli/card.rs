//! `encoder-bridge scan` and `encoder-bridge encode`: a job on an encoder, without the cloud.
//!
//! When the daemon runs, the job goes through its control socket and is queued on that
//! encoder's runner like a cloud attempt (the encoder's configured card wait applies);
//! otherwise, or with `--direct`, the daemon's job code path ([`crate::card_job::execute`])
//! runs once in this process. `--direct` on an encoder the daemon drives is refused: the
//! daemon holds the device.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use encoder_hal::EncoderKind;

use crate::card_job::{Exec, execute};
use crate::cloud::translate;
use crate::config::{Config, DEFAULT_CONFIG};
use crate::control::client;
use crate::control::wire::Op;
use crate::discovery::{self, Wanted};
use crate::job::{CardJob, JobAction, JobReport};

/// Which encoder, and how to print.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// The configuration (site keys, encoders).
    #[arg(long, short, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// PC/SC reader name (default: the one configured or present).
    #[arg(long, conflicts_with = "device")]
    reader: Option<String>,
    /// PN532 serial device instead of a PC/SC reader.
    #[arg(long)]
    device: Option<String>,
    /// Seconds to wait for a card (default: the configured card wait; through the daemon
    /// always the encoder's configured card wait).
    #[arg(long)]
    wait: Option<f64>,
    /// Print the result as JSON (the `result` message's `result` or `error` object).
    #[arg(long)]
    json: bool,
    /// Open the encoder in this process instead of asking the running daemon.
    #[arg(long)]
    direct: bool,
    /// The daemon's control socket (default: `[control] socket` of the configuration).
    #[arg(long)]
    socket: Option<PathBuf>,
}

/// Options of `scan`.
#[derive(Debug, clap::Args)]
pub(crate) struct ScanArgs {
    #[command(flatten)]
    target: Target,
}

/// Options of `encode`.
#[derive(Debug, clap::Args)]
pub(crate) struct EncodeArgs {
    /// The credential as JSON: `acs_credential_id`, `card_number` (or null), `starts_at`,
    /// `ends_at`, `issue_counter`, `access_data` (base64), as in `attempt_available`.
    #[arg(long)]
    credential: PathBuf,
    #[command(flatten)]
    target: Target,
}

fn pick(config: &Config, target: &Target) -> Result<Wanted, String> {
    let wait = target
        .wait
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or_else(|| config.card_wait());
    let with_wait = |mut w: Wanted| {
        if target.wait.is_some() {
            w.card_wait = wait;
        }
        w
    };
    if let Some(device) = &target.device {
        return Ok(with_wait(Wanted {
            kind: EncoderKind::Pn532,
            reader: device.clone(),
            display_name: device.clone(),
            card_wait: wait,
            feedback: false,
            configured: false,
        }));
    }
    if let Some(reader) = &target.reader {
        return Ok(with_wait(discovery::pcsc_reader(config, reader).unwrap_or(
            Wanted {
                kind: EncoderKind::Pcsc,
                reader: reader.clone(),
                display_name: reader.clone(),
                card_wait: wait,
                feedback: config.encoders.feedback.is_on(),
                configured: false,
            },
        )));
    }
    let mut candidates: Vec<Wanted> = discovery::configured(config);
    if let Ok(readers) = encoder_hal::pcsc::states() {
        for r in readers {
            if !candidates.iter().any(|c| c.reader == r.name)
                && let Some(w) = discovery::pcsc_reader(config, &r.name)
            {
                candidates.push(w);
            }
        }
    }
    match candidates.len() {
        0 => Err("no encoder: no reader is present or configured (check `encoder-bridge readers`, or pass --reader NAME / --device PATH)".into()),
        1 => Ok(with_wait(candidates.remove(0))),
        _ => Err(discovery::several_encoders(
            candidates.iter().map(|c| c.reader.as_str()),
        )),
    }
}

/// Runs the job through the daemon; `None` when no daemon answers.
fn through_daemon(
    target: &Target,
    socket: &std::path::Path,
    credential: Option<serde_json::Value>,
) -> Result<Option<ExitCode>, Box<dyn std::error::Error>> {
    if !socket.exists() {
        return Ok(None);
    }
    let encoder = target.device.clone().or_else(|| target.reader.clone());
    let op = match credential {
        None => Op::Scan { encoder },
        Some(credential) => Op::Encode {
            encoder,
            credential,
        },
    };
    if !target.json {
        eprintln!("place a card on the encoder (the job runs in the encoder-bridge service)");
        if target.wait.is_some() {
            eprintln!(
                "note: --wait applies with --direct only; the service waits the encoder's configured card wait"
            );
        }
    }
    let answer = match client::call(socket, op, None) {
        Ok(answer) => answer,
        Err(e) if e.no_daemon() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some(job) = answer.job else {
        let why = answer
            .error
            .map_or_else(|| "the daemon gave no answer".to_owned(), |e| e.message);
        return Err(why.into());
    };
    if target.json {
        println!("{}", serde_json::to_string_pretty(&job.report)?);
    } else {
        print!("{}", job.text);
    }
    Ok(Some(if job.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }))
}

/// Whether the running daemon drives `reader` (a direct open would fight it for the device).
fn daemon_drives(socket: &std::path::Path, reader: &str) -> bool {
    client::call(socket, Op::Status, Some(Duration::from_secs(2)))
        .ok()
        .and_then(|answer| answer.status)
        .is_some_and(|status| status.encoders.iter().any(|e| e.reader == reader))
}

fn go(
    target: &Target,
    action: JobAction,
    credential: Option<serde_json::Value>,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let socket = super::status::socket_of(target.socket.as_deref(), &target.config);
    if !target.direct {
        if let Some(code) = through_daemon(target, &socket, credential)? {
            return Ok(code);
        }
        if !target.json {
            eprintln!("no encoder-bridge daemon runs: opening the encoder directly");
        }
    }
    let config = Config::load(&target.config)?;
    let site = crate::secrets::load_site_keys(&config)?;
    let wanted = pick(&config, target)?;
    if target.direct && daemon_drives(&socket, &wanted.reader) {
        return Err(format!(
            "\"{}\" is in use by the encoder-bridge service; run without --direct",
            wanted.reader
        )
        .into());
    }
    let mut encoder = (discovery::factory(&wanted))();
    let job = CardJob::local(action);
    if !target.json {
        eprintln!(
            "place a card on \"{}\" (waiting up to {} s)",
            wanted.reader,
            wanted.card_wait.as_secs()
        );
    }
    let exec = Exec {
        card_wait: wanted.card_wait,
        feedback: wanted.feedback,
        media: config.media,
        site: &site,
        store: None,
        control: None,
    };
    let report = execute(encoder.as_mut(), &job, &exec);
    let JobReport::Done { outcome, .. } = &report else {
        return Err("cancelled".into());
    };
    if target.json {
        println!("{}", translate::report_json(&report).unwrap_or_default());
    } else {
        print!("{}", report.describe().unwrap_or_default());
    }
    Ok(if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `scan`.
pub(crate) fn scan(args: &ScanArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    go(&args.target, JobAction::Scan, None)
}

/// `encode`.
pub(crate) fn encode(args: &EncodeArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(&args.credential)
        .map_err(|e| format!("cannot read {}: {e}", args.credential.display()))?;
    let request = translate::encode_request_from_json(&text).map_err(|e| {
        format!(
            "{}: {e} (expected {{\"acs_credential_id\": UUID, \"card_number\": \"123\", \"starts_at\": RFC 3339, \"ends_at\": RFC 3339, \"issue_counter\": 1, \"access_data\": BASE64}})",
            args.credential.display()
        )
    })?;
    let credential = serde_json::from_str(&text)?;
    go(&args.target, JobAction::Encode(request), Some(credential))
}
