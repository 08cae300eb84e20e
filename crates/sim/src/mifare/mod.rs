//! The MIFARE Classic card model: memory, geometry, access conditions, authentication state
//! and halt (docs/reference/mifare-classic.md).
//!
//! This is the card itself, not a reader: it knows nothing of status words or APDUs, so a
//! PC/SC front end ([`crate::card`]) and a PN532 front end can both drive it.
//!
//! Behaviour modelled from the NXP datasheet:
//! - only the most recent authentication counts: authenticating sector X forgets sector Y;
//! - a failed authentication halts the card: it answers nothing until re-selected
//!   ([`MifareClassic::select`]);
//! - key A reads back as zeros, key B as zeros unless the access bits make it readable;
//! - where key B is readable it cannot serve for authentication: the authentication itself
//!   succeeds, but every later memory access of the sector is refused;
//! - trailer writes change only the parts (key A, access bits + GPB, key B) the session's key
//!   may write, and are refused when it may write none;
//! - block 0 (manufacturer block) is read-only;
//! - a sector whose trailer holds inconsistent access bits is blocked for good: every
//!   authentication, read and write of it fails. A trailer that leaves no key able to write
//!   it freezes the trailer for good (its data blocks keep their own conditions), exactly as
//!   on a real card; [`MifareClassic::sector_state`] reports both kinds of damage.

mod access;
mod geometry;

pub use access::KeyType;
pub use access::{
    AccessConditions, Condition, DataRights, TrailerRights, Who, data_rights, trailer_rights,
};
pub use geometry::{BLOCK_LEN, Geometry};

/// Factory access bytes + GPB: data 000, trailer 001 (transport), GPB 69.
pub const TRANSPORT_ACCESS: [u8; 4] = [0xFF, 0x07, 0x80, 0x69];
/// Factory key (both A and B).
pub const FACTORY_KEY: [u8; 6] = [0xFF; 6];

/// Why the card refused a command. A real card mostly just stays silent (NAK or timeout); the
/// variants say why, for logs and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CardFault {
    /// The block number is beyond this card's memory.
    #[error("block {0} does not exist on this card")]
    NoSuchBlock(u8),
    /// The card is halted (after a failed authentication or HLTA) and must be re-selected.
    #[error("card is halted; it must be re-selected")]
    Halted,
    /// No successful authentication for the sector of this block.
    #[error("sector of block {0} is not authenticated")]
    NotAuthenticated(u8),
    /// The key did not match (the card is now halted).
    #[error("authentication failed")]
    AuthFailed,
    /// The access conditions forbid this operation with the authenticated key.
    #[error("access conditions forbid this operation on block {0}")]
    AccessDenied(u8),
    /// Block 0 (manufacturer block) cannot be written.
    #[error("block 0 is read-only")]
    ReadOnly,
    /// The sector's access bits are inconsistent: it is blocked for good.
    #[error("sector {0} is blocked by inconsistent access bits")]
    SectorBlocked(u8),
}

/// The image given to [`MifareClassic::from_image`] has the wrong size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("memory image of {got} bytes; a {geometry:?} card needs {expected}")]
pub struct ImageSizeError {
    /// The card's geometry.
    pub geometry: Geometry,
    /// Bytes expected.
    pub expected: usize,
    /// Bytes given.
    pub got: usize,
}

/// Health of a sector, judged from its trailer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectorState {
    /// Consistent access bits and a trailer some key can still write.
    Usable,
    /// Consistent access bits, but no key can ever change the trailer again.
    Frozen,
    /// Inconsistent access bits: the sector is unusable for good.
    Blocked,
}

/// Card state machine, as seen by the reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Session {
    /// Selected, not authenticated.
    Selected,
    /// Authenticated to one sector with one key.
    Authenticated { sector: u8, key: KeyType },
    /// Halted: ignores everything until re-selected.
    Halted,
}

/// A MIFARE Classic card.
#[derive(Clone, Debug)]
pub struct MifareClassic {
    geometry: Geometry,
    memory: Vec<u8>,
    session: Session,
    /// Worn-out EEPROM: data blocks keep a flipped bit of every write (see [`Self::set_worn`]).
    worn: bool,
}

/// Builds a manufacturer block (block 0) per §1.
///
/// 4-byte UID: `UID(4) | BCC | SAK | ATQA (2, little-endian as stored) | manufacturer data`.
/// 7-byte UID: `UID(7) | SAK | ATQA (2, little-endian) | manufacturer data`.
/// Returns `None` for other UID lengths.
pub fn manufacturer_block(geometry: Geometry, uid: &[u8]) -> Option<[u8; 16]> {
    let mut block = [0u8; 16];
    let [atqa_hi, atqa_lo] = geometry.atqa(uid.len());
    let tail: &[u8] = match uid.len() {
        4 => {
            let bcc = uid.iter().fold(0, |a, b| a ^ b);
            &[bcc, geometry.sak(), atqa_lo, atqa_hi]
        }
        7 => &[geometry.sak(), atqa_lo, atqa_hi],
        _ => return None,
    };
    let head: Vec<u8> = uid.iter().chain(tail).copied().collect();
    // Recognisable manufacturer data in the remaining bytes.
    let filler = [0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69];
    for (dst, src) in block
        .iter_mut()
        .zip(head.iter().chain(filler.iter().cycle()))
    {
        *dst = *src;
    }
    Some(block)
}

impl MifareClassic {
    /// A card in factory state: all keys `FF..FF`, access `FF 07 80`, GPB `69`, zero data,
    /// and the given manufacturer block. The card starts selected and unauthenticated.
    pub fn factory(geometry: Geometry, block0: [u8; 16]) -> Self {
        let mut memory = vec![0u8; geometry.byte_len()];
        if let Some(b0) = memory.get_mut(..BLOCK_LEN) {
            b0.copy_from_slice(&block0);
        }
        let mut trailer = [0u8; 16];
        trailer[..6].copy_from_slice(&FACTORY_KEY);
        trailer[6..10].copy_from_slice(&TRANSPORT_ACCESS);
        trailer[10..].copy_from_slice(&FACTORY_KEY);
        let mut card = Self {
            geometry,
            memory,
            session: Session::Selected,
            worn: false,
        };
        for sector in 0..geometry.sector_count() {
            card.store(geometry.trailer_of(sector), &trailer);
        }
        card
    }

    /// A card holding a raw memory image (`.mfd` layout: blocks in order, real keys in the
    /// trailers), as written by nfc-mfclassic and by [`Self::image`].
    pub fn from_image(geometry: Geometry, image: &[u8]) -> Result<Self, ImageSizeError> {
        if image.len() != geometry.byte_len() {
            return Err(ImageSizeError {
                geometry,
                expected: geometry.byte_len(),
                got: image.len(),
            });
        }
        Ok(Self {
            geometry,
            memory: image.to_vec(),
            session: Session::Selected,
            worn: false,
        })
    }

    /// The raw memory image, keys included.
    pub fn image(&self) -> Vec<u8> {
        self.memory.clone()
    }

    /// The card's geometry.
    pub const fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Re-selects the card (REQA/WUPA + anticollision + select): wakes it from halt and
    /// forgets any authentication.
    pub fn select(&mut self) {
        self.session = Session::Selected;
    }

    /// Power cycle: the card forgets all state. A reader selects it again after power-up, so
    /// it comes back selected.
    pub fn power_cycle(&mut self) {
        self.session = Session::Selected;
    }

    /// HLTA: the card goes silent until re-selected.
    pub fn halt(&mut self) {
        self.session = Session::Halted;
    }

    /// Whether the card is halted.
    pub fn is_halted(&self) -> bool {
        self.session == Session::Halted
    }

    /// The current authentication: sector and key, if any.
    pub fn authenticated(&self) -> Option<(u8, KeyType)> {
        match self.session {
            Session::Authenticated { sector, key } => Some((sector, key)),
            _ => None,
        }
    }

    fn block(&self, block: u8) -> [u8; 16] {
        let at = usize::from(block) * BLOCK_LEN;
        let mut out = [0u8; 16];
        if let Some(src) = self.memory.get(at..at + BLOCK_LEN) {
            out.copy_from_slice(src);
        }
        out
    }

    fn store(&mut self, block: u8, data: &[u8; 16]) {
        let at = usize::from(block) * BLOCK_LEN;
        if let Some(dst) = self.memory.get_mut(at..at + BLOCK_LEN) {
            dst.copy_from_slice(data);
        }
    }

    /// The access conditions of `sector`, or `None` when its bits are inconsistent.
    pub fn access_conditions(&self, sector: u8) -> Option<AccessConditions> {
        let t = self.block(self.geometry.trailer_of(sector));
        AccessConditions::decode([t[6], t[7], t[8]])
    }

    /// Health of `sector` (see [`SectorState`]); `Blocked` for a sector that does not exist.
    pub fn sector_state(&self, sector: u8) -> SectorState {
        if sector >= self.geometry.sector_count() {
            return SectorState::Blocked;
        }
        match self.access_conditions(sector) {
            None => SectorState::Blocked,
            Some(ac) if !trailer_rights(ac.trailer()).writable() => SectorState::Frozen,
            Some(_) => SectorState::Usable,
        }
    }

    /// Authenticates the sector of `block` with key A or B.
    ///
    /// Fails with [`CardFault::Halted`] when the card is halted (re-select it first). A wrong
    /// key, or a sector blocked by inconsistent access bits, fails with
    /// [`CardFault::AuthFailed`] and halts the card. Success replaces any earlier
    /// authentication.
    pub fn authenticate(
        &mut self,
        block: u8,
        key_type: KeyType,
        key: [u8; 6],
    ) -> Result<(), CardFault> {
        if self.session == Session::Halted {
            return Err(CardFault::Halted);
        }
        let Some(sector) = self.geometry.sector_of(block) else {
            // The card does not answer an authentication to a block it lacks.
            self.session = Session::Halted;
            return Err(CardFault::AuthFailed);
        };
        let trailer = self.block(self.geometry.trailer_of(sector));
        let stored = match key_type {
            KeyType::A => &trailer[..6],
            KeyType::B => &trailer[10..],
        };
        if self.access_conditions(sector).is_none() || stored != key {
            self.session = Session::Halted;
            return Err(CardFault::AuthFailed);
        }
        self.session = Session::Authenticated {
            sector,
            key: key_type,
        };
        Ok(())
    }

    /// Common checks before a memory access: card awake, block exists, its sector is the
    /// authenticated one, the access bits are consistent and the key is usable. Returns the
    /// key and the sector's conditions.
    fn session_for(&self, block: u8) -> Result<(KeyType, u8, AccessConditions), CardFault> {
        let (auth_sector, key) = match self.session {
            Session::Halted => return Err(CardFault::Halted),
            Session::Selected => return Err(CardFault::NotAuthenticated(block)),
            Session::Authenticated { sector, key } => (sector, key),
        };
        let sector = self
            .geometry
            .sector_of(block)
            .ok_or(CardFault::NoSuchBlock(block))?;
        if sector != auth_sector {
            return Err(CardFault::NotAuthenticated(block));
        }
        let ac = self
            .access_conditions(sector)
            .ok_or(CardFault::SectorBlocked(sector))?;
        if key == KeyType::B && trailer_rights(ac.trailer()).key_b_readable() {
            return Err(CardFault::AccessDenied(block));
        }
        Ok((key, sector, ac))
    }

    fn condition_of(&self, ac: AccessConditions, block: u8) -> Condition {
        let group = self.geometry.access_group(block).unwrap_or(3);
        ac.0.get(group).copied().unwrap_or(ac.trailer())
    }

    /// Reads a block of the authenticated sector, honouring the access conditions. In a
    /// trailer, key A reads as zeros, and the access bits + GPB and key B read as zeros
    /// where the conditions do not let this key read them.
    pub fn read(&self, block: u8) -> Result<[u8; 16], CardFault> {
        let (key, _, ac) = self.session_for(block)?;
        let cond = self.condition_of(ac, block);
        let data = self.block(block);
        if !self.geometry.is_trailer(block) {
            return if data_rights(cond).read.allows(key) {
                Ok(data)
            } else {
                Err(CardFault::AccessDenied(block))
            };
        }
        let rights = trailer_rights(cond);
        let mut out = [0u8; 16];
        if rights.ac_read.allows(key) {
            out[6..10].copy_from_slice(&data[6..10]);
        }
        if rights.key_b_read.allows(key) {
            out[10..].copy_from_slice(&data[10..]);
        }
        Ok(out)
    }

    /// The block contents a write of `data` to `block` would produce, after every check.
    fn planned_write(&self, block: u8, data: &[u8; 16]) -> Result<[u8; 16], CardFault> {
        let (key, _, ac) = self.session_for(block)?;
        if block == 0 {
            return Err(CardFault::ReadOnly);
        }
        let cond = self.condition_of(ac, block);
        if !self.geometry.is_trailer(block) {
            return if data_rights(cond).write.allows(key) {
                Ok(*data)
            } else {
                Err(CardFault::AccessDenied(block))
            };
        }
        let rights = trailer_rights(cond);
        let mut new = self.block(block);
        let parts = [
            (rights.key_a_write, 0..6),
            (rights.ac_write, 6..10),
            (rights.key_b_write, 10..16),
        ];
        let mut any = false;
        for (who, range) in parts {
            if who.allows(key) {
                any = true;
                for i in range {
                    if let (Some(dst), Some(src)) = (new.get_mut(i), data.get(i)) {
                        *dst = *src;
                    }
                }
            }
        }
        if any {
            Ok(new)
        } else {
            Err(CardFault::AccessDenied(block))
        }
    }

    /// Writes a block of the authenticated sector, honouring the access conditions (see the
    /// module docs for trailers). Writing inconsistent access bits blocks the sector.
    pub fn write(&mut self, block: u8, data: &[u8; 16]) -> Result<(), CardFault> {
        let mut new = self.planned_write(block, data)?;
        if self.worn
            && !self.geometry.is_trailer(block)
            && let Some(last) = new.last_mut()
        {
            *last ^= 0x01;
        }
        self.store(block, &new);
        Ok(())
    }

    /// Makes the card behave as a worn-out one (a card past its ~100,000 write cycles,
    /// docs/reference/mifare-classic.md §10): every write of a data block is acknowledged but
    /// stores the data with the lowest bit of its last byte flipped. Trailers are unaffected.
    /// Read-back after a write is what catches such a card.
    pub fn set_worn(&mut self, worn: bool) {
        self.worn = worn;
    }

    /// A write interrupted by the card leaving the field: every check of [`Self::write`]
    /// applies, then only the first `landed` bytes (0-16) of the new block contents reach
    /// EEPROM; the rest keeps its old value.
    pub fn write_torn(
        &mut self,
        block: u8,
        data: &[u8; 16],
        landed: usize,
    ) -> Result<(), CardFault> {
        let new = self.planned_write(block, data)?;
        let mut stored = self.block(block);
        for (dst, src) in stored.iter_mut().zip(new).take(landed) {
            *dst = src;
        }
        self.store(block, &stored);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
