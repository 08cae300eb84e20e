//! `encoder-bridge scan` and `encoder-bridge encode`: the daemon's job code path
//! ([`crate::runner::execute`]) run once, from the command line, without the cloud.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use encoder_hal::EncoderKind;

use crate::cloud::message::{ActionType, AttemptAvailable, OfferedCredential};
use crate::config::{Config, DEFAULT_CONFIG};
use crate::discovery::{self, Wanted};
use crate::runner::{Exec, Job, JobKind, Outcome, execute};

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
    if let Ok(readers) = encoder_hal::pcsc::snapshot() {
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

fn go(
    target: &Target,
    action_type: ActionType,
    credential: Option<OfferedCredential>,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let config = Config::load(&target.config)?;
    let site = crate::secrets::load_site_keys(&config)?;
    let wanted = pick(&config, target)?;
    let mut encoder = (discovery::factory(&wanted))();
    let job = Job {
        attempt: AttemptAvailable {
            action_attempt_id: format!("local-{}", uuid::Uuid::new_v4()),
            action_type,
            encoder_id: "local".into(),
            created_at: None,
            expires_at: None,
            credential,
        },
        kind: JobKind::Run,
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
        encoder_id: "local",
        card_wait: wanted.card_wait,
        site: &site,
        store: None,
        control: None,
    };
    let Outcome::Result(result) = execute(encoder.as_mut(), &job, &exec) else {
        return Err("cancelled".into());
    };
    let ok = result.error.is_none();
    if target.json {
        let value = match (&result.result, &result.error) {
            (Some(r), _) => serde_json::json!({ "status": "success", "result": r }),
            (None, e) => serde_json::json!({ "status": "error", "error": e }),
        };
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else if let Some(r) = &result.result {
        print_human(r);
    } else if let Some(e) = &result.error {
        println!("failed: {} ({})", e.message, e.kind);
        if let Some(sub) = &e.sub_code {
            println!("  sub_code: {sub}");
        }
        if let Some(detail) = &e.detail {
            println!("  detail:   {detail}");
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_human(r: &serde_json::Value) {
    let card = &r["card"];
    println!(
        "card: {} uid {}{}",
        card["type"].as_str().unwrap_or("?"),
        card["uid"].as_str().unwrap_or("?"),
        card["state"]
            .as_str()
            .map_or_else(String::new, |s| format!(" ({s})"))
    );
    let credential = if r.get("acs_credential_on_encoder").is_some() {
        &r["acs_credential_on_encoder"]
    } else {
        r
    };
    if credential.is_null() {
        println!("credential: none of ours");
        return;
    }
    for key in [
        "acs_credential_id",
        "card_number",
        "starts_at",
        "ends_at",
        "issue_counter",
        "key_version",
        "issued_at",
    ] {
        if let Some(v) = credential.get(key).filter(|v| !v.is_null()) {
            println!(
                "{key}: {}",
                v.as_str().map_or_else(|| v.to_string(), str::to_owned)
            );
        }
    }
    if let Some(w) = r.get("written") {
        println!("written: {w}");
    }
}

/// `scan`.
pub(crate) fn scan(args: &ScanArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    go(&args.target, ActionType::Scan, None)
}

/// `encode`.
pub(crate) fn encode(args: &EncodeArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(&args.credential)
        .map_err(|e| format!("cannot read {}: {e}", args.credential.display()))?;
    let credential: OfferedCredential = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}: {e} (expected {{\"acs_credential_id\": UUID, \"card_number\": \"123\", \"starts_at\": RFC 3339, \"ends_at\": RFC 3339, \"issue_counter\": 1, \"access_data\": BASE64}})",
            args.credential.display()
        )
    })?;
    go(&args.target, ActionType::Encode, Some(credential))
}
