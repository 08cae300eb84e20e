//! The `DESFire` card format (docs/card-format.md §10): our application, its keys, its one
//! backup data file and the record it holds, which is the Classic format v2 record
//! ([`super::encode_record`], [`super::decode_record`]) with its fields and MAC unchanged.

use crate::desfire::command::{AccessRights, Aid, CommMode};

/// Our application: `F` + the MAD application id `F0EB` of the Classic format + `0`, the
/// mapping AN10787 reserves for MAD-registered applications (docs/card-format.md §10.1).
pub const APP: Aid = Aid::new(0x00FF_0EB0);

/// The application master key (changes keys and settings, creates the file).
pub const KEY_MASTER: u8 = 0;
/// The read key (reads the file).
pub const KEY_READ: u8 = 1;
/// The write key (writes and reads the file, commits).
pub const KEY_WRITE: u8 = 2;

/// KS1 of our application: master key changeable (by itself), free listing of files and
/// settings, configuration changeable, the other keys changed with the write key (bits 7-4 =
/// 2), so that the write key, which a re-encode opens the application with, is always the last
/// key set (docs/card-format.md §10.1, §10.7).
pub const APP_SETTINGS: u8 = 0x2B;
/// KS2 of our application: AES keys, three of them.
pub const APP_KEYS: u8 = 0x83;

/// Our file: a backup data file.
pub const FILE_NO: u8 = 1;
/// Its communication mode: FULL (docs/card-format.md §10.4 argues FULL over MAC).
pub const FILE_COMM: CommMode = CommMode::Full;
/// Its access rights: read with the read key, write and read-write with the write key,
/// settings changed with the application master key.
pub const FILE_RIGHTS: AccessRights = AccessRights {
    read: KEY_READ,
    write: KEY_WRITE,
    read_write: KEY_WRITE,
    change: KEY_MASTER,
};
/// Its size: a v2 record of up to [`RECORD_CAPACITY`] body bytes, four 16-byte blocks.
pub const FILE_SIZE: u32 = 64;
/// The largest v2 body the file holds (header 13 bytes).
pub const RECORD_CAPACITY: usize = 64 - super::HEADER_LEN;
/// The sequence number of every `DESFire` record: the backup file's transaction, not a second
/// slot, keeps the old record until the new one is whole (§10.7).
pub const SEQUENCE: u8 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_bytes() {
        assert_eq!(APP.to_bytes(), [0xB0, 0x0E, 0xFF]);
        assert_eq!(FILE_RIGHTS.to_bytes(), [0x20, 0x12]);
        assert_eq!(RECORD_CAPACITY, 51);
        assert!(super::super::body_capacity(1) < RECORD_CAPACITY);
    }
}
