//! The soak: attempts through the cloud's HTTP API onto 4 virtual readers (three MIFARE Classic
//! 1K cards and a `DESFire` EV2, docs/card-format.md §10), served by the real
//! bridge through a private pcscd, while faults are injected at random but reproducible
//! (seeded) moments. `make soak` (full: at least 1000 attempts, under 10 minutes) and
//! `make test` (CI: 2 minutes) run it. Needs root (the rig).
//!
//! Environment: `SOAK_SECS` (how long attempts are created, default 480), `SOAK_ATTEMPTS`
//! (stop creating after this many, default 1000), `SOAK_SEED` (default 1), `SOAK_DIR` (keep
//! the logs, card images and APDU logs there instead of a temporary directory),
//! `ENCODER_BRIDGE` / `ENCODER_SIM` (the binaries).
//!
//! Faults (one every 1.5-5 s, chosen by the seeded generator):
//! - `websocket_drop`: the TCP proxy between bridge and cloud cuts every connection;
//! - `cloud_restart`: the cloud simulator is killed (SIGKILL or SIGTERM) and started again from
//!   its `--state` file on a new port (the proxy follows);
//! - `pcscd_restart`: pcscd is killed (SIGKILL) and started again;
//! - `readers_unplugged`: pcscd restarts with 2 of the 4 readers for 1-3 s, then with all;
//! - `bridge_sigkill`: the bridge is killed with SIGKILL and started again on the same state;
//! - card tears (by the workers): before a re-encode, the card is put back armed with
//!   `--tear-after-writes 0..2` and a random tear mode (lost, half, landed), so it leaves the
//!   field during one of the record writes.
//!
//! Faults start only once every card has had its first encode: a first encode writes the
//! sector trailers, and a trailer torn on a real card can lock its sector for good; the format
//! writes trailers once, so re-encodes (what a front desk mostly does) are what gets torn.
//!
//! Verdict (exit 1 if any is not 0): attempts lost (still pending after the faults stop and
//! the cloud's attempt timeout passes), attempts executed twice on a card (record header
//! writes for the attempt's credential in the cards' APDU logs), cards left with neither the
//! old nor the new credential (each card image scanned in process with the protocol crate and
//! compared with the credentials the cloud issued on it). The `DESFire` card's record writes
//! travel encrypted, so its executions are not counted from its log; its image is checked
//! like the others.

#![allow(clippy::too_many_lines, clippy::cast_precision_loss)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use encoder_protocol::job::{desfire, scan};
use encoder_protocol::keys::{MasterKey, SiteKeys};
use encoder_sim::card::CardType;
use encoder_tests::daemon::SITE_KEY;
use encoder_tests::jobs::{InProcessCard, nonces};
use encoder_tests::soak::{
    Api, BridgeProc, CloudProc, Proxy, bridge_config, record_header_writes, uuid_prefix,
};
use encoder_tests::{Rig, SimCard};

const READERS: usize = 4;
/// The reader whose card is a `DESFire` EV2 (the others hold MIFARE Classic 1K cards).
const DESFIRE_SLOT: usize = 3;

/// The card type on reader `slot`.
fn card_type(slot: usize) -> CardType {
    if slot == DESFIRE_SLOT {
        CardType::DesfireEv2
    } else {
        CardType::Classic1k
    }
}
/// The cloud's attempt timeout (seconds): the bound on an attempt's life.
const ATTEMPT_TIMEOUT: f64 = 30.0;
/// The bridge's card wait (seconds).
const CARD_WAIT: f64 = 5.0;
const POLL: Duration = Duration::from_millis(100);
/// Chance that a re-encode is torn.
const TEAR_CHANCE: f64 = 0.12;
/// Chance that an attempt is a scan rather than an encode.
const SCAN_CHANCE: f64 = 0.2;

const FAULTS: [&str; 5] = [
    "websocket_drop",
    "cloud_restart",
    "pcscd_restart",
    "readers_unplugged",
    "bridge_sigkill",
];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One attempt created through the API.
#[derive(Debug, Clone)]
struct Record {
    slot: usize,
    id: String,
    /// The credential of an encode (`None`: a scan).
    credential: Option<String>,
    /// `success`, `error` or `pending` (lost).
    status: String,
    error: Option<String>,
    /// This encode was armed to tear.
    torn: bool,
    /// ... and the card did leave the field during one of its writes.
    tear_fired: bool,
}

struct World {
    dir: PathBuf,
    rig: RwLock<Rig>,
    cloud: RwLock<CloudProc>,
    proxy: Proxy,
    bridge: Mutex<BridgeProc>,
    started: Instant,
    secs: f64,
    target: usize,
    created: AtomicUsize,
    /// Slots whose card has had its first encode.
    formatted: AtomicUsize,
    faults_on: AtomicBool,
    stop: AtomicBool,
    records: Mutex<Vec<Record>>,
    harness_errors: Mutex<Vec<String>>,
    harness_notes: Mutex<Vec<String>>,
    card_retries: AtomicUsize,
    user: String,
}

impl World {
    /// Runs `f` against the cloud's API; waits while the cloud restarts.
    fn api<R>(&self, f: impl FnOnce(&Api) -> R) -> R {
        let cloud = self.cloud.read().unwrap_or_else(PoisonError::into_inner);
        f(&Api { addr: cloud.addr() })
    }

    /// Retries `f` (against the API) until it succeeds or 60 s pass.
    fn api_retry<R>(&self, what: &str, f: impl Fn(&Api) -> Result<R, String>) -> Option<R> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.api(&f) {
                Ok(r) => return Some(r),
                Err(e) if Instant::now() >= deadline => {
                    lock(&self.harness_errors).push(format!("{what}: {e}"));
                    return None;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn creating(&self) -> bool {
        !self.stop.load(Ordering::SeqCst)
            && self.started.elapsed().as_secs_f64() < self.secs
            && self.created.load(Ordering::SeqCst) < self.target
    }

    fn image(&self, slot: usize) -> PathBuf {
        let ext = if slot == DESFIRE_SLOT { "json" } else { "mfd" };
        self.dir.join(format!("card{slot}.{ext}"))
    }

    /// Puts slot `slot`'s card on its reader (incarnation `n`: its own APDU log), optionally
    /// armed to tear.
    fn card(&self, slot: usize, n: usize, tear: Option<(u32, &str)>) -> SimCard {
        let image = self.image(slot);
        let log = self.dir.join(format!("card{slot}.{n:04}.apdu"));
        let mut args: Vec<String> = vec!["--type".into(), card_type(slot).name().into()];
        if image.exists() {
            args.extend(["--load".into(), image.display().to_string()]);
        } else if slot == DESFIRE_SLOT {
            args.extend([
                "--uid".into(),
                format!("045A0C{slot:02X}{:02X}7788", 0x10 + slot),
            ]);
        } else {
            args.extend(["--uid".into(), format!("5A0C{slot:02X}{:02X}", 0x10 + slot)]);
        }
        args.extend([
            "--save".into(),
            image.display().to_string(),
            "--apdu-log".into(),
            log.display().to_string(),
            "--connect-timeout".into(),
            "20".into(),
        ]);
        if let Some((writes, mode)) = tear {
            args.extend([
                "--tear-after-writes".into(),
                writes.to_string(),
                "--tear-mode".into(),
                mode.into(),
            ]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        // A card that does not come up (vpcd not accepting on its port) is retried: counted
        // and reported, since it is the rig's trouble, not the bridge's.
        for _ in 0..3 {
            let rig = self.rig.read().unwrap_or_else(PoisonError::into_inner);
            if let Ok(card) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rig.card(slot, &refs)))
            {
                return card;
            }
            self.card_retries.fetch_add(1, Ordering::SeqCst);
            lock(&self.harness_notes).push(format!(
                "card {slot} (incarnation {n}) did not come up at t={:.1}s; retried",
                self.started.elapsed().as_secs_f64()
            ));
        }
        panic!("card {slot} did not come up three times");
    }
}

/// One reader's worker: creates an attempt, waits for its end, repeats.
fn worker(w: &World, slot: usize, encoder: &str, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut incarnation = 0;
    let mut card = w.card(slot, incarnation, None);
    let mut formatted = false;
    let bound = Duration::from_secs_f64(ATTEMPT_TIMEOUT + 90.0);
    while (!formatted && !w.stop.load(Ordering::SeqCst)) || w.creating() {
        let encode = !formatted || rng.f64() >= SCAN_CHANCE;
        let tear = (encode && formatted && rng.f64() < TEAR_CHANCE)
            .then(|| (rng.u32(0..3), ["lost", "half", "landed"][rng.usize(0..3)]));
        if tear.is_some() {
            card.quit();
            incarnation += 1;
            card = w.card(slot, incarnation, tear);
        }
        let credential = if encode {
            let user = w.user.clone();
            match w.api_retry("create credential", |api| api.credential(&user)) {
                Some(c) => Some(c),
                None => break,
            }
        } else {
            None
        };
        let Some(id) = w.api_retry("create attempt", |api| {
            api.start(encoder, credential.as_deref())
        }) else {
            break;
        };
        w.created.fetch_add(1, Ordering::SeqCst);
        let created = Instant::now();
        let mut record = Record {
            slot,
            id: id.clone(),
            credential,
            status: "pending".into(),
            error: None,
            torn: tear.is_some(),
            tear_fired: false,
        };
        loop {
            std::thread::sleep(POLL);
            if let Ok(a) = w.api(|api| api.attempt(&id)) {
                let status = a["status"].as_str().unwrap_or("pending");
                if status != "pending" {
                    status.clone_into(&mut record.status);
                    record.error = a["error"]["type"].as_str().map(str::to_owned);
                    break;
                }
            }
            if created.elapsed() > bound {
                break;
            }
        }
        if tear.is_some() {
            let log = w.dir.join(format!("card{slot}.{incarnation:04}.apdu"));
            record.tear_fired = std::fs::read_to_string(log).is_ok_and(|t| t.contains("(torn"));
        }
        let succeeded = record.status == "success";
        lock(&w.records).push(record);
        if tear.is_some() {
            card.quit();
            incarnation += 1;
            card = w.card(slot, incarnation, None);
        }
        if encode && succeeded && !formatted {
            formatted = true;
            w.formatted.fetch_add(1, Ordering::SeqCst);
        }
    }
    card.quit();
}

/// Sleeps up to `d`, returning early (false) when the world stops.
fn nap(w: &World, d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if w.stop.load(Ordering::SeqCst) || !w.creating() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// The fault injector.
fn faults(w: &World, seed: u64) -> BTreeMap<&'static str, usize> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut done: BTreeMap<&'static str, usize> = FAULTS.iter().map(|f| (*f, 0)).collect();
    while w.formatted.load(Ordering::SeqCst) < READERS {
        if w.stop.load(Ordering::SeqCst) {
            return done;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    w.faults_on.store(true, Ordering::SeqCst);
    let verbose = std::env::var_os("SOAK_VERBOSE").is_some();
    loop {
        let pause = Duration::from_millis(rng.u64(1500..5000));
        if !nap(w, pause) {
            break;
        }
        let fault = FAULTS[rng.usize(0..FAULTS.len())];
        let t = w.started.elapsed().as_secs_f64();
        if verbose {
            eprintln!("soak: t={t:.1}s fault {fault}");
        }
        match fault {
            "websocket_drop" => w.proxy.cut(),
            "cloud_restart" => {
                let crash = rng.bool();
                let pause = Duration::from_millis(rng.u64(0..1000));
                let mut cloud = w.cloud.write().unwrap_or_else(PoisonError::into_inner);
                cloud.restart(crash, pause);
                w.proxy.retarget(cloud.addr());
            }
            "pcscd_restart" => {
                let pause = Duration::from_millis(rng.u64(0..500));
                let mut rig = w.rig.write().unwrap_or_else(PoisonError::into_inner);
                rig.kill_pcscd();
                std::thread::sleep(pause);
                rig.start_pcscd();
            }
            "readers_unplugged" => {
                let away = Duration::from_millis(rng.u64(1000..3000));
                let mut rig = w.rig.write().unwrap_or_else(PoisonError::into_inner);
                rig.kill_pcscd();
                rig.set_readers(2);
                rig.start_pcscd();
                std::thread::sleep(away);
                rig.kill_pcscd();
                rig.set_readers(READERS);
                rig.start_pcscd();
            }
            _ => {
                let pause = Duration::from_millis(rng.u64(0..1000));
                lock(&w.bridge).kill_and_restart(pause);
            }
        }
        *done.entry(fault).or_default() += 1;
    }
    done
}

/// What a card image holds: `Ok(Some(credential id))`, `Ok(None)` (no credential), or why it
/// cannot be read.
fn card_holds(image: &Path, slot: usize, site: &SiteKeys) -> Result<Option<String>, String> {
    let bytes = std::fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let mut card = InProcessCard::from_image(card_type(slot), &bytes);
    let info = card.info();
    let outcome = if slot == DESFIRE_SLOT {
        desfire::scan(&mut card, &info, site, &mut nonces())
    } else {
        scan(&mut card, &info, site)
    }
    .map_err(|e| e.to_string())?;
    Ok(outcome.credential.map(|c| c.credential.credential_id))
}

fn main() {
    let secs: f64 = env_or("SOAK_SECS", 480.0);
    let target: usize = env_or("SOAK_ATTEMPTS", 1000);
    let seed: u64 = env_or("SOAK_SEED", 1);
    assert!(
        std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n"),
        "the soak needs root: the rig runs pcscd in its own namespaces"
    );
    let tmp = tempfile::Builder::new()
        .prefix("soak.")
        .tempdir()
        .expect("tempdir");
    let dir = std::env::var_os("SOAK_DIR").map_or_else(|| tmp.path().to_owned(), PathBuf::from);
    std::fs::create_dir_all(&dir).expect("SOAK_DIR");
    for entry in std::fs::read_dir(&dir).expect("dir").flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("card") || name.ends_with(".log") || name == "cloud.json" {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let _ = std::fs::remove_dir_all(dir.join("bridge"));
    println!(
        "soak: seed {seed}, up to {target} attempts over {READERS} readers for at most {secs:.0} s; files in {}",
        dir.display()
    );

    let rig = Rig::start(READERS);
    let cloud = CloudProc::start(
        &dir.join("cloud.json"),
        &dir.join("cloud.log"),
        ATTEMPT_TIMEOUT,
    );
    let proxy = Proxy::start(cloud.addr());
    let readers: Vec<String> = (0..READERS).map(Rig::reader_name).collect();
    let config = bridge_config(
        &dir.join("bridge"),
        &format!("ws://{}/bridge/v1", proxy.addr()),
        &readers,
        CARD_WAIT,
    );
    let bridge = BridgeProc::start(&config, &dir.join("bridge.log"), &rig.env());
    let api = Api { addr: cloud.addr() };
    let user = api.user();
    let encoders: Vec<String> = readers
        .iter()
        .map(|r| api.wait_encoder(r, Duration::from_secs(30)))
        .collect();

    let world = Arc::new(World {
        dir: dir.clone(),
        rig: RwLock::new(rig),
        cloud: RwLock::new(cloud),
        proxy,
        bridge: Mutex::new(bridge),
        started: Instant::now(),
        secs,
        target,
        created: AtomicUsize::new(0),
        formatted: AtomicUsize::new(0),
        faults_on: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        records: Mutex::default(),
        harness_errors: Mutex::default(),
        harness_notes: Mutex::default(),
        card_retries: AtomicUsize::new(0),
        user,
    });
    let workers: Vec<_> = encoders
        .iter()
        .enumerate()
        .map(|(slot, encoder)| {
            let (w, encoder) = (Arc::clone(&world), encoder.clone());
            let seed = seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(slot as u64 + 1);
            std::thread::spawn(move || worker(&w, slot, &encoder, seed))
        })
        .collect();
    // Faults run on the main thread: helpers are started with a parent-death signal, which
    // fires when the *thread* that started them ends, so whatever a fault restarts (pcscd,
    // the cloud, the bridge) must be started by a thread that lives to the end.
    let faults_done = faults(&world, seed);
    let faults_stopped = Instant::now();
    let creating_secs = world.started.elapsed().as_secs_f64();
    for (slot, worker) in workers.into_iter().enumerate() {
        if worker.join().is_err() {
            lock(&world.harness_errors).push(format!("worker {slot} panicked"));
        }
    }
    let drained = faults_stopped.elapsed().as_secs_f64();
    lock(&world.bridge).stop(Duration::from_secs(25));
    let _ = std::fs::write(
        dir.join("pcscd.log"),
        world
            .rig
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .log(),
    );

    // ---- verdict -------------------------------------------------------------------------
    let records = lock(&world.records).clone();
    let created = records.len();
    let succeeded = records.iter().filter(|r| r.status == "success").count();
    let lost: Vec<&Record> = records.iter().filter(|r| r.status == "pending").collect();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for r in records.iter().filter(|r| r.status == "error") {
        *errors
            .entry(r.error.clone().unwrap_or_else(|| "(none)".into()))
            .or_default() += 1;
    }

    // Executions per credential: record header writes in every APDU log of every card.
    let mut header_writes: HashMap<[u8; 5], usize> = HashMap::new();
    for entry in std::fs::read_dir(&dir).expect("dir").flatten() {
        if entry.file_name().to_string_lossy().ends_with(".apdu") {
            for id in record_header_writes(&entry.path()) {
                *header_writes.entry(id).or_default() += 1;
            }
        }
    }
    let encode_records: Vec<&Record> = records.iter().filter(|r| r.credential.is_some()).collect();
    let mut twice = Vec::new();
    let mut written_once = 0;
    for r in &encode_records {
        let prefix = r.credential.as_deref().and_then(uuid_prefix);
        let n = prefix
            .and_then(|p| header_writes.get(&p))
            .copied()
            .unwrap_or(0);
        match n {
            0 => {}
            1 => written_once += 1,
            _ => twice.push((r.id.clone(), n)),
        }
    }

    // Cards: what each holds against what the cloud issued on it.
    let site = SiteKeys::new(
        1,
        MasterKey::new(
            (0..16)
                .map(|i| u8::from_str_radix(&SITE_KEY[2 * i..2 * i + 2], 16).expect("hex"))
                .collect::<Vec<u8>>()
                .try_into()
                .expect("16 bytes"),
        ),
    );
    let cloud_api = world.api(|api| *api);
    let mut neither = Vec::new();
    let mut landed_despite_error = 0;
    let mut card_lines = Vec::new();
    for slot in 0..READERS {
        // This slot's encodes in creation order (one attempt at a time per reader), each with
        // whether the cloud considers its credential issued.
        let history: Vec<(String, bool)> = encode_records
            .iter()
            .filter(|r| r.slot == slot)
            .filter_map(|r| {
                let c = r.credential.clone()?;
                let issued = cloud_api
                    .credential_get(&c)
                    .is_ok_and(|v| v["is_issued"] == true);
                Some((c, issued))
            })
            .collect();
        let last_issued = history.iter().rposition(|(_, issued)| *issued);
        let holds = card_holds(&world.image(slot), slot, &site);
        let verdict = match (&holds, last_issued) {
            (Ok(Some(on_card)), Some(l)) if *on_card == history[l].0 => {
                "the last issued credential"
            }
            (Ok(Some(on_card)), l)
                if history
                    .iter()
                    .enumerate()
                    .any(|(i, (c, _))| c == on_card && l.is_none_or(|l| i > l)) =>
            {
                landed_despite_error += 1;
                "a later credential whose attempt failed after it landed (new)"
            }
            (Ok(None), None) => "no credential, none issued",
            _ => {
                neither.push(slot);
                "NEITHER the old nor the new credential"
            }
        };
        card_lines.push(format!(
            "  card {slot}: {} encodes, {} issued; holds {}: {verdict}",
            history.len(),
            history.iter().filter(|(_, i)| *i).count(),
            match &holds {
                Ok(Some(c)) => c.clone(),
                Ok(None) => "nothing".into(),
                Err(e) => format!("unreadable ({e})"),
            }
        ));
    }

    let torn = records.iter().filter(|r| r.torn).count();
    let fired = records.iter().filter(|r| r.tear_fired).count();
    let fired_ok = records
        .iter()
        .filter(|r| r.tear_fired && r.status == "success")
        .count();
    println!();
    println!(
        "soak results (seed {seed}, {creating_secs:.0} s creating attempts, drained {drained:.1} s after the faults stopped)"
    );
    println!("  attempts created        {created:>6}  (target {target})");
    println!("  succeeded               {succeeded:>6}");
    println!(
        "  failed                  {:>6}",
        records.iter().filter(|r| r.status == "error").count()
    );
    for (kind, n) in &errors {
        println!("    {kind:<28} {n:>5}");
    }
    println!("  lost                    {:>6}  (must be 0)", lost.len());
    println!("  executed twice on a card{:>6}  (must be 0)", twice.len());
    println!(
        "  cards with neither old nor new credential {:>3}  (must be 0)",
        neither.len()
    );
    println!(
        "  encodes whose record reached the card once: {written_once} of {}",
        encode_records.len()
    );
    println!(
        "  re-encodes armed to tear: {torn}; torn mid-write: {fired} ({fired_ok} reported success: must be 0); first encodes torn: 0 (faults start after every card's first encode)"
    );
    println!(
        "  cards holding a credential whose attempt failed after it landed: {landed_despite_error}"
    );
    println!(
        "  faults: {}",
        faults_done
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for line in &card_lines {
        println!("{line}");
    }
    for r in &lost {
        println!("  LOST attempt {} on card {}", r.id, r.slot);
    }
    for (id, n) in &twice {
        println!("  TWICE attempt {id}: its record was written {n} times");
    }
    for note in lock(&world.harness_notes).iter() {
        println!("  note: {note}");
    }
    let harness = lock(&world.harness_errors).clone();
    for e in &harness {
        println!("  harness error: {e}");
    }
    // The double-execution check reads record writes from the cards' logs: if it recognised
    // none while encodes succeeded, it is blind (a format it does not know), not clean.
    let succeeded_encodes = encode_records
        .iter()
        .filter(|r| r.status == "success")
        .count();
    let blind = succeeded_encodes > 0 && written_once == 0 && twice.is_empty();
    if blind {
        println!(
            "  BLIND: {succeeded_encodes} encodes succeeded but no record write was recognised in the APDU logs"
        );
    }
    let failed = fired_ok > 0
        || blind
        || !lost.is_empty()
        || !twice.is_empty()
        || !neither.is_empty()
        || !harness.is_empty();
    if failed {
        println!("soak: FAILED (logs in {})", dir.display());
        if std::env::var_os("SOAK_DIR").is_none() {
            let kept = tmp.keep();
            println!("soak: kept {}", kept.display());
        }
        std::process::exit(1);
    }
    println!("soak: ok");
}
