//! Running the real `encoder-bridge run` binary in tests: a configuration with a token file and
//! a site key in a temporary directory, the process started with the rig's environment and
//! JSON logs captured, and the messages a scripted cloud sends.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::binary;
use crate::cloud::in_secs;

/// The token the tests' cloud double accepts.
pub const TOKEN: &str = "seam_test_token_7f3a";

/// The site master key of the tests (version 1).
pub const SITE_KEY: &str = "000102030405060708090a0b0c0d0e0f";

/// A bridge's files: config, token, key, state directory.
pub struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    /// Writes a configuration for `url`, driving the given exact reader names (and picking up
    /// others unless `auto` is false), with `card_wait` seconds.
    pub fn new(url: &str, readers: &[String], card_wait: f64, token: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("bridge.")
            .tempdir()
            .expect("tempdir");
        let secret = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write secret");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        };
        secret("token", token);
        secret("site-key-v1", SITE_KEY);
        let mut config = format!(
            "[cloud]\nurl = \"{url}\"\ntoken_file = \"token\"\nallow_insecure = true\n\n\
             [[site_keys.key]]\nversion = 1\nfile = \"site-key-v1\"\n\n\
             [state]\ndir = \"state\"\n\n\
             [control]\nsocket = \"run/control.sock\"\ngroup = \"root\"\n\n\
             [encoders]\nauto_pcsc = false\ncard_wait_secs = {card_wait}\n"
        );
        // Others may pass through (not list) the directory to reach run/control.sock; the
        // secrets stay 0600.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
            .expect("chmod");
        for reader in readers {
            let _ = write!(config, "\n[[encoders.pcsc]]\nreader = \"{reader}\"\n");
        }
        std::fs::write(dir.path().join("config.toml"), config).expect("config");
        Self { dir }
    }

    /// Adds `key = value` lines to the `[cloud]` table (e.g. `ping_interval_secs = 1`);
    /// before [`Setup::spawn`].
    pub fn cloud_option(&self, line: &str) {
        let path = self.config();
        let text = std::fs::read_to_string(&path).expect("config");
        let text = text.replacen(
            "allow_insecure = true\n",
            &format!("allow_insecure = true\n{line}\n"),
            1,
        );
        std::fs::write(&path, text).expect("config");
    }

    /// The configuration file.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// The daemon's control socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run/control.sock")
    }

    /// The directory holding everything.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts `encoder-bridge -v --log-format json run --config ...` with `env` (the rig's).
    pub fn spawn(&self, env: &(&'static str, std::ffi::OsString)) -> Bridge {
        let mut child = Command::new("setpriv")
            .arg("--pdeathsig")
            .arg("KILL")
            .arg(binary("encoder-bridge"))
            .args(["-v", "--log-format", "json", "run", "--config"])
            .arg(self.config())
            .env(env.0, &env.1)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start encoder-bridge");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("BRIDGE_LOG").is_some() {
                    eprintln!("bridge: {line}");
                }
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            }
        });
        Bridge { child, lines }
    }
}

/// A running bridge process.
pub struct Bridge {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Bridge {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every log line so far (JSON).
    pub fn log(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Log lines parsed as JSON.
    pub fn events(&self) -> Vec<Value> {
        self.log()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until a log line satisfies `pred`.
    pub fn wait_log(&self, limit: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = self.events().into_iter().find(|v| pred(v)) {
                return Some(v);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (`TERM`, `KILL`, `INT`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit; its exit code (`None`: killed by a signal).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The encoder id the bridge announced for `reader` in `hello`.
pub fn encoder_id(hello: &Value, reader: &str) -> String {
    hello["encoders"]
        .as_array()
        .and_then(|list| list.iter().find(|e| e["reader"] == reader))
        .and_then(|e| e["encoder_id"].as_str())
        .unwrap_or_else(|| panic!("no encoder for {reader:?} in {hello}"))
        .to_owned()
}

/// A new attempt id.
pub fn attempt_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An `attempt_available` for an encode.
pub fn encode_offer(attempt: &str, encoder: &str, credential_id: &str, card_number: &str) -> Value {
    json!({
        "type": "attempt_available",
        "action_attempt_id": attempt,
        "action_type": "ENCODE_CREDENTIAL",
        "encoder_id": encoder,
        "created_at": in_secs(0),
        "expires_at": in_secs(120),
        "credential": {
            "acs_credential_id": credential_id,
            "card_number": card_number,
            "starts_at": "2024-12-01T15:00:00.000Z",
            "ends_at": "2030-12-04T12:00:00.000Z",
            "is_issued": false,
            "issue_counter": 1,
            "access_data": "AQID"
        }
    })
}

/// An `attempt_available` for a scan.
pub fn scan_offer(attempt: &str, encoder: &str) -> Value {
    json!({
        "type": "attempt_available",
        "action_attempt_id": attempt,
        "action_type": "SCAN_CREDENTIAL",
        "encoder_id": encoder,
        "created_at": in_secs(0),
        "expires_at": in_secs(120),
        "credential": null
    })
}

/// A `claim_granted` with a 30 s lease and a deadline `deadline_secs` from now.
pub fn grant(attempt: &str, deadline_secs: u64) -> Value {
    json!({
        "type": "claim_granted",
        "action_attempt_id": attempt,
        "lease_expires_at": in_secs(30),
        "deadline": in_secs(deadline_secs),
    })
}

/// A `claim_granted` with a lease of `lease_secs` and a deadline `deadline_secs` from now.
pub fn grant_with_lease(attempt: &str, lease_secs: u64, deadline_secs: u64) -> Value {
    json!({
        "type": "claim_granted",
        "action_attempt_id": attempt,
        "lease_expires_at": in_secs(lease_secs),
        "deadline": in_secs(deadline_secs),
    })
}

/// A `result_ack`.
pub fn ack(attempt: &str) -> Value {
    json!({ "type": "result_ack", "action_attempt_id": attempt })
}

/// Lines of an `encoder-sim --apdu-log` file that are card writes (`FF D6`).
pub fn writes_in(apdu_log: &Path) -> usize {
    std::fs::read_to_string(apdu_log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("FF D6"))
        .count()
}
