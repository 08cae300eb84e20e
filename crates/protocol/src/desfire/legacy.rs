//! Legacy `Authenticate` (`0A`, single DES) and the one command we send in its session, a
//! `ChangeKey` of the authenticated PICC master key to AES (docs/reference/desfire.md §8;
//! docs/card-format.md §10.5): how a factory-fresh card, whose PICC master key is the
//! all-zero DES key, is taken over when the site asks for it. Sans I/O; the DES cipher is the
//! `RustCrypto` `des` crate.
//!
//! In the legacy (`D40`) scheme the reader *deciphers* in both directions, and each cryptogram
//! starts from a zero IV: sending, block `i` is `D(K, P_i ⊕ C_{i-1})`; receiving, `D(K, C_i) ⊕
//! C_{i-1}`. The session key is `RndA[0..4] ‖ RndB[0..4]`. `ChangeKey` of the authenticated key
//! carries `new ‖ version ‖ CRC16-A(new ‖ version)`, zero padded, sent deciphered with the
//! session key (libfreefare 0.4.0, `mifare_desfire_change_key`, `AS_LEGACY`).

use des::Des;
use des::cipher::{BlockDecrypt, KeyInit, generic_array::GenericArray};

use super::crypto::Key;
use super::ev2::SecureError;
use super::frame;

/// A single-DES key (the factory PICC master key is all zeros).
pub type DesKey = [u8; 8];

/// The CRC of ISO/IEC 14443-3 type A (`CRC_A`, preset `6363`), appended LSB first.
pub fn crc16_a(data: &[u8]) -> [u8; 2] {
    crc::Crc::<u16>::new(&crc::CRC_16_ISO_IEC_14443_3_A)
        .checksum(data)
        .to_le_bytes()
}

fn decipher(key: DesKey, block: [u8; 8]) -> [u8; 8] {
    let cipher = Des::new(GenericArray::from_slice(&key));
    let mut b = GenericArray::from(block);
    cipher.decrypt_block(&mut b);
    b.into()
}

/// The legacy "send" chain: `D(K, P_i ⊕ C_{i-1})` from a zero IV; `data` whole 8-byte blocks.
pub fn send_chain(key: &DesKey, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut prev = [0u8; 8];
    for chunk in data.chunks(8) {
        let mut block = prev;
        for (b, d) in block.iter_mut().zip(chunk) {
            *b ^= d;
        }
        prev = decipher(*key, block);
        out.extend_from_slice(&prev);
    }
    out
}

/// The legacy "receive" chain: `D(K, C_i) ⊕ C_{i-1}` from a zero IV.
pub fn receive_chain(key: &DesKey, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut prev = [0u8; 8];
    for chunk in data.chunks(8) {
        let mut c = [0u8; 8];
        for (o, d) in c.iter_mut().zip(chunk) {
            *o = *d;
        }
        let mut p = decipher(*key, c);
        for (b, v) in p.iter_mut().zip(prev) {
            *b ^= v;
        }
        out.extend_from_slice(&p);
        prev = c;
    }
    out
}

fn rotate8(b: [u8; 8]) -> [u8; 8] {
    let mut out = b;
    out.rotate_left(1);
    out
}

/// Legacy `Authenticate` in progress.
pub struct LegacyAuth {
    key: DesKey,
    key_no: u8,
    rnd_a: [u8; 8],
    rnd_b: Option<[u8; 8]>,
}

impl std::fmt::Debug for LegacyAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyAuth")
            .field("key_no", &self.key_no)
            .finish_non_exhaustive()
    }
}

impl LegacyAuth {
    /// Starts with `key` (number `key_no`) and the caller's random `rnd_a`.
    pub fn new(key: DesKey, key_no: u8, rnd_a: [u8; 8]) -> Self {
        Self {
            key,
            key_no,
            rnd_a,
            rnd_b: None,
        }
    }

    /// The first command: `90 0A 00 00 01 KeyNo 00`.
    pub fn command(&self) -> Vec<u8> {
        frame::wrap(0x0A, &[self.key_no])
    }

    /// Given the card's `ek(RndB)` (8 bytes), the second command `90 AF … D(RndA) D(RndB' ⊕
    /// D(RndA)) 00`.
    pub fn answer(&mut self, ek_rnd_b: &[u8]) -> Result<Vec<u8>, SecureError> {
        if ek_rnd_b.len() != 8 {
            return Err(SecureError::BadLength(ek_rnd_b.len()));
        }
        let mut rnd_b = [0u8; 8];
        for (o, b) in rnd_b.iter_mut().zip(receive_chain(&self.key, ek_rnd_b)) {
            *o = b;
        }
        self.rnd_b = Some(rnd_b);
        let token = [self.rnd_a, rotate8(rnd_b)].concat();
        Ok(frame::wrap(0xAF, &send_chain(&self.key, &token)))
    }

    /// Given the card's `ek(RndA')`, the session.
    pub fn finish(self, answer: &[u8]) -> Result<LegacySession, SecureError> {
        let rnd_b = self.rnd_b.ok_or(SecureError::WrongProof)?;
        if answer.len() != 8 {
            return Err(SecureError::BadLength(answer.len()));
        }
        if receive_chain(&self.key, answer) != rotate8(self.rnd_a) {
            return Err(SecureError::WrongProof);
        }
        let mut key = [0u8; 8];
        for (k, b) in key
            .iter_mut()
            .zip(self.rnd_a.iter().take(4).chain(rnd_b.iter().take(4)))
        {
            *k = *b;
        }
        Ok(LegacySession { key })
    }
}

/// A legacy session: its single-DES session key.
#[derive(Clone, PartialEq, Eq)]
pub struct LegacySession {
    key: DesKey,
}

impl std::fmt::Debug for LegacySession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacySession").finish_non_exhaustive()
    }
}

impl LegacySession {
    /// A session with a known key (tests).
    pub fn from_key(key: DesKey) -> Self {
        Self { key }
    }

    /// The cryptogram of `ChangeKey` of the authenticated key to the AES key `new` with
    /// `version`: `send_chain(new ‖ version ‖ CRC16-A(new ‖ version) ‖ 00-pad)`.
    pub fn change_own_key(&self, new: &Key, version: u8) -> Vec<u8> {
        let mut plain = new.to_vec();
        plain.push(version);
        let crc = crc16_a(&plain);
        plain.extend_from_slice(&crc);
        while !plain.len().is_multiple_of(8) {
            plain.push(0);
        }
        send_chain(&self.key, &plain)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use des::cipher::BlockEncrypt;

    fn encipher(key: DesKey, block: [u8; 8]) -> [u8; 8] {
        let cipher = Des::new(GenericArray::from_slice(&key));
        let mut b = GenericArray::from(block);
        cipher.encrypt_block(&mut b);
        b.into()
    }

    #[test]
    fn crc_a_matches_iso_14443_3_annex_b() {
        // ISO/IEC 14443-3 Annex B: CRC_A of 00 00 is A0 1E; of 12 34 is 26 CF.
        assert_eq!(crc16_a(&[0x00, 0x00]), [0xA0, 0x1E]);
        assert_eq!(crc16_a(&[0x12, 0x34]), [0x26, 0xCF]);
    }

    #[test]
    fn des_matches_fips_81_vector() {
        // The classic DES known answer (FIPS 81 appendix B / Stinson): key 0123456789ABCDEF,
        // "Now is t" (4E6F772069732074) -> 3FA40E8A984D4815.
        let key = [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF];
        let ct = [0x3F, 0xA4, 0x0E, 0x8A, 0x98, 0x4D, 0x48, 0x15];
        assert_eq!(decipher(key, ct), *b"Now is t");
    }

    /// A card side of the handshake written with encryption (what a card does), to show the
    /// reader's deciphering chain is its inverse.
    #[test]
    fn handshake_with_a_card_that_enciphers() {
        let key = [0u8; 8];
        let rnd_b = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
        let rnd_a = [1, 2, 3, 4, 5, 6, 7, 8];
        // Card: ek(RndB) such that D(ek) = RndB, i.e. ek = E(RndB).
        let ek_rnd_b = encipher(key, rnd_b);
        let mut auth = LegacyAuth::new(key, 0, rnd_a);
        let second = auth.answer(&ek_rnd_b).unwrap();
        assert_eq!(&second[..5], &[0x90, 0xAF, 0x00, 0x00, 0x10]);
        let t1: [u8; 8] = second[5..13].try_into().unwrap();
        let t2: [u8; 8] = second[13..21].try_into().unwrap();
        // Card: E(t1) = RndA, E(t2) ^ t1 = RndB'.
        assert_eq!(encipher(key, t1), rnd_a);
        let mut b = encipher(key, t2);
        for (x, y) in b.iter_mut().zip(t1) {
            *x ^= y;
        }
        assert_eq!(b, rotate8(rnd_b));
        let session = auth.finish(&encipher(key, rotate8(rnd_a))).unwrap();
        assert_eq!(session.key, [1, 2, 3, 4, 0x11, 0x22, 0x33, 0x44]);
        let mut wrong = LegacyAuth::new(key, 0, rnd_a);
        wrong.answer(&ek_rnd_b).unwrap();
        assert_eq!(
            wrong.finish(&encipher(key, rnd_a)),
            Err(SecureError::WrongProof)
        );
    }

    #[test]
    fn change_own_key_cryptogram_decodes_on_the_card_side() {
        let session = LegacySession::from_key([9, 8, 7, 6, 5, 4, 3, 2]);
        let new = [0xA5; 16];
        let ct = session.change_own_key(&new, 0x03);
        assert_eq!(ct.len(), 24);
        // Card: P_i = E(C_i) ⊕ C_{i-1}.
        let mut prev = [0u8; 8];
        let mut plain = Vec::new();
        for chunk in ct.chunks(8) {
            let c: [u8; 8] = chunk.try_into().unwrap();
            let mut p = encipher(session.key, c);
            for (x, y) in p.iter_mut().zip(prev) {
                *x ^= y;
            }
            plain.extend_from_slice(&p);
            prev = c;
        }
        assert_eq!(&plain[..16], &new);
        assert_eq!(plain[16], 0x03);
        assert_eq!(&plain[17..19], &crc16_a(&plain[..17]));
        assert!(plain[19..].iter().all(|b| *b == 0));
    }

    proptest::proptest! {
        #[test]
        fn any_card_answer_is_refused_or_accepted_without_panic(
            first in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20),
            last in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20),
        ) {
            let mut auth = LegacyAuth::new([0; 8], 0, [7; 8]);
            if auth.answer(&first).is_ok() {
                let _ = auth.finish(&last);
            }
        }
    }
}
