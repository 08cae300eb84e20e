//! The PN532 (firmware 1.6) as a host sees it over HSU, with one card - MIFARE Classic or
//! MIFARE DESFire - that can be in its field or not (PN532 user manual §7;
//! docs/reference/pn532.md; for DESFire docs/reference/desfire-card.md §2).
//!
//! Only what a reader of MIFARE Classic cards uses is modelled, as the datasheet describes it,
//! and what libnfc's `pn532_uart` driver and nfcpy send at start-up: `GetFirmwareVersion`,
//! `SAMConfiguration`, `SetParameters`, `RFConfiguration`, `ReadRegister`, `WriteRegister`,
//! `PowerDown`, `InListPassiveTarget` (106 kbps type A), `InDataExchange` (MIFARE
//! authenticate, read, write), `InSelect`, `InDeselect`, `InRelease`. Other commands get the
//! syntax-error frame.
//!
//! Card behaviour comes from [`crate::mifare`]: a failed authentication halts the card, and a
//! halted card answers nothing (status 01, timeout) until the next `InListPassiveTarget`,
//! which wakes it (WUPA) and selects it afresh. A card that refuses a read or a write (NAK)
//! gives status 14 and is halted too.
//!
//! A DESFire ([`crate::desfire`]) is an ISO 14443-4 target: `InListPassiveTarget` reports it
//! with ATQA, SAK 20, UID and, while `SetParameters` has fAutomaticRATS (0x10, on from
//! power-up), its ATS without TL; the chip runs ISO-DEP itself, so `InDataExchange` carries
//! APDUs (wrapped or native DESFire frames) through unchanged and answers `00` + the card's
//! answer. `InDeselect`, `InRelease`, `InSelect` and the RF field going off deselect it (its
//! session and uncommitted writes are gone). A random-UID DESFire shows a new `08 xx xx xx`
//! UID each time it enters the field.

use std::collections::HashMap;

use crate::card::{DESFIRE_ATS, TearMode};
use crate::desfire::Desfire;
use crate::mifare::{KeyType, MifareClassic};

/// IC, version, revision, support of `GetFirmwareVersion`: PN532 1.6, ISO/IEC 14443 A and B
/// and ISO 18092.
pub const FIRMWARE: [u8; 4] = [0x32, 0x01, 0x06, 0x07];

/// PN532 error codes used here (status byte of `InDataExchange`).
pub mod status {
    /// Success.
    pub const OK: u8 = 0x00;
    /// Time out: the target did not answer.
    pub const TIMEOUT: u8 = 0x01;
    /// MIFARE authentication error (also reported for a NAK of the card).
    pub const MIFARE_ERROR: u8 = 0x14;
    /// The command is not acceptable in the current context (no target).
    pub const NOT_NOW: u8 = 0x27;
    /// Invalid parameter.
    pub const INVALID_PARAMETER: u8 = 0x10;
}

/// The chip of the card in the field.
#[derive(Clone, Debug)]
pub enum FieldChip {
    /// MIFARE Classic.
    Classic(MifareClassic),
    /// MIFARE DESFire (ISO 14443-4).
    Desfire(Box<Desfire>),
}

impl FieldChip {
    /// The card's image (`--save`): raw for Classic, JSON for DESFire.
    pub fn image(&self) -> Vec<u8> {
        match self {
            Self::Classic(c) => c.image(),
            Self::Desfire(d) => d.to_image().into_bytes(),
        }
    }

    /// The Classic card, if it is one.
    pub const fn classic(&self) -> Option<&MifareClassic> {
        match self {
            Self::Classic(c) => Some(c),
            Self::Desfire(_) => None,
        }
    }

    /// The DESFire card, if it is one.
    pub fn desfire(&self) -> Option<&Desfire> {
        match self {
            Self::Desfire(d) => Some(d),
            Self::Classic(_) => None,
        }
    }

    /// Power lost (card out of the field, RF off): Classic forgets its authentication,
    /// DESFire its session and uncommitted writes.
    pub fn power_cycle(&mut self) {
        match self {
            Self::Classic(c) => c.power_cycle(),
            Self::Desfire(d) => d.deselect(),
        }
    }

    fn select(&mut self) {
        match self {
            Self::Classic(c) => c.select(),
            Self::Desfire(d) => d.deselect(),
        }
    }

    fn halt(&mut self) {
        match self {
            Self::Classic(c) => c.halt(),
            Self::Desfire(d) => d.deselect(),
        }
    }

    fn is_halted(&self) -> bool {
        match self {
            Self::Classic(c) => c.is_halted(),
            Self::Desfire(_) => false,
        }
    }
}

/// The card in (or out of) the field.
#[derive(Clone, Debug)]
pub struct FieldCard {
    /// The card model.
    pub card: FieldChip,
    /// UID (4 or 7 bytes).
    pub uid: Vec<u8>,
    /// SAK.
    pub sak: u8,
    /// ATQA, most significant byte first.
    pub atqa: [u8; 2],
    /// Whether it is in the field.
    pub present: bool,
    /// Writes accepted so far (Classic; a DESFire counts its own).
    pub writes: u32,
    /// Tear during the write made when `writes` reaches this count (Classic; a DESFire's
    /// tear is armed on the card).
    pub tear_at: Option<(u32, TearMode)>,
}

/// What the chip does with a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Reply with this body (`D5 cmd+1 ...`).
    Reply(Vec<u8>),
    /// Reply with the syntax-error frame.
    SyntaxError,
    /// `InListPassiveTarget` with infinite retries and no card: answer when a card comes (see
    /// [`Pn532::poll_pending`]) or drop it when the host aborts with an ACK.
    Pending,
}

/// Events the chip reports to its runner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The card left the field during a write (tear).
    Torn,
}

/// The emulated chip.
#[derive(Debug)]
pub struct Pn532 {
    /// The card.
    pub field: FieldCard,
    /// Logical number of the selected target (1), if any.
    selected: Option<u8>,
    /// `MxRtyPassiveActivation` (0xFF: forever).
    passive_retries: u8,
    registers: HashMap<u16, u8>,
    powered_down: bool,
    /// `SetParameters` flags (`fAutomaticRATS` 0x10 and `fAutomaticATR_RES` 0x04 from power-up).
    parameters: u8,
    events: Vec<Event>,
}

impl Pn532 {
    /// A chip fresh from power-up with `field` in front of it.
    pub fn new(field: FieldCard) -> Self {
        Self {
            field,
            selected: None,
            passive_retries: 0xFF,
            registers: HashMap::new(),
            powered_down: false,
            parameters: 0x14,
            events: Vec::new(),
        }
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The card is taken out of the field.
    /// The chip keeps the target in its table: the next exchange with it times out.
    pub fn remove_card(&mut self) {
        self.field.present = false;
        self.field.card.power_cycle();
    }

    /// The card is put (back) in the field, fresh from power-up.
    pub fn insert_card(&mut self) {
        self.field.present = true;
        self.field.card.power_cycle();
        if let FieldChip::Desfire(d) = &mut self.field.card {
            d.insert();
            if d.random_uid() {
                self.field.uid = d.fresh_random_uid().to_vec();
                self.field.atqa = [0x03, 0x04];
            }
        }
    }

    /// Whether the chip is in power-down (woken by the next frame).
    pub fn is_powered_down(&self) -> bool {
        self.powered_down
    }

    /// Answers a pending `InListPassiveTarget` if a card is now in the field.
    pub fn poll_pending(&mut self) -> Option<Vec<u8>> {
        self.field.present.then(|| self.list_target())
    }

    /// Handles one command body `D4 cmd data...`.
    pub fn handle(&mut self, body: &[u8]) -> Outcome {
        let &[0xD4, cmd, ref data @ ..] = body else {
            return Outcome::SyntaxError;
        };
        self.powered_down = false;
        let reply = |data: &[u8]| {
            let mut out = vec![0xD5, cmd.wrapping_add(1)];
            out.extend_from_slice(data);
            Outcome::Reply(out)
        };
        match cmd {
            // Diagnose, communication line test: echoes NumTst and the data (libnfc checks
            // the line with it at start-up). Other tests are not modelled.
            0x00 if data.first() == Some(&0x00) => reply(data),
            // GetFirmwareVersion.
            0x02 => reply(&FIRMWARE),
            // GetGeneralStatus: no error, field off/on, no target.
            0x04 => reply(&[0x00, u8::from(self.selected.is_some()), 0x00, 0x00]),
            // ReadRegister: 2-byte addresses in, one value per address out.
            0x06 => {
                if data.is_empty() || data.len() % 2 != 0 {
                    return Outcome::SyntaxError;
                }
                let values: Vec<u8> = data
                    .chunks_exact(2)
                    .map(|a| {
                        let addr = u16::from_be_bytes([
                            a.first().copied().unwrap_or(0),
                            a.get(1).copied().unwrap_or(0),
                        ]);
                        self.registers.get(&addr).copied().unwrap_or(0)
                    })
                    .collect();
                reply(&values)
            }
            // WriteRegister: address (2) + value triples.
            0x08 => {
                if data.is_empty() || data.len() % 3 != 0 {
                    return Outcome::SyntaxError;
                }
                for t in data.chunks_exact(3) {
                    if let &[hi, lo, value] = t {
                        self.registers.insert(u16::from_be_bytes([hi, lo]), value);
                    }
                }
                reply(&[])
            }
            // SetParameters.
            0x12 if data.len() == 1 => {
                self.parameters = data.first().copied().unwrap_or(0);
                reply(&[])
            }
            // SAMConfiguration: mode 01 normal (02/03 virtual/wired card are not modelled
            // beyond the answer).
            0x14 if (1..=3).contains(&data.len()) => reply(&[]),
            // PowerDown: WakeUpEnable [GenerateIRQ] -> status.
            0x16 if (1..=2).contains(&data.len()) => {
                self.powered_down = true;
                self.selected = None;
                reply(&[status::OK])
            }
            // RFConfiguration.
            0x32 => match data {
                // Item 01: RF field on/off (bit 0). Off resets the card.
                &[0x01, on] => {
                    if on & 0x01 == 0 {
                        self.selected = None;
                        self.field.card.power_cycle();
                    }
                    reply(&[])
                }
                &[0x05, _atr, _psl, passive] => {
                    self.passive_retries = passive;
                    reply(&[])
                }
                &[0x02, _, _, _] | &[0x04, _] | [0x0A..=0x0D, ..] => reply(&[]),
                _ => Outcome::SyntaxError,
            },
            0x40 => self
                .data_exchange(data)
                .map_or(Outcome::SyntaxError, |r| reply(&r)),
            // InDeselect / InRelease: the target is deselected (MIFARE Classic: halted).
            0x44 | 0x52 if data.len() == 1 => {
                if let Some(tg) = self.selected
                    && (data.first() == Some(&tg) || data.first() == Some(&0))
                {
                    self.selected = None;
                    self.field.card.halt();
                }
                reply(&[status::OK])
            }
            // InCommunicateThru: nothing else is in the field to answer raw frames.
            0x42 => reply(&[status::TIMEOUT]),
            0x4A => self.list_passive_target(data),
            // InSelect: re-select a known target.
            0x54 if data.len() == 1 => {
                if self.field.present && data.first() == Some(&1) {
                    self.field.card.select();
                    self.selected = Some(1);
                    reply(&[status::OK])
                } else {
                    reply(&[status::NOT_NOW])
                }
            }
            _ => Outcome::SyntaxError,
        }
    }

    fn list_target(&mut self) -> Vec<u8> {
        // WUPA, anticollision, select: wakes a halted card and drops its authentication.
        self.field.card.power_cycle();
        self.field.card.select();
        self.selected = Some(1);
        let mut out = vec![0xD5, 0x4B, 0x01, 0x01];
        out.extend_from_slice(&self.field.atqa);
        out.push(self.field.sak);
        out.push(u8::try_from(self.field.uid.len()).unwrap_or(4));
        out.extend_from_slice(&self.field.uid);
        if matches!(self.field.card, FieldChip::Desfire(_)) && self.parameters & 0x10 != 0 {
            // The ATS as the chip reports it: TL first (libnfc drops it).
            out.extend_from_slice(&DESFIRE_ATS);
        }
        out
    }

    /// `InListPassiveTarget MaxTg BrTy [InitiatorData]`.
    fn list_passive_target(&mut self, data: &[u8]) -> Outcome {
        let &[max_tg, br_ty, ..] = data else {
            return Outcome::SyntaxError;
        };
        if max_tg == 0 || max_tg > 2 {
            return Outcome::SyntaxError;
        }
        self.selected = None;
        // Only 106 kbps type A (BrTy 00) finds our card; other modulations find nothing.
        if br_ty == 0x00 && self.field.present {
            // InitiatorData may name a UID: only that card answers.
            let wanted = data.get(2..).unwrap_or_default();
            // A 7-byte UID is given with its cascade tag 88 first (ISO 14443-3), as libnfc
            // sends it to re-select a target.
            let wanted = match wanted {
                [0x88, rest @ ..] if rest.len() == 7 => rest,
                other => other,
            };
            if wanted.is_empty() || self.field.uid.starts_with(wanted) {
                return Outcome::Reply(self.list_target());
            }
        }
        if self.passive_retries == 0xFF && br_ty == 0x00 {
            return Outcome::Pending;
        }
        Outcome::Reply(vec![0xD5, 0x4B, 0x00])
    }

    /// `InDataExchange Tg data`: returns status and data, or `None` for a syntax error.
    fn data_exchange(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        let (&tg, command) = data.split_first()?;
        let tg = tg & 0x0F;
        if self.selected != Some(tg) {
            return Some(vec![status::NOT_NOW]);
        }
        if !self.field.present || self.field.card.is_halted() {
            // Nobody answers.
            return Some(vec![status::TIMEOUT]);
        }
        let card = match &mut self.field.card {
            FieldChip::Classic(card) => card,
            FieldChip::Desfire(card) => {
                // ISO-DEP: the APDU travels as it is.
                let answer = card.process(command);
                if card.is_torn() {
                    self.remove_card();
                    self.events.push(Event::Torn);
                    return Some(vec![status::TIMEOUT]);
                }
                let mut out = vec![status::OK];
                out.extend_from_slice(&answer);
                return Some(out);
            }
        };
        let nak = |card: &mut MifareClassic| {
            card.halt();
            Some(vec![status::MIFARE_ERROR])
        };
        match command {
            [cmd @ (0x60 | 0x61), block, rest @ ..] => {
                let (Some(key), Some(uid)) = (rest.get(..6), rest.get(6..)) else {
                    return Some(vec![status::INVALID_PARAMETER]);
                };
                let Ok(key) = <[u8; 6]>::try_from(key) else {
                    return Some(vec![status::INVALID_PARAMETER]);
                };
                let (block, key_type) =
                    (*block, if *cmd == 0x60 { KeyType::A } else { KeyType::B });
                // The card's Crypto1 start mixes in its UID (the last 4 bytes of a 7-byte
                // UID): a wrong one fails like a wrong key.
                let nuid = self.field.uid.get(self.field.uid.len().saturating_sub(4)..);
                if uid.len() != 4 || nuid != Some(uid) {
                    card.halt();
                    return Some(vec![status::MIFARE_ERROR]);
                }
                match card.authenticate(block, key_type, key) {
                    Ok(()) => Some(vec![status::OK]),
                    Err(_) => Some(vec![status::MIFARE_ERROR]),
                }
            }
            [0x30, block] => match card.read(*block) {
                Ok(bytes) => {
                    let mut out = vec![status::OK];
                    out.extend_from_slice(&bytes);
                    Some(out)
                }
                Err(_) => nak(card),
            },
            [0xA0, block, bytes @ ..] => {
                let Ok(bytes) = <&[u8; 16]>::try_from(bytes) else {
                    return Some(vec![status::INVALID_PARAMETER]);
                };
                let tear = match self.field.tear_at {
                    Some((at, mode)) if at == self.field.writes => Some(mode),
                    _ => None,
                };
                if let Some(mode) = tear {
                    let _ = card.write_torn(*block, bytes, mode.landed_bytes(16));
                    self.field.tear_at = None;
                    self.remove_card();
                    self.events.push(Event::Torn);
                    return Some(vec![status::TIMEOUT]);
                }
                match card.write(*block, bytes) {
                    Ok(()) => {
                        self.field.writes = self.field.writes.saturating_add(1);
                        Some(vec![status::OK])
                    }
                    Err(_) => nak(card),
                }
            }
            // HLTA.
            [0x50, 0x00] => {
                card.halt();
                Some(vec![status::TIMEOUT])
            }
            _ => nak(card),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mifare::{Geometry, manufacturer_block};

    fn chip() -> Pn532 {
        let uid = vec![0xDE, 0xAD, 0xBE, 0xEF];
        let g = Geometry::Classic1k;
        let card = MifareClassic::factory(g, manufacturer_block(g, &uid).unwrap());
        Pn532::new(FieldCard {
            card: FieldChip::Classic(card),
            uid,
            sak: 0x08,
            atqa: [0x00, 0x04],
            present: true,
            writes: 0,
            tear_at: None,
        })
    }

    fn body(outcome: Outcome) -> Vec<u8> {
        match outcome {
            Outcome::Reply(b) => b,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lists_authenticates_reads_and_writes() {
        let mut c = chip();
        assert_eq!(
            body(c.handle(&[0xD4, 0x02])),
            [0xD5, 0x03, 0x32, 0x01, 0x06, 0x07]
        );
        assert_eq!(
            body(c.handle(&[0xD4, 0x4A, 0x01, 0x00])),
            [
                0xD5, 0x4B, 0x01, 0x01, 0x00, 0x04, 0x08, 0x04, 0xDE, 0xAD, 0xBE, 0xEF
            ]
        );
        let mut auth = vec![0xD4, 0x40, 0x01, 0x60, 0x04];
        auth.extend([0xFF; 6]);
        auth.extend([0xDE, 0xAD, 0xBE, 0xEF]);
        assert_eq!(body(c.handle(&auth)), [0xD5, 0x41, 0x00]);
        let mut write = vec![0xD4, 0x40, 0x01, 0xA0, 0x04];
        write.extend([0x11; 16]);
        assert_eq!(body(c.handle(&write)), [0xD5, 0x41, 0x00]);
        let read = body(c.handle(&[0xD4, 0x40, 0x01, 0x30, 0x04]));
        assert_eq!(&read[..3], &[0xD5, 0x41, 0x00]);
        assert_eq!(&read[3..], &[0x11; 16]);
    }

    #[test]
    fn failed_auth_halts_until_listed_again() {
        let mut c = chip();
        body(c.handle(&[0xD4, 0x4A, 0x01, 0x00]));
        let mut auth = vec![0xD4, 0x40, 0x01, 0x60, 0x04];
        auth.extend([0x00; 6]);
        auth.extend([0xDE, 0xAD, 0xBE, 0xEF]);
        assert_eq!(body(c.handle(&auth)), [0xD5, 0x41, 0x14]);
        assert_eq!(
            body(c.handle(&[0xD4, 0x40, 0x01, 0x30, 0x04])),
            [0xD5, 0x41, 0x01]
        );
        body(c.handle(&[0xD4, 0x4A, 0x01, 0x00]));
        let read = body(c.handle(&[0xD4, 0x40, 0x01, 0x30, 0x04]));
        assert_eq!(read, [0xD5, 0x41, 0x14], "not authenticated: NAK");
    }

    #[test]
    fn no_card_with_finite_retries_and_pending_with_infinite() {
        let mut c = chip();
        c.remove_card();
        assert_eq!(c.handle(&[0xD4, 0x4A, 0x01, 0x00]), Outcome::Pending);
        assert_eq!(
            body(c.handle(&[0xD4, 0x32, 0x05, 0xFF, 0x01, 0x02])),
            [0xD5, 0x33]
        );
        assert_eq!(
            body(c.handle(&[0xD4, 0x4A, 0x01, 0x00])),
            [0xD5, 0x4B, 0x00]
        );
        assert_eq!(c.handle(&[0xD4, 0x99]), Outcome::SyntaxError);
    }

    #[test]
    fn registers_read_back() {
        let mut c = chip();
        assert_eq!(
            body(c.handle(&[0xD4, 0x08, 0x63, 0x02, 0x80])),
            [0xD5, 0x09]
        );
        assert_eq!(
            body(c.handle(&[0xD4, 0x06, 0x63, 0x02, 0x63, 0x03])),
            [0xD5, 0x07, 0x80, 0x00]
        );
    }

    fn desfire_chip() -> Pn532 {
        use crate::desfire::{Desfire, Generation};
        let card = Desfire::new(Generation::Ev2, [0x04, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]);
        Pn532::new(FieldCard {
            card: FieldChip::Desfire(Box::new(card)),
            uid: vec![0x04, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77],
            sak: 0x20,
            atqa: [0x03, 0x44],
            present: true,
            writes: 0,
            tear_at: None,
        })
    }

    #[test]
    fn desfire_is_listed_with_its_ats_and_takes_apdus() {
        let mut c = desfire_chip();
        let listed = body(c.handle(&[0xD4, 0x4A, 0x01, 0x00]));
        assert_eq!(
            listed,
            [
                0xD5, 0x4B, 0x01, 0x01, 0x03, 0x44, 0x20, 0x07, 0x04, 0x22, 0x33, 0x44, 0x55, 0x66,
                0x77, 0x06, 0x75, 0x77, 0x81, 0x02, 0x80
            ]
        );
        // Re-selected by its UID with the cascade tag, as libnfc does it.
        let again = body(c.handle(&[
            0xD4, 0x4A, 0x01, 0x00, 0x88, 0x04, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
        ]));
        assert_eq!(again, listed);
        // Without fAutomaticRATS there is no ATS.
        body(c.handle(&[0xD4, 0x12, 0x04]));
        assert_eq!(body(c.handle(&[0xD4, 0x4A, 0x01, 0x00])).len(), 15);
        // A wrapped GetVersion and a native frame travel through unchanged.
        let first = body(c.handle(&[0xD4, 0x40, 0x01, 0x90, 0x60, 0x00, 0x00, 0x00]));
        assert_eq!(
            first,
            [
                0xD5, 0x41, 0x00, 0x04, 0x01, 0x01, 0x12, 0x00, 0x1A, 0x05, 0x91, 0xAF
            ]
        );
        body(c.handle(&[0xD4, 0x44, 0x01]));
        body(c.handle(&[0xD4, 0x54, 0x01]));
        assert_eq!(
            body(c.handle(&[0xD4, 0x40, 0x01, 0x64, 0x00])),
            [0xD5, 0x41, 0x00, 0x00, 0x00]
        );
    }

    #[test]
    fn a_torn_desfire_leaves_the_field() {
        let mut c = desfire_chip();
        if let FieldChip::Desfire(d) = &mut c.field.card {
            d.set_tear_after_writes(Some(0), TearMode::Lost);
        }
        body(c.handle(&[0xD4, 0x4A, 0x01, 0x00]));
        let create = [
            0xD4, 0x40, 0x01, 0x90, 0xCA, 0x00, 0x00, 0x05, 0x01, 0x00, 0x00, 0x0F, 0x81, 0x00,
        ];
        assert_eq!(body(c.handle(&create)), [0xD5, 0x41, 0x01]);
        assert_eq!(c.take_events(), [Event::Torn]);
        assert!(!c.field.present);
        c.insert_card();
        assert!(c.field.card.desfire().unwrap().applications().is_empty());
    }
}
