//! Support for the soak (`tests/src/bin/soak.rs`) and the bridge benchmark
//! (`tests/benches/bridge.rs`): the real processes (`encoder-sim cloud`, `encoder-bridge run`)
//! with their logs in files, a blocking client for the cloud's HTTP API, and a TCP proxy in
//! front of the cloud that the harness can cut to drop the bridge's websocket.
//!
//! Everything here runs real binaries (see [`crate::binary`]); nothing is mocked.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::binary;
use crate::daemon::SITE_KEY;

/// The token of the soak and benchmark cloud.
pub const TOKEN: &str = "soak-token-51c2";

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn append(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("log file")
}

/// A running `encoder-sim cloud [--state F]` (restartable when it has a state file: the file
/// keeps everything).
pub struct CloudProc {
    child: Child,
    addr: SocketAddr,
    state: Option<PathBuf>,
    log: PathBuf,
    attempt_timeout: f64,
}

impl CloudProc {
    /// Starts the simulator on 127.0.0.1 port 0, keeping its state in `state`, logging to
    /// `log`, with pending attempts expiring after `attempt_timeout` seconds.
    pub fn start(state: &Path, log: &Path, attempt_timeout: f64) -> Self {
        Self::spawn(Some(state), log, attempt_timeout)
    }

    /// Starts the simulator with its state in memory only: no file is rewritten on every
    /// change, so it does not slow down a throughput measurement (it cannot be restarted).
    pub fn start_in_memory(log: &Path, attempt_timeout: f64) -> Self {
        Self::spawn(None, log, attempt_timeout)
    }

    fn spawn(state: Option<&Path>, log: &Path, attempt_timeout: f64) -> Self {
        let mut command = Command::new("setpriv");
        command
            .args(["--pdeathsig", "KILL"])
            .arg(binary("encoder-sim"))
            .args(["cloud", "--listen", "127.0.0.1:0", "--token", TOKEN]);
        if let Some(state) = state {
            command.arg("--state").arg(state);
        }
        let mut child = command
            .arg("--attempt-timeout")
            .arg(attempt_timeout.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(append(log))
            .spawn()
            .expect("cannot start encoder-sim cloud");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = lines
            .find_map(|l| {
                l.ok()?
                    .strip_prefix("listening on http://")
                    .and_then(|a| a.trim().parse().ok())
            })
            .expect("the cloud simulator did not say where it listens");
        // Keep draining stdout so the simulator never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            addr,
            state: state.map(Path::to_owned),
            log: log.to_owned(),
            attempt_timeout,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it (SIGKILL, as a crash, or SIGTERM) and starts it again from its state file, on a
    /// new port.
    pub fn restart(&mut self, crash: bool, pause: Duration) {
        assert!(
            self.state.is_some(),
            "an in-memory simulator cannot be restarted"
        );
        self.stop(crash);
        std::thread::sleep(pause);
        *self = Self::spawn(
            self.state.clone().as_deref(),
            &self.log.clone(),
            self.attempt_timeout,
        );
    }

    /// Stops it.
    pub fn stop(&mut self, crash: bool) {
        if !crash {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for CloudProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking client of the cloud's HTTP API (`POST` with a JSON body, `Connection: close`).
#[derive(Debug, Clone, Copy)]
pub struct Api {
    /// The cloud.
    pub addr: SocketAddr,
}

impl Api {
    /// `POST path body`: the status and the JSON answer; `Err` when the cloud cannot be
    /// reached or answers nothing readable.
    pub fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), String> {
        let body = body.to_string();
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
        let _ = stream.set_nodelay(true);
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("send: {e}"))?;
        let mut reply = Vec::new();
        stream
            .read_to_end(&mut reply)
            .map_err(|e| format!("receive: {e}"))?;
        let text = String::from_utf8_lossy(&reply);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status: {head:?}"))?;
        let value = serde_json::from_str(body).map_err(|e| format!("body: {e}: {body:?}"))?;
        Ok((status, value))
    }

    /// `POST path body`, which must answer 200; panics otherwise.
    pub fn ok(&self, path: &str, body: &Value) -> Value {
        match self.post(path, body) {
            Ok((200, value)) => value,
            other => panic!("{path}: {other:?}"),
        }
    }

    /// A user to own the credentials; its id.
    pub fn user(&self) -> String {
        let systems = self.ok("/acs/systems/list", &json!({}));
        let system = systems["acs_systems"][0]["acs_system_id"]
            .as_str()
            .expect("a system")
            .to_owned();
        let user = self.ok(
            "/acs/users/create",
            &json!({"acs_system_id": system, "full_name": "Soak Guest"}),
        );
        user["acs_user"]["acs_user_id"]
            .as_str()
            .expect("user id")
            .to_owned()
    }

    /// A new card credential for `user`; its id.
    pub fn credential(&self, user: &str) -> Result<String, String> {
        let (status, made) = self.post(
            "/acs/credentials/create",
            &json!({
                "acs_user_id": user,
                "access_method": "card",
                "allowed_acs_entrance_ids": ["22222222-2222-2222-2222-000000000101"],
                "starts_at": "2024-12-01T15:00:00.000Z",
                "ends_at": "2030-12-04T12:00:00.000Z",
            }),
        )?;
        made["acs_credential"]["acs_credential_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{status}: {made}"))
    }

    /// The encoder ids by display name (the bridge's default display name is the reader name).
    pub fn encoders(&self) -> Vec<(String, String)> {
        let list = self.ok("/acs/encoders/list", &json!({}));
        list["acs_encoders"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter(|e| crate::e2e::is_online(e))
                    .filter_map(|e| {
                        Some((
                            e["display_name"].as_str()?.to_owned(),
                            e["acs_encoder_id"].as_str()?.to_owned(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until the cloud lists a working encoder named `name`; its id.
    pub fn wait_encoder(&self, name: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some((_, id)) = self.encoders().into_iter().find(|(n, _)| n == name) {
                return id;
            }
            assert!(
                Instant::now() < deadline,
                "the cloud never listed encoder {name:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts an encode (`credential: Some`) or a scan; the attempt id.
    pub fn start(&self, encoder: &str, credential: Option<&str>) -> Result<String, String> {
        let (path, body) = match credential {
            Some(c) => (
                "/acs/encoders/encode_credential",
                json!({"acs_encoder_id": encoder, "acs_credential_id": c}),
            ),
            None => (
                "/acs/encoders/scan_credential",
                json!({"acs_encoder_id": encoder}),
            ),
        };
        let (status, made) = self.post(path, &body)?;
        made["action_attempt"]["action_attempt_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{status}: {made}"))
    }

    /// The attempt (`action_attempt` object).
    pub fn attempt(&self, id: &str) -> Result<Value, String> {
        let (status, got) = self.post("/action_attempts/get", &json!({"action_attempt_id": id}))?;
        if status == 200 {
            Ok(got["action_attempt"].clone())
        } else {
            Err(format!("{status}: {got}"))
        }
    }

    /// The credential (`acs_credential` object).
    pub fn credential_get(&self, id: &str) -> Result<Value, String> {
        let (status, got) = self.post("/acs/credentials/get", &json!({"acs_credential_id": id}))?;
        if status == 200 {
            Ok(got["acs_credential"].clone())
        } else {
            Err(format!("{status}: {got}"))
        }
    }
}

/// A TCP proxy on 127.0.0.1 port 0 in front of the cloud: [`Proxy::cut`] drops every
/// connection through it (the bridge's websocket dies without a close frame), and
/// [`Proxy::retarget`] follows a restarted cloud to its new port.
pub struct Proxy {
    addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// Starts a proxy to `target`.
    pub fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let target = Arc::new(Mutex::new(target));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (to, conns) = (Arc::clone(&target), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let upstream = *lock(&to);
                let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2))
                else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let pair = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                {
                    let mut list = lock(&conns);
                    list.retain(|s| s.peer_addr().is_ok());
                    list.push(pair.0);
                    list.push(pair.1);
                }
                pipe(client, server);
            }
        });
        Self { addr, target, open }
    }

    /// Where the bridge connects.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every open connection.
    pub fn cut(&self) {
        for stream in lock(&self.open).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Forwards new connections to `target` and drops the open ones.
    pub fn retarget(&self, target: SocketAddr) {
        *lock(&self.target) = target;
        self.cut();
    }
}

/// Copies both ways between `a` and `b`; when one side ends, both are shut down.
fn pipe(a: TcpStream, b: TcpStream) {
    let copy = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        });
    };
    let (a2, b2) = (a.try_clone().expect("clone"), b.try_clone().expect("clone"));
    copy(a, b);
    copy(b2, a2);
}

/// A bridge's files (config, token, site key, state directory) in `dir`, for `url`, driving
/// exactly the PC/SC readers `readers` with `card_wait` seconds.
pub fn bridge_config(dir: &Path, url: &str, readers: &[String], card_wait: f64) -> PathBuf {
    std::fs::create_dir_all(dir).expect("bridge dir");
    for (name, text) in [("token", TOKEN), ("site-key-v1", SITE_KEY)] {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write secret");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let mut config = format!(
        "[cloud]\nurl = \"{url}\"\ntoken_file = \"token\"\nallow_insecure = true\n\n\
         [[site_keys.key]]\nversion = 1\nfile = \"site-key-v1\"\n\n\
         [state]\ndir = \"state\"\n\n\
         [control]\nsocket = \"control.sock\"\ngroup = \"root\"\n\n\
         [encoders]\nauto_pcsc = false\ncard_wait_secs = {card_wait}\n"
    );
    for reader in readers {
        let _ = write!(config, "\n[[encoders.pcsc]]\nreader = \"{reader}\"\n");
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, config).expect("config");
    path
}

/// A running `encoder-bridge --log-format json run`, its log (info level) appended to a file.
pub struct BridgeProc {
    child: Child,
    config: PathBuf,
    log: PathBuf,
    env: (&'static str, std::ffi::OsString),
}

impl BridgeProc {
    /// Starts the bridge with `config`, the rig's environment `env`, logging to `log`.
    pub fn start(config: &Path, log: &Path, env: &(&'static str, std::ffi::OsString)) -> Self {
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL"])
            .arg(binary("encoder-bridge"))
            .args(["--log-format", "json", "run", "--config"])
            .arg(config)
            .env(env.0, &env.1)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(append(log))
            .spawn()
            .expect("cannot start encoder-bridge");
        Self {
            child,
            config: config.to_owned(),
            log: log.to_owned(),
            env: env.clone(),
        }
    }

    /// The bridge's process id (setpriv execs it, so the child's pid is the bridge's).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then a new process on the same configuration and state.
    pub fn kill_and_restart(&mut self, pause: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(pause);
        *self = Self::start(&self.config.clone(), &self.log.clone(), &self.env.clone());
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, and waits up to `limit` for it to exit.
    pub fn stop(&mut self, limit: Duration) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BridgeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bridge's `card timing` log lines in `log`: `(first_apdu_us, last_apdu_us, apdus)`, unix
/// microseconds, in order.
pub fn card_timings(log: &Path) -> Vec<(i64, i64, i64)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("card timing"))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            let field = |name: &str| v[name].as_i64().or_else(|| v["fields"][name].as_i64());
            Some((
                field("first_apdu_us")?,
                field("last_apdu_us")?,
                field("apdus")?,
            ))
        })
        .collect()
}

/// Resident memory (kB, `VmRSS`) and CPU time (user + system, clock ticks) of process `pid`.
pub fn proc_usage(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3; utime and
    // stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((rss, utime + stime))
}

/// Clock ticks per second for [`proc_usage`] (`getconf CLK_TCK`, 100 on Linux).
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Writes of record header blocks in an `encoder-sim --apdu-log` file, as the first 5 bytes of
/// the credential id each carries (docs/card-format.md §5): a format 1 header (`01`, key
/// version `01`) holds them at bytes 11-15 of its block; a format 2 header (`02`) holds the
/// first 3 at bytes 13-15, and the next 2 open the record's next block, written right after it.
pub fn record_header_writes(apdu_log: &Path) -> Vec<[u8; 5]> {
    let text = std::fs::read_to_string(apdu_log).unwrap_or_default();
    let writes: Vec<(u8, [u8; 16])> = text
        .lines()
        .filter(|l| l.starts_with("FF D6 00"))
        .filter_map(|l| {
            let command = l.split(" -> ").next()?;
            let bytes: Vec<u8> = command
                .split_whitespace()
                .filter_map(|h| u8::from_str_radix(h, 16).ok())
                .collect();
            let block = *bytes.get(3)?;
            let data: [u8; 16] = bytes.get(5..21)?.try_into().ok()?;
            Some((block, data))
        })
        .collect();
    let mut ids = Vec::new();
    for (i, (block, data)) in writes.iter().enumerate() {
        let mut id = [0u8; 5];
        match data {
            [0x01, 0x01, ..] => id.copy_from_slice(&data[11..16]),
            [0x02, ..] => {
                let Some((_, next)) = writes
                    .get(i + 1)
                    .filter(|(b, _)| *b == block.wrapping_add(1))
                else {
                    continue;
                };
                id[..3].copy_from_slice(&data[13..16]);
                id[3..].copy_from_slice(&next[..2]);
            }
            _ => continue,
        }
        ids.push(id);
    }
    ids
}

/// The first 5 bytes of a UUID in text form.
pub fn uuid_prefix(id: &str) -> Option<[u8; 5]> {
    let hex: String = id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(10)
        .collect();
    let mut out = [0u8; 5];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
