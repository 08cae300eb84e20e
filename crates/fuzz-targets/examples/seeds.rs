//! Writes the seed corpora of the fuzz targets (`fuzz/corpus/<target>/seed-*`) from real
//! material: the APDU exchanges of an encode, a re-encode and a scan against the simulator's
//! virtual card, the PN532 emulator's reply frames, the messages documented in
//! docs/cloud-protocol.md, the example configuration, and the seed flows' request bodies.
//!
//! `cargo run -p encoder-fuzz-targets --example seeds` (from the repository root). Files found by
//! fuzzing and kept as regression inputs are named otherwise and are left alone.

#![allow(clippy::expect_used, clippy::print_stdout, missing_docs)]

use std::path::{Path, PathBuf};

use encoder_bridge::cloud::message::{ActionType, AttemptAvailable, OfferedCredential};
use encoder_bridge::store::{Phase, StoredAttempt};
use encoder_protocol::format::{self, Credential};
use encoder_protocol::job;
use encoder_protocol::keys::{CardKeys, MasterKey, SiteKeys};
use encoder_protocol::transmit::{Transmit, TransmitError};
use encoder_sim::card::{CardType, VirtualCard};

struct Recording {
    card: VirtualCard,
    log: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Transmit for Recording {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransmitError> {
        let reply = self.card.transmit(command);
        self.log.push((command.to_vec(), reply.clone()));
        Ok(reply)
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = root().join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed file");
}

fn credential(n: u8) -> Credential {
    Credential {
        credential_id: format!("3f1c2a9e-5b7d-4e21-9a0c-1d2e3f4051{n:02x}"),
        card_number: "4009613812".into(),
        starts_at: Some(1_733_065_200),
        ends_at: Some(1_733_324_400),
        issue_counter: u16::from(n),
        access_data: vec![0x01, 0x02, n],
    }
}

/// The JSON texts of a markdown document's `json` code blocks: a block is one message, or one
/// message per line.
fn json_blocks(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("document");
    let mut out = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    for line in text.lines() {
        match (&mut block, line.trim()) {
            (None, "```json") => block = Some(Vec::new()),
            (Some(lines), "```") => {
                let whole = lines.join("\n");
                if serde_json::from_str::<serde_json::Value>(&whole).is_ok() {
                    out.push(whole);
                } else {
                    out.extend(lines.iter().map(|l| (*l).to_owned()));
                }
                block = None;
            }
            (Some(lines), _) => lines.push(line),
            _ => {}
        }
    }
    out
}

#[allow(clippy::too_many_lines)] // one linear script, target by target
fn main() {
    // Encode, re-encode and scan on a 1K card: every reply seeds the APDU parsers.
    let mut rec = Recording {
        card: VirtualCard::new(CardType::Classic1k, Some(&[0xDE, 0xAD, 0xBE, 0xEF])).expect("card"),
        log: Vec::new(),
    };
    let info = encoder_protocol::card::CardInfo::new(
        rec.card.uid().to_vec(),
        Some(rec.card.atr()),
        None,
        None,
    );
    let site = SiteKeys::new(1, MasterKey::new(*b"fuzz-site-key-v1"));
    job::encode(&mut rec, &info, &site, &credential(1)).expect("encode");
    rec.card.insert();
    job::encode(&mut rec, &info, &site, &credential(2)).expect("re-encode");
    rec.card.insert();
    job::scan(&mut rec, &info, &site).expect("scan");
    let mut replies: Vec<Vec<u8>> = rec.log.iter().map(|(_, r)| r.clone()).collect();
    replies.sort();
    replies.dedup();
    for (i, reply) in replies.iter().enumerate().take(12) {
        write("status_apdu", &format!("card-reply-{i:02}"), reply);
    }
    let block = |b: u8| -> Option<Vec<u8>> {
        rec.log.iter().find_map(|(c, r)| {
            (c.as_slice() == [0xFF, 0xB0, 0x00, b, 0x10] && r.len() == 18)
                .then(|| r.get(..16).unwrap_or_default().to_vec())
        })
    };
    let mad = [block(1).expect("block 1"), block(2).expect("block 2")].concat();
    write("mad", "encoded-1k", &mad);
    write("mad", "blank", &[0u8; 32]);
    let trailer0 = block(3).expect("trailer 0");
    write("trailer_access", "directory-as-read", &trailer0);
    write(
        "trailer_access",
        "factory",
        &[
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, 0x80, 0x69, 0xFF, 0xFF, 0xFF, 0xFF,
            0xFF, 0xFF,
        ],
    );
    write(
        "trailer_access",
        "value-block",
        &encoder_protocol::mifare::value::ValueBlock {
            value: 100,
            address: 4,
        }
        .to_block(),
    );

    // A valid record for the classic_record target's keys (UID selector 0: 4 bytes).
    let uid = [0xDE, 0xAD, 0xBE, 0xEF];
    let keys = CardKeys::derive(&MasterKey::new(*b"fuzz-master-key!"), 1, &uid).expect("keys");
    let record = format::encode_record(&credential(3), &keys, 7, &uid, format::body_capacity(2))
        .expect("record")
        .concat();
    write(
        "classic_record",
        "valid",
        &[[0u8].as_slice(), &uid, &record].concat(),
    );
    write(
        "classic_record",
        "empty-slot",
        &[[0u8].as_slice(), &uid, &[0u8; 48]].concat(),
    );

    // Identification: SAK then ATR.
    for (name, card_type) in [
        ("1k", CardType::Classic1k),
        ("4k", CardType::Classic4k),
        ("mini", CardType::Mini),
        ("ultralight", CardType::Ultralight),
        ("desfire", CardType::Desfire),
    ] {
        let card = VirtualCard::new(card_type, None).expect("card");
        write(
            "card_identify",
            name,
            &[[card.sak()].as_slice(), &card.atr()].concat(),
        );
    }
    // InListPassiveTarget replies of the PN532 emulator's cards (NbTg Tg ATQA SAK len UID [ATS]).
    write(
        "card_identify",
        "list-1k",
        &[0x01, 0x01, 0x00, 0x04, 0x08, 0x04, 0xDE, 0xAD, 0xBE, 0xEF],
    );
    let mut desfire = vec![
        0x01, 0x01, 0x03, 0x44, 0x20, 0x07, 0x04, 0x51, 0x22, 0x33, 0x44, 0x55, 0x66,
    ];
    desfire.extend_from_slice(&encoder_sim::card::DESFIRE_ATS);
    write("card_identify", "list-desfire", &desfire);

    // PN532: the emulator's frames, as a stream and as the link's transmissions.
    let ack = encoder_hal::pn532::frame::ACK;
    let replies: [&[u8]; 5] = [
        &[0xD5, 0x03, 0x32, 0x01, 0x06, 0x07],
        &[0xD5, 0x33],
        &[
            0xD5, 0x4B, 0x01, 0x01, 0x00, 0x04, 0x08, 0x04, 0xDE, 0xAD, 0xBE, 0xEF,
        ],
        &[
            0xD5, 0x41, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        ],
        &[0xD5, 0x53, 0x00],
    ];
    let mut stream = vec![7u8];
    let mut line = vec![8u8];
    for body in replies {
        let frame = encoder_sim::pn532::frame::reply_frame(body);
        stream.extend_from_slice(&ack);
        stream.extend_from_slice(&frame);
        line.push(u8::try_from(ack.len()).expect("len"));
        line.extend_from_slice(&ack);
        line.push(u8::try_from(frame.len()).expect("len"));
        line.extend_from_slice(&frame);
    }
    write("pn532_frame", "session", &stream);
    write("pn532_reply", "session", &line);

    // The documented cloud messages (both directions: both parsers must refuse the other's).
    for (i, text) in json_blocks(&root().join("docs/cloud-protocol.md"))
        .iter()
        .enumerate()
    {
        write("cloud_message", &format!("doc-{i:02}"), text.as_bytes());
        let n = u16::try_from(text.len()).expect("len");
        write(
            "sim_ws",
            &format!("doc-{i:02}"),
            &[&n.to_be_bytes(), text.as_bytes()].concat(),
        );
    }
    let config = std::fs::read(root().join("examples/encoder-bridge.toml")).expect("example");
    write("config", "example", &config);
    write("config", "site-key", b"000102030405060708090a0b0c0d0e0f\n");

    // A stored attempt in the writing phase, and a stored result.
    let offer = AttemptAvailable {
        action_attempt_id: "11111111-2222-3333-4444-555555555555".into(),
        action_type: ActionType::Encode,
        encoder_id: "5a1d6f0e-2c7b-4f57-9a36-0f3b8d9e2c11".into(),
        created_at: Some("2024-12-01T15:00:00.000Z".into()),
        expires_at: Some("2024-12-01T15:02:00.000Z".into()),
        credential: Some(OfferedCredential {
            acs_credential_id: "66666666-6666-6666-6666-666666666666".into(),
            card_number: Some("4009613812".into()),
            starts_at: Some("2024-12-01T15:00:00Z".into()),
            ends_at: None,
            is_issued: false,
            issue_counter: 0,
            access_data: "AQID".into(),
            card_uid: None,
        }),
    };
    let stored = StoredAttempt {
        offer: serde_json::value::to_raw_value(&offer).expect("json"),
        phase: Phase::Writing,
        deadline: Some("2024-12-01T15:01:00.000Z".into()),
        writing: Some(encoder_bridge::store::Writing {
            uid: "DEADBEEF".into(),
            card_number: "4009613812".into(),
        }),
        updated_at: 1_733_065_200,
    };
    write(
        "store_record",
        "attempt",
        &serde_json::to_vec(&stored).expect("json"),
    );
    let result = json_blocks(&root().join("docs/cloud-protocol.md"))
        .into_iter()
        .find(|t| t.contains("\"result\"") && t.contains("success"))
        .expect("a documented result");
    write("store_record", "result", result.as_bytes());

    // The seed flows' requests: create a user and a credential, encode, scan, look.
    let system = encoder_sim::cloud::model::SYSTEM_ID;
    let requests: [(u8, String); 6] = [
        (
            2,
            format!(
                r#"{{"acs_system_id": "{system}", "full_name": "Jane Doe", "email_address": "jane@example.com"}}"#
            ),
        ),
        (0, String::new()),
        (7, format!(r#"{{"acs_system_id": "{system}"}}"#)),
        (
            3,
            r#"{"acs_user_id": "x", "access_method": "card", "starts_at": "2024-12-01T15:00:00Z"}"#
                .into(),
        ),
        (
            9,
            r#"{"acs_encoder_id": "x", "acs_credential_id": "y"}"#.into(),
        ),
        (11, r#"{"action_attempt_id": "x"}"#.into()),
    ];
    let mut http = Vec::new();
    for (path, body) in &requests {
        http.push(*path);
        http.push(u8::try_from(body.len()).expect("short body"));
        http.extend_from_slice(body.as_bytes());
    }
    write("sim_http", "flow", &http);

    // Whole jobs: flags (bit 0: two key versions, bit 1: encoded earlier), card kind, no
    // changes, then credential choices; no reply bytes, so every reply is honest.
    // The DESFire card: an application and a backup file made without keys, then EV2First
    // (answered AF) and a wrong second step; GetVersion in three frames, wrapped.
    write(
        "desfire_card",
        "create-select-file-auth",
        &[0x09, 0xFF, 0xFE, 0xFD, 0xFC, 33, 0xAF],
    );
    write(
        "desfire_card",
        "get-version",
        &[0x08, 0x01, 0x60, 0x01, 0xAF, 0x01, 0xAF],
    );
    write(
        "desfire_card",
        "torn-create",
        &[0x05, 0x00, 0xFF, 0xFF, 0xFE, 0xFD],
    );
    write("whole_job", "blank-1k", &[0x00, 0x00, 0x00, 0, 3, 0, 3]);
    write(
        "whole_job",
        "reencode-v1-card",
        &[0x03, 0x00, 0x00, 0, 3, 0, 3, 0, 3],
    );
    write(
        "whole_job",
        "7-byte-uid-4k",
        &[0x01, 0x45, 0x00, 1, 8, 1, 8],
    );
    write("whole_job", "desfire", &[0x00, 0x07, 0x00]);
    // A foreign directory: sectors 1-4 taken, the rest free.
    let mut foreign = vec![0x00, 0x00, 0x01, 0x00];
    foreign.extend_from_slice(&[3, 3, 4, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    foreign.extend_from_slice(&[0, 3, 0, 3]);
    write("whole_job", "foreign-directory", &foreign);
    // The PN532 backend over the emulator: card kind, chunk size, credential; then line
    // actions (none: every frame honest), or some noise.
    write("pn532_session", "honest-1k", &[0x00, 16, 0, 3]);
    write("pn532_session", "honest-4k-7-byte-uid", &[0x82, 5, 0, 8]);
    write(
        "pn532_session",
        "noisy",
        &[
            0x00, 3, 0, 3, 0, 0, 200, 0, 212, 5, 0x40, 0, 236, 0, 242, 0, 224, 2, 0x00, 0xFF,
        ],
    );
    println!(
        "seeds written under {}",
        root().join("fuzz/corpus").display()
    );
}
