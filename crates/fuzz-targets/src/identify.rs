//! `card_identify`: ATR, SAK and ATS identification (`encoder_protocol::card`), and the
//! `CardInfo` of what a PN532 reports (UID, SAK, ATS; no ATR).

use encoder_hal::pn532::chip::parse_list_passive_target;
use encoder_protocol::card::{self, AtrInfo, CardInfo};

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
        // What the PN532 backend hands a job: the chip's own answer, no made-up ATR.
        let ats = (!target.ats.is_empty()).then(|| target.ats.clone());
        let info = CardInfo::new(target.uid.clone(), None, Some(target.sak), ats);
        let for_sak = card::type_from_sak(target.sak);
        assert_eq!(info.card_type(), for_sak, "{target:?}");
        assert!(info.is_identified());
        // An ATR a PC/SC reader gives beside the SAK never turns a Classic card away.
        let with_atr = CardInfo::new(target.uid, Some(atr.to_vec()), Some(target.sak), None);
        if for_sak.is_mifare_classic() {
            assert!(with_atr.card_type().is_mifare_classic(), "{with_atr:?}");
        }
    }
}
