//! EV2 authentication and secure messaging, sans I/O (docs/reference/desfire.md §2, §3):
//! [`Ev2First`] builds the two commands of `AuthenticateEV2First` and checks the card's
//! answers; the [`Session`] it yields MACs commands, checks the card's MACs, encrypts and
//! decrypts in FULL mode, and keeps the transaction identifier and command counter.
//!
//! Randomness comes from the caller (RndA): this crate does no I/O and owns no RNG.

use super::crypto::{self, Block, Key};
use super::frame;

/// Why a step of authentication or secure messaging failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecureError {
    /// An encrypted answer of the wrong length.
    #[error("encrypted answer of {0} bytes")]
    BadLength(usize),
    /// The card's `RndA`' is not ours rotated: a wrong key (or not the card we think).
    #[error("the card's proof does not match: wrong key")]
    WrongProof,
    /// A MAC from the card does not verify.
    #[error("the card's MAC does not verify")]
    BadMac,
    /// Decrypted data without valid padding.
    #[error("decrypted data is not padded")]
    BadPadding,
    /// The command counter is exhausted (65535 commands in one session).
    #[error("command counter exhausted: authenticate again")]
    CounterExhausted,
}

/// `AuthenticateEV2First` in progress with key number `key_no`.
pub struct Ev2First {
    key: Key,
    key_no: u8,
    rnd_a: Block,
    rnd_b: Option<Block>,
}

impl std::fmt::Debug for Ev2First {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ev2First")
            .field("key_no", &self.key_no)
            .finish_non_exhaustive()
    }
}

impl Ev2First {
    /// Starts with `key` (key number `key_no`) and the caller's random `rnd_a`.
    pub fn new(key: Key, key_no: u8, rnd_a: Block) -> Self {
        Self {
            key,
            key_no,
            rnd_a,
            rnd_b: None,
        }
    }

    /// The first command: `90 71 00 00 02 KeyNo 00 00` (no PCD capabilities).
    pub fn command(&self) -> Vec<u8> {
        frame::wrap(0x71, &[self.key_no, 0x00])
    }

    /// Given the card's `E(K, RndB)`, the second command: `90 AF … E(K, RndA ‖ RndB') 00`.
    pub fn answer(&mut self, enc_rnd_b: &[u8]) -> Result<Vec<u8>, SecureError> {
        let block: Block = enc_rnd_b
            .try_into()
            .map_err(|_| SecureError::BadLength(enc_rnd_b.len()))?;
        let rnd_b = crypto::decrypt_block(&self.key, &block);
        self.rnd_b = Some(rnd_b);
        let mut plain = Vec::with_capacity(32);
        plain.extend_from_slice(&self.rnd_a);
        plain.extend_from_slice(&crypto::rotate_left(&rnd_b));
        let ct = crypto::cbc_encrypt(&self.key, &[0; 16], &plain)
            .ok_or(SecureError::BadLength(plain.len()))?;
        Ok(frame::wrap(0xAF, &ct))
    }

    /// Given the card's last answer `E(K, TI ‖ RndA' ‖ PDcap2 ‖ PCDcap2)`, the session.
    pub fn finish(self, answer: &[u8]) -> Result<Session, SecureError> {
        let rnd_b = self.rnd_b.ok_or(SecureError::WrongProof)?;
        if answer.len() != 32 {
            return Err(SecureError::BadLength(answer.len()));
        }
        let plain = crypto::cbc_decrypt(&self.key, &[0; 16], answer)
            .ok_or(SecureError::BadLength(answer.len()))?;
        let ti: [u8; 4] = plain
            .get(..4)
            .and_then(|t| t.try_into().ok())
            .ok_or(SecureError::BadLength(answer.len()))?;
        if plain.get(4..20) != Some(&crypto::rotate_left(&self.rnd_a)[..]) {
            return Err(SecureError::WrongProof);
        }
        Ok(Session::derive(&self.key, &self.rnd_a, &rnd_b, ti))
    }
}

/// The session vectors SV1 (for the encryption key) and SV2 (for the MAC key) of NXP's §9.1.7,
/// in wire order: `A5 5A|5A A5 00 01 00 80 ‖ A[0..2] ‖ (A[2..8] ⊕ B[0..6]) ‖ B[6..16] ‖ A[8..16]`.
pub fn session_vectors(rnd_a: &Block, rnd_b: &Block) -> ([u8; 32], [u8; 32]) {
    let xored = rnd_a.iter().skip(2).zip(rnd_b).take(6).map(|(a, b)| a ^ b);
    let tail: Vec<u8> = [0x00, 0x01, 0x00, 0x80]
        .into_iter()
        .chain(rnd_a.iter().take(2).copied())
        .chain(xored)
        .chain(rnd_b.iter().skip(6).copied())
        .chain(rnd_a.iter().skip(8).copied())
        .collect();
    let with = |label: [u8; 2]| {
        let mut sv = [0u8; 32];
        for (out, byte) in sv.iter_mut().zip(label.iter().chain(&tail)) {
            *out = *byte;
        }
        sv
    };
    (with([0xA5, 0x5A]), with([0x5A, 0xA5]))
}

/// An EV2 secure-messaging session: session keys, transaction identifier, command counter.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    enc: Key,
    mac: Key,
    ti: [u8; 4],
    counter: u16,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Session keys never reach logs.
        f.debug_struct("Session")
            .field("ti", &crate::hex::encode(&self.ti))
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The session of `AuthenticateEV2First` with `key`, `rnd_a`, `rnd_b` and the card's `ti`
    /// (command counter 0).
    pub fn derive(key: &Key, rnd_a: &Block, rnd_b: &Block, ti: [u8; 4]) -> Self {
        let (sv1, sv2) = session_vectors(rnd_a, rnd_b);
        Self {
            enc: crypto::cmac(key, &sv1),
            mac: crypto::cmac(key, &sv2),
            ti,
            counter: 0,
        }
    }

    /// A session from known parts (vectors, or an emulator's side).
    pub fn from_parts(enc: Key, mac: Key, ti: [u8; 4], counter: u16) -> Self {
        Self {
            enc,
            mac,
            ti,
            counter,
        }
    }

    /// The transaction identifier.
    pub fn ti(&self) -> [u8; 4] {
        self.ti
    }

    /// The command counter of the next command.
    pub fn counter(&self) -> u16 {
        self.counter
    }

    /// Whether these are the session keys `enc` and `mac` (tests, vectors).
    pub fn has_keys(&self, enc: &Key, mac: &Key) -> bool {
        &self.enc == enc && &self.mac == mac
    }

    fn iv(&self, label: [u8; 2], counter: u16) -> Block {
        let mut input = [0u8; 16];
        input[0..2].copy_from_slice(&label);
        input[2..6].copy_from_slice(&self.ti);
        input[6..8].copy_from_slice(&counter.to_le_bytes());
        crypto::encrypt_block(&self.enc, &input)
    }

    /// `IVcmd` = E(KSesAuthENC, `A5 5A ‖ TI ‖ CmdCtr ‖ 00×8`).
    pub fn iv_command(&self) -> Block {
        self.iv([0xA5, 0x5A], self.counter)
    }

    /// `IVresp` = E(KSesAuthENC, `5A A5 ‖ TI ‖ CmdCtr+1 ‖ 00×8`).
    pub fn iv_response(&self) -> Block {
        self.iv([0x5A, 0xA5], self.counter.wrapping_add(1))
    }

    /// The 8-byte MAC of a command: CMAC(KSesAuthMAC, `INS ‖ CmdCtr ‖ TI ‖ header ‖ data`).
    pub fn mac_command(&self, ins: u8, header: &[u8], data: &[u8]) -> [u8; 8] {
        let mut input = vec![ins];
        input.extend_from_slice(&self.counter.to_le_bytes());
        input.extend_from_slice(&self.ti);
        input.extend_from_slice(header);
        input.extend_from_slice(data);
        crypto::truncate_mac(&crypto::cmac(&self.mac, &input))
    }

    /// The 8-byte MAC the card puts on an answer: CMAC over `RC ‖ CmdCtr+1 ‖ TI ‖ data`.
    pub fn mac_response(&self, status: u8, data: &[u8]) -> [u8; 8] {
        let mut input = vec![status];
        input.extend_from_slice(&self.counter.wrapping_add(1).to_le_bytes());
        input.extend_from_slice(&self.ti);
        input.extend_from_slice(data);
        crypto::truncate_mac(&crypto::cmac(&self.mac, &input))
    }

    /// FULL mode: the command data padded (method 2) and encrypted with `IVcmd`.
    pub fn encrypt_command(&self, data: &[u8]) -> Vec<u8> {
        let padded = crypto::pad_m2(data);
        crypto::cbc_encrypt(&self.enc, &self.iv_command(), &padded).unwrap_or_default()
    }

    /// FULL mode: the answer data decrypted with `IVresp` and unpadded.
    pub fn decrypt_response(&self, data: &[u8]) -> Result<Vec<u8>, SecureError> {
        let plain = crypto::cbc_decrypt(&self.enc, &self.iv_response(), data)
            .ok_or(SecureError::BadLength(data.len()))?;
        crypto::unpad_m2(&plain)
            .map(<[u8]>::to_vec)
            .ok_or(SecureError::BadPadding)
    }

    /// Checks an answer's MAC (`data` without it) against `mac`; the counter stays.
    pub fn verify_response(&self, status: u8, data: &[u8], mac: &[u8]) -> Result<(), SecureError> {
        if mac == self.mac_response(status, data) {
            Ok(())
        } else {
            Err(SecureError::BadMac)
        }
    }

    /// Checks an answer's MAC (`data` without it) against `mac`, then counts the command.
    pub fn accept_response(
        &mut self,
        status: u8,
        data: &[u8],
        mac: &[u8],
    ) -> Result<(), SecureError> {
        self.verify_response(status, data, mac)?;
        self.count()
    }

    /// Counts a command (every command of the session does, plain ones too).
    pub fn count(&mut self) -> Result<(), SecureError> {
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or(SecureError::CounterExhausted)?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::super::crypto::tests::{h, v};
    use super::*;

    #[test]
    fn session_keys_of_an12343() {
        // AN12343 p.33-34 (docs/reference/desfire.md §4), key all zeros.
        let rnd_a = h("B04D0787 C93EE0CC 8CACC8E8 6F16C6FE");
        let rnd_b = h("FA659AD0 DCA738DD 65DC7DC3 8612AD81");
        let (sv1, _) = session_vectors(&rnd_a, &rnd_b);
        assert_eq!(
            sv1,
            h::<32>("A55A0001 0080B04D FDE253EE 3C6B38DD 65DC7DC3 8612AD81 8CACC8E8 6F16C6FE")
        );
        let s = Session::derive(&[0; 16], &rnd_a, &rnd_b, [0; 4]);
        assert!(s.has_keys(
            &h("63DC0728 6289A7A6 C0334CA3 1C314A04"),
            &h("774F2674 3ECE6AF5 033B6AE8 522946F6")
        ));
    }

    #[test]
    fn session_keys_with_a_non_zero_key() {
        let s = Session::derive(
            &h("00112233 44556677 8899AABB CCDDEEFF"),
            &h("01234567 89ABCDEF 01234567 89ABCDEF"),
            &h("FEDCBA98 76543210 FEDCBA98 76543210"),
            [0; 4],
        );
        assert!(s.has_keys(
            &h("19542811 9C8528D5 9580A73C 7C96C6A3"),
            &h("0AF00F6E 39F904C4 A6388C81 2D53DC94")
        ));
    }

    #[test]
    fn authenticate_ev2_first_as_an12196_table_14() {
        let mut auth = Ev2First::new([0; 16], 0, h("13C5DB8A 5930439F C3DEF9A4 C675360F"));
        assert_eq!(auth.command(), v("90 71 00 00 02 00 00 00"));
        let second = auth
            .answer(&v("A04C1242 13C186F2 2399D33A C2A30215"))
            .unwrap();
        assert_eq!(
            second,
            v(
                "90 AF 00 00 20 35C3E05A 752E0144 BAC0DE51 C1F22C56 B34408A2 3D8AEA26 6CAB947E A8E0118D 00"
            )
        );
        let session = auth
            .finish(&v(
                "3FA64DB5 446D1F34 CD6EA311 167F5E49 85B89690 C04A05F1 7FA7AB2F 08120663",
            ))
            .unwrap();
        assert_eq!(session.ti(), h::<4>("9D00C4DF"));
        assert_eq!(session.counter(), 0);
        assert!(session.has_keys(
            &h("1309C877 509E5A21 5007FF0E D19CA564"),
            &h("4C6626F5 E72EA694 20213929 5C7A7FC7")
        ));
    }

    #[test]
    fn a_wrong_key_is_told_apart() {
        let mut auth = Ev2First::new([1; 16], 0, h("13C5DB8A 5930439F C3DEF9A4 C675360F"));
        auth.answer(&v("A04C1242 13C186F2 2399D33A C2A30215"))
            .unwrap();
        let e = auth
            .finish(&v(
                "3FA64DB5 446D1F34 CD6EA311 167F5E49 85B89690 C04A05F1 7FA7AB2F 08120663",
            ))
            .unwrap_err();
        assert_eq!(e, SecureError::WrongProof);
        let mut short = Ev2First::new([0; 16], 0, [0; 16]);
        assert_eq!(short.answer(&[0; 15]), Err(SecureError::BadLength(15)));
    }

    #[test]
    fn command_ivs() {
        // docs/reference/desfire.md §4.
        let s = Session::from_parts(
            h("66A8CB93 269DC9BC 2885B7A9 1B9C697B"),
            [0; 16],
            h("ED56F6E6"),
            0,
        );
        assert_eq!(
            s.iv_command(),
            h::<16>("DA0F644A 49862759 57CF1EC3 AF4CCE53")
        );
        let s = Session::from_parts(
            h("445A8626 B3338459 321232FA DF6ADE2B"),
            [0; 16],
            h("11223344"),
            5,
        );
        assert_eq!(
            s.iv_command(),
            h::<16>("177494FC C4F1DAB2 AFBE8FAE 2057A9D2")
        );
    }

    #[test]
    fn mac_mode_of_an12343() {
        let mac_key = h("9366FA19 5EB566F5 BD2BAD40 20B83002");
        let ti = h("E2D3AF69");
        let mut s = Session::from_parts([0; 16], mac_key, ti, 0);
        let data = [0x22u8; 25];
        assert_eq!(
            s.mac_command(0x8D, &v("00 000000 190000"), &data),
            h::<8>("68F2C28C 575A1628")
        );
        s.accept_response(0x00, &[], &h::<8>("0820F688 98C2A7F1"))
            .unwrap();
        assert_eq!(s.counter(), 1);
        assert_eq!(
            s.mac_command(0xAD, &v("00 000000 300000"), &[]),
            h::<8>("0D9BE191 D5960834")
        );
        let mut answer = vec![0x22u8; 25];
        answer.extend([0u8; 23]);
        assert_eq!(s.mac_response(0x00, &answer), h::<8>("A49A4422 2D926666"));
        assert_eq!(
            s.accept_response(0x00, &answer, &[0; 8]),
            Err(SecureError::BadMac)
        );
        assert_eq!(s.counter(), 1, "a refused answer does not count");
    }

    #[test]
    fn full_mode_write_of_an12196_table_21() {
        // Session of table 19 (key 3): ENC/MAC keys, TI 7614281A, counter 0.
        let s = Session::from_parts(
            h("7A93D657 1E4B180F CA6AC90C 9A7488D4"),
            h("FC4AF159 B62E549B 5812394C AB1918CC"),
            h("7614281A"),
            0,
        );
        assert_eq!(
            s.iv_command(),
            h::<16>("4C651A64 261A9030 7B6C293F 611C7F7B")
        );
        let data: Vec<u8> = (1..=10).collect();
        let ct = s.encrypt_command(&data);
        assert_eq!(ct, v("6B5E6804 909962FC 4E3FF552 2CF0F843"));
        let header = v("03 000000 0A0000");
        assert_eq!(
            s.mac_command(0x8D, &header, &ct),
            h::<8>("6C0C5331 5B9C73AA")
        );
        assert_eq!(s.mac_response(0x00, &[]), h::<8>("C26D236E 4A7C046D"));
    }

    #[test]
    fn full_mode_answer_of_an12196_table_28() {
        let s = Session::from_parts(
            h("2B4D963C 014DC36F 24F69A50 A394F875"),
            h("379D3213 0CE61705 DD5FD8C3 6B95D764"),
            h("DF055522"),
            0,
        );
        assert_eq!(s.mac_command(0x51, &[], &[]), h::<8>("8E2C155A DDA99BE3"));
        assert_eq!(
            s.iv_response(),
            h::<16>("7F6BB0B2 78EA054C BD238C5D 9E9E342B")
        );
        let ct = v("70756055 688505B5 2A5E26E5 9E329CD6");
        assert_eq!(s.decrypt_response(&ct).unwrap(), v("04958CAA5C5E80"));
        assert_eq!(s.mac_response(0x00, &ct), h::<8>("595F6722 98EA41B7"));
        assert_eq!(
            s.decrypt_response(&ct[..15]),
            Err(SecureError::BadLength(15))
        );
    }

    #[test]
    fn the_counter_stops_at_its_end() {
        let mut s = Session::from_parts([0; 16], [0; 16], [0; 4], u16::MAX);
        assert_eq!(s.count(), Err(SecureError::CounterExhausted));
    }
}
