//! PC/SC Part 3 storage-card commands (CLA `FF`, docs/reference/pcsc-part3.md §1-§2) as the
//! card's [`ReaderProfile`] spells and answers them: ACS readers answer `63 00` to any
//! failure, others their finer words; wrong length `67 00`, wrong Le `6C xx`, class other than
//! `FF` `6E 00`.

use super::profile::{KeyMemory, ReaderProfile};
use super::{Chip, DESFIRE_ATS, VirtualCard};
use crate::mifare::KeyType;

/// Status words answered by the reader front end.
pub mod sw {
    /// Success.
    pub const OK: [u8; 2] = [0x90, 0x00];
    /// Operation failed (ACS readers use it for every failure, also failed authentication).
    pub const FAILED: [u8; 2] = [0x63, 0x00];
    /// Wrong length (Lc, or a missing/extra byte).
    pub const WRONG_LENGTH: [u8; 2] = [0x67, 0x00];
    /// Function not supported (ACS).
    pub const UNSUPPORTED: [u8; 2] = [0x6A, 0x81];
    /// Class not supported.
    pub const CLA_NOT_SUPPORTED: [u8; 2] = [0x6E, 0x00];
    /// Wrong Le: the second byte is the right one.
    pub const fn wrong_le(right: u8) -> [u8; 2] {
        [0x6C, right]
    }
}

fn with_sw(data: &[u8], status: [u8; 2]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 2);
    out.extend_from_slice(data);
    out.extend_from_slice(&status);
    out
}

fn status(s: [u8; 2]) -> Vec<u8> {
    s.to_vec()
}

/// Answers `data` for Le `le` (00 = everything): `6C <len>` when Le is shorter.
fn answer_with_le(data: &[u8], le: u8) -> Vec<u8> {
    let len = u8::try_from(data.len()).unwrap_or(u8::MAX);
    if le != 0 && le < len {
        return status(sw::wrong_le(len));
    }
    with_sw(data, sw::OK)
}

impl VirtualCard {
    /// Dispatches one command APDU.
    pub(super) fn dispatch(&mut self, apdu: &[u8]) -> Vec<u8> {
        let &[cla, ins, p1, p2, ref body @ ..] = apdu else {
            return status(sw::WRONG_LENGTH);
        };
        if cla != 0xFF {
            return self.pass_to_card(apdu);
        }
        match ins {
            0xCA => self.get_data(p1, p2, body),
            0x82 => self.load_key(p1, p2, body),
            0x86 => match body {
                &[0x05, version, msb, block, key_type, key_no] => {
                    if (p1, p2, version, msb) == (0, 0, 0x01, 0x00) {
                        self.authenticate(block, key_type, key_no)
                    } else {
                        status(self.profile.words.refused)
                    }
                }
                _ => status(sw::WRONG_LENGTH),
            },
            // Obsolete form: FF 88 00 <block> <key type> <key no>.
            0x88 if !self.profile.obsolete_auth => status(self.profile.words.unsupported),
            0x88 => match body {
                [key_type, key_no] if p1 == 0 => self.authenticate(p2, *key_type, *key_no),
                [_, _] => status(self.profile.words.refused),
                _ => status(sw::WRONG_LENGTH),
            },
            0xB0 => match body {
                [le] if p1 == 0 => self.read_binary(p2, *le),
                [_] => status(self.profile.words.refused),
                _ => status(sw::WRONG_LENGTH),
            },
            // uTrust 3720F: FF B1 00 <sector> 00, the sector's three data blocks.
            0xB1 if self.profile.sector_read => match body {
                [_] if p1 == 0 => self.read_sector(p2),
                _ => status(sw::WRONG_LENGTH),
            },
            0xD6 => match body {
                [lc, data @ ..] if usize::from(*lc) == data.len() && *lc != 0 => {
                    if p1 == 0 {
                        self.update_binary(p2, data)
                    } else {
                        status(self.profile.words.refused)
                    }
                }
                _ => status(sw::WRONG_LENGTH),
            },
            // ACS LED and buzzer (ACR122U API §6.2, §6.7): answered `90 <LED state>`.
            0x00 if self.profile.acs_led && p1 == 0x40 && p2 != 0 => match body {
                [0x04, _, _, _, _] => {
                    let state = p2 & 0x03;
                    with_sw(&[], [0x90, state])
                }
                _ => status(sw::WRONG_LENGTH),
            },
            0x00 if self.profile.acs_led && p1 == 0x52 => with_sw(&[], [0x90, p2]),
            _ => status(self.profile.words.unsupported),
        }
    }

    /// `FF CA 00 00 Le`: UID; `FF CA 01 00 Le`: ATS of an ISO 14443-4 card.
    fn get_data(&self, p1: u8, p2: u8, body: &[u8]) -> Vec<u8> {
        let &[le] = body else {
            return status(sw::WRONG_LENGTH);
        };
        match (p1, p2, &self.chip) {
            (0x00, 0x00, _) => answer_with_le(&self.uid, le),
            (0x01, 0x00, Chip::Desfire(_)) => answer_with_le(&DESFIRE_ATS, le),
            _ => status(sw::UNSUPPORTED),
        }
    }

    /// `FF 82 <P1> <P2> 06 <key>`: load a key, addressed as the profile's reader does.
    fn load_key(&mut self, p1: u8, p2: u8, body: &[u8]) -> Vec<u8> {
        let [0x06, key @ ..] = body else {
            return status(sw::WRONG_LENGTH);
        };
        let Ok(key) = <[u8; 6]>::try_from(key) else {
            return status(sw::WRONG_LENGTH);
        };
        let words = self.profile.words;
        let index = match self.profile.keys {
            KeyMemory::Slots { p1: want, .. } if p1 != want => {
                return status(words.bad_key_memory);
            }
            KeyMemory::Slots { .. } => usize::from(p2),
            KeyMemory::ByKeyType { .. } if p1 != 0 => return status(words.bad_key_memory),
            KeyMemory::ByKeyType { .. } => match p2 {
                0x60 => 0,
                0x61 => 1,
                _ => return status(words.bad_key),
            },
        };
        match self.keys.get_mut(index) {
            Some(slot) => {
                *slot = Some(key);
                status(sw::OK)
            }
            None => status(words.bad_key),
        }
    }

    fn authenticate(&mut self, block: u8, key_type: u8, key_no: u8) -> Vec<u8> {
        let words = self.profile.words;
        let key_type = match key_type {
            0x60 => KeyType::A,
            0x61 => KeyType::B,
            _ => return status(words.bad_key),
        };
        let index = match self.profile.keys {
            KeyMemory::Slots { .. } => usize::from(key_no),
            KeyMemory::ByKeyType { auth_key_no } if key_no == auth_key_no => {
                usize::from(key_type == KeyType::B)
            }
            KeyMemory::ByKeyType { .. } => return status(words.bad_key),
        };
        let Some(Some(key)) = self.keys.get(index).copied() else {
            return status(words.bad_key);
        };
        let Chip::Classic(card) = &mut self.chip else {
            return status(words.auth_failed);
        };
        // A reader that re-selects a halted card does so before authenticating; another
        // leaves it halted, and the card does not answer until a reset.
        if card.is_halted() && self.profile.reselects {
            card.select();
        }
        match card.authenticate(block, key_type, key) {
            Ok(()) => status(sw::OK),
            Err(_) => status(words.auth_failed),
        }
    }

    /// The profile's reading of Le for a Classic READ BINARY: how many blocks, or the status
    /// word refusing it.
    fn blocks_for_le(profile: &ReaderProfile, le: u8) -> Result<u8, [u8; 2]> {
        match le {
            _ if profile.any_le => Ok(1),
            0x10 => Ok(1),
            0x00 if profile.le_zero => Ok(1),
            _ if le.is_multiple_of(16) && (2..=profile.multi_read).contains(&(le / 16)) => {
                Ok(le / 16)
            }
            _ => Err(sw::wrong_le(0x10)),
        }
    }

    /// `FF B1 00 <sector> 00`: the three data blocks of a small sector.
    fn read_sector(&self, sector: u8) -> Vec<u8> {
        if sector >= 32 {
            return status(self.profile.words.refused);
        }
        self.read_classic(sector * 4, 3)
    }

    /// `count` consecutive blocks of one sector from a Classic card, never a trailer among
    /// several.
    fn read_classic(&self, block: u8, count: u8) -> Vec<u8> {
        let (Chip::Classic(card), Some(geometry)) = (&self.chip, self.card_type.geometry()) else {
            return status(self.profile.words.refused);
        };
        let mut data = Vec::with_capacity(usize::from(count) * 16);
        for b in block..block.saturating_add(count) {
            let several_cross = count > 1
                && (geometry.sector_of(b) != geometry.sector_of(block) || geometry.is_trailer(b));
            if several_cross {
                return status(self.profile.words.refused);
            }
            match card.read(b) {
                Ok(d) => data.extend_from_slice(&d),
                Err(_) => return status(self.profile.words.refused),
            }
        }
        with_sw(&data, sw::OK)
    }

    /// `FF B0 00 <block> Le`.
    fn read_binary(&self, block: u8, le: u8) -> Vec<u8> {
        match &self.chip {
            Chip::Classic(_) => match Self::blocks_for_le(&self.profile, le) {
                Ok(count) => self.read_classic(block, count),
                Err(word) => status(word),
            },
            Chip::Ultralight(card) => {
                if le > 0x10 {
                    return status(sw::wrong_le(0x10));
                }
                let n = if le == 0 { 16 } else { usize::from(le) };
                match card.read(block) {
                    Ok(data) => with_sw(data.get(..n).unwrap_or(&data), sw::OK),
                    Err(_) => status(sw::FAILED),
                }
            }
            Chip::Desfire(_) => status(sw::FAILED),
        }
    }

    /// `FF D6 00 <block> Lc <data>`: 16 bytes for Classic; 4 bytes (one page) or 16 bytes
    /// (compatibility write: the first 4 land) for Ultralight.
    fn update_binary(&mut self, block: u8, data: &[u8]) -> Vec<u8> {
        let refused = self.profile.words.refused;
        let tear = match self.tear_at {
            Some((at, mode)) if at == self.writes => Some(mode),
            _ => None,
        };
        let result = match &mut self.chip {
            Chip::Classic(card) => {
                let Ok(data) = <&[u8; 16]>::try_from(data) else {
                    return status(sw::WRONG_LENGTH);
                };
                match tear {
                    Some(mode) => card.write_torn(block, data, mode.landed_bytes(16)).is_ok(),
                    None => card.write(block, data).is_ok(),
                }
            }
            Chip::Ultralight(card) => {
                let page = match data {
                    &[a, b, c, d] | &[a, b, c, d, _, _, _, _, _, _, _, _, _, _, _, _] => {
                        [a, b, c, d]
                    }
                    _ => return status(sw::WRONG_LENGTH),
                };
                match tear {
                    Some(mode) => {
                        // Only the landed prefix of the page reaches EEPROM.
                        let landed = mode.landed_bytes(4);
                        match card.read(block) {
                            Ok(old) => {
                                let mut torn = [0u8; 4];
                                for (i, (dst, (new, old))) in
                                    torn.iter_mut().zip(page.iter().zip(old)).enumerate()
                                {
                                    *dst = if i < landed { *new } else { old };
                                }
                                card.write(block, torn).is_ok()
                            }
                            Err(_) => false,
                        }
                    }
                    None => card.write(block, page).is_ok(),
                }
            }
            Chip::Desfire(_) => return status(sw::FAILED),
        };
        if tear.is_some() {
            self.torn = true;
            self.tear_at = None;
            return status(sw::FAILED);
        }
        if result {
            self.writes = self.writes.saturating_add(1);
            status(sw::OK)
        } else {
            status(refused)
        }
    }
}
