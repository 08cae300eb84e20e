//! `make bench`: the bridge's figures in one run, printed as a table against the targets.
//!
//! 1. Per job (encode onto a blank card, re-encode, scan): APDUs and wall time through the real
//!    pcscd with a virtual card, and through the PN532 emulator at 115200 baud, each next to
//!    its floor (pcscd: APDUs x the measured raw `FF B0` round trip; PN532: the bytes the job
//!    puts on the wire x 86.8 us, docs/reference/pn532.md §8).
//! 2. Daemon overhead: the real `encoder-bridge run` against a scripted cloud in this process:
//!    from `attempt_available` sent to the first APDU, and from the last APDU to the `result`
//!    received (which the cloud then acknowledges), from the bridge's `card timing` log line.
//! 3. Throughput with 1, 4 and 8 virtual readers in parallel through the real bridge, the cloud
//!    simulator (HTTP API) and the rig.
//! 4. The bridge's resident memory and CPU: idle with 8 encoders (`BENCH_IDLE_SECS`, default
//!    60), and at peak during the throughput run.
//! 5. The same write done by a short pyscard script (`tests/bench/pyscard_encode.py`, a
//!    connection per job), through the same rig, as a ratio.
//!
//! Needs root (the rig), `/usr/bin/python3` with python3-pyscard, and the release binaries
//! (`ENCODER_BRIDGE`, `ENCODER_SIM`; `make bench` builds them and sets both).
//! `BENCH_THROUGHPUT_SECS` (default 15) is the length of each throughput run.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::too_many_lines
)] // percentiles and millisecond figures of a benchmark

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use encoder_hal::pcsc::PcscEncoder;
use encoder_hal::{Encoder, Pn532Encoder};
use encoder_protocol::job::{encode, scan};
use encoder_protocol::transmit::{Transmit, TransmitError};
use encoder_tests::cloud::CloudDouble;
use encoder_tests::daemon::{ack, attempt_id, encode_offer, encoder_id, grant};
use encoder_tests::jobs::{realistic, realistic_next, site};
use encoder_tests::soak::{
    Api, BridgeProc, CloudProc, bridge_config, card_timings, clock_ticks, proc_usage,
};
use encoder_tests::{Rig, STARTUP, spawn_pn532, workspace};

const JOBS: [&str; 3] = ["encode blank", "re-encode", "scan"];
const JOB_RUNS: usize = 10;
const RTT_ITERATIONS: usize = 1000;
const OVERHEAD_RUNS: usize = 40;
const PYSCARD_JOBS: usize = 40;
/// Microseconds per byte at 115200 baud (10 bits a byte).
const PN532_BYTE_US: f64 = 10_000_000.0 / 115_200.0;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn micros(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as i64
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// Counts APDUs and the bytes a PN532 puts on the wire for them (`InDataExchange` frames:
/// command, ACK, reply; load key and get-UID are answered by the backend itself).
struct Counting<'a> {
    inner: &'a mut dyn Transmit,
    apdus: usize,
    wire_bytes: usize,
    writes: usize,
}

impl Transmit for Counting<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransmitError> {
        self.apdus += 1;
        let frame = |cmd: usize, reply: usize| (7 + 2 + 1 + cmd) + 6 + (7 + 2 + 1 + reply);
        self.wire_bytes += match command {
            [0xFF, 0x86, ..] => frame(12, 0),
            [0xFF, 0xB0, _, _, le, ..] => frame(2, usize::from(*le).max(16)),
            [0xFF, 0xD6, _, _, lc, ..] => {
                self.writes += 1;
                frame(2 + usize::from(*lc), 0)
            }
            _ => 0,
        };
        self.inner.transmit(command)
    }

    fn reader_caps(&self) -> encoder_protocol::transmit::ReaderCaps {
        self.inner.reader_caps()
    }
}

/// One job on an open session; (APDUs, wire bytes, writes).
fn run_job(
    job: usize,
    session: &mut dyn encoder_hal::CardSession,
) -> (usize, usize, usize, Duration) {
    let info = session.info().clone();
    let site = site();
    let mut counting = Counting {
        inner: session,
        apdus: 0,
        wire_bytes: 0,
        writes: 0,
    };
    let t = Instant::now();
    let ok = match job {
        0 => encode(&mut counting, &info, &site, &realistic(8)).map(|_| ()),
        1 => encode(&mut counting, &info, &site, &realistic_next(8)).map(|_| ()),
        _ => scan(&mut counting, &info, &site).map(|_| ()),
    };
    let took = t.elapsed();
    ok.unwrap_or_else(|e| panic!("{}: {e}", JOBS[job]));
    (counting.apdus, counting.wire_bytes, counting.writes, took)
}

/// Per-job figures of one transport: median wall, APDUs, wire bytes, writes.
struct JobFigures {
    wall: [f64; 3],
    apdus: [usize; 3],
    wire: [usize; 3],
    writes: [usize; 3],
}

fn collect(times: [Vec<f64>; 3], counts: [(usize, usize, usize); 3]) -> JobFigures {
    let mut f = JobFigures {
        wall: [0.0; 3],
        apdus: [0; 3],
        wire: [0; 3],
        writes: [0; 3],
    };
    for (i, t) in times.into_iter().enumerate() {
        f.wall[i] = pct(&sorted(t), 0.5);
        (f.apdus[i], f.wire[i], f.writes[i]) = counts[i];
    }
    f
}

/// Raw `FF B0` round trip through pcscd (median ms) and the per-job figures through pcscd.
fn pcsc_jobs(rig: &Rig, dir: &std::path::Path) -> (f64, f64, JobFigures, [usize; 3]) {
    let rtt = {
        let _card = rig.card(0, &["--type", "classic-1k", "--uid", "04A1B2C3"]);
        let mut encoder = PcscEncoder::new(&Rig::reader_name(0)).expect("encoder");
        assert!(encoder.wait_for_card(STARTUP).expect("wait"), "no card");
        let mut s = encoder.open_session().expect("session");
        let load = [
            0xFF, 0x82, 0x00, 0x00, 0x06, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        let auth = [0xFF, 0x86, 0x00, 0x00, 0x05, 0x01, 0x00, 0x04, 0x60, 0x00];
        for apdu in [&load[..], &auth[..]] {
            s.transmit(apdu).expect("setup");
        }
        let mut samples = Vec::with_capacity(RTT_ITERATIONS);
        for _ in 0..RTT_ITERATIONS {
            let t = Instant::now();
            let r = s.transmit(&[0xFF, 0xB0, 0x00, 0x04, 0x10]).expect("read");
            samples.push(ms(t.elapsed()));
            assert_eq!(r.len(), 18);
        }
        sorted(samples)
    };
    let mut times: [Vec<f64>; 3] = Default::default();
    let mut counts = [(0, 0, 0); 3];
    // APDUs as the card's own log has them: the job's plus the hal's one `FF CA` at open.
    let mut at_card = [0; 3];
    for run in 0..JOB_RUNS {
        let log = dir.join(format!("pcsc-card-{run}.log"));
        let logged = || std::fs::read_to_string(&log).map_or(0, |t| t.lines().count());
        let _card = rig.card(
            1,
            &[
                "--type",
                "classic-1k",
                "--uid",
                &format!("04A1B2{run:02X}"),
                "--apdu-log",
                &log.display().to_string(),
            ],
        );
        let mut enc = PcscEncoder::new(&Rig::reader_name(1)).expect("encoder");
        assert!(enc.wait_for_card(STARTUP).expect("wait"));
        for (job, t) in times.iter_mut().enumerate() {
            let before = logged();
            let mut s = enc.open_session().expect("session");
            let (apdus, wire, writes, took) = run_job(job, &mut *s);
            drop(s);
            t.push(ms(took));
            counts[job] = (apdus, wire, writes);
            at_card[job] = logged() - before;
        }
    }
    (
        pct(&rtt, 0.5),
        pct(&rtt, 0.99),
        collect(times, counts),
        at_card,
    )
}

/// Per-job figures through the PN532 emulator at 115200 baud.
fn pn532_jobs(dir: &std::path::Path) -> JobFigures {
    let mut times: [Vec<f64>; 3] = Default::default();
    let mut counts = [(0, 0, 0); 3];
    for run in 0..JOB_RUNS.min(5) {
        let link = dir.join(format!("pn532-{run}"));
        let mut sim = spawn_pn532(
            &link,
            &["--baud", "115200", "--uid", &format!("04C1D2{run:02X}")],
        );
        let mut encoder = Pn532Encoder::new(link.display().to_string());
        assert!(
            encoder.wait_for_card(STARTUP).expect("wait"),
            "no card on the PN532"
        );
        for (job, t) in times.iter_mut().enumerate() {
            let mut s = encoder.open_session().expect("session");
            let (apdus, wire, writes, took) = run_job(job, &mut *s);
            t.push(ms(took));
            counts[job] = (apdus, wire, writes);
        }
        drop(encoder);
        let _ = sim.kill();
        let _ = sim.wait();
    }
    collect(times, counts)
}

/// The pyscard script's per-job times (ms) for `blocks` written and read back, on `slot`.
fn pyscard(rig: &Rig, slot: usize, blocks: usize) -> Result<Vec<f64>, String> {
    let _card = rig.card(slot, &["--type", "classic-1k", "--uid", "04E1F2A3"]);
    let (key, value) = rig.env();
    let out = Command::new("/usr/bin/python3")
        .arg(workspace().join("tests/bench/pyscard_encode.py"))
        .arg(Rig::reader_name(slot))
        .arg(PYSCARD_JOBS.to_string())
        .arg(blocks.to_string())
        .env(key, value)
        .output()
        .map_err(|e| format!("/usr/bin/python3: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("pyscard output: {e}"))?;
    Ok(v["ms"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
        .unwrap_or_default())
}

/// Our side of the pyscard comparison: open a session and re-encode, per job (ms).
fn ours_per_connection(rig: &Rig, slot: usize) -> Vec<f64> {
    let _card = rig.card(slot, &["--type", "classic-1k", "--uid", "04E1F2A4"]);
    let mut enc = PcscEncoder::new(&Rig::reader_name(slot)).expect("encoder");
    assert!(enc.wait_for_card(STARTUP).expect("wait"));
    {
        let mut s = enc.open_session().expect("session");
        run_job(0, &mut *s);
    }
    (0..PYSCARD_JOBS)
        .map(|_| {
            let t = Instant::now();
            let mut s = enc.open_session().expect("session");
            run_job(1, &mut *s);
            drop(s);
            ms(t.elapsed())
        })
        .collect()
}

/// Daemon overhead with a scripted cloud: (announce -> first APDU, last APDU -> result), ms.
fn daemon_overhead(rig: &Rig, dir: &std::path::Path) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let _card = rig.card(2, &["--type", "classic-1k", "--uid", "04B1C2D3"]);
    let cloud = CloudDouble::start(encoder_tests::daemon::TOKEN);
    let bdir = dir.join("bridge-overhead");
    let reader = Rig::reader_name(2);
    let config = bridge_config(&bdir, &cloud.url(), std::slice::from_ref(&reader), 10.0);
    std::fs::write(
        bdir.join("token"),
        encoder_tests::daemon::TOKEN, // the double's token
    )
    .expect("token");
    let log = dir.join("bridge-overhead.log");
    let _bridge = BridgeProc::start(&config, &log, &rig.env());
    let mut conn = cloud.accept(STARTUP);
    let hello = conn.handshake(STARTUP);
    let encoder = encoder_id(&hello, &reader);
    let mut announced = Vec::new();
    let mut received = Vec::new();
    for n in 0..=OVERHEAD_RUNS {
        let id = attempt_id();
        let credential = uuid::Uuid::new_v4().to_string();
        let offer = encode_offer(&id, &encoder, &credential, &format!("40096138{n:02}"));
        let at = SystemTime::now();
        conn.send(&offer);
        conn.recv_type("claim", STARTUP);
        conn.send(&grant(&id, 60));
        let result = conn.recv_type("result", Duration::from_secs(60));
        let got = conn.last_at;
        assert_eq!(result["status"], "success", "{result}");
        conn.send(&ack(&id));
        announced.push(micros(at));
        received.push(micros(got));
    }
    let deadline = Instant::now() + STARTUP;
    let mut timings = card_timings(&log);
    while timings.len() < announced.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        timings = card_timings(&log);
    }
    let (mut to_first, mut to_result, mut card) = (Vec::new(), Vec::new(), Vec::new());
    // The first run (a first encode onto the blank card) is a warm-up.
    for ((a, r), (first, last, _)) in announced.iter().zip(&received).zip(&timings).skip(1) {
        to_first.push((first - a) as f64 / 1000.0);
        to_result.push((r - last) as f64 / 1000.0);
        card.push((last - first) as f64 / 1000.0);
    }
    (sorted(to_first), sorted(to_result), sorted(card))
}

struct Usage {
    rss_kb: u64,
    cpu_percent: f64,
}

/// Samples the bridge's RSS (peak) and CPU (average) while `run` runs.
fn sampled<R>(pid: u32, run: impl FnOnce() -> R) -> (R, Usage) {
    let ticks = clock_ticks() as f64;
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(Mutex::new(0u64));
    let sampler = {
        let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Some((rss, _)) = proc_usage(pid) {
                    let mut p = peak.lock().unwrap_or_else(PoisonError::into_inner);
                    *p = (*p).max(rss);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let (_, cpu0) = proc_usage(pid).unwrap_or_default();
    let t = Instant::now();
    let r = run();
    let secs = t.elapsed().as_secs_f64();
    let (rss_now, cpu1) = proc_usage(pid).unwrap_or_default();
    stop.store(true, Ordering::SeqCst);
    let _ = sampler.join();
    let peak = (*peak.lock().unwrap_or_else(PoisonError::into_inner)).max(rss_now);
    (
        r,
        Usage {
            rss_kb: peak,
            cpu_percent: (cpu1 - cpu0) as f64 / ticks / secs * 100.0,
        },
    )
}

/// Encodes on `encoders` in parallel (one attempt at a time each) for `secs`: jobs per second.
fn throughput(api: Api, user: &str, encoders: &[String], secs: f64) -> (f64, usize, usize) {
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let threads: Vec<_> = encoders
        .iter()
        .map(|encoder| {
            let (encoder, user) = (encoder.clone(), user.to_owned());
            let (done, failed) = (Arc::clone(&done), Arc::clone(&failed));
            std::thread::spawn(move || {
                while Instant::now() < end {
                    let credential = api.credential(&user).expect("credential");
                    let id = api.start(&encoder, Some(&credential)).expect("attempt");
                    loop {
                        std::thread::sleep(Duration::from_millis(5));
                        let a = api.attempt(&id).expect("attempt");
                        match a["status"].as_str() {
                            Some("success") => {
                                done.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            Some("pending") => {}
                            _ => {
                                failed.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("throughput worker");
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ok = done.load(Ordering::SeqCst);
    (ok as f64 / elapsed, ok, failed.load(Ordering::SeqCst))
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    encoder_tests::assert_root("the bridge benchmark");
    let idle_secs: f64 = env_or("BENCH_IDLE_SECS", 60.0);
    let tp_secs: f64 = env_or("BENCH_THROUGHPUT_SECS", 15.0);
    let dir = tempfile::Builder::new()
        .prefix("bench.")
        .tempdir()
        .expect("tempdir");
    let rig = Rig::start(8);
    eprintln!("bench: per-job figures through pcscd ...");
    let (rtt, rtt99, pcsc, at_card) = pcsc_jobs(&rig, dir.path());
    eprintln!("bench: per-job figures through the PN532 emulator ...");
    let pn = pn532_jobs(dir.path());
    eprintln!("bench: pyscard side by side ...");
    let py = pyscard(&rig, 3, pcsc.writes[1]);
    let ours = sorted(ours_per_connection(&rig, 4));
    eprintln!("bench: daemon overhead (scripted cloud) ...");
    let (to_first, to_result, card) = daemon_overhead(&rig, dir.path());

    eprintln!("bench: 8 encoders: idle {idle_secs:.0} s, then throughput ...");
    let cloud = CloudProc::start_in_memory(&dir.path().join("cloud.log"), 120.0);
    let api = Api { addr: cloud.addr() };
    let readers: Vec<String> = (0..8).map(Rig::reader_name).collect();
    let cards: Vec<_> = (0..8)
        .map(|slot| {
            rig.card(
                slot,
                &[
                    "--type",
                    "classic-1k",
                    "--uid",
                    &format!("0A0B0C{slot:02X}"),
                ],
            )
        })
        .collect();
    let config = bridge_config(
        &dir.path().join("bridge"),
        &format!("ws://{}/bridge/v1", cloud.addr()),
        &readers,
        10.0,
    );
    let bridge = BridgeProc::start(&config, &dir.path().join("bridge.log"), &rig.env());
    let user = api.user();
    let encoders: Vec<String> = readers
        .iter()
        .map(|r| api.wait_encoder(r, Duration::from_secs(30)))
        .collect();
    std::thread::sleep(Duration::from_secs(2)); // settle after start-up
    let ((), idle) = sampled(bridge.pid(), || {
        std::thread::sleep(Duration::from_secs_f64(idle_secs));
    });
    let mut rates = Vec::new();
    let mut peak = Usage {
        rss_kb: 0,
        cpu_percent: 0.0,
    };
    for n in [1usize, 4, 8] {
        let ((rate, _, failed), usage) = sampled(bridge.pid(), || {
            throughput(api, &user, &encoders[..n], tp_secs)
        });
        peak.rss_kb = peak.rss_kb.max(usage.rss_kb);
        peak.cpu_percent = peak.cpu_percent.max(usage.cpu_percent);
        rates.push((n, rate, failed));
    }
    drop(bridge);
    drop(cards);

    // ---- the table ------------------------------------------------------------------------
    println!();
    println!(
        "encoder-bridge benchmark (1K card, realistic credential: 10-digit number, 8 bytes access data)"
    );
    println!();
    println!(
        "raw APDU round trip through pcscd (FF B0, {RTT_ITERATIONS}x): median {rtt:.3} ms, p99 {rtt99:.3} ms"
    );
    println!();
    println!(
        "{:<34} {:>6} {:>8} {:>10} {:>10} {:>8}",
        "per job (median)", "APDUs", "at card", "wall ms", "floor ms", "x floor"
    );
    for (i, job) in JOBS.iter().enumerate() {
        let floor = rtt * pcsc.apdus[i] as f64;
        println!(
            "{:<34} {:>6} {:>8} {:>10.2} {:>10.2} {:>8.1}",
            format!("pcscd + vpcd: {job}"),
            pcsc.apdus[i],
            at_card[i],
            pcsc.wall[i],
            floor,
            pcsc.wall[i] / floor
        );
    }
    for (i, job) in JOBS.iter().enumerate() {
        let floor = pn.wire[i] as f64 * PN532_BYTE_US / 1000.0;
        println!(
            "{:<34} {:>6} {:>8} {:>10.2} {:>10.2} {:>8.1}",
            format!("PN532 115200 bd: {job}"),
            pn.apdus[i],
            "",
            pn.wall[i],
            floor,
            pn.wall[i] / floor
        );
    }
    println!(
        "  (APDUs: the protocol job's own count; at card: the virtual card's APDU log, with the"
    );
    println!("   hal's one FF CA when it opens the card)");
    println!("  (floors: pcscd = APDUs x median raw round trip; PN532 = wire bytes x 86.8 us,");
    println!(
        "   wire bytes per job {} / {} / {})",
        pn.wire[0], pn.wire[1], pn.wire[2]
    );
    println!();
    let (f50, f99) = (pct(&to_first, 0.5), pct(&to_first, 0.99));
    let (r50, r99) = (pct(&to_result, 0.5), pct(&to_result, 0.99));
    println!(
        "daemon overhead ({} re-encodes, real bridge, scripted cloud)   median      p99   target",
        to_first.len()
    );
    println!(
        "  attempt_available -> first APDU                       {f50:>7.2} ms {f99:>7.2} ms   < 2 ms median: {}",
        verdict(f50 < 2.0)
    );
    println!(
        "  last APDU -> result at the cloud (then acknowledged)  {r50:>7.2} ms {r99:>7.2} ms   < 2 ms median: {}",
        verdict(r50 < 2.0)
    );
    println!(
        "  (the card operation itself: median {:.2} ms)",
        pct(&card, 0.5)
    );
    println!();
    println!("throughput (real bridge + cloud simulator API + rig, encodes, {tp_secs:.0} s each)");
    let base = rates.first().map_or(1.0, |(_, r, _)| *r);
    for (n, rate, failed) in &rates {
        println!(
            "  {n} reader{}  {rate:>7.1} jobs/s   {:>4.2}x of 1 reader (linear: {n}x), {failed} failed",
            if *n == 1 { " " } else { "s" },
            rate / base
        );
    }
    println!();
    println!("bridge process (8 encoders)");
    println!(
        "  idle {idle_secs:.0} s:  RSS {:>6.1} MB, CPU {:>6.3} %   target RSS < 15 MB: {}, CPU ~0: {}",
        idle.rss_kb as f64 / 1024.0,
        idle.cpu_percent,
        verdict(idle.rss_kb < 15 * 1024),
        verdict(idle.cpu_percent < 0.5)
    );
    println!(
        "  peak in throughput:  RSS {:>6.1} MB, CPU {:>6.1} % of one core",
        peak.rss_kb as f64 / 1024.0,
        peak.cpu_percent
    );
    println!();
    match py {
        Ok(py) => {
            let py = sorted(py);
            let (p50, o50) = (pct(&py, 0.5), pct(&ours, 0.5));
            println!(
                "side by side, a connection per job through the same pcscd ({PYSCARD_JOBS} jobs, median):"
            );
            println!(
                "  pyscard script (load key, auth, write {} blocks, read back)   {p50:>7.2} ms",
                pcsc.writes[1]
            );
            println!(
                "  encoder-bridge's re-encode (session + full job: MAD, keys, MAC, verify) {o50:>7.2} ms",
            );
            println!(
                "  ratio bridge / pyscard: {:.2}; the bridge daemon end to end (announce -> result): {:.2} ms, {:.1}x the script",
                o50 / p50,
                f50 + pct(&card, 0.5) + r50,
                (f50 + pct(&card, 0.5) + r50) / p50
            );
        }
        Err(e) => println!("pyscard comparison not run: {e} (apt-get install python3-pyscard)"),
    }
}
