//! `GetVersion` (`60`, then `AF` twice): what the card says it is (docs/reference/desfire.md
//! §5). The generation comes from the hardware major version; the subtype varies between
//! batches and is not used.

/// The chip generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Generation {
    /// MF3ICD40, the first `DESFire` (DES only; no AES authentication).
    Ev0,
    /// `DESFire` EV1.
    Ev1,
    /// `DESFire` EV2 (and EV2 XL).
    Ev2,
    /// `DESFire` EV3.
    Ev3,
    /// `DESFire` Light.
    Light,
    /// Another NXP product answering `GetVersion`.
    Other(u8),
}

impl Generation {
    /// Stable name, e.g. `ev2`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ev0 => "ev0",
            Self::Ev1 => "ev1",
            Self::Ev2 => "ev2",
            Self::Ev3 => "ev3",
            Self::Light => "light",
            Self::Other(_) => "other",
        }
    }

    fn from_major(major: u8) -> Self {
        match major {
            0x00 => Self::Ev0,
            0x01 => Self::Ev1,
            0x12 | 0x22 | 0x42 => Self::Ev2,
            0x33 => Self::Ev3,
            0x30 => Self::Light,
            other => Self::Other(other),
        }
    }
}

/// The 28 bytes of `GetVersion`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The generation, from the hardware major version.
    pub generation: Generation,
    /// Hardware vendor (`04`: NXP).
    pub vendor: u8,
    /// Hardware type (`01`: `DESFire`).
    pub hw_type: u8,
    /// Hardware (major, minor).
    pub hw_version: (u8, u8),
    /// Software (major, minor).
    pub sw_version: (u8, u8),
    /// Nominal memory in bytes (the storage byte's `2^(b>>1)`; bit 0 set means "a little
    /// more than that").
    pub storage_bytes: u32,
    /// The UID as the card reports it (7 bytes).
    pub uid: [u8; 7],
    /// Production week and year (BCD, as on the card).
    pub week_year: (u8, u8),
}

/// Why 28 bytes are not a `GetVersion` answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("GetVersion answered {0} bytes, not 28")]
pub struct VersionError(pub usize);

impl Version {
    /// Decodes the three frames' data, concatenated.
    pub fn parse(data: &[u8]) -> Result<Self, VersionError> {
        let bytes: &[u8; 28] = data.try_into().map_err(|_| VersionError(data.len()))?;
        let [
            vendor,
            hw_type,
            _hw_sub,
            hw_major,
            hw_minor,
            storage,
            _hw_proto,
            _sw_vendor,
            _sw_type,
            _sw_sub,
            sw_major,
            sw_minor,
            _sw_storage,
            _sw_proto,
            u0,
            u1,
            u2,
            u3,
            u4,
            u5,
            u6,
            _b0,
            _b1,
            _b2,
            _b3,
            _b4,
            week,
            year,
        ] = *bytes;
        Ok(Self {
            generation: Generation::from_major(hw_major),
            vendor,
            hw_type,
            hw_version: (hw_major, hw_minor),
            sw_version: (sw_major, sw_minor),
            storage_bytes: 1u32.checked_shl(u32::from(storage >> 1)).unwrap_or(0),
            uid: [u0, u1, u2, u3, u4, u5, u6],
            week_year: (week, year),
        })
    }

    /// Whether the card authenticates with AES (EV1 and later).
    pub fn has_aes(&self) -> bool {
        !matches!(self.generation, Generation::Ev0 | Generation::Other(_))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::crypto::tests::v;
    use super::*;

    #[test]
    fn real_dumps_tell_the_generations_apart() {
        // docs/reference/desfire.md §5: an EV1 8K, an EV2 8K and an EV3 4K.
        for (dump, generation, storage, uid) in [
            (
                "04 01 01 01 00 1A 05  04 01 01 01 04 1A 05  04063F72633480 BA4519E320 49 13",
                Generation::Ev1,
                8192,
                "04063F72633480",
            ),
            (
                "04 01 01 12 00 1A 05  04 01 01 02 01 1A 05  042F190ACD6680 CEEDD45180 31 19",
                Generation::Ev2,
                8192,
                "042F190ACD6680",
            ),
            (
                "04 01 01 33 00 18 05  04 01 01 03 00 18 05  044B1F9ADD1E90 2113623030 40 24",
                Generation::Ev3,
                4096,
                "044B1F9ADD1E90",
            ),
        ] {
            let version = Version::parse(&v(dump)).unwrap();
            assert_eq!(version.generation, generation);
            assert_eq!(version.storage_bytes, storage);
            assert_eq!(version.uid.to_vec(), v(uid));
            assert_eq!(version.vendor, 0x04);
            assert!(version.has_aes());
        }
        let ev0 = Version::parse(&v(
            "04 01 01 00 02 18 05  04 01 01 00 06 18 05  04000000000000 0000000000 01 05",
        ))
        .unwrap();
        assert_eq!(ev0.generation, Generation::Ev0);
        assert!(!ev0.has_aes());
    }

    #[test]
    fn wrong_lengths_are_refused() {
        assert_eq!(Version::parse(&[0; 27]), Err(VersionError(27)));
        assert_eq!(Version::parse(&[0; 29]), Err(VersionError(29)));
    }
}
