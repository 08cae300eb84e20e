//! MIFARE Ultralight memory: 16 pages of 4 bytes (64 bytes).
//!
//! Pages 0-1 hold the 7-byte UID with BCC0 (`88 ^ UID0 ^ UID1 ^ UID2`) and BCC1 (XOR of
//! UID3-UID6); page 2 holds BCC1, an internal byte and the two lock bytes; page 3 is
//! one-time-programmable (bits can only be set); pages 4-15 are user data. READ returns four
//! pages, wrapping from page 15 to page 0. Lock bits: lock byte 0 bit 3 locks page 3, bits 4-7
//! lock pages 4-7; lock byte 1 bits 0-7 lock pages 8-15. The block-locking bits (lock byte 0
//! bits 0-2) are stored but not enforced.

/// Pages on an Ultralight.
pub const PAGES: u8 = 16;
/// Image size in bytes.
pub const IMAGE_LEN: usize = 64;

/// Why the Ultralight refused a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UltralightFault {
    /// The page does not exist.
    #[error("page {0} does not exist")]
    NoSuchPage(u8),
    /// The page is read-only (UID) or locked by the lock bits.
    #[error("page {0} is locked")]
    Locked(u8),
}

/// An Ultralight card's memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ultralight {
    memory: [u8; IMAGE_LEN],
}

impl Ultralight {
    /// Fresh card with a 7-byte UID (the caller checks the length), lock bytes zero, data
    /// zero. Returns `None` if the UID is not 7 bytes.
    pub fn new(uid: &[u8]) -> Option<Self> {
        let &[u0, u1, u2, u3, u4, u5, u6] = uid else {
            return None;
        };
        let mut memory = [0u8; IMAGE_LEN];
        memory[..9].copy_from_slice(&[
            u0,
            u1,
            u2,
            0x88 ^ u0 ^ u1 ^ u2,
            u3,
            u4,
            u5,
            u6,
            u3 ^ u4 ^ u5 ^ u6,
        ]);
        memory[9] = 0x48;
        Some(Self { memory })
    }

    /// Memory from a 64-byte image.
    pub fn from_image(image: &[u8]) -> Option<Self> {
        Some(Self {
            memory: image.try_into().ok()?,
        })
    }

    /// The 64-byte image.
    pub fn image(&self) -> Vec<u8> {
        self.memory.to_vec()
    }

    /// The UID stored in pages 0-1.
    pub fn uid(&self) -> [u8; 7] {
        let m = &self.memory;
        [m[0], m[1], m[2], m[4], m[5], m[6], m[7]]
    }

    /// READ: 16 bytes from `page`, wrapping past page 15.
    pub fn read(&self, page: u8) -> Result<[u8; 16], UltralightFault> {
        if page >= PAGES {
            return Err(UltralightFault::NoSuchPage(page));
        }
        let mut out = [0u8; 16];
        let start = usize::from(page) * 4;
        for (i, dst) in out.iter_mut().enumerate() {
            *dst = self
                .memory
                .get((start + i) % IMAGE_LEN)
                .copied()
                .unwrap_or(0);
        }
        Ok(out)
    }

    fn locked(&self, page: u8) -> bool {
        let lock0 = self.memory[10];
        let lock1 = self.memory[11];
        match page {
            0 | 1 => true,
            3 => lock0 & 0x08 != 0,
            4..=7 => lock0 & (1 << page) != 0,
            8..=15 => lock1 & (1 << (page - 8)) != 0,
            _ => false,
        }
    }

    /// WRITE one page. Page 2 only ORs into the lock bytes, page 3 ORs (OTP); locked pages
    /// refuse.
    pub fn write(&mut self, page: u8, data: [u8; 4]) -> Result<(), UltralightFault> {
        if page >= PAGES {
            return Err(UltralightFault::NoSuchPage(page));
        }
        if self.locked(page) {
            return Err(UltralightFault::Locked(page));
        }
        let at = usize::from(page) * 4;
        for (i, byte) in data.into_iter().enumerate() {
            let Some(dst) = self.memory.get_mut(at + i) else {
                continue;
            };
            match page {
                2 if i < 2 => {}
                2 | 3 => *dst |= byte,
                _ => *dst = byte,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: [u8; 7] = [0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66];

    #[test]
    fn layout_and_wraparound() {
        let mut u = Ultralight::new(&UID).unwrap();
        assert_eq!(u.uid(), UID);
        let p0 = u.read(0).unwrap();
        assert_eq!(p0[3], 0x88 ^ 0x04 ^ 0x11 ^ 0x22);
        assert_eq!(p0[8], 0x33 ^ 0x44 ^ 0x55 ^ 0x66);
        u.write(15, [1, 2, 3, 4]).unwrap();
        let r = u.read(15).unwrap();
        assert_eq!(&r[..4], &[1, 2, 3, 4]);
        assert_eq!(
            &r[4..8],
            &UID[..3].iter().copied().chain([p0[3]]).collect::<Vec<_>>()[..]
        );
        assert_eq!(u.read(16), Err(UltralightFault::NoSuchPage(16)));
    }

    #[test]
    fn lock_and_otp() {
        let mut u = Ultralight::new(&UID).unwrap();
        assert_eq!(u.write(0, [0; 4]), Err(UltralightFault::Locked(0)));
        u.write(3, [0x01, 0, 0, 0]).unwrap();
        u.write(3, [0x02, 0, 0, 0]).unwrap();
        assert_eq!(u.read(3).unwrap()[0], 0x03, "OTP bits only get set");
        u.write(4, [9; 4]).unwrap();
        u.write(2, [0, 0, 0x10, 0x01]).unwrap(); // lock page 4 and page 8
        let p2 = u.read(2).unwrap();
        assert_eq!(&p2[..4], &[0x33 ^ 0x44 ^ 0x55 ^ 0x66, 0x48, 0x10, 0x01]);
        assert_eq!(u.write(4, [0; 4]), Err(UltralightFault::Locked(4)));
        assert_eq!(u.write(8, [0; 4]), Err(UltralightFault::Locked(8)));
        u.write(5, [1; 4]).unwrap();
        assert_eq!(u.read(4).unwrap()[..4], [9; 4]);
    }
}
