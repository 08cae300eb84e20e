//! The card's own tests: the published traces of docs/reference/desfire-card.md §9 replayed
//! against the card, then the command set, access rights, transactions and tears.

use super::applications::{Application, Key, KeyType};
use super::crypto::{Cipher, rotate_left};
use super::files::{AccessRights, DataFile, FileKind};
use super::session::Session;
use super::*;
use crate::error::parse_hex;

fn h(s: &str) -> Vec<u8> {
    parse_hex(&s.replace(' ', "")).unwrap()
}

/// Sends hex, returns hex (no spaces).
fn tx(card: &mut Desfire, apdu: &str) -> String {
    crate::error::hex(&card.process(&h(apdu))).replace(' ', "")
}

fn hx(s: &str) -> String {
    s.replace(' ', "")
}

const AID: [u8; 3] = [0x16, 0xDE, 0x00];

/// A card with one application of `n` AES keys (all zero) and KS1 `ks1`, selected.
fn card_with_app(generation: Generation, key_type: KeyType, n: u8, ks1: u8) -> Desfire {
    let mut card = Desfire::new(generation, [0x04, 0x95, 0x8C, 0xAA, 0x5C, 0x5E, 0x80]);
    card.apps.insert(
        AID,
        Application {
            aid: AID,
            key_settings: ks1,
            key_type,
            keys: (0..n).map(|_| Key::zero(key_type)).collect(),
            iso_fid: None,
            df_name: None,
            files: std::collections::BTreeMap::new(),
        },
    );
    assert_eq!(tx(&mut card, "90 5A 00 00 03 16 DE 00 00"), "9100");
    card
}

fn add_file(card: &mut Desfire, no: u8, kind: FileKind, comm: u8, access: [u8; 2], size: usize) {
    card.apps.get_mut(&AID).unwrap().files.insert(
        no,
        DataFile::new(kind, None, comm, AccessRights::from_bytes(access), size),
    );
}

fn file_data(card: &Desfire, no: u8) -> Vec<u8> {
    card.apps[&AID].files[&no].data.clone()
}

fn ev2_session(enc: &str, mac: &str, ti: &str, ctr: u16, key_no: u8) -> Session {
    let ti = h(ti);
    Session::Ev2 {
        enc: Cipher::aes(&h(enc)).unwrap(),
        mac: Cipher::aes(&h(mac)).unwrap(),
        ti: [ti[0], ti[1], ti[2], ti[3]],
        ctr,
        key_no,
    }
}

fn ev1_session(key: &str, iv: &str, key_no: u8) -> Session {
    let k = h(key);
    Session::Ev1 {
        // An 8-byte IV means a DES-family session.
        cipher: if h(iv).len() == 8 {
            Cipher::des(&k).unwrap()
        } else {
            Cipher::aes(&k).unwrap()
        },
        iv: h(iv),
        key_no,
    }
}

// ---- EV2: AN12196 ------------------------------------------------------------------------

#[test]
fn an12196_t14_ev2_first_key0() {
    let mut card = card_with_app(Generation::Ev2, KeyType::Aes, 5, 0x0F);
    card.script_random(&h("B9E2FC78 9B64BF23 7CCCAA20 EC7E6E48 9D00C4DF"));
    assert_eq!(
        tx(&mut card, "90 71 00 00 02 00 00 00"),
        hx("A04C1242 13C186F2 2399D33A C2A30215 91AF")
    );
    assert_eq!(
        tx(
            &mut card,
            "90 AF 00 00 20 35C3E05A 752E0144 BAC0DE51 C1F22C56 B34408A2 3D8AEA26 6CAB947E A8E0118D 00"
        ),
        hx("3FA64DB5 446D1F34 CD6EA311 167F5E49 85B89690 C04A05F1 7FA7AB2F 08120663 9100")
    );
    let Session::Ev2 {
        enc,
        mac,
        ti,
        ctr,
        key_no,
    } = &card.session
    else {
        panic!("no EV2 session");
    };
    assert_eq!((ti, *ctr, *key_no), (&[0x9D, 0x00, 0xC4, 0xDF], 0, 0));
    // The session keys are the published ones: check through their CMAC of nothing.
    let expect_enc = Cipher::aes(&h("1309C877 509E5A21 5007FF0E D19CA564")).unwrap();
    let expect_mac = Cipher::aes(&h("4C6626F5 E72EA694 20213929 5C7A7FC7")).unwrap();
    assert_eq!(enc.cmac(b"x"), expect_enc.cmac(b"x"));
    assert_eq!(mac.cmac(b"x"), expect_mac.cmac(b"x"));
}

/// T19 (`EV2First` with key 3), T21 (full-mode `WriteData`), T23 (`NonFirst` with key 0), T25
/// (`ChangeKey` of another key) and T26 (`ChangeKey` of the authenticated key), in one session.
#[test]
fn an12196_t19_to_t26_one_session() {
    let mut card = card_with_app(Generation::Ev2, KeyType::Aes, 5, 0x0F);
    add_file(&mut card, 3, FileKind::Standard, 0x03, [0x30, 0x33], 32);
    let zero = Cipher::aes(&[0; 16]).unwrap();
    // T19: RndB is what the card's published cryptogram hides.
    let e_rnd_b = h("B875CEB0 E66A6C5C D00898DC 371F92D1");
    let rnd_b = zero.cbc_decrypt(&[0; 16], &e_rnd_b).unwrap();
    card.script_random(&rnd_b);
    card.script_random(&h("7614281A"));
    assert_eq!(
        tx(&mut card, "90 71 00 00 02 03 00 00"),
        hx("B875CEB0 E66A6C5C D00898DC 371F92D1 91AF")
    );
    let rnd_a = h("B98F4C50 CF1C2E08 4FD150E3 3992B048");
    let pcd = zero
        .cbc_encrypt(&[0; 16], &[rnd_a.clone(), rotate_left(&rnd_b)].concat())
        .unwrap();
    let answer = card.process(&[&h("90 AF 00 00 20")[..], &pcd, &[0]].concat());
    assert_eq!(answer[32..], [0x91, 0x00]);
    let plain = zero.cbc_decrypt(&[0; 16], &answer[..32]).unwrap();
    assert_eq!(plain[..4], h("7614281A"));
    assert_eq!(plain[4..20], rotate_left(&rnd_a));
    // T21: WriteData file 3, 10 bytes, full mode, ctr 0.
    assert_eq!(
        tx(
            &mut card,
            "90 8D 00 00 1F 03 000000 0A0000 6B5E6804 909962FC 4E3FF552 2CF0F843 6C0C5331 5B9C73AA 00"
        ),
        hx("C26D236E 4A7C046D 9100")
    );
    assert_eq!(file_data(&card, 3)[..10], h("0102030405060708090A"));
    // ctr 1: a plain command counts too.
    assert!(tx(&mut card, "90 60 00 00 00").ends_with("91AF"));
    assert!(tx(&mut card, "90 AF 00 00 00").ends_with("91AF"));
    assert!(tx(&mut card, "90 AF 00 00 00").ends_with("9100"));
    // T23: NonFirst with key 0 keeps TI and ctr (2).
    let rnd_b = h("6924E8D0 9722659A 2E7DEC68 E66312B8");
    card.script_random(&rnd_b);
    let first = card.process(&h("90 77 00 00 01 00 00"));
    assert_eq!(
        first,
        [
            zero.cbc_encrypt(&[0; 16], &rnd_b).unwrap(),
            vec![0x91, 0xAF]
        ]
        .concat()
    );
    let rnd_a = h("60BE759E DA560250 AC57CDDC 11743CF6");
    let pcd = zero
        .cbc_encrypt(&[0; 16], &[rnd_a.clone(), rotate_left(&rnd_b)].concat())
        .unwrap();
    let answer = card.process(&[&h("90 AF 00 00 20")[..], &pcd, &[0]].concat());
    assert_eq!(
        answer,
        [
            zero.cbc_encrypt(&[0; 16], &rotate_left(&rnd_a)).unwrap(),
            vec![0x91, 0x00]
        ]
        .concat()
    );
    let Session::Ev2 {
        ti, ctr, key_no, ..
    } = &card.session
    else {
        panic!("no EV2 session");
    };
    assert_eq!((ti, *ctr, *key_no), (&[0x76, 0x14, 0x28, 0x1A], 2, 0));
    // T25: ChangeKey key 2 (old zero) to F384..., version 01, ctr 2.
    assert_eq!(
        tx(
            &mut card,
            "90 C4 00 00 29 02 2CF362B7 BF4311FF 3BE1DAA2 95E8C68D E0905056 0D19B9E1 6C2393AE 9CD1FAC7 5D0CE20B CD1D06E6 00"
        ),
        hx("203BB55D 1089D587 9100")
    );
    let key2 = &card.apps[&AID].keys[2];
    assert_eq!(
        (key2.bytes.clone(), key2.version),
        (h("F3847D62 7727ED3B C9C4CC05 0489B966"), 1)
    );
    // T26: ChangeKey key 0 (the authenticated one), ctr 3: bare 91 00, session over.
    assert_eq!(
        tx(
            &mut card,
            "90 C4 00 00 29 00 C0EB4DEE FEDDF0B5 13A03A95 A7549181 85805031 90D4D050 53FF7566 8A01D6FD A6610234 BDED6432 00"
        ),
        "9100"
    );
    let key0 = &card.apps[&AID].keys[0];
    assert_eq!(
        (key0.bytes.clone(), key0.version),
        (h("5004BF99 1F408672 B1EF00F0 8F9E8647"), 1)
    );
    assert!(!card.is_authenticated());
}

#[test]
fn an12196_t28_get_card_uid_full_mode() {
    let mut card = card_with_app(Generation::Ev2, KeyType::Aes, 1, 0x0F);
    card.session = ev2_session(
        "2B4D963C 014DC36F 24F69A50 A394F875",
        "379D3213 0CE61705 DD5FD8C3 6B95D764",
        "DF055522",
        0,
        0,
    );
    assert_eq!(
        tx(&mut card, "90 51 00 00 08 8E2C155A DDA99BE3 00"),
        hx("70756055 688505B5 2A5E26E5 9E329CD6 595F6722 98EA41B7 9100")
    );
}

/// AN12343's MAC-mode example: a MAC-mode file 0 (key 0 for everything) and the session
/// (MAC key, TI, counter 0) the example runs in.
fn an12343_card() -> Desfire {
    let mut card = card_with_app(Generation::Ev3, KeyType::Aes, 1, 0x0F);
    add_file(&mut card, 0, FileKind::Standard, 0x01, [0x00, 0x00], 64);
    card.session = ev2_session(
        "00000000 00000000 00000000 00000000",
        "9366FA19 5EB566F5 BD2BAD40 20B83002",
        "E2D3AF69",
        0,
        0,
    );
    card
}

#[test]
fn an12343_mac_mode_write_and_read() {
    let mut card = an12343_card();
    let data = "22".repeat(25);
    assert_eq!(
        tx(
            &mut card,
            &format!("90 8D 00 00 28 00 000000 190000 {data} 68F2C28C 575A1628 00")
        ),
        hx("0820F688 98C2A7F1 9100")
    );
    assert_eq!(
        tx(
            &mut card,
            "90 AD 00 00 0F 00 000000 300000 0D9BE191 D5960834 00"
        ),
        format!("{data}{}A49A44222D9266669100", "00".repeat(23))
    );
}

#[test]
fn an12343_t40_change_key_0() {
    let mut card = card_with_app(Generation::Ev2, KeyType::Aes, 1, 0x0F);
    card.session = ev2_session(
        "E156C852 2F7C8DC8 2B0C99BA 847DE723",
        "45D50C15 70000D2F 173DF949 288E3CAD",
        "94297F4D",
        0,
        0,
    );
    assert_eq!(
        tx(
            &mut card,
            "90 C4 00 00 29 00 BF5400DC 97A1FBD6 5BE87071 6D6F11F8 161BB4CA 472856DB 94AB94B2 EC1A13E6 27CE07CF 56C11091 00"
        ),
        "9100"
    );
    assert_eq!(
        card.apps[&AID].keys[0].bytes,
        h("01234567 89012345 67890123 45678901")
    );
}

#[test]
fn ev2_wrong_mac_is_an_integrity_error_and_ends_the_session() {
    let mut card = an12343_card();
    let data = "22".repeat(25);
    assert_eq!(
        tx(
            &mut card,
            &format!("90 8D 00 00 28 00 000000 190000 {data} 68F2C28C 575A1629 00")
        ),
        "911E"
    );
    assert!(!card.is_authenticated());
    assert_eq!(file_data(&card, 0), vec![0; 64], "nothing written");
    // The right MAC no longer helps: the session is gone, and the file needs key 0.
    assert_eq!(
        tx(
            &mut card,
            &format!("90 8D 00 00 28 00 000000 190000 {data} 68F2C28C 575A1628 00")
        ),
        "91AE"
    );
}

// ---- EV1: the Elmue trace and AN12757 ----------------------------------------------------

#[test]
fn elmue_ev1_aes_authentication_get_key_version_and_change_key() {
    let mut card = card_with_app(Generation::Ev1, KeyType::Aes, 2, 0x0F);
    card.apps.get_mut(&AID).unwrap().keys[0] = Key::new(
        KeyType::Aes,
        &h("10182028 30384048 50586068 70788088"),
        0x10,
    )
    .unwrap();
    card.script_random(&h("91036845 7E2E9AA1 67355BFB 544B9931"));
    // Native frames, as the trace has them.
    assert_eq!(
        tx(&mut card, "AA 00"),
        hx("AF 3E2BE626 C05E7798 EE518355 A751648E")
    );
    assert_eq!(
        tx(
            &mut card,
            "AF FABF71BB 0DC45B8F 31BAEDDF F7F34396 52D4094D F12C17EF 0C94353E 6D7770C8"
        ),
        hx("00 1CE6C574 E24923D4 04E18B6A 240C1B08")
    );
    assert_eq!(tx(&mut card, "64 00"), hx("00 10 8A8FA36F 55CD210D"));
    assert_eq!(
        tx(
            &mut card,
            "C4 00 635375E4 919F8AF2 E9E86B1C 1BA55B0C 0807EAF4 84D7A7EF 6E0C3084 160F5A61"
        ),
        "00"
    );
    assert_eq!(card.apps[&AID].keys[0], Key::zero(KeyType::Aes));
    assert!(!card.is_authenticated());
}

#[test]
fn elmue_ev1_change_other_key() {
    let mut card = card_with_app(Generation::Ev1, KeyType::Aes, 2, 0x0F);
    card.session = ev1_session(
        "C2A1E47B D8100044 FE6D00A7 4D7AB17C",
        "00000000000000000000000000000000",
        0,
    );
    assert_eq!(
        tx(
            &mut card,
            "C4 01 E7ECCB6B D1CA64BC 161A12B1 C024F714 30337408 C8A87EAC AB7A1FF1 8951FCA3"
        ),
        hx("00 2128D3CD 9C9ACFFF")
    );
    let k = &card.apps[&AID].keys[1];
    assert_eq!(
        (k.bytes.clone(), k.version),
        (h("00102030 40506070 8090A0B0 B0A09080"), 0x10)
    );
}

#[test]
fn elmue_ev1_create_file_list_and_settings() {
    let mut card = card_with_app(Generation::Ev1, KeyType::Aes, 2, 0x0F);
    card.session = ev1_session(
        "40E7D271 626FFBD4 9C530E3D 304F5B17",
        "00000000000000000000000000000000",
        0,
    );
    assert_eq!(
        tx(&mut card, "CD 05 00 11 00 50 00 00"),
        hx("00 A75316AD 1596B953")
    );
    assert_eq!(tx(&mut card, "6F"), hx("00 05 2D5FF67F FEC9D2D3"));
    assert_eq!(
        tx(&mut card, "F5 05"),
        hx("00 00 00 11 00 50 00 00 2AAC7517 024E09DC")
    );
}

#[test]
fn an12757_t96_t95_change_keys() {
    let mut card = card_with_app(Generation::Ev1, KeyType::Aes, 2, 0x0F);
    card.session = ev1_session(
        "04BC99A8 1DB7293F AA86CA22 5ECD7660",
        "00000000000000000000000000000000",
        0,
    );
    assert_eq!(
        tx(
            &mut card,
            "C4 00 B679B080 51DA0A62 D14C3544 A968C943 636A2815 165E1FB7 C1DCC839 CFCD3D94"
        ),
        "00"
    );
    let k = &card.apps[&AID].keys[0];
    assert_eq!(
        (k.bytes.clone(), k.version),
        (h("B0B1B2B3 B4B5B6B7 B8B9BABB BCBDBEBF"), 1)
    );

    let mut card = card_with_app(Generation::Ev1, KeyType::Aes, 2, 0x0F);
    card.apps.get_mut(&AID).unwrap().keys[1] =
        Key::new(KeyType::Aes, &h("00112233 44556677 8899AABB CCDDEEFF"), 0).unwrap();
    card.session = ev1_session(
        "5DD4CBFC 20A1988E 1CDBAE32 2B315D57",
        "70873F2D 468019A3 8E7184FE 5208F607",
        0,
    );
    assert_eq!(
        tx(
            &mut card,
            "C4 01 E4CDFCD2 D335CCAA B4BB6028 05B9DAAF FB1B84FE 4E4952DD 0B9E2F20 BB4C789C"
        ),
        hx("00 02BC7F4A CA83DA63")
    );
    let k = &card.apps[&AID].keys[1];
    assert_eq!(
        (k.bytes.clone(), k.version),
        (h("A0A1A2A3 A4A5A6A7 A8A9AAAB ACADAEAF"), 3)
    );
}

#[test]
fn an12757_t93_picc_key_to_aes() {
    let mut card = Desfire::new(Generation::Ev1, [4, 1, 2, 3, 4, 5, 6]);
    card.session = ev1_session("DAFF378C 024610FB DAFF378C 024610FB", "0000000000000000", 0);
    assert_eq!(
        tx(
            &mut card,
            "C4 80 440FE29F F2E51AD1 8AA105C1 25CDC1F3 B8159098 4219EAB1"
        ),
        "00"
    );
    assert_eq!(
        (card.picc.key_type, card.picc.key.bytes.clone()),
        (KeyType::Aes, vec![0; 16])
    );
}

// ---- A small PCD for the flows below (the card's own crypto, checked above by vectors) ----

/// Runs `90 INS 00 00 [Lc data] 00`; returns (data, SW2).
fn cmd(card: &mut Desfire, ins: u8, data: &[u8]) -> (Vec<u8>, u8) {
    let mut apdu = vec![0x90, ins, 0, 0];
    if !data.is_empty() {
        apdu.push(u8::try_from(data.len()).unwrap());
        apdu.extend_from_slice(data);
    }
    apdu.push(0);
    let r = card.process(&apdu);
    assert!(r.len() >= 2 && r[r.len() - 2] == 0x91, "{r:02X?}");
    (r[..r.len() - 2].to_vec(), r[r.len() - 1])
}

/// Legacy 0A with a DES key, as libfreefare does it.
fn legacy_auth(card: &mut Desfire, key_no: u8, key: &[u8]) -> u8 {
    let k = Cipher::des(key).unwrap();
    let (ek, sw) = cmd(card, 0x0A, &[key_no]);
    if sw != 0xAF {
        return sw;
    }
    let mut rnd_b = ek.clone();
    k.decrypt_block(&mut rnd_b);
    let rnd_a = [0x11u8, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
    let mut t1 = rnd_a.to_vec();
    k.decrypt_block(&mut t1);
    let mut t2 = rotate_left(&rnd_b);
    super::crypto::xor_into(&mut t2, &t1);
    k.decrypt_block(&mut t2);
    let (ea, sw) = cmd(card, 0xAF, &[t1, t2].concat());
    if sw == 0 {
        let mut a = ea;
        k.decrypt_block(&mut a);
        assert_eq!(a, rotate_left(&rnd_a));
    }
    sw
}

/// `EV2First`; returns the session (ENC, MAC, TI) or the status.
fn ev2_first(card: &mut Desfire, key_no: u8, key: &[u8]) -> Result<(Cipher, Cipher, Vec<u8>), u8> {
    let k = Cipher::aes(key).unwrap();
    let (ek, sw) = cmd(card, 0x71, &[key_no, 0]);
    if sw != 0xAF {
        return Err(sw);
    }
    let rnd_b = k.cbc_decrypt(&[0; 16], &ek).unwrap();
    let rnd_a = [0x5Au8; 16];
    let c = k
        .cbc_encrypt(&[0; 16], &[rnd_a.to_vec(), rotate_left(&rnd_b)].concat())
        .unwrap();
    let (answer, sw) = cmd(card, 0xAF, &c);
    if sw != 0 {
        return Err(sw);
    }
    let plain = k.cbc_decrypt(&[0; 16], &answer).unwrap();
    assert_eq!(plain[4..20], rotate_left(&rnd_a));
    let (enc, mac) = super::session::ev2_session_keys(&k, &rnd_a, &rnd_b).unwrap();
    Ok((
        Cipher::aes(&enc).unwrap(),
        Cipher::aes(&mac).unwrap(),
        plain[..4].to_vec(),
    ))
}

/// EV2 `MACt` over `head ‖ ctr ‖ TI ‖ data`.
fn mact(mac: &Cipher, head: u8, ctr: u16, ti: &[u8], data: &[u8]) -> Vec<u8> {
    let input = [&[head][..], &ctr.to_le_bytes(), ti, data].concat();
    super::crypto::truncate_ev2(&mac.cmac(&input))
}

#[test]
fn get_version_per_generation_in_three_frames() {
    for (g, hw_major, storage) in [
        (Generation::Ev0, 0x00, 0x18),
        (Generation::Ev1, 0x01, 0x1A),
        (Generation::Ev2, 0x12, 0x1A),
        (Generation::Ev3, 0x33, 0x18),
    ] {
        let mut card = Desfire::new(g, [4, 1, 2, 3, 4, 5, 6]);
        let (a, sw) = cmd(&mut card, 0x60, &[]);
        assert_eq!(
            (a.len(), sw, a[3], a[5]),
            (7, 0xAF, hw_major, storage),
            "{g}"
        );
        let (b, sw) = cmd(&mut card, 0xAF, &[]);
        assert_eq!((b.len(), sw), (7, 0xAF));
        let (c, sw) = cmd(&mut card, 0xAF, &[]);
        assert_eq!((c.len(), sw), (14, 0x00));
        assert_eq!(c[..7], [4, 1, 2, 3, 4, 5, 6]);
        // A stray AF afterwards is an illegal command.
        assert_eq!(cmd(&mut card, 0xAF, &[]).1, 0x1C);
    }
}

#[test]
fn ev0_has_no_aes_and_no_ev2() {
    let mut card = Desfire::new(Generation::Ev0, [4, 1, 2, 3, 4, 5, 6]);
    assert_eq!(cmd(&mut card, 0xAA, &[0]).1, 0x1C);
    assert_eq!(cmd(&mut card, 0x71, &[0, 0]).1, 0x1C);
    assert_eq!(cmd(&mut card, 0x6E, &[]).1, 0x1C);
    // An AES application cannot be made.
    assert_eq!(cmd(&mut card, 0xCA, &[1, 0, 0, 0x0F, 0x81]).1, 0x9E);
    assert_eq!(legacy_auth(&mut card, 0, &[0; 8]), 0x00);
    // EV1 has no EV2 authentication.
    let mut card = Desfire::new(Generation::Ev1, [4, 1, 2, 3, 4, 5, 6]);
    assert_eq!(cmd(&mut card, 0x71, &[0, 0]).1, 0x1C);
}

/// What `mifare-desfire-format` does to a factory card: legacy auth with the zero DES key,
/// `ChangeKeySettings` 0F (enciphered, CRC16), `FormatPICC`.
#[test]
fn factory_card_takes_legacy_auth_change_key_settings_and_format() {
    let mut card = Desfire::new(Generation::Ev1, [4, 1, 2, 3, 4, 5, 6]);
    assert_eq!(
        cmd(&mut card, 0xCA, &[1, 0, 0, 0x0F, 0x81]).1,
        0x00,
        "free create"
    );
    assert_eq!(
        legacy_auth(&mut card, 0, &[2; 8]),
        0xAE,
        "wrong key (bit 0 is parity)"
    );
    assert!(!card.is_authenticated());
    assert_eq!(legacy_auth(&mut card, 0, &[0; 8]), 0x00);
    let Session::D40 { cipher, .. } = card.session.clone() else {
        panic!("no D40 session");
    };
    // ChangeKeySettings: KS1 ‖ CRC16(KS1) ‖ 00 pad, sent deciphered.
    let mut block = vec![0x0F];
    block.extend_from_slice(&super::crypto::crc16(&[0x0F]));
    block.resize(8, 0);
    cipher.decrypt_block(&mut block);
    assert_eq!(cmd(&mut card, 0x54, &block), (vec![], 0x00));
    assert_eq!(cmd(&mut card, 0xFC, &[]), (vec![], 0x00));
    assert!(card.apps.is_empty());
    assert_eq!(card.picc.key_settings, 0x0F);
    // Without authentication FormatPICC is refused.
    assert_eq!(cmd(&mut card, 0x5A, &[0, 0, 0]).1, 0x00);
    assert_eq!(cmd(&mut card, 0xFC, &[]).1, 0xAE);
}

#[test]
fn aes_application_backup_file_transaction_in_an_ev2_session() {
    let mut card = card_with_app(Generation::Ev2, KeyType::Aes, 3, 0x0B);
    // Backup file 1, full mode, R = key 1, W = key 2, RW = key 2, change = key 0.
    add_file(&mut card, 1, FileKind::Backup, 0x03, [0x20, 0x12], 32);
    let (_, sw) = cmd(&mut card, 0xBD, &h("01 000000 000000"));
    assert_eq!(sw, 0xAE, "reading needs key 1 or 2");
    let (enc, mac, ti) = ev2_first(&mut card, 2, &[0; 16]).unwrap();
    // WriteData full mode at ctr 0.
    let header = h("01 000000 040000");
    let mut plain = vec![1, 2, 3, 4];
    super::crypto::iso_pad(&mut plain, 16);
    let iv_input = [&[0xA5, 0x5A][..], &ti, &0u16.to_le_bytes(), &[0; 8]].concat();
    let mut iv = iv_input.clone();
    enc.encrypt_block(&mut iv);
    let ct = enc.cbc_encrypt(&iv, &plain).unwrap();
    let body = [header.clone(), ct].concat();
    let m = mact(&mac, 0x3D, 0, &ti, &body);
    let (answer, sw) = cmd(&mut card, 0x3D, &[body, m].concat());
    assert_eq!((sw, answer.clone()), (0x00, mact(&mac, 0x00, 1, &ti, &[])));
    assert_eq!(
        file_data(&card, 1)[..4],
        [0, 0, 0, 0],
        "invisible until commit"
    );
    // CommitTransaction, MAC mode, ctr 1.
    let m = mact(&mac, 0xC7, 1, &ti, &[]);
    let (answer, sw) = cmd(&mut card, 0xC7, &m);
    assert_eq!((sw, answer), (0x00, mact(&mac, 0x00, 2, &ti, &[])));
    assert_eq!(file_data(&card, 1)[..4], [1, 2, 3, 4]);
    // Another write, then a select: dropped.
    let mut iv = [&[0xA5, 0x5A][..], &ti, &2u16.to_le_bytes(), &[0; 8]].concat();
    enc.encrypt_block(&mut iv);
    let ct = enc.cbc_encrypt(&iv, &plain.iter().map(|b| b ^ 0xFF).collect::<Vec<_>>());
    let mut p2 = vec![9, 9, 9, 9];
    super::crypto::iso_pad(&mut p2, 16);
    let ct2 = enc.cbc_encrypt(&iv, &p2).unwrap();
    drop(ct);
    let body = [header, ct2].concat();
    let m = mact(&mac, 0x3D, 2, &ti, &body);
    assert_eq!(cmd(&mut card, 0x3D, &[body, m].concat()).1, 0x00);
    assert!(card.apps[&AID].files[&1].pending.is_some());
    assert_eq!(cmd(&mut card, 0x5A, &AID).1, 0x00);
    assert!(card.apps[&AID].files[&1].pending.is_none());
    assert_eq!(file_data(&card, 1)[..4], [1, 2, 3, 4]);
}

#[test]
fn access_rights_free_never_and_keys() {
    let mut card = card_with_app(Generation::Ev1, KeyType::Aes, 2, 0x0F);
    add_file(&mut card, 1, FileKind::Standard, 0x00, [0xEE, 0xEE], 8);
    add_file(&mut card, 2, FileKind::Standard, 0x00, [0xFF, 0xFF], 8);
    add_file(&mut card, 3, FileKind::Standard, 0x00, [0x11, 0x11], 8);
    assert_eq!(cmd(&mut card, 0x3D, &h("01 020000 0200 00 AABB")).1, 0x00);
    assert_eq!(
        cmd(&mut card, 0xBD, &h("01 000000 000000")),
        (h("0000AABB00000000"), 0x00)
    );
    assert_eq!(cmd(&mut card, 0xBD, &h("02 000000 000000")).1, 0x9D);
    assert_eq!(cmd(&mut card, 0xBD, &h("03 000000 000000")).1, 0xAE);
    assert_eq!(cmd(&mut card, 0xBD, &h("01 070000 020000")).1, 0xBE);
    assert_eq!(cmd(&mut card, 0xBD, &h("09 000000 000000")).1, 0xF0);
}

#[test]
fn long_answers_and_commands_are_chained() {
    let mut card = Desfire::new(Generation::Ev1, [4, 1, 2, 3, 4, 5, 6]);
    for i in 1..=25u8 {
        assert_eq!(cmd(&mut card, 0xCA, &[i, 0, 0, 0x0F, 0x01]).1, 0x00);
    }
    let (first, sw) = cmd(&mut card, 0x6A, &[]);
    assert_eq!((first.len(), sw), (MAX_FRAME_DATA, 0xAF));
    let (rest, sw) = cmd(&mut card, 0xAF, &[]);
    assert_eq!((rest.len(), sw), (75 - MAX_FRAME_DATA, 0x00));
    // A 100-byte plain write in two frames.
    assert_eq!(cmd(&mut card, 0x5A, &[1, 0, 0]).1, 0x00);
    assert_eq!(cmd(&mut card, 0xCD, &h("01 00 EEEE 800000")).1, 0x00);
    let data: Vec<u8> = (0..100).collect();
    let first = [h("01 000000 640000"), data[..52].to_vec()].concat();
    assert_eq!(cmd(&mut card, 0x3D, &first), (vec![], 0xAF));
    assert_eq!(cmd(&mut card, 0xAF, &data[52..]), (vec![], 0x00));
    let (a, sw) = cmd(&mut card, 0xBD, &h("01 000000 640000"));
    assert_eq!(sw, 0xAF);
    let (b, sw) = cmd(&mut card, 0xAF, &[]);
    assert_eq!(sw, 0x00);
    assert_eq!([a, b].concat(), data);
    // One frame may not carry more than the buffer.
    let big = [h("01 000000 400000"), vec![0; 64]].concat();
    assert_eq!(cmd(&mut card, 0x3D, &big).1, 0x7E);
}

#[test]
fn tear_during_a_commit_keeps_the_old_contents() {
    let mut card = card_with_app(Generation::Ev1, KeyType::Aes, 1, 0x0F);
    add_file(&mut card, 1, FileKind::Backup, 0x00, [0xEE, 0xEE], 8);
    card.set_tear_after_writes(Some(1), crate::card::TearMode::Half);
    assert_eq!(cmd(&mut card, 0x3D, &h("01 000000 0200 00 AABB")).1, 0x00);
    let r = card.process(&h("90 C7 00 00 00"));
    assert!(r.is_empty(), "no answer: the card left");
    assert!(card.is_torn());
    assert!(card.process(&h("90 60 00 00 00")).is_empty());
    card.insert();
    assert_eq!(file_data(&card, 1), vec![0; 8]);
    assert_eq!(card.writes(), 1);
}

#[test]
fn random_uid_hides_the_uid_in_get_version() {
    let mut card = Desfire::new(Generation::Ev2, [4, 1, 2, 3, 4, 5, 6]);
    card.set_random_uid(true);
    cmd(&mut card, 0x60, &[]);
    cmd(&mut card, 0xAF, &[]);
    let (c, _) = cmd(&mut card, 0xAF, &[]);
    assert_eq!(c[..7], [0; 7]);
    let uid = card.fresh_random_uid();
    assert_eq!(uid[0], 0x08);
    // GetCardUID needs an authentication, then tells the real one.
    assert_eq!(cmd(&mut card, 0x51, &[]).1, 0xAE);
}

#[test]
fn image_round_trip_keeps_applications_files_and_keys() {
    let mut card = card_with_app(Generation::Ev3, KeyType::Aes, 3, 0x0B);
    add_file(&mut card, 1, FileKind::Backup, 0x03, [0x20, 0x12], 32);
    card.apps
        .get_mut(&AID)
        .unwrap()
        .files
        .get_mut(&1)
        .unwrap()
        .data[0] = 0x42;
    card.apps.get_mut(&AID).unwrap().keys[1] = Key::new(KeyType::Aes, &[7; 16], 5).unwrap();
    let json = card.to_image();
    let back = Desfire::from_image(json.as_bytes()).unwrap();
    assert_eq!(back.apps, card.apps);
    assert_eq!(back.picc, card.picc);
    assert_eq!(back.uid, card.uid);
    assert!(Desfire::from_image(b"{}").is_err());
    assert!(Desfire::from_image(json.replace("desfire-ev3", "desfire-ev9").as_bytes()).is_err());
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Random frames, wrapped or native, inside and outside sessions, never panic the card,
        /// and every answer ends in a status.
        #[test]
        fn random_frames_never_panic(frames in proptest::collection::vec(
            (any::<bool>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..70)), 1..30)) {
            for g in [Generation::Ev0, Generation::Ev1, Generation::Ev2, Generation::Ev3] {
                let mut card = card_with_app(g, KeyType::Des, 2, 0x0F);
                add_file(&mut card, 1, FileKind::Backup, 0x03, [0x00, 0x00], 64);
                card.set_tear_after_writes(Some(3), crate::card::TearMode::Half);
                for (wrapped, ins, data) in &frames {
                    let frame = if *wrapped {
                        let mut f = vec![0x90, *ins, 0, 0, u8::try_from(data.len()).unwrap_or(0)];
                        f.extend_from_slice(data);
                        f.push(0);
                        f
                    } else {
                        [&[*ins][..], data].concat()
                    };
                    let r = card.process(&frame);
                    prop_assert!(!r.is_empty() || card.is_torn());
                    if card.is_torn() {
                        card.insert();
                    }
                }
            }
        }
    }
}

/// `AuthenticateISO` (1A) with a 2K3DES and a 3K3DES key, then a `CMACed` answer in the EV1
/// session (8-byte blocks, 3DES CMAC) and a wrong key.
#[test]
fn iso_authentication_with_2k3des_and_3k3des() {
    for (key_type, key) in [
        (KeyType::Des, h("00112233445566778899AABBCCDDEEFF")),
        (
            KeyType::Tdes3,
            h("00112233445566778899AABBCCDDEEFF0123456789ABCDEF"),
        ),
    ] {
        let mut card = card_with_app(Generation::Ev1, key_type, 1, 0x0F);
        card.apps.get_mut(&AID).unwrap().keys[0] = Key::new(key_type, &key, 0).unwrap();
        let k = Key::new(key_type, &key, 0)
            .unwrap()
            .cipher(key_type)
            .unwrap();
        let (ek, sw) = cmd(&mut card, 0x1A, &[0]);
        assert_eq!(sw, 0xAF);
        let n = ek.len();
        assert_eq!(n, if key_type == KeyType::Des { 8 } else { 16 });
        let rnd_b = k.cbc_decrypt(&[0; 8], &ek).unwrap();
        let rnd_a: Vec<u8> = (0..n).map(|i| u8::try_from(i).unwrap() * 7).collect();
        let sent = k
            .cbc_encrypt(&ek[n - 8..], &[rnd_a.clone(), rotate_left(&rnd_b)].concat())
            .unwrap();
        let (answer, sw) = cmd(&mut card, 0xAF, &sent);
        assert_eq!(sw, 0x00, "{key_type:?}");
        assert_eq!(
            k.cbc_decrypt(&sent[sent.len() - 8..], &answer).unwrap(),
            rotate_left(&rnd_a)
        );
        let kind = if key_type == KeyType::Des {
            super::session::SessionKeyKind::Tdes2
        } else {
            super::session::SessionKeyKind::Tdes3
        };
        let session_key = super::session::ev1_session_key(kind, &rnd_a, &rnd_b).unwrap();
        let s = if key_type == KeyType::Des {
            Cipher::des(&session_key).unwrap()
        } else {
            Cipher::tdes3(&session_key).unwrap()
        };
        // GetKeyVersion: the IV runs through the command's CMAC into the answer's.
        let iv = s.cmac_with_iv(&[0; 8], &[0x64, 0x00]).unwrap();
        let (answer, sw) = cmd(&mut card, 0x64, &[0]);
        assert_eq!(sw, 0x00);
        // The version of a DES-family key is in its parity bits: 0x55 for this key.
        let mac = s.cmac_with_iv(&iv, &[0x55, 0x00]).unwrap();
        assert_eq!(answer, [&[0x55][..], &mac[..8]].concat(), "{key_type:?}");
        // A wrong key fails and leaves no session.
        card.apps.get_mut(&AID).unwrap().keys[0] = Key::zero(key_type);
        let (ek, _) = cmd(&mut card, 0x1A, &[0]);
        let wrong = k.cbc_encrypt(&ek[n - 8..], &vec![0x42; 2 * n]).unwrap();
        assert_eq!(cmd(&mut card, 0xAF, &wrong).1, 0xAE);
        assert!(!card.is_authenticated());
    }
}

#[test]
fn set_configuration_random_uid_and_format_lock() {
    let mut card = Desfire::new(Generation::Ev1, [4, 1, 2, 3, 4, 5, 6]);
    assert_eq!(cmd(&mut card, 0x5C, &[0, 0, 0, 0, 0, 0, 0, 0, 0]).1, 0xAE);
    assert_eq!(legacy_auth(&mut card, 0, &[0; 8]), 0x00);
    let Session::D40 { cipher, .. } = card.session.clone() else {
        panic!("no D40 session");
    };
    let mut block = vec![0x03];
    block.extend_from_slice(&super::crypto::crc16(&[0x03]));
    block.resize(8, 0);
    cipher.decrypt_block(&mut block);
    assert_eq!(
        cmd(&mut card, 0x5C, &[&[0x00][..], &block].concat()).1,
        0x00
    );
    assert!(card.random_uid());
    assert_eq!(cmd(&mut card, 0xFC, &[]).1, 0x9D, "FormatPICC disabled");
}

#[test]
fn delete_application_from_inside_with_its_master_key() {
    let mut card = card_with_app(Generation::Ev2, KeyType::Aes, 1, 0x09);
    // Inside the application without its master key: refused.
    assert_eq!(cmd(&mut card, 0xDA, &AID).1, 0x9D);
    ev2_first(&mut card, 0, &[0; 16]).unwrap();
    let Session::Ev2 { mac, ti, .. } = card.session.clone() else {
        panic!("no EV2 session");
    };
    let m = mact(&mac, 0xDA, 0, &ti, &AID);
    let (answer, sw) = cmd(&mut card, 0xDA, &[AID.to_vec(), m].concat());
    assert_eq!((answer, sw), (mact(&mac, 0x00, 1, &ti, &[]), 0x00));
    assert!(card.apps.is_empty());
    assert!(!card.is_authenticated());
    // Back at PICC level: GetApplicationIDs (free listing) answers an empty list.
    assert_eq!(cmd(&mut card, 0x6A, &[]), (vec![], 0x00));
}

/// The legacy (D40) `ChangeKey` of the PICC key to AES, as libfreefare 0.4.0 builds it: the new
/// key, its version byte, CRC16 over both, zero padding, sent through the PCD's deciphering
/// chain.
#[test]
fn legacy_change_of_the_picc_key_to_aes_keeps_its_version() {
    let mut card = Desfire::new(Generation::Ev1, [4, 1, 2, 3, 4, 5, 6]);
    assert_eq!(legacy_auth(&mut card, 0, &[0; 8]), 0x00);
    let Session::D40 { cipher, .. } = card.session.clone() else {
        panic!("no D40 session");
    };
    let new = [0x42u8; 16];
    let mut plain = new.to_vec();
    plain.push(0x07);
    let crc = super::crypto::crc16(&plain);
    plain.extend_from_slice(&crc);
    plain.resize(24, 0);
    let mut prev = [0u8; 8];
    let mut sent = vec![0x80];
    for block in plain.chunks(8) {
        let mut x = block.to_vec();
        super::crypto::xor_into(&mut x, &prev);
        cipher.decrypt_block(&mut x);
        prev.copy_from_slice(&x);
        sent.extend_from_slice(&x);
    }
    assert_eq!(cmd(&mut card, 0xC4, &sent), (vec![], 0x00));
    assert_eq!(card.picc.key_type, KeyType::Aes);
    assert_eq!(
        (card.picc.key.bytes.clone(), card.picc.key.version),
        (new.to_vec(), 7)
    );
    assert!(!card.is_authenticated(), "the authenticated key changed");
}
