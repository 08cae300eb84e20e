//! PC/SC Part 3 storage-card commands (CLA `FF`) with ACS status words
//! (docs/reference/pcsc-part3.md §1-§2): any failure `63 00`, unsupported function `6A 81`, wrong
//! length `67 00`, wrong Le `6C xx`, class other than `FF` `6E 00`.

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
                        status(sw::FAILED)
                    }
                }
                _ => status(sw::WRONG_LENGTH),
            },
            // Obsolete form: FF 88 00 <block> <key type> <key no>.
            0x88 => match body {
                [key_type, key_no] if p1 == 0 => self.authenticate(p2, *key_type, *key_no),
                [_, _] => status(sw::FAILED),
                _ => status(sw::WRONG_LENGTH),
            },
            0xB0 => match body {
                [le] if p1 == 0 => self.read_binary(p2, *le),
                [_] => status(sw::FAILED),
                _ => status(sw::WRONG_LENGTH),
            },
            0xD6 => match body {
                [lc, data @ ..] if usize::from(*lc) == data.len() && *lc != 0 => {
                    if p1 == 0 {
                        self.update_binary(p2, data)
                    } else {
                        status(sw::FAILED)
                    }
                }
                _ => status(sw::WRONG_LENGTH),
            },
            _ => status(sw::UNSUPPORTED),
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

    /// `FF 82 00 <00|01> 06 <key>`: load a key into a volatile slot.
    fn load_key(&mut self, p1: u8, p2: u8, body: &[u8]) -> Vec<u8> {
        let [0x06, key @ ..] = body else {
            return status(sw::WRONG_LENGTH);
        };
        let Ok(key) = <[u8; 6]>::try_from(key) else {
            return status(sw::WRONG_LENGTH);
        };
        match (p1, self.keys.get_mut(usize::from(p2))) {
            (0x00, Some(slot)) => {
                *slot = Some(key);
                status(sw::OK)
            }
            _ => status(sw::FAILED),
        }
    }

    fn authenticate(&mut self, block: u8, key_type: u8, key_no: u8) -> Vec<u8> {
        let key_type = match key_type {
            0x60 => KeyType::A,
            0x61 => KeyType::B,
            _ => return status(sw::FAILED),
        };
        let Some(Some(key)) = self.keys.get(usize::from(key_no)).copied() else {
            return status(sw::FAILED);
        };
        let Chip::Classic(card) = &mut self.chip else {
            return status(sw::FAILED);
        };
        // The ACR122U firmware re-selects a halted card before authenticating.
        if card.is_halted() {
            card.select();
        }
        match card.authenticate(block, key_type, key) {
            Ok(()) => status(sw::OK),
            Err(_) => status(sw::FAILED),
        }
    }

    /// `FF B0 00 <block> Le`.
    fn read_binary(&self, block: u8, le: u8) -> Vec<u8> {
        match &self.chip {
            Chip::Classic(card) => {
                if le != 0x10 && le != 0x00 {
                    return status(sw::wrong_le(0x10));
                }
                match card.read(block) {
                    Ok(data) => with_sw(&data, sw::OK),
                    Err(_) => status(sw::FAILED),
                }
            }
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
            status(sw::FAILED)
        }
    }
}
