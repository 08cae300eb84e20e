//! `encoder-bridge scan` and `encoder-bridge encode`: the daemon's job code path
//! ([`crate::card_job::execute`]) run once, from the command line, without the cloud.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use encoder_hal::EncoderKind;

use encoder_protocol::format::CardCredential;
use encoder_protocol::hex;

use crate::card_job::{Exec, execute};
use crate::cloud::translate;
use crate::config::{Config, DEFAULT_CONFIG};
use crate::discovery::{self, Wanted};
use crate::job::{CardJob, JobAction, JobReport, Success};

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
    /// Seconds to wait for a card (default: the configured card wait).
    #[arg(long)]
    wait: Option<f64>,
    /// Print the result as JSON (the `result` message's `result` or `error` object).
    #[arg(long)]
    json: bool,
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
        _ => Err(format!(
            "several encoders ({}): pass --reader NAME or --device PATH",
            candidates
                .iter()
                .map(|c| format!("\"{}\"", c.reader))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn go(target: &Target, action: JobAction) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let config = Config::load(&target.config)?;
    let site = crate::secrets::load_site_keys(&config)?;
    let wanted = pick(&config, target)?;
    let mut encoder = (discovery::factory(&wanted))();
    let job = CardJob {
        id: format!("local-{}", uuid::Uuid::new_v4()),
        action,
        deadline: None,
        lease: Arc::new(AtomicI64::new(0)),
    };
    if !target.json {
        eprintln!(
            "place a card on \"{}\" (waiting up to {} s)",
            wanted.reader,
            wanted.card_wait.as_secs()
        );
    }
    let exec = Exec {
        card_wait: wanted.card_wait,
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
        match outcome {
            Ok(success) => print_human(success),
            Err(e) => {
                println!("failed: {} ({})", e.message, e.kind);
                if let Some(sub) = e.sub_code {
                    println!("  sub_code: {sub}");
                }
                println!("  detail:   {}", e.detail);
            }
        }
    }
    Ok(if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn time_text(unix: Option<i64>) -> Option<String> {
    let at = time::OffsetDateTime::from_unix_timestamp(unix?).ok()?;
    at.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

fn print_credential(written: &CardCredential) {
    let c = &written.credential;
    println!("acs_credential_id: {}", c.credential_id);
    println!("card_number: {}", c.card_number);
    for (key, value) in [("starts_at", c.starts_at), ("ends_at", c.ends_at)] {
        if let Some(text) = time_text(value) {
            println!("{key}: {text}");
        }
    }
    println!("issue_counter: {}", c.issue_counter);
    println!("key_version: {}", written.key_version);
}

fn print_human(success: &Success) {
    match success {
        Success::Scanned(scan) => {
            println!(
                "card: {} uid {} ({})",
                scan.card_type.name(),
                hex::encode(&scan.uid),
                scan.state.name()
            );
            match &scan.credential {
                Some(written) => print_credential(written),
                None => println!("credential: none of ours"),
            }
        }
        Success::Encoded {
            written,
            uid,
            card_type,
            first_encode,
        } => {
            println!("card: {} uid {}", card_type.name(), hex::encode(uid));
            print_credential(written);
            println!(
                "written: format_version {} sequence {} first_encode {}",
                written.format_version,
                written.sequence,
                first_encode.map_or_else(|| "unknown".to_owned(), |f| f.to_string())
            );
        }
    }
}

/// `scan`.
pub(crate) fn scan(args: &ScanArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    go(&args.target, JobAction::Scan)
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
    go(&args.target, JobAction::Encode(request))
}
