//! Card identification from the ATR the reader synthesises and from the SAK
//! (docs/reference/mifare-classic.md §9 and docs/reference/pcsc-part3.md §3-§4).
//!
//! Readers build a PC/SC Part 3 ATR `3B 8F 80 01 80 4F 0C A0 00 00 03 06 SS NN NN 00 00 00 00
//! TCK` for storage cards, where `NN NN` names the card, and `3B 8n 80 01 <historical> TCK` for
//! ISO 14443-4 cards. Readers deviate: some put `FF <SAK>` or vendor numbers (`F0 xx`) in the
//! name bytes, one vendor names a 1K `00 03` (Ultralight). So the SAK, which the card itself
//! sends, wins whenever it is known and meaningful; a disagreement is reported in
//! [`Identification::conflict`].

use crate::mifare::geometry::Geometry;

/// The kinds of card this crate tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CardType {
    /// MIFARE Classic 1K (also Plus SL1 2K and Classic 2K, used as 1K).
    Classic1k,
    /// MIFARE Classic 4K (also Plus SL1 4K).
    Classic4k,
    /// MIFARE Mini.
    ClassicMini,
    /// MIFARE Ultralight, or a member of the family the SAK alone cannot tell apart.
    Ultralight,
    /// MIFARE Ultralight C.
    UltralightC,
    /// MIFARE Ultralight EV1.
    UltralightEv1,
    /// `DESFire`, MIFARE Plus SL2/SL3, JCOP and other ISO 14443-4 cards.
    Iso14443_4,
    /// Anything else.
    Unknown,
}

impl CardType {
    /// Stable name, e.g. `"classic-1k"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Classic1k => "classic-1k",
            Self::Classic4k => "classic-4k",
            Self::ClassicMini => "classic-mini",
            Self::Ultralight => "ultralight",
            Self::UltralightC => "ultralight-c",
            Self::UltralightEv1 => "ultralight-ev1",
            Self::Iso14443_4 => "iso14443-4",
            Self::Unknown => "unknown",
        }
    }

    /// `true` for the MIFARE Classic family this crate can encode.
    pub fn is_mifare_classic(self) -> bool {
        matches!(self, Self::Classic1k | Self::Classic4k | Self::ClassicMini)
    }

    /// `true` for the Ultralight family.
    pub fn is_ultralight(self) -> bool {
        matches!(
            self,
            Self::Ultralight | Self::UltralightC | Self::UltralightEv1
        )
    }

    /// Memory layout of a MIFARE Classic card.
    pub fn geometry(self) -> Option<Geometry> {
        match self {
            Self::Classic1k => Some(Geometry::CLASSIC_1K),
            Self::Classic4k => Some(Geometry::CLASSIC_4K),
            Self::ClassicMini => Some(Geometry::MINI),
            _ => None,
        }
    }

    /// The card type with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Classic1k,
            Self::Classic4k,
            Self::ClassicMini,
            Self::Ultralight,
            Self::UltralightC,
            Self::UltralightEv1,
            Self::Iso14443_4,
            Self::Unknown,
        ]
        .into_iter()
        .find(|t| t.name() == name)
    }
}

impl std::fmt::Display for CardType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Card type from the SAK (NXP AN10833; docs/reference/mifare-classic.md §9).
///
/// Bit 3 (`08`) marks MIFARE Classic: with bit 4 (`10`) it is a 4K (`18`, `38`, `98`) unless
/// bit 0 is set too (`19`, Classic 2K, used as 1K); with bit 0 alone a Mini (`09`); else a 1K
/// (`08`, `28`, `68`, `88`). Without bit 3: bit 5 (`20`) or bit 4 (`10`, `11`: Plus SL2) is an
/// ISO 14443-4 / Plus card, `00` the Ultralight family. Bit 1 is RFU: a SAK with it set is
/// unknown.
pub fn type_from_sak(sak: u8) -> CardType {
    if sak & 0x02 != 0 {
        return CardType::Unknown;
    }
    if sak & 0x08 != 0 {
        return match (sak & 0x10 != 0, sak & 0x01 != 0) {
            (true, false) => CardType::Classic4k,
            (true, true) | (false, false) => CardType::Classic1k,
            (false, true) => CardType::ClassicMini,
        };
    }
    if sak & 0x20 != 0 || sak & 0x10 != 0 {
        return CardType::Iso14443_4;
    }
    if sak == 0x00 {
        return CardType::Ultralight;
    }
    CardType::Unknown
}

/// The PC/SC Part 3 storage-card ATR prefix (up to and including the RID and `06`).
const STORAGE_PREFIX: [u8; 12] = [
    0x3B, 0x8F, 0x80, 0x01, 0x80, 0x4F, 0x0C, 0xA0, 0x00, 0x00, 0x03, 0x06,
];

/// What the ATR says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtrInfo {
    /// A PC/SC Part 3 storage-card ATR.
    StorageCard {
        /// Standard byte SS (03 = ISO 14443-A part 3).
        standard: u8,
        /// Card name bytes NN NN.
        name: u16,
        /// Whether TCK is the XOR of T0 .. last historical byte.
        tck_ok: bool,
    },
    /// An ISO 14443-4 card (`3B 8n 80 01 ...`).
    Iso14443_4 {
        /// The historical bytes (ATS historical bytes or ATQB application data).
        historical: Vec<u8>,
    },
    /// Anything else (contact cards, garbage, empty).
    Other,
}

/// Parses an ATR; never panics.
pub fn parse_atr(atr: &[u8]) -> AtrInfo {
    if let Some(rest) = atr.strip_prefix(&STORAGE_PREFIX[..]) {
        if let [standard, n1, n2, _, _, _, _, tck] = rest {
            let computed = atr
                .get(1..atr.len() - 1)
                .unwrap_or(&[])
                .iter()
                .fold(0u8, |acc, b| acc ^ b);
            return AtrInfo::StorageCard {
                standard: *standard,
                name: u16::from_be_bytes([*n1, *n2]),
                tck_ok: computed == *tck,
            };
        }
        return AtrInfo::Other;
    }
    match atr {
        [0x3B, t0, 0x80, 0x01, rest @ ..] if t0 & 0xF0 == 0x80 => {
            let n = usize::from(t0 & 0x0F);
            let historical = rest.get(..n).unwrap_or(rest).to_vec();
            AtrInfo::Iso14443_4 { historical }
        }
        _ => AtrInfo::Other,
    }
}

/// Card type from a PC/SC Part 3 card name (NN NN). `None` when the name says nothing (0000,
/// vendor numbers `F0 xx`).
pub fn type_from_card_name(name: u16) -> Option<CardType> {
    let [hi, lo] = name.to_be_bytes();
    match (hi, lo) {
        (0x00, 0x00) | (0xF0, _) => None,
        (0xFF, sak) => Some(type_from_sak(sak)),
        (0x00, 0x01 | 0x36) => Some(CardType::Classic1k),
        (0x00, 0x02 | 0x37) => Some(CardType::Classic4k),
        (0x00, 0x03) => Some(CardType::Ultralight),
        (0x00, 0x26) => Some(CardType::ClassicMini),
        (0x00, 0x38 | 0x39) => Some(CardType::Iso14443_4),
        (0x00, 0x3A) => Some(CardType::UltralightC),
        (0x00, 0x3D) => Some(CardType::UltralightEv1),
        _ => Some(CardType::Unknown),
    }
}

/// Card type from the ATR alone; `None` when it says nothing useful.
pub fn type_from_atr(atr: &[u8]) -> Option<CardType> {
    match parse_atr(atr) {
        // SS: 00 not given, 01-03 ISO 14443-A parts 1-3. Other standards are not type A.
        AtrInfo::StorageCard { standard, name, .. } => match standard {
            0x00..=0x03 => type_from_card_name(name),
            _ => Some(CardType::Unknown),
        },
        AtrInfo::Iso14443_4 { .. } => Some(CardType::Iso14443_4),
        AtrInfo::Other => None,
    }
}

/// What the reader knows of the card in its field, read once when the hal opens the card
/// (docs/architecture.md §1-2): jobs take it and never ask the card for its UID again.
///
/// PC/SC readers give an ATR (synthesised by the reader for storage cards,
/// docs/reference/pcsc-part3.md §3) and the UID from `FF CA`; the PN532 gives UID, SAK and, for
/// ISO 14443-4 cards, the ATS, straight from the chip's `InListPassiveTarget` answer
/// (docs/reference/pn532.md §5), and no ATR.
#[derive(Clone, PartialEq, Eq)]
pub struct CardInfo {
    /// The card's UID (4, 7 or 10 bytes on a sound card; jobs check the length).
    pub uid: Vec<u8>,
    /// The answer to reset as a PC/SC reader reports it; `None` where there is none (PN532).
    pub atr: Option<Vec<u8>>,
    /// The SAK, where the reader gives it (PN532; PC/SC readers of the ACR122U kind do not).
    pub sak: Option<u8>,
    /// The ATS of an ISO 14443-4 card, where the reader gives it.
    pub ats: Option<Vec<u8>>,
    /// The identification of ATR and SAK, made once in [`CardInfo::new`].
    pub identification: Identification,
}

impl CardInfo {
    /// Identifies the card from what the reader gave (see [`identify_detailed`]).
    pub fn new(uid: Vec<u8>, atr: Option<Vec<u8>>, sak: Option<u8>, ats: Option<Vec<u8>>) -> Self {
        let identification = identify_detailed(atr.as_deref().unwrap_or_default(), sak);
        Self {
            uid,
            atr,
            sak,
            ats,
            identification,
        }
    }

    /// The card type decided by [`identify_detailed`].
    pub fn card_type(&self) -> CardType {
        self.identification.card_type
    }

    /// `true` when the ATR or the SAK said what the card is (an unidentifiable card is
    /// treated as a possible MIFARE Classic 1K and probed, docs/card-format.md §2).
    pub fn is_identified(&self) -> bool {
        self.identification.from_atr.is_some() || self.identification.from_sak.is_some()
    }
}

impl std::fmt::Debug for CardInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardInfo")
            .field("uid", &crate::hex::encode(&self.uid))
            .field("atr", &self.atr.as_deref().map(crate::hex::encode))
            .field("sak", &self.sak)
            .field("ats", &self.ats.as_deref().map(crate::hex::encode))
            .field("card_type", &self.card_type().name())
            .finish_non_exhaustive()
    }
}

/// The full result of identification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identification {
    /// The decision.
    pub card_type: CardType,
    /// What the ATR said.
    pub from_atr: Option<CardType>,
    /// What the SAK said.
    pub from_sak: Option<CardType>,
    /// ATR and SAK both said something and disagree (beyond the Ultralight family's
    /// sub-types). The SAK won.
    pub conflict: bool,
}

/// Identifies a card from its ATR and, when known, its SAK. See the module docs for the
/// policy. Never panics.
pub fn identify(atr: &[u8], sak: Option<u8>) -> CardType {
    identify_detailed(atr, sak).card_type
}

/// Like [`identify`], with the evidence.
pub fn identify_detailed(atr: &[u8], sak: Option<u8>) -> Identification {
    let from_atr = type_from_atr(atr);
    let from_sak = sak.map(type_from_sak);
    let (card_type, conflict) = match (from_atr, from_sak) {
        (Some(a), Some(s)) if a.is_ultralight() && s.is_ultralight() => (a, false),
        (Some(a), Some(CardType::Unknown)) => (a, a != CardType::Unknown),
        (Some(a), Some(s)) => (s, a != s),
        (None, Some(s)) => (s, false),
        (Some(a), None) => (a, false),
        (None, None) => (CardType::Unknown, false),
    };
    Identification {
        card_type,
        from_atr,
        from_sak,
        conflict,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::hex;
    use proptest::prelude::*;

    fn atr(text: &str) -> Vec<u8> {
        hex::decode(text).unwrap()
    }

    #[test]
    fn reference_examples() {
        let one_k = atr("3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 6A");
        assert!(matches!(
            parse_atr(&one_k),
            AtrInfo::StorageCard {
                tck_ok: true,
                name: 1,
                ..
            }
        ));
        assert_eq!(identify(&one_k, None), CardType::Classic1k);
        assert_eq!(identify(&one_k, Some(0x08)), CardType::Classic1k);
        assert_eq!(
            identify(
                &atr("3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 02 00 00 00 00 69"),
                None
            ),
            CardType::Classic4k
        );
        assert_eq!(
            identify(&atr("3B 81 80 01 80 80"), None),
            CardType::Iso14443_4
        );
        // Infineon SLE 66R35: FF <SAK 88> in the name bytes.
        assert_eq!(
            identify(
                &atr("3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 FF 88 00 00 00 00 1C"),
                None
            ),
            CardType::Classic1k
        );
        // Vendor number F0 xx: nothing known without the SAK.
        let topaz = atr("3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 F0 04 00 00 00 00 9F");
        assert_eq!(identify(&topaz, None), CardType::Unknown);
        assert_eq!(identify(&topaz, Some(0x08)), CardType::Classic1k);
    }

    #[test]
    fn sak_wins_and_conflicts_are_flagged() {
        // The vendor that names a 1K "00 03".
        let ul = atr("3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 03 00 00 00 00 68");
        let id = identify_detailed(&ul, Some(0x08));
        assert_eq!(id.card_type, CardType::Classic1k);
        assert!(id.conflict);
        let id = identify_detailed(&ul, Some(0x00));
        assert_eq!(id.card_type, CardType::Ultralight);
        assert!(!id.conflict);
        let ulc = atr("3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 3A 00 00 00 00 51");
        assert_eq!(identify(&ulc, Some(0x00)), CardType::UltralightC);
        assert_eq!(identify(&[], Some(0x20)), CardType::Iso14443_4);
        assert_eq!(identify(&[], Some(0x09)), CardType::ClassicMini);
        assert_eq!(identify(&[], Some(0x18)), CardType::Classic4k);
        assert_eq!(identify(&[], Some(0x28)), CardType::Classic1k);
        assert_eq!(identify(&[], None), CardType::Unknown);
    }

    #[test]
    fn names_round_trip() {
        for t in [
            CardType::Classic1k,
            CardType::Iso14443_4,
            CardType::UltralightEv1,
        ] {
            assert_eq!(CardType::from_name(t.name()), Some(t));
        }
    }

    proptest! {
        #[test]
        fn identify_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40), sak in any::<Option<u8>>()) {
            let _ = identify_detailed(&bytes, sak);
        }

        #[test]
        fn storage_atr_names_never_panic(ss in any::<u8>(), name in any::<u16>(), sak in any::<Option<u8>>()) {
            let mut a = STORAGE_PREFIX.to_vec();
            a.push(ss);
            a.extend_from_slice(&name.to_be_bytes());
            a.extend_from_slice(&[0, 0, 0, 0]);
            let tck = a[1..].iter().fold(0u8, |x, b| x ^ b);
            a.push(tck);
            let is_storage = matches!(parse_atr(&a), AtrInfo::StorageCard { tck_ok: true, .. });
            prop_assert!(is_storage);
            let _ = identify(&a, sak);
        }
    }
}
