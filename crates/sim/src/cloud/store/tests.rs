//! The store against its contract: a restart keeps everything, a save writes the changed rows
//! alone, damage is reported and never a panic, a JSON state file is imported once.

use serde_json::{Value, json};
use tokio::sync::mpsc::unbounded_channel;

use super::*;
use crate::cloud::attempts::{Core, EncoderInfo, ResultMsg, Timing};
use crate::cloud::model::{ENTRANCES, NewCredential, Retain, SYSTEM_ID};

const T0: Millis = 1_733_065_200_000; // 2024-12-01T15:00:00Z

fn new_credential(user: &str) -> NewCredential {
    NewCredential {
        acs_user_id: user.to_owned(),
        access_method: "card".into(),
        allowed_acs_entrance_ids: vec![ENTRANCES[0].0.into()],
        starts_at: Some("2024-12-01T15:00:00.000Z".into()),
        ends_at: Some("2024-12-04T12:00:00.000Z".into()),
        display_name: None,
    }
}

fn user(state: &mut State, now: Millis) -> String {
    state
        .create_user(now, SYSTEM_ID, Some("Jane Doe".into()), None, None)
        .unwrap()["acs_user"]["acs_user_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn credential(state: &mut State, now: Millis, user: &str) -> String {
    state.create_credential(now, new_credential(user)).unwrap()["acs_credential"]
        ["acs_credential_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn as_json(state: &State) -> Value {
    serde_json::to_value(state).unwrap()
}

/// One encode through the core: the attempt, the claim and the bridge's success.
fn encode(core: &mut Core, now: Millis, credential: &str, uid: &str) -> String {
    let attempt = core.encode_credential(now, "enc-1", credential).unwrap()["action_attempt"]
        ["action_attempt_id"]
        .as_str()
        .unwrap()
        .to_owned();
    core.claim(now + 1, "bridge-1", &attempt);
    let result: ResultMsg = serde_json::from_value(json!({
        "type": "result", "action_attempt_id": attempt, "action_type": "ENCODE_CREDENTIAL",
        "status": "success", "result": {"card_number": "123", "card": {"uid": uid}},
    }))
    .unwrap();
    core.result(now + 2, "bridge-1", &result).unwrap();
    attempt
}

#[test]
fn a_restart_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let (store, state, opened) = Store::open(&path, T0).unwrap();
    assert!(opened.damaged.is_empty() && opened.imported_from.is_none());
    assert_eq!(state.entrances.len(), ENTRANCES.len());
    let timing = Timing {
        retain: Retain {
            keep_ms: 3_600_000,
            keep_count: 3,
        },
        ..Timing::default()
    };
    let mut core = Core::new(state, timing, T0);
    let (tx, _rx) = unbounded_channel();
    let encoders: Vec<EncoderInfo> =
        serde_json::from_value(json!([{"encoder_id": "enc-1", "display_name": "Front Desk"}]))
            .unwrap();
    core.hello(T0, "bridge-1", 1, tx, encoders);
    store.save(&mut core.state).unwrap();
    let jane = user(&mut core.state, T0 + 10);
    let mut now = T0 + 100;
    for n in 0..8 {
        let id = credential(&mut core.state, now, &jane);
        encode(&mut core, now, &id, &format!("04A1B2{n:02X}"));
        store.save(&mut core.state).unwrap();
        now += 1000;
    }
    // A window change after the encode (needs a re-encode), a pending attempt, one that
    // expires, and the window's pruning (3 finished attempts kept).
    let id = core.state.credentials[0].acs_credential_id.clone();
    core.state
        .update_credential(now, &id, None, Some(Some("2024-12-05T12:00:00Z".into())))
        .unwrap();
    core.encode_credential(now, "enc-1", &id).unwrap();
    let expiring = credential(&mut core.state, now, &jane);
    core.encode_credential(now - 200_000, "enc-1", &expiring)
        .unwrap();
    core.tick(now);
    // The next pass of the window (the first ran before the expiry).
    core.tick(now + 10_000);
    store.save(&mut core.state).unwrap();
    core.encoder_status("bridge-1", "enc-1", Some(true), Some(true));
    store.save(&mut core.state).unwrap();
    assert_eq!(
        core.state
            .attempts
            .iter()
            .filter(|a| a.status != crate::cloud::model::Status::Pending)
            .count(),
        3,
        "the window was applied"
    );
    let before = as_json(&core.state);
    drop(store);

    let (_store, back, opened) = Store::open(&path, now + 5).unwrap();
    assert!(opened.damaged.is_empty());
    assert_eq!(as_json(&back), before);
    // The indexes are rebuilt: ids are found again.
    let attempt = core.state.attempts[0].action_attempt_id.clone();
    assert!(back.attempt(&attempt).is_ok());
    assert!(back.credential(&expiring).is_ok());
}

#[test]
fn a_save_writes_the_changed_rows_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let (store, mut state, _) = Store::open(&path, T0).unwrap();
    let jane = user(&mut state, T0);
    let mut last = String::new();
    for n in 0..2_000 {
        last = credential(&mut state, T0 + n, &jane);
    }
    let first = store.save(&mut state).unwrap();
    assert_eq!(first.written, 2_001, "the user and every credential, once");
    assert_eq!(store.save(&mut state).unwrap(), Saved::default());
    // One change to one of 2,000 credentials writes one row, whatever the history.
    state
        .update_credential(T0 + 5_000, &last, None, Some(None))
        .unwrap();
    assert_eq!(
        store.save(&mut state).unwrap(),
        Saved {
            written: 1,
            deleted: 0
        }
    );
    // Pruning deletes the rows it dropped, and only those.
    let mut core = Core::new(state, Timing::default(), T0);
    let (tx, _rx) = unbounded_channel();
    let encoders: Vec<EncoderInfo> =
        serde_json::from_value(json!([{"encoder_id": "enc-1"}])).unwrap();
    core.hello(T0, "bridge-1", 1, tx, encoders);
    let hello = store.save(&mut core.state).unwrap();
    assert_eq!(
        hello.written, 2,
        "the encoder and its acs_encoder.added event"
    );
    let id = core.state.credentials[7].acs_credential_id.clone();
    encode(&mut core, T0 + 6_000, &id, "04A1B2C3");
    assert_eq!(
        store.save(&mut core.state).unwrap(),
        Saved {
            written: 3,
            deleted: 0
        },
        "the attempt, the credential and its acs_credential.issued event"
    );
    let dropped = core.state.prune(
        T0 + 10_000_000,
        Retain {
            keep_ms: 1,
            keep_count: 10,
        },
    );
    assert!(dropped);
    assert_eq!(
        store.save(&mut core.state).unwrap(),
        Saved {
            written: 0,
            deleted: 3
        },
        "the attempt and both events"
    );
}

#[test]
fn a_file_that_is_not_a_store_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    std::fs::write(&path, b"not a store at all, just some bytes").unwrap();
    let err = Store::open(&path, T0).unwrap_err();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("cannot be opened"), "{err}");

    // A real store cut short.
    let path = dir.path().join("cut");
    {
        let (store, mut state, _) = Store::open(&path, T0).unwrap();
        let jane = user(&mut state, T0);
        for n in 0..500 {
            credential(&mut state, T0 + n, &jane);
        }
        store.save(&mut state).unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    let err = Store::open(&path, T0).unwrap_err();
    assert!(err.contains("cannot be opened"), "{err}");

    // A JSON file that is not a state.
    let path = dir.path().join("json");
    std::fs::write(&path, b"{\"users\": 7").unwrap();
    let err = Store::open(&path, T0).unwrap_err();
    assert!(err.contains("not a valid state"), "{err}");
    assert!(path.exists() && !beside(&path, ".json-v0").exists());
}

#[test]
fn a_damaged_row_is_reported_with_its_key_and_the_rest_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    {
        let (store, mut state, _) = Store::open(&path, T0).unwrap();
        let jane = user(&mut state, T0);
        credential(&mut state, T0, &jane);
        credential(&mut state, T0, &jane);
        store.save(&mut state).unwrap();
        store
            .write(|txn| {
                txn.open_table(CREDENTIALS)?
                    .insert(0, b"{\"acs_credential_id\": 3".as_slice())?;
                Ok(())
            })
            .unwrap();
    }
    let (_store, state, opened) = Store::open(&path, T0).unwrap();
    assert_eq!(opened.damaged.len(), 1);
    let damaged = &opened.damaged[0];
    assert_eq!((damaged.table, damaged.key), ("credentials", 0));
    assert!(damaged.to_string().contains("credentials/0"), "{damaged}");
    assert_eq!(state.credentials.len(), 1);
    assert_eq!(state.users.len(), 1);
}

#[test]
fn a_store_of_a_newer_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    {
        let (store, _, _) = Store::open(&path, T0).unwrap();
        store
            .write(|txn| {
                txn.open_table(META)?.insert("schema", "99")?;
                Ok(())
            })
            .unwrap();
    }
    let err = Store::open(&path, T0).unwrap_err();
    assert!(err.contains("newer encoder-sim"), "{err}");
}

#[test]
fn a_json_state_file_is_imported_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut legacy = State::seeded(T0);
    let jane = user(&mut legacy, T0 + 1);
    let cred = credential(&mut legacy, T0 + 2, &jane);
    std::fs::write(&path, serde_json::to_vec_pretty(&legacy).unwrap()).unwrap();
    // A leftover of an import that crashed is started over.
    std::fs::write(beside(&path, ".import"), b"half").unwrap();

    let (store, state, opened) = Store::open(&path, T0 + 9).unwrap();
    let kept = opened.imported_from.expect("imported");
    assert_eq!(kept, beside(&path, ".json-v0"));
    assert!(kept.exists() && !beside(&path, ".import").exists());
    assert_eq!(as_json(&state), as_json(&legacy));
    assert!(state.credential(&cred).is_ok());
    drop(store);
    assert!(std::fs::read(&path).unwrap().starts_with(REDB_MAGIC));

    let (_store, again, opened) = Store::open(&path, T0 + 10).unwrap();
    assert!(opened.imported_from.is_none());
    assert_eq!(as_json(&again), as_json(&legacy));
}
