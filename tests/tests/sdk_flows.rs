//! Seam's official SDKs against the cloud simulator: outside checks nobody on this project
//! wrote. Each test starts `encoder-sim cloud`, the real `encoder-bridge run` and two PN532
//! emulators ("Front Desk" with card 04A1B2C3, "Back Office" with no card), then runs a
//! script from `tests/sdk/` that uses the SDK exactly as the seeds show, changing only the
//! endpoint and the token:
//!
//! - `python_sdk_seed_flows`: `tests/sdk/python/seed_flow.py` (`PyPI` `seam`), with webhooks
//!   delivered to `tests/sdk/python/webhook_receiver.py`, which verifies each with the SDK's
//!   `SeamWebhook`;
//! - `javascript_sdk_seed_flows`: `tests/sdk/js/seed_flow.mjs` (npm `seam`);
//! - every answer the SDKs received is then validated against Seam's `OpenAPI` document
//!   (npm `@seamapi/types`, pinned by `tests/sdk/package-lock.json`) by
//!   `tests/sdk/python/contract.py`;
//! - `simulator_meets_the_openapi_contract`: `contract.py` asks every served route with every
//!   method directly (methods, query parameters, error envelopes and statuses).
//!
//! `make deps` installs the SDKs (a virtualenv at `$ENCODER_SDK_VENV`, default
//! `target/sdk/venv`, and `tests/sdk/node_modules`). Without them these tests fail when `CI`
//! is set, and are skipped with a notice otherwise.

mod pn532_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use encoder_tests::daemon::{Bridge, Setup, TOKEN};
use encoder_tests::e2e::{Cloud, SYSTEM, add_pn532};
use encoder_tests::workspace;
use pn532_support::Emulator;

/// How long the bridge waits for a card: the no-card scan ends within the SDK's default
/// 5 s wait for an action attempt.
const CARD_WAIT_SECS: f64 = 2.0;

/// How long one SDK script may run.
const SCRIPT_LIMIT: Duration = Duration::from_secs(90);

/// The webhook secret given to the simulator (`whsec_` + base64 of 24 bytes).
const WEBHOOK_SECRET: &str = "whsec_c2ltdWxhdG9yLXdlYmhvb2stc2VjcmV0LTI0Yg==";

fn sdk_dir() -> PathBuf {
    workspace().join("tests").join("sdk")
}

/// Whether an SDK is installed; if not, fails under CI and skips (with a notice) otherwise.
fn installed(what: &str, path: &Path) -> bool {
    if path.exists() {
        return true;
    }
    let hint = format!(
        "{what} is not installed ({} is missing): run `make deps`",
        path.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{hint}");
    eprintln!("skipped: {hint}");
    false
}

/// The virtualenv's python with Seam's Python SDK and the schema validator.
fn python() -> Option<PathBuf> {
    let venv = std::env::var_os("ENCODER_SDK_VENV").map_or_else(
        || workspace().join("target").join("sdk").join("venv"),
        PathBuf::from,
    );
    let python = venv.join("bin").join("python");
    installed("Seam's Python SDK", &python).then_some(python)
}

/// Whether npm's `seam` and `@seamapi/types` are installed in `tests/sdk/node_modules`.
fn node_sdk() -> bool {
    installed(
        "Seam's JavaScript SDK",
        &sdk_dir()
            .join("node_modules")
            .join("seam")
            .join("package.json"),
    )
}

/// Runs `command` to its end (killed after [`SCRIPT_LIMIT`]); panics with its output unless
/// it succeeds. Its output.
fn run(what: &str, mut command: Command) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("out");
    let out = std::fs::File::create(&out_path).expect("output file");
    let err = out.try_clone().expect("output file");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let status = wait(&mut child, SCRIPT_LIMIT);
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(
        status == Some(true),
        "{what} {}:\n{output}",
        if status.is_none() {
            "did not finish in time"
        } else {
            "failed"
        }
    );
    output
}

/// Waits for `child` at most `limit` (killing it then): `Some(success)`, or `None` on timeout.
fn wait(child: &mut Child, limit: Duration) -> Option<bool> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status.success());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes the pinned `OpenAPI` document to `out` (`tests/sdk/js/openapi.mjs`).
fn openapi_document(out: &Path) {
    let mut node = Command::new("node");
    node.current_dir(sdk_dir())
        .arg(sdk_dir().join("js").join("openapi.mjs"))
        .arg(out);
    run("extracting Seam's OpenAPI document", node);
}

/// contract.py with `args` after the document; its report.
fn contract(python: &Path, dir: &Path, args: &[&str]) -> String {
    let document = dir.join("seam-connect-openapi.json");
    openapi_document(&document);
    let mut check = Command::new(python);
    check
        .arg(sdk_dir().join("python").join("contract.py"))
        .arg(&document)
        .args(args);
    run("the OpenAPI contract check", check)
}

/// The simulator, the bridge and two PN532 encoders.
struct World {
    dir: tempfile::TempDir,
    cloud: Cloud,
    _front: Emulator,
    _back: Emulator,
    _setup: Setup,
    _bridge: Bridge,
}

impl World {
    fn start(cloud_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let front = Emulator::start(
            &dir.path().join("front"),
            &["--type", "classic-1k", "--uid", "04A1B2C3"],
        );
        let mut back = Emulator::start(
            &dir.path().join("back"),
            &["--type", "classic-1k", "--uid", "0A0B0C0D"],
        );
        back.remove();
        let cloud = Cloud::start_with(cloud_args);
        let setup = Setup::new(&cloud.ws_url(), &[], CARD_WAIT_SECS, TOKEN);
        add_pn532(&setup.config(), &front.path(), "Front Desk");
        add_pn532(&setup.config(), &back.path(), "Back Office");
        let bridge = setup.spawn(&("ENCODER_E2E", "sdk".into()));
        // Both encoders online before the SDK looks for them.
        cloud.encoder_named("Front Desk");
        cloud.encoder_named("Back Office");
        Self {
            dir,
            cloud,
            _front: front,
            _back: back,
            _setup: setup,
            _bridge: bridge,
        }
    }

    fn record(&self) -> PathBuf {
        self.dir.path().join("responses.jsonl")
    }

    /// Validates every answer the flow recorded (contract.py check); the report, which names
    /// the PATCH of `/acs/credentials/update` (the SDKs' method for it).
    fn check_recorded(&self, python: &Path) -> String {
        let record = self.record();
        let report = contract(
            python,
            self.dir.path(),
            &["check", &record.to_string_lossy()],
        );
        eprintln!("{report}");
        assert!(
            report.contains("PATCH /acs/credentials/update 200"),
            "{report}"
        );
        report
    }

    /// The environment of a flow script: the endpoint and token, and what the seeds name.
    fn flow(&self, program: impl AsRef<std::ffi::OsStr>, script: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .current_dir(script.parent().expect("script dir"))
            .arg(script)
            .env("SEAM_ENDPOINT", self.cloud.endpoint())
            .env("SEAM_API_KEY", TOKEN)
            .env("SYSTEM_ID", SYSTEM)
            .env("FRONT_DESK", "Front Desk")
            .env("BACK_OFFICE", "Back Office")
            .env("RECORD", self.record());
        command
    }
}

/// Starts the webhook receiver; it and its port.
fn webhook_receiver(python: &Path, expect: &str) -> (Child, u16) {
    use std::io::{BufRead, BufReader};
    // Killed with the test if it fails first.
    let mut child = Command::new("setpriv")
        .args(["--pdeathsig", "KILL"])
        .arg(python)
        .arg(sdk_dir().join("python").join("webhook_receiver.py"))
        .args([WEBHOOK_SECRET, expect, "80"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cannot start the webhook receiver");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let port = lines
        .next()
        .and_then(Result::ok)
        .and_then(|l| l.strip_prefix("listening on ")?.trim().parse().ok())
        .expect("the webhook receiver did not print its port");
    // Keep draining its output (so it never blocks on a full pipe), echoed for the log.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            eprintln!("webhook receiver: {line}");
        }
    });
    (child, port)
}

#[test]
fn python_sdk_seed_flows() {
    let Some(python) = python() else { return };
    if !node_sdk() {
        return;
    }
    let (mut receiver, port) = webhook_receiver(&python, "acs_credential.issued");
    let url = format!("http://127.0.0.1:{port}/seam-webhooks");
    let world = World::start(&["--webhook-url", &url, "--webhook-secret", WEBHOOK_SECRET]);
    let script = sdk_dir().join("python").join("seed_flow.py");
    let output = run("the Python SDK flow", world.flow(&python, &script));
    assert!(output.contains("all steps passed"), "{output}");
    assert_eq!(
        wait(&mut receiver, Duration::from_secs(30)),
        Some(true),
        "the webhook receiver did not verify an acs_credential.issued delivery with SeamWebhook"
    );
    let report = world.check_recorded(&python);
    assert!(report.contains("GET /action_attempts/get 200"), "{report}");
}

#[test]
fn javascript_sdk_seed_flows() {
    let Some(python) = python() else { return };
    if !node_sdk() {
        return;
    }
    let world = World::start(&[]);
    let script = sdk_dir().join("js").join("seed_flow.mjs");
    let output = run("the JavaScript SDK flow", world.flow("node", &script));
    assert!(output.contains("all steps passed"), "{output}");
    world.check_recorded(&python);
}

#[test]
fn simulator_meets_the_openapi_contract() {
    let Some(python) = python() else { return };
    if !node_sdk() {
        return;
    }
    let world = World::start(&[]);
    let report = contract(
        &python,
        world.dir.path(),
        &["probe", &world.cloud.endpoint(), TOKEN],
    );
    eprintln!("{report}");
    assert!(report.contains("0 problems"), "{report}");
}
