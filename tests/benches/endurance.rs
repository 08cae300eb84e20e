//! `make endurance`: a year at the front desk compressed into minutes (issue 18). Encodes one
//! after the other, as an integrator's client would run them (a new credential, an encode, the
//! attempt polled to its end), through the real `encoder-bridge run`, the real cloud simulator
//! (in memory) and the PN532 emulator (no baud limit). Every interval it prints jobs/s, the
//! bridge's RSS, its store's file size and the simulator's RSS; at the end a summary against
//! the goals:
//!
//! - bridge RSS ≤ 15 MB, and flat within 10 % after warm-up (the first tenth of the jobs, and
//!   at least until the retention window has filled);
//! - the store's file bounded by the retention: once the window has filled, it grows by no
//!   more than 10 % (redb reuses freed pages; it does not shrink without a compaction);
//! - the last interval's throughput ≥ 90 % of the first's.
//!
//! `ENDURANCE_JOBS` (default 100,000), `ENDURANCE_INTERVAL_SECS` (default 30),
//! `ENDURANCE_RETENTION` (the bridge's `[state] retention_attempts` and the simulator's
//! `--retain-attempts`, default 10,000). Exits non-zero when a goal is missed.
//!
//! `ENDURANCE_FAULTS=1` adds the soak's two restarts (tests/src/soak.rs): the simulator keeps
//! its state in a `--state` file and the bridge reaches it through the soak's TCP proxy; a
//! third of the way through, the bridge is killed (SIGKILL) just after an encode was asked for
//! and started again on its store; at two thirds, the simulator is killed (SIGKILL) the same
//! way and started again on its file. Every bound must still hold: the bridge's RSS is judged
//! flat within each of its processes (after the first interval of a restarted one), and no
//! encode may be lost (each ends in success or error; at most one failure per fault).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use encoder_tests::daemon::{Setup, TOKEN};
use encoder_tests::e2e::{Cloud, ENDS_AT, STARTS_AT, SYSTEM, add_pn532};
use encoder_tests::soak::{Proxy, clock_ticks, proc_usage};
use encoder_tests::{Chatty, binary};
use serde_json::{Value, json};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// One HTTP/1.1 connection kept alive (a connection per request would exhaust the ephemeral
/// ports at a few hundred jobs a second, and measure the kernel rather than the simulator).
struct Client {
    addr: SocketAddr,
    stream: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect to the simulator");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            addr,
            stream: BufReader::new(stream),
        }
    }

    /// POSTs `body` to `path`; the status and the JSON reply.
    fn post(&mut self, path: &str, body: &Value) -> (u16, Value) {
        let body = body.to_string();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .expect("send");
        let mut status_line = String::new();
        self.stream.read_line(&mut status_line).expect("status");
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status: {status_line:?}"));
        let mut length = None;
        let mut chunked = false;
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line).expect("header");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let mut bytes = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                self.stream.read_line(&mut size).expect("chunk size");
                let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
                let mut chunk = vec![0; n + 2];
                self.stream.read_exact(&mut chunk).expect("chunk");
                chunk.truncate(n);
                bytes.extend(chunk);
                if n == 0 {
                    break;
                }
            }
        } else {
            bytes.resize(length.expect("content-length"), 0);
            self.stream.read_exact(&mut bytes).expect("body");
        }
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn ok(&mut self, path: &str, body: &Value) -> Value {
        let (status, reply) = self.post(path, body);
        assert_eq!(status, 200, "{path} {body}: {reply}");
        reply
    }
}

/// What one interval measured.
struct Sample {
    secs: f64,
    jobs: u64,
    jobs_per_s: f64,
    bridge_kb: u64,
    store_bytes: u64,
    sim_kb: u64,
    /// The bridge's threads.
    bridge_threads: u64,
    /// Which bridge process (0, then 1 after a restart).
    bridge_run: usize,
    /// CPU per job in the interval (ms, user + system) of the bridge, the simulator, the
    /// PN532 emulator and this client: what a job costs each, whatever else the shared
    /// machine runs (a cost that grows with history shows here first).
    cpu_ms: [f64; 4],
}

/// The threads of process `pid` (`Threads:` of /proc/PID/status).
fn threads(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The bridge as the service runs it (warn log, here to the bench's stderr: a log kept in this
/// process would grow with the run).
fn start_bridge(config: &std::path::Path) -> Child {
    Command::new("setpriv")
        .args(["--pdeathsig", "KILL"])
        .arg(binary("encoder-bridge"))
        .args(["--log-format", "json", "run", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start encoder-bridge")
}

#[allow(clippy::cast_precision_loss)] // figures for a person
fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

#[allow(clippy::too_many_lines, clippy::cast_precision_loss)] // one run, read top to bottom
fn main() {
    let jobs: u64 = env_or("ENDURANCE_JOBS", 100_000);
    let interval = Duration::from_secs(env_or("ENDURANCE_INTERVAL_SECS", 30));
    let retention: u64 = env_or("ENDURANCE_RETENTION", 10_000);
    let faults = env_or("ENDURANCE_FAULTS", 0u8) == 1;
    let dir = tempfile::tempdir().expect("tempdir");

    let link = dir.path().join("pn532");
    let mut emulator = {
        let mut command = Command::new("setpriv");
        command
            .args(["--pdeathsig", "KILL"])
            .arg(binary("encoder-sim"))
            .arg("pn532")
            .arg("--link")
            .arg(&link)
            .args(["--type", "classic-1k", "--uid", "04A1B2C3"]);
        Chatty::spawn(command, "PN532 emulator")
    };
    emulator.expect_line("ready");
    emulator.expect_line("present");
    let mut sim_args = vec!["--retain-attempts".to_owned(), retention.to_string()];
    if faults {
        let file = dir.path().join("cloud-state");
        sim_args.extend(["--state".to_owned(), file.display().to_string()]);
    }
    let start_sim = || Cloud::start_with(&sim_args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut cloud = start_sim();
    let mut sim_pid = cloud.pid();
    // With faults the simulator comes back on another port: the bridge goes through a proxy
    // that follows it.
    let proxy = faults.then(|| Proxy::start(cloud.addr()));
    let ws_url = proxy.as_ref().map_or_else(
        || cloud.ws_url(),
        |p| format!("ws://{}/bridge/v1", p.addr()),
    );
    let setup = Setup::new(&ws_url, &[], 10.0, TOKEN);
    add_pn532(&setup.config(), &link.display().to_string(), "Front Desk");
    let config = std::fs::read_to_string(setup.config()).expect("config");
    let config = config.replacen(
        "dir = \"state\"\n",
        &format!("dir = \"state\"\nretention_attempts = {retention}\n"),
        1,
    );
    std::fs::write(setup.config(), config).expect("config");
    let store = setup.dir().join("state").join("state.redb");
    let mut bridge = start_bridge(&setup.config());
    let mut bridge_pid = bridge.id();

    let mut client = Client::connect(cloud.addr());
    let encoder = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let list = client.ok("/acs/encoders/list", &json!({"acs_system_id": SYSTEM}));
            let online = list["acs_encoders"].as_array().and_then(|l| {
                l.iter()
                    .find(|e| e["encoder_bridge_metadata"]["is_online"] == true)
                    .and_then(|e| e["acs_encoder_id"].as_str())
                    .map(str::to_owned)
            });
            if let Some(id) = online {
                break id;
            }
            assert!(
                Instant::now() < deadline,
                "the encoder never came online: {list}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let user = client.ok(
        "/acs/users/create",
        &json!({"acs_system_id": SYSTEM, "full_name": "Endurance"}),
    )["acs_user"]["acs_user_id"]
        .as_str()
        .expect("user")
        .to_owned();
    let entrance = client.ok("/acs/entrances/list", &json!({"acs_system_id": SYSTEM}))
        ["acs_entrances"][0]["acs_entrance_id"]
        .clone();

    println!(
        "endurance: {jobs} encodes, one after the other (bridge + simulator + PN532 emulator, no baud limit), retention {retention} attempts{}",
        if faults {
            "; faults: the bridge SIGKILLed at a third, the simulator (--state) at two thirds"
        } else {
            ""
        }
    );
    println!(
        "{:>7} {:>8} {:>7} {:>11} {:>7} {:>10} {:>9}   CPU ms/job: bridge   sim   emulator client",
        "secs", "jobs", "jobs/s", "bridge RSS", "threads", "store", "sim RSS",
    );
    let ticks_per_ms = clock_ticks() as f64 / 1000.0;
    let emulator_pid = emulator.pid();
    let self_pid = std::process::id();
    let cpu_now = |pids: [u32; 4]| pids.map(|pid| proc_usage(pid).map_or(0, |u| u.1));
    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let (mut last_at, mut last_jobs) = (started, 0u64);
    let mut last_cpu = cpu_now([bridge_pid, sim_pid, emulator_pid, self_pid]);
    let (mut succeeded, mut failed) = (0u64, 0u64);
    let mut errors: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let mut done = 0u64;
    let (bridge_fault, sim_fault) = if faults {
        (jobs / 3, 2 * jobs / 3)
    } else {
        (u64::MAX, u64::MAX)
    };
    let mut bridge_run = 0usize;
    while done < jobs {
        let credential = client.ok(
            "/acs/credentials/create",
            &json!({
                "acs_user_id": user, "access_method": "card",
                "allowed_acs_entrance_ids": [entrance],
                "starts_at": STARTS_AT, "ends_at": ENDS_AT
            }),
        )["acs_credential"]["acs_credential_id"]
            .as_str()
            .expect("credential")
            .to_owned();
        let attempt = client.ok(
            "/acs/encoders/encode_credential",
            &json!({"acs_credential_id": credential, "acs_encoder_id": encoder}),
        )["action_attempt"]["action_attempt_id"]
            .as_str()
            .expect("attempt")
            .to_owned();
        // The faults land while an attempt is in flight.
        if done == bridge_fault {
            let _ = bridge.kill();
            let _ = bridge.wait();
            bridge = start_bridge(&setup.config());
            bridge_pid = bridge.id();
            bridge_run += 1;
            last_cpu[0] = 0;
            println!("  -- bridge killed (SIGKILL) at job {done} and started again");
        }
        if done == sim_fault {
            drop(cloud); // SIGKILL
            cloud = start_sim();
            sim_pid = cloud.pid();
            if let Some(proxy) = &proxy {
                proxy.retarget(cloud.addr());
            }
            client = Client::connect(cloud.addr());
            last_cpu[1] = 0;
            println!(
                "  -- simulator killed (SIGKILL) at job {done} and started again on its state file"
            );
        }
        let finished = loop {
            let got = client.ok(
                "/action_attempts/get",
                &json!({"action_attempt_id": attempt}),
            );
            if got["action_attempt"]["status"] != "pending" {
                break got;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        if finished["action_attempt"]["status"] == "success" {
            succeeded += 1;
        } else {
            failed += 1;
            let kind = finished["action_attempt"]["error"]["type"]
                .as_str()
                .unwrap_or("?")
                .to_owned();
            *errors.entry(kind).or_default() += 1;
        }
        done += 1;
        let now = Instant::now();
        if now.duration_since(last_at) >= interval || done == jobs {
            let bridge_kb = proc_usage(bridge_pid).map_or(0, |u| u.0);
            let sim_kb = proc_usage(sim_pid).map_or(0, |u| u.0);
            let store_bytes = std::fs::metadata(&store).map_or(0, |m| m.len());
            let cpu = cpu_now([bridge_pid, sim_pid, emulator_pid, self_pid]);
            let interval_jobs = (done - last_jobs).max(1) as f64;
            let mut cpu_ms = [0.0; 4];
            for (i, ms) in cpu_ms.iter_mut().enumerate() {
                *ms = cpu[i].saturating_sub(last_cpu[i]) as f64 / ticks_per_ms / interval_jobs;
            }
            last_cpu = cpu;
            let sample = Sample {
                secs: now.duration_since(started).as_secs_f64(),
                jobs: done,
                jobs_per_s: (done - last_jobs) as f64 / now.duration_since(last_at).as_secs_f64(),
                bridge_kb,
                store_bytes,
                sim_kb,
                bridge_threads: threads(bridge_pid),
                bridge_run,
                cpu_ms,
            };
            println!(
                "{:>7.0} {:>8} {:>7.1} {:>8.1} MB {:>7} {:>7.1} MB {:>6.1} MB   {:>17.3} {:>5.3} {:>8.3} {:>6.3}",
                sample.secs,
                sample.jobs,
                sample.jobs_per_s,
                mb(sample.bridge_kb),
                sample.bridge_threads,
                sample.store_bytes as f64 / 1_048_576.0,
                mb(sample.sim_kb),
                cpu_ms[0],
                cpu_ms[1],
                cpu_ms[2],
                cpu_ms[3]
            );
            samples.push(sample);
            (last_at, last_jobs) = (now, done);
            assert!(
                bridge.try_wait().ok().flatten().is_none(),
                "the bridge exited during the run"
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();

    // Warm-up: the first tenth of the jobs, and until the retention window has filled.
    let warm = (jobs / 10).max(retention);
    let after: Vec<&Sample> = samples.iter().filter(|s| s.jobs > warm).collect();
    let peak_kb = samples.iter().map(|s| s.bridge_kb).max().unwrap_or(0);
    // Flat within each bridge process: a restarted one is judged from its second interval.
    let (mut low, mut high, mut spread) = (u64::MAX, 0u64, 0.0f64);
    for run in 0..=bridge_run {
        let first_of_run = samples.iter().position(|s| s.bridge_run == run);
        let judged: Vec<&&Sample> = after
            .iter()
            .filter(|s| s.bridge_run == run)
            .filter(|s| run == 0 || Some(s.jobs) != first_of_run.map(|i| samples[i].jobs))
            .collect();
        let (lo, hi) = judged.iter().fold((u64::MAX, 0), |(lo, hi), s| {
            (lo.min(s.bridge_kb), hi.max(s.bridge_kb))
        });
        if !judged.is_empty() {
            let run_spread = (hi - lo) as f64 / lo.max(1) as f64;
            if run_spread >= spread {
                (low, high, spread) = (lo, hi, run_spread);
            }
        }
    }
    if low == u64::MAX {
        low = 0;
    }
    let store_first = after.first().map_or(0, |s| s.store_bytes);
    let store_last = after.last().map_or(0, |s| s.store_bytes);
    let store_growth = store_last as f64 / store_first.max(1) as f64 - 1.0;
    let first_rate = samples.first().map_or(0.0, |s| s.jobs_per_s);
    // The last full interval (the very last may be a short remainder).
    let last_rate = samples
        .iter()
        .rev()
        .nth(usize::from(samples.len() > 2))
        .map_or(0.0, |s| s.jobs_per_s);
    let ratio = last_rate / first_rate.max(f64::MIN_POSITIVE);

    println!();
    println!(
        "{done} encodes in {secs:.0} s ({:.1} jobs/s): {succeeded} succeeded, {failed} failed {errors:?}",
        done as f64 / secs
    );
    let mut missed = Vec::new();
    let mut goal = |name: String, met: bool| {
        println!("  {name}: {}", if met { "met" } else { "MISSED" });
        if !met {
            missed.push(name);
        }
    };
    goal(
        format!("bridge RSS ≤ 15 MB (peak {:.1} MB)", mb(peak_kb)),
        peak_kb <= 15 * 1024,
    );
    if after.len() >= 2 {
        goal(
            format!(
                "bridge RSS flat within 10 % after warm-up ({warm} jobs): {:.1}-{:.1} MB, {:.1} %",
                mb(low),
                mb(high),
                spread * 100.0
            ),
            spread <= 0.10,
        );
        goal(
            format!(
                "store bounded by the retention: {:.1} MB once the window filled, {:.1} MB at the end ({:+.1} %)",
                store_first as f64 / 1_048_576.0,
                store_last as f64 / 1_048_576.0,
                store_growth * 100.0
            ),
            store_growth <= 0.10,
        );
    } else {
        println!(
            "  RSS flatness and store bound: not judged (fewer than 2 intervals after {warm} jobs; raise ENDURANCE_JOBS)"
        );
    }
    goal(
        format!(
            "throughput, last interval ≥ 90 % of the first: {last_rate:.1} vs {first_rate:.1} jobs/s ({:.0} %)",
            ratio * 100.0
        ),
        ratio >= 0.9,
    );
    if faults {
        goal(
            format!(
                "no encode lost, at most one failure per fault: {succeeded} succeeded, {failed} failed, {} ended",
                succeeded + failed
            ),
            succeeded + failed == jobs && failed <= 2,
        );
    } else {
        goal(
            format!("every encode succeeded ({failed} failed)"),
            failed == 0,
        );
    }
    // Beside the goals, the trend without one interval's noise (the machine is shared): the
    // throughput of the first and the last quarter of the run, and what a job cost each
    // process in CPU there, which the machine's load does not change.
    let quarter = (samples.len() / 4).max(1);
    let first_quarter = &samples[..quarter.min(samples.len())];
    let last_quarter = &samples[samples.len().saturating_sub(quarter)..];
    let rate =
        |list: &[Sample]| list.iter().map(|s| s.jobs_per_s).sum::<f64>() / list.len().max(1) as f64;
    let cpu = |list: &[Sample], i: usize| {
        list.iter().map(|s| s.cpu_ms[i]).sum::<f64>() / list.len().max(1) as f64
    };
    let quarter_ratio = rate(last_quarter) / rate(first_quarter).max(f64::MIN_POSITIVE);
    println!(
        "  (throughput, mean of the first and of the last quarter of the intervals: {:.1} and {:.1} jobs/s, {:.0} %)",
        rate(first_quarter),
        rate(last_quarter),
        quarter_ratio * 100.0
    );
    for (i, who) in ["bridge", "simulator", "emulator", "client"]
        .iter()
        .enumerate()
    {
        println!(
            "  (CPU per job, {who}: {:.3} ms in the first quarter, {:.3} ms in the last)",
            cpu(first_quarter, i),
            cpu(last_quarter, i)
        );
    }
    let _ = bridge.kill();
    let _ = bridge.wait();
    drop(emulator);
    if !missed.is_empty() {
        eprintln!("endurance: {} goal(s) missed", missed.len());
        std::process::exit(1);
    }
}
