//! The card's cryptographic primitives, over `RustCrypto`'s block ciphers (`aes`, `des`) and
//! modes (`cbc`), and the `crc` crate (docs/reference/desfire-card.md §4-§6).
//!
//! A [`Cipher`] is one key of a DESFire key type: DES and 2K3DES (16 bytes; DES is 2K3DES with
//! equal halves, which TDEA-EDE2 computes as single DES), 3K3DES (24 bytes) and AES-128
//! (16 bytes). Everything here is pure: no state, no randomness.

use aes::Aes128;
use aes::cipher::generic_array::GenericArray;
use aes::cipher::{
    BlockCipher, BlockDecrypt, BlockDecryptMut, BlockEncrypt, BlockEncryptMut, InnerIvInit, KeyInit,
};
use cmac::digest::crypto_common::InnerInit;
use cmac::{Cmac, CmacCore, Mac};
use crc::{CRC_16_ISO_IEC_14443_3_A, CRC_32_JAMCRC, Crc};
use des::{TdesEde2, TdesEde3};

/// CRC32 as DESFire computes it: reflected EDB88320, preset FFFFFFFF, no final XOR (§4).
const CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_JAMCRC);
/// CRC16 of ISO 14443-3 type A (preset 6363), used by the legacy (D40) secure messaging.
const CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_ISO_IEC_14443_3_A);

/// DESFire CRC32, little-endian bytes.
pub fn crc32(data: &[u8]) -> [u8; 4] {
    CRC32.checksum(data).to_le_bytes()
}

/// ISO 14443-3 A CRC16, little-endian bytes.
pub fn crc16(data: &[u8]) -> [u8; 2] {
    CRC16.checksum(data).to_le_bytes()
}

/// A key ready for use, of one of the three cipher families.
#[derive(Clone)]
pub enum Cipher {
    /// DES or 2K3DES (16 bytes; DES when both halves are equal).
    Tdes2(Box<TdesEde2>),
    /// 3K3DES (24 bytes).
    Tdes3(Box<TdesEde3>),
    /// AES-128.
    Aes(Box<Aes128>),
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.write_str(match self {
            Self::Tdes2(_) => "Cipher::Tdes2",
            Self::Tdes3(_) => "Cipher::Tdes3",
            Self::Aes(_) => "Cipher::Aes",
        })
    }
}

impl Cipher {
    /// A DES/2K3DES key from 8 bytes (single DES, doubled) or 16 bytes.
    pub fn des(key: &[u8]) -> Option<Self> {
        let doubled: Vec<u8>;
        let key = if key.len() == 8 {
            doubled = [key, key].concat();
            &doubled
        } else {
            key
        };
        TdesEde2::new_from_slice(key)
            .ok()
            .map(|c| Self::Tdes2(Box::new(c)))
    }

    /// A 3K3DES key (24 bytes).
    pub fn tdes3(key: &[u8]) -> Option<Self> {
        TdesEde3::new_from_slice(key)
            .ok()
            .map(|c| Self::Tdes3(Box::new(c)))
    }

    /// An AES-128 key (16 bytes).
    pub fn aes(key: &[u8]) -> Option<Self> {
        Aes128::new_from_slice(key)
            .ok()
            .map(|c| Self::Aes(Box::new(c)))
    }

    /// Block size in bytes: 8 (DES family) or 16 (AES).
    pub const fn block_size(&self) -> usize {
        match self {
            Self::Tdes2(_) | Self::Tdes3(_) => 8,
            Self::Aes(_) => 16,
        }
    }

    /// Encrypts one block in place (ECB); other lengths are left alone.
    pub fn encrypt_block(&self, block: &mut [u8]) {
        match self {
            Self::Tdes2(c) if block.len() == 8 => {
                c.encrypt_block(GenericArray::from_mut_slice(block));
            }
            Self::Tdes3(c) if block.len() == 8 => {
                c.encrypt_block(GenericArray::from_mut_slice(block));
            }
            Self::Aes(c) if block.len() == 16 => {
                c.encrypt_block(GenericArray::from_mut_slice(block));
            }
            _ => {}
        }
    }

    /// Decrypts one block in place (ECB); other lengths are left alone.
    pub fn decrypt_block(&self, block: &mut [u8]) {
        match self {
            Self::Tdes2(c) if block.len() == 8 => {
                c.decrypt_block(GenericArray::from_mut_slice(block));
            }
            Self::Tdes3(c) if block.len() == 8 => {
                c.decrypt_block(GenericArray::from_mut_slice(block));
            }
            Self::Aes(c) if block.len() == 16 => {
                c.decrypt_block(GenericArray::from_mut_slice(block));
            }
            _ => {}
        }
    }

    /// CBC encryption of whole blocks from `iv`; `None` when a length is not whole blocks.
    pub fn cbc_encrypt(&self, iv: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        let mut out = data.to_vec();
        match self {
            Self::Tdes2(c) => cbc_encrypt_with(&**c, iv, &mut out)?,
            Self::Tdes3(c) => cbc_encrypt_with(&**c, iv, &mut out)?,
            Self::Aes(c) => cbc_encrypt_with(&**c, iv, &mut out)?,
        }
        Some(out)
    }

    /// CBC decryption of whole blocks from `iv`; `None` when a length is not whole blocks.
    pub fn cbc_decrypt(&self, iv: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        let mut out = data.to_vec();
        match self {
            Self::Tdes2(c) => cbc_decrypt_with(&**c, iv, &mut out)?,
            Self::Tdes3(c) => cbc_decrypt_with(&**c, iv, &mut out)?,
            Self::Aes(c) => cbc_decrypt_with(&**c, iv, &mut out)?,
        }
        Some(out)
    }

    /// The inverse of the legacy (D40) "send" chaining, in which the PCD *deciphers* each block
    /// after XOR with the previous output (§5, §6): the card enciphers each block and XORs
    /// the previous received block, the IV starting at zero.
    pub fn legacy_unwrap(&self, data: &[u8]) -> Option<Vec<u8>> {
        let bs = self.block_size();
        if !data.len().is_multiple_of(bs) {
            return None;
        }
        let mut prev = vec![0u8; bs];
        let mut out = Vec::with_capacity(data.len());
        for block in data.chunks_exact(bs) {
            let mut p = block.to_vec();
            self.encrypt_block(&mut p);
            xor_into(&mut p, &prev);
            out.extend_from_slice(&p);
            prev.copy_from_slice(block);
        }
        Some(out)
    }

    /// CMAC (NIST SP 800-38B) whose CBC chain starts from `iv` instead of zero, as EV1 secure
    /// messaging computes it (§6); the full last block is returned (it becomes the next IV).
    /// Computed by the `cmac` crate as the CMAC of `D(iv) ‖ message`, whose first block
    /// enciphers to `iv`; the message is never empty here (it holds at least INS or status),
    /// and an empty one gets `None`.
    pub fn cmac_with_iv(&self, iv: &[u8], message: &[u8]) -> Option<Vec<u8>> {
        if message.is_empty() || iv.len() != self.block_size() {
            return None;
        }
        let mut first = iv.to_vec();
        self.decrypt_block(&mut first);
        Some(self.cmac(&[first.as_slice(), message].concat()))
    }

    /// Plain CMAC (zero IV), by the `cmac` crate.
    pub fn cmac(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Tdes2(c) => {
                let mut mac = Cmac::<TdesEde2>::from_core(CmacCore::inner_init((**c).clone()));
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
            Self::Tdes3(c) => {
                let mut mac = Cmac::<TdesEde3>::from_core(CmacCore::inner_init((**c).clone()));
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
            Self::Aes(c) => {
                let mut mac = Cmac::<Aes128>::from_core(CmacCore::inner_init((**c).clone()));
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }
}

fn cbc_encrypt_with<C>(cipher: &C, iv: &[u8], data: &mut [u8]) -> Option<()>
where
    C: BlockCipher + BlockEncryptMut + Clone,
{
    let bs = C::block_size();
    if !data.len().is_multiple_of(bs) {
        return None;
    }
    let mut e = cbc::Encryptor::<C>::inner_iv_slice_init(cipher.clone(), iv).ok()?;
    for block in data.chunks_exact_mut(bs) {
        e.encrypt_block_mut(GenericArray::from_mut_slice(block));
    }
    Some(())
}

fn cbc_decrypt_with<C>(cipher: &C, iv: &[u8], data: &mut [u8]) -> Option<()>
where
    C: BlockCipher + BlockDecryptMut + Clone,
{
    let bs = C::block_size();
    if !data.len().is_multiple_of(bs) {
        return None;
    }
    let mut d = cbc::Decryptor::<C>::inner_iv_slice_init(cipher.clone(), iv).ok()?;
    for block in data.chunks_exact_mut(bs) {
        d.decrypt_block_mut(GenericArray::from_mut_slice(block));
    }
    Some(())
}

/// `a ^= b` over the common length.
pub fn xor_into(a: &mut [u8], b: &[u8]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

/// The bytes rotated left by one (`RndB`' from `RndB`).
pub fn rotate_left(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    if !out.is_empty() {
        out.rotate_left(1);
    }
    out
}

/// Appends zero bytes up to a multiple of `bs` (EV1 and D40 full mode; nothing when aligned).
pub fn zero_pad(data: &mut Vec<u8>, bs: usize) {
    while !data.len().is_multiple_of(bs) {
        data.push(0);
    }
}

/// ISO 9797-1 method 2: `80` then zeros up to a multiple of `bs`, always at least one byte
/// (EV2 full mode).
pub fn iso_pad(data: &mut Vec<u8>, bs: usize) {
    data.push(0x80);
    zero_pad(data, bs);
}

/// Removes ISO 9797-1 method 2 padding; `None` when it is malformed.
pub fn iso_unpad(data: &[u8]) -> Option<&[u8]> {
    let end = data.iter().rposition(|&b| b != 0)?;
    (data.get(end) == Some(&0x80) && data.len() - end <= 16).then(|| data.get(..end))?
}

/// The EV2 truncated MAC: the odd-indexed bytes of the CMAC (§6).
pub fn truncate_ev2(cmac: &[u8]) -> Vec<u8> {
    cmac.iter().skip(1).step_by(2).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::parse_hex;

    fn h(s: &str) -> Vec<u8> {
        parse_hex(&s.replace(' ', "")).unwrap()
    }

    #[test]
    fn crc32_vectors() {
        assert_eq!(crc32(b"123456789"), 0x340B_C6D9_u32.to_le_bytes());
        assert_eq!(
            crc32(&h("F3847D62 7727ED3B C9C4CC05 0489B966")).to_vec(),
            h("789DFADC")
        );
        assert_eq!(crc32(&h("540D")).to_vec(), h("ED09401E"));
    }

    #[test]
    fn nist_cmac_vectors() {
        let c = Cipher::aes(&h("2B7E1516 28AED2A6 ABF71588 09CF4F3C")).unwrap();
        let m = h(
            "6BC1BEE2 2E409F96 E93D7E11 7393172A AE2D8A57 1E03AC9C 9EB76FAC 45AF8E51 30C81C46 \
             A35CE411 E5FBC119 1A0A52EF F69F2445 DF4F9B17 AD2B417B E66C3710",
        );
        assert_eq!(c.cmac(&[]), h("BB1D6929 E9593728 7FA37D12 9B756746"));
        assert_eq!(c.cmac(&m[..16]), h("070A16B4 6B4D4144 F79BDD9D D04A287C"));
        assert_eq!(c.cmac(&m[..40]), h("DFA66747 DE9AE630 30CA3261 1497C827"));
        assert_eq!(c.cmac(&m), h("51F0BEBF 7E3B9D92 FC497417 79363CFE"));
        // From a zero IV the chained CMAC is the plain one (the EV1 trace checks other IVs).
        assert_eq!(c.cmac_with_iv(&[0; 16], &m[..40]), Some(c.cmac(&m[..40])));
        assert_eq!(c.cmac_with_iv(&[0; 16], &[]), None);
    }

    #[test]
    fn tdes_cmac_nist_vector() {
        // The key and message of NIST SP 800-38B D.4 (three-key TDEA, 16 bytes); the tag as
        // Python's `cryptography` (OpenSSL) computes it.
        let c = Cipher::tdes3(&h("8AA83BF8 CBDA1062 0BC1BF19 FBB6CD58 BC313D4A 371CA8B5")).unwrap();
        assert_eq!(
            c.cmac(&h("6BC1BEE2 2E409F96 E93D7E11 7393172A")),
            h("286D3946 73448197")
        );
    }

    #[test]
    fn ev2_truncation_and_padding() {
        assert_eq!(
            truncate_ev2(&h("B7A60161 F202EC34 89BD4BED EF64BB32")),
            h("A6610234 BDED6432")
        );
        let mut d = vec![1, 2, 3];
        iso_pad(&mut d, 16);
        assert_eq!(d.len(), 16);
        assert_eq!(iso_unpad(&d), Some(&[1u8, 2, 3][..]));
        let mut full = vec![7u8; 16];
        iso_pad(&mut full, 16);
        assert_eq!(full.len(), 32);
        assert_eq!(iso_unpad(&[1, 2, 0, 0]), None);
    }

    #[test]
    fn legacy_unwrap_inverts_the_pcd_send_chain() {
        let c = Cipher::des(&[0x11; 8]).unwrap();
        let plain = h("0102030405060708 1112131415161718");
        // The PCD: x = P xor prev; out = D(x); prev = out.
        let mut prev = vec![0u8; 8];
        let mut sent = Vec::new();
        for block in plain.chunks(8) {
            let mut x = block.to_vec();
            xor_into(&mut x, &prev);
            c.decrypt_block(&mut x);
            sent.extend_from_slice(&x);
            prev = x;
        }
        assert_eq!(c.legacy_unwrap(&sent).unwrap(), plain);
    }
}
