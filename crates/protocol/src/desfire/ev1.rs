//! EV1 `AuthenticateAES` (`AA`) and EV1 secure messaging, sans I/O, for `DESFire` EV1 cards
//! (docs/reference/desfire.md §6): one IV runs through the handshake and then through every
//! CMAC and cryptogram of the session, plain commands included.

use super::crypto::{self, Block, Key};
use super::ev2::SecureError;
use super::frame;

/// `AuthenticateAES` in progress.
pub struct Ev1Aes {
    key: Key,
    key_no: u8,
    rnd_a: Block,
    rnd_b: Option<Block>,
    iv: Block,
}

impl std::fmt::Debug for Ev1Aes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ev1Aes")
            .field("key_no", &self.key_no)
            .finish_non_exhaustive()
    }
}

impl Ev1Aes {
    /// Starts with `key` (number `key_no`) and the caller's random `rnd_a`.
    pub fn new(key: Key, key_no: u8, rnd_a: Block) -> Self {
        Self {
            key,
            key_no,
            rnd_a,
            rnd_b: None,
            iv: [0; 16],
        }
    }

    /// The first command: `90 AA 00 00 01 KeyNo 00`.
    pub fn command(&self) -> Vec<u8> {
        frame::wrap(0xAA, &[self.key_no])
    }

    /// Given the card's `E(K, RndB)`, the second command, `E(K, RndA ‖ RndB')` chained from
    /// the card's cryptogram.
    pub fn answer(&mut self, enc_rnd_b: &[u8]) -> Result<Vec<u8>, SecureError> {
        let block: Block = enc_rnd_b
            .try_into()
            .map_err(|_| SecureError::BadLength(enc_rnd_b.len()))?;
        let rnd_b = crypto::decrypt_block(&self.key, &block);
        self.rnd_b = Some(rnd_b);
        let plain = [self.rnd_a, crypto::rotate_left(&rnd_b)].concat();
        let ct = crypto::cbc_encrypt(&self.key, &block, &plain)
            .ok_or(SecureError::BadLength(plain.len()))?;
        self.iv = last_block(&ct);
        Ok(frame::wrap(0xAF, &ct))
    }

    /// Given the card's `E(K, RndA')`, the session (its IV starts at zero).
    pub fn finish(self, answer: &[u8]) -> Result<Ev1Session, SecureError> {
        let rnd_b = self.rnd_b.ok_or(SecureError::WrongProof)?;
        let plain = crypto::cbc_decrypt(&self.key, &self.iv, answer)
            .filter(|p| p.len() == 16)
            .ok_or(SecureError::BadLength(answer.len()))?;
        if plain != crypto::rotate_left(&self.rnd_a) {
            return Err(SecureError::WrongProof);
        }
        Ok(Ev1Session::derive(&self.rnd_a, &rnd_b))
    }
}

fn last_block(data: &[u8]) -> Block {
    let mut out = [0u8; 16];
    for (o, b) in out
        .iter_mut()
        .zip(data.iter().skip(data.len().saturating_sub(16)))
    {
        *o = *b;
    }
    out
}

/// An EV1 AES session: the session key and the running IV.
#[derive(Clone, PartialEq, Eq)]
pub struct Ev1Session {
    key: Key,
    iv: Block,
}

impl std::fmt::Debug for Ev1Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ev1Session").finish_non_exhaustive()
    }
}

impl Ev1Session {
    /// The session key `RndA[0..4] ‖ RndB[0..4] ‖ RndA[12..16] ‖ RndB[12..16]`, IV zero.
    pub fn derive(rnd_a: &Block, rnd_b: &Block) -> Self {
        fn pick(b: &Block, from: usize) -> impl Iterator<Item = u8> + '_ {
            b.iter().skip(from).take(4).copied()
        }
        let mut key = [0u8; 16];
        for (k, byte) in key.iter_mut().zip(
            pick(rnd_a, 0)
                .chain(pick(rnd_b, 0))
                .chain(pick(rnd_a, 12))
                .chain(pick(rnd_b, 12)),
        ) {
            *k = byte;
        }
        Self::from_parts(key, [0; 16])
    }

    /// A session from known parts (vectors).
    pub fn from_parts(key: Key, iv: Block) -> Self {
        Self { key, iv }
    }

    /// Whether the session key is `key` (tests, vectors).
    pub fn has_key(&self, key: &Key) -> bool {
        &self.key == key
    }

    /// The running IV.
    pub fn iv(&self) -> Block {
        self.iv
    }

    /// The CMAC of a command (`INS ‖ header ‖ data`), computed for every command; it advances
    /// the IV. Only writes to MAC-protected files send it (its first 8 bytes).
    pub fn mac_command(&mut self, command: &[u8]) -> [u8; 8] {
        self.iv = crypto::cmac_from(&self.key, &self.iv, command);
        first8(&self.iv)
    }

    /// Checks the 8-byte MAC of an answer with status `00` (over `data ‖ 00`); advances the IV.
    pub fn verify_response(&mut self, data: &[u8], mac: &[u8]) -> Result<(), SecureError> {
        let mut input = data.to_vec();
        input.push(0x00);
        self.iv = crypto::cmac_from(&self.key, &self.iv, &input);
        if mac == first8(&self.iv) {
            Ok(())
        } else {
            Err(SecureError::BadMac)
        }
    }

    /// FULL mode command data: `E(data ‖ CRC32(command ‖ data) ‖ 00-pad)`, where `command` is
    /// `INS ‖ header`; advances the IV.
    pub fn encrypt_command(&mut self, command: &[u8], data: &[u8]) -> Vec<u8> {
        let mut plain = data.to_vec();
        plain.extend_from_slice(&crypto::crc32(&[command, data].concat()));
        self.encrypt_zero_padded(plain)
    }

    /// The cryptogram of `ChangeKey` (`C4 KeyNo` then this): key `key_no` becomes `new` with
    /// `version`. For the authenticated key (`old: None`) the card checks
    /// `CRC32(C4 KeyNo new version)`; for another key it gets `new ⊕ old`, that CRC, and
    /// `CRC32(new)`. Zero padding; advances the IV.
    pub fn change_key(&mut self, key_no: u8, new: &Key, version: u8, old: Option<&Key>) -> Vec<u8> {
        let mut data: Vec<u8> = match old {
            Some(old) => new.iter().zip(old).map(|(n, o)| n ^ o).collect(),
            None => new.to_vec(),
        };
        data.push(version);
        let mut plain = data.clone();
        plain.extend_from_slice(&crypto::crc32(&[&[0xC4, key_no][..], &data].concat()));
        if old.is_some() {
            plain.extend_from_slice(&crypto::crc32(new));
        }
        self.encrypt_zero_padded(plain)
    }

    /// Zero-pads `plain` to whole blocks, encrypts it on the running IV and advances the IV to
    /// the cryptogram's last block (EV1 FULL mode, docs/reference/desfire.md §6).
    fn encrypt_zero_padded(&mut self, mut plain: Vec<u8>) -> Vec<u8> {
        while !plain.len().is_multiple_of(16) {
            plain.push(0);
        }
        let ct = crypto::cbc_encrypt(&self.key, &self.iv, &plain).unwrap_or_default();
        self.iv = last_block(&ct);
        ct
    }

    /// FULL mode answer of `len` data bytes: decrypts, checks `CRC32(data ‖ 00)` and the zero
    /// padding; advances the IV.
    pub fn decrypt_response(&mut self, ct: &[u8], len: usize) -> Result<Vec<u8>, SecureError> {
        let plain =
            crypto::cbc_decrypt(&self.key, &self.iv, ct).ok_or(SecureError::BadLength(ct.len()))?;
        self.iv = last_block(ct);
        let data = plain.get(..len).ok_or(SecureError::BadLength(ct.len()))?;
        let crc = plain
            .get(len..len + 4)
            .ok_or(SecureError::BadLength(ct.len()))?;
        let mut covered = data.to_vec();
        covered.push(0x00);
        if crc != crypto::crc32(&covered) || plain.iter().skip(len + 4).any(|b| *b != 0) {
            return Err(SecureError::BadPadding);
        }
        Ok(data.to_vec())
    }
}

fn first8(block: &Block) -> [u8; 8] {
    let mut out = [0u8; 8];
    for (o, b) in out.iter_mut().zip(block) {
        *o = *b;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::crypto::tests::{h, v};
    use super::*;

    /// A real EV1 card's handshake and first commands (docs/reference/desfire.md §6).
    #[test]
    fn authenticate_aes_and_chain_the_iv_as_a_real_card() {
        let mut auth = Ev1Aes::new(
            h("10182028 30384048 50586068 70788088"),
            0,
            h("90F7A201 C4DB7605 38FF8A49 EC63DECD"),
        );
        assert_eq!(auth.command(), v("90 AA 00 00 01 00 00"));
        let second = auth
            .answer(&v("3E2BE626 C05E7798 EE518355 A751648E"))
            .unwrap();
        assert_eq!(
            second,
            v(
                "90 AF 00 00 20 FABF71BB 0DC45B8F 31BAEDDF F7F34396 52D4094D F12C17EF 0C94353E 6D7770C8 00"
            )
        );
        let mut session = auth
            .finish(&v("1CE6C574 E24923D4 04E18B6A 240C1B08"))
            .unwrap();
        assert!(session.has_key(&h("90F7A201 91036845 EC63DECD 544B9931")));
        // GetKeyVersion 64 00: the command's CMAC is not sent, but it moves the IV.
        session.mac_command(&v("64 00"));
        assert_eq!(session.iv(), h::<16>("257FC538 618A944A 3A20967B 6F314348"));
        session
            .verify_response(&v("10"), &v("8A8FA36F 55CD210D"))
            .unwrap();
        assert_eq!(session.iv(), h::<16>("8A8FA36F 55CD210D D8054658 AC70D99A"));
        // ChangeKey of the authenticated key 0 to zeros, version 00.
        let before = session.clone();
        let ct = session.change_key(0x00, &[0; 16], 0x00, None);
        assert_eq!(
            ct,
            v("635375E4 919F8AF2 E9E86B1C 1BA55B0C 0807EAF4 84D7A7EF 6E0C3084 160F5A61")
        );
        // What was encrypted: the key, its version, the CRC32 of `C4 00 key version`, zeros.
        let decrypted = crypto::cbc_decrypt(&before.key, &before.iv, &ct).unwrap();
        assert_eq!(
            decrypted,
            v("00000000 00000000 00000000 00000000 00 0A0F861B 0000000000000000000000")
        );
        // The same through the FULL-mode helper: the cryptogram of any command.
        assert_eq!(
            before
                .clone()
                .encrypt_command(&v("C4 00"), &v("00000000 00000000 00000000 00000000 00")),
            ct
        );
    }

    #[test]
    fn change_another_key_as_a_real_card() {
        // Session C2A1E47B…, IV zero: key 1 from zeros to 0010…8090 version 10; the plaintext
        // holds new ⊕ old, the version, and the CRC32 of `C4 01 (new ⊕ old) version`; the
        // CRC32 of the new key follows it.
        let mut session = Ev1Session::from_parts(h("C2A1E47B D8100044 FE6D00A7 4D7AB17C"), [0; 16]);
        let new = h::<16>("00102030 40506070 8090A0B0 B0A09080");
        let before = session.clone();
        let ct = session.change_key(0x01, &new, 0x10, Some(&[0; 16]));
        assert_eq!(
            ct,
            v("E7ECCB6B D1CA64BC 161A12B1 C024F714 30337408 C8A87EAC AB7A1FF1 8951FCA3")
        );
        assert_eq!(
            crypto::cbc_decrypt(&before.key, &before.iv, &ct).unwrap(),
            v("00102030 40506070 8090A0B0 B0A09080 10 3370B484 BFE37919 00000000000000")
        );
        session
            .verify_response(&[], &v("2128D3CD 9C9ACFFF"))
            .unwrap();
    }

    #[test]
    fn maced_answers_of_a_real_card() {
        let mut session = Ev1Session::from_parts(h("40E7D271 626FFBD4 9C530E3D 304F5B17"), [0; 16]);
        session.mac_command(&v("CD 05 00 11 00 50 00 00"));
        session
            .verify_response(&[], &v("A75316AD 1596B953"))
            .unwrap();
        session.mac_command(&v("6F"));
        session
            .verify_response(&v("05"), &v("2D5FF67F FEC9D2D3"))
            .unwrap();
        session.mac_command(&v("F5 05"));
        session
            .verify_response(&v("00 00 11 00 50 00 00"), &v("2AAC7517 024E09DC"))
            .unwrap();
        assert_eq!(
            session
                .clone()
                .verify_response(&v("01"), &v("00000000 00000000")),
            Err(SecureError::BadMac)
        );
    }

    #[test]
    fn a_wrong_key_is_told_apart() {
        let mut auth = Ev1Aes::new([0; 16], 0, [1; 16]);
        auth.answer(&v("3E2BE626 C05E7798 EE518355 A751648E"))
            .unwrap();
        assert_eq!(
            auth.finish(&v("1CE6C574 E24923D4 04E18B6A 240C1B08")),
            Err(SecureError::WrongProof)
        );
    }

    #[test]
    fn full_mode_answers_round_trip_and_bad_crcs_are_refused() {
        let mut sender = Ev1Session::from_parts([5; 16], [6; 16]);
        let mut receiver = sender.clone();
        // A card's FULL answer: data ‖ CRC32(data ‖ 00) ‖ zeros, encrypted on the same IV.
        let data = v("04958CAA5C5E80");
        let mut plain = data.clone();
        plain.extend_from_slice(&crypto::crc32(&[&data[..], &[0x00]].concat()));
        while !plain.len().is_multiple_of(16) {
            plain.push(0);
        }
        let ct = crypto::cbc_encrypt(&sender.key, &sender.iv, &plain).unwrap();
        sender.iv = last_block(&ct);
        assert_eq!(receiver.decrypt_response(&ct, 7).unwrap(), data);
        assert_eq!(receiver.iv(), sender.iv());
        let mut other = Ev1Session::from_parts([5; 16], [6; 16]);
        assert_eq!(other.decrypt_response(&ct, 6), Err(SecureError::BadPadding));
    }
}
