//! Every reader family of the dialect table, on the private pcscd + vpcd rig under the name
//! pcscd gives that family, with `encoder-sim card --reader-profile` answering in its dialect:
//! the hal recognises it through the real pcscd (and pcsc-tools' `pcsc_scan`, an outside
//! tool, lists the same name), the jobs identify, scan and encode a blank card, re-encode and
//! scan it, a wrong key is refused and the right one then works, feedback is sent on success
//! and failure where the family has a command for it, and the card's own APDU log shows the
//! family's spelling (key memory, multi-block reads, LED commands).
//!
//! One rig per profile, every operation in it; the profiles run as parallel tests of this one
//! binary.

use std::path::Path;
use std::process::Command;

use encoder_hal::pcsc::PcscEncoder;
use encoder_hal::pcsc::dialect::{self, Dialect};
use encoder_hal::{CardSession, Encoder, Feedback};
use encoder_protocol::apdu::{self, KeySlot};
use encoder_protocol::job::{CardState, encode, scan};
use encoder_protocol::keys::Crypto1Key;
use encoder_protocol::mifare::access::KeyType;
use encoder_sim::card::ReaderProfile;
use encoder_tests::jobs::{realistic, realistic_next, site};
use encoder_tests::{Rig, STARTUP};

const UID: &str = "04A1B2C3";

fn profile(name: &str) -> ReaderProfile {
    name.parse().expect("profile")
}

/// A rig whose reader 0 has `profile`'s pcscd name, and a 1K card behind it answering in that
/// profile's dialect (with `extra` arguments).
fn rig_with_card(profile: &ReaderProfile, extra: &[&str]) -> (Rig, encoder_tests::SimCard) {
    let rig = Rig::start_named(2, &[profile.pcscd_name]);
    let mut args = vec![
        "--type",
        "classic-1k",
        "--uid",
        UID,
        "--reader-profile",
        profile.name,
    ];
    args.extend_from_slice(extra);
    let card = rig.card(0, &args);
    (rig, card)
}

fn session(enc: &mut PcscEncoder) -> Box<dyn CardSession + '_> {
    assert!(enc.wait_for_card(STARTUP).expect("wait"), "no card");
    enc.open_session().expect("session")
}

/// The card's APDU log, one `command -> response` a line, in hex without spaces.
fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.replace(' ', ""))
        .collect()
}

/// `pcsc_scan -r` (pcsc-tools) lists the rig's readers.
fn pcsc_scan_readers(rig: &Rig) -> String {
    let (key, value) = rig.env();
    let out = Command::new("pcsc_scan")
        .arg("-r")
        .env(key, value)
        .output()
        .expect("pcsc_scan not found: run `make deps` (Debian package pcsc-tools)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[allow(clippy::too_many_lines)] // one rig, every operation in order
fn run_profile(name: &str) {
    let profile = profile(name);
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("apdu.log");
    let log_arg = log.display().to_string();
    let (rig, mut card) = rig_with_card(&profile, &["--apdu-log", &log_arg]);
    let reader = rig.name_of(0);
    assert!(
        pcsc_scan_readers(&rig).contains(&reader),
        "pcsc_scan does not list {reader:?}"
    );

    // `encoder-bridge readers` names the family.
    let (key, value) = rig.env();
    let out = Command::new(encoder_tests::binary("encoder-bridge"))
        .args(["readers", "--json", "--direct"])
        .env(key, value)
        .output()
        .expect("encoder-bridge readers");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("readers --json");
    assert_eq!(json["readers"][0]["name"], reader.as_str(), "{json}");
    assert_eq!(json["readers"][0]["family"], name, "{json}");

    // Identify: the family from pcscd's name, the card from the reader.
    let mut enc = PcscEncoder::new(&reader).expect("encoder");
    let family: &'static Dialect = enc.dialect();
    assert_eq!(family.id, name, "{reader} recognised as {}", family.id);
    let site = site();
    {
        let mut s = session(&mut enc);
        let info = s.info().clone();
        assert_eq!(encoder_protocol::hex::encode(&info.uid), UID);
        let blank = scan(&mut *s, &info, &site).expect("scan blank");
        assert_eq!(blank.state, CardState::Blank);
    }
    // Encode blank, scan, re-encode, scan: each a session of its own, feedback at the end.
    for (n, credential) in [realistic(8), realistic_next(0)].into_iter().enumerate() {
        let mut s = session(&mut enc);
        let info = s.info().clone();
        let out = encode(&mut *s, &info, &site, &credential)
            .unwrap_or_else(|e| panic!("{name}: encode {n}: {e} ({})", e.detail()));
        assert_eq!(out.first_encode, n == 0);
        let sent = s.feedback(Feedback::Success).expect("feedback");
        assert_eq!(
            sent,
            (family.signal != dialect::Signal::None),
            "{name}: feedback sent"
        );
        drop(s);
        let mut s = session(&mut enc);
        let info = s.info().clone();
        let found = scan(&mut *s, &info, &site).expect("scan");
        assert_eq!(found.credential.expect("credential").credential, credential);
    }
    // A wrong key is refused, then the right one works on the same card (sector 15 is still
    // factory-keyed). Readers that do not select the halted card again get a reset between.
    {
        let mut s = session(&mut enc);
        let wrong = Crypto1Key::new([0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC]);
        let send = |s: &mut Box<dyn CardSession + '_>, c: apdu::Command| {
            let reply = s.transmit(&c.to_bytes()).expect("transmit");
            reply[reply.len() - 2..].to_vec()
        };
        assert_eq!(
            send(&mut s, apdu::load_key(KeySlot::SLOT0, wrong)),
            [0x90, 0x00]
        );
        assert_eq!(
            send(&mut s, apdu::authenticate(60, KeyType::A, KeySlot::SLOT0)),
            [0x63, 0x00],
            "{name}: a wrong key reads as the Part 3 refusal"
        );
        assert_eq!(
            send(&mut s, apdu::load_key(KeySlot::SLOT1, Crypto1Key::FACTORY)),
            [0x90, 0x00]
        );
        assert_eq!(
            send(&mut s, apdu::authenticate(60, KeyType::A, KeySlot::SLOT1)),
            [0x90, 0x00],
            "{name}: the right key after a wrong one"
        );
        let reply = s
            .transmit(&apdu::read_blocks(60, 3).to_bytes())
            .expect("read");
        assert_eq!(reply.len(), 50, "{name}: three blocks");
        let failure = s.feedback(Feedback::Failure).expect("feedback");
        assert_eq!(failure, (family.signal != dialect::Signal::None));
    }

    // The card leaves before the feedback: the hal tries the reader's escape (vpcd has none,
    // so it fails), and says so instead of failing anything else.
    if family.signal != dialect::Signal::None {
        let mut s = session(&mut enc);
        card.remove();
        let err = s
            .feedback(Feedback::Failure)
            .expect_err("no card, and vpcd takes no escape");
        eprintln!("{name}: feedback without a card: {err}");
        assert!(
            err.to_string().contains("SCardControl") || err.to_string().contains("direct"),
            "{err}"
        );
    }

    // What the card saw: the family's spelling.
    let lines = log_lines(&log);
    eprintln!("{name}: {} APDUs at the card", lines.len());
    let has = |prefix: &str| lines.iter().any(|l| l.starts_with(prefix));
    let ok_count = |prefix: &str| {
        lines
            .iter()
            .filter(|l| l.starts_with(prefix) && l.ends_with("9000"))
            .count()
    };
    match family.keys {
        dialect::KeyStore::Slots { p1, .. } => {
            assert!(
                has(&format!("FF82{p1:02X}")),
                "{name}: LOAD KEYS P1 {p1:02X}"
            );
        }
        dialect::KeyStore::ByKeyType { .. } => {
            assert!(
                has("FF820060") && !has("FF820000"),
                "{name}: key type in P2"
            );
        }
    }
    match family.multi_read {
        dialect::MultiRead::Binary { max } => {
            let multi = |l: &&String| {
                l.starts_with("FFB000")
                    && l.get(8..10).is_some_and(|le| {
                        u8::from_str_radix(le, 16).is_ok_and(|le| le > 16 && le <= max * 16)
                    })
            };
            assert!(lines.iter().any(|l| multi(&l)), "{name}: multi-block reads");
        }
        dialect::MultiRead::SectorCommand => assert!(has("FFB100"), "{name}: sector reads"),
        dialect::MultiRead::Single => assert!(
            lines
                .iter()
                .filter(|l| l.starts_with("FFB0"))
                .all(|l| matches!(l.get(8..10), Some("10" | "00"))),
            "{name}: single-block reads only"
        ),
    }
    let signals = ok_count("FF0040");
    if family.signal == dialect::Signal::None {
        assert_eq!(signals, 0);
        assert!(!has("FF0040"), "{name}: no ACS command to a non-ACS reader");
    } else {
        // Two successes and one failure, answered `90 <LED state>`.
        let answered = lines
            .iter()
            .filter(|l| l.starts_with("FF0040") && l.contains("->90"))
            .count();
        assert_eq!(answered, 3, "{name}: LED/buzzer commands in the card's log");
    }
    // Nothing the jobs sent was refused for its form (wrong length, unknown instruction,
    // wrong key number, wrong key memory).
    for bad in ["->6700", "->6A81", "->6988", "->6986", "->6D00"] {
        assert!(
            !lines.iter().any(|l| l.ends_with(bad)),
            "{name}: a command was refused for its form ({bad}): {lines:#?}"
        );
    }
}

/// The families whose key memory the ACR122U dialect does not address: the old path (the
/// ACR122U spelling to every reader) fails on them, the recognised dialect passes.
fn old_path_fails(name: &str) {
    let profile = profile(name);
    let (rig, _card) = rig_with_card(&profile, &[]);
    let reader = rig.name_of(0);
    let acr122u = dialect::by_id("acr122u").expect("acr122u");
    let mut old = PcscEncoder::with_dialect(&reader, acr122u).expect("encoder");
    let site = site();
    {
        let mut s = session(&mut old);
        let info = s.info().clone();
        let err = encode(&mut *s, &info, &site, &realistic(8))
            .expect_err("the ACR122U dialect must fail on this reader");
        eprintln!("{name}: ACR122U dialect: {err} ({})", err.detail());
    }
    let mut new = PcscEncoder::new(&reader).expect("encoder");
    let mut s = session(&mut new);
    let info = s.info().clone();
    encode(&mut *s, &info, &site, &realistic(8))
        .unwrap_or_else(|e| panic!("{name}: {e} ({})", e.detail()));
}

macro_rules! profiles {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                run_profile($name);
            }
        )*

        /// Every profile of the simulator is tested here, and is a family of the table.
        #[test]
        fn every_profile_is_tested_and_known() {
            let tested = [$($name),*];
            for p in ReaderProfile::ALL {
                assert!(tested.contains(&p.name), "profile {} has no test", p.name);
                assert_eq!(dialect::recognise(p.pcscd_name).id, p.name);
            }
            assert_eq!(tested.len(), dialect::TABLE.len() + 1);
        }
    };
}

profiles! {
    acr122u => "acr122u",
    acr1252u => "acr1252u",
    omnikey5022 => "omnikey5022",
    omnikey5422 => "omnikey5422",
    omnikey5427ck => "omnikey5427ck",
    utrust3700f => "utrust3700f",
    utrust3720f => "utrust3720f",
    scl3711 => "scl3711",
    baseline => "baseline",
}

#[test]
fn acr122u_dialect_fails_on_utrust3720f_and_the_recognised_one_passes() {
    old_path_fails("utrust3720f");
}

#[test]
fn acr122u_dialect_fails_on_omnikey5422_and_the_recognised_one_passes() {
    old_path_fails("omnikey5422");
}
