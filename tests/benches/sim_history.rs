//! What one encode costs the cloud simulator as its history grows (issue 18), in-process (no
//! sockets, no other process: the simulator's own work alone).
//!
//! Each job is what `make endurance` asks of the simulator: a new credential, an encode, the
//! attempt read, the bridge's claim and result, the attempt read again, and the expiry timer's
//! tick. Before each measurement the state is filled with `history` earlier jobs; then
//! `SIM_HISTORY_JOBS` (default 2,000) jobs are timed:
//!
//! - in memory (`encoder-sim cloud` without `--state`): µs per job;
//! - with `--state` (the redb store, every change committed as the server commits it: after
//!   each operation): µs per job, rows and bytes written per job (bytes handed to `write`, from
//!   /proc/self/io), and the file's size.
//!
//! A cost that grows with history shows as a column that grows down the table.
//! `SIM_HISTORY` sets the history sizes (default `1000,10000,100000`); `SIM_HISTORY_STORE=0`
//! measures in memory only.
//! `cargo bench -p encoder-tests --bench sim_history`.

use std::time::{Duration, Instant};

use encoder_sim::cloud::attempts::{Core, EncoderInfo, ResultMsg, Timing};
use encoder_sim::cloud::model::{ENTRANCES, NewCredential, SYSTEM_ID, State};
use encoder_sim::cloud::store::{Saved, Store, discard_changes};
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

const T0: i64 = 1_733_065_200_000;

/// A bridge's end of the core: drained after every job.
struct Sim {
    core: Core,
    rx: UnboundedReceiver<String>,
    user: String,
    now: i64,
    uid: u32,
}

impl Sim {
    fn new() -> Self {
        Self::over(State::seeded(T0))
    }

    fn over(state: State) -> Self {
        let mut core = Core::new(state, Timing::default(), T0);
        let (tx, rx) = unbounded_channel();
        let encoders: Vec<EncoderInfo> =
            serde_json::from_value(json!([{"encoder_id": "enc-1", "display_name": "Front Desk"}]))
                .expect("encoder");
        core.hello(T0, "bridge-1", 1, tx, encoders);
        let user = core
            .state
            .create_user(T0, SYSTEM_ID, Some("History".into()), None, None)
            .expect("user")["acs_user"]["acs_user_id"]
            .as_str()
            .expect("user id")
            .to_owned();
        Self {
            core,
            rx,
            user,
            now: T0,
            uid: 0,
        }
    }

    /// One job; `after` runs after each operation (the server's save).
    fn job(&mut self, after: &mut impl FnMut(&mut Core)) {
        self.now += 5;
        self.uid += 1;
        let now = self.now;
        let credential = self
            .core
            .state
            .create_credential(
                now,
                NewCredential {
                    acs_user_id: self.user.clone(),
                    access_method: "card".into(),
                    allowed_acs_entrance_ids: vec![ENTRANCES[0].0.into()],
                    starts_at: Some("2024-12-01T15:00:00.000Z".into()),
                    ends_at: Some("2024-12-04T12:00:00.000Z".into()),
                    display_name: None,
                },
            )
            .expect("credential")["acs_credential"]["acs_credential_id"]
            .as_str()
            .expect("credential id")
            .to_owned();
        after(&mut self.core);
        let attempt = self
            .core
            .encode_credential(now, "enc-1", &credential)
            .expect("encode")["action_attempt"]["action_attempt_id"]
            .as_str()
            .expect("attempt id")
            .to_owned();
        after(&mut self.core);
        self.core.tick(now);
        self.core.get_attempt(&attempt).expect("get");
        self.core.claim(now + 1, "bridge-1", &attempt);
        after(&mut self.core);
        let result: ResultMsg = serde_json::from_value(json!({
            "type": "result", "action_attempt_id": attempt, "action_type": "ENCODE_CREDENTIAL",
            "status": "success",
            "result": {"card_number": self.uid.to_string(), "card": {"uid": format!("{:08X}", self.uid)}},
        }))
        .expect("result");
        self.core
            .result(now + 2, "bridge-1", &result)
            .expect("result");
        after(&mut self.core);
        self.core.tick(now + 2);
        let got: Value = self.core.get_attempt(&attempt).expect("get");
        assert_eq!(got["action_attempt"]["status"], "success");
        self.core.take_events();
        while self.rx.try_recv().is_ok() {}
    }
}

/// Bytes this process has handed to `write` so far (`wchar` of /proc/self/io).
fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("wchar:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[allow(clippy::cast_precision_loss)] // figures for a person
fn per_job(total: Duration, jobs: u64) -> f64 {
    total.as_secs_f64() * 1e6 / jobs as f64
}

#[allow(clippy::cast_precision_loss)] // figures for a person
fn main() {
    let jobs: u64 = std::env::var("SIM_HISTORY_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let histories: Vec<u64> = std::env::var("SIM_HISTORY")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .filter_map(|h| h.trim().parse().ok())
        .collect();
    println!(
        "cloud simulator, cost of one encode job by history ({jobs} jobs timed; retention {} finished attempts)",
        Timing::default().retain.keep_count
    );
    println!(
        "{:>9} {:>12} {:>12} {:>10} {:>12} {:>10}",
        "history", "memory µs", "--state µs", "rows/job", "bytes/job", "file"
    );
    for &history in &histories {
        // In memory (the changes noted for a store are dropped, as the server does).
        let mut sim = Sim::new();
        let mut discard = |core: &mut Core| discard_changes(&mut core.state);
        for _ in 0..history {
            sim.job(&mut discard);
        }
        let started = Instant::now();
        for _ in 0..jobs {
            sim.job(&mut discard);
        }
        let memory = per_job(started.elapsed(), jobs);

        if std::env::var("SIM_HISTORY_STORE").is_ok_and(|v| v == "0") {
            println!("{history:>9} {memory:>12.1}");
            continue;
        }
        // With the store: the history written in one go, then every change committed.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state");
        let (store, state, _) = Store::open(&path, T0).expect("store");
        let mut sim = Sim::over(state);
        let mut nothing = |_: &mut Core| {};
        for _ in 0..history {
            sim.job(&mut nothing);
        }
        store.save(&mut sim.core.state).expect("save history");
        let mut rows = Saved::default();
        let mut save = |core: &mut Core| {
            let saved = store.save(&mut core.state).expect("save");
            rows.written += saved.written;
            rows.deleted += saved.deleted;
        };
        let bytes_before = written_bytes();
        let started = Instant::now();
        for _ in 0..jobs {
            sim.job(&mut save);
        }
        let stored = per_job(started.elapsed(), jobs);
        let bytes = written_bytes().saturating_sub(bytes_before);
        println!(
            "{history:>9} {memory:>12.1} {stored:>12.1} {:>10.2} {:>12.0} {:>7.1} MB",
            (rows.written + rows.deleted) as f64 / jobs as f64,
            bytes as f64 / jobs as f64,
            store.file_size() as f64 / 1_048_576.0
        );
    }
}
