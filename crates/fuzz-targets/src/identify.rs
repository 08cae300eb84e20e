//! `card_identify`: ATR, SAK and ATS identification (`encoder_protocol::card`), and the ATR
//! the PN532 backend builds from what the chip reports (`encoder_hal::pn532::atr_for`).

use encoder_hal::pn532::atr_for;
use encoder_hal::pn532::chip::parse_list_passive_target;
use encoder_protocol::card::{self, AtrInfo};

use crate::input::Input;

/// The first byte is a SAK; the rest is both an ATR and an `InListPassiveTarget` reply (UID,
/// SAK and ATS as the chip reports them).
///
/// Properties: identification never panics; the SAK wins over the ATR whenever it says
/// something; a target the chip reports gets an ATR that our own parser reads back as the
/// same card family the SAK names (or nothing, never another family, for a Classic SAK).
pub fn card_identify(data: &[u8]) {
    let mut input = Input::new(data);
    let sak = input.byte();
    let atr = input.rest();
    let info = card::parse_atr(atr);
    if let AtrInfo::Iso14443_4 { historical } = &info {
        assert!(historical.len() <= 15);
    }
    let from_atr = card::type_from_atr(atr);
    let detailed = card::identify_detailed(atr, Some(sak));
    assert_eq!(detailed.from_atr, from_atr);
    assert_eq!(card::identify(atr, Some(sak)), detailed.card_type);
    let from_sak = card::type_from_sak(sak);
    if from_sak != card::CardType::Unknown
        && !(from_sak.is_ultralight() && from_atr.is_some_and(card::CardType::is_ultralight))
    {
        assert_eq!(detailed.card_type, from_sak);
    }
    let _ = card::identify_detailed(atr, None);
    let _ = from_sak.geometry();
    assert_eq!(card::CardType::from_name(from_sak.name()), Some(from_sak));

    if let Ok(Some(target)) = parse_list_passive_target(data) {
        let built = atr_for(&target);
        let from_built = card::type_from_atr(&built);
        assert!(
            !matches!(
                card::parse_atr(&built),
                AtrInfo::StorageCard { tck_ok: false, .. }
            ),
            "ATR {built:02X?} has a wrong TCK"
        );
        let for_sak = card::type_from_sak(target.sak);
        if for_sak.is_mifare_classic() {
            // Jobs that see only the ATR must not turn a Classic card away.
            assert!(
                from_built.is_none_or(card::CardType::is_mifare_classic),
                "{target:?}: ATR {built:02X?} names {from_built:?}"
            );
            assert_eq!(
                card::identify(&built, Some(target.sak)),
                for_sak,
                "{target:?}"
            );
        }
    }
}
