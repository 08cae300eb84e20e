//! MIFARE Application Directory, MAD1 and MAD2 (NXP AN10787; docs/reference/mad.md).
//!
//! MAD1: sector 0, blocks 1-2: `CRC | info | 15 AIDs` for sectors 1-15.
//! MAD2: sector 16, blocks 64-66: `CRC | info | 23 AIDs` for sectors 17-39.
//! Each AID is stored as `application code, function cluster code` (NDEF `0xE103` is stored
//! `03 E1`). CRC-8: polynomial `0x1D`, preset `0xC7`, MSB first, over info and AIDs.
//! The GPB of sector 0's trailer says whether a MAD is present and which version.

use std::fmt;

use super::Block;

/// An application identifier of a sector: function cluster code (high byte) and application
/// code (low byte).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Aid(pub u16);

impl Aid {
    /// `0000`: sector free.
    pub const FREE: Self = Self(0x0000);
    /// `0001`: sector defect (keys destroyed or unknown).
    pub const DEFECT: Self = Self(0x0001);
    /// `0002`: sector reserved.
    pub const RESERVED: Self = Self(0x0002);
    /// `0003`: additional directory info.
    pub const DIRECTORY_INFO: Self = Self(0x0003);
    /// `0004`: card holder information.
    pub const CARD_HOLDER: Self = Self(0x0004);
    /// `0005`: not applicable (above memory size).
    pub const NOT_APPLICABLE: Self = Self(0x0005);
    /// `E103`: NFC Forum NDEF.
    pub const NDEF: Self = Self(0xE103);

    /// From a function cluster code and an application code.
    pub const fn new(cluster: u8, application: u8) -> Self {
        Self(u16::from_be_bytes([cluster, application]))
    }

    /// Storage order: application code, then function cluster code.
    pub fn to_bytes(self) -> [u8; 2] {
        self.0.to_le_bytes()
    }

    /// From the storage order.
    pub fn from_bytes(bytes: [u8; 2]) -> Self {
        Self(u16::from_le_bytes(bytes))
    }
}

impl fmt::Debug for Aid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Aid({:04X})", self.0)
    }
}

/// GPB of sector 0 for a multi-application card with MAD1 (DA=1, MA=1, version 01).
pub const GPB_MAD1: u8 = 0xC1;
/// GPB of sector 0 for a multi-application card with MAD2.
pub const GPB_MAD2: u8 = 0xC2;

/// MAD version announced by a GPB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MadVersion {
    /// MAD1 (sector 0 only).
    V1,
    /// MAD2 (sectors 0 and 16).
    V2,
}

/// The MAD version the sector 0 GPB announces, or `None` when the DA bit is clear or the
/// version is unknown.
pub fn mad_version(gpb: u8) -> Option<MadVersion> {
    if gpb & 0x80 == 0 {
        return None;
    }
    match gpb & 0x03 {
        0x01 => Some(MadVersion::V1),
        0x02 => Some(MadVersion::V2),
        _ => None,
    }
}

/// CRC-8 of the MAD: polynomial `0x1D`, preset `0xC7`, MSB first, no final XOR.
pub fn crc8(data: &[u8]) -> u8 {
    let mut crc: u8 = 0xC7;
    for byte in data {
        crc ^= byte;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x1D
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Errors parsing a MAD.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MadError {
    /// Wrong number of bytes.
    #[error("MAD blocks have the wrong length ({0} bytes)")]
    BadLength(usize),
    /// CRC mismatch.
    #[error("MAD CRC mismatch: stored {stored:02X}, computed {computed:02X}")]
    Crc {
        /// CRC byte on the card.
        stored: u8,
        /// CRC computed over the rest.
        computed: u8,
    },
    /// The info byte points at a sector that cannot hold the card publisher sector.
    #[error("MAD info byte {0:02X} is invalid")]
    BadInfo(u8),
}

fn parse_dir<const N: usize>(bytes: &[u8], max_cps: u8) -> Result<(u8, [Aid; N]), MadError> {
    if bytes.len() != 2 + 2 * N {
        return Err(MadError::BadLength(bytes.len()));
    }
    let (head, rest) = bytes.split_at(2);
    let (stored, info) = match head {
        [crc, info] => (*crc, *info),
        _ => return Err(MadError::BadLength(bytes.len())),
    };
    let computed = crc8(bytes.get(1..).unwrap_or(&[]));
    if stored != computed {
        return Err(MadError::Crc { stored, computed });
    }
    let pointer = info & 0x3F;
    if pointer > max_cps || pointer == 0x10 {
        return Err(MadError::BadInfo(info));
    }
    let mut aids = [Aid::FREE; N];
    for (aid, pair) in aids.iter_mut().zip(rest.chunks_exact(2)) {
        if let [lo, hi] = pair {
            *aid = Aid::from_bytes([*lo, *hi]);
        }
    }
    Ok((info, aids))
}

fn build_dir<const N: usize>(info: u8, aids: &[Aid; N]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + 2 * N);
    out.push(0);
    out.push(info);
    for aid in aids {
        out.extend_from_slice(&aid.to_bytes());
    }
    let crc = crc8(out.get(1..).unwrap_or(&[]));
    if let Some(first) = out.first_mut() {
        *first = crc;
    }
    out
}

fn to_blocks<const B: usize>(bytes: &[u8]) -> [Block; B] {
    let mut blocks = [[0u8; 16]; B];
    for (block, chunk) in blocks.iter_mut().zip(bytes.chunks(16)) {
        for (dst, src) in block.iter_mut().zip(chunk) {
            *dst = *src;
        }
    }
    blocks
}

/// MAD1: the directory of sectors 1-15, stored in blocks 1 and 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mad1 {
    /// Info byte (bits 5-0: card publisher sector, 0 = none).
    pub info: u8,
    /// AIDs of sectors 1..=15 (index 0 is sector 1).
    pub aids: [Aid; 15],
}

impl Mad1 {
    /// An empty directory: every sector free, no card publisher sector.
    pub fn empty() -> Self {
        Self {
            info: 0,
            aids: [Aid::FREE; 15],
        }
    }

    /// Parses the 32 bytes of blocks 1 and 2.
    pub fn parse(bytes: &[u8]) -> Result<Self, MadError> {
        let (info, aids) = parse_dir::<15>(bytes, 0x0F)?;
        Ok(Self { info, aids })
    }

    /// `true` when some sector is registered to an application (any AID other than free and
    /// not applicable): a card without ours is then foreign, not blank.
    pub fn in_use(&self) -> bool {
        self.aids
            .iter()
            .any(|a| *a != Aid::FREE && *a != Aid::NOT_APPLICABLE)
    }

    /// The 32 bytes of blocks 1 and 2, CRC included.
    pub fn to_bytes(&self) -> Vec<u8> {
        build_dir(self.info, &self.aids)
    }

    /// Blocks 1 and 2.
    pub fn to_blocks(&self) -> [Block; 2] {
        to_blocks(&self.to_bytes())
    }

    /// The AID of `sector` (1..=15).
    pub fn aid(&self, sector: u8) -> Option<Aid> {
        self.aids.get(usize::from(sector).checked_sub(1)?).copied()
    }

    /// Sets the AID of `sector` (1..=15); `false` when out of range.
    pub fn set(&mut self, sector: u8, aid: Aid) -> bool {
        match usize::from(sector)
            .checked_sub(1)
            .and_then(|i| self.aids.get_mut(i))
        {
            Some(slot) => {
                *slot = aid;
                true
            }
            None => false,
        }
    }

    /// Sectors (ascending) registered to `aid`.
    pub fn sectors_of(&self, aid: Aid) -> Vec<u8> {
        (1..=15u8).filter(|s| self.aid(*s) == Some(aid)).collect()
    }
}

/// MAD2: the directory of sectors 17-39, stored in blocks 64-66 (sector 16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mad2 {
    /// Info byte (bits 5-0: card publisher sector, 0 = none).
    pub info: u8,
    /// AIDs of sectors 17..=39 (index 0 is sector 17).
    pub aids: [Aid; 23],
}

impl Mad2 {
    /// An empty directory.
    pub fn empty() -> Self {
        Self {
            info: 0,
            aids: [Aid::FREE; 23],
        }
    }

    /// Parses the 48 bytes of blocks 64-66.
    pub fn parse(bytes: &[u8]) -> Result<Self, MadError> {
        let (info, aids) = parse_dir::<23>(bytes, 0x27)?;
        Ok(Self { info, aids })
    }

    /// The 48 bytes of blocks 64-66, CRC included.
    pub fn to_bytes(&self) -> Vec<u8> {
        build_dir(self.info, &self.aids)
    }

    /// Blocks 64, 65 and 66.
    pub fn to_blocks(&self) -> [Block; 3] {
        to_blocks(&self.to_bytes())
    }

    /// The AID of `sector` (17..=39).
    pub fn aid(&self, sector: u8) -> Option<Aid> {
        self.aids.get(usize::from(sector).checked_sub(17)?).copied()
    }

    /// Sectors (ascending) registered to `aid`.
    pub fn sectors_of(&self, aid: Aid) -> Vec<u8> {
        (17..=39u8).filter(|s| self.aid(*s) == Some(aid)).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::hex;
    use proptest::prelude::*;

    #[test]
    fn ndef_check_value() {
        let mad = Mad1 {
            info: 0x01,
            aids: [Aid::NDEF; 15],
        };
        let bytes = mad.to_bytes();
        assert_eq!(&bytes[..4], &[0x14, 0x01, 0x03, 0xE1]);
        assert_eq!(Mad1::parse(&bytes).unwrap(), mad);
        assert_eq!(
            hex::encode(&mad.to_blocks()[0]),
            "140103E103E103E103E103E103E103E1"
        );
    }

    #[test]
    fn crc_errors_are_reported() {
        let mut bytes = Mad1::empty().to_bytes();
        bytes[5] ^= 1;
        assert!(matches!(Mad1::parse(&bytes), Err(MadError::Crc { .. })));
        assert_eq!(Mad1::parse(&[0; 31]), Err(MadError::BadLength(31)));
        // A blank card's zero blocks are not a MAD.
        assert!(Mad1::parse(&[0; 32]).is_err());
    }

    #[test]
    fn gpb() {
        assert_eq!(mad_version(0x69), None);
        assert_eq!(mad_version(GPB_MAD1), Some(MadVersion::V1));
        assert_eq!(mad_version(GPB_MAD2), Some(MadVersion::V2));
    }

    fn aid() -> impl Strategy<Value = Aid> {
        any::<u16>().prop_map(Aid)
    }

    proptest! {
        #[test]
        fn mad1_round_trip(info in 0u8..16, aids in proptest::array::uniform15(aid())) {
            let mad = Mad1 { info, aids };
            prop_assert_eq!(Mad1::parse(&mad.to_bytes()), Ok(mad.clone()));
            let blocks = mad.to_blocks();
            prop_assert_eq!(blocks.concat(), mad.to_bytes());
        }

        #[test]
        fn mad2_round_trip(info in 0u8..0x28, aids in proptest::collection::vec(aid(), 23)) {
            prop_assume!(info != 0x10);
            let mut arr = [Aid::FREE; 23];
            arr.copy_from_slice(&aids);
            let mad = Mad2 { info, aids: arr };
            prop_assert_eq!(Mad2::parse(&mad.to_bytes()), Ok(mad.clone()));
            prop_assert_eq!(mad.to_blocks().concat(), mad.to_bytes());
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(mad) = Mad1::parse(&bytes) {
                prop_assert_eq!(mad.to_bytes(), bytes.clone());
            }
            if let Ok(mad) = Mad2::parse(&bytes) {
                prop_assert_eq!(mad.to_bytes(), bytes);
            }
        }
    }
}
