//! The card format's vectors file, tests/vectors/card-format.json (docs/card-format.md §8):
//! site keys and versions, derived keys of 4-, 7- and 10-byte UIDs, MAD blocks, records (v2
//! and v1, BCD and UTF-8 card numbers), whole-card images (1K, 4K, Mini) made by the encode
//! job on the independent virtual card, and negative vectors with their verdicts.
//!
//! Both directions: `vectors_file_is_what_the_code_makes` rebuilds every vector from its
//! inputs (keys, records, and images by running the encode job) and compares with the file;
//! `vectors_decode_to_their_expected_verdicts` reads the file alone and decodes every record
//! and image. `macs_and_keys_cross_checked_in_python` runs `tests/vectors/check_vectors.py`, an
//! implementation of the document in Python with the `cryptography` package's AES-CMAC,
//! written from the document, not from this code.
//!
//! `UPDATE_VECTORS=1 cargo nextest run -p encoder-tests --test card_vectors` rewrites the file.

// Vector tables read best as literal lists.
#![allow(
    clippy::type_complexity,
    clippy::too_many_lines,
    clippy::cloned_ref_to_slice_refs
)]

use encoder_protocol::card_image::{self, ImageState};
use encoder_protocol::format::{self, Credential, FormatError, v1, v2};
use encoder_protocol::hex;
use encoder_protocol::job::{directory_trailer, encode, our_trailer};
use encoder_protocol::keys::{CardKeys, MasterKey, SiteKeys};
use encoder_protocol::mifare::mad::{Aid, Mad1};
use encoder_sim::card::CardType;
use encoder_tests::jobs::InProcessCard;
use serde_json::{Value, json};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/card-format.json");
const UID4: &str = "DEADBEEF";
const UID7: &str = "04782E21801D80";
const UID10: &str = "04112233445566778899";

fn sites() -> Vec<(&'static str, u8, Vec<(u8, &'static str)>)> {
    vec![
        (
            "site-a",
            2,
            vec![
                (1, "000102030405060708090A0B0C0D0E0F"),
                (2, "F0E1D2C3B4A5968778695A4B3C2D1E0F"),
            ],
        ),
        ("site-b", 1, vec![(1, "6F746865722D736974652D6D61737465")]),
    ]
}

fn site(name: &str) -> SiteKeys {
    let (_, current, keys) = sites()
        .into_iter()
        .find(|(n, _, _)| *n == name)
        .expect("site");
    let master = |hex: &str| MasterKey::from_hex(hex).expect("master key");
    let (_, cur_hex) = keys.iter().find(|(v, _)| *v == current).expect("current");
    let mut site = SiteKeys::new(current, master(cur_hex));
    for (v, hex) in keys.iter().filter(|(v, _)| *v != current) {
        site = site.with_key(*v, master(hex)).expect("site keys");
    }
    site
}

fn uid(text: &str) -> Vec<u8> {
    hex::decode(text).expect("uid hex")
}

fn keys(site_name: &str, version: u8, uid_hex: &str) -> CardKeys {
    site(site_name)
        .card_keys(version, &uid(uid_hex))
        .expect("card keys")
}

fn credential_json(c: &Credential) -> Value {
    json!({
        "credential_id": c.credential_id,
        "card_number": c.card_number,
        "starts_at": c.starts_at,
        "ends_at": c.ends_at,
        "issue_counter": c.issue_counter,
        "access_data": hex::encode(&c.access_data),
    })
}

fn credential_from(v: &Value) -> Credential {
    Credential {
        credential_id: v["credential_id"].as_str().expect("id").into(),
        card_number: v["card_number"].as_str().expect("number").into(),
        starts_at: v["starts_at"].as_i64(),
        ends_at: v["ends_at"].as_i64(),
        issue_counter: u16::try_from(v["issue_counter"].as_u64().expect("counter")).expect("u16"),
        access_data: hex::decode(v["access_data"].as_str().expect("access")).expect("hex"),
    }
}

fn realistic() -> Credential {
    Credential {
        credential_id: "9b2f6c1e-7a4d-4f0b-8c35-2e91d7a40f6b".into(),
        card_number: "4009613812".into(),
        starts_at: Some(1_733_065_200),
        ends_at: Some(1_733_670_000),
        issue_counter: 1,
        access_data: vec![0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88],
    }
}

fn next() -> Credential {
    Credential {
        credential_id: "0e8a5d3c-14b7-4c62-9f0e-6a3b2c1d9e87".into(),
        card_number: "4009613813".into(),
        starts_at: Some(1_733_670_000),
        ends_at: Some(1_734_274_800),
        issue_counter: 2,
        access_data: vec![0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7],
    }
}

fn small() -> Credential {
    Credential {
        credential_id: "3f1c2a9e-5b7d-4e21-9a0c-1d2e3f405162".into(),
        card_number: "1234".into(),
        starts_at: Some(1_700_000_040),
        ends_at: Some(1_700_086_440),
        issue_counter: 1,
        access_data: vec![0x01, 0x02],
    }
}

fn utf8() -> Credential {
    Credential {
        credential_id: "c0ffee00-1234-4abc-8def-0123456789ab".into(),
        card_number: "GUEST-0815-Zi".into(),
        starts_at: None,
        ends_at: Some(1_767_225_600),
        issue_counter: 255,
        access_data: vec![],
    }
}

fn empty_number() -> Credential {
    Credential {
        credential_id: "00000000-0000-4000-8000-000000000001".into(),
        card_number: String::new(),
        starts_at: None,
        ends_at: None,
        issue_counter: 0,
        access_data: vec![0xFF],
    }
}

fn long_access() -> Credential {
    Credential {
        credential_id: "9b2f6c1e-7a4d-4f0b-8c35-2e91d7a40f6b".into(),
        card_number: "00004009613812".into(),
        starts_at: Some(1_733_065_200),
        ends_at: Some(1_733_670_000),
        issue_counter: 3,
        access_data: (0u8..32).collect(),
    }
}

fn blocks_hex(blocks: &[[u8; 16]]) -> String {
    hex::encode(&blocks.concat())
}

fn record_vector(
    name: &str,
    site_name: &str,
    version: u8,
    uid_hex: &str,
    sequence: u8,
    format_version: u8,
    c: &Credential,
) -> Value {
    let k = keys(site_name, version, uid_hex);
    let blocks = if format_version == 1 {
        v1::encode(c, &k, sequence, &uid(uid_hex)).expect("v1 record")
    } else {
        format::encode_record(c, &k, sequence, &uid(uid_hex), format::body_capacity(2))
            .expect("v2 record")
    };
    let decoded = format::decode_record(&blocks.concat(), &uid(uid_hex), &k).expect("decodes");
    json!({
        "name": name,
        "site": site_name,
        "key_version": version,
        "uid": uid_hex,
        "format_version": format_version,
        "sequence": sequence,
        "credential": credential_json(c),
        "record": blocks_hex(&blocks),
        "decoded": credential_json(&decoded.credential),
    })
}

fn negative(
    name: &str,
    site_name: &str,
    version: u8,
    uid_hex: &str,
    record: &[u8],
    verdict: &str,
) -> Value {
    json!({
        "name": name,
        "site": site_name,
        "key_version": version,
        "uid": uid_hex,
        "record": hex::encode(record),
        "verdict": verdict,
    })
}

fn negatives() -> Vec<Value> {
    let k2 = keys("site-a", 2, UID7);
    let good = format::encode_record(&realistic(), &k2, 1, &uid(UID7), format::body_capacity(1))
        .expect("record")
        .concat();
    let mut out = Vec::new();
    let mut changed = good.clone();
    changed[20] ^= 0x01;
    out.push(negative(
        "changed_byte",
        "site-a",
        2,
        UID7,
        &changed,
        "mac_mismatch",
    ));
    let mut changed = good.clone();
    changed[1] ^= 0x01;
    out.push(negative(
        "changed_sequence",
        "site-a",
        2,
        UID7,
        &changed,
        "mac_mismatch",
    ));
    out.push(negative(
        "moved_to_another_uid",
        "site-a",
        2,
        "04782E21801D81",
        &good,
        "mac_mismatch",
    ));
    out.push(negative(
        "wrong_key_version",
        "site-a",
        1,
        UID7,
        &good,
        "mac_mismatch",
    ));
    out.push(negative(
        "other_site",
        "site-b",
        1,
        UID7,
        &good,
        "mac_mismatch",
    ));
    // v1: a header key version other than the keys' (MAC made with the keys' MAC key).
    let master1 = MasterKey::from_hex("000102030405060708090A0B0C0D0E0F").expect("key");
    let odd = CardKeys::derive(&master1, 2, &uid(UID7)).expect("keys");
    let v1_odd = v1::encode(&small(), &odd, 1, &uid(UID7))
        .expect("v1")
        .concat();
    out.push(negative(
        "v1_key_version_in_header_differs",
        "site-a",
        1,
        UID7,
        &v1_odd,
        "key_version_mismatch",
    ));
    // A BCD nibble above 9 under a valid MAC (made with the key, as only a writer could).
    let mut bad_bcd = good.clone();
    bad_bcd[35] = 0x4A;
    v2::seal(&mut bad_bcd, &k2, &uid(UID7)).expect("seal");
    out.push(negative(
        "bad_bcd_nibble",
        "site-a",
        2,
        UID7,
        &bad_bcd,
        "bad_card_number",
    ));
    let mut bad_pad = format::encode_record(&small(), &k2, 1, &uid(UID7), 35)
        .expect("r")
        .concat();
    bad_pad[2] = 0x83; // 3 digits: "123" with pad nibble 4 instead of F
    v2::seal(&mut bad_pad, &k2, &uid(UID7)).expect("seal");
    out.push(negative(
        "bad_bcd_pad",
        "site-a",
        2,
        UID7,
        &bad_pad,
        "bad_card_number",
    ));
    let mut bcd_zero = good.clone();
    bcd_zero[2] = 0x80;
    out.push(negative(
        "bcd_of_zero_digits",
        "site-a",
        2,
        UID7,
        &bcd_zero,
        "bad_length",
    ));
    let mut unknown = good.clone();
    unknown[0] = 0x03;
    out.push(negative(
        "unknown_version",
        "site-a",
        2,
        UID7,
        &unknown,
        "unknown_format_version",
    ));
    let mut zero_version = good;
    zero_version[0] = 0x00;
    out.push(negative(
        "version_00_not_empty",
        "site-a",
        2,
        UID7,
        &zero_version,
        "unknown_format_version",
    ));
    out.push(negative("empty", "site-a", 2, UID7, &[0; 48], "empty"));
    out
}

fn card_type(name: &str) -> CardType {
    match name {
        "1k" => CardType::Classic1k,
        "4k" => CardType::Classic4k,
        "mini" => CardType::Mini,
        other => panic!("card {other}"),
    }
}

/// Runs the encode job for each credential in turn on a blank virtual card.
fn encoded_image(card: &str, site_name: &str, uid_hex: &str, steps: &[Credential]) -> Vec<u8> {
    let mut c = InProcessCard::new(card_type(card), &uid(uid_hex));
    let site = site(site_name);
    for step in steps {
        c.insert();
        let info = c.info();
        encode(&mut c, &info, &site, step).expect("encode");
    }
    c.image()
}

fn expect_json(image: &[u8], site_name: &str) -> Value {
    let r = card_image::decode(image, None, &site(site_name)).expect("image");
    let mut v = json!({ "state": r.state.name() });
    if let Some(c) = &r.credential {
        v["slot"] = json!(if r.slot == Some(0) { "A" } else { "B" });
        v["format_version"] = json!(c.format_version);
        v["key_version"] = json!(c.key_version);
        v["sequence"] = json!(c.sequence);
        v["credential"] = credential_json(&c.credential);
    }
    v
}

fn image_vector(
    name: &str,
    card: &str,
    site_name: &str,
    uid_hex: &str,
    steps: &[Credential],
    change: Option<(&str, &dyn Fn(&mut Vec<u8>))>,
) -> Value {
    image_vector_for(name, card, site_name, site_name, uid_hex, steps, change)
}

#[allow(clippy::too_many_arguments)]
fn image_vector_for(
    name: &str,
    card: &str,
    site_name: &str,
    decode_with: &str,
    uid_hex: &str,
    steps: &[Credential],
    change: Option<(&str, &dyn Fn(&mut Vec<u8>))>,
) -> Value {
    let mut image = encoded_image(card, site_name, uid_hex, steps);
    let mut v = json!({
        "name": name,
        "card": card,
        "encoded_by": site_name,
        "decode_with": decode_with,
        "uid": uid_hex,
        "encoded": steps.iter().map(credential_json).collect::<Vec<_>>(),
    });
    if let Some((what, f)) = change {
        f(&mut image);
        v["change"] = json!(what);
    }
    v["expect"] = expect_json(&image, decode_with);
    v["image"] = json!(hex::encode(&image));
    v
}

fn put(image: &mut [u8], block: usize, bytes: &[u8]) {
    image[block * 16..block * 16 + bytes.len()].copy_from_slice(bytes);
}

fn images() -> Vec<Value> {
    let r = realistic();
    let n = next();
    let flip =
        |block: usize, offset: usize| move |image: &mut Vec<u8>| image[block * 16 + offset] ^= 0x01;
    let v1_slot_a = |image: &mut Vec<u8>| {
        let k = keys("site-a", 2, UID4);
        let blocks = v1::encode(&small(), &k, 7, &uid(UID4)).expect("v1");
        for (i, b) in blocks.iter().enumerate() {
            put(image, 4 + i, b);
        }
    };
    let unknown_a = |image: &mut Vec<u8>| {
        for b in [4, 5, 6] {
            put(image, b, &[0; 16]);
        }
        put(image, 4, &[0x03, 0x01]);
    };
    let zero_records = |image: &mut Vec<u8>| {
        for b in [4, 5, 6, 12, 13, 14] {
            put(image, b, &[0; 16]);
        }
    };
    vec![
        image_vector("1k_encoded", "1k", "site-a", UID4, &[r.clone()], None),
        image_vector(
            "1k_reencoded",
            "1k",
            "site-a",
            UID4,
            &[r.clone(), n.clone()],
            None,
        ),
        image_vector("4k_encoded", "4k", "site-a", UID7, &[r.clone()], None),
        image_vector("mini_encoded", "mini", "site-a", UID4, &[r.clone()], None),
        image_vector(
            "1k_two_sector_record",
            "1k",
            "site-a",
            UID7,
            &[long_access()],
            None,
        ),
        image_vector("1k_blank", "1k", "site-a", UID4, &[], None),
        image_vector_for(
            "1k_other_sites_card",
            "1k",
            "site-b",
            "site-a",
            UID4,
            &[r.clone()],
            None,
        ),
        image_vector(
            "1k_v1_record_in_slot_a",
            "1k",
            "site-a",
            UID4,
            &[r.clone()],
            Some(("slot A replaced by a v1 record, sequence 7", &v1_slot_a)),
        ),
        image_vector(
            "1k_newest_slot_damaged",
            "1k",
            "site-a",
            UID4,
            &[r.clone(), n.clone()],
            Some(("slot B record block 1 byte 0 flipped", &flip(13, 0))),
        ),
        image_vector(
            "1k_both_slots_damaged",
            "1k",
            "site-a",
            UID4,
            &[r.clone(), n.clone()],
            Some(("slot A and B record bytes flipped", &|image: &mut Vec<
                u8,
            >| {
                image[5 * 16] ^= 1;
                image[13 * 16] ^= 1;
            })),
        ),
        image_vector(
            "1k_unknown_version_beside_empty",
            "1k",
            "site-a",
            UID4,
            &[r.clone()],
            Some(("slot A header 03 01 00..", &unknown_a)),
        ),
        image_vector(
            "1k_formatted_no_record",
            "1k",
            "site-a",
            UID4,
            &[r],
            Some(("both records zeroed", &zero_records)),
        ),
    ]
}

fn build() -> Value {
    let site_json: Vec<Value> = sites()
        .into_iter()
        .map(|(name, current, keys)| {
            json!({
                "name": name,
                "current_version": current,
                "master_keys": keys.iter().map(|(v, k)| json!({"version": v, "key": k})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut key_vectors = Vec::new();
    for uid_hex in [UID4, UID7, UID10] {
        for version in [1u8, 2] {
            let k = keys("site-a", version, uid_hex);
            key_vectors.push(json!({
                "site": "site-a",
                "key_version": version,
                "uid": uid_hex,
                "m_key_a": format!("{uid_hex}01656E636F6465722D627269646765"),
                "key_a": hex::encode(&k.key_a().to_bytes()),
                "key_b": hex::encode(&k.key_b().to_bytes()),
                "mac_key": hex::encode(&k.mac_key().to_bytes()),
                "sector_trailer": hex::encode(&our_trailer(&k).to_block()),
                "directory_trailer": hex::encode(&directory_trailer(&k).to_block()),
            }));
        }
    }
    let mad = |name: &str, info: u8, aids: &[(u8, Aid)]| {
        let mut m = Mad1::empty();
        m.info = info;
        for (s, a) in aids {
            m.set(*s, *a);
        }
        json!({
            "name": name,
            "info": info,
            "aids": m.aids.iter().map(|a| format!("{:04X}", a.0)).collect::<Vec<_>>(),
            "blocks": hex::encode(&m.to_bytes()),
        })
    };
    let ours: Vec<(u8, Aid)> = (1..=4).map(|s| (s, format::APP_AID)).collect();
    let mini: Vec<(u8, Aid)> = (1..=4)
        .map(|s| (s, format::APP_AID))
        .chain((5..=15).map(|s| (s, Aid::NOT_APPLICABLE)))
        .collect();
    let ndef: Vec<(u8, Aid)> = (1..=15).map(|s| (s, Aid::NDEF)).collect();
    let mixed: Vec<(u8, Aid)> = vec![
        (1, Aid::NDEF),
        (2, format::APP_AID),
        (3, format::APP_AID),
        (4, format::APP_AID),
        (5, format::APP_AID),
    ];
    let records = vec![
        record_vector(
            "v2_realistic_7byte_uid",
            "site-a",
            2,
            UID7,
            1,
            2,
            &realistic(),
        ),
        record_vector(
            "v2_realistic_4byte_uid_key_version_1",
            "site-a",
            1,
            UID4,
            2,
            2,
            &realistic(),
        ),
        record_vector(
            "v2_small_bcd_4_digits",
            "site-a",
            2,
            UID4,
            0xFF,
            2,
            &small(),
        ),
        record_vector(
            "v2_utf8_number_10byte_uid",
            "site-a",
            2,
            UID10,
            0x80,
            2,
            &utf8(),
        ),
        record_vector(
            "v2_empty_number_no_times",
            "site-b",
            1,
            UID7,
            9,
            2,
            &empty_number(),
        ),
        record_vector(
            "v2_two_sectors_14_digits_32_access",
            "site-a",
            2,
            UID7,
            3,
            2,
            &long_access(),
        ),
        record_vector(
            "v2_doc_section_8_realistic",
            "site-a",
            1,
            UID7,
            1,
            2,
            &realistic(),
        ),
        record_vector("v2_doc_section_8_small", "site-a", 1, UID7, 1, 2, &small()),
        record_vector(
            "v1_realistic_7byte_uid",
            "site-a",
            1,
            UID7,
            1,
            1,
            &realistic(),
        ),
        record_vector(
            "v1_small_doc_section_8",
            "site-a",
            1,
            UID7,
            1,
            1,
            &Credential {
                starts_at: Some(1_700_000_000),
                ends_at: Some(1_700_086_400),
                ..small()
            },
        ),
    ];
    let mut rounding = realistic();
    rounding.starts_at = Some(1_733_065_201);
    rounding.ends_at = Some(1_733_670_059);
    let rounding_vector = record_vector(
        "v2_times_rounded_inwards",
        "site-a",
        2,
        UID7,
        4,
        2,
        &rounding,
    );
    json!({
        "description": "Vectors of the encoder-bridge MIFARE Classic credential format (docs/card-format.md). Hex is upper case; times are unix seconds or null; access_data is hex here (base64 on the cloud's wire). Records hold their whole blocks, zero padded.",
        "sites": site_json,
        "keys": key_vectors,
        "mad": [
            mad("ours_1k_blank_card", 0, &ours),
            mad("ours_mini", 0, &mini),
            mad("an10787_ndef_example", 1, &ndef),
            mad("ndef_then_ours", 1, &mixed),
        ],
        "records": records.into_iter().chain([rounding_vector]).collect::<Vec<_>>(),
        "negative_records": negatives(),
        "images": images(),
    })
}

fn load() -> Value {
    let text = std::fs::read_to_string(PATH).unwrap_or_else(|e| panic!("{PATH}: {e}"));
    serde_json::from_str(&text).expect("vectors JSON")
}

#[test]
fn vectors_file_is_what_the_code_makes() {
    let made = build();
    if std::env::var_os("UPDATE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&made).expect("json") + "\n";
        std::fs::write(PATH, text).expect("write vectors");
        return;
    }
    let file = load();
    for key in [
        "sites",
        "keys",
        "mad",
        "records",
        "negative_records",
        "images",
    ] {
        let (a, b) = (&file[key], &made[key]);
        assert_eq!(
            a.as_array().map(Vec::len),
            b.as_array().map(Vec::len),
            "{key}"
        );
        for (x, y) in a
            .as_array()
            .into_iter()
            .flatten()
            .zip(b.as_array().into_iter().flatten())
        {
            assert_eq!(x, y, "{key}: {}", x["name"]);
        }
    }
    assert_eq!(file, made);
}

#[test]
fn vectors_decode_to_their_expected_verdicts() {
    let v = load();
    for k in v["keys"].as_array().expect("keys") {
        let got = keys(
            k["site"].as_str().unwrap(),
            u8::try_from(k["key_version"].as_u64().unwrap()).unwrap(),
            k["uid"].as_str().unwrap(),
        );
        assert_eq!(
            hex::encode(&got.key_a().to_bytes()),
            k["key_a"].as_str().unwrap()
        );
        assert_eq!(
            hex::encode(&got.key_b().to_bytes()),
            k["key_b"].as_str().unwrap()
        );
        assert_eq!(
            hex::encode(&got.mac_key().to_bytes()),
            k["mac_key"].as_str().unwrap()
        );
    }
    for m in v["mad"].as_array().expect("mad") {
        let parsed =
            Mad1::parse(&hex::decode(m["blocks"].as_str().unwrap()).unwrap()).expect("MAD parses");
        let aids: Vec<String> = parsed.aids.iter().map(|a| format!("{:04X}", a.0)).collect();
        assert_eq!(json!(aids), m["aids"], "{}", m["name"]);
    }
    for r in v["records"].as_array().expect("records") {
        let name = r["name"].as_str().unwrap();
        let version = u8::try_from(r["key_version"].as_u64().unwrap()).unwrap();
        let k = keys(
            r["site"].as_str().unwrap(),
            version,
            r["uid"].as_str().unwrap(),
        );
        let bytes = hex::decode(r["record"].as_str().unwrap()).unwrap();
        let got = format::decode_record(&bytes, &uid(r["uid"].as_str().unwrap()), &k)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.credential, credential_from(&r["decoded"]), "{name}");
        assert_eq!(json!(got.format_version), r["format_version"], "{name}");
        assert_eq!(json!(got.sequence), r["sequence"], "{name}");
        assert_eq!(got.key_version, version, "{name}");
    }
    for r in v["negative_records"].as_array().expect("negatives") {
        let name = r["name"].as_str().unwrap();
        let version = u8::try_from(r["key_version"].as_u64().unwrap()).unwrap();
        let k = keys(
            r["site"].as_str().unwrap(),
            version,
            r["uid"].as_str().unwrap(),
        );
        let bytes = hex::decode(r["record"].as_str().unwrap()).unwrap();
        let err: FormatError =
            format::decode_record(&bytes, &uid(r["uid"].as_str().unwrap()), &k).expect_err(name);
        assert_eq!(err.name(), r["verdict"].as_str().unwrap(), "{name}");
    }
    let mut states = std::collections::BTreeSet::new();
    for i in v["images"].as_array().expect("images") {
        let name = i["name"].as_str().unwrap();
        let image = hex::decode(i["image"].as_str().unwrap()).unwrap();
        assert_eq!(
            expect_json(&image, i["decode_with"].as_str().unwrap()),
            i["expect"],
            "{name}"
        );
        states.insert(i["expect"]["state"].as_str().unwrap().to_string());
    }
    // The images cover every state a card of ours can be in.
    for state in [
        ImageState::Ours,
        ImageState::OursEmpty,
        ImageState::Blank,
        ImageState::Foreign,
        ImageState::Damaged,
        ImageState::UnknownFormat,
    ] {
        assert!(
            states.contains(state.name()),
            "no image in state {}",
            state.name()
        );
    }
}

#[test]
fn macs_and_keys_cross_checked_in_python() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/check_vectors.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(PATH)
        .output()
        .expect("python3 (make deps installs it with python3-cryptography)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "check_vectors.py failed:\n{text}");
    // It checked something: every section is counted in its last line.
    assert!(text.contains("ok:"), "{text}");
    eprintln!("{text}");
}
