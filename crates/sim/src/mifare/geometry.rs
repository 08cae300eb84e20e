//! Memory geometry of MIFARE Classic cards (docs/reference/mifare-classic.md §1).

/// Which MIFARE Classic memory layout a card has.
///
/// Mini: 5 sectors of 4 blocks (20 blocks, 320 bytes). 1K: 16 sectors of 4 blocks (64 blocks,
/// 1024 bytes). 4K: sectors 0-31 of 4 blocks, sectors 32-39 of 16 blocks (256 blocks,
/// 4096 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Geometry {
    /// MIFARE Mini (320 bytes).
    Mini,
    /// MIFARE Classic 1K.
    Classic1k,
    /// MIFARE Classic 4K.
    Classic4k,
}

/// Bytes in one block.
pub const BLOCK_LEN: usize = 16;

/// First block of the 16-block sectors of a 4K card (sector 32).
const BIG_SECTOR_START: u16 = 128;

impl Geometry {
    /// Number of sectors.
    pub const fn sector_count(self) -> u8 {
        match self {
            Self::Mini => 5,
            Self::Classic1k => 16,
            Self::Classic4k => 40,
        }
    }

    /// Number of 16-byte blocks.
    pub const fn block_count(self) -> u16 {
        match self {
            Self::Mini => 20,
            Self::Classic1k => 64,
            Self::Classic4k => 256,
        }
    }

    /// Size of a raw memory image (the `.mfd` layout) in bytes.
    pub const fn byte_len(self) -> usize {
        self.block_count() as usize * BLOCK_LEN
    }

    /// The sector holding `block`, or `None` when the block does not exist.
    pub fn sector_of(self, block: u8) -> Option<u8> {
        let b = u16::from(block);
        if b >= self.block_count() {
            return None;
        }
        let sector = if b < BIG_SECTOR_START {
            b / 4
        } else {
            32 + (b - BIG_SECTOR_START) / 16
        };
        u8::try_from(sector).ok()
    }

    /// Number of blocks in `sector` (4, or 16 for sectors 32-39 of a 4K card).
    pub const fn blocks_in_sector(self, sector: u8) -> u8 {
        if sector >= 32 { 16 } else { 4 }
    }

    /// First block of `sector` (the caller guarantees the sector exists).
    pub fn first_block(self, sector: u8) -> u8 {
        let s = u16::from(sector);
        let first = if s < 32 {
            s * 4
        } else {
            BIG_SECTOR_START + (s - 32) * 16
        };
        // Sector 39 starts at block 240: always fits.
        u8::try_from(first).unwrap_or(u8::MAX)
    }

    /// The trailer block of `sector`.
    pub fn trailer_of(self, sector: u8) -> u8 {
        self.first_block(sector)
            .saturating_add(self.blocks_in_sector(sector) - 1)
    }

    /// Whether `block` exists and is a sector trailer.
    pub fn is_trailer(self, block: u8) -> bool {
        self.sector_of(block)
            .is_some_and(|s| self.trailer_of(s) == block)
    }

    /// Index of the access-condition group (0, 1, 2 for data, 3 for the trailer) governing
    /// `block`. In 16-block sectors, groups 0-2 each cover five data blocks.
    pub fn access_group(self, block: u8) -> Option<usize> {
        let sector = self.sector_of(block)?;
        let offset = block - self.first_block(sector);
        if offset == self.blocks_in_sector(sector) - 1 {
            Some(3)
        } else if sector >= 32 {
            Some(usize::from(offset / 5))
        } else {
            Some(usize::from(offset))
        }
    }

    /// SAK answered in anticollision (§1: 1K 08, 4K 18, Mini 09).
    pub const fn sak(self) -> u8 {
        match self {
            Self::Mini => 0x09,
            Self::Classic1k => 0x08,
            Self::Classic4k => 0x18,
        }
    }

    /// ATQA (`SENS_RES`) as sent on air, most significant byte first: `00 04` (1K, Mini) or
    /// `00 02` (4K) for a 4-byte UID; `00 44` / `00 42` for a 7-byte UID.
    pub const fn atqa(self, uid_len: usize) -> [u8; 2] {
        let low = match self {
            Self::Mini | Self::Classic1k => 0x04,
            Self::Classic4k => 0x02,
        };
        if uid_len == 7 {
            [0x00, low | 0x40]
        } else {
            [0x00, low]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_k() {
        let g = Geometry::Classic1k;
        assert_eq!(g.byte_len(), 1024);
        assert_eq!(g.sector_of(63), Some(15));
        assert_eq!(g.sector_of(64), None);
        assert_eq!(g.trailer_of(0), 3);
        assert!(g.is_trailer(63));
        assert!(!g.is_trailer(62));
        assert_eq!(g.access_group(6), Some(2));
        assert_eq!(g.access_group(7), Some(3));
    }

    #[test]
    fn four_k_big_sectors() {
        let g = Geometry::Classic4k;
        assert_eq!(g.byte_len(), 4096);
        assert_eq!(g.sector_of(127), Some(31));
        assert_eq!(g.sector_of(128), Some(32));
        assert_eq!(g.sector_of(143), Some(32));
        assert_eq!(g.sector_of(144), Some(33));
        assert_eq!(g.sector_of(255), Some(39));
        assert_eq!(g.first_block(32), 128);
        assert_eq!(g.first_block(39), 240);
        assert_eq!(g.trailer_of(32), 143);
        assert_eq!(g.trailer_of(39), 255);
        assert!(g.is_trailer(143));
        assert!(!g.is_trailer(131));
        assert_eq!(g.access_group(128), Some(0));
        assert_eq!(g.access_group(132), Some(0));
        assert_eq!(g.access_group(133), Some(1));
        assert_eq!(g.access_group(142), Some(2));
        assert_eq!(g.access_group(143), Some(3));
    }

    #[test]
    fn mini() {
        let g = Geometry::Mini;
        assert_eq!(g.byte_len(), 320);
        assert_eq!(g.sector_count(), 5);
        assert_eq!(g.sector_of(19), Some(4));
        assert_eq!(g.sector_of(20), None);
        assert_eq!(g.sak(), 0x09);
    }

    #[test]
    fn atqa_depends_on_uid_length() {
        assert_eq!(Geometry::Classic1k.atqa(4), [0x00, 0x04]);
        assert_eq!(Geometry::Classic1k.atqa(7), [0x00, 0x44]);
        assert_eq!(Geometry::Classic4k.atqa(4), [0x00, 0x02]);
    }
}
