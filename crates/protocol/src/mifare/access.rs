//! Access bits (docs/reference/mifare-classic.md §4-§6).
//!
//! Block group `i` (0, 1, 2 = data, 3 = trailer) has the condition bits `C1i C2i C3i`, written
//! here as a code `C1<<2 | C2<<1 | C3` (so the reference's "100" is code 4). Stored as
//! `byte6 = ~C2<<4 | ~C1`, `byte7 = C1<<4 | ~C3`, `byte8 = C3<<4 | C2` (nibbles over the four
//! groups). A triple whose inverted nibbles do not match is rejected: written to a card it
//! would lock the sector forever.
//!
//! Two types: [`AccessBits`] is any consistent combination (what a card may hold, including
//! frozen sectors of other applications); [`AccessConditions`] is the subset this crate is
//! willing to write: some key must still be able to rewrite the trailer. Only
//! [`AccessConditions`] reaches [`super::trailer::Trailer`], so a trailer that locks its sector
//! cannot be built.

use std::fmt;

/// Which of the two sector keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// Key A (`60` in an authenticate APDU).
    A,
    /// Key B (`61`).
    B,
}

impl KeyType {
    /// The byte used in the PC/SC authenticate command.
    pub fn code(self) -> u8 {
        match self {
            Self::A => 0x60,
            Self::B => 0x61,
        }
    }
}

/// Conditions of a data block group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataAccess {
    /// 000: read, write, increment, decrement with A or B (transport).
    ReadWriteAB,
    /// 010: read A|B, nothing else.
    ReadAB,
    /// 100: read A|B, write B.
    ReadABWriteB,
    /// 110: value block: read A|B, write B, increment B, decrement A|B.
    ValueWriteB,
    /// 001: value block: read A|B, decrement A|B only.
    ValueDecrementAB,
    /// 011: read B, write B.
    ReadWriteB,
    /// 101: read B only.
    ReadB,
    /// 111: nothing.
    Never,
}

impl DataAccess {
    /// All eight conditions.
    pub const ALL: [Self; 8] = [
        Self::ReadWriteAB,
        Self::ValueDecrementAB,
        Self::ReadAB,
        Self::ReadWriteB,
        Self::ReadABWriteB,
        Self::ReadB,
        Self::ValueWriteB,
        Self::Never,
    ];

    /// The code `C1<<2 | C2<<1 | C3`.
    pub const fn code(self) -> u8 {
        match self {
            Self::ReadWriteAB => 0b000,
            Self::ValueDecrementAB => 0b001,
            Self::ReadAB => 0b010,
            Self::ReadWriteB => 0b011,
            Self::ReadABWriteB => 0b100,
            Self::ReadB => 0b101,
            Self::ValueWriteB => 0b110,
            Self::Never => 0b111,
        }
    }

    /// The condition of a code (only the low three bits are used).
    pub const fn from_code(code: u8) -> Self {
        match code & 7 {
            0b000 => Self::ReadWriteAB,
            0b001 => Self::ValueDecrementAB,
            0b010 => Self::ReadAB,
            0b011 => Self::ReadWriteB,
            0b100 => Self::ReadABWriteB,
            0b101 => Self::ReadB,
            0b110 => Self::ValueWriteB,
            _ => Self::Never,
        }
    }

    /// May `key` read blocks of this group?
    pub fn can_read(self, key: KeyType) -> bool {
        match self {
            Self::ReadWriteAB
            | Self::ReadAB
            | Self::ReadABWriteB
            | Self::ValueWriteB
            | Self::ValueDecrementAB => true,
            Self::ReadWriteB | Self::ReadB => key == KeyType::B,
            Self::Never => false,
        }
    }

    /// May `key` write blocks of this group?
    pub fn can_write(self, key: KeyType) -> bool {
        match self {
            Self::ReadWriteAB => true,
            Self::ReadABWriteB | Self::ValueWriteB | Self::ReadWriteB => key == KeyType::B,
            _ => false,
        }
    }
}

/// Conditions of the trailer group (docs/reference/mifare-classic.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrailerAccess {
    /// 000: key A written by A, access bits read by A, key B read/written by A.
    KeysByA,
    /// 010: access bits read by A, key B read by A; nothing writable.
    FrozenKeyBReadable,
    /// 100: keys written by B, access bits read by A|B; access bits frozen.
    KeysByB,
    /// 110: access bits read by A|B; nothing writable.
    Frozen,
    /// 001: transport: key A, access bits and key B all written by A; key B readable.
    Transport,
    /// 011: keys and access bits written by B, access bits read by A|B.
    ManagedByB,
    /// 101: access bits written by B, read by A|B; keys frozen.
    AccessBitsByB,
    /// 111: access bits read by A|B; nothing writable.
    FrozenForever,
}

impl TrailerAccess {
    /// All eight conditions.
    pub const ALL: [Self; 8] = [
        Self::KeysByA,
        Self::Transport,
        Self::FrozenKeyBReadable,
        Self::ManagedByB,
        Self::KeysByB,
        Self::AccessBitsByB,
        Self::Frozen,
        Self::FrozenForever,
    ];

    /// The code `C1<<2 | C2<<1 | C3`.
    pub const fn code(self) -> u8 {
        match self {
            Self::KeysByA => 0b000,
            Self::Transport => 0b001,
            Self::FrozenKeyBReadable => 0b010,
            Self::ManagedByB => 0b011,
            Self::KeysByB => 0b100,
            Self::AccessBitsByB => 0b101,
            Self::Frozen => 0b110,
            Self::FrozenForever => 0b111,
        }
    }

    /// The condition of a code (only the low three bits are used).
    pub const fn from_code(code: u8) -> Self {
        match code & 7 {
            0b000 => Self::KeysByA,
            0b001 => Self::Transport,
            0b010 => Self::FrozenKeyBReadable,
            0b011 => Self::ManagedByB,
            0b100 => Self::KeysByB,
            0b101 => Self::AccessBitsByB,
            0b110 => Self::Frozen,
            _ => Self::FrozenForever,
        }
    }

    /// `true` when key B can be read out of the trailer. Such a key B is data, not a key:
    /// it cannot authenticate.
    pub const fn key_b_readable(self) -> bool {
        matches!(
            self,
            Self::KeysByA | Self::FrozenKeyBReadable | Self::Transport
        )
    }

    /// The key that may rewrite the access bits, if any.
    pub const fn access_bits_writer(self) -> Option<KeyType> {
        match self {
            Self::Transport => Some(KeyType::A),
            Self::ManagedByB | Self::AccessBitsByB => Some(KeyType::B),
            _ => None,
        }
    }

    /// The key that may rewrite key A and key B, if any.
    pub const fn keys_writer(self) -> Option<KeyType> {
        match self {
            Self::KeysByA | Self::Transport => Some(KeyType::A),
            Self::KeysByB | Self::ManagedByB => Some(KeyType::B),
            _ => None,
        }
    }

    /// `true` when some key can rewrite the whole trailer (keys and access bits).
    pub const fn is_rewritable(self) -> bool {
        matches!(self, Self::Transport | Self::ManagedByB)
    }
}

/// Errors of access-bit handling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// The inverted nibbles do not match the plain ones.
    #[error("access bits are inconsistent")]
    Inconsistent,
    /// The trailer condition would leave no key able to rewrite the trailer.
    #[error("trailer condition {0:03b} leaves no key able to rewrite the trailer")]
    NotRewritable(u8),
}

/// Any consistent combination of access conditions, as found on a card.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccessBits {
    codes: [u8; 4],
}

impl AccessBits {
    /// From the three data groups and the trailer group.
    pub const fn new(data: [DataAccess; 3], trailer: TrailerAccess) -> Self {
        Self {
            codes: [
                data[0].code(),
                data[1].code(),
                data[2].code(),
                trailer.code(),
            ],
        }
    }

    /// Conditions of data group `group` (0..=2); out of range gives the trailer-less `Never`.
    pub fn data(self, group: u8) -> DataAccess {
        match group {
            0..=2 => DataAccess::from_code(self.code(group)),
            _ => DataAccess::Never,
        }
    }

    /// Conditions of the trailer.
    pub fn trailer(self) -> TrailerAccess {
        TrailerAccess::from_code(self.code(3))
    }

    fn code(self, group: u8) -> u8 {
        self.codes.get(usize::from(group)).copied().unwrap_or(7)
    }

    /// Encodes to the three access bytes (trailer bytes 6, 7, 8).
    pub const fn encode(self) -> [u8; 3] {
        let mut c1 = 0u8;
        let mut c2 = 0u8;
        let mut c3 = 0u8;
        let mut i = 0;
        while i < 4 {
            #[allow(clippy::indexing_slicing)] // i < 4 = codes.len()
            let code = self.codes[i];
            c1 |= ((code >> 2) & 1) << i;
            c2 |= ((code >> 1) & 1) << i;
            c3 |= (code & 1) << i;
            i += 1;
        }
        [
            ((!c2 & 0x0F) << 4) | (!c1 & 0x0F),
            (c1 << 4) | (!c3 & 0x0F),
            (c3 << 4) | c2,
        ]
    }

    /// Decodes trailer bytes 6, 7, 8, checking every inverted nibble.
    pub fn decode(bytes: [u8; 3]) -> Result<Self, AccessError> {
        let [b6, b7, b8] = bytes;
        let c1 = b7 >> 4;
        let c2 = b8 & 0x0F;
        let c3 = b8 >> 4;
        let not_c1 = b6 & 0x0F;
        let not_c2 = b6 >> 4;
        let not_c3 = b7 & 0x0F;
        if c1 ^ not_c1 != 0x0F || c2 ^ not_c2 != 0x0F || c3 ^ not_c3 != 0x0F {
            return Err(AccessError::Inconsistent);
        }
        let mut codes = [0u8; 4];
        for (i, code) in codes.iter_mut().enumerate() {
            *code = (((c1 >> i) & 1) << 2) | (((c2 >> i) & 1) << 1) | ((c3 >> i) & 1);
        }
        Ok(Self { codes })
    }
}

impl fmt::Debug for AccessBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [g0, g1, g2, trailer] = self.codes;
        write!(
            f,
            "AccessBits({g0:03b} {g1:03b} {g2:03b} / trailer {trailer:03b})"
        )
    }
}

/// Access conditions this crate may write: consistent by construction and leaving a key that
/// can rewrite the whole trailer (condition 001 with key A, or 011 with key B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccessConditions(AccessBits);

impl AccessConditions {
    /// Factory transport configuration `FF 07 80`: data 000, trailer 001.
    pub const TRANSPORT: Self = Self(AccessBits::new(
        [DataAccess::ReadWriteAB; 3],
        TrailerAccess::Transport,
    ));

    /// Our sectors and the MAD sector, `78 77 88`: data 100 (read A|B, write B), trailer 011
    /// (key B rewrites everything; key B not readable).
    pub const READ_A_WRITE_B: Self = Self(AccessBits::new(
        [DataAccess::ReadABWriteB; 3],
        TrailerAccess::ManagedByB,
    ));

    /// Checks that `trailer` leaves a key able to rewrite the trailer.
    pub fn new(data: [DataAccess; 3], trailer: TrailerAccess) -> Result<Self, AccessError> {
        Self::try_from(AccessBits::new(data, trailer))
    }

    /// The underlying bits.
    pub fn bits(self) -> AccessBits {
        self.0
    }

    /// The key that can rewrite the trailer.
    pub fn trailer_writer(self) -> KeyType {
        match self.0.trailer().access_bits_writer() {
            Some(key) => key,
            // Unreachable by construction; B is the conservative answer.
            None => KeyType::B,
        }
    }
}

impl TryFrom<AccessBits> for AccessConditions {
    type Error = AccessError;

    fn try_from(bits: AccessBits) -> Result<Self, AccessError> {
        if bits.trailer().is_rewritable() {
            Ok(Self(bits))
        } else {
            Err(AccessError::NotRewritable(bits.trailer().code()))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        assert_eq!(
            AccessConditions::TRANSPORT.bits().encode(),
            [0xFF, 0x07, 0x80]
        );
        assert_eq!(
            AccessConditions::READ_A_WRITE_B.bits().encode(),
            [0x78, 0x77, 0x88]
        );
        let b = AccessBits::new([DataAccess::ReadWriteAB; 3], TrailerAccess::ManagedByB);
        assert_eq!(b.encode(), [0x7F, 0x07, 0x88]);
        let v = AccessBits::new([DataAccess::ValueWriteB; 3], TrailerAccess::ManagedByB);
        assert_eq!(v.encode(), [0x08, 0x77, 0x8F]);
    }

    #[test]
    fn every_combination_round_trips() {
        // 8^4 = 4096 combinations: all of them.
        for code in 0..4096u16 {
            let g = |i: u16| u8::try_from((code >> (3 * i)) & 7).unwrap();
            let bits = AccessBits::new(
                [
                    DataAccess::from_code(g(0)),
                    DataAccess::from_code(g(1)),
                    DataAccess::from_code(g(2)),
                ],
                TrailerAccess::from_code(g(3)),
            );
            assert_eq!(AccessBits::decode(bits.encode()).unwrap(), bits);
            let safe = AccessConditions::try_from(bits);
            assert_eq!(safe.is_ok(), bits.trailer().is_rewritable());
        }
    }

    #[test]
    fn only_transport_and_managed_by_b_are_writable() {
        let ok: Vec<_> = TrailerAccess::ALL
            .into_iter()
            .filter(|t| AccessConditions::new([DataAccess::ReadAB; 3], *t).is_ok())
            .collect();
        assert_eq!(
            ok,
            vec![TrailerAccess::Transport, TrailerAccess::ManagedByB]
        );
        assert_eq!(
            AccessConditions::READ_A_WRITE_B.trailer_writer(),
            KeyType::B
        );
        assert!(!TrailerAccess::ManagedByB.key_b_readable());
        assert!(TrailerAccess::Transport.key_b_readable());
    }

    proptest! {
        #[test]
        fn decode_accepts_exactly_the_encodable(bytes in any::<[u8; 3]>()) {
            match AccessBits::decode(bytes) {
                Ok(bits) => prop_assert_eq!(bits.encode(), bytes),
                Err(e) => prop_assert_eq!(e, AccessError::Inconsistent),
            }
        }
    }
}
