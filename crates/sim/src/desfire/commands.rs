//! The command set (docs/reference/desfire-card.md §3): each handler checks the key settings or
//! access rights, opens the command through the session's secure messaging, acts, and seals
//! its answer.

use super::applications::{Application, Key, KeyType, des_version};
use super::change_key::Cryptogram;
use super::files::{AccessRights, CommMode, DataFile, FREE, FileKind, NEVER};
use super::session::{Protect, Session};
use super::{Desfire, MAX_APPLICATIONS, Out, Pending, Split, Status};
use crate::card::TearMode;

/// KS1 bits (docs/reference/desfire-card.md §4).
mod ks {
    pub(super) const MASTER_CHANGEABLE: u8 = 0x01;
    pub(super) const FREE_LISTING: u8 = 0x02;
    pub(super) const FREE_CREATE: u8 = 0x04;
    pub(super) const CONFIG_CHANGEABLE: u8 = 0x08;
}

/// Bytes of EEPROM a file or application takes (blocks of 32 bytes; a backup file twice).
fn file_cost(file: &DataFile) -> usize {
    let blocks = file.data.len().div_ceil(32) * 32;
    match file.kind {
        FileKind::Standard => blocks,
        FileKind::Backup => 2 * blocks,
    }
}

/// A 3-byte little-endian number.
fn le24(b: &[u8]) -> Option<usize> {
    match b {
        &[a, b, c] => Some(usize::from(a) | usize::from(b) << 8 | usize::from(c) << 16),
        _ => None,
    }
}

impl Desfire {
    /// Runs one (complete) command.
    pub(super) fn execute(&mut self, ins: u8, data: &[u8]) -> Result<Out, Status> {
        match ins {
            0x60 => self.get_version(ins, data),
            0x5A => self.select_application(data),
            0x0A | 0x1A | 0xAA | 0x71 | 0x77 => self.start_auth(ins, data),
            0x6A => self.get_application_ids(ins, data),
            0xCA => self.create_application(ins, data),
            0xDA => self.delete_application(ins, data),
            0xFC => self.format_picc(ins, data),
            0x45 => self.get_key_settings(ins, data),
            0x54 => self.change_key_settings(ins, data),
            0x64 => self.get_key_version(ins, data),
            0xC4 => self.change_key(ins, data),
            0xCD | 0xCB => self.create_file(ins, data),
            0xDF => self.delete_file(ins, data),
            0x6F => self.get_file_ids(ins, data),
            0xF5 => self.get_file_settings(ins, data),
            0xBD | 0xAD => self.read_data(ins, data),
            0x3D | 0x8D => self.write_data(ins, data),
            0xC7 => self.end_transaction(ins, data, true),
            0xA7 => self.end_transaction(ins, data, false),
            0x51 if self.generation.has_aes() => self.get_card_uid(ins, data),
            0x6E if self.generation.has_aes() => self.free_memory(ins, data),
            0x5C if self.generation.has_aes() => self.set_configuration(ins, data),
            _ => Err(Status::IllegalCommand),
        }
    }

    /// Opens a command through the session (errors end it, see `process`).
    fn open(&mut self, ins: u8, data: &[u8], protect: Protect) -> Result<Vec<u8>, Status> {
        self.session.open_command(ins, data, protect)
    }

    /// A successful answer sealed by the session.
    fn seal(&mut self, data: &[u8], protect: Protect) -> Out {
        Out::ok(self.session.seal_answer(data, protect))
    }

    /// Whether key `key_no` of the current level is the authenticated one.
    fn authed(&self, key_no: u8) -> bool {
        self.session.key_no() == Some(key_no)
    }

    fn app(&self) -> Option<&Application> {
        self.selected.and_then(|aid| self.apps.get(&aid))
    }

    fn app_mut(&mut self) -> Result<&mut Application, Status> {
        let aid = self.selected.ok_or(Status::PermissionDenied)?;
        self.apps.get_mut(&aid).ok_or(Status::ApplicationNotFound)
    }

    /// KS1 of the current level.
    fn key_settings(&self) -> u8 {
        self.app()
            .map_or(self.picc.key_settings, |a| a.key_settings)
    }

    /// Allowed when the KS1 `bit` is set or the master key (0) is authenticated.
    fn master_or(&self, bit: u8) -> Result<(), Status> {
        if self.key_settings() & bit != 0 || self.authed(0) {
            Ok(())
        } else {
            Err(Status::AuthenticationError)
        }
    }

    fn used_memory(&self) -> usize {
        self.apps
            .values()
            .map(|a| 64 + a.files.values().map(file_cost).sum::<usize>())
            .sum()
    }

    fn free_bytes(&self) -> usize {
        self.generation
            .storage_bytes()
            .saturating_sub(self.used_memory())
    }

    fn get_version(&mut self, ins: u8, data: &[u8]) -> Result<Out, Status> {
        let data = self.open(ins, data, Protect::Plain)?;
        if !data.is_empty() {
            return Err(Status::LengthError);
        }
        let uid = if self.random_uid { [0; 7] } else { self.uid };
        let version = self.generation.version_bytes(uid);
        let mut out = self.seal(&version, Protect::Plain);
        out.split = Split::Version;
        Ok(out)
    }

    fn select_application(&mut self, data: &[u8]) -> Result<Out, Status> {
        let &[a, b, c] = data else {
            return Err(Status::LengthError);
        };
        let aid = [a, b, c];
        // Selecting ends the session and drops uncommitted writes, found or not.
        self.session = Session::None;
        self.pending = Pending::None;
        for app in self.apps.values_mut() {
            for file in app.files.values_mut() {
                file.abort();
            }
        }
        if aid == [0; 3] {
            self.selected = None;
        } else if self.apps.contains_key(&aid) {
            self.selected = Some(aid);
        } else {
            self.selected = None;
            return Err(Status::ApplicationNotFound);
        }
        Ok(Out::ok(Vec::new()))
    }

    fn get_application_ids(&mut self, ins: u8, data: &[u8]) -> Result<Out, Status> {
        let data = self.open(ins, data, Protect::Mac)?;
        if !data.is_empty() {
            return Err(Status::LengthError);
        }
        if self.selected.is_some() {
            return Err(Status::PermissionDenied);
        }
        self.master_or(ks::FREE_LISTING)?;
        let ids: Vec<u8> = self.apps.keys().flatten().copied().collect();
        Ok(self.seal(&ids, Protect::Mac))
    }

    fn create_application(&mut self, ins: u8, data: &[u8]) -> Result<Out, Status> {
        let data = self.open(ins, data, Protect::Mac)?;
        if self.selected.is_some() {
            return Err(Status::PermissionDenied);
        }
        let (&[a, b, c, ks1, ks2], iso) =
            data.split_first_chunk::<5>().ok_or(Status::LengthError)?;
        self.master_or(ks::FREE_CREATE)?;
        let aid = [a, b, c];
        let key_count = ks2 & 0x0F;
        let key_type = KeyType::from_bits(ks2).ok_or(Status::ParameterError)?;
        if aid == [0; 3]
            || key_count == 0
            || key_count > 14
            || ks2 & 0x10 != 0
            || (key_type != KeyType::Des && !self.generation.has_aes())
        {
            return Err(Status::ParameterError);
        }
        let with_iso = ks2 & 0x20 != 0;
        let (iso_fid, df_name) = match (with_iso, iso) {
            (false, []) => (None, None),
            (true, [lo, hi, name @ ..]) if name.len() <= 16 => (
                Some(u16::from_le_bytes([*lo, *hi])),
                (!name.is_empty()).then(|| name.to_vec()),
            ),
            _ => return Err(Status::LengthError),
        };
        let clash = self.apps.values().any(|app| {
            app.aid == aid
                || (iso_fid.is_some() && app.iso_fid == iso_fid)
                || (df_name.is_some() && app.df_name == df_name)
        });
        if clash {
            return Err(Status::DuplicateError);
        }
        if self.apps.len() >= MAX_APPLICATIONS {
            return Err(Status::CountError);
        }
        if self.free_bytes() < 64 {
            return Err(Status::OutOfMemory);
        }
        if self.write_gate().is_some_and(|m| m != TearMode::Landed) {
            return Err(Status::CommandAborted);
        }
        self.apps.insert(
            aid,
            Application {
                aid,
                key_settings: ks1,
                key_type,
                keys: (0..key_count).map(|_| Key::zero(key_type)).collect(),
                iso_fid,
                df_name,
                files: std::collections::BTreeMap::new(),
            },
        );
        Ok(self.seal(&[], Protect::Mac))
    }

    fn delete_application(&mut self, ins: u8, data: &[u8]) -> Result<Out, Status> {
        let data = self.open(ins, data, Protect::Mac)?;
        let &[a, b, c] = data.as_slice() else {
            return Err(Status::LengthError);
        };
        let aid = [a, b, c];
        if !self.apps.contains_key(&aid) {
            return Err(Status::ApplicationNotFound);
        }
        // At PICC level with the PICC master key (or free create/delete); inside the
        // application itself with its master key, which leaves the card at PICC level.
        match self.selected {
            None => self.master_or(ks::FREE_CREATE)?,
            Some(selected) if selected == aid && self.authed(0) => {}
            Some(_) => return Err(Status::PermissionDenied),
        }
        if self.write_gate().is_some_and(|m| m != TearMode::Landed) {
            return Err(Status::CommandAborted);
        }
        self.apps.remove(&aid);
        let out = self.seal(&[], Protect::Mac);
        if self.selected.take().is_some() {
            self.session = Session::None;
        }
        Ok(out)
    }

    fn format_picc(&mut self, ins: u8, data: &[u8]) -> Result<Out, Status> {
        let data = self.open(ins, data, Protect::Mac)?;
        if !data.is_empty() {
            return Err(Status::LengthError);
        }
        if self.selected.is_some() {
            return Err(Status::PermissionDenied);
        }
        if !self.authed(0) {
            return Err(Status::AuthenticationError);
        }
        if self.format_disabled {
            return Err(Status::PermissionDenied);
        }
        if self.write_gate().is_some_and(|m| m != TearMode::Landed) {
            return Err(Status::CommandAborted);
        }
        self.apps.clear();
        Ok(self.seal(&[], Protect::Mac))
    }

    fn get_key_settings(&mut self, ins: u8, data: &[u8]) -> Result<Out, Status> {
        let data = self.open(ins, data, Protect::Mac)?;
        if !data.is_empty() {
            return Err(Status::LengthError);
        }
        self.master_or(ks::FREE_LISTING)?;
        let answer = match self.app() {
            Some(app) => [app.key_settings, app.ks2()],
            None => [self.picc.key_settings, 0x01 | self.picc.key_type.bits()],
        };
        Ok(self.seal(&answer, Protect::Mac))
    }

    fn change_key_settings(&mut self, ins: u8, data: &[u8]) -> Result<Out, Status> {
        if !self.authed(0) {
            return Err(Status::AuthenticationError);
        }
        let data = self.open(
            ins,
            data,
            Protect::Full {
                header: 0,
                plain_len: Some(1),
            },
        )?;
        let &[new] = data.as_slice() else {
            return Err(Status::LengthError);
        };
        if self.key_settings() & ks::CONFIG_CHANGEABLE == 0 {
            return Err(Status::PermissionDenied);
        }
        if self.write_gate().is_some_and(|m| m != TearMode::Landed) {
            return Err(Status::CommandAborted);
        }
        match self.selected {
            None => self.picc.key_settings = new,
            Some(_) => self.app_mut()?.key_settings = new,
        }
        Ok(self.seal(
            &[],
            Protect::Full {
                header: 0,
                plain_len: None,
            },
        ))
    }

    fn get_key_version(&mut self, ins: u8, data: &[u8]) -> Result<Out, Status> {
        let data = self.open(ins, data, Protect::Mac)?;
        let &[key_no] = data.as_slice() else {
            return Err(Status::LengthError);
        };
        let version = match self.app() {
            None if key_no == 0 => self.picc.key.version,
            None => return Err(Status::NoSuchKey),
            Some(app) => app
                .keys
                .get(usize::from(key_no))
                .map(|k| k.version)
                .ok_or(Status::NoSuchKey)?,
        };
        Ok(self.seal(&[version], Protect::Mac))
    }

    /// `ChangeKey` (docs/reference/desfire-card.md §4): checks the right to change the key,
    /// decodes the cryptogram of the session's scheme, then stores the key.
    fn change_key(&mut self, ins: u8, data: &[u8]) -> Result<Out, Status> {
        let (&key_byte, _) = data.split_first().ok_or(Status::LengthError)?;
        let auth = self.session.key_no().ok_or(Status::AuthenticationError)?;
        let at_picc = self.selected.is_none();
        let (key_no, new_type) = if at_picc {
            if key_byte & 0x3F != 0 {
                return Err(Status::NoSuchKey);
            }
            let t = KeyType::from_bits(key_byte).ok_or(Status::ParameterError)?;
            if t != KeyType::Des && !self.generation.has_aes() {
                return Err(Status::ParameterError);
            }
            (0u8, t)
        } else {
            let app = self.app().ok_or(Status::ApplicationNotFound)?;
            let key_no = key_byte & 0x0F;
            if key_byte & 0xF0 != 0 || usize::from(key_no) >= app.keys.len() {
                return Err(Status::NoSuchKey);
            }
            (key_no, app.key_type)
        };
        // The right to change it (§4).
        let ks1 = self.key_settings();
        let allowed = if key_no == 0 {
            auth == 0 && ks1 & ks::MASTER_CHANGEABLE != 0
        } else {
            match ks1 >> 4 {
                0x0E => auth == key_no,
                0x0F => false,
                k => auth == k,
            }
        };
        if !allowed {
            return Err(if key_no == 0 && auth == 0 || ks1 >> 4 == 0x0F {
                Status::PermissionDenied
            } else {
                Status::AuthenticationError
            });
        }
        let same = auth == key_no;
        let old = if at_picc {
            self.picc.key.bytes.clone()
        } else {
            self.app()
                .and_then(|a| a.keys.get(usize::from(key_no)))
                .map(|k| k.bytes.clone())
                .unwrap_or_default()
        };
        let aes = new_type == KeyType::Aes;
        let (new_bytes, aes_version) = self.change_key_cryptogram(
            ins,
            data,
            &Cryptogram {
                key_byte,
                len: new_type.key_len(),
                aes: new_type == KeyType::Aes,
                same,
                old: &old,
            },
        )?;
        let key = Key::new(new_type, &new_bytes, aes_version).ok_or(Status::ParameterError)?;
        debug_assert!(aes || key.version == des_version(&key.bytes));
        if self.write_gate().is_some_and(|m| m != TearMode::Landed) {
            return Err(Status::CommandAborted);
        }
        if at_picc {
            self.picc.key_type = new_type;
            self.picc.key = key;
        } else if let Some(slot) = self.app_mut()?.keys.get_mut(usize::from(key_no)) {
            *slot = key;
        }
        if same {
            // The authenticated key changed: the answer is bare and the session ends.
            self.session = Session::None;
            return Ok(Out::ok(Vec::new()));
        }
        let protect = if self.session.is_ev2() {
            Protect::Full {
                header: 1,
                plain_len: None,
            }
        } else {
            Protect::Plain
        };
        Ok(self.seal(&[], protect))
    }

    fn create_file(&mut self, ins: u8, data: &[u8]) -> Result<Out, Status> {
        let data = self.open(ins, data, Protect::Mac)?;
        let (file_no, iso_fid, rest) = match data.as_slice() {
            [no, rest @ ..] if rest.len() == 6 => (*no, None, rest),
            [no, lo, hi, rest @ ..] if rest.len() == 6 => {
                (*no, Some(u16::from_le_bytes([*lo, *hi])), rest)
            }
            _ => return Err(Status::LengthError),
        };
        let &[comm, ar0, ar1, s0, s1, s2] = rest else {
            return Err(Status::LengthError);
        };
        if self.selected.is_none() {
            return Err(Status::PermissionDenied);
        }
        self.master_or(ks::FREE_CREATE)?;
        let size = le24(&[s0, s1, s2]).ok_or(Status::LengthError)?;
        if file_no > 31 || size == 0 || comm & 0x7C != 0 {
            return Err(Status::ParameterError);
        }
        let kind = if ins == 0xCB {
            FileKind::Backup
        } else {
            FileKind::Standard
        };
        let file = DataFile::new(
            kind,
            iso_fid,
            comm,
            AccessRights::from_bytes([ar0, ar1]),
            size,
        );
        let app = self.app().ok_or(Status::ApplicationNotFound)?;
        if app.files.contains_key(&file_no)
            || (iso_fid.is_some() && app.files.values().any(|f| f.iso_fid == iso_fid))
        {
            return Err(Status::DuplicateError);
        }
        if self.free_bytes() < file_cost(&file) {
            return Err(Status::OutOfMemory);
        }
        if self.write_gate().is_some_and(|m| m != TearMode::Landed) {
            return Err(Status::CommandAborted);
        }
        self.app_mut()?.files.insert(file_no, file);
        Ok(self.seal(&[], Protect::Mac))
    }

    fn delete_file(&mut self, ins: u8, data: &[u8]) -> Result<Out, Status> {
        let data = self.open(ins, data, Protect::Mac)?;
        let &[file_no] = data.as_slice() else {
            return Err(Status::LengthError);
        };
        let app = self.app().ok_or(Status::PermissionDenied)?;
        if !app.files.contains_key(&file_no) {
            return Err(Status::FileNotFound);
        }
        self.master_or(ks::FREE_CREATE)?;
        if self.write_gate().is_some_and(|m| m != TearMode::Landed) {
            return Err(Status::CommandAborted);
        }
        self.app_mut()?.files.remove(&file_no);
        Ok(self.seal(&[], Protect::Mac))
    }

    fn get_file_ids(&mut self, ins: u8, data: &[u8]) -> Result<Out, Status> {
        let data = self.open(ins, data, Protect::Mac)?;
        if !data.is_empty() {
            return Err(Status::LengthError);
        }
        let app = self.app().ok_or(Status::PermissionDenied)?;
        let ids: Vec<u8> = app.files.keys().copied().collect();
        self.master_or(ks::FREE_LISTING)?;
        Ok(self.seal(&ids, Protect::Mac))
    }

    fn get_file_settings(&mut self, ins: u8, data: &[u8]) -> Result<Out, Status> {
        let data = self.open(ins, data, Protect::Mac)?;
        let &[file_no] = data.as_slice() else {
            return Err(Status::LengthError);
        };
        let app = self.app().ok_or(Status::PermissionDenied)?;
        let settings = app
            .files
            .get(&file_no)
            .ok_or(Status::FileNotFound)?
            .settings();
        self.master_or(ks::FREE_LISTING)?;
        Ok(self.seal(&settings, Protect::Mac))
    }

    /// The mode a file's data travels in for an access needing one of `keys`: the file's
    /// own when the session key is one of them, plain when one is free; else not allowed.
    fn access(&self, file: &DataFile, keys: [u8; 2]) -> Result<CommMode, Status> {
        if let Some(k) = self.session.key_no()
            && keys.contains(&k)
        {
            return Ok(file.comm_mode());
        }
        if keys.contains(&FREE) {
            return Ok(CommMode::Plain);
        }
        if keys.iter().all(|&k| k == NEVER) {
            return Err(Status::PermissionDenied);
        }
        Err(Status::AuthenticationError)
    }

    fn file(&self, file_no: u8) -> Result<&DataFile, Status> {
        let app = self.app().ok_or(Status::PermissionDenied)?;
        app.files.get(&file_no).ok_or(Status::FileNotFound)
    }

    fn read_data(&mut self, ins: u8, data: &[u8]) -> Result<Out, Status> {
        let file_no = *data.first().ok_or(Status::LengthError)?;
        let file = self.file(file_no)?;
        let mode = self.access(file, [file.access.read, file.access.read_write])?;
        let size = file.data.len();
        let header = self.open(
            ins,
            data,
            if mode == CommMode::Plain {
                Protect::Plain
            } else {
                Protect::Mac
            },
        )?;
        let (Some(offset), Some(len)) = (
            le24(header.get(1..4).unwrap_or_default()),
            le24(header.get(4..7).unwrap_or_default()),
        ) else {
            return Err(Status::LengthError);
        };
        if header.len() != 7 {
            return Err(Status::LengthError);
        }
        let len = if len == 0 {
            size.saturating_sub(offset)
        } else {
            len
        };
        let end = offset.checked_add(len).ok_or(Status::BoundaryError)?;
        if end > size || offset >= size {
            return Err(Status::BoundaryError);
        }
        let bytes = self
            .file(file_no)?
            .data
            .get(offset..end)
            .unwrap_or_default()
            .to_vec();
        Ok(self.seal(&bytes, data_protect(mode, 0, Some(len))))
    }

    /// `WriteData` (3D, or 8D with ISO chaining). The data may arrive over `AF` frames: the
    /// length the header announces decides when it is complete.
    pub(super) fn write_data(&mut self, ins: u8, data: &[u8]) -> Result<Out, Status> {
        let file_no = *data.first().ok_or(Status::LengthError)?;
        let (Some(offset), Some(len)) = (
            le24(data.get(1..4).unwrap_or_default()),
            le24(data.get(4..7).unwrap_or_default()),
        ) else {
            return Err(Status::LengthError);
        };
        let file = self.file(file_no)?;
        let mode = self.access(file, [file.access.write, file.access.read_write])?;
        let size = file.data.len();
        if len == 0 {
            return Err(Status::ParameterError);
        }
        let end = offset.checked_add(len).ok_or(Status::BoundaryError)?;
        if end > size {
            return Err(Status::BoundaryError);
        }
        let expected = 7 + self.wire_len(mode, len);
        match data.len().cmp(&expected) {
            std::cmp::Ordering::Less => {
                self.pending = Pending::Write {
                    ins,
                    data: data.to_vec(),
                };
                return Ok(Out::more(Vec::new()));
            }
            std::cmp::Ordering::Greater => return Err(Status::LengthError),
            std::cmp::Ordering::Equal => {}
        }
        let plain = self.open(ins, data, data_protect(mode, 7, Some(len)))?;
        let bytes = plain.get(7..).ok_or(Status::LengthError)?.to_vec();
        if bytes.len() != len {
            return Err(Status::LengthError);
        }
        let tear = self.write_gate();
        let app = self.app_mut()?;
        let file = app.files.get_mut(&file_no).ok_or(Status::FileNotFound)?;
        if let Some(mode) = tear {
            // Only a standard file keeps what landed; a backup file's write waited for a
            // commit that will not come.
            if file.kind == FileKind::Standard {
                let landed = mode.landed_bytes(bytes.len());
                file.write(offset, bytes.get(..landed).unwrap_or_default());
            }
            return Err(Status::CommandAborted);
        }
        file.write(offset, &bytes);
        let protect = if mode == CommMode::Plain {
            Protect::Plain
        } else {
            Protect::Mac
        };
        Ok(self.seal(&[], protect))
    }

    /// Bytes on the wire for `len` data bytes in `mode` in the current session.
    fn wire_len(&self, mode: CommMode, len: usize) -> usize {
        let round = |n: usize, bs: usize| n.div_ceil(bs) * bs;
        match (&self.session, mode) {
            (Session::None, _) | (_, CommMode::Plain) => len,
            (Session::D40 { .. }, CommMode::Mac) => len + 4,
            (Session::D40 { cipher, .. }, CommMode::Full) => round(len + 2, cipher.block_size()),
            (Session::Ev1 { cipher, .. }, CommMode::Full) => round(len + 4, cipher.block_size()),
            (Session::Ev1 { .. } | Session::Ev2 { .. }, CommMode::Mac) => len + 8,
            (Session::Ev2 { .. }, CommMode::Full) => round(len + 1, 16) + 8,
        }
    }

    fn end_transaction(&mut self, ins: u8, data: &[u8], commit: bool) -> Result<Out, Status> {
        let data = self.open(ins, data, Protect::Mac)?;
        if data.len() > usize::from(commit) || data.first().is_some_and(|&o| o > 1) {
            return Err(Status::LengthError);
        }
        self.app().ok_or(Status::PermissionDenied)?;
        if commit {
            let tear = self.write_gate();
            let landed = tear.is_none_or(|m| m == TearMode::Landed);
            for file in self.app_mut()?.files.values_mut() {
                if landed {
                    file.commit();
                } else {
                    file.abort();
                }
            }
            if tear.is_some() {
                return Err(Status::CommandAborted);
            }
        } else {
            for file in self.app_mut()?.files.values_mut() {
                file.abort();
            }
        }
        Ok(self.seal(&[], Protect::Mac))
    }

    fn get_card_uid(&mut self, ins: u8, data: &[u8]) -> Result<Out, Status> {
        if !self.is_authenticated() {
            return Err(Status::AuthenticationError);
        }
        let data = self.open(ins, data, Protect::Mac)?;
        if !data.is_empty() {
            return Err(Status::LengthError);
        }
        let uid = self.uid;
        Ok(self.seal(
            &uid,
            Protect::Full {
                header: 0,
                plain_len: None,
            },
        ))
    }

    fn free_memory(&mut self, ins: u8, data: &[u8]) -> Result<Out, Status> {
        let data = self.open(ins, data, Protect::Mac)?;
        if !data.is_empty() {
            return Err(Status::LengthError);
        }
        let free = u32::try_from(self.free_bytes()).unwrap_or(0).to_le_bytes();
        Ok(self.seal(&free[..3], Protect::Mac))
    }

    /// `SetConfiguration` (EV1+), PICC level, PICC master key: option 00 sets the PICC
    /// configuration byte (bit 0 `FormatPICC` disabled, bit 1 random UID; irreversible on a
    /// real card). Other options (default key, ATS) are not modelled (`9E`).
    fn set_configuration(&mut self, ins: u8, data: &[u8]) -> Result<Out, Status> {
        if data.first() != Some(&0x00) {
            return Err(Status::ParameterError);
        }
        if self.selected.is_some() || !self.authed(0) {
            return Err(Status::AuthenticationError);
        }
        let plain = self.open(
            ins,
            data,
            Protect::Full {
                header: 1,
                plain_len: Some(1),
            },
        )?;
        let byte = plain.get(1).copied().unwrap_or(0);
        if self.write_gate().is_some_and(|m| m != TearMode::Landed) {
            return Err(Status::CommandAborted);
        }
        self.format_disabled |= byte & 0x01 != 0;
        self.random_uid |= byte & 0x02 != 0;
        Ok(self.seal(
            &[],
            Protect::Full {
                header: 1,
                plain_len: None,
            },
        ))
    }
}

/// The protection of file data in `mode`.
const fn data_protect(mode: CommMode, header: usize, plain_len: Option<usize>) -> Protect {
    match mode {
        CommMode::Plain => Protect::Plain,
        CommMode::Mac => Protect::MacData,
        CommMode::Full => Protect::Full { header, plain_len },
    }
}
