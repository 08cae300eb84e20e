//! Authenticated sessions and their secure messaging, seen from the card
//! (docs/reference/desfire-card.md §5-§6).
//!
//! - [`Session::D40`]: after the legacy 0A authentication: CRC16, 4-byte DES MAC, each
//!   cryptogram from a zero IV; the PCD "deciphers" what it sends.
//! - [`Session::Ev1`]: after `AuthenticateISO` (1A) or `AuthenticateAES` (AA): one IV running
//!   through every CMAC and cryptogram, CRC32, 8-byte CMAC prefix.
//! - [`Session::Ev2`]: after AuthenticateEV2First/NonFirst: TI, command counter, derived
//!   session keys and IVs, truncated MAC.
//!
//! [`Session::open_command`] takes a command as received and returns its plain data, or the
//! status that ends the session; [`Session::seal_answer`] protects a successful answer.

use super::crypto::{Cipher, crc16, crc32, iso_pad, iso_unpad, truncate_ev2, xor_into, zero_pad};
use super::status::Status;

/// How a command or answer is protected inside a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protect {
    /// EV2: nothing; EV1: a CMAC is computed (IV advances) but not sent, and the answer gets
    /// one; D40: nothing.
    Plain,
    /// A command of MAC mode: EV2 sends `MACt`; EV1 computes the CMAC without sending it.
    Mac,
    /// File data in MAC mode: every scheme sends a MAC (EV2 `MACt`, EV1 CMAC(8), D40 MAC(4)).
    MacData,
    /// Full mode: the data after `header` bytes is enciphered; `plain_len`, when known, is
    /// the length of the plaintext (it locates the CRC).
    Full {
        /// Plain header bytes after INS.
        header: usize,
        /// Plaintext length, when the command fixes it.
        plain_len: Option<usize>,
    },
}

/// The authentication state.
#[derive(Clone, Debug, Default)]
pub enum Session {
    /// Not authenticated.
    #[default]
    None,
    /// Legacy DES/2K3DES authentication (0A).
    D40 {
        /// Session key.
        cipher: Cipher,
        /// The authenticated key.
        key_no: u8,
    },
    /// EV1 (1A or AA).
    Ev1 {
        /// Session key.
        cipher: Cipher,
        /// The running IV.
        iv: Vec<u8>,
        /// The authenticated key.
        key_no: u8,
    },
    /// EV2 (71 / 77).
    Ev2 {
        /// `KSesAuthENC`.
        enc: Cipher,
        /// `KSesAuthMAC`.
        mac: Cipher,
        /// Transaction identifier.
        ti: [u8; 4],
        /// Command counter.
        ctr: u16,
        /// The authenticated key.
        key_no: u8,
    },
}

fn ev2_iv(enc: &Cipher, tag: [u8; 2], ti: [u8; 4], ctr: u16) -> Vec<u8> {
    let mut iv = vec![tag[0], tag[1], ti[0], ti[1], ti[2], ti[3]];
    iv.extend_from_slice(&ctr.to_le_bytes());
    iv.resize(16, 0);
    enc.encrypt_block(&mut iv);
    iv
}

fn ev2_mac(mac: &Cipher, head: u8, ctr: u16, ti: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut input = vec![head];
    input.extend_from_slice(&ctr.to_le_bytes());
    input.extend_from_slice(&ti);
    input.extend_from_slice(data);
    truncate_ev2(&mac.cmac(&input))
}

/// DES CBC-MAC of the legacy scheme: zero-padded, zero IV, first 4 bytes of the last block.
fn d40_mac(cipher: &Cipher, data: &[u8]) -> Vec<u8> {
    let bs = cipher.block_size();
    let mut m = data.to_vec();
    if m.is_empty() {
        m.resize(bs, 0);
    }
    zero_pad(&mut m, bs);
    let out = cipher.cbc_encrypt(&vec![0; bs], &m).unwrap_or_default();
    let last = out.len().saturating_sub(bs);
    out.get(last..last + 4)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

/// Splits `n` trailing bytes off.
fn split_tail(data: &[u8], n: usize) -> Result<(&[u8], &[u8]), Status> {
    let at = data.len().checked_sub(n).ok_or(Status::LengthError)?;
    Ok(data.split_at(at))
}

/// Finds the plaintext in `payload ‖ crc ‖ zero padding`, checking the CRC that `crc_of`
/// computes over a candidate; with a known length only that candidate is tried.
fn strip_crc(
    plain: &[u8],
    crc_len: usize,
    plain_len: Option<usize>,
    crc_of: impl Fn(&[u8]) -> Vec<u8>,
) -> Result<Vec<u8>, Status> {
    let candidates: Vec<usize> = match plain_len {
        Some(n) => vec![n],
        None => (0..=plain.len().saturating_sub(crc_len)).rev().collect(),
    };
    for n in candidates {
        let (Some(payload), Some(crc), Some(pad)) = (
            plain.get(..n),
            plain.get(n..n + crc_len),
            plain.get(n + crc_len..),
        ) else {
            continue;
        };
        if pad.iter().all(|&b| b == 0) && crc_of(payload) == crc {
            return Ok(payload.to_vec());
        }
    }
    Err(Status::IntegrityError)
}

impl Session {
    /// The authenticated key number, if any.
    pub const fn key_no(&self) -> Option<u8> {
        match self {
            Self::None => None,
            Self::D40 { key_no, .. } | Self::Ev1 { key_no, .. } | Self::Ev2 { key_no, .. } => {
                Some(*key_no)
            }
        }
    }

    /// Whether this is an EV2 session.
    pub const fn is_ev2(&self) -> bool {
        matches!(self, Self::Ev2 { .. })
    }

    /// Verifies and deciphers a command `INS ‖ data`; returns the plain data (header and
    /// payload, without MAC). Errors end the session (the caller drops it).
    pub fn open_command(
        &mut self,
        ins: u8,
        data: &[u8],
        protect: Protect,
    ) -> Result<Vec<u8>, Status> {
        match self {
            Self::None => Ok(data.to_vec()),
            Self::D40 { cipher, .. } => match protect {
                Protect::Plain | Protect::Mac => Ok(data.to_vec()),
                Protect::MacData => {
                    let (body, mac) = split_tail(data, 4)?;
                    // The header is 7 bytes (FileNo Off(3) Len(3)); the MAC covers the data.
                    let payload = body.get(7..).unwrap_or_default();
                    if d40_mac(cipher, payload) == mac {
                        Ok(body.to_vec())
                    } else {
                        Err(Status::IntegrityError)
                    }
                }
                Protect::Full { header, plain_len } => {
                    let (head, enc) = data.split_at(header.min(data.len()));
                    let plain = cipher.legacy_unwrap(enc).ok_or(Status::LengthError)?;
                    let payload = strip_crc(&plain, 2, plain_len, |p| crc16(p).to_vec())?;
                    Ok([head, &payload].concat())
                }
            },
            Self::Ev1 { cipher, iv, .. } => match protect {
                Protect::Plain | Protect::Mac => {
                    let input = [&[ins][..], data].concat();
                    *iv = cipher
                        .cmac_with_iv(iv, &input)
                        .ok_or(Status::IntegrityError)?;
                    Ok(data.to_vec())
                }
                Protect::MacData => {
                    let (body, mac) = split_tail(data, 8)?;
                    let input = [&[ins][..], body].concat();
                    let cmac = cipher
                        .cmac_with_iv(iv, &input)
                        .ok_or(Status::IntegrityError)?;
                    if cmac.get(..8) != Some(mac) {
                        return Err(Status::IntegrityError);
                    }
                    *iv = cmac;
                    Ok(body.to_vec())
                }
                Protect::Full { header, plain_len } => {
                    let (head, enc) = data.split_at(header.min(data.len()));
                    let bs = cipher.block_size();
                    if enc.is_empty() || enc.len() % bs != 0 {
                        return Err(Status::LengthError);
                    }
                    let plain = cipher.cbc_decrypt(iv, enc).ok_or(Status::LengthError)?;
                    *iv = enc.get(enc.len() - bs..).unwrap_or_default().to_vec();
                    let payload = strip_crc(&plain, 4, plain_len, |p| {
                        crc32(&[&[ins][..], head, p].concat()).to_vec()
                    })?;
                    Ok([head, &payload].concat())
                }
            },
            Self::Ev2 {
                enc, mac, ti, ctr, ..
            } => {
                if *ctr == u16::MAX {
                    return Err(Status::PermissionDenied);
                }
                match protect {
                    Protect::Plain => Ok(data.to_vec()),
                    Protect::Mac | Protect::MacData => {
                        let (body, got) = split_tail(data, 8)?;
                        if ev2_mac(mac, ins, *ctr, *ti, body) != got {
                            return Err(Status::IntegrityError);
                        }
                        Ok(body.to_vec())
                    }
                    Protect::Full { header, plain_len } => {
                        let (body, got) = split_tail(data, 8)?;
                        if ev2_mac(mac, ins, *ctr, *ti, body) != got {
                            return Err(Status::IntegrityError);
                        }
                        let (head, ct) = body.split_at(header.min(body.len()));
                        if ct.is_empty() {
                            return Ok(head.to_vec());
                        }
                        if ct.len() % 16 != 0 {
                            return Err(Status::LengthError);
                        }
                        let iv = ev2_iv(enc, [0xA5, 0x5A], *ti, *ctr);
                        let plain = enc.cbc_decrypt(&iv, ct).ok_or(Status::LengthError)?;
                        let payload = iso_unpad(&plain).ok_or(Status::IntegrityError)?;
                        if plain_len.is_some_and(|n| n != payload.len()) {
                            return Err(Status::LengthError);
                        }
                        Ok([head, payload].concat())
                    }
                }
            }
        }
    }

    /// Protects a successful answer's data (status 00); returns the bytes after the status.
    /// EV2 counts the command here (every command, plain ones too).
    pub fn seal_answer(&mut self, data: &[u8], protect: Protect) -> Vec<u8> {
        match self {
            Self::None => data.to_vec(),
            Self::D40 { cipher, .. } => match protect {
                Protect::Plain | Protect::Mac => data.to_vec(),
                Protect::MacData => [data, &d40_mac(cipher, data)].concat(),
                Protect::Full { .. } if data.is_empty() => Vec::new(),
                Protect::Full { .. } => {
                    let mut p = data.to_vec();
                    p.extend_from_slice(&crc16(data));
                    zero_pad(&mut p, cipher.block_size());
                    cipher
                        .cbc_encrypt(&vec![0; cipher.block_size()], &p)
                        .unwrap_or_default()
                }
            },
            Self::Ev1 { cipher, iv, .. } => {
                if matches!(protect, Protect::Full { .. }) && !data.is_empty() {
                    let mut p = data.to_vec();
                    p.extend_from_slice(&crc32(&[data, &[0x00]].concat()));
                    zero_pad(&mut p, cipher.block_size());
                    let ct = cipher.cbc_encrypt(iv, &p).unwrap_or_default();
                    let bs = cipher.block_size();
                    *iv = ct
                        .get(ct.len().saturating_sub(bs)..)
                        .unwrap_or_default()
                        .to_vec();
                    ct
                } else {
                    let cmac = cipher
                        .cmac_with_iv(iv, &[data, &[0x00]].concat())
                        .unwrap_or_default();
                    let out = [data, cmac.get(..8).unwrap_or_default()].concat();
                    *iv = cmac;
                    out
                }
            }
            Self::Ev2 {
                enc, mac, ti, ctr, ..
            } => {
                *ctr = ctr.saturating_add(1);
                match protect {
                    Protect::Plain => data.to_vec(),
                    Protect::Mac | Protect::MacData => {
                        [data, &ev2_mac(mac, 0x00, *ctr, *ti, data)].concat()
                    }
                    Protect::Full { .. } => {
                        let ct = if data.is_empty() {
                            Vec::new()
                        } else {
                            let mut p = data.to_vec();
                            iso_pad(&mut p, 16);
                            let iv = ev2_iv(enc, [0x5A, 0xA5], *ti, *ctr);
                            enc.cbc_encrypt(&iv, &p).unwrap_or_default()
                        };
                        let m = ev2_mac(mac, 0x00, *ctr, *ti, &ct);
                        [ct, m].concat()
                    }
                }
            }
        }
    }
}

/// EV2 session keys from `RndA`, `RndB` and the key (§5): (ENC, MAC).
pub fn ev2_session_keys(key: &Cipher, rnd_a: &[u8], rnd_b: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (a, b) = (rnd_a, rnd_b);
    let mut sv = vec![0xA5, 0x5A, 0x00, 0x01, 0x00, 0x80];
    sv.extend_from_slice(a.get(0..2)?);
    let mut mid = a.get(2..8)?.to_vec();
    xor_into(&mut mid, b.get(0..6)?);
    sv.extend_from_slice(&mid);
    sv.extend_from_slice(b.get(6..16)?);
    sv.extend_from_slice(a.get(8..16)?);
    let enc = key.cmac(&sv);
    let mut sv2 = sv;
    if let Some(head) = sv2.get_mut(0..2) {
        head.copy_from_slice(&[0x5A, 0xA5]);
    }
    let mac = key.cmac(&sv2);
    Some((enc, mac))
}

/// EV1 session key from `RndA`, `RndB` (§5) for the key type's length: AES 16, 3K3DES
/// 24, 2K3DES 16 (DES: 8 bytes, doubled by the caller's cipher).
pub fn ev1_session_key(kind: SessionKeyKind, a: &[u8], b: &[u8]) -> Option<Vec<u8>> {
    let parts: &[(bool, std::ops::Range<usize>)] = match kind {
        SessionKeyKind::Aes => &[(true, 0..4), (false, 0..4), (true, 12..16), (false, 12..16)],
        SessionKeyKind::Des => &[(true, 0..4), (false, 0..4)],
        SessionKeyKind::Tdes2 => &[(true, 0..4), (false, 0..4), (true, 4..8), (false, 4..8)],
        SessionKeyKind::Tdes3 => &[
            (true, 0..4),
            (false, 0..4),
            (true, 6..10),
            (false, 6..10),
            (true, 12..16),
            (false, 12..16),
        ],
    };
    let mut key = Vec::new();
    for (from_a, range) in parts {
        key.extend_from_slice(if *from_a { a } else { b }.get(range.clone())?);
    }
    Some(key)
}

/// Which session-key layout applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKeyKind {
    /// Single DES (a 2K3DES key with equal halves).
    Des,
    /// 2K3DES.
    Tdes2,
    /// 3K3DES.
    Tdes3,
    /// AES-128.
    Aes,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::parse_hex;

    fn h(s: &str) -> Vec<u8> {
        parse_hex(&s.replace(' ', "")).unwrap()
    }

    #[test]
    fn ev2_session_key_vectors() {
        // AN12343 via PM3, zero key.
        let k = Cipher::aes(&[0; 16]).unwrap();
        let (enc, mac) = ev2_session_keys(
            &k,
            &h("B04D0787 C93EE0CC 8CACC8E8 6F16C6FE"),
            &h("FA659AD0 DCA738DD 65DC7DC3 8612AD81"),
        )
        .unwrap();
        assert_eq!(enc, h("63DC0728 6289A7A6 C0334CA3 1C314A04"));
        assert_eq!(mac, h("774F2674 3ECE6AF5 033B6AE8 522946F6"));
        // Non-zero key (PM3 HEAD).
        let k = Cipher::aes(&h("00112233 44556677 8899AABB CCDDEEFF")).unwrap();
        let (enc, mac) = ev2_session_keys(
            &k,
            &h("0123456789ABCDEF 0123456789ABCDEF"),
            &h("FEDCBA9876543210 FEDCBA9876543210"),
        )
        .unwrap();
        assert_eq!(enc, h("19542811 9C8528D5 9580A73C 7C96C6A3"));
        assert_eq!(mac, h("0AF00F6E 39F904C4 A6388C81 2D53DC94"));
    }

    #[test]
    fn ev2_iv_vectors() {
        let enc = Cipher::aes(&h("66A8CB93 269DC9BC 2885B7A9 1B9C697B")).unwrap();
        assert_eq!(
            ev2_iv(&enc, [0xA5, 0x5A], [0xED, 0x56, 0xF6, 0xE6], 0),
            h("DA0F644A 49862759 57CF1EC3 AF4CCE53")
        );
        let enc = Cipher::aes(&h("445A8626 B3338459 321232FA DF6ADE2B")).unwrap();
        assert_eq!(
            ev2_iv(&enc, [0xA5, 0x5A], [0x11, 0x22, 0x33, 0x44], 5),
            h("177494FC C4F1DAB2 AFBE8FAE 2057A9D2")
        );
    }

    #[test]
    fn ev2_mac_vectors_an12343() {
        let mac = Cipher::aes(&h("9366FA19 5EB566F5 BD2BAD40 20B83002")).unwrap();
        let ti = [0xE2, 0xD3, 0xAF, 0x69];
        let mut write = h("00 000000 190000");
        write.extend([0x22; 25]);
        assert_eq!(ev2_mac(&mac, 0x8D, 0, ti, &write), h("68F2C28C 575A1628"));
        assert_eq!(ev2_mac(&mac, 0x00, 1, ti, &[]), h("0820F688 98C2A7F1"));
        assert_eq!(
            ev2_mac(&mac, 0xAD, 1, ti, &h("00 000000 300000")),
            h("0D9BE191 D5960834")
        );
        let mut answer = vec![0x22; 25];
        answer.extend([0; 23]);
        assert_eq!(ev2_mac(&mac, 0x00, 2, ti, &answer), h("A49A4422 2D926666"));
    }

    #[test]
    fn ev1_session_key_of_the_elmue_trace() {
        let a = h("90F7A201 C4DB7605 38FF8A49 EC63DECD");
        let b = h("91036845 7E2E9AA1 67355BFB 544B9931");
        assert_eq!(
            ev1_session_key(SessionKeyKind::Aes, &a, &b).unwrap(),
            h("90F7A201 91036845 EC63DECD 544B9931")
        );
    }
}
