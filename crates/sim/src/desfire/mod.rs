//! A virtual MIFARE DESFire card (EV0, EV1, EV2, EV3), written from
//! the facts of docs/reference/desfire-card.md and independent of the bridge's protocol crate:
//! the card side of the same facts, so that the two can disagree and the tests see it.
//!
//! - [`version`]: the generations and their `GetVersion` bytes.
//! - [`status`]: native status codes.
//! - [`crypto`]: ciphers, CMAC, CRCs over `RustCrypto` and the `crc` crate.
//! - [`session`]: authenticated sessions and their secure messaging (D40, EV1, EV2).
//! - [`applications`] and [`files`]: what the card stores.
//! - `auth`, `commands`: the handshakes and the command set.
//! - [`image`]: the `--load` / `--save` JSON image (docs/reference/desfire-card.md §8).
//!
//! [`Desfire::process`] takes one command frame, wrapped (`90 INS 00 00 [Lc data] 00`,
//! answered `data 91 SW`) or native (`INS data`, answered `SW data`), and never panics. Long
//! answers are chained with `AF` at [`MAX_FRAME_DATA`] bytes a frame (`GetVersion` as 7/7/14),
//! and long `WriteData` commands may come in `AF` frames. A command frame may carry at most
//! [`MAX_FRAME_DATA`] data bytes, as the EV1 buffer allows (ISO-chained `8D` is exempt).
//!
//! What counts as a write for `--tear-after-writes`: every command that changes EEPROM and is
//! accepted up to that point: `CreateApplication`, `DeleteApplication`, `FormatPICC`,
//! `ChangeKeySettings`, `ChangeKey`, `CreateStdDataFile`, `CreateBackupDataFile`, `DeleteFile`,
//! `WriteData`, `CommitTransaction` and `SetConfiguration`. When the tear fires the card
//! leaves during that command and answers nothing: a standard file keeps what the tear mode
//! lets land of the write; everything else is atomic (new only with `landed`); uncommitted
//! backup writes are lost.

pub mod applications;
mod auth;
mod change_key;
mod commands;
pub mod crypto;
pub mod files;
pub mod image;
pub mod session;
pub mod status;
pub mod version;

use std::collections::{BTreeMap, VecDeque};

use crate::card::TearMode;
use applications::{Application, PiccMaster};
use session::Session;
pub use status::Status;
pub use version::Generation;

/// Most data bytes in one frame either way (EV1: 59-byte answer frames, libfreefare's
/// buffer; commands up to the same).
pub const MAX_FRAME_DATA: usize = 59;

/// Most applications on a card (EV1).
pub const MAX_APPLICATIONS: usize = 28;

/// What is waiting for the next `AF` frame.
#[derive(Clone, Debug, Default)]
enum Pending {
    #[default]
    None,
    /// The rest of a chained answer (frames still to send).
    Answer(VecDeque<Vec<u8>>),
    /// The second step of an authentication.
    Auth(Box<auth::Challenge>),
    /// A `WriteData` whose data has not all arrived: INS and what came so far.
    Write { ins: u8, data: Vec<u8> },
}

/// How a logical answer is cut into frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Split {
    /// At [`MAX_FRAME_DATA`] bytes.
    Size,
    /// `GetVersion`: 7, 7 and the rest.
    Version,
}

/// A command's outcome before framing.
#[derive(Clone, Debug)]
struct Out {
    status: Status,
    data: Vec<u8>,
    split: Split,
}

impl Out {
    fn ok(data: Vec<u8>) -> Self {
        Self {
            status: Status::Ok,
            data,
            split: Split::Size,
        }
    }

    fn more(data: Vec<u8>) -> Self {
        Self {
            status: Status::AdditionalFrame,
            data,
            split: Split::Size,
        }
    }
}

/// The tear state: writes accepted and the armed tear.
#[derive(Clone, Copy, Debug, Default)]
struct Tear {
    writes: u32,
    at: Option<(u32, TearMode)>,
    torn: bool,
}

/// A DESFire card.
#[derive(Clone, Debug)]
pub struct Desfire {
    generation: Generation,
    uid: [u8; 7],
    random_uid: bool,
    /// `SetConfiguration`'s "`FormatPICC` disabled".
    format_disabled: bool,
    picc: PiccMaster,
    apps: BTreeMap<[u8; 3], Application>,
    /// The selected application; `None` at PICC level (AID 000000).
    selected: Option<[u8; 3]>,
    session: Session,
    pending: Pending,
    tear: Tear,
    rng: fastrand::Rng,
    /// Bytes handed out before the generator (tests replaying published traces).
    scripted: VecDeque<u8>,
}

impl Desfire {
    /// A factory-fresh card: no applications, PICC master key all-zero DES, KS1 0F.
    pub fn new(generation: Generation, uid: [u8; 7]) -> Self {
        Self {
            generation,
            uid,
            random_uid: false,
            format_disabled: false,
            picc: PiccMaster::default(),
            apps: BTreeMap::new(),
            selected: None,
            session: Session::None,
            pending: Pending::None,
            tear: Tear::default(),
            rng: fastrand::Rng::new(),
            scripted: VecDeque::new(),
        }
    }

    /// The generation.
    pub const fn generation(&self) -> Generation {
        self.generation
    }

    /// The card's fixed 7-byte UID (what `GetCardUID` answers).
    pub const fn uid(&self) -> [u8; 7] {
        self.uid
    }

    /// Whether the card shows a random 4-byte UID at anticollision (`SetConfiguration`'s
    /// random-UID option, as `mifare-desfire-ev1-configure-random-uid` sets it).
    pub const fn random_uid(&self) -> bool {
        self.random_uid
    }

    /// Turns the random-UID option on or off.
    pub fn set_random_uid(&mut self, on: bool) {
        self.random_uid = on;
    }

    /// A fresh anticollision UID for a random-UID card: `08` and three random bytes.
    pub fn fresh_random_uid(&mut self) -> [u8; 4] {
        let r = self.random_bytes(3);
        [
            0x08,
            r.first().copied().unwrap_or(0),
            r.get(1).copied().unwrap_or(0),
            r.get(2).copied().unwrap_or(0),
        ]
    }

    /// The PICC master key and settings.
    pub const fn picc(&self) -> &PiccMaster {
        &self.picc
    }

    /// Applications by AID (wire order, LSB first).
    pub const fn applications(&self) -> &BTreeMap<[u8; 3], Application> {
        &self.apps
    }

    /// One application by its AID as a number (e.g. `0x00DE16`).
    pub fn application(&self, aid: u32) -> Option<&Application> {
        self.apps.get(&aid_bytes(aid))
    }

    /// Mutable access for tests that set a card up directly.
    pub fn applications_mut(&mut self) -> &mut BTreeMap<[u8; 3], Application> {
        &mut self.apps
    }

    /// Mutable PICC master, for tests that set a card up directly.
    pub fn picc_mut(&mut self) -> &mut PiccMaster {
        &mut self.picc
    }

    /// Whether a session is open (for tests).
    pub const fn is_authenticated(&self) -> bool {
        !matches!(self.session, Session::None)
    }

    /// Makes the next random numbers (`RndB`, TI, ...) these bytes, then back to the
    /// generator: for replaying published traces.
    pub fn script_random(&mut self, bytes: &[u8]) {
        self.scripted.extend(bytes);
    }

    fn random_bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| self.scripted.pop_front().unwrap_or_else(|| self.rng.u8(..)))
            .collect()
    }

    /// Field off or deselect: the session, any half-done exchange and uncommitted backup
    /// writes are gone.
    pub fn deselect(&mut self) {
        self.session = Session::None;
        self.pending = Pending::None;
        self.selected = None;
        for app in self.apps.values_mut() {
            for file in app.files.values_mut() {
                file.abort();
            }
        }
    }

    /// Arms (or with `None` disarms) a tear: after `n` more accepted writes, the card leaves
    /// during the next one (see the module documentation for what a write is).
    pub fn set_tear_after_writes(&mut self, n: Option<u32>, mode: TearMode) {
        self.tear.at = n.map(|n| (self.tear.writes.saturating_add(n), mode));
    }

    /// Whether the card has left the field in a tear (until [`Self::insert`]).
    pub const fn is_torn(&self) -> bool {
        self.tear.torn
    }

    /// Writes accepted so far.
    pub const fn writes(&self) -> u32 {
        self.tear.writes
    }

    /// The card is put (back) in the field.
    pub fn insert(&mut self) {
        self.tear.torn = false;
        self.deselect();
    }

    /// Called by a command about to change EEPROM: `Some(mode)` when the armed tear fires
    /// now (the card is then torn), else counts the write.
    fn write_gate(&mut self) -> Option<TearMode> {
        if let Some((at, mode)) = self.tear.at
            && at == self.tear.writes
        {
            self.tear.at = None;
            self.tear.torn = true;
            return Some(mode);
        }
        self.tear.writes = self.tear.writes.saturating_add(1);
        None
    }

    /// Processes one command frame and returns the answer frame; empty when the card tore.
    pub fn process(&mut self, frame: &[u8]) -> Vec<u8> {
        if self.tear.torn {
            return Vec::new();
        }
        let (wrapped, ins, data) = match decode(frame) {
            Ok(parts) => parts,
            Err(iso_status) => return iso_status.to_vec(),
        };
        let out = if data.len() > MAX_FRAME_DATA && ins != 0x8D {
            Err(Status::LengthError)
        } else {
            self.frame(ins, data)
        };
        if self.tear.torn {
            self.deselect();
            return Vec::new();
        }
        let (status, data) = match out {
            Ok(frame) => frame,
            Err(status) => {
                self.session = Session::None;
                self.pending = Pending::None;
                (status, Vec::new())
            }
        };
        if wrapped {
            let mut answer = data;
            answer.extend_from_slice(&[0x91, status.code()]);
            answer
        } else {
            let mut answer = vec![status.code()];
            answer.extend_from_slice(&data);
            answer
        }
    }

    /// One frame: an `AF` continuation, or a new command.
    fn frame(&mut self, ins: u8, data: &[u8]) -> Result<(Status, Vec<u8>), Status> {
        let pending = std::mem::take(&mut self.pending);
        if ins == 0xAF {
            return match pending {
                Pending::Answer(mut frames) => {
                    let frame = frames.pop_front().unwrap_or_default();
                    if frames.is_empty() {
                        Ok((Status::Ok, frame))
                    } else {
                        self.pending = Pending::Answer(frames);
                        Ok((Status::AdditionalFrame, frame))
                    }
                }
                Pending::Auth(challenge) => self
                    .finish_auth(&challenge, data)
                    .map(|out| self.frames(out)),
                Pending::Write {
                    ins,
                    data: mut so_far,
                } => {
                    so_far.extend_from_slice(data);
                    self.write_data(ins, &so_far).map(|out| self.frames(out))
                }
                Pending::None => Err(Status::IllegalCommand),
            };
        }
        if let Pending::Auth(_) = pending {
            // An authentication left half-way: not authenticated.
            self.session = Session::None;
        }
        self.execute(ins, data).map(|out| self.frames(out))
    }

    /// Cuts an answer into frames, keeping the rest for `AF`.
    fn frames(&mut self, out: Out) -> (Status, Vec<u8>) {
        if out.status != Status::Ok {
            return (out.status, out.data);
        }
        let mut frames: VecDeque<Vec<u8>> = match out.split {
            Split::Version if out.data.len() > 14 => {
                let (a, rest) = out.data.split_at(7);
                let (b, c) = rest.split_at(7);
                [a.to_vec(), b.to_vec(), c.to_vec()].into()
            }
            _ => out
                .data
                .chunks(MAX_FRAME_DATA)
                .map(<[u8]>::to_vec)
                .collect(),
        };
        let first = frames.pop_front().unwrap_or_default();
        if frames.is_empty() {
            (Status::Ok, first)
        } else {
            self.pending = Pending::Answer(frames);
            (Status::AdditionalFrame, first)
        }
    }
}

/// AID bytes (wire order) of a number.
pub const fn aid_bytes(aid: u32) -> [u8; 3] {
    let b = aid.to_le_bytes();
    [b[0], b[1], b[2]]
}

/// Splits a frame into (wrapped?, INS, data), or the ISO status word to answer.
fn decode(frame: &[u8]) -> Result<(bool, u8, &[u8]), [u8; 2]> {
    match frame {
        [0x90, ins, p1, p2, rest @ ..] => {
            if (*p1, *p2) != (0, 0) {
                return Err([0x6A, 0x86]);
            }
            match rest {
                [] | [_] => Ok((true, *ins, &[])),
                [lc, body @ ..] => {
                    let lc = usize::from(*lc);
                    match body.len().checked_sub(lc) {
                        Some(0 | 1) => Ok((true, *ins, body.get(..lc).unwrap_or_default())),
                        _ => Err([0x67, 0x00]),
                    }
                }
            }
        }
        [] | [0x90, ..] => Err([0x67, 0x00]),
        // ISO 7816-4 commands of class 00 (ISO SELECT, READ BINARY) are not modelled.
        [0x00, _, _, _, ..] => Err([0x6D, 0x00]),
        [ins, data @ ..] => Ok((false, *ins, data)),
    }
}

#[cfg(test)]
mod tests;
