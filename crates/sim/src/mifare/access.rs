//! Access bits and access conditions of MIFARE Classic sector trailers
//! (docs/reference/mifare-classic.md §4-§6).
//!
//! Written independently of the protocol crate, straight from the datasheet tables, so a
//! shared bug cannot cancel itself out.

/// Which key a MIFARE Classic authentication uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// Key A (`60` in authentication commands).
    A,
    /// Key B (`61`).
    B,
}

/// A 3-bit access condition `C1 C2 C3`, held as the number `C1<<2 | C2<<1 | C3`, so the
/// datasheet's "100" is `Condition(0b100)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Condition(u8);

impl Condition {
    /// A condition from its `C1C2C3` number (only the low three bits count).
    pub const fn new(c1c2c3: u8) -> Self {
        Self(c1c2c3 & 0b111)
    }

    /// The `C1C2C3` number.
    pub const fn bits(self) -> u8 {
        self.0
    }

    const fn c1(self) -> u8 {
        (self.0 >> 2) & 1
    }
    const fn c2(self) -> u8 {
        (self.0 >> 1) & 1
    }
    const fn c3(self) -> u8 {
        self.0 & 1
    }
}

/// Who may perform an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// Nobody.
    Never,
    /// Only after authenticating with key A.
    KeyA,
    /// Only after authenticating with key B.
    KeyB,
    /// After authenticating with either key.
    Either,
}

impl Who {
    /// Whether a session authenticated with `key` may perform the operation.
    pub const fn allows(self, key: KeyType) -> bool {
        matches!(
            (self, key),
            (Self::Either, _) | (Self::KeyA, KeyType::A) | (Self::KeyB, KeyType::B)
        )
    }
}

/// Rights on a data block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataRights {
    /// Read the block.
    pub read: Who,
    /// Write the block.
    pub write: Who,
}

/// Rights on the parts of a sector trailer. Key A is never readable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrailerRights {
    /// Write key A (bytes 0-5).
    pub key_a_write: Who,
    /// Read the access bits and GPB (bytes 6-9).
    pub ac_read: Who,
    /// Write the access bits and GPB.
    pub ac_write: Who,
    /// Read key B (bytes 10-15).
    pub key_b_read: Who,
    /// Write key B.
    pub key_b_write: Who,
}

impl TrailerRights {
    /// Key B is readable, so it cannot serve for authentication (datasheet: after a key B
    /// authentication the card refuses every memory access of the sector).
    pub const fn key_b_readable(self) -> bool {
        !matches!(self.key_b_read, Who::Never)
    }

    /// Whether any key can still change any part of the trailer.
    pub const fn writable(self) -> bool {
        !matches!(
            (self.key_a_write, self.ac_write, self.key_b_write),
            (Who::Never, Who::Never, Who::Never)
        )
    }
}

/// Data-block rights for a condition (§1 table: read / write columns).
pub const fn data_rights(c: Condition) -> DataRights {
    use Who::{Either, KeyB, Never};
    let (read, write) = match c.0 {
        0b000 => (Either, Either),
        0b010 | 0b001 => (Either, Never),
        0b100 | 0b110 => (Either, KeyB),
        0b011 => (KeyB, KeyB),
        0b101 => (KeyB, Never),
        _ => (Never, Never),
    };
    DataRights { read, write }
}

/// Sector-trailer rights for a condition (§1 trailer table).
pub const fn trailer_rights(c: Condition) -> TrailerRights {
    use Who::{Either, KeyA, KeyB, Never};
    // (key A write, AC read, AC write, key B read, key B write)
    let (kaw, acr, acw, kbr, kbw) = match c.0 {
        0b000 => (KeyA, KeyA, Never, KeyA, KeyA),
        0b010 => (Never, KeyA, Never, KeyA, Never),
        0b100 => (KeyB, Either, Never, Never, KeyB),
        0b001 => (KeyA, KeyA, KeyA, KeyA, KeyA),
        0b011 => (KeyB, Either, KeyB, Never, KeyB),
        0b101 => (Never, Either, KeyB, Never, Never),
        // 110 and 111: only the access bits can be read, by either key.
        _ => (Never, Either, Never, Never, Never),
    };
    TrailerRights {
        key_a_write: kaw,
        ac_read: acr,
        ac_write: acw,
        key_b_read: kbr,
        key_b_write: kbw,
    }
}

/// The four conditions of a sector: groups 0-2 (data) and 3 (trailer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessConditions(pub [Condition; 4]);

impl AccessConditions {
    /// Decodes trailer bytes 6-8. `None` when an inverted nibble does not match: such a
    /// sector is blocked for good on a real card.
    ///
    /// Layout: `byte6 = ~C2<<4 | ~C1`, `byte7 = C1<<4 | ~C3`, `byte8 = C3<<4 | C2`, each
    /// nibble holding one bit per group (bit i = group i).
    pub fn decode(bytes: [u8; 3]) -> Option<Self> {
        let [b6, b7, b8] = bytes;
        let c1 = b7 >> 4;
        let c2 = b8 & 0x0F;
        let c3 = b8 >> 4;
        if (!b6 & 0x0F) != c1 || (!b6 >> 4) != c2 || (!b7 & 0x0F) != c3 {
            return None;
        }
        let group =
            |i: u8| Condition::new(((c1 >> i) & 1) << 2 | ((c2 >> i) & 1) << 1 | ((c3 >> i) & 1));
        Some(Self([group(0), group(1), group(2), group(3)]))
    }

    /// Encodes to trailer bytes 6-8 (always consistent).
    pub fn encode(self) -> [u8; 3] {
        let mut c1 = 0u8;
        let mut c2 = 0u8;
        let mut c3 = 0u8;
        for (i, c) in self.0.iter().enumerate() {
            c1 |= c.c1() << i;
            c2 |= c.c2() << i;
            c3 |= c.c3() << i;
        }
        [
            (!c2 << 4) | (!c1 & 0x0F),
            (c1 << 4) | (!c3 & 0x0F),
            (c3 << 4) | c2,
        ]
    }

    /// The trailer's condition (group 3).
    pub const fn trailer(self) -> Condition {
        self.0[3]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_common_values() {
        let t = AccessConditions::decode([0xFF, 0x07, 0x80]).unwrap();
        assert_eq!(t.0.map(Condition::bits), [0b000, 0b000, 0b000, 0b001]);
        let t = AccessConditions::decode([0x78, 0x77, 0x88]).unwrap();
        assert_eq!(t.0.map(Condition::bits), [0b100, 0b100, 0b100, 0b011]);
        let t = AccessConditions::decode([0x7F, 0x07, 0x88]).unwrap();
        assert_eq!(t.0.map(Condition::bits), [0b000, 0b000, 0b000, 0b011]);
        let t = AccessConditions::decode([0x08, 0x77, 0x8F]).unwrap();
        assert_eq!(t.0.map(Condition::bits), [0b110, 0b110, 0b110, 0b011]);
    }

    #[test]
    fn rejects_inconsistent_bits() {
        assert!(AccessConditions::decode([0xFF, 0x07, 0x81]).is_none());
        assert!(AccessConditions::decode([0x00, 0x00, 0x00]).is_none());
        assert!(AccessConditions::decode([0xFF, 0x0F, 0x80]).is_none());
    }

    #[test]
    fn encode_decode_round_trip_for_all_combinations() {
        for n in 0u16..4096 {
            let conds = AccessConditions(
                [0, 3, 6, 9].map(|s| Condition::new(u8::try_from((n >> s) & 7).unwrap())),
            );
            let bytes = conds.encode();
            assert_eq!(AccessConditions::decode(bytes), Some(conds), "{bytes:02X?}");
        }
        let transport = AccessConditions([0b000, 0b000, 0b000, 0b001].map(Condition::new));
        assert_eq!(transport.encode(), [0xFF, 0x07, 0x80]);
    }

    #[test]
    fn writable_trailers() {
        for c in 0..8 {
            let r = trailer_rights(Condition::new(c));
            assert_eq!(r.writable(), ![0b010, 0b110, 0b111].contains(&c), "{c:03b}");
            assert_eq!(
                r.key_b_readable(),
                [0b000, 0b010, 0b001].contains(&c),
                "{c:03b}"
            );
        }
    }
}
