//! The `DESFire` jobs (docs/card-format.md §10): encode and scan our application, as APDU
//! sequences over [`Transmit`], with the same outcomes and error types as the Classic jobs.
//!
//! Budget at the card's own APDU log, EV2 card, leave-as-found PICC policy (measured by
//! `cargo bench -p encoder-tests --bench apdu_budget`): encode on a blank card 16
//! (`SelectApplication` miss, `CreateApplication`, `SelectApplication`, `AuthenticateEV2First`
//! with the new application's zero master key (2), `CreateBackupDataFile`, `ChangeKey 0`,
//! `AuthenticateEV2First` with the zero write key (2), `ChangeKey 1`, `WriteData` (2 frames),
//! `CommitTransaction`, `ReadData` (2 frames), `ChangeKey 2`); re-encode 8 (select, authenticate (2), write (2), commit, read (2));
//! scan 5 (select, authenticate (2), read (2)). An EV1 card answers `AuthenticateEV2First` with
//! `1C` once per job and is then authenticated with `AuthenticateAES` (one more APDU).
//!
//! Randomness (`RndA`) comes from the caller: this crate owns no RNG.

mod encode;
mod scan;

pub use encode::{DesfireOptions, PiccPolicy, encode};
pub use scan::scan;

use crate::card::{CardInfo, CardType};
use crate::desfire::channel::{Channel, DesfireError};
use crate::desfire::command::Aid;
use crate::desfire::frame::FrameError;
use crate::desfire::status::Status;
use crate::error::{Detail, Incompatibility, JobError, Uncategorized};
use crate::format::desfire as layout;
use crate::keys::{DesfireKeys, SiteKeys};
use crate::transmit::Transmit;

use super::session::transmit_job_error;

/// A source of 16 random bytes (`RndA` of each authentication).
pub type Nonces<'a> = &'a mut dyn FnMut() -> [u8; 16];

/// The AES key of a new application (and of a factory EV1+ card's keys): all zero.
const ZERO_KEY: [u8; 16] = [0; 16];

/// One `DESFire` job's channel and bookkeeping.
pub(crate) struct Card<'t, 'n, T: Transmit + ?Sized> {
    ch: Channel<'t, T>,
    nonces: Nonces<'n>,
    /// A modifying command has been sent: a lost card is now `encoding_interrupted`.
    wrote: bool,
    /// The card answered `AuthenticateEV2First` with `1C`: an EV1, use `AuthenticateAES`.
    ev1: bool,
    pub(crate) kind: CardType,
}

/// How an authentication ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    /// The key is right; a session is open.
    Ok,
    /// The card refused the key (or has no such key).
    Refused,
}

impl<'t, 'n, T: Transmit + ?Sized> Card<'t, 'n, T> {
    pub(crate) fn new(tx: &'t mut T, info: &CardInfo, nonces: Nonces<'n>) -> Self {
        Self {
            ch: Channel::new(tx),
            nonces,
            wrote: false,
            ev1: false,
            kind: info.card_type(),
        }
    }

    pub(crate) fn apdus(&self) -> usize {
        self.ch.apdus()
    }

    fn detail(&self, step: &'static str, note: String) -> Detail {
        Detail {
            step,
            block: None,
            status: None,
            apdus: self.ch.apdus(),
            note,
        }
    }

    pub(crate) fn fail(
        &self,
        code: Uncategorized,
        step: &'static str,
        note: impl Into<String>,
    ) -> JobError {
        JobError::Uncategorized {
            code,
            detail: self.detail(step, note.into()),
        }
    }

    pub(crate) fn incompatible(
        &self,
        reason: Incompatibility,
        step: &'static str,
        note: impl Into<String>,
    ) -> JobError {
        JobError::Incompatible {
            reason,
            detail: self.detail(step, note.into()),
        }
    }

    /// Maps a channel error to the cloud's error types. The first answer that is not a
    /// `DESFire` answer means the card is not one.
    pub(crate) fn error(&self, e: DesfireError, step: &'static str) -> JobError {
        match e {
            DesfireError::Transmit(t) => {
                transmit_job_error(&t, self.wrote, self.detail(step, String::new()))
            }
            DesfireError::Frame(FrameError::NotDesfire(..)) if self.ch.apdus() <= 1 => {
                self.incompatible(Incompatibility::NotDesfire, step, e.to_string())
            }
            DesfireError::Card { .. } => {
                self.fail(Uncategorized::CommandRejected, step, e.to_string())
            }
            other => self.fail(Uncategorized::UnexpectedResponse, step, other.to_string()),
        }
    }

    /// Tells the transport, once per job, that the first command that changes the card comes
    /// next; from then on a lost card is `encoding_interrupted`. A refusal leaves the card
    /// untouched.
    pub(crate) fn writing(&mut self, step: &'static str) -> Result<(), JobError> {
        if !self.wrote {
            self.ch
                .before_first_write()
                .map_err(|e| transmit_job_error(&e, false, self.detail(step, String::new())))?;
            self.wrote = true;
        }
        Ok(())
    }

    /// `SelectApplication`: `Ok(false)` when the card has no such application.
    pub(crate) fn select(&mut self, aid: Aid, step: &'static str) -> Result<bool, JobError> {
        match self.ch.select_application(aid) {
            Ok(()) => Ok(true),
            Err(DesfireError::Card {
                status: Status::ApplicationNotFound,
                ..
            }) => Ok(false),
            Err(e) => Err(self.error(e, step)),
        }
    }

    /// Authenticates with AES key `key_no`: `AuthenticateEV2First`, or `AuthenticateAES` on an
    /// EV1 (learned from its `1C` to the first). A card that knows neither is an EV0.
    pub(crate) fn auth(
        &mut self,
        key_no: u8,
        key: &[u8; 16],
        step: &'static str,
    ) -> Result<Auth, JobError> {
        if !self.ev1 {
            let rnd_a = (self.nonces)();
            match self.ch.authenticate_ev2_first(key, key_no, rnd_a) {
                Ok(()) => return Ok(Auth::Ok),
                Err(DesfireError::Card {
                    status: Status::IllegalCommand,
                    ..
                }) => self.ev1 = true,
                Err(e) => return self.refused_or(e, step),
            }
        }
        let rnd_a = (self.nonces)();
        match self.ch.authenticate_aes(key, key_no, rnd_a) {
            Ok(()) => Ok(Auth::Ok),
            Err(DesfireError::Card {
                status: Status::IllegalCommand,
                ..
            }) => Err(self.incompatible(
                Incompatibility::Ev0NotSupported,
                step,
                "no AES authentication",
            )),
            Err(e) => self.refused_or(e, step),
        }
    }

    fn refused_or(&self, e: DesfireError, step: &'static str) -> Result<Auth, JobError> {
        match e {
            DesfireError::Card {
                status:
                    Status::AuthenticationError
                    | Status::NoSuchKey
                    | Status::PermissionDenied
                    | Status::IntegrityError
                    | Status::ParameterError,
                ..
            }
            | DesfireError::Secure(_) => Ok(Auth::Refused),
            other => Err(self.error(other, step)),
        }
    }

    /// After an answer that may come from an EV0 (a parameter error to AES key settings):
    /// `GetVersion` tells; an EV0 is `ev0_not_supported`, anything else `command_rejected`.
    pub(crate) fn ev0_or(&mut self, e: DesfireError, step: &'static str) -> JobError {
        match self.ch.version() {
            Ok(v) if v.generation == crate::desfire::version::Generation::Ev0 => {
                self.incompatible(Incompatibility::Ev0NotSupported, step, e.to_string())
            }
            _ => self.error(e, step),
        }
    }

    /// The channel, for commands.
    pub(crate) fn ch(&mut self) -> &mut Channel<'t, T> {
        &mut self.ch
    }
}

/// The UID the keys are diversified from: the one the hal read (7 or 10 bytes, or 4 of a
/// fixed single-size UID). A random ID (4 bytes, `08 …`, docs/reference/desfire.md §9) changes
/// at every activation: keys diversified from it would lock our application for ever, so such a
/// card is refused (`uid_unavailable`) before anything is sent (docs/card-format.md §10.9).
pub(crate) fn uid_of<T: Transmit + ?Sized>(
    card: &Card<'_, '_, T>,
    info: &CardInfo,
) -> Result<Vec<u8>, JobError> {
    if info.uid.len() == 4 && info.uid.first() == Some(&0x08) {
        Err(card.fail(
            Uncategorized::UidUnavailable,
            "get_uid",
            "a random-ID card: its UID changes at every activation",
        ))
    } else if crate::keys::UID_LENGTHS.contains(&info.uid.len()) {
        Ok(info.uid.clone())
    } else {
        Err(card.fail(
            Uncategorized::UidUnavailable,
            "get_uid",
            format!("UID of {} bytes", info.uid.len()),
        ))
    }
}

pub(crate) fn keys_for<T: Transmit + ?Sized>(
    card: &Card<'_, '_, T>,
    site: &SiteKeys,
    version: u8,
    uid: &[u8],
) -> Result<DesfireKeys, JobError> {
    site.desfire_keys(version, uid, layout::APP.to_bytes())
        .map_err(|e| card.fail(Uncategorized::KeyError, "derive_keys", e.to_string()))
}

/// Opens our (selected) application with the key `key_no` of the first site version that the
/// card accepts, current first: the keys of that version, or `None`.
pub(crate) fn open_with<T: Transmit + ?Sized>(
    card: &mut Card<'_, '_, T>,
    site: &SiteKeys,
    uid: &[u8],
    key_no: u8,
    step: &'static str,
) -> Result<Option<DesfireKeys>, JobError> {
    for version in site.versions() {
        let keys = keys_for(card, site, version, uid)?;
        let key = keys.app_key(key_no).unwrap_or(ZERO_KEY);
        if card.auth(key_no, &key, step)? == Auth::Ok {
            return Ok(Some(keys));
        }
    }
    Ok(None)
}

/// The record bytes read from our file, decoded: `Ok(None)` for a file never written (all
/// zero: an encode torn before its first commit).
pub(crate) fn decode<T: Transmit + ?Sized>(
    card: &Card<'_, '_, T>,
    bytes: &[u8],
    uid: &[u8],
    keys: &DesfireKeys,
) -> Result<Option<crate::format::CardCredential>, JobError> {
    if bytes.iter().all(|b| *b == 0) {
        return Ok(None);
    }
    match crate::format::decode_record(bytes, uid, keys.record_keys()) {
        Ok(c) => Ok(Some(c)),
        Err(crate::format::FormatError::UnknownVersion(_)) => Err(card.incompatible(
            Incompatibility::UnknownFormat,
            "verify_record",
            String::new(),
        )),
        Err(e) => Err(card.fail(
            Uncategorized::CardPayloadCorrupt,
            "verify_record",
            e.to_string(),
        )),
    }
}

#[cfg(test)]
mod tests;
