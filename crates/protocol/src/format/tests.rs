#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use crate::keys::{MasterKey, SiteKeys};
use proptest::prelude::*;

fn keys(uid: &[u8]) -> CardKeys {
    SiteKeys::new(1, MasterKey::new([0x42; 16]))
        .card_keys(1, uid)
        .unwrap()
}

fn sample() -> Credential {
    Credential {
        credential_id: "3f1c2a9e-5b7d-4e21-9a0c-1d2e3f405162".into(),
        card_number: "1234".into(),
        starts_at: Some(1_700_000_040),
        ends_at: Some(1_700_086_440),
        issue_counter: 1,
        access_data: vec![1, 2],
    }
}

#[test]
fn uuid_round_trip() {
    let id = "3F1C2A9E-5B7D-4E21-9A0C-1D2E3F405162";
    let bytes = parse_uuid(id).unwrap();
    assert_eq!(format_uuid(&bytes), id.to_lowercase());
    assert!(parse_uuid("3f1c2a9e5b7d4e219a0c1d2e3f405162").is_none());
    assert!(parse_uuid("3f1c2a9e-5b7d-4e21-9a0c-1d2e3f40516g").is_none());
    assert!(parse_uuid("ü").is_none());
}

#[test]
fn round_trip_and_uid_binding() {
    let uid = [1, 2, 3, 4];
    let k = keys(&uid);
    let blocks = encode_record(&sample(), &k, 7, &uid, body_capacity(1)).unwrap();
    assert_eq!(blocks.len(), 3);
    assert_eq!(blocks[0][0], FORMAT_V2);
    let bytes = blocks.concat();
    let got = decode_record(&bytes, &uid, &k).unwrap();
    assert_eq!(got.credential, sample());
    assert_eq!((got.sequence, got.format_version), (7, FORMAT_V2));
    // Another UID, even with keys derived for it, rejects the copy.
    let other = [1, 2, 3, 5];
    assert_eq!(
        decode_record(&bytes, &other, &keys(&other)),
        Err(FormatError::MacMismatch)
    );
    assert_eq!(
        decode_record(&bytes, &other, &k),
        Err(FormatError::MacMismatch)
    );
    // Keys of another version of the same master key reject it too (the version is MACed).
    let v2 = SiteKeys::new(2, MasterKey::new([0x42; 16]))
        .card_keys(2, &uid)
        .unwrap();
    assert_eq!(
        decode_record(&bytes, &uid, &v2),
        Err(FormatError::MacMismatch)
    );
}

#[test]
fn v1_records_still_decode() {
    let uid = [1, 2, 3, 4, 5, 6, 7];
    let k = keys(&uid);
    let mut c = sample();
    c.starts_at = Some(1_700_000_001);
    c.issue_counter = 300;
    let blocks = v1::encode(&c, &k, 9, &uid).unwrap();
    assert_eq!(blocks[0][0], FORMAT_V1);
    let got = decode_record(&blocks.concat(), &uid, &k).unwrap();
    assert_eq!(got.credential, c);
    assert_eq!(
        (got.format_version, got.sequence, got.key_version),
        (1, 9, 1)
    );
    let h = Header::parse(&blocks[0]).unwrap();
    assert_eq!((h.header_len(), h.key_version), (11, Some(1)));
}

#[test]
fn times_are_whole_minutes_rounded_inwards() {
    let uid = [1, 2, 3, 4];
    let k = keys(&uid);
    let mut c = sample();
    c.starts_at = Some(1_700_000_001);
    c.ends_at = Some(1_700_000_119);
    let got = decode_record(
        &encode_record(&c, &k, 1, &uid, 37).unwrap().concat(),
        &uid,
        &k,
    )
    .unwrap()
    .credential;
    assert_eq!(got.starts_at, Some(1_700_000_040));
    assert_eq!(got.ends_at, Some(1_700_000_100));
    for (s, e, ok) in [
        (Some(v2::TIME_EPOCH + 1), None, true),
        (Some(v2::TIME_EPOCH), None, false),
        (None, Some(v2::TIME_EPOCH + 59), false),
        (None, Some(v2::TIME_EPOCH + 60), true),
        (None, Some(v2::MAX_TIME), true),
        (None, Some(v2::MAX_TIME + 60), false),
        (Some(v2::MAX_TIME + 1), None, false),
        (Some(-1), None, false),
        (Some(i64::MAX), None, false),
    ] {
        c.starts_at = s;
        c.ends_at = e;
        assert_eq!(body_len(&c).is_ok(), ok, "{s:?} {e:?}");
    }
}

#[test]
fn limits() {
    let uid = [1, 2, 3, 4];
    let k = keys(&uid);
    let mut c = sample();
    c.access_data = vec![0; 40];
    assert!(matches!(
        encode_record(&c, &k, 1, &uid, body_capacity(1)),
        Err(FormatError::TooLarge { .. })
    ));
    assert!(encode_record(&c, &k, 1, &uid, body_capacity(2)).is_ok());
    c.issue_counter = 256;
    assert_eq!(body_len(&c), Err(FormatError::IssueCounterTooLarge(256)));
    c.issue_counter = 255;
    c.card_number = "9".repeat(33);
    assert_eq!(body_len(&c), Err(FormatError::CardNumberTooLong(33)));
    assert_eq!(Header::parse(&[0; 16]), Err(FormatError::Empty));
    let mut zero_version = [0u8; 16];
    zero_version[5] = 1;
    assert_eq!(
        Header::parse(&zero_version),
        Err(FormatError::UnknownVersion(0))
    );
}

#[test]
fn realistic_credential_fits_one_sector() {
    let uid = [1, 2, 3, 4, 5, 6, 7];
    let c = Credential {
        credential_id: "9b2f6c1e-7a4d-4f0b-8c35-2e91d7a40f6b".into(),
        card_number: "4009613812".into(),
        starts_at: Some(1_733_065_200),
        ends_at: Some(1_733_670_000),
        issue_counter: 1,
        access_data: vec![0xAB; 8],
    };
    assert_eq!(HEADER_LEN + body_len(&c).unwrap(), 48);
    let blocks = encode_record(&c, &keys(&uid), 1, &uid, body_capacity(1)).unwrap();
    assert_eq!(blocks.len(), 3);
}

#[test]
fn serial_arithmetic_and_total_order() {
    assert!(is_newer(2, 1));
    assert!(is_newer(0, 0xFF));
    assert!(!is_newer(1, 2));
    assert!(!is_newer(5, 5));
    assert!(!is_newer(0x80, 0) && !is_newer(0, 0x80));
    assert_eq!(candidate_order(&[(0, 1), (1, 2)]), vec![1, 0]);
    assert_eq!(candidate_order(&[(0, 0), (1, 0xFF)]), vec![0, 1]);
    // Neither newer: slot A wins, whatever order the slots are listed in.
    assert_eq!(candidate_order(&[(1, 5), (0, 5)]), vec![0, 1]);
    assert_eq!(candidate_order(&[(0, 0x85), (1, 5)]), vec![0, 1]);
    assert_eq!(candidate_order(&[(1, 0x85), (0, 5)]), vec![0, 1]);
    assert_eq!(
        select(&[SlotContent::Valid(3), SlotContent::Valid(4)]),
        Selection::Record(1)
    );
    assert_eq!(
        select(&[
            SlotContent::Valid(3),
            SlotContent::Damaged(FormatError::MacMismatch)
        ]),
        Selection::Record(0)
    );
    assert_eq!(
        select(&[SlotContent::Empty, SlotContent::UnknownVersion(3)]),
        Selection::UnknownFormat
    );
    assert_eq!(
        select(&[
            SlotContent::Damaged(FormatError::BadLength),
            SlotContent::UnknownVersion(3)
        ]),
        Selection::Damaged
    );
    assert_eq!(
        select(&[SlotContent::Empty, SlotContent::Empty]),
        Selection::NoRecord
    );
}

proptest! {
    /// Of the records of the two slots, exactly one wins, whichever is compared first.
    #[test]
    fn record_order_decides_between_the_two_slots(a in any::<u8>(), b in any::<u8>(), sa in 0usize..2) {
        let x = (a, sa);
        let y = (b, 1 - sa);
        prop_assert_ne!(record_order(x, y), Ordering::Equal);
        prop_assert_eq!(record_order(x, y), record_order(y, x).reverse());
    }
}

fn credential() -> impl Strategy<Value = Credential> {
    (
        any::<[u8; 16]>(),
        "[0-9A-Za-z]{0,12}",
        proptest::option::of(1i64..=v2::MAX_MINUTES),
        proptest::option::of(1i64..=v2::MAX_MINUTES),
        0u16..=255,
        proptest::collection::vec(any::<u8>(), 0..20),
    )
        .prop_map(|(id, number, s, e, i, access)| Credential {
            credential_id: format_uuid(&id),
            card_number: number,
            starts_at: s.map(|m| v2::TIME_EPOCH + m * 60),
            ends_at: e.map(|m| v2::TIME_EPOCH + m * 60),
            issue_counter: i,
            access_data: access,
        })
}

proptest! {
    #[test]
    fn payload_round_trip(c in credential(), seq in any::<u8>(), uid in any::<[u8; 7]>()) {
        let k = keys(&uid);
        let blocks = encode_record(&c, &k, seq, &uid, body_capacity(2)).unwrap();
        let got = decode_record(&blocks.concat(), &uid, &k).unwrap();
        prop_assert_eq!(got.credential, c);
        prop_assert_eq!(got.sequence, seq);
    }

    #[test]
    fn any_changed_byte_is_rejected(c in credential(), pos in any::<prop::sample::Index>(), flip in 1u8..=255, v1_record in any::<bool>()) {
        let uid = [9, 8, 7, 6];
        let k = keys(&uid);
        let blocks = if v1_record {
            v1::encode(&c, &k, 1, &uid).unwrap()
        } else {
            encode_record(&c, &k, 1, &uid, body_capacity(2)).unwrap()
        };
        let mut bytes = blocks.concat();
        let header = Header::parse(&bytes[..16]).unwrap();
        let used = header.header_len() + header.body_len();
        let i = pos.index(used);
        bytes[i] ^= flip;
        prop_assert!(decode_record(&bytes, &uid, &k).is_err());
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        let uid = [1, 2, 3, 4];
        let k = keys(&uid);
        let _ = Header::parse(&bytes);
        prop_assert!(decode_record(&bytes, &uid, &k).is_err());
    }

    #[test]
    fn header_parse_is_sane(mut block in any::<[u8; 16]>(), version in 1u8..=2) {
        block[0] = version;
        if let Ok(h) = Header::parse(&block) {
            prop_assert!(h.body_len() >= v2::FIXED_BODY_LEN);
            prop_assert!(h.record_blocks() <= 20);
        }
    }
}
