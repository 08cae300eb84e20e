//! A virtual card of any supported type behind a PC/SC Part 3 reader front end that answers
//! as a reader family does ([`ReaderProfile`]; by default the ACS ACR122U,
//! docs/reference/pcsc-part3.md §5, docs/reference/readers.md).
//!
//! [`VirtualCard::transmit`] takes a command APDU as a PC/SC client sends it to the reader
//! and returns the full response (data + status word). The reader side holds the profile's
//! key slots and, behind an ACR122U, re-selects a halted card before an authentication; the
//! card side is [`crate::mifare::MifareClassic`], [`crate::ultralight::Ultralight`] or a
//! [`crate::desfire::Desfire`] (ISO 14443-4), to which the reader passes every APDU whose
//! class is not `FF`.

mod part3;
pub mod profile;

use std::fmt;
use std::str::FromStr;

use crate::atr;
use crate::desfire::{Desfire, Generation};
use crate::error::SimError;
use crate::mifare::{self, Geometry, MifareClassic};
use crate::ultralight::{self, Ultralight};

pub use part3::sw;
pub use profile::ReaderProfile;

/// The kinds of card the simulator can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CardType {
    /// MIFARE Classic 1K (SAK 08, ATR name 0001).
    Classic1k,
    /// MIFARE Classic 4K (SAK 18, ATR name 0002).
    Classic4k,
    /// MIFARE Mini (SAK 09, ATR name 0026).
    Mini,
    /// MIFARE Ultralight (SAK 00, ATR name 0003, 7-byte UID, 16 pages).
    Ultralight,
    /// MIFARE DESFire MF3ICD40 ("EV0"): DES only, no AES, no EV2 authentication.
    DesfireEv0,
    /// MIFARE DESFire EV1 (CLI `desfire-ev1`, alias `desfire`).
    DesfireEv1,
    /// MIFARE DESFire EV2.
    DesfireEv2,
    /// MIFARE DESFire EV3.
    DesfireEv3,
}

#[allow(non_upper_case_globals)]
impl CardType {
    /// `desfire`: the EV1 (kept for the name's older users).
    pub const Desfire: Self = Self::DesfireEv1;
}

/// ATS of the simulated DESFire (EV1-like): TL 06, T0 75, TA 77, TB 81, TC 02, historical
/// byte 80.
pub const DESFIRE_ATS: [u8; 6] = [0x06, 0x75, 0x77, 0x81, 0x02, 0x80];

impl CardType {
    /// Every type, in CLI order.
    pub const ALL: [Self; 8] = [
        Self::Classic1k,
        Self::Classic4k,
        Self::Mini,
        Self::Ultralight,
        Self::DesfireEv0,
        Self::DesfireEv1,
        Self::DesfireEv2,
        Self::DesfireEv3,
    ];

    /// The CLI name (`classic-1k`, `classic-4k`, `mini`, `ultralight`, `desfire-ev0` ...
    /// `desfire-ev3`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Classic1k => "classic-1k",
            Self::Classic4k => "classic-4k",
            Self::Mini => "mini",
            Self::Ultralight => "ultralight",
            Self::DesfireEv0 => "desfire-ev0",
            Self::DesfireEv1 => "desfire-ev1",
            Self::DesfireEv2 => "desfire-ev2",
            Self::DesfireEv3 => "desfire-ev3",
        }
    }

    /// The DESFire generation, for the DESFire types.
    pub const fn desfire_generation(self) -> Option<Generation> {
        match self {
            Self::DesfireEv0 => Some(Generation::Ev0),
            Self::DesfireEv1 => Some(Generation::Ev1),
            Self::DesfireEv2 => Some(Generation::Ev2),
            Self::DesfireEv3 => Some(Generation::Ev3),
            _ => None,
        }
    }

    /// Whether the type is a DESFire (ISO 14443-4, SAK 20).
    pub const fn is_desfire(self) -> bool {
        self.desfire_generation().is_some()
    }

    /// Whether `--load` / `--save` work for this type (raw images; JSON for DESFire).
    pub const fn has_image(self) -> bool {
        self.image_len().is_some() || self.is_desfire()
    }

    /// MIFARE Classic geometry, for the Classic types.
    pub const fn geometry(self) -> Option<Geometry> {
        match self {
            Self::Classic1k => Some(Geometry::Classic1k),
            Self::Classic4k => Some(Geometry::Classic4k),
            Self::Mini => Some(Geometry::Mini),
            _ => None,
        }
    }

    /// Size of the memory image (`--load`/`--save`), if the type has one.
    pub const fn image_len(self) -> Option<usize> {
        match self.geometry() {
            Some(g) => Some(g.byte_len()),
            None if matches!(self, Self::Ultralight) => Some(ultralight::IMAGE_LEN),
            None => None,
        }
    }

    /// UID used when none is given.
    pub const fn default_uid(self) -> &'static [u8] {
        match self {
            Self::Classic1k | Self::Classic4k | Self::Mini => &[0xDE, 0xAD, 0xBE, 0xEF],
            Self::Ultralight => &[0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66],
            Self::DesfireEv0 | Self::DesfireEv1 | Self::DesfireEv2 | Self::DesfireEv3 => {
                &[0x04, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]
            }
        }
    }

    const fn allowed_uid_lengths(self) -> (&'static [usize], &'static str) {
        match self {
            Self::Ultralight => (&[7], "7"),
            t if t.is_desfire() => (&[7], "7"),
            _ => (&[4, 7], "4 or 7"),
        }
    }

    /// SAK (§1).
    pub const fn sak(self) -> u8 {
        match self.geometry() {
            Some(g) => g.sak(),
            None if self.is_desfire() => 0x20,
            None => 0x00,
        }
    }

    /// ATQA, most significant byte first.
    pub const fn atqa(self, uid_len: usize) -> [u8; 2] {
        match self.geometry() {
            Some(g) => g.atqa(uid_len),
            None if self.is_desfire() && uid_len == 4 => [0x03, 0x04],
            None if self.is_desfire() => [0x03, 0x44],
            None => [0x00, 0x44],
        }
    }

    /// The ATR a PC/SC reader reports for this card (§4): Part 3 storage-card ATR with
    /// standard 03 (ISO 14443-A part 3) and the card name, or for DESFire the ISO 14443-4
    /// form built from the ATS historical bytes (`3B 81 80 01 80 80`).
    pub fn atr(self) -> Vec<u8> {
        match self {
            Self::Classic1k => atr::storage_card(0x03, 0x0001),
            Self::Classic4k => atr::storage_card(0x03, 0x0002),
            Self::Mini => atr::storage_card(0x03, 0x0026),
            Self::Ultralight => atr::storage_card(0x03, 0x0003),
            Self::DesfireEv0 | Self::DesfireEv1 | Self::DesfireEv2 | Self::DesfireEv3 => {
                atr::iso14443_4(DESFIRE_ATS.get(5..).unwrap_or_default())
            }
        }
    }
}

impl fmt::Display for CardType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CardType {
    type Err = SimError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("desfire") {
            return Ok(Self::Desfire);
        }
        Self::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| SimError::UnknownCardType(s.to_owned()))
    }
}

/// What reaches EEPROM when the card leaves the field during a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TearMode {
    /// Nothing of the write lands.
    Lost,
    /// The first half lands (8 of 16 bytes of a Classic block, 2 of 4 of a page).
    #[default]
    Half,
    /// The whole write lands, but the card is gone before it can acknowledge.
    Landed,
}

impl TearMode {
    /// The CLI name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Lost => "lost",
            Self::Half => "half",
            Self::Landed => "landed",
        }
    }

    /// How many of `len` bytes land.
    pub const fn landed_bytes(self, len: usize) -> usize {
        match self {
            Self::Lost => 0,
            Self::Half => len / 2,
            Self::Landed => len,
        }
    }
}

impl fmt::Display for TearMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TearMode {
    type Err = SimError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Lost, Self::Half, Self::Landed]
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| SimError::UnknownTearMode(s.to_owned()))
    }
}

/// The chip behind the reader.
#[derive(Clone, Debug)]
enum Chip {
    Classic(MifareClassic),
    Ultralight(Ultralight),
    Desfire(Box<Desfire>),
}

/// One exchange in the card's own log: the command APDU and the answer (`None`: the card
/// left the field in a tear and answered nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// The command APDU as the client sent it.
    pub command: Vec<u8>,
    /// The response APDU, if the card answered.
    pub response: Option<Vec<u8>>,
}

/// Entries the in-memory log keeps (older ones are dropped in halves).
const LOG_CAPACITY: usize = 8192;

/// A card of any [`CardType`] in a PC/SC Part 3 reader.
#[derive(Clone, Debug)]
pub struct VirtualCard {
    card_type: CardType,
    uid: Vec<u8>,
    chip: Chip,
    /// How the reader in front of the card speaks (`--reader-profile`).
    profile: ReaderProfile,
    /// Reader-side key slots (`FF 82`; for key-type readers: key A, key B). They belong to
    /// the reader, so they survive card removal and power cycles.
    keys: Vec<Option<[u8; 6]>>,
    /// Tear at the write attempt made when `writes` reaches this count.
    tear_at: Option<(u32, TearMode)>,
    torn: bool,
    writes: u32,
    /// The card's own log of APDU exchanges (the last [`LOG_CAPACITY`] at most).
    log: Vec<Exchange>,
    /// Exchanges since creation (or the last [`VirtualCard::clear_apdu_log`]).
    exchanges: u64,
}

impl VirtualCard {
    /// A fresh card (factory state) with the given UID or the type's default. Classic cards
    /// get their block 0 built from the UID (§1).
    pub fn new(card_type: CardType, uid: Option<&[u8]>) -> Result<Self, SimError> {
        let uid = uid.unwrap_or(card_type.default_uid()).to_vec();
        let (allowed, allowed_text) = card_type.allowed_uid_lengths();
        if !allowed.contains(&uid.len()) {
            return Err(SimError::InvalidUid {
                card_type: card_type.name(),
                len: uid.len(),
                allowed: allowed_text,
            });
        }
        let chip = match card_type.geometry() {
            Some(g) => {
                let block0 = mifare::manufacturer_block(g, &uid).ok_or(SimError::InvalidUid {
                    card_type: card_type.name(),
                    len: uid.len(),
                    allowed: allowed_text,
                })?;
                Chip::Classic(MifareClassic::factory(g, block0))
            }
            None if card_type == CardType::Ultralight => {
                Chip::Ultralight(Ultralight::new(&uid).ok_or(SimError::InvalidUid {
                    card_type: card_type.name(),
                    len: uid.len(),
                    allowed: allowed_text,
                })?)
            }
            None => {
                let generation = card_type
                    .desfire_generation()
                    .ok_or(SimError::NoImage(card_type.name()))?;
                let mut seven = [0u8; 7];
                seven.copy_from_slice(uid.get(..7).unwrap_or(&[0; 7]));
                Chip::Desfire(Box::new(Desfire::new(generation, seven)))
            }
        };
        Ok(Self::with_chip(card_type, uid, chip))
    }

    /// A card holding a raw memory image (`.mfd` layout for Classic: 320/1024/4096 bytes,
    /// keys in the trailers; 64 bytes for Ultralight). The UID is taken from block 0 (see
    /// [`uid_len_of_block0`]) or the Ultralight pages 0-1.
    pub fn from_image(card_type: CardType, image: &[u8]) -> Result<Self, SimError> {
        if let Some(generation) = card_type.desfire_generation() {
            let card = Desfire::from_image(image).map_err(|reason| SimError::BadImage {
                card_type: card_type.name(),
                reason,
            })?;
            if card.generation() != generation {
                return Err(SimError::BadImage {
                    card_type: card_type.name(),
                    reason: format!("the image is of a desfire-{}", card.generation()),
                });
            }
            return Ok(Self::with_chip(
                card_type,
                card.uid().to_vec(),
                Chip::Desfire(Box::new(card)),
            ));
        }
        let expected = card_type
            .image_len()
            .ok_or(SimError::NoImage(card_type.name()))?;
        if image.len() != expected {
            return Err(SimError::ImageSize {
                card_type: card_type.name(),
                expected,
                got: image.len(),
            });
        }
        let size_error = || SimError::ImageSize {
            card_type: card_type.name(),
            expected,
            got: image.len(),
        };
        let (uid, chip) = if let Some(g) = card_type.geometry() {
            let classic = MifareClassic::from_image(g, image).map_err(|_| size_error())?;
            let head = image.get(..8).ok_or_else(size_error)?;
            let uid_len = uid_len_of_block0(head, g.sak());
            (
                head.get(..uid_len).unwrap_or_default().to_vec(),
                Chip::Classic(classic),
            )
        } else {
            let ul = Ultralight::from_image(image).ok_or_else(size_error)?;
            (ul.uid().to_vec(), Chip::Ultralight(ul))
        };
        Ok(Self::with_chip(card_type, uid, chip))
    }

    fn with_chip(card_type: CardType, uid: Vec<u8>, chip: Chip) -> Self {
        Self {
            card_type,
            uid,
            chip,
            profile: ReaderProfile::DEFAULT,
            keys: vec![None; ReaderProfile::DEFAULT.slot_count()],
            tear_at: None,
            torn: false,
            writes: 0,
            log: Vec::new(),
            exchanges: 0,
        }
    }

    /// The memory image: raw for Classic and Ultralight, JSON for DESFire
    /// (docs/reference/desfire-card.md §8).
    pub fn image(&self) -> Vec<u8> {
        match &self.chip {
            Chip::Classic(c) => c.image(),
            Chip::Ultralight(u) => u.image(),
            Chip::Desfire(d) => d.to_image().into_bytes(),
        }
    }

    /// Puts the card behind a reader of `profile` (with empty key slots).
    pub fn set_reader_profile(&mut self, profile: ReaderProfile) {
        self.keys = vec![None; profile.slot_count()];
        self.profile = profile;
    }

    /// The reader profile.
    pub const fn reader_profile(&self) -> &ReaderProfile {
        &self.profile
    }

    /// The card type.
    pub const fn card_type(&self) -> CardType {
        self.card_type
    }

    /// The ATR the reader reports.
    pub fn atr(&self) -> Vec<u8> {
        self.card_type.atr()
    }

    /// The UID (4 or 7 bytes).
    pub fn uid(&self) -> &[u8] {
        &self.uid
    }

    /// The SAK.
    pub const fn sak(&self) -> u8 {
        self.card_type.sak()
    }

    /// The ATQA, most significant byte first.
    pub fn atqa(&self) -> [u8; 2] {
        self.card_type.atqa(self.uid.len())
    }

    /// Makes a Classic card worn out (see [`MifareClassic::set_worn`]); no effect on others.
    pub fn set_worn(&mut self, worn: bool) {
        if let Chip::Classic(c) = &mut self.chip {
            c.set_worn(worn);
        }
    }

    /// The MIFARE Classic model, for Classic types (to inspect memory or sector health).
    pub const fn classic(&self) -> Option<&MifareClassic> {
        match &self.chip {
            Chip::Classic(c) => Some(c),
            _ => None,
        }
    }

    /// The DESFire card, for DESFire types (to inspect applications and files).
    pub fn desfire(&self) -> Option<&Desfire> {
        match &self.chip {
            Chip::Desfire(d) => Some(d),
            _ => None,
        }
    }

    /// The DESFire card, mutable (to set a card up in tests).
    pub fn desfire_mut(&mut self) -> Option<&mut Desfire> {
        match &mut self.chip {
            Chip::Desfire(d) => Some(d),
            _ => None,
        }
    }

    /// The card's own log: the last exchanges through [`Self::transmit`], oldest first.
    pub fn apdu_log(&self) -> &[Exchange] {
        &self.log
    }

    /// Exchanges through [`Self::transmit`] since creation or the last clear.
    pub const fn apdu_count(&self) -> u64 {
        self.exchanges
    }

    /// Empties the log and its count.
    pub fn clear_apdu_log(&mut self) {
        self.log.clear();
        self.exchanges = 0;
    }

    fn forget_session(&mut self) {
        match &mut self.chip {
            Chip::Classic(c) => c.power_cycle(),
            Chip::Desfire(d) => d.deselect(),
            Chip::Ultralight(_) => {}
        }
    }

    /// Field off: the card forgets its authentication.
    pub fn power_off(&mut self) {
        self.forget_session();
    }

    /// Field on: the card comes up fresh (no authentication) and the reader selects it.
    pub fn power_on(&mut self) {
        self.forget_session();
    }

    /// Warm reset: as a power cycle.
    pub fn reset(&mut self) {
        self.forget_session();
    }

    /// The card is put (back) on the reader: fresh from power-up, and no longer torn. A
    /// random-UID DESFire shows a new UID.
    pub fn insert(&mut self) {
        self.torn = false;
        if let Chip::Desfire(d) = &mut self.chip {
            d.insert();
            if d.random_uid() {
                self.uid = d.fresh_random_uid().to_vec();
            }
        }
        self.forget_session();
    }

    /// Turns a DESFire's random-UID option on or off (as `mifare-desfire-ev1-configure-random-uid`
    /// does to a real card): with it on, anticollision shows `08` and three random bytes
    /// (ATQA `03 04`), new each time the card is placed, and `GetVersion` hides the UID; the
    /// real UID is told by `GetCardUID` after an authentication. Other types: a usage error.
    pub fn set_random_uid(&mut self, on: bool) -> Result<(), SimError> {
        let Chip::Desfire(d) = &mut self.chip else {
            return Err(SimError::Usage(format!(
                "a random UID is a DESFire option, not one of {}",
                self.card_type
            )));
        };
        d.set_random_uid(on);
        self.uid = if on {
            d.fresh_random_uid().to_vec()
        } else {
            d.uid().to_vec()
        };
        Ok(())
    }

    /// Arms (or with `None` disarms) a tear: after `n` more accepted writes, the card
    /// leaves the field during the next write, of which `mode` decides what lands. The tear
    /// fires once.
    ///
    /// For DESFire what counts as a write is in [`crate::desfire`].
    pub fn set_tear_after_writes(&mut self, n: Option<u32>, mode: TearMode) {
        if let Chip::Desfire(d) = &mut self.chip {
            d.set_tear_after_writes(n, mode);
        }
        self.tear_at = n.map(|n| (self.writes.saturating_add(n), mode));
    }

    /// Whether the tear happened: the card has left the field, and every transmit answers
    /// `63 00` until [`Self::insert`].
    pub const fn is_torn(&self) -> bool {
        self.torn
    }

    /// Number of writes the card accepted.
    pub fn writes(&self) -> u32 {
        self.desfire().map_or(self.writes, Desfire::writes)
    }

    /// Sends a command APDU through the reader; returns the response data and status word.
    /// Never panics, whatever the bytes. The exchange goes into the card's log.
    pub fn transmit(&mut self, apdu: &[u8]) -> Vec<u8> {
        let response = if self.torn {
            sw::FAILED.to_vec()
        } else {
            self.dispatch(apdu)
        };
        if self.log.len() >= LOG_CAPACITY {
            self.log.drain(..LOG_CAPACITY / 2);
        }
        self.exchanges = self.exchanges.saturating_add(1);
        self.log.push(Exchange {
            command: apdu.to_vec(),
            response: (!self.torn).then(|| response.clone()),
        });
        response
    }

    /// An APDU of a class other than `FF` goes to an ISO 14443-4 card; others have none.
    fn pass_to_card(&mut self, apdu: &[u8]) -> Vec<u8> {
        let Chip::Desfire(card) = &mut self.chip else {
            return sw::CLA_NOT_SUPPORTED.to_vec();
        };
        let answer = card.process(apdu);
        if card.is_torn() {
            self.torn = true;
            return sw::FAILED.to_vec();
        }
        answer
    }
}

/// Guesses the UID length from the first bytes of a Classic block 0 (§1): 4 when byte 4 is
/// the BCC of bytes 0-3 and byte 5 the SAK; else 7 when byte 7 is the SAK; else 4 when the
/// BCC matches, else 7.
pub fn uid_len_of_block0(block0: &[u8], sak: u8) -> usize {
    let bcc = block0.iter().take(4).fold(0, |a, b| a ^ b);
    let bcc_ok = block0.get(4) == Some(&bcc);
    if bcc_ok && block0.get(5) == Some(&sak) {
        4
    } else if block0.get(7) == Some(&sak) || !bcc_ok {
        7
    } else {
        4
    }
}

#[cfg(test)]
mod tests;
