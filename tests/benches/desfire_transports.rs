//! `DESFire` EV2 per job (encode blank, re-encode, scan) through the real private pcscd and
//! through the PN532 emulator at 115200 baud: wall time (median of runs) next to its floor, and
//! a real reader's projection (APDUs × 25 ms) next to Classic's. Floors: pcscd, APDUs × the
//! median round trip of a plain `FreeMemory` (`90 6E`) to the same card; PN532, the bytes the
//! job's `InDataExchange` frames put on the wire (command, ACK, reply) × 86.8 µs (10 bits a byte
//! at 115200, docs/reference/pn532.md §8). Needs root (the rig).
//! `cargo bench -p encoder-tests --bench desfire_transports`

#![allow(clippy::cast_precision_loss, clippy::too_many_lines)] // figures of a benchmark, one linear run

use std::process::Command;
use std::time::{Duration, Instant};

use encoder_hal::pcsc::PcscEncoder;
use encoder_hal::{CardSession, Encoder, Pn532Encoder};
use encoder_protocol::job::desfire::{self, DesfireOptions};
use encoder_protocol::transmit::{Transmit, TransmitError};
use encoder_tests::jobs::{realistic, realistic_next, site};
use encoder_tests::{Rig, STARTUP, spawn_pn532};

const RUNS: usize = 9;
const JOBS: [&str; 3] = ["encode blank", "re-encode", "scan"];
const BYTE_US: f64 = 86.8;

/// Counts APDUs and the PN532 wire bytes of their `InDataExchange` frames.
struct Counting<'a> {
    inner: &'a mut dyn Transmit,
    apdus: usize,
    wire: usize,
}

impl Transmit for Counting<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransmitError> {
        self.apdus += 1;
        let reply = self.inner.transmit(command)?;
        // Normal frame: 00 00 FF LEN LCS TFI CMD [Tg] data DCS 00; the ACK is 6 bytes.
        self.wire += (8 + 1 + command.len()) + 6 + (8 + 1 + reply.len());
        Ok(reply)
    }
}

fn run_job(job: usize, session: &mut dyn CardSession) -> (usize, usize, Duration) {
    let info = session.info().clone();
    let site = site();
    let mut n = 0u8;
    let mut nonce = move || {
        n = n.wrapping_add(1);
        [n; 16]
    };
    let mut counting = Counting {
        inner: session,
        apdus: 0,
        wire: 0,
    };
    let options = DesfireOptions::default();
    let t = Instant::now();
    let ok = match job {
        0 => desfire::encode(
            &mut counting,
            &info,
            &site,
            &realistic(8),
            options,
            &mut nonce,
        )
        .map(|_| ()),
        1 => desfire::encode(
            &mut counting,
            &info,
            &site,
            &realistic_next(8),
            options,
            &mut nonce,
        )
        .map(|_| ()),
        _ => desfire::scan(&mut counting, &info, &site, &mut nonce).map(|_| ()),
    };
    let took = t.elapsed();
    ok.unwrap_or_else(|e| panic!("{}: {e} ({})", JOBS[job], e.detail()));
    (counting.apdus, counting.wire, took)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    assert!(
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n"),
        "desfire_transports needs root: the rig runs pcscd in its own namespaces"
    );
    let rig = Rig::start(2);

    // pcscd: the round trip of a plain FreeMemory, then the jobs.
    let rtt = {
        let _card = rig.card(0, &["--type", "desfire-ev2", "--uid", "04A1A2A3A4A5A6"]);
        let mut encoder = PcscEncoder::new(&Rig::reader_name(0)).expect("encoder");
        assert!(encoder.wait_for_card(STARTUP).expect("wait"), "no card");
        let mut s = encoder.open_session().expect("session");
        let samples: Vec<f64> = (0..500)
            .map(|_| {
                let t = Instant::now();
                let r = s
                    .transmit(&[0x90, 0x6E, 0x00, 0x00, 0x00])
                    .expect("FreeMemory");
                assert_eq!(r.get(r.len() - 2..), Some(&[0x91, 0x00][..]));
                ms(t.elapsed())
            })
            .collect();
        median(samples)
    };
    let mut pcsc: [Vec<f64>; 3] = Default::default();
    let mut pcsc_apdus = [0usize; 3];
    for run in 0..RUNS {
        let _card = rig.card(
            1,
            &[
                "--type",
                "desfire-ev2",
                "--uid",
                &format!("04A1A2A3A4A5{run:02X}"),
            ],
        );
        let mut enc = PcscEncoder::new(&Rig::reader_name(1)).expect("encoder");
        assert!(enc.wait_for_card(STARTUP).expect("wait"));
        for (job, t) in pcsc.iter_mut().enumerate() {
            let mut s = enc.open_session().expect("session");
            let (apdus, _, took) = run_job(job, &mut *s);
            t.push(ms(took));
            pcsc_apdus[job] = apdus;
        }
    }

    // The PN532 emulator at 115200 baud.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pn: [Vec<f64>; 3] = Default::default();
    let mut pn_counts = [(0usize, 0usize); 3];
    for run in 0..RUNS.min(5) {
        let link = dir.path().join(format!("pn532-{run}"));
        let uid = format!("04C1C2C3C4C5{run:02X}");
        let args = ["--baud", "115200", "--type", "desfire-ev2", "--uid", &uid];
        let mut sim = spawn_pn532(&link, &args);
        let mut encoder = Pn532Encoder::new(link.display().to_string());
        assert!(encoder.wait_for_card(STARTUP).expect("wait"), "no card");
        for (job, t) in pn.iter_mut().enumerate() {
            let mut s = encoder.open_session().expect("session");
            let (apdus, wire, took) = run_job(job, &mut *s);
            t.push(ms(took));
            pn_counts[job] = (apdus, wire);
        }
        drop(encoder);
        let _ = sim.kill();
        let _ = sim.wait();
    }

    println!("DESFire EV2, realistic credential (48-byte record), median of runs:");
    println!("through pcscd (plain FreeMemory round trip {rtt:.3} ms):");
    for (job, name) in JOBS.iter().enumerate() {
        let wall = median(pcsc[job].clone());
        let floor = rtt * pcsc_apdus[job] as f64;
        println!(
            "  {name:<13} {wall:>7.2} ms wall, {:>2} APDUs, floor {floor:>6.2} ms ({:.1}x); real reader ~{} ms",
            pcsc_apdus[job],
            wall / floor.max(1e-9),
            pcsc_apdus[job] * 25
        );
    }
    println!("through the PN532 emulator at 115200 baud:");
    for (job, name) in JOBS.iter().enumerate() {
        let wall = median(pn[job].clone());
        let (apdus, wire) = pn_counts[job];
        let floor = wire as f64 * BYTE_US / 1000.0;
        println!(
            "  {name:<13} {wall:>7.2} ms wall, {apdus:>2} APDUs, {wire:>5} wire bytes, floor {floor:>6.2} ms ({:.1}x)",
            wall / floor.max(1e-9)
        );
    }
    println!(
        "Classic 1K at a real reader, for comparison (apdu_budget): 32 / 19 / 11 APDUs, ~800 / 475 / 275 ms"
    );
}
