//! The authentication handshakes, card side (docs/reference/desfire-card.md §5): legacy 0A,
//! ISO 1A, AES AA, `EV2First` 71 and `EV2NonFirst` 77. Step one answers `E(K, RndB)` with `AF`;
//! the `AF` frame with the PCD's cryptogram finishes it. Any failure ends with `AE` and no
//! session.

use super::applications::KeyType;
use super::crypto::{Cipher, rotate_left, xor_into};
use super::session::{Session, SessionKeyKind, ev1_session_key, ev2_session_keys};
use super::{Desfire, Out, Status};

/// Which handshake is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Legacy,
    Iso,
    Aes,
    Ev2First,
    Ev2NonFirst,
}

/// The card's half of a handshake, waiting for the PCD's cryptogram.
#[derive(Clone, Debug)]
pub(super) struct Challenge {
    kind: Kind,
    key_no: u8,
    key_type: KeyType,
    key: Cipher,
    /// Whether the key is single DES (equal halves).
    single_des: bool,
    rnd_b: Vec<u8>,
    /// The cryptogram sent, E(K, `RndB`) (its last block chains the EV1 IV).
    sent: Vec<u8>,
    /// `EV2NonFirst` keeps the TI and command counter.
    kept: Option<([u8; 4], u16)>,
    /// `PCDcap2` of `EV2First`, echoed in the answer.
    pcd_cap: [u8; 6],
}

impl Desfire {
    /// Step one: `INS KeyNo [LenCap PCDcap2]`.
    pub(super) fn start_auth(&mut self, ins: u8, data: &[u8]) -> Result<Out, Status> {
        let kind = match ins {
            0x0A => Kind::Legacy,
            0x1A if self.generation.has_aes() => Kind::Iso,
            0xAA if self.generation.has_aes() => Kind::Aes,
            0x71 if self.generation.has_ev2() => Kind::Ev2First,
            0x77 if self.generation.has_ev2() => Kind::Ev2NonFirst,
            _ => return Err(Status::IllegalCommand),
        };
        let (&key_no, rest) = data.split_first().ok_or(Status::LengthError)?;
        let mut pcd_cap = [0u8; 6];
        match (kind, rest) {
            (Kind::Ev2First, [len_cap, caps @ ..]) => {
                if usize::from(*len_cap) != caps.len() || caps.len() > 6 {
                    return Err(Status::LengthError);
                }
                if caps.first() == Some(&0x02) {
                    // LRP is not modelled.
                    return Err(Status::ParameterError);
                }
                pcd_cap
                    .get_mut(..caps.len())
                    .unwrap_or_default()
                    .copy_from_slice(caps);
            }
            (_, []) => {}
            _ => return Err(Status::LengthError),
        }
        let kept = match (kind, &self.session) {
            (Kind::Ev2NonFirst, Session::Ev2 { ti, ctr, .. }) => Some((*ti, *ctr)),
            (Kind::Ev2NonFirst, _) => return Err(Status::AuthenticationError),
            _ => None,
        };
        self.session = Session::None;
        let (key_type, key) = self.key_for(key_no)?;
        let single_des = key_type == KeyType::Des
            && key
                .bytes
                .get(..8)
                .map(|a| a.iter().map(|b| b & 0xFE).collect::<Vec<_>>())
                == key
                    .bytes
                    .get(8..16)
                    .map(|b| b.iter().map(|x| x & 0xFE).collect::<Vec<_>>());
        let type_ok = match kind {
            Kind::Legacy => key_type == KeyType::Des,
            Kind::Iso => key_type != KeyType::Aes,
            Kind::Aes | Kind::Ev2First | Kind::Ev2NonFirst => key_type == KeyType::Aes,
        };
        if !type_ok {
            return Err(Status::AuthenticationError);
        }
        let cipher = key.cipher(key_type).ok_or(Status::AuthenticationError)?;
        let rnd_len = if key_type == KeyType::Des && kind != Kind::Aes {
            8
        } else {
            16
        };
        let rnd_b = self.random_bytes(rnd_len);
        let zero = vec![0; cipher.block_size()];
        let sent = cipher
            .cbc_encrypt(&zero, &rnd_b)
            .ok_or(Status::AuthenticationError)?;
        self.pending = super::Pending::Auth(Box::new(Challenge {
            kind,
            key_no,
            key_type,
            key: cipher,
            single_des,
            rnd_b,
            sent: sent.clone(),
            kept,
            pcd_cap,
        }));
        Ok(Out::more(sent))
    }

    /// The key `key_no` of the current level and its type.
    fn key_for(&self, key_no: u8) -> Result<(KeyType, super::applications::Key), Status> {
        match self.selected.and_then(|aid| self.apps.get(&aid)) {
            None => {
                if key_no != 0 {
                    return Err(Status::NoSuchKey);
                }
                Ok((self.picc.key_type, self.picc.key.clone()))
            }
            Some(app) => app
                .keys
                .get(usize::from(key_no))
                .map(|k| (app.key_type, k.clone()))
                .ok_or(Status::NoSuchKey),
        }
    }

    /// Step two: the PCD's cryptogram in an `AF` frame.
    pub(super) fn finish_auth(&mut self, c: &Challenge, data: &[u8]) -> Result<Out, Status> {
        let n = c.rnd_b.len();
        if data.len() != 2 * n {
            return Err(Status::LengthError);
        }
        let bs = c.key.block_size();
        let zero = vec![0; bs];
        let plain = match c.kind {
            Kind::Legacy => c.key.legacy_unwrap(data),
            Kind::Iso | Kind::Aes => {
                let iv = c
                    .sent
                    .get(c.sent.len().saturating_sub(bs)..)
                    .unwrap_or_default();
                c.key.cbc_decrypt(iv, data)
            }
            Kind::Ev2First | Kind::Ev2NonFirst => c.key.cbc_decrypt(&zero, data),
        }
        .ok_or(Status::LengthError)?;
        let (rnd_a, rnd_b_rot) = plain.split_at(n);
        if rnd_b_rot != rotate_left(&c.rnd_b).as_slice() {
            return Err(Status::AuthenticationError);
        }
        let a_rotated = rotate_left(rnd_a);
        let answer = match c.kind {
            Kind::Legacy => {
                let mut out = a_rotated.clone();
                for block in out.chunks_mut(bs) {
                    c.key.encrypt_block(block);
                }
                out
            }
            Kind::Iso | Kind::Aes => {
                let iv = data.get(data.len() - bs..).unwrap_or_default();
                c.key
                    .cbc_encrypt(iv, &a_rotated)
                    .ok_or(Status::AuthenticationError)?
            }
            Kind::Ev2First => {
                let ti = self.random_bytes(4);
                let mut p = ti.clone();
                p.extend_from_slice(&a_rotated);
                p.extend_from_slice(&[0; 6]);
                p.extend_from_slice(&c.pcd_cap);
                let out = c
                    .key
                    .cbc_encrypt(&zero, &p)
                    .ok_or(Status::AuthenticationError)?;
                let ti: [u8; 4] = ti.try_into().map_err(|_| Status::AuthenticationError)?;
                self.open_ev2(c, rnd_a, ti, 0)?;
                return Ok(Out::ok(out));
            }
            Kind::Ev2NonFirst => {
                let out = c
                    .key
                    .cbc_encrypt(&zero, &a_rotated)
                    .ok_or(Status::AuthenticationError)?;
                let (ti, ctr) = c.kept.ok_or(Status::AuthenticationError)?;
                self.open_ev2(c, rnd_a, ti, ctr)?;
                return Ok(Out::ok(out));
            }
        };
        let kind = match (c.key_type, c.single_des) {
            (KeyType::Aes, _) => SessionKeyKind::Aes,
            (KeyType::Tdes3, _) => SessionKeyKind::Tdes3,
            (KeyType::Des, true) => SessionKeyKind::Des,
            (KeyType::Des, false) => SessionKeyKind::Tdes2,
        };
        let key = ev1_session_key(kind, rnd_a, &c.rnd_b).ok_or(Status::AuthenticationError)?;
        let cipher = match kind {
            SessionKeyKind::Aes => Cipher::aes(&key),
            SessionKeyKind::Tdes3 => Cipher::tdes3(&key),
            SessionKeyKind::Des | SessionKeyKind::Tdes2 => Cipher::des(&key),
        }
        .ok_or(Status::AuthenticationError)?;
        self.session = if c.kind == Kind::Legacy {
            Session::D40 {
                cipher,
                key_no: c.key_no,
            }
        } else {
            Session::Ev1 {
                iv: vec![0; cipher.block_size()],
                cipher,
                key_no: c.key_no,
            }
        };
        Ok(Out::ok(answer))
    }

    fn open_ev2(
        &mut self,
        c: &Challenge,
        rnd_a: &[u8],
        ti: [u8; 4],
        ctr: u16,
    ) -> Result<(), Status> {
        let (enc, mac) =
            ev2_session_keys(&c.key, rnd_a, &c.rnd_b).ok_or(Status::AuthenticationError)?;
        self.session = Session::Ev2 {
            enc: Cipher::aes(&enc).ok_or(Status::AuthenticationError)?,
            mac: Cipher::aes(&mac).ok_or(Status::AuthenticationError)?,
            ti,
            ctr,
            key_no: c.key_no,
        };
        Ok(())
    }
}

/// XOR helper re-exported for `ChangeKey`.
pub(super) fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = a.to_vec();
    xor_into(&mut out, b);
    out
}
