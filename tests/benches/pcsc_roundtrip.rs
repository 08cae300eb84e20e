//! APDU round trip through the real private pcscd to the virtual card (`FF B0` read after one
//! authentication, 2000 iterations: median and p99), and wall time per job next to its floor
//! (APDU count x median round trip). Needs root (the rig): fails loudly without.
//! `cargo bench -p encoder-tests --bench pcsc_roundtrip`

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)] // percentiles and millisecond figures of a benchmark

use std::time::{Duration, Instant};

use encoder_hal::Encoder;
use encoder_hal::pcsc::PcscEncoder;
use encoder_protocol::job::{encode, scan};
use encoder_tests::jobs::{realistic, realistic_next, site};
use encoder_tests::{Rig, STARTUP};

const ITERATIONS: usize = 2000;
const JOB_RUNS: usize = 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    encoder_tests::assert_root("pcsc_roundtrip");
    let rig = Rig::start(2);
    let _card = rig.card(0, &["--type", "classic-1k", "--uid", "04A1B2C3"]);
    let mut encoder = PcscEncoder::new(&Rig::reader_name(0)).expect("encoder");
    assert!(encoder.wait_for_card(STARTUP).expect("wait"), "no card");

    let mut samples = Vec::with_capacity(ITERATIONS);
    {
        let mut s = encoder.open_session().expect("session");
        let load = [
            0xFF, 0x82, 0x00, 0x00, 0x06, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        let auth = [0xFF, 0x86, 0x00, 0x00, 0x05, 0x01, 0x00, 0x04, 0x60, 0x00];
        let read = [0xFF, 0xB0, 0x00, 0x04, 0x10];
        for apdu in [&load[..], &auth[..]] {
            let r = s.transmit(apdu).expect("setup");
            assert_eq!(r[r.len() - 2..], [0x90, 0x00]);
        }
        for _ in 0..ITERATIONS {
            let t = Instant::now();
            let r = s.transmit(&read).expect("read");
            samples.push(t.elapsed());
            assert_eq!(r.len(), 18);
        }
    }
    samples.sort();
    let median = percentile(&samples, 0.5);
    let p99 = percentile(&samples, 0.99);
    println!(
        "APDU round trip through pcscd (FF B0, {ITERATIONS} iterations): median {:.3} ms, p99 {:.3} ms, min {:.3} ms, max {:.3} ms  (target: median < 1 ms: {})",
        ms(median),
        ms(p99),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
        if median < Duration::from_millis(1) {
            "ok"
        } else {
            "MISSED"
        }
    );

    // Per-job wall time (session open excluded), median of JOB_RUNS runs each.
    let site = site();
    let mut times: [Vec<Duration>; 3] = Default::default();
    let mut apdus = [0usize; 3];
    for run in 0..JOB_RUNS {
        let _card = rig.card(
            1,
            &["--type", "classic-1k", "--uid", &format!("04A1B2{run:02X}")],
        );
        let mut enc = PcscEncoder::new(&Rig::reader_name(1)).expect("encoder");
        assert!(enc.wait_for_card(STARTUP).expect("wait"));
        for (i, job) in ["encode blank", "re-encode", "scan"].iter().enumerate() {
            let mut s = enc.open_session().expect("session");
            let info = s.info().clone();
            let t = Instant::now();
            let count = match i {
                0 => encode(&mut *s, &info, &site, &realistic(8)).map(|o| o.apdu_count),
                1 => encode(&mut *s, &info, &site, &realistic_next(8)).map(|o| o.apdu_count),
                _ => scan(&mut *s, &info, &site).map(|o| o.apdu_count),
            }
            .unwrap_or_else(|e| panic!("{job}: {e}"));
            times[i].push(t.elapsed());
            apdus[i] = count;
        }
    }
    println!("per job through pcscd (1K, realistic credential, median of {JOB_RUNS} runs):");
    for (i, job) in ["encode blank", "re-encode", "scan"].iter().enumerate() {
        times[i].sort();
        let wall = percentile(&times[i], 0.5);
        let floor = median * u32::try_from(apdus[i]).unwrap_or(u32::MAX);
        println!(
            "  {job:<13} {:>7.2} ms wall, {:>2} APDUs, floor {:>6.2} ms ({:.1}x)",
            ms(wall),
            apdus[i],
            ms(floor),
            wall.as_secs_f64() / floor.as_secs_f64().max(1e-9)
        );
    }
}
