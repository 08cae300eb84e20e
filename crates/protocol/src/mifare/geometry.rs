//! Sector and block arithmetic (docs/reference/mifare-classic.md §1).
//!
//! Sectors 0-31 have 4 blocks (blocks 0-127); sectors 32-39 (4K only) have 16 blocks
//! (blocks 128-255). The last block of each sector is its trailer. The numbering is the same on
//! every card size, so "is block n a trailer" does not depend on the card.

/// A card layout: how many sectors it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    sectors: u8,
}

impl Geometry {
    /// MIFARE Classic 1K: 16 sectors of 4 blocks.
    pub const CLASSIC_1K: Self = Self { sectors: 16 };
    /// MIFARE Classic 4K: 32 sectors of 4 blocks, then 8 of 16.
    pub const CLASSIC_4K: Self = Self { sectors: 40 };
    /// MIFARE Mini: 5 sectors of 4 blocks.
    pub const MINI: Self = Self { sectors: 5 };

    /// Number of sectors.
    pub fn sector_count(self) -> u8 {
        self.sectors
    }

    /// Number of blocks.
    pub fn block_count(self) -> u16 {
        (0..self.sectors)
            .map(|s| u16::from(blocks_in_sector(s)))
            .sum()
    }

    /// `true` when `sector` exists on this card.
    pub fn has_sector(self, sector: u8) -> bool {
        sector < self.sectors
    }

    /// `true` when `block` exists on this card.
    pub fn has_block(self, block: u8) -> bool {
        u16::from(block) < self.block_count()
    }

    /// The sectors of this card.
    pub fn sectors(self) -> impl Iterator<Item = u8> {
        0..self.sectors
    }
}

/// Blocks in `sector` (4 below sector 32, else 16). Sectors above 39 do not exist on any card
/// but the arithmetic stays total.
pub fn blocks_in_sector(sector: u8) -> u8 {
    if sector < 32 { 4 } else { 16 }
}

/// First block of `sector`, or `None` beyond sector 39.
pub fn first_block(sector: u8) -> Option<u8> {
    match sector {
        0..=31 => Some(sector * 4),
        32..=39 => Some(128 + (sector - 32) * 16),
        _ => None,
    }
}

/// Trailer block of `sector`, or `None` beyond sector 39.
pub fn trailer_block(sector: u8) -> Option<u8> {
    first_block(sector).map(|first| first + (blocks_in_sector(sector) - 1))
}

/// The data blocks of `sector` (all blocks but the trailer; block 0 included for sector 0).
pub fn data_blocks(sector: u8) -> impl Iterator<Item = u8> {
    match (first_block(sector), trailer_block(sector)) {
        (Some(first), Some(trailer)) => first..trailer,
        _ => 0..0,
    }
}

/// The sector holding `block`.
pub fn sector_of(block: u8) -> u8 {
    if block < 128 {
        block / 4
    } else {
        32 + (block - 128) / 16
    }
}

/// Index of `block` inside its sector (0-based).
pub fn index_in_sector(block: u8) -> u8 {
    if block < 128 {
        block % 4
    } else {
        (block - 128) % 16
    }
}

/// `true` when `block` is a sector trailer.
pub fn is_trailer(block: u8) -> bool {
    index_in_sector(block) == blocks_in_sector(sector_of(block)) - 1
}

/// The access-bits group (0, 1, 2 for data, 3 for the trailer) that governs `block`.
///
/// In 16-block sectors, group 0 covers blocks 0-4, group 1 blocks 5-9 and group 2 blocks 10-14
/// of the sector.
pub fn access_group(block: u8) -> u8 {
    let index = index_in_sector(block);
    if block < 128 {
        index
    } else if index == 15 {
        3
    } else {
        index / 5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(Geometry::CLASSIC_1K.block_count(), 64);
        assert_eq!(Geometry::CLASSIC_4K.block_count(), 256);
        assert_eq!(Geometry::MINI.block_count(), 20);
    }

    #[test]
    fn arithmetic_is_consistent_for_every_block() {
        for block in 0..=255u8 {
            let sector = sector_of(block);
            let first = first_block(sector).unwrap_or(0);
            assert_eq!(first + index_in_sector(block), block);
            assert_eq!(is_trailer(block), trailer_block(sector) == Some(block));
            assert!(access_group(block) <= 3);
            assert_eq!(access_group(block) == 3, is_trailer(block));
        }
        assert_eq!(trailer_block(39), Some(255));
        assert_eq!(trailer_block(40), None);
        assert_eq!(data_blocks(1).collect::<Vec<_>>(), vec![4, 5, 6]);
        assert_eq!(data_blocks(32).count(), 15);
    }
}
