//! Sector trailers: `KeyA(6) | access bits(3) | GPB(1) | KeyB(6)`
//! (docs/reference/mifare-classic.md §3).
//!
//! [`Trailer`] is the only way this crate produces trailer bytes, and it only accepts
//! [`AccessConditions`], which are consistent and leave a key able to rewrite the trailer.

use std::fmt;

use super::Block;
use super::access::{AccessBits, AccessConditions, AccessError};
use crate::keys::Crypto1Key;

/// General purpose byte of a factory-fresh trailer.
pub const FACTORY_GPB: u8 = 0x69;

/// A trailer to be written. Its `Debug` does not show the keys.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    key_a: Crypto1Key,
    access: AccessConditions,
    gpb: u8,
    key_b: Crypto1Key,
}

impl Trailer {
    /// A trailer with these keys, conditions and general purpose byte.
    pub fn new(key_a: Crypto1Key, access: AccessConditions, gpb: u8, key_b: Crypto1Key) -> Self {
        Self {
            key_a,
            access,
            gpb,
            key_b,
        }
    }

    /// A factory-fresh trailer: both keys `FF..FF`, transport access `FF 07 80`, GPB `69`.
    pub fn factory() -> Self {
        Self::new(
            Crypto1Key::FACTORY,
            AccessConditions::TRANSPORT,
            FACTORY_GPB,
            Crypto1Key::FACTORY,
        )
    }

    /// The access conditions.
    pub fn access(&self) -> AccessConditions {
        self.access
    }

    /// The general purpose byte.
    pub fn gpb(&self) -> u8 {
        self.gpb
    }

    /// Key A.
    pub fn key_a(&self) -> Crypto1Key {
        self.key_a
    }

    /// Key B.
    pub fn key_b(&self) -> Crypto1Key {
        self.key_b
    }

    /// The 16 bytes to write.
    pub fn to_block(&self) -> Block {
        let mut block = [0u8; 16];
        let a = self.key_a.to_bytes();
        let b = self.key_b.to_bytes();
        let bits = self.access.bits().encode();
        for (i, byte) in block.iter_mut().enumerate() {
            *byte = match i {
                0..=5 => a.get(i).copied().unwrap_or(0),
                6..=8 => bits.get(i - 6).copied().unwrap_or(0),
                9 => self.gpb,
                _ => b.get(i - 10).copied().unwrap_or(0),
            };
        }
        block
    }
}

impl fmt::Debug for Trailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trailer")
            .field("key_a", &self.key_a)
            .field("access", &self.access)
            .field("gpb", &format_args!("{:02X}", self.gpb))
            .field("key_b", &self.key_b)
            .finish()
    }
}

/// Errors parsing a trailer read from a card.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrailerError {
    /// Not 16 bytes.
    #[error("a trailer is 16 bytes, got {0}")]
    BadLength(usize),
    /// The access bytes are inconsistent.
    #[error(transparent)]
    Access(#[from] AccessError),
}

/// What a read of a trailer reveals: the access conditions and the GPB. Key A always reads as
/// zeros and key B is never kept (it is either hidden or, when readable, a secret of someone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrailerRead {
    /// The access conditions in force.
    pub access: AccessBits,
    /// The general purpose byte.
    pub gpb: u8,
}

impl TrailerRead {
    /// Parses the 16 bytes of a trailer read from a card.
    pub fn parse(block: &[u8]) -> Result<Self, TrailerError> {
        match block {
            [_, _, _, _, _, _, b6, b7, b8, gpb, _, _, _, _, _, _] => Ok(Self {
                access: AccessBits::decode([*b6, *b7, *b8])?,
                gpb: *gpb,
            }),
            _ => Err(TrailerError::BadLength(block.len())),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::hex;
    use proptest::prelude::*;

    #[test]
    fn factory_trailer_bytes() {
        assert_eq!(
            hex::encode(&Trailer::factory().to_block()),
            "FFFFFFFFFFFFFF078069FFFFFFFFFFFF"
        );
    }

    #[test]
    fn build_then_parse() {
        let t = Trailer::new(
            Crypto1Key::MAD_PUBLIC,
            AccessConditions::READ_A_WRITE_B,
            0xC1,
            Crypto1Key::new([1, 2, 3, 4, 5, 6]),
        );
        let block = t.to_block();
        assert_eq!(
            hex::encode(&block),
            "A0A1A2A3A4A57877 88C1010203040506".replace(' ', "")
        );
        let read = TrailerRead::parse(&block).unwrap();
        assert_eq!(read.access, AccessConditions::READ_A_WRITE_B.bits());
        assert_eq!(read.gpb, 0xC1);
        assert!(!format!("{t:?}").contains("01, 02"));
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            match TrailerRead::parse(&bytes) {
                Ok(read) => {
                    prop_assert_eq!(bytes.len(), 16);
                    prop_assert_eq!(read.access.encode().to_vec(), bytes[6..9].to_vec());
                }
                Err(TrailerError::BadLength(n)) => prop_assert_ne!(n, 16),
                Err(TrailerError::Access(_)) => prop_assert_eq!(bytes.len(), 16),
            }
        }
    }
}
