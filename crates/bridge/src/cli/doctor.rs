//! `encoder-bridge doctor`: every check the daemon depends on, each failure with its fix in
//! one line. Exit status 1 when a check fails.

use std::path::PathBuf;
use std::process::ExitCode;

use encoder_hal::ErrorKind;
use serde::Serialize;

use crate::cloud::link::{self, ConnectError};
use crate::config::{Config, DEFAULT_CONFIG};
use crate::secrets;

/// Options of `doctor`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The configuration file.
    #[arg(long, short, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Print JSON (`{"ok": bool, "checks": [{"name", "ok", "message", "fix"}]}`).
    #[arg(long)]
    json: bool,
    /// Skip the cloud checks (reachability, token, clock).
    #[arg(long)]
    offline: bool,
}

/// Largest clock difference to the cloud that passes.
const MAX_SKEW_SECS: i64 = 5;

/// The `--json` output.
#[derive(Debug, Serialize)]
struct Report<'a> {
    ok: bool,
    checks: &'a [Check],
}

#[derive(Debug, Serialize)]
struct Check {
    name: &'static str,
    ok: bool,
    message: String,
    fix: Option<String>,
}

fn pass(name: &'static str, message: impl Into<String>) -> Check {
    Check {
        name,
        ok: true,
        message: message.into(),
        fix: None,
    }
}

fn fail(name: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        ok: false,
        message: message.into(),
        fix: Some(fix.into()),
    }
}

/// Runs every check.
pub(crate) fn run(args: &Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut checks = Vec::new();
    let config = match Config::load(&args.config) {
        Ok(c) => {
            checks.push(pass(
                "config",
                format!("{} is valid", args.config.display()),
            ));
            Some(c)
        }
        Err(e) => {
            checks.push(fail(
                "config",
                format!("{}: `{}`: {}", args.config.display(), e.key, e.problem),
                e.fix,
            ));
            None
        }
    };
    let mut token = None;
    if let Some(config) = &config {
        match secrets::load_token(config) {
            Ok((t, source)) => {
                checks.push(pass("token", format!("from {source}")));
                token = Some(t);
            }
            Err(e) => checks.push(fail("token", e.problem, e.fix)),
        }
        match secrets::load_site_keys(config) {
            Ok(keys) => checks.push(pass(
                "site_keys",
                format!(
                    "versions {:?}, current {}",
                    keys.versions(),
                    keys.current_version()
                ),
            )),
            Err(e) => checks.push(fail("site_keys", e.problem, e.fix)),
        }
        checks.push(state_dir(config));
        checks.extend(state_store(config));
    }
    checks.push(pcscd(config.as_ref()));
    checks.extend(reader_setup(&usb_devices(), &|m| {
        std::path::Path::new("/sys/module").join(m).exists()
    }));
    if let Some(config) = &config {
        for entry in &config.encoders.pn532 {
            let path = entry.device.display().to_string();
            checks.push(match crate::discovery::serial_access(&path) {
                Ok(()) => pass("serial", format!("{path} is readable and writable")),
                Err(e) if e.kind() == ErrorKind::Permission => fail(
                    "serial",
                    e.detail().to_owned(),
                    "install the udev rules (package encoder-bridge) or add the service user to the device's group: `usermod -aG dialout encoder-bridge`",
                ),
                Err(e) if e.kind() == ErrorKind::ReaderUnavailable => fail(
                    "serial",
                    e.detail().to_owned(),
                    "plug the PN532 adapter in (`ls -l /dev/encoder-bridge/`, `dmesg | tail`) or correct encoders.pn532.device",
                ),
                Err(e) => fail("serial", e.detail().to_owned(), "see `dmesg | tail`"),
            });
        }
        if !args.offline
            && let Some(token) = &token
        {
            checks.extend(cloud(config, token));
        }
    }
    let ok = checks.iter().all(|c| c.ok);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&Report {
                ok,
                checks: &checks
            })?
        );
    } else {
        for c in &checks {
            println!(
                "{:<4} {:<10} {}",
                if c.ok { "ok" } else { "FAIL" },
                c.name,
                c.message
            );
            if let Some(fix) = &c.fix {
                println!("     {:<10} fix: {fix}", "");
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The store's content: a layout this version reads, and every row decodable. A store the
/// running service holds is locked: then the service's own log reports damaged rows.
fn state_store(config: &Config) -> Vec<Check> {
    let file = config.state.dir.join(crate::store::FILE_NAME);
    if !file.exists() {
        return Vec::new();
    }
    let store = match crate::store::Store::open(&config.state.dir) {
        Ok(s) => s,
        Err(e) if e.is_newer_layout() => {
            return vec![fail(
                "store",
                e.to_string(),
                "install the newer encoder-bridge again (its state cannot be read by this one)",
            )];
        }
        Err(e) => {
            return vec![pass(
                "store",
                format!(
                    "not checked: {e} (the running service holds it; its log reports damaged rows)"
                ),
            )];
        }
    };
    match store.load() {
        Ok(loaded) if loaded.damaged.is_empty() => vec![pass(
            "store",
            format!(
                "{} attempts, {} results awaiting the cloud's acknowledgement",
                loaded.attempts.len(),
                loaded.outbox.len()
            ),
        )],
        Ok(loaded) => loaded
            .damaged
            .iter()
            .map(|d| {
                fail(
                    "store",
                    d.to_string(),
                    format!(
                        "the attempt {} is lost to the bridge: check it in the cloud's dashboard; the row stays until the state directory is reset",
                        d.key
                    ),
                )
            })
            .collect(),
        Err(e) => vec![fail("store", e.to_string(), "see the error")],
    }
}

fn state_dir(config: &Config) -> Check {
    let dir = &config.state.dir;
    if !dir.exists() {
        // The daemon creates it; what matters is that the parent lets it.
        let parent = dir.parent().unwrap_or(std::path::Path::new("/"));
        let probe = parent.join(".encoder-bridge-doctor-probe");
        return match std::fs::write(&probe, b"") {
            Ok(()) => {
                let _ = std::fs::remove_file(&probe);
                pass(
                    "state",
                    format!("{} will be created by the daemon", dir.display()),
                )
            }
            Err(e) => fail(
                "state",
                format!(
                    "{} does not exist and cannot be created: {e}",
                    dir.display()
                ),
                format!(
                    "create it for the service user: `install -d -o encoder-bridge -g encoder-bridge -m 0750 {}` (systemd's StateDirectory= does this)",
                    dir.display()
                ),
            ),
        };
    }
    let probe = dir.join(".doctor-probe");
    match std::fs::write(&probe, b"") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            pass("state", format!("{} is writable", dir.display()))
        }
        Err(e) => fail(
            "state",
            format!("{} is not writable: {e}", dir.display()),
            format!(
                "create it for the service user: `install -d -o encoder-bridge -g encoder-bridge -m 0750 {}` (systemd's StateDirectory= does this)",
                dir.display()
            ),
        ),
    }
}

/// The USB devices present (vendor, product), from sysfs; empty where there is none.
fn usb_devices() -> Vec<(u16, u16)> {
    let id = |dir: &std::path::Path, file: &str| {
        std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|s| u16::from_str_radix(s.trim(), 16).ok())
    };
    std::fs::read_dir("/sys/bus/usb/devices")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| Some((id(&e.path(), "idVendor")?, id(&e.path(), "idProduct")?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Readers plugged in that need setup before pcscd can use them (the dialect table's
/// `setup`): an OMNIKEY 5427CK in keyboard-wedge mode, an ACR122U or SCL3711 claimed by the
/// kernel's pn533 driver. One failed check with the fix for each.
fn reader_setup(usb: &[(u16, u16)], module_loaded: &dyn Fn(&str) -> bool) -> Vec<Check> {
    use encoder_hal::pcsc::dialect::{SetupNeed, TABLE};
    TABLE
        .iter()
        .filter_map(|d| {
            let setup = d.setup?;
            let needed = match setup.need {
                SetupNeed::KernelModule(module) => {
                    d.usb.iter().any(|id| usb.contains(id)) && module_loaded(module)
                }
                SetupNeed::UsbId(vendor, product) => usb.contains(&(vendor, product)),
            };
            needed.then(|| {
                fail(
                    "reader_setup",
                    format!("{} plugged in, but pcscd cannot use it", d.family),
                    setup.fix,
                )
            })
        })
        .collect()
}

fn pcscd(config: Option<&Config>) -> Check {
    if let Some(config) = config
        && !config.encoders.auto_pcsc
        && config.encoders.pcsc.iter().all(|entry| !entry.enabled)
    {
        return pass("pcscd", "not used: no PC/SC encoders are configured");
    }
    match encoder_hal::pcsc::snapshot() {
        Ok(readers) => {
            let missing: Vec<String> = config
                .map(Config::exact_readers)
                .unwrap_or_default()
                .into_iter()
                .filter(|name| !readers.iter().any(|r| &r.name == name))
                .collect();
            if missing.is_empty() {
                pass(
                    "pcscd",
                    format!("reachable, {} reader(s) visible", readers.len()),
                )
            } else {
                fail(
                    "pcscd",
                    format!("configured reader(s) not present: {}", missing.join(", ")),
                    "plug the reader in, or copy its exact name from `encoder-bridge readers` into encoders.pcsc.reader",
                )
            }
        }
        Err(e) if e.kind() == ErrorKind::Permission => fail(
            "pcscd",
            format!("polkit refused access to pcscd: {}", e.detail()),
            "install the polkit rule /usr/share/polkit-1/rules.d/50-encoder-bridge-pcsc.rules (package encoder-bridge) and run as user encoder-bridge",
        ),
        Err(e) => fail("pcscd", e.to_string(), e.hint()),
    }
}

fn cloud(config: &Config, token: &secrets::Token) -> Vec<Check> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return vec![fail("cloud", e.to_string(), "see the error")],
    };
    let tls = match link::tls_config(&link::Trust::of(config)) {
        Ok(tls) => tls,
        Err(ConnectError::CaFile { path, problem }) => {
            return vec![fail(
                "tls",
                format!("cloud.ca_file {path}: {problem}"),
                "cloud.ca_file must hold the CA's certificates as PEM (-----BEGIN CERTIFICATE-----), readable by the daemon",
            )];
        }
        Err(e) => return vec![fail("tls", e.to_string(), "see the error")],
    };
    runtime.block_on(async {
        let server_time = match link::probe(&config.cloud.url, token, &tls).await {
            Ok(time) => time,
            Err(e @ ConnectError::Unauthorized(_)) => {
                return vec![
                    pass("cloud", format!("{} is reachable", config.cloud.url)),
                    fail(
                        "token",
                        e.to_string(),
                        "put this bridge's current token into the token file (ask the cloud admin for a new one)",
                    ),
                ];
            }
            Err(ConnectError::Certificate { problem, hint }) => {
                return vec![fail(
                    "tls",
                    format!("{}: the cloud's certificate is refused: {problem}", config.cloud.url),
                    hint,
                )];
            }
            Err(e) => {
                return vec![fail(
                    "cloud",
                    format!("{}: {e}", config.cloud.url),
                    "check cloud.url, DNS and that outbound HTTPS (443) is allowed: `curl -sI https://HOST/`",
                )];
            }
        };
        let mut out = vec![
            pass("cloud", format!("{} is reachable", config.cloud.url)),
            pass("token", "accepted by the cloud"),
        ];
        out.push(match server_time {
            None => fail(
                "clock",
                "the cloud sent no welcome with its time",
                "check cloud.url points at the bridge endpoint (protocol v1)",
            ),
            Some(server) => {
                let skew = server.unix_timestamp() - time::OffsetDateTime::now_utc().unix_timestamp();
                if skew.abs() <= MAX_SKEW_SECS {
                    pass("clock", format!("{skew:+} s against the cloud"))
                } else {
                    fail(
                        "clock",
                        format!("{skew:+} s against the cloud"),
                        "enable time synchronisation: `timedatectl set-ntp true`",
                    )
                }
            }
        });
        out
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::reader_setup;

    #[test]
    fn readers_needing_setup_are_named_with_their_fix() {
        let none: &dyn Fn(&str) -> bool = &|_| false;
        let pn533: &dyn Fn(&str) -> bool = &|m| m == "pn533_usb";
        // Nothing plugged in, or an ACR122U with the driver blacklisted: nothing to say.
        assert!(reader_setup(&[], pn533).is_empty());
        assert!(reader_setup(&[(0x072F, 0x2200)], none).is_empty());
        let checks = reader_setup(&[(0x072F, 0x2200), (0x1D6B, 0x0002)], pn533);
        assert_eq!(checks.len(), 1);
        assert!(!checks[0].ok && checks[0].message.contains("ACR122U"));
        assert!(
            checks[0]
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("modprobe -r"))
        );
        let checks = reader_setup(&[(0x076B, 0x5428)], none);
        assert_eq!(checks.len(), 1);
        assert!(
            checks[0].message.contains("5427CK"),
            "{}",
            checks[0].message
        );
        assert!(
            checks[0]
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("CCID mode"))
        );
        // In CCID mode it is a reader like any other.
        assert!(reader_setup(&[(0x076B, 0x5427)], none).is_empty());
    }
}
