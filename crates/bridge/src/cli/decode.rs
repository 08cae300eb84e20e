//! `encoder-bridge decode`: a saved card image (`.mfd`) decoded offline with the site keys of
//! the configuration, by the same checks the scan job makes on a card
//! ([`encoder_protocol::card_image`], docs/card-format.md §5.5). For support staff and lock
//! vendors: it prints the card state, the format version, the credential and every check, and
//! marks those that failed. Exit status 0 when the image holds a valid credential, 2 when it
//! decodes but holds none (blank, foreign, damaged, ...), 1 on an error (unreadable file,
//! wrong size, bad configuration).

use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine as _;
use encoder_protocol::card_image::{self, ImageReport};
use encoder_protocol::hex;
use encoder_protocol::mifare::geometry::Geometry;
use serde_json::{Value, json};

use crate::config::{Config, DEFAULT_CONFIG};

/// Options of `decode`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The configuration (its site keys decode the image).
    #[arg(long, short, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// The card image: every block in order, 320 (Mini), 1024 (1K) or 4096 (4K) bytes, as
    /// `nfc-mfclassic r` and most tools save it.
    image: PathBuf,
    /// The card UID in hex (default: from block 0; needed for 10-byte UIDs).
    #[arg(long)]
    uid: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `decode`.
pub(crate) fn run(args: &Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let image = std::fs::read(&args.image)
        .map_err(|e| format!("cannot read {}: {e}", args.image.display()))?;
    let uid = match &args.uid {
        Some(text) => Some(
            hex::decode(text)
                .ok_or_else(|| format!("--uid {text:?} is not hex (for example 04A1B2C3)"))?,
        ),
        None => None,
    };
    let config = Config::load(&args.config)?;
    let site = crate::secrets::load_site_keys(&config)?;
    let report = card_image::decode(&image, uid.as_deref(), &site)
        .map_err(|e| format!("{}: {e}", args.image.display()))?;
    let value = report_json(&report);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_human(&report, &value);
    }
    Ok(if report.credential.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn card_name(g: Geometry) -> &'static str {
    if g == Geometry::MINI {
        "classic-mini"
    } else if g == Geometry::CLASSIC_4K {
        "classic-4k"
    } else {
        "classic-1k"
    }
}

/// RFC 3339 (UTC) of unix seconds; the number itself when out of range.
fn time_text(t: Option<i64>) -> Value {
    let Some(t) = t else {
        return Value::Null;
    };
    match time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        }) {
        Some(text) => Value::String(text),
        None => json!(t),
    }
}

fn report_json(r: &ImageReport) -> Value {
    let credential = r.credential.as_ref().map(|c| {
        let k = &c.credential;
        json!({
            "acs_credential_id": k.credential_id,
            "card_number": k.card_number,
            "starts_at": time_text(k.starts_at),
            "ends_at": time_text(k.ends_at),
            "issue_counter": k.issue_counter,
            "access_data": base64::engine::general_purpose::STANDARD.encode(&k.access_data),
        })
    });
    let checks: Vec<Value> = r
        .checks
        .iter()
        .map(|c| json!({ "check": c.name, "passed": c.passed, "detail": c.detail }))
        .collect();
    json!({
        "card": { "uid": hex::encode(&r.uid), "type": card_name(r.geometry) },
        "state": r.state.name(),
        "format_version": r.credential.as_ref().map(|c| c.format_version),
        "key_version": r.credential.as_ref().map(|c| c.key_version),
        "sequence": r.credential.as_ref().map(|c| c.sequence),
        "slot": r.slot.map(|s| if s == 0 { "A" } else { "B" }),
        "credential": credential,
        "checks": checks,
        "failed_checks": r.checks.iter().filter(|c| !c.passed).map(|c| c.name).collect::<Vec<_>>(),
    })
}

fn print_human(r: &ImageReport, v: &Value) {
    println!(
        "card: {} uid {}",
        card_name(r.geometry),
        hex::encode(&r.uid)
    );
    println!("state: {}", r.state.name());
    if let Some(c) = &r.credential {
        println!(
            "format_version: {}  key_version: {}  slot: {}  sequence: {}",
            c.format_version,
            c.key_version,
            if r.slot == Some(0) { "A" } else { "B" },
            c.sequence
        );
        let cred = &v["credential"];
        for key in [
            "acs_credential_id",
            "card_number",
            "starts_at",
            "ends_at",
            "issue_counter",
            "access_data",
        ] {
            let text = match &cred[key] {
                Value::String(s) => s.clone(),
                Value::Null => "none".into(),
                other => other.to_string(),
            };
            println!("  {key:<18} {text}");
        }
    } else {
        println!("credential: none");
    }
    println!("checks:");
    for c in &r.checks {
        let mark = if c.passed { "ok  " } else { "FAIL" };
        println!("  {mark} {:<18} {}", c.name, c.detail);
    }
}
