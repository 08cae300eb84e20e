use proptest::prelude::*;

use super::*;
use crate::error::parse_hex;
use crate::mifare::SectorState;

fn h(s: &str) -> Vec<u8> {
    parse_hex(s).unwrap()
}

fn tx(card: &mut VirtualCard, apdu: &str) -> String {
    crate::error::hex(&card.transmit(&h(apdu)))
}

fn classic() -> VirtualCard {
    VirtualCard::new(CardType::Classic1k, None).unwrap()
}

/// Loads the factory key in slot 0 and authenticates `block` with key A.
fn auth_factory(card: &mut VirtualCard, block: u8) -> String {
    assert_eq!(tx(card, "FF 82 00 00 06 FF FF FF FF FF FF"), "90 00");
    tx(card, &format!("FF 86 00 00 05 01 00 {block:02X} 60 00"))
}

#[test]
fn card_type_names_parse() {
    for t in CardType::ALL {
        assert_eq!(t.name().parse::<CardType>().unwrap(), t);
        assert_eq!(t.to_string(), t.name());
    }
    assert!("classic-2k".parse::<CardType>().is_err());
    assert_eq!("half".parse::<TearMode>().unwrap(), TearMode::Half);
    assert!("some".parse::<TearMode>().is_err());
}

#[test]
fn atrs_per_type() {
    let part3 = |name: &str, tck: &str| {
        h(&format!(
            "3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 {name} 00 00 00 00 {tck}"
        ))
    };
    assert_eq!(
        CardType::Classic1k.atr(),
        h("3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 6A")
    );
    assert_eq!(CardType::Classic4k.atr(), part3("00 02", "69"));
    assert_eq!(CardType::Ultralight.atr(), part3("00 03", "68"));
    assert_eq!(CardType::Mini.atr(), part3("00 26", "4D"));
    assert_eq!(CardType::Desfire.atr(), h("3B 81 80 01 80 80"));
    for t in CardType::ALL {
        let atr = t.atr();
        assert_eq!(atr[1..].iter().fold(0, |a, b| a ^ b), 0, "TCK of {t}");
    }
}

#[test]
fn identity_per_type() {
    let c = classic();
    assert_eq!(
        (c.uid(), c.sak(), c.atqa()),
        (&[0xDE, 0xAD, 0xBE, 0xEF][..], 0x08, [0x00, 0x04])
    );
    let c = VirtualCard::new(CardType::Classic4k, Some(&[1, 2, 3, 4, 5, 6, 7])).unwrap();
    assert_eq!((c.sak(), c.atqa()), (0x18, [0x00, 0x42]));
    assert_eq!(VirtualCard::new(CardType::Mini, None).unwrap().sak(), 0x09);
    let u = VirtualCard::new(CardType::Ultralight, None).unwrap();
    assert_eq!((u.uid().len(), u.sak(), u.atqa()), (7, 0x00, [0x00, 0x44]));
    let d = VirtualCard::new(CardType::Desfire, None).unwrap();
    assert_eq!((d.uid().len(), d.sak()), (7, 0x20));
    assert!(VirtualCard::new(CardType::Classic1k, Some(&[1, 2, 3])).is_err());
    assert!(VirtualCard::new(CardType::Ultralight, Some(&[1, 2, 3, 4])).is_err());
}

#[test]
fn get_uid() {
    let mut c = VirtualCard::new(CardType::Classic1k, Some(&h("04 DE AD BE"))).unwrap();
    assert_eq!(tx(&mut c, "FF CA 00 00 00"), "04 DE AD BE 90 00");
    assert_eq!(tx(&mut c, "FF CA 00 00 04"), "04 DE AD BE 90 00");
    assert_eq!(tx(&mut c, "FF CA 00 00 02"), "6C 04");
    assert_eq!(tx(&mut c, "FF CA 00 00"), "67 00");
    assert_eq!(tx(&mut c, "FF CA 01 00 00"), "6A 81", "no ATS on a Classic");
    // Block 0 carries UID, BCC, SAK, ATQA.
    assert_eq!(auth_factory(&mut c, 0), "90 00");
    assert!(tx(&mut c, "FF B0 00 00 10").starts_with("04 DE AD BE C9 08 04 00"));
}

#[test]
fn load_key_rules() {
    let mut c = classic();
    assert_eq!(tx(&mut c, "FF 82 00 01 06 A0 A1 A2 A3 A4 A5"), "90 00");
    assert_eq!(
        tx(&mut c, "FF 82 00 02 06 A0 A1 A2 A3 A4 A5"),
        "63 00",
        "bad key number"
    );
    assert_eq!(
        tx(&mut c, "FF 82 20 00 06 A0 A1 A2 A3 A4 A5"),
        "63 00",
        "non-volatile"
    );
    assert_eq!(tx(&mut c, "FF 82 00 00 05 A0 A1 A2 A3 A4"), "67 00");
    assert_eq!(tx(&mut c, "FF 82 00 00 06 A0 A1 A2 A3 A4"), "67 00");
    // Authentication with an empty slot fails.
    assert_eq!(tx(&mut c, "FF 86 00 00 05 01 00 04 60 00"), "63 00");
}

#[test]
fn authenticate_read_write() {
    let mut c = classic();
    assert_eq!(auth_factory(&mut c, 4), "90 00");
    assert_eq!(
        tx(
            &mut c,
            "FF D6 00 05 10 00 11 22 33 44 55 66 77 88 99 AA BB CC DD EE FF"
        ),
        "90 00"
    );
    assert_eq!(
        tx(&mut c, "FF B0 00 05 10"),
        "00 11 22 33 44 55 66 77 88 99 AA BB CC DD EE FF 90 00"
    );
    assert_eq!(
        tx(&mut c, "FF B0 00 07 10"),
        "00 00 00 00 00 00 FF 07 80 69 FF FF FF FF FF FF 90 00"
    );
    assert_eq!(c.writes(), 1);
    // Other sector not authenticated.
    assert_eq!(tx(&mut c, "FF B0 00 08 10"), "63 00");
    // Obsolete authenticate form, key B slot 1.
    assert_eq!(tx(&mut c, "FF 82 00 01 06 FF FF FF FF FF FF"), "90 00");
    assert_eq!(tx(&mut c, "FF 88 00 08 60 01"), "90 00");
    assert_eq!(
        tx(&mut c, "FF B0 00 08 10"),
        format!("{}90 00", "00 ".repeat(16))
    );
    assert_eq!(
        tx(&mut c, "FF B0 00 05 10"),
        "63 00",
        "only the last authentication counts"
    );
}

#[test]
fn failed_authentication_halts_until_the_reader_reselects() {
    let mut c = classic();
    assert_eq!(auth_factory(&mut c, 4), "90 00");
    assert_eq!(tx(&mut c, "FF 82 00 01 06 00 00 00 00 00 00"), "90 00");
    assert_eq!(tx(&mut c, "FF 86 00 00 05 01 00 04 60 01"), "63 00");
    assert_eq!(tx(&mut c, "FF B0 00 04 10"), "63 00");
    assert_eq!(
        tx(
            &mut c,
            "FF D6 00 04 10 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
        ),
        "63 00"
    );
    assert!(c.classic().unwrap().is_halted());
    // The next authentication re-selects first.
    assert_eq!(tx(&mut c, "FF 86 00 00 05 01 00 04 60 00"), "90 00");
    assert_eq!(tx(&mut c, "FF B0 00 04 10").len(), 16 * 3 + 5);
}

#[test]
fn power_events_clear_authentication() {
    let mut c = classic();
    for event in [
        VirtualCard::power_off,
        VirtualCard::power_on,
        VirtualCard::reset,
        VirtualCard::insert,
    ] {
        assert_eq!(auth_factory(&mut c, 4), "90 00");
        event(&mut c);
        assert_eq!(tx(&mut c, "FF B0 00 04 10"), "63 00");
    }
    // Key slots are reader memory: they survive.
    assert_eq!(tx(&mut c, "FF 86 00 00 05 01 00 04 60 00"), "90 00");
}

#[test]
fn malformed_and_unsupported() {
    let mut c = classic();
    assert_eq!(auth_factory(&mut c, 4), "90 00");
    assert_eq!(tx(&mut c, ""), "67 00");
    assert_eq!(tx(&mut c, "FF B0"), "67 00");
    assert_eq!(tx(&mut c, "FF B0 00 04"), "67 00");
    assert_eq!(tx(&mut c, "FF B0 00 04 04"), "6C 10");
    assert_eq!(tx(&mut c, "FF B0 00 04 10 00"), "67 00");
    assert_eq!(
        tx(&mut c, "FF B0 00 04 00").len(),
        16 * 3 + 5,
        "Le 00 reads the block"
    );
    assert_eq!(tx(&mut c, "FF B0 01 04 10"), "63 00");
    assert_eq!(tx(&mut c, "FF D6 00 04 10 01 02"), "67 00");
    assert_eq!(tx(&mut c, "FF D6 00 04 04 01 02 03 04"), "67 00");
    assert_eq!(tx(&mut c, "FF D6 00 04 00"), "67 00");
    assert_eq!(tx(&mut c, "FF 86 00 00 05 01 00 04 60"), "67 00");
    assert_eq!(tx(&mut c, "FF 86 00 00 05 01 00 04 62 00"), "63 00");
    assert_eq!(tx(&mut c, "FF 86 00 00 05 02 00 04 60 00"), "63 00");
    assert_eq!(tx(&mut c, "FF 00 48 00 00"), "6A 81");
    assert_eq!(tx(&mut c, "FF 20 00 00 00"), "6A 81");
    assert_eq!(tx(&mut c, "00 A4 04 00 00"), "6E 00");
}

#[test]
fn invalid_block_numbers() {
    let mut c = classic();
    assert_eq!(auth_factory(&mut c, 64), "63 00");
    assert_eq!(auth_factory(&mut c, 60), "90 00");
    assert_eq!(tx(&mut c, "FF B0 00 40 10"), "63 00");
    let mut c = VirtualCard::new(CardType::Classic4k, None).unwrap();
    assert_eq!(auth_factory(&mut c, 0xFF), "90 00");
    assert_eq!(
        tx(&mut c, "FF B0 00 F0 10"),
        format!("{}90 00", "00 ".repeat(16))
    );
}

#[test]
fn block_zero_read_only_and_bricking_through_apdus() {
    let mut c = classic();
    assert_eq!(auth_factory(&mut c, 0), "90 00");
    assert_eq!(
        tx(&mut c, &format!("FF D6 00 00 10 {}", "00 ".repeat(16))),
        "63 00"
    );
    assert_eq!(auth_factory(&mut c, 7), "90 00");
    assert_eq!(
        tx(
            &mut c,
            "FF D6 00 07 10 FF FF FF FF FF FF FF 07 81 69 FF FF FF FF FF FF"
        ),
        "90 00"
    );
    assert_eq!(c.classic().unwrap().sector_state(1), SectorState::Blocked);
    assert_eq!(tx(&mut c, "FF B0 00 04 10"), "63 00");
    assert_eq!(auth_factory(&mut c, 4), "63 00");
    assert_eq!(tx(&mut c, "FF 88 00 04 61 00"), "63 00");
}

#[test]
fn ultralight_behaviour() {
    let mut u = VirtualCard::new(CardType::Ultralight, None).unwrap();
    assert_eq!(tx(&mut u, "FF CA 00 00 00"), "04 11 22 33 44 55 66 90 00");
    let r = tx(&mut u, "FF B0 00 00 10");
    assert!(r.starts_with("04 11 22"), "{r}");
    assert!(r.ends_with("90 00"));
    assert_eq!(r.len(), 16 * 3 + 5);
    assert_eq!(tx(&mut u, "FF B0 00 04 04"), "00 00 00 00 90 00");
    assert_eq!(tx(&mut u, "FF D6 00 04 04 01 02 03 04"), "90 00");
    assert_eq!(tx(&mut u, "FF B0 00 04 04"), "01 02 03 04 90 00");
    assert_eq!(
        tx(&mut u, "FF D6 00 00 04 01 02 03 04"),
        "63 00",
        "UID page"
    );
    assert_eq!(tx(&mut u, "FF B0 00 10 10"), "63 00");
    assert_eq!(tx(&mut u, "FF 82 00 00 06 FF FF FF FF FF FF"), "90 00");
    assert_eq!(tx(&mut u, "FF 86 00 00 05 01 00 04 60 00"), "63 00");
    assert_eq!(tx(&mut u, "FF CA 01 00 00"), "6A 81");
    let image = u.image();
    assert_eq!(image.len(), 64);
    let back = VirtualCard::from_image(CardType::Ultralight, &image).unwrap();
    assert_eq!(back.uid(), u.uid());
}

#[test]
fn desfire_behaviour() {
    let mut d = VirtualCard::new(CardType::Desfire, None).unwrap();
    assert_eq!(tx(&mut d, "FF CA 00 00 00"), "04 22 33 44 55 66 77 90 00");
    assert_eq!(tx(&mut d, "FF CA 01 00 00"), "06 75 77 81 02 80 90 00");
    assert_eq!(tx(&mut d, "FF 82 00 00 06 FF FF FF FF FF FF"), "90 00");
    assert_eq!(tx(&mut d, "FF 86 00 00 05 01 00 04 60 00"), "63 00");
    assert_eq!(tx(&mut d, "FF 88 00 04 60 00"), "63 00");
    assert_eq!(tx(&mut d, "FF B0 00 04 10"), "63 00");
    assert_eq!(
        tx(&mut d, &format!("FF D6 00 04 10 {}", "00 ".repeat(16))),
        "63 00"
    );
    let image = d.image();
    assert!(image.starts_with(b"{"), "a JSON image");
    let back = VirtualCard::from_image(CardType::Desfire, &image).unwrap();
    assert_eq!(back.uid(), d.uid());
    assert!(matches!(
        VirtualCard::from_image(CardType::Desfire, &[]),
        Err(SimError::BadImage { .. })
    ));
    assert!(matches!(
        VirtualCard::from_image(CardType::DesfireEv2, &image),
        Err(SimError::BadImage { .. })
    ));
}

#[test]
fn desfire_through_the_reader_logs_and_tears() {
    let mut d = VirtualCard::new(CardType::DesfireEv2, Some(&h("04 A1 A2 A3 A4 A5 A6"))).unwrap();
    assert_eq!(tx(&mut d, "FF CA 00 00 00"), "04 A1 A2 A3 A4 A5 A6 90 00");
    assert_eq!(tx(&mut d, "90 60 00 00 00"), "04 01 01 12 00 1A 05 91 AF");
    assert_eq!(tx(&mut d, "90 AF 00 00 00"), "04 01 01 02 01 1A 05 91 AF");
    assert_eq!(d.apdu_count(), 3);
    assert_eq!(d.apdu_log()[1].command, h("90 60 00 00 00"));
    // CreateApplication is the first write: torn, the card leaves and stays out.
    d.set_tear_after_writes(Some(0), TearMode::Landed);
    assert_eq!(tx(&mut d, "90 CA 00 00 05 01 00 00 0F 82 00"), "63 00");
    assert!(d.is_torn());
    assert_eq!(d.apdu_log().last().unwrap().response, None);
    assert_eq!(tx(&mut d, "90 60 00 00 00"), "63 00");
    d.insert();
    let card = d.desfire().unwrap();
    assert_eq!(
        card.applications().len(),
        1,
        "landed: the application is there"
    );
    assert!(card.application(0x01).is_some());
    d.clear_apdu_log();
    assert_eq!(d.apdu_count(), 0);
}

#[test]
fn image_round_trip_and_wrong_size() {
    for (t, len) in [
        (CardType::Mini, 320),
        (CardType::Classic1k, 1024),
        (CardType::Classic4k, 4096),
    ] {
        let mut c = VirtualCard::new(t, Some(&[1, 2, 3, 4])).unwrap();
        assert_eq!(auth_factory(&mut c, 4), "90 00");
        assert_eq!(
            tx(&mut c, &format!("FF D6 00 04 10 {}", "AB ".repeat(16))),
            "90 00"
        );
        let image = c.image();
        assert_eq!(image.len(), len);
        let mut back = VirtualCard::from_image(t, &image).unwrap();
        assert_eq!(back.uid(), &[1, 2, 3, 4]);
        assert_eq!(back.image(), image);
        assert_eq!(auth_factory(&mut back, 4), "90 00");
        assert_eq!(
            tx(&mut back, "FF B0 00 04 10"),
            format!("{}90 00", "AB ".repeat(16))
        );
        let err = VirtualCard::from_image(t, &image[..len - 1]).unwrap_err();
        assert!(
            matches!(err, SimError::ImageSize { got, .. } if got == len - 1),
            "{err}"
        );
    }
    let seven = VirtualCard::new(CardType::Classic1k, Some(&[4, 1, 2, 3, 4, 5, 6])).unwrap();
    let back = VirtualCard::from_image(CardType::Classic1k, &seven.image()).unwrap();
    assert_eq!(back.uid(), &[4, 1, 2, 3, 4, 5, 6]);
}

fn tear_card(mode: TearMode) -> VirtualCard {
    let mut c = classic();
    assert_eq!(auth_factory(&mut c, 4), "90 00");
    assert_eq!(
        tx(&mut c, &format!("FF D6 00 04 10 {}", "11 ".repeat(16))),
        "90 00"
    );
    c.set_tear_after_writes(Some(1), mode);
    assert_eq!(
        tx(&mut c, &format!("FF D6 00 05 10 {}", "22 ".repeat(16))),
        "90 00"
    );
    assert!(!c.is_torn());
    assert_eq!(
        tx(&mut c, &format!("FF D6 00 04 10 {}", "33 ".repeat(16))),
        "63 00"
    );
    assert!(c.is_torn());
    assert_eq!(c.writes(), 2);
    assert_eq!(tx(&mut c, "FF CA 00 00 00"), "63 00", "the card is gone");
    c.insert();
    assert!(!c.is_torn());
    assert_eq!(auth_factory(&mut c, 4), "90 00");
    c
}

#[test]
fn tear_modes() {
    let mut c = tear_card(TearMode::Lost);
    assert_eq!(
        tx(&mut c, "FF B0 00 04 10"),
        format!("{}90 00", "11 ".repeat(16))
    );
    let mut c = tear_card(TearMode::Half);
    assert_eq!(
        tx(&mut c, "FF B0 00 04 10"),
        format!("{}{}90 00", "33 ".repeat(8), "11 ".repeat(8))
    );
    let mut c = tear_card(TearMode::Landed);
    assert_eq!(
        tx(&mut c, "FF B0 00 04 10"),
        format!("{}90 00", "33 ".repeat(16))
    );
    // The tear fires once.
    assert_eq!(
        tx(&mut c, &format!("FF D6 00 04 10 {}", "44 ".repeat(16))),
        "90 00"
    );
    assert!(!c.is_torn());
}

#[test]
fn tear_on_ultralight() {
    let mut u = VirtualCard::new(CardType::Ultralight, None).unwrap();
    u.set_tear_after_writes(Some(0), TearMode::Half);
    assert_eq!(tx(&mut u, "FF D6 00 05 04 01 02 03 04"), "63 00");
    assert!(u.is_torn());
    u.insert();
    assert_eq!(tx(&mut u, "FF B0 00 05 04"), "01 02 00 00 90 00");
}

#[test]
fn a_worn_card_acknowledges_writes_but_keeps_a_flipped_bit() {
    let mut c = VirtualCard::new(CardType::Classic1k, None).unwrap();
    c.set_worn(true);
    assert_eq!(tx(&mut c, "FF 82 00 00 06 FF FF FF FF FF FF"), "90 00");
    assert_eq!(tx(&mut c, "FF 86 00 00 05 01 00 04 60 00"), "90 00");
    assert_eq!(
        tx(&mut c, &format!("FF D6 00 04 10 {}", "22 ".repeat(16))),
        "90 00"
    );
    assert_eq!(
        tx(&mut c, "FF B0 00 04 10"),
        format!("{}23 90 00", "22 ".repeat(15))
    );
    // Trailers are stored as written.
    assert_eq!(
        tx(
            &mut c,
            "FF D6 00 07 10 FF FF FF FF FF FF FF 07 80 42 FF FF FF FF FF FF"
        ),
        "90 00"
    );
    assert_eq!(
        tx(&mut c, "FF B0 00 07 10"),
        "00 00 00 00 00 00 FF 07 80 42 FF FF FF FF FF FF 90 00"
    );
}

proptest! {
    #[test]
    fn random_apdus_never_panic(apdus in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..20)) {
        for t in CardType::ALL {
            let mut c = VirtualCard::new(t, None).unwrap();
            c.set_tear_after_writes(Some(2), TearMode::Half);
            for apdu in &apdus {
                let r = c.transmit(apdu);
                // A status word; a native DESFire frame (class not 90) may answer its status byte alone.
                prop_assert!(r.len() >= 2 || (t.is_desfire() && r.len() == 1));
            }
        }
    }

    #[test]
    fn random_part3_apdus_never_panic(ins in prop::sample::select(vec![0xCA_u8, 0x82, 0x86, 0x88, 0xB0, 0xD6]), rest in proptest::collection::vec(any::<u8>(), 0..24)) {
        for t in CardType::ALL {
            let mut c = VirtualCard::new(t, None).unwrap();
            let mut apdu = vec![0xFF, ins];
            apdu.extend_from_slice(&rest);
            prop_assert!(c.transmit(&apdu).len() >= 2);
        }
    }
}

fn behind(profile: &str) -> VirtualCard {
    let mut card = classic();
    card.set_reader_profile(profile.parse().unwrap());
    card
}

/// Each profile takes its own family's forms and refuses the others' as that reader does
/// (docs/reference/readers.md §3-§7, §9).
#[test]
fn profiles_speak_their_dialects_and_refuse_the_others() {
    let acs_load = "FF 82 00 00 06 FF FF FF FF FF FF";
    // The ACR122U form: taken by ACS and the baseline, refused by OMNIKEY (key memory) and
    // the key-type readers (key number).
    for (profile, want) in [
        ("acr122u", "90 00"),
        ("acr1252u", "90 00"),
        ("baseline", "90 00"),
        ("omnikey5422", "69 86"),
        ("utrust3720f", "69 88"),
        ("scl3711", "69 88"),
    ] {
        assert_eq!(tx(&mut behind(profile), acs_load), want, "{profile}");
    }
    // OMNIKEY: P1 20, slots up to 1F.
    let mut card = behind("omnikey5022");
    assert_eq!(tx(&mut card, "FF 82 20 1F 06 FF FF FF FF FF FF"), "90 00");
    assert_eq!(tx(&mut card, "FF 86 00 00 05 01 00 04 60 1F"), "90 00");
    assert_eq!(tx(&mut card, "FF B0 00 04 00").len(), 16 * 3 + 5);
    assert_eq!(tx(&mut card, "FF 88 00 04 60 1F"), "6A 81");
    assert_eq!(tx(&mut card, "FF 00 40 A8 04 01 01 01 01"), "6A 81");
    // uTrust 3720F: key type in P2, key number 01, whole block whatever Le, FF B1.
    let mut card = behind("utrust3720f");
    assert_eq!(tx(&mut card, "FF 82 00 60 06 FF FF FF FF FF FF"), "90 00");
    assert_eq!(tx(&mut card, "FF 86 00 00 05 01 00 04 60 00"), "69 88");
    assert_eq!(tx(&mut card, "FF 86 00 00 05 01 00 04 60 01"), "90 00");
    assert_eq!(card.transmit(&h("FF B0 00 04 02")).len(), 18);
    assert_eq!(card.transmit(&h("FF B1 00 01 00")).len(), 50);
    // ACR1252U: up to three blocks, never a trailer or across a sector; the ACR122U one.
    let mut card = behind("acr1252u");
    assert_eq!(auth_factory(&mut card, 4), "90 00");
    assert_eq!(card.transmit(&h("FF B0 00 04 30")).len(), 50);
    assert_eq!(tx(&mut card, "FF B0 00 05 30"), "63 00");
    assert_eq!(tx(&mut card, "FF 00 40 AA 04 01 01 01 01"), "90 02");
    let mut card = behind("acr122u");
    assert_eq!(auth_factory(&mut card, 4), "90 00");
    assert_eq!(tx(&mut card, "FF B0 00 04 30"), "6C 10");
    assert_eq!(tx(&mut card, "FF 00 40 54 04 02 01 03 01"), "90 00");
}

/// After a wrong key the card is halted: the ACR122U selects it again by itself; a reader
/// that does not leaves it halted until a reset.
#[test]
fn a_halted_card_needs_a_reset_behind_readers_that_do_not_reselect() {
    for (profile, reselects) in [("acr122u", true), ("acr1252u", false), ("baseline", false)] {
        let mut card = behind(profile);
        assert_eq!(tx(&mut card, "FF 82 00 01 06 12 34 56 78 9A BC"), "90 00");
        assert_eq!(tx(&mut card, "FF 86 00 00 05 01 00 04 60 01"), "63 00");
        let again = auth_factory(&mut card, 4);
        assert_eq!(again == "90 00", reselects, "{profile}: {again}");
        card.reset();
        assert_eq!(
            auth_factory(&mut card, 4),
            "90 00",
            "{profile} after a reset"
        );
    }
}
