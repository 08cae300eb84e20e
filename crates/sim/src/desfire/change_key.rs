//! `ChangeKey`'s cryptograms, one per secure-messaging scheme (docs/reference/desfire-card.md §4):
//! what the card decodes into the new key and its AES version byte.

use super::auth::xor;
use super::crypto::{Cipher, crc16, crc32};
use super::session::{Protect, Session};
use super::{Desfire, Status};

/// What decoding a `ChangeKey` cryptogram needs to know.
#[derive(Clone, Copy, Debug)]
pub(super) struct Cryptogram<'a> {
    /// The `KeyNo` byte as sent (with the PICC type bits).
    pub key_byte: u8,
    /// Length of the new key.
    pub len: usize,
    /// Whether the new key is AES (an explicit version byte follows it).
    pub aes: bool,
    /// Whether the key changed is the authenticated one.
    pub same: bool,
    /// The key's current bytes (`XORed` into the cryptogram of another key).
    pub old: &'a [u8],
}

impl Desfire {
    /// Decodes `KeyNo ‖ cryptogram` in the current session: the new key and the AES version
    /// byte (0 for DES types, whose version is in the parity bits).
    pub(super) fn change_key_cryptogram(
        &mut self,
        ins: u8,
        data: &[u8],
        c: &Cryptogram<'_>,
    ) -> Result<(Vec<u8>, u8), Status> {
        let Cryptogram {
            key_byte,
            len,
            aes,
            same,
            old,
        } = *c;
        Ok(match &mut self.session {
            Session::None => return Err(Status::AuthenticationError),
            Session::Ev2 { .. } => {
                let plain = self.session.open_command(
                    ins,
                    data,
                    Protect::Full {
                        header: 1,
                        plain_len: None,
                    },
                )?;
                let body = plain.get(1..).unwrap_or_default();
                let key_part = body.get(..len).ok_or(Status::LengthError)?;
                let version = *body.get(len).ok_or(Status::LengthError)?;
                if same {
                    if body.len() != len + 1 {
                        return Err(Status::LengthError);
                    }
                    (key_part.to_vec(), version)
                } else {
                    let new = xor(key_part, old);
                    if body.len() != len + 5 || body.get(len + 1..) != Some(&crc32(&new)[..]) {
                        return Err(Status::IntegrityError);
                    }
                    (new, version)
                }
            }
            Session::Ev1 { cipher, iv, .. } => {
                let enc = data.get(1..).unwrap_or_default();
                let bs = cipher.block_size();
                if enc.is_empty() || enc.len() % bs != 0 {
                    return Err(Status::LengthError);
                }
                let plain = cipher.cbc_decrypt(iv, enc).ok_or(Status::LengthError)?;
                *iv = enc.get(enc.len() - bs..).unwrap_or_default().to_vec();
                let vlen = usize::from(aes);
                let key_part = plain.get(..len).ok_or(Status::LengthError)?;
                let head = plain.get(..len + vlen).ok_or(Status::LengthError)?;
                let crc = crc32(&[&[ins, key_byte][..], head].concat());
                let mut at = len + vlen;
                if plain.get(at..at + 4) != Some(&crc[..]) {
                    return Err(Status::IntegrityError);
                }
                at += 4;
                let new = if same {
                    key_part.to_vec()
                } else {
                    let new = xor(key_part, old);
                    if plain.get(at..at + 4) != Some(&crc32(&new)[..]) {
                        return Err(Status::IntegrityError);
                    }
                    at += 4;
                    new
                };
                if plain
                    .get(at..)
                    .is_some_and(|pad| pad.iter().any(|&b| b != 0))
                {
                    return Err(Status::IntegrityError);
                }
                (
                    new,
                    if aes {
                        head.get(len).copied().unwrap_or(0)
                    } else {
                        0
                    },
                )
            }
            Session::D40 { cipher, .. } => d40_cryptogram(cipher, data, c)?,
        })
    }
}

/// The legacy (D40) cryptogram, as libfreefare 0.4.0 builds it (`mifare_desfire_change_key`):
/// an AES key's version byte follows the key, and the CRC16 covers key and version; another
/// key's cryptogram adds the CRC16 of the new key.
fn d40_cryptogram(
    cipher: &Cipher,
    data: &[u8],
    c: &Cryptogram<'_>,
) -> Result<(Vec<u8>, u8), Status> {
    let len = c.len;
    let enc = data.get(1..).unwrap_or_default();
    let plain = cipher.legacy_unwrap(enc).ok_or(Status::LengthError)?;
    let key_part = plain.get(..len).ok_or(Status::LengthError)?;
    let vlen = usize::from(c.aes);
    let head = plain.get(..len + vlen).ok_or(Status::LengthError)?;
    let at = len + vlen;
    if plain.get(at..at + 2) != Some(&crc16(head)[..]) {
        return Err(Status::IntegrityError);
    }
    let new = if c.same {
        key_part.to_vec()
    } else {
        let new = xor(key_part, c.old);
        if plain.get(at + 2..at + 4) != Some(&crc16(&new)[..]) {
            return Err(Status::IntegrityError);
        }
        new
    };
    let version = if c.aes {
        head.get(len).copied().unwrap_or(0)
    } else {
        0
    };
    Ok((new, version))
}
