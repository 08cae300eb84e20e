//! What one job costs the bridge's store as its history grows (issue 18), in-process: the
//! four commits of a job (claimed, writing, done with the result in the outbox, acknowledged)
//! with the retention window of `STORE_HISTORY_RETENTION` (default 10,000) acknowledged
//! attempts. Prints µs per job, the file's size and this process's RSS (the store is all it
//! holds) for every `STORE_HISTORY_STEP` (default
//! 2,000) of `STORE_HISTORY_JOBS` (default 30,000) jobs: the window fills, then the cost must
//! stay where it was. `cargo bench -p encoder-tests --bench store_history`.

use std::time::{Duration, Instant};

use encoder_bridge::store::{Retention, Store, Writing};
use encoder_tests::soak::proc_usage;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[allow(clippy::cast_precision_loss)] // figures for a person
fn main() {
    let jobs = env_or("STORE_HISTORY_JOBS", 30_000);
    let step = env_or("STORE_HISTORY_STEP", 2_000).max(1);
    let keep = env_or("STORE_HISTORY_RETENTION", 10_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with(
        dir.path(),
        Retention {
            keep_for: Duration::from_secs(7 * 24 * 3600),
            keep_at_most: keep,
        },
    )
    .expect("store");
    let offer = r#"{"type":"attempt_available","action_attempt_id":"x","action_type":"ENCODE_CREDENTIAL","encoder_id":"e","credential":{"acs_credential_id":"c","card_number":null,"starts_at":"2024-12-01T15:00:00.000Z","ends_at":"2024-12-04T12:00:00.000Z","is_issued":false,"issue_counter":1,"access_data":"","card_uid":null}}"#;
    let result = r#"{"type":"result","action_attempt_id":"x","action_type":"ENCODE_CREDENTIAL","status":"success","result":{"card_number":"4009613812","card":{"uid":"04A1B2C3"}},"error":null}"#;
    println!("bridge store, one job's four commits, retention {keep} acknowledged attempts");
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>10}",
        "jobs", "µs/job", "remembered", "file", "RSS"
    );
    let mut started = Instant::now();
    for n in 1..=jobs {
        let id = uuid::Uuid::new_v4().to_string();
        store
            .put_claimed(&id, offer, Some("2024-12-01T15:02:00.000Z"))
            .expect("claimed");
        store
            .mark_writing(
                &id,
                Writing {
                    uid: "04A1B2C3".into(),
                    card_number: "4009613812".into(),
                },
            )
            .expect("writing");
        store.finish(&id, result).expect("finish");
        store.acknowledge(&id).expect("acknowledge");
        if n % step == 0 {
            let per_job = started.elapsed().as_secs_f64() * 1e6 / step as f64;
            let rss_kb = proc_usage(std::process::id()).map_or(0, |u| u.0);
            println!(
                "{n:>8} {per_job:>10.1} {:>10} {:>7.1} MB {:>7.1} MB",
                store.acknowledged_count(),
                store.file_size() as f64 / 1_048_576.0,
                rss_kb as f64 / 1024.0
            );
            started = Instant::now();
        }
    }
}
