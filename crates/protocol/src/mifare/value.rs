//! Value blocks: `v(4, LE) | ~v | v | adr | ~adr | adr | ~adr`
//! (docs/reference/mifare-classic.md §7).

use super::Block;

/// A value block: a signed 32-bit value and a one-byte address (free for the application,
/// often the block's own number for backup management).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValueBlock {
    /// The value.
    pub value: i32,
    /// The address byte.
    pub address: u8,
}

/// A block that is not a well-formed value block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a value block")]
pub struct NotAValueBlock;

impl ValueBlock {
    /// Encodes to 16 bytes.
    pub fn to_block(self) -> Block {
        let v = self.value.to_le_bytes();
        let n = (!self.value).to_le_bytes();
        let a = self.address;
        [
            v[0], v[1], v[2], v[3], n[0], n[1], n[2], n[3], v[0], v[1], v[2], v[3], a, !a, a, !a,
        ]
    }

    /// Decodes 16 bytes, checking every redundant copy.
    pub fn parse(block: &[u8]) -> Result<Self, NotAValueBlock> {
        let [
            v0,
            v1,
            v2,
            v3,
            n0,
            n1,
            n2,
            n3,
            w0,
            w1,
            w2,
            w3,
            a0,
            a1,
            a2,
            a3,
        ] = *block
        else {
            return Err(NotAValueBlock);
        };
        let value = i32::from_le_bytes([v0, v1, v2, v3]);
        let inverted = i32::from_le_bytes([n0, n1, n2, n3]);
        let copy = i32::from_le_bytes([w0, w1, w2, w3]);
        if inverted != !value || copy != value || a1 != !a0 || a2 != a0 || a3 != !a0 {
            return Err(NotAValueBlock);
        }
        Ok(Self { value, address: a0 })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::hex;
    use proptest::prelude::*;

    #[test]
    fn known_vector() {
        let b = ValueBlock {
            value: 100,
            address: 5,
        }
        .to_block();
        assert_eq!(hex::encode(&b), "640000009BFFFFFF6400000005FA05FA");
    }

    proptest! {
        #[test]
        fn round_trip(value in any::<i32>(), address in any::<u8>()) {
            let v = ValueBlock { value, address };
            prop_assert_eq!(ValueBlock::parse(&v.to_block()), Ok(v));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
            if let Ok(v) = ValueBlock::parse(&bytes) {
                prop_assert_eq!(v.to_block().to_vec(), bytes);
            }
        }
    }
}
