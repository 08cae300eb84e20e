//! Keys, key settings and applications (docs/reference/desfire-card.md §4).

use std::collections::BTreeMap;

use super::crypto::Cipher;
use super::files::DataFile;

/// The cipher family of a key set (KS2 bits 7-6 at `CreateApplication`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// DES or 2K3DES (16 bytes).
    Des,
    /// 3K3DES (24 bytes).
    Tdes3,
    /// AES-128 (16 bytes, explicit version byte).
    Aes,
}

impl KeyType {
    /// From KS2 (or the PICC `ChangeKey` `KeyNo`) bits 7-6; `None` for 11.
    pub const fn from_bits(b: u8) -> Option<Self> {
        match b & 0xC0 {
            0x00 => Some(Self::Des),
            0x40 => Some(Self::Tdes3),
            0x80 => Some(Self::Aes),
            _ => None,
        }
    }

    /// Bits 7-6 of KS2.
    pub const fn bits(self) -> u8 {
        match self {
            Self::Des => 0x00,
            Self::Tdes3 => 0x40,
            Self::Aes => 0x80,
        }
    }

    /// Key length in bytes.
    pub const fn key_len(self) -> usize {
        match self {
            Self::Des | Self::Aes => 16,
            Self::Tdes3 => 24,
        }
    }

    /// The image name (`des`, `3k3des`, `aes`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Des => "des",
            Self::Tdes3 => "3k3des",
            Self::Aes => "aes",
        }
    }

    /// From an image name.
    pub fn from_name(s: &str) -> Option<Self> {
        [Self::Des, Self::Tdes3, Self::Aes]
            .into_iter()
            .find(|t| t.name() == s)
    }
}

/// One key and its version.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    /// The key bytes (16 or 24); DES keys keep their version in the parity bits.
    pub bytes: Vec<u8>,
    /// The key version (AES: the explicit byte; DES: read from the parity bits).
    pub version: u8,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// The all-zero key of a type, version 0 (factory default, new application keys).
    pub fn zero(key_type: KeyType) -> Self {
        Self {
            bytes: vec![0; key_type.key_len()],
            version: 0,
        }
    }

    /// A key of `key_type` from its bytes (8-byte DES keys are doubled), version from the
    /// parity bits for DES types.
    pub fn new(key_type: KeyType, bytes: &[u8], aes_version: u8) -> Option<Self> {
        let bytes = if key_type == KeyType::Des && bytes.len() == 8 {
            [bytes, bytes].concat()
        } else {
            bytes.to_vec()
        };
        (bytes.len() == key_type.key_len()).then(|| {
            let version = match key_type {
                KeyType::Aes => aes_version,
                KeyType::Des | KeyType::Tdes3 => des_version(&bytes),
            };
            Self { bytes, version }
        })
    }

    /// The cipher of this key.
    pub fn cipher(&self, key_type: KeyType) -> Option<Cipher> {
        match key_type {
            KeyType::Des => Cipher::des(&self.bytes),
            KeyType::Tdes3 => Cipher::tdes3(&self.bytes),
            KeyType::Aes => Cipher::aes(&self.bytes),
        }
    }
}

/// A DES key's version: bit 0 of each of its first 8 bytes, most significant first (§4).
pub fn des_version(key: &[u8]) -> u8 {
    key.iter().take(8).fold(0u8, |v, b| (v << 1) | (b & 0x01))
}

/// An application: its keys, key settings and files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Application {
    /// The AID as on the wire (LSB first).
    pub aid: [u8; 3],
    /// KS1: change-key access (bits 7-4) and the four setting bits.
    pub key_settings: u8,
    /// The cipher family of all its keys.
    pub key_type: KeyType,
    /// Keys 0 (application master key) to n-1.
    pub keys: Vec<Key>,
    /// ISO file identifier (2 bytes LE on the wire), when created with one.
    pub iso_fid: Option<u16>,
    /// ISO DF name (1-16 bytes), when created with one.
    pub df_name: Option<Vec<u8>>,
    /// Files by number.
    pub files: BTreeMap<u8, DataFile>,
}

impl Application {
    /// `GetKeySettings`' second byte: the key count with the type bits.
    pub fn ks2(&self) -> u8 {
        u8::try_from(self.keys.len()).unwrap_or(14) | self.key_type.bits()
    }
}

/// The PICC level: master key and settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PiccMaster {
    /// KS1 of the PICC.
    pub key_settings: u8,
    /// The PICC master key's type.
    pub key_type: KeyType,
    /// The PICC master key.
    pub key: Key,
}

impl Default for PiccMaster {
    /// Factory state: all-zero DES key, version 0, KS1 0F (docs/reference/desfire-card.md §4).
    fn default() -> Self {
        Self {
            key_settings: 0x0F,
            key_type: KeyType::Des,
            key: Key::zero(KeyType::Des),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn des_version_lives_in_the_parity_bits() {
        let mut k = [0u8; 16];
        k[0] = 0x01; // MSB of the version
        k[7] = 0x01; // LSB
        assert_eq!(des_version(&k), 0x81);
        assert_eq!(Key::new(KeyType::Des, &k[..8], 0).unwrap().version, 0x81);
        assert_eq!(Key::new(KeyType::Aes, &[0; 16], 7).unwrap().version, 7);
        assert!(Key::new(KeyType::Tdes3, &[0; 16], 0).is_none());
    }
}
