//! `mad`, `trailer_access`: the MIFARE Classic structures read from a card
//! (`encoder_protocol::mifare`): MAD1 and MAD2, sector trailers and their access bytes, value
//! blocks.

use encoder_protocol::mifare::access::{AccessBits, AccessConditions};
use encoder_protocol::mifare::mad::{self, Mad1, Mad2};
use encoder_protocol::mifare::trailer::{TrailerError, TrailerRead};
use encoder_protocol::mifare::value::ValueBlock;

/// Parses `data` as MAD1 (blocks 1-2) and MAD2 (blocks 64-66), whole and by its 32- and
/// 48-byte prefixes.
///
/// Properties: a directory that parses re-encodes to exactly the bytes read (CRC included), its
/// sector lookups stay in range, and a lookup of every AID it holds finds its sector.
pub fn mad(data: &[u8]) {
    let _ = mad::mad_version(data.first().copied().unwrap_or(0));
    for bytes in [
        data,
        data.get(..32).unwrap_or(data),
        data.get(..48).unwrap_or(data),
    ] {
        if let Ok(m) = Mad1::parse(bytes) {
            assert_eq!(m.to_bytes(), bytes);
            assert_eq!(m.to_blocks().concat(), bytes);
            assert!(m.info & 0x3F <= 0x0F);
            for sector in 0..=40u8 {
                let aid = m.aid(sector);
                assert_eq!(aid.is_some(), (1..=15).contains(&sector));
                if let Some(aid) = aid {
                    assert!(m.sectors_of(aid).contains(&sector));
                }
            }
            let mut copy = m.clone();
            assert!(!copy.set(0, mad::Aid::FREE) && !copy.set(16, mad::Aid::FREE));
        }
        if let Ok(m) = Mad2::parse(bytes) {
            assert_eq!(m.to_bytes(), bytes);
            assert_eq!(m.to_blocks().concat(), bytes);
            for sector in 0..=40u8 {
                let aid = m.aid(sector);
                assert_eq!(aid.is_some(), (17..=39).contains(&sector));
                if let Some(aid) = aid {
                    assert!(m.sectors_of(aid).contains(&sector));
                }
            }
        }
    }
}

/// Parses `data` as a trailer read from a card, its bytes 6-8 (or the first three) as access
/// bytes, and a value block.
///
/// Properties: only 16 bytes make a trailer; access bytes that decode re-encode to themselves;
/// access conditions that can be built (`AccessConditions::new`) are always rewritable (design:
/// a trailer that locks the sector cannot be constructed); a value block that parses
/// re-encodes to the same 16 bytes.
pub fn trailer_access(data: &[u8]) {
    match TrailerRead::parse(data) {
        Ok(read) => {
            assert_eq!(data.len(), 16);
            assert_eq!(Some(read.access.encode().as_slice()), data.get(6..9));
        }
        Err(TrailerError::BadLength(n)) => assert!(n != 16 && n == data.len()),
        Err(_) => assert_eq!(data.len(), 16),
    }
    let three = data.get(6..9).or_else(|| data.get(..3));
    if let Some(&[a, b, c]) = three
        && let Ok(bits) = AccessBits::decode([a, b, c])
    {
        assert_eq!(bits.encode(), [a, b, c]);
        let data_access = [bits.data(0), bits.data(1), bits.data(2)];
        let built = AccessConditions::new(data_access, bits.trailer());
        assert_eq!(built.is_ok(), bits.trailer().is_rewritable(), "{bits:?}");
        if let Ok(conditions) = built {
            assert_eq!(conditions.bits(), bits);
        }
        for group in 3..=255u8 {
            // Out-of-range groups answer something without panicking.
            let _ = bits.data(group);
        }
    }
    if let Ok(value) = ValueBlock::parse(data) {
        assert_eq!(data.len(), 16);
        assert_eq!(value.to_block().as_slice(), data);
    }
}
