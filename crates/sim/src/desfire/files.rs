//! Data files of an application: standard and backup files, their communication mode and
//! access rights (docs/reference/desfire-card.md §7).

/// How a file's data travels inside an authenticated session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommMode {
    /// Plain (byte 00 or 02).
    Plain,
    /// `MACed` (01).
    Mac,
    /// Fully enciphered (03).
    Full,
}

impl CommMode {
    /// The mode of a communication-settings byte (bit 7, EV2's extra access rights, ignored).
    pub const fn from_byte(b: u8) -> Self {
        match b & 0x03 {
            0x01 => Self::Mac,
            0x03 => Self::Full,
            _ => Self::Plain,
        }
    }
}

/// Access-right nibble meaning "free" (no key).
pub const FREE: u8 = 0x0E;
/// Access-right nibble meaning "never".
pub const NEVER: u8 = 0x0F;

/// The four access rights of a file, each a key number 0-D, [`FREE`] or [`NEVER`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AccessRights {
    /// Read.
    pub read: u8,
    /// Write.
    pub write: u8,
    /// Read and write.
    pub read_write: u8,
    /// Change the file's settings.
    pub change: u8,
}

impl AccessRights {
    /// From the two bytes on the wire: `RW<<4 | Change`, `Read<<4 | Write`.
    pub const fn from_bytes(b: [u8; 2]) -> Self {
        Self {
            read_write: b[0] >> 4,
            change: b[0] & 0x0F,
            read: b[1] >> 4,
            write: b[1] & 0x0F,
        }
    }

    /// The two bytes on the wire.
    pub const fn to_bytes(self) -> [u8; 2] {
        [
            (self.read_write << 4) | (self.change & 0x0F),
            (self.read << 4) | (self.write & 0x0F),
        ]
    }
}

/// Standard or backup data file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// Standard data file (type 00): writes land at once.
    Standard,
    /// Backup data file (type 01): writes land at `CommitTransaction`.
    Backup,
}

impl FileKind {
    /// The type byte of `GetFileSettings`.
    pub const fn code(self) -> u8 {
        match self {
            Self::Standard => 0x00,
            Self::Backup => 0x01,
        }
    }
}

/// A data file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataFile {
    /// Standard or backup.
    pub kind: FileKind,
    /// ISO file identifier, when created with one.
    pub iso_fid: Option<u16>,
    /// The communication-settings byte as created.
    pub comm: u8,
    /// Access rights.
    pub access: AccessRights,
    /// The committed contents (the file's size is its length).
    pub data: Vec<u8>,
    /// A backup file's written but uncommitted contents.
    pub pending: Option<Vec<u8>>,
}

impl DataFile {
    /// A new file of `size` zero bytes.
    pub fn new(
        kind: FileKind,
        iso_fid: Option<u16>,
        comm: u8,
        access: AccessRights,
        size: usize,
    ) -> Self {
        Self {
            kind,
            iso_fid,
            comm,
            access,
            data: vec![0; size],
            pending: None,
        }
    }

    /// The communication mode.
    pub const fn comm_mode(&self) -> CommMode {
        CommMode::from_byte(self.comm)
    }

    /// `GetFileSettings`: `Type Comm AR(2) Size(3)`.
    pub fn settings(&self) -> Vec<u8> {
        let size = u32::try_from(self.data.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes();
        let ar = self.access.to_bytes();
        vec![
            self.kind.code(),
            self.comm,
            ar[0],
            ar[1],
            size[0],
            size[1],
            size[2],
        ]
    }

    /// Writes `bytes` at `offset`: into the pending copy of a backup file, straight into a
    /// standard file. The caller has checked the bounds.
    pub fn write(&mut self, offset: usize, bytes: &[u8]) {
        let target = match self.kind {
            FileKind::Standard => &mut self.data,
            FileKind::Backup => self.pending.get_or_insert_with(|| self.data.clone()),
        };
        if let Some(dst) = target.get_mut(offset..offset.saturating_add(bytes.len())) {
            dst.copy_from_slice(bytes);
        }
    }

    /// Commits a backup file's pending contents; whether there were any.
    pub fn commit(&mut self) -> bool {
        match self.pending.take() {
            Some(new) => {
                self.data = new;
                true
            }
            None => false,
        }
    }

    /// Drops a backup file's pending contents; whether there were any.
    pub fn abort(&mut self) -> bool {
        self.pending.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_rights_round_trip_and_settings_layout() {
        // [Elmue]: CD 05 00 11 00 50 00 00 answers 00 00 11 00 50 00 00.
        let ar = AccessRights::from_bytes([0x11, 0x00]);
        assert_eq!((ar.read_write, ar.change, ar.read, ar.write), (1, 1, 0, 0));
        let f = DataFile::new(FileKind::Standard, None, 0x00, ar, 0x50);
        assert_eq!(f.settings(), [0x00, 0x00, 0x11, 0x00, 0x50, 0x00, 0x00]);
        for b0 in 0..=255u8 {
            for b1 in [0x00, 0x0E, 0xE0, 0xFF, 0x12] {
                assert_eq!(AccessRights::from_bytes([b0, b1]).to_bytes(), [b0, b1]);
            }
        }
    }

    #[test]
    fn backup_writes_wait_for_commit() {
        let mut f = DataFile::new(
            FileKind::Backup,
            None,
            0,
            AccessRights::from_bytes([0; 2]),
            4,
        );
        f.write(1, &[9, 9]);
        assert_eq!(f.data, [0, 0, 0, 0]);
        assert!(f.commit());
        assert_eq!(f.data, [0, 9, 9, 0]);
        f.write(0, &[7]);
        assert!(f.abort());
        assert_eq!(f.data, [0, 9, 9, 0]);
        assert!(!f.commit());
    }
}
