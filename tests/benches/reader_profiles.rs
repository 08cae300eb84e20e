//! Per reader family: APDUs per job at the card (counted in `encoder-sim card`'s own APDU log,
//! so the hal's spelling is included: split reads, lazy key loads, resets are not APDUs) and
//! wall time per job through the real pcscd (median of `RUNS`, session open included), for
//! encode blank, re-encode and scan. Shows what multi-block reads and key slots save.
//! Needs root (the rig): fails loudly without. Part of `make bench`;
//! `cargo bench -p encoder-tests --bench reader_profiles`.

use std::path::Path;
use std::time::{Duration, Instant};

use encoder_hal::pcsc::PcscEncoder;
use encoder_hal::{CardSession, Encoder, Feedback};
use encoder_protocol::job::{encode, scan};
use encoder_sim::card::ReaderProfile;
use encoder_tests::jobs::{realistic, realistic_next, site};
use encoder_tests::{Rig, STARTUP};

const RUNS: usize = 15;

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// One job: APDUs at the card and wall time (card wait, open, job, feedback).
fn timed(
    enc: &mut PcscEncoder,
    log: &Path,
    job: impl FnOnce(&mut dyn CardSession) -> bool,
) -> (usize, Duration) {
    let before = lines(log);
    let t = Instant::now();
    assert!(enc.wait_for_card(STARTUP).expect("wait"), "no card");
    let mut s = enc.open_session().expect("session");
    let ok = job(&mut *s);
    let _ = s.feedback(if ok {
        Feedback::Success
    } else {
        Feedback::Failure
    });
    drop(s);
    let elapsed = t.elapsed();
    assert!(ok, "job failed");
    (lines(log) - before, elapsed)
}

fn main() {
    encoder_tests::assert_root("reader_profiles");
    // libpcsclite reads its socket once per process, and pcscd takes at most 16 readers: one
    // process with a rig of its own per profile (this program again, told which).
    if let Ok(name) = std::env::var("READER_PROFILE_BENCH") {
        let profile: ReaderProfile = name.parse().expect("profile");
        row(&profile, &site());
        return;
    }
    println!(
        "Per reader family through pcscd (MIFARE Classic 1K; APDUs at the card incl. GET UID and feedback; median of {RUNS} runs)"
    );
    println!(
        "{:<14} {:>11} {:>11} {:>9} {:>12} {:>12} {:>10}",
        "profile", "encode APDU", "re-enc APDU", "scan APDU", "encode ms", "re-enc ms", "scan ms"
    );
    for profile in ReaderProfile::ALL {
        let out = std::process::Command::new(std::env::current_exe().expect("exe"))
            .env("READER_PROFILE_BENCH", profile.name)
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("bench child");
        assert!(out.status.success(), "{}: {}", profile.name, out.status);
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}

/// The table row of `profile`, on a rig of this process.
fn row(profile: &ReaderProfile, site: &encoder_protocol::keys::SiteKeys) {
    {
        let rig = Rig::start_named(2, &[profile.pcscd_name]);
        let log = rig.dir().join("apdu.log");
        let log_arg = log.display().to_string();
        let _card = rig.card(
            0,
            &[
                "--type",
                "classic-1k",
                "--uid",
                "04A1B2C3",
                "--reader-profile",
                profile.name,
                "--apdu-log",
                &log_arg,
            ],
        );
        let mut enc = PcscEncoder::new(&rig.name_of(0)).expect("encoder");
        let (blank_apdus, blank_time) = timed(&mut enc, &log, |s| {
            let info = s.info().clone();
            encode(s, &info, site, &realistic(8)).is_ok()
        });
        let mut re = Vec::new();
        let mut sc = Vec::new();
        let (mut re_apdus, mut sc_apdus) = (0, 0);
        for n in 0..RUNS {
            let (a, t) = timed(&mut enc, &log, |s| {
                let info = s.info().clone();
                encode(s, &info, site, &realistic_next(n % 2)).is_ok()
            });
            re_apdus = a;
            re.push(t);
            let (a, t) = timed(&mut enc, &log, |s| {
                let info = s.info().clone();
                scan(s, &info, site).is_ok_and(|o| o.credential.is_some())
            });
            sc_apdus = a;
            sc.push(t);
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:<14} {:>11} {:>11} {:>9} {:>12.2} {:>12.2} {:>10.2}",
            profile.name,
            blank_apdus,
            re_apdus,
            sc_apdus,
            ms(blank_time),
            ms(median(re)),
            ms(median(sc)),
        );
    }
}
