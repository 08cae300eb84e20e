//! A minimal MIFARE Classic card behind a PC/SC Part 3 reader, for this crate's unit tests
//! only. It follows the datasheet rules the jobs rely on: access conditions, key A never
//! readable, key B readable only where the trailer says so (and then unusable), a failed
//! authentication halts the card until the next authentication, inconsistent access bits lock
//! a sector. Tears: `tear_at` makes the n-th APDU (1-based) fail with `CardRemoved`; a write at
//! that point is applied not at all, fully, or half, per `tear_mode`.

#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

use crate::mifare::access::{AccessBits, KeyType};
use crate::mifare::geometry::{self, Geometry};
use crate::transmit::{ReaderCaps, Transmit, TransmitError, TransmitErrorKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TearMode {
    NotApplied,
    Applied,
    Half,
}

#[derive(Debug, Clone)]
pub(crate) struct FakeCard {
    pub(crate) blocks: Vec<[u8; 16]>,
    pub(crate) uid: Vec<u8>,
    slots: [Option<[u8; 6]>; 16],
    /// What the fake reader advertises (key slots up to 16, blocks per read).
    pub(crate) caps: ReaderCaps,
    auth: Option<(u8, KeyType)>,
    pub(crate) count: usize,
    pub(crate) tear_at: Option<usize>,
    pub(crate) tear_mode: TearMode,
    removed: bool,
    pub(crate) writes: usize,
    pub(crate) log: Vec<Vec<u8>>,
}

const OK: [u8; 2] = [0x90, 0x00];
const FAIL: [u8; 2] = [0x63, 0x00];

impl FakeCard {
    pub(crate) fn blank(geometry: Geometry, uid: &[u8]) -> Self {
        let mut blocks = vec![[0u8; 16]; usize::from(geometry.block_count())];
        for sector in geometry.sectors() {
            let t = geometry::trailer_block(sector).unwrap();
            blocks[usize::from(t)] = [
                0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, 0x80, 0x69, 0xFF, 0xFF, 0xFF, 0xFF,
                0xFF, 0xFF,
            ];
        }
        let mut b0 = [0u8; 16];
        for (i, b) in uid.iter().enumerate().take(10) {
            b0[i] = *b;
        }
        b0[4] = uid.iter().take(4).fold(0, |a, b| a ^ b);
        b0[5] = 0x08;
        blocks[0] = b0;
        Self {
            blocks,
            uid: uid.to_vec(),
            slots: [None; 16],
            caps: ReaderCaps::BASELINE,
            auth: None,
            count: 0,
            tear_at: None,
            tear_mode: TearMode::NotApplied,
            removed: false,
            writes: 0,
            log: Vec::new(),
        }
    }

    /// Puts the card back on the reader (a new session: keys and authentication lost).
    pub(crate) fn reinsert(&mut self) {
        self.removed = false;
        self.tear_at = None;
        self.auth = None;
        self.slots = [None; 16];
        self.count = 0;
        self.log.clear();
    }

    pub(crate) fn set_trailer(&mut self, sector: u8, bytes: [u8; 16]) {
        let t = geometry::trailer_block(sector).unwrap();
        self.blocks[usize::from(t)] = bytes;
    }

    fn trailer(&self, sector: u8) -> [u8; 16] {
        self.blocks[usize::from(geometry::trailer_block(sector).unwrap())]
    }

    fn access(&self, sector: u8) -> Option<AccessBits> {
        let t = self.trailer(sector);
        AccessBits::decode([t[6], t[7], t[8]]).ok()
    }

    fn authenticate(&mut self, block: u8, key_type: u8, slot: u8) -> [u8; 2] {
        self.auth = None;
        if usize::from(block) >= self.blocks.len() {
            return FAIL;
        }
        let sector = geometry::sector_of(block);
        let Some(Some(key)) = self.slots.get(usize::from(slot)).copied() else {
            return FAIL;
        };
        let Some(access) = self.access(sector) else {
            return FAIL; // bricked sector
        };
        let t = self.trailer(sector);
        let (kt, stored) = match key_type {
            0x60 => (KeyType::A, &t[0..6]),
            0x61 => (KeyType::B, &t[10..16]),
            _ => return FAIL,
        };
        if kt == KeyType::B && access.trailer().key_b_readable() {
            return FAIL;
        }
        if stored == key {
            self.auth = Some((sector, kt));
            OK
        } else {
            FAIL
        }
    }

    fn read(&mut self, block: u8) -> Vec<u8> {
        let Some((sector, kt)) = self.auth else {
            return FAIL.to_vec();
        };
        if usize::from(block) >= self.blocks.len() || geometry::sector_of(block) != sector {
            return FAIL.to_vec();
        }
        let access = self.access(sector).unwrap();
        let mut data = self.blocks[usize::from(block)];
        if geometry::is_trailer(block) {
            data[0..6].fill(0);
            let key_b_readable = access.trailer().key_b_readable() && kt == KeyType::A;
            if !key_b_readable {
                data[10..16].fill(0);
            }
        } else if !access.data(geometry::access_group(block)).can_read(kt) {
            return FAIL.to_vec();
        }
        let mut out = data.to_vec();
        out.extend_from_slice(&OK);
        out
    }

    fn write(&mut self, block: u8, data: &[u8], torn: Option<TearMode>) -> [u8; 2] {
        let Some((sector, kt)) = self.auth else {
            return FAIL;
        };
        if block == 0
            || usize::from(block) >= self.blocks.len()
            || geometry::sector_of(block) != sector
        {
            return FAIL;
        }
        let access = self.access(sector).unwrap();
        let old = self.blocks[usize::from(block)];
        let mut new = old;
        if geometry::is_trailer(block) {
            let t = access.trailer();
            let mut any = false;
            if t.keys_writer() == Some(kt) {
                new[0..6].copy_from_slice(&data[0..6]);
                new[10..16].copy_from_slice(&data[10..16]);
                any = true;
            }
            if t.access_bits_writer() == Some(kt) {
                new[6..10].copy_from_slice(&data[6..10]);
                any = true;
            }
            if !any {
                return FAIL;
            }
        } else if access.data(geometry::access_group(block)).can_write(kt) {
            new.copy_from_slice(data);
        } else {
            return FAIL;
        }
        match torn {
            None | Some(TearMode::Applied) => self.blocks[usize::from(block)] = new,
            Some(TearMode::NotApplied) => {}
            Some(TearMode::Half) => {
                let mut half = old;
                half[..8].copy_from_slice(&new[..8]);
                self.blocks[usize::from(block)] = half;
            }
        }
        self.writes += 1;
        OK
    }

    fn handle(&mut self, cmd: &[u8], torn: Option<TearMode>) -> Vec<u8> {
        match cmd {
            [0xFF, 0xCA, 0x00, 0x00, 0x00] => {
                let mut out = self.uid.clone();
                out.extend_from_slice(&OK);
                out
            }
            [0xFF, 0x82, 0x00, slot, 0x06, key @ ..]
                if key.len() == 6 && *slot < self.caps.key_slots =>
            {
                let mut k = [0u8; 6];
                k.copy_from_slice(key);
                self.slots[usize::from(*slot)] = Some(k);
                OK.to_vec()
            }
            [0xFF, 0x86, 0x00, 0x00, 0x05, 0x01, 0x00, block, kt, slot] => {
                self.authenticate(*block, *kt, *slot).to_vec()
            }
            [0xFF, 0xB0, 0x00, block, 0x10] => self.read(*block),
            // Multi-block reads, as far as the advertised caps go; never a trailer.
            [0xFF, 0xB0, 0x00, block, le]
                if le % 16 == 0 && (2..=self.caps.read_blocks).contains(&(le / 16)) =>
            {
                let mut out = Vec::new();
                for b in *block..block.saturating_add(le / 16) {
                    if geometry::is_trailer(b) {
                        return FAIL.to_vec();
                    }
                    let one = self.read(b);
                    if one.len() != 18 {
                        return one;
                    }
                    out.extend_from_slice(&one[..16]);
                }
                out.extend_from_slice(&OK);
                out
            }
            [0xFF, 0xD6, 0x00, block, 0x10, data @ ..] if data.len() == 16 => {
                self.write(*block, data, torn).to_vec()
            }
            _ => vec![0x6A, 0x81],
        }
    }
}

impl Transmit for FakeCard {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransmitError> {
        if self.removed {
            return Err(TransmitError::new(
                TransmitErrorKind::CardRemoved,
                "card removed",
            ));
        }
        self.count += 1;
        self.log.push(command.to_vec());
        if self.tear_at == Some(self.count) {
            self.removed = true;
            let _ = self.handle(command, Some(self.tear_mode));
            return Err(TransmitError::new(
                TransmitErrorKind::CardRemoved,
                "card removed",
            ));
        }
        Ok(self.handle(command, None))
    }

    fn reader_caps(&self) -> ReaderCaps {
        self.caps
    }
}
