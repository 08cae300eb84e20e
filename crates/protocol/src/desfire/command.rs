//! The `DESFire` commands our card format uses, over a [`Channel`], with typed parameters and
//! checked answers (docs/reference/desfire.md §7): application and file management,
//! `ReadData`/`WriteData` with `CommitTransaction`/`AbortTransaction`, `GetCardUID`,
//! `FreeMemory`, `GetKeySettings`, `GetKeyVersion` and `GetVersion`.
//!
//! Inside a session, management commands travel in MAC mode (the card's answer is checked);
//! outside one, plain. Every answer parser here refuses a wrong length with an error and never
//! panics (property tests below).

use super::channel::{Channel, DesfireError, Mode};
use super::version::Version;
use crate::transmit::Transmit;

/// A 24-bit application identifier (sent LSB first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Aid(u32);

impl Aid {
    /// The PICC level (`000000`).
    pub const PICC: Self = Self(0);

    /// The AID `value` (its low 24 bits).
    pub const fn new(value: u32) -> Self {
        Self(value & 0x00FF_FFFF)
    }

    /// The numeric value.
    pub fn value(self) -> u32 {
        self.0
    }

    /// The three bytes on the wire, LSB first.
    pub fn to_bytes(self) -> [u8; 3] {
        let [a, b, c, _] = self.0.to_le_bytes();
        [a, b, c]
    }

    /// From three wire bytes.
    pub fn from_bytes(bytes: [u8; 3]) -> Self {
        let [a, b, c] = bytes;
        Self(u32::from_le_bytes([a, b, c, 0]))
    }
}

impl std::fmt::Display for Aid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:06X}", self.0)
    }
}

/// An answer of the wrong shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} answered {len} bytes")]
pub struct ShapeError {
    /// The answer.
    pub what: &'static str,
    /// Its length.
    pub len: usize,
}

/// Parses `GetApplicationIDs`' data: a multiple of three bytes.
pub fn parse_aids(data: &[u8]) -> Result<Vec<Aid>, ShapeError> {
    if !data.len().is_multiple_of(3) {
        return Err(ShapeError {
            what: "GetApplicationIDs",
            len: data.len(),
        });
    }
    Ok(data
        .chunks_exact(3)
        .filter_map(|c| <[u8; 3]>::try_from(c).ok().map(Aid::from_bytes))
        .collect())
}

/// The key settings of the selected application or of the PICC (docs/reference/desfire.md
/// §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySettings {
    /// KS1: bit 0 master key changeable, bit 1 free listing, bit 2 free create/delete, bit 3
    /// configuration changeable, bits 7-4 the key that changes keys.
    pub settings: u8,
    /// KS2: bits 3-0 the number of keys, bits 7-6 their type (`10` AES).
    pub keys: u8,
}

impl KeySettings {
    /// Parses `GetKeySettings`' two bytes.
    pub fn parse(data: &[u8]) -> Result<Self, ShapeError> {
        match data {
            [settings, keys] => Ok(Self {
                settings: *settings,
                keys: *keys,
            }),
            _ => Err(ShapeError {
                what: "GetKeySettings",
                len: data.len(),
            }),
        }
    }

    /// Whether applications may be created (and deleted) without the master key.
    pub fn free_create(self) -> bool {
        self.settings & 0x04 != 0
    }

    /// The number of keys.
    pub fn key_count(self) -> u8 {
        self.keys & 0x0F
    }

    /// Whether the keys are AES keys.
    pub fn is_aes(self) -> bool {
        self.keys & 0xC0 == 0x80
    }
}

/// Parses `FreeMemory`'s three bytes (LE).
pub fn parse_free_memory(data: &[u8]) -> Result<u32, ShapeError> {
    match data {
        [a, b, c] => Ok(u32::from_le_bytes([*a, *b, *c, 0])),
        _ => Err(ShapeError {
            what: "FreeMemory",
            len: data.len(),
        }),
    }
}

/// Parses a one-byte answer (`GetKeyVersion`).
pub fn parse_byte(what: &'static str, data: &[u8]) -> Result<u8, ShapeError> {
    match data {
        [b] => Ok(*b),
        _ => Err(ShapeError {
            what,
            len: data.len(),
        }),
    }
}

/// A file's communication mode (docs/reference/desfire.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommMode {
    /// `00`.
    Plain,
    /// `01`.
    Mac,
    /// `03`.
    Full,
}

impl CommMode {
    /// The file settings byte.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::Plain => 0x00,
            Self::Mac => 0x01,
            Self::Full => 0x03,
        }
    }

    /// The channel mode its data travels in.
    pub fn mode(self) -> Mode {
        match self {
            Self::Plain => Mode::Plain,
            Self::Mac => Mode::Mac,
            Self::Full => Mode::Full,
        }
    }
}

/// A file's access rights: four key numbers (`0`-`D` a key, `E` free, `F` never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRights {
    /// Read.
    pub read: u8,
    /// Write.
    pub write: u8,
    /// Read and write.
    pub read_write: u8,
    /// Change the settings.
    pub change: u8,
}

impl AccessRights {
    /// The two bytes on the wire: `RW<<4 | Change`, `Read<<4 | Write`.
    pub fn to_bytes(self) -> [u8; 2] {
        [
            (self.read_write & 0x0F) << 4 | (self.change & 0x0F),
            (self.read & 0x0F) << 4 | (self.write & 0x0F),
        ]
    }
}

fn u24(value: u32) -> [u8; 3] {
    Aid::new(value).to_bytes()
}

impl<T: Transmit + ?Sized> Channel<'_, T> {
    /// Plain outside a session, MAC inside one.
    fn management_mode(&self) -> Mode {
        if self.is_authenticated() {
            Mode::Mac
        } else {
            Mode::Plain
        }
    }

    /// `SelectApplication` (`5A`); ends any session.
    pub fn select_application(&mut self, aid: Aid) -> Result<(), DesfireError> {
        self.end_session();
        self.command(0x5A, &aid.to_bytes(), &[], Mode::Plain)?;
        Ok(())
    }

    /// `GetApplicationIDs` (`6A`).
    pub fn application_ids(&mut self) -> Result<Vec<Aid>, DesfireError> {
        let mode = self.management_mode();
        let data = self.command(0x6A, &[], &[], mode)?;
        parse_aids(&data).map_err(DesfireError::Shape)
    }

    /// `CreateApplication` (`CA`) with key settings `settings` (KS1) and `keys` (KS2).
    pub fn create_application(
        &mut self,
        aid: Aid,
        settings: u8,
        keys: u8,
    ) -> Result<(), DesfireError> {
        let mode = self.management_mode();
        let [a, b, c] = aid.to_bytes();
        self.command(0xCA, &[a, b, c, settings, keys], &[], mode)?;
        Ok(())
    }

    /// `GetKeySettings` (`45`) of the selected application or PICC.
    pub fn key_settings(&mut self) -> Result<KeySettings, DesfireError> {
        let mode = self.management_mode();
        let data = self.command(0x45, &[], &[], mode)?;
        KeySettings::parse(&data).map_err(DesfireError::Shape)
    }

    /// `GetKeyVersion` (`64`) of key `key_no`.
    pub fn key_version(&mut self, key_no: u8) -> Result<u8, DesfireError> {
        let mode = self.management_mode();
        let data = self.command(0x64, &[key_no], &[], mode)?;
        parse_byte("GetKeyVersion", &data).map_err(DesfireError::Shape)
    }

    /// `GetFileIDs` (`6F`) of the selected application.
    pub fn file_ids(&mut self) -> Result<Vec<u8>, DesfireError> {
        let mode = self.management_mode();
        self.command(0x6F, &[], &[], mode)
    }

    /// `CreateBackupDataFile` (`CB`): file `file_no` of `size` bytes.
    pub fn create_backup_data_file(
        &mut self,
        file_no: u8,
        comm: CommMode,
        rights: AccessRights,
        size: u32,
    ) -> Result<(), DesfireError> {
        let mode = self.management_mode();
        let [r0, r1] = rights.to_bytes();
        let [s0, s1, s2] = u24(size);
        self.command(
            0xCB,
            &[file_no, comm.to_u8(), r0, r1, s0, s1, s2],
            &[],
            mode,
        )?;
        Ok(())
    }

    /// `WriteData` (`3D`) of `data` at `offset` of file `file_no`, in the file's `comm` mode.
    pub fn write_data(
        &mut self,
        file_no: u8,
        offset: u32,
        data: &[u8],
        comm: CommMode,
    ) -> Result<(), DesfireError> {
        let len = u32::try_from(data.len()).map_err(|_| DesfireError::TooLong {
            ins: 0x3D,
            len: data.len(),
        })?;
        let [o0, o1, o2] = u24(offset);
        let [l0, l1, l2] = u24(len);
        self.command(0x3D, &[file_no, o0, o1, o2, l0, l1, l2], data, comm.mode())?;
        Ok(())
    }

    /// `ReadData` (`BD`) of `len` bytes at `offset` of file `file_no`, in the file's `comm`
    /// mode; an answer of another length is refused.
    pub fn read_data(
        &mut self,
        file_no: u8,
        offset: u32,
        len: u32,
        comm: CommMode,
    ) -> Result<Vec<u8>, DesfireError> {
        let [o0, o1, o2] = u24(offset);
        let [l0, l1, l2] = u24(len);
        let data = self.command(0xBD, &[file_no, o0, o1, o2, l0, l1, l2], &[], comm.mode())?;
        if usize::try_from(len).ok() != Some(data.len()) {
            return Err(DesfireError::Shape(ShapeError {
                what: "ReadData",
                len: data.len(),
            }));
        }
        Ok(data)
    }

    /// `CommitTransaction` (`C7`, MAC mode in a session: docs/reference/desfire.md §7).
    pub fn commit(&mut self) -> Result<(), DesfireError> {
        let mode = self.management_mode();
        self.command(0xC7, &[], &[], mode)?;
        Ok(())
    }

    /// `AbortTransaction` (`A7`).
    pub fn abort(&mut self) -> Result<(), DesfireError> {
        let mode = self.management_mode();
        self.command(0xA7, &[], &[], mode)?;
        Ok(())
    }

    /// `GetCardUID` (`51`, FULL mode): the real UID of a random-ID card.
    pub fn card_uid(&mut self) -> Result<Vec<u8>, DesfireError> {
        let uid = self.command(0x51, &[], &[], Mode::Full)?;
        if crate::keys::UID_LENGTHS.contains(&uid.len()) {
            Ok(uid)
        } else {
            Err(DesfireError::Shape(ShapeError {
                what: "GetCardUID",
                len: uid.len(),
            }))
        }
    }

    /// `FreeMemory` (`6E`): free bytes on the card.
    pub fn free_memory(&mut self) -> Result<u32, DesfireError> {
        let mode = self.management_mode();
        let data = self.command(0x6E, &[], &[], mode)?;
        parse_free_memory(&data).map_err(DesfireError::Shape)
    }

    /// `GetVersion` (`60`, `AF`, `AF`).
    pub fn version(&mut self) -> Result<Version, DesfireError> {
        let mode = self.management_mode();
        let data = self.command(0x60, &[], &[], mode)?;
        Version::parse(&data).map_err(|e| {
            DesfireError::Shape(ShapeError {
                what: "GetVersion",
                len: e.0,
            })
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::super::channel::tests::{Script, script};
    use super::super::crypto::tests::{h, v};
    use super::super::ev1::Ev1Session;
    use super::super::ev2::Session;
    use super::*;
    use crate::transmit::{TransmitError, TransmitErrorKind};
    use proptest::prelude::*;

    #[test]
    fn aids_go_lsb_first() {
        assert_eq!(Aid::new(0x0000_DE16).to_bytes(), [0x16, 0xDE, 0x00]);
        assert_eq!(Aid::from_bytes([0x16, 0xDE, 0x00]), Aid::new(0x0000_DE16));
        assert_eq!(Aid::new(0x1234_5678).value(), 0x34_5678);
        assert_eq!(
            parse_aids(&v("16DE00 010203")).unwrap(),
            [Aid::new(0x0000_DE16), Aid::new(0x0003_0201)]
        );
        assert!(parse_aids(&[1, 2]).is_err());
    }

    #[test]
    fn access_rights_as_elmue_cd_05() {
        // `CD 05 00 11 00 50 00 00`: RW = Change = key 1, R = W = key 0 [Elmue].
        let rights = AccessRights {
            read: 0,
            write: 0,
            read_write: 1,
            change: 1,
        };
        assert_eq!(rights.to_bytes(), [0x11, 0x00]);
    }

    #[test]
    fn plain_management_outside_a_session() {
        let mut card = script(&[
            ("90 5A 00 00 03 16 DE 00 00", "91 00"),
            ("90 CA 00 00 05 16 AE 00 0F 82 00", "91 00"),
            ("90 45 00 00 00", "0F 01 91 00"),
            ("90 6E 00 00 00", "00 1C 00 91 00"),
            ("90 6A 00 00 00", "16 AE 00 91 00"),
            ("90 5A 00 00 03 99 99 99 00", "91 A0"),
        ]);
        let mut ch = Channel::new(&mut card);
        ch.select_application(Aid::new(0x0000_DE16)).unwrap();
        // `CA 16 AE 00 0F 82` = AID 00AE16, KS1 0F, 2 AES keys [Elmue].
        ch.create_application(Aid::new(0x0000_AE16), 0x0F, 0x82)
            .unwrap();
        let ks = ch.key_settings().unwrap();
        assert!(ks.free_create() && ks.key_count() == 1 && !ks.is_aes());
        assert_eq!(ch.free_memory().unwrap(), 0x1C00);
        assert_eq!(ch.application_ids().unwrap(), [Aid::new(0x0000_AE16)]);
        assert!(matches!(
            ch.select_application(Aid::new(0x0099_9999)),
            Err(DesfireError::Card {
                ins: 0x5A,
                status: super::super::status::Status::ApplicationNotFound
            })
        ));
        assert_eq!(ch.apdus(), 6);
    }

    /// Elmue's EV1 trace (docs/reference/desfire.md §6): `CreateStdDataFile`, `GetFileIDs`,
    /// `GetFileSettings` in an EV1 AES session, each answer's CMAC checked on the running IV.
    #[test]
    fn ev1_session_commands_as_elmue() {
        let mut card = script(&[
            (
                "90 CD 00 00 07 05 00 11 00 50 00 00 00",
                "A75316AD 1596B953 91 00",
            ),
            ("90 6F 00 00 00", "05 2D5FF67F FEC9D2D3 91 00"),
            (
                "90 F5 00 00 01 05 00",
                "00 00 11 00 50 00 00 2AAC7517 024E09DC 91 00",
            ),
        ]);
        let session = Ev1Session::from_parts(h("40E7D271 626FFBD4 9C530E3D 304F5B17"), [0; 16]);
        let mut ch = Channel::new(&mut card).with_ev1_session(session);
        assert!(
            ch.command(0xCD, &v("05 00 11 00 50 00 00"), &[], Mode::Mac)
                .unwrap()
                .is_empty()
        );
        assert_eq!(ch.command(0x6F, &[], &[], Mode::Mac).unwrap(), [0x05]);
        assert_eq!(
            ch.command(0xF5, &[0x05], &[], Mode::Mac).unwrap(),
            v("00 00 11 00 50 00 00")
        );
    }

    /// Elmue's EV1 `ChangeKey` of another key (docs/reference/desfire.md §6).
    #[test]
    fn ev1_change_other_key_as_elmue() {
        let mut card = script(&[(
            "90 C4 00 00 21 01 E7ECCB6B D1CA64BC 161A12B1 C024F714 30337408 C8A87EAC AB7A1FF1 8951FCA3 00",
            "2128D3CD 9C9ACFFF 91 00",
        )]);
        let session = Ev1Session::from_parts(h("C2A1E47B D8100044 FE6D00A7 4D7AB17C"), [0; 16]);
        let mut ch = Channel::new(&mut card).with_ev1_session(session);
        ch.change_key(
            0x01,
            &h("00102030 40506070 8090A0B0 B0A09080"),
            0x10,
            Some(&[0; 16]),
        )
        .unwrap();
        assert!(ch.is_authenticated());
    }

    /// AN12757 T96 (docs/reference/desfire.md §6): EV1 `ChangeKey` of the authenticated key.
    #[test]
    fn ev1_change_own_key_as_an12757_t96() {
        let mut card = script(&[(
            "90 C4 00 00 21 00 B679B080 51DA0A62 D14C3544 A968C943 636A2815 165E1FB7 C1DCC839 CFCD3D94 00",
            "91 00",
        )]);
        let session = Ev1Session::from_parts(h("04BC99A8 1DB7293F AA86CA22 5ECD7660"), [0; 16]);
        let mut ch = Channel::new(&mut card).with_ev1_session(session);
        ch.change_key(0x00, &h("B0B1B2B3 B4B5B6B7 B8B9BABB BCBDBEBF"), 0x01, None)
            .unwrap();
        assert!(!ch.is_authenticated());
    }

    /// A long EV2 `WriteData` (AN12196 T17's session and size: 128 bytes, 144 encrypted) goes
    /// in frames of 54 bytes (`90 3D …`, then `90 AF …`) and counts as one command.
    #[test]
    fn long_commands_are_chained() {
        let session = Session::from_parts(
            h("1309C877 509E5A21 5007FF0E D19CA564"),
            h("4C6626F5 E72EA694 20213929 5C7A7FC7"),
            h("9D00C4DF"),
            0,
        );
        let data: Vec<u8> = (0..0x80u8).map(|_| 0x00).collect();
        let ct = session.encrypt_command(&data);
        assert_eq!(ct.len(), 144);
        let header = v("02 000000 800000");
        let mac = session.mac_command(0x3D, &header, &ct);
        let body = [&header[..], &ct, &mac].concat();
        let (first, rest) = body.split_at(54);
        let mut steps = vec![(frame(0x3D, first), v("91 AF"))];
        let chunks: Vec<&[u8]> = rest.chunks(54).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let reply = if i + 1 == chunks.len() {
                let mut r = session.mac_response(0x00, &[]).to_vec();
                r.extend_from_slice(&[0x91, 0x00]);
                r
            } else {
                v("91 AF")
            };
            steps.push((frame(0xAF, chunk), reply));
        }
        let mut card = Script::of(steps);
        let mut ch = Channel::new(&mut card).with_session(session);
        ch.write_data(2, 0, &data, CommMode::Full).unwrap();
        assert_eq!(ch.apdus(), 1 + chunks.len());
        assert_eq!(ch.session().unwrap().counter(), 1);
    }

    fn frame(ins: u8, data: &[u8]) -> Vec<u8> {
        super::super::frame::wrap(ins, data)
    }

    proptest! {
        #[test]
        fn answer_parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_aids(&data);
            let _ = KeySettings::parse(&data);
            let _ = parse_free_memory(&data);
            let _ = parse_byte("x", &data);
            let _ = Version::parse(&data);
        }

        #[test]
        fn any_reply_to_any_command_is_an_error_or_checked(
            replies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..90), 1..6),
            ev1 in any::<bool>(),
        ) {
            struct Any(Vec<Vec<u8>>);
            impl Transmit for Any {
                fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>, TransmitError> {
                    if self.0.is_empty() {
                        return Err(TransmitError::new(TransmitErrorKind::CardRemoved, "gone"));
                    }
                    Ok(self.0.remove(0))
                }
            }
            let mut card = Any(replies);
            let ch = Channel::new(&mut card);
            let mut ch = if ev1 {
                ch.with_ev1_session(Ev1Session::from_parts([3; 16], [0; 16]))
            } else {
                ch.with_session(Session::from_parts([1; 16], [2; 16], [3; 4], 0))
            };
            let _ = ch.read_data(1, 0, 40, CommMode::Full);
            let _ = ch.card_uid();
            let _ = ch.key_settings();
            let _ = ch.version();
            let _ = ch.authenticate_ev2_first(&[0; 16], 0, [0; 16]);
            let _ = ch.authenticate_aes(&[0; 16], 0, [0; 16]);
            let _ = ch.authenticate_legacy(&[0; 8], 0, [0; 8]);
        }
    }
}
