//! The cryptographic building blocks of `DESFire` secure messaging, each a thin use of a
//! maintained `RustCrypto` crate (AES, CBC, CMAC) or the `crc` crate: nothing here implements a
//! cipher. docs/reference/desfire.md §3 and §4 give the rules and the vectors the tests check.

use aes::Aes128;
use aes::cipher::{
    BlockDecrypt, BlockDecryptMut, BlockEncrypt, BlockEncryptMut, KeyInit, KeyIvInit,
    block_padding::NoPadding, generic_array::GenericArray,
};
use cmac::{Cmac, Mac};

/// An AES-128 key.
pub type Key = [u8; 16];

/// One AES block.
pub type Block = [u8; 16];

/// AES-128 of one block (ECB): the EV2 IVs.
pub fn encrypt_block(key: &Key, block: &Block) -> Block {
    let cipher = Aes128::new(GenericArray::from_slice(key));
    let mut b = GenericArray::clone_from_slice(block);
    cipher.encrypt_block(&mut b);
    b.into()
}

/// AES-128 decryption of one block (ECB).
pub fn decrypt_block(key: &Key, block: &Block) -> Block {
    let cipher = Aes128::new(GenericArray::from_slice(key));
    let mut b = GenericArray::clone_from_slice(block);
    cipher.decrypt_block(&mut b);
    b.into()
}

/// AES-128-CBC over whole blocks; `None` when `data` is not a multiple of 16 bytes.
pub fn cbc_encrypt(key: &Key, iv: &Block, data: &[u8]) -> Option<Vec<u8>> {
    if !data.len().is_multiple_of(16) {
        return None;
    }
    let cipher = cbc::Encryptor::<Aes128>::new(key.into(), iv.into());
    Some(cipher.encrypt_padded_vec_mut::<NoPadding>(data))
}

/// AES-128-CBC decryption over whole blocks; `None` when `data` is not a multiple of 16 bytes.
pub fn cbc_decrypt(key: &Key, iv: &Block, data: &[u8]) -> Option<Vec<u8>> {
    if !data.len().is_multiple_of(16) {
        return None;
    }
    let cipher = cbc::Decryptor::<Aes128>::new(key.into(), iv.into());
    cipher.decrypt_padded_vec_mut::<NoPadding>(data).ok()
}

/// AES-CMAC (NIST SP 800-38B) with a zero IV.
pub fn cmac(key: &Key, data: &[u8]) -> Block {
    let mut mac = <Cmac<Aes128> as KeyInit>::new(GenericArray::from_slice(key));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// AES-CMAC whose CBC chain starts from `iv` instead of zero: `DESFire` EV1 secure messaging
/// runs one IV through every CMAC and cryptogram of a session (docs/reference/desfire.md §6).
/// Built from the same parts as the `cmac` crate (AES, the `dbl` subkey doubling, CBC); with a
/// zero IV it is [`cmac`], which the tests check on NIST's vectors.
pub fn cmac_from(key: &Key, iv: &Block, data: &[u8]) -> Block {
    use dbl::Dbl as _;
    let l = GenericArray::from(encrypt_block(key, &[0; 16]));
    let k1 = l.dbl();
    let complete = !data.is_empty() && data.len().is_multiple_of(16);
    let (mut message, subkey) = if complete {
        (data.to_vec(), k1)
    } else {
        (pad_m2(data), k1.dbl())
    };
    let start = message.len() - 16;
    for (byte, k) in message.iter_mut().skip(start).zip(subkey) {
        *byte ^= k;
    }
    let ct = cbc_encrypt(key, iv, &message).unwrap_or_default();
    let mut out = [0u8; 16];
    for (o, c) in out.iter_mut().zip(ct.iter().skip(start)) {
        *o = *c;
    }
    out
}

/// EV2's 8-byte MAC: the CMAC's bytes at odd positions, 1, 3, … 15 (NXP numbers them S14, S12,
/// … S0; docs/reference/desfire.md §3).
pub fn truncate_mac(full: &Block) -> [u8; 8] {
    let mut out = [0u8; 8];
    for (o, pair) in out.iter_mut().zip(full.chunks_exact(2)) {
        if let [_, odd] = pair {
            *o = *odd;
        }
    }
    out
}

/// ISO/IEC 9797-1 padding method 2: `80` then zeros to a whole block, always added (a full
/// block when `data` is aligned).
pub fn pad_m2(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(data);
    out.push(0x80);
    while !out.len().is_multiple_of(16) {
        out.push(0);
    }
    out
}

/// Removes method 2 padding; `None` when the padding is not exactly `80 00…` in the last block.
pub fn unpad_m2(data: &[u8]) -> Option<&[u8]> {
    let marker = data.iter().rposition(|b| *b != 0)?;
    let padding = data.len() - marker;
    (data.get(marker) == Some(&0x80) && padding <= 16).then(|| data.get(..marker))?
}

/// The `DESFire` CRC32: CRC-32 as zlib computes it, without the final inversion (the
/// `CRC_32_JAMCRC` catalogue entry), little-endian on the wire.
pub fn crc32(data: &[u8]) -> [u8; 4] {
    const JAMCRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_JAMCRC);
    JAMCRC.checksum(data).to_le_bytes()
}

/// A block rotated left by one byte (`RndA`', `RndB`').
pub fn rotate_left(block: &Block) -> Block {
    let mut out = *block;
    out.rotate_left(1);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
pub(crate) mod tests {
    use super::*;
    use crate::hex;

    /// Hex to a fixed array (test vectors).
    pub(crate) fn h<const N: usize>(text: &str) -> [u8; N] {
        hex::decode(&text.replace(' ', ""))
            .unwrap()
            .try_into()
            .unwrap()
    }

    /// Hex to bytes.
    pub(crate) fn v(text: &str) -> Vec<u8> {
        hex::decode(&text.replace(' ', "")).unwrap()
    }

    #[test]
    fn nist_cmac_vectors() {
        // NIST SP 800-38B / RFC 4493 (docs/reference/desfire.md §4).
        let key = h("2B7E1516 28AED2A6 ABF71588 09CF4F3C");
        let message = v(
            "6BC1BEE2 2E409F96 E93D7E11 7393172A AE2D8A57 1E03AC9C 9EB76FAC 45AF8E51 30C81C46 A35CE411 E5FBC119 1A0A52EF F69F2445 DF4F9B17 AD2B417B E66C3710",
        );
        for (len, expected) in [
            (0, "BB1D6929 E9593728 7FA37D12 9B756746"),
            (16, "070A16B4 6B4D4144 F79BDD9D D04A287C"),
            (40, "DFA66747 DE9AE630 30CA3261 1497C827"),
            (64, "51F0BEBF 7E3B9D92 FC497417 79363CFE"),
        ] {
            assert_eq!(
                cmac(&key, &message[..len]),
                h::<16>(expected),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn cmac_from_a_zero_iv_is_cmac() {
        let key = h("2B7E1516 28AED2A6 ABF71588 09CF4F3C");
        let message = v(
            "6BC1BEE2 2E409F96 E93D7E11 7393172A AE2D8A57 1E03AC9C 9EB76FAC 45AF8E51 30C81C46 A35CE411 E5FBC119 1A0A52EF F69F2445 DF4F9B17 AD2B417B E66C3710",
        );
        for len in [0, 1, 15, 16, 17, 40, 64] {
            assert_eq!(
                cmac_from(&key, &[0; 16], &message[..len]),
                cmac(&key, &message[..len]),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn crc32_vectors() {
        // AN12196 table 25, and the catalogue check value.
        assert_eq!(
            crc32(&v("F3847D62 7727ED3B C9C4CC05 0489B966")),
            [0x78, 0x9D, 0xFA, 0xDC]
        );
        assert_eq!(crc32(b"123456789"), 0x340B_C6D9u32.to_le_bytes());
    }

    #[test]
    fn mac_truncation_vector() {
        // AN12196 table 26.
        let full = h("B7A60161 F202EC34 89BD4BED EF64BB32");
        assert_eq!(truncate_mac(&full), h::<8>("A6610234 BDED6432"));
    }

    #[test]
    fn padding_round_trips_and_refuses_garbage() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len)
                .map(|i| u8::try_from(i % 251 + 1).unwrap())
                .collect();
            let padded = pad_m2(&data);
            assert_eq!(padded.len() % 16, 0);
            assert!(padded.len() > data.len());
            assert_eq!(unpad_m2(&padded), Some(&data[..]));
        }
        assert_eq!(unpad_m2(&[0u8; 16]), None);
        assert_eq!(unpad_m2(&[1u8; 16]), None);
        let mut long = vec![0x80];
        long.extend([0u8; 16]);
        assert_eq!(unpad_m2(&long), None, "padding longer than a block");
    }

    #[test]
    fn cbc_refuses_partial_blocks_and_round_trips() {
        let key = [7u8; 16];
        let iv = [9u8; 16];
        assert_eq!(cbc_encrypt(&key, &iv, &[0; 15]), None);
        let plain = [0x42u8; 48];
        let ct = cbc_encrypt(&key, &iv, &plain).unwrap();
        assert_eq!(cbc_decrypt(&key, &iv, &ct).unwrap(), plain);
        assert_eq!(decrypt_block(&key, &encrypt_block(&key, &iv)), iv);
    }
}
