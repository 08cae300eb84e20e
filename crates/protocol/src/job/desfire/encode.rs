//! The `DESFire` encode (docs/card-format.md §10.7): create our application when it is missing,
//! set its keys, write the record into the backup file, commit, read back.
//!
//! Order on a card without our application: (the PICC master key, if the site takes cards
//! over), `CreateApplication`, then in the new application with its zero master key
//! `CreateBackupDataFile`, `ChangeKey` read, write, then master (last: while the master key is
//! still zero the application is recognisably unfinished and the next encode finishes it), then
//! the write key, `WriteData`, `CommitTransaction`, `ReadData`. A card taken away anywhere reads
//! afterwards as the old record or as no record, never a record nobody wrote: the file changes
//! only at the commit, and only whole.

use super::{Auth, Card, Nonces, ZERO_KEY, decode, keys_for, open_with, uid_of};
use crate::card::CardInfo;
use crate::desfire::channel::DesfireError;
use crate::desfire::command::Aid;
use crate::desfire::status::Status;
use crate::error::{Incompatibility, JobError, Uncategorized};
use crate::format::desfire as layout;
use crate::format::{self, Credential, FormatError};
use crate::job::EncodeOutcome;
use crate::keys::{DesfireKeys, SiteKeys};
use crate::transmit::Transmit;

/// What an encode may do to the card's PICC master key (docs/card-format.md §10.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PiccPolicy {
    /// Never change it (the default): a card whose key settings let anyone create applications
    /// needs no PICC key at all.
    #[default]
    LeaveAsFound,
    /// On a card with the factory DES key, set the site's diversified AES PICC master key.
    TakeOwnership,
}

/// Site options of the `DESFire` encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DesfireOptions {
    /// The PICC master key policy.
    pub picc: PiccPolicy,
}

/// The factory PICC master key: all-zero DES.
const FACTORY_DES: [u8; 8] = [0; 8];

/// Encodes `credential` onto a `DESFire` card. See the module docs.
pub fn encode<T: Transmit + ?Sized>(
    tx: &mut T,
    info: &CardInfo,
    site: &SiteKeys,
    credential: &Credential,
    options: DesfireOptions,
    nonces: Nonces<'_>,
) -> Result<EncodeOutcome, JobError> {
    let mut card = Card::new(tx, info, nonces);
    let len = format::body_len(credential)
        .map_err(|e| card.fail(Uncategorized::InvalidCredential, "validate", e.to_string()))?;
    if len > layout::RECORD_CAPACITY {
        return Err(card.fail(
            Uncategorized::InvalidCredential,
            "validate",
            FormatError::TooLarge {
                len,
                capacity: layout::RECORD_CAPACITY,
            }
            .to_string(),
        ));
    }
    let uid = uid_of(&card, info)?;
    let current = keys_for(&card, site, site.current_version(), &uid)?;
    let first_encode = if card.select(layout::APP, "select_application")? {
        open_existing(&mut card, site, &uid, &current)?;
        false
    } else {
        create(&mut card, site, &uid, &current, options)?;
        if !card.select(layout::APP, "select_application")? {
            return Err(card.fail(
                Uncategorized::ReadBackMismatch,
                "select_application",
                "the application just created is not there",
            ));
        }
        if card.auth(layout::KEY_MASTER, &ZERO_KEY, "authenticate_new")? != Auth::Ok {
            return Err(card.incompatible(
                Incompatibility::ApplicationKeyUnknown,
                "authenticate_new",
                "a new application refused its zero master key",
            ));
        }
        set_up(&mut card, &current, true)?;
        authenticate_write(&mut card, &current)?;
        true
    };
    let written = write_record(&mut card, &uid, &current, credential)?;
    Ok(EncodeOutcome {
        uid,
        card_type: card.kind,
        written,
        first_encode,
        apdu_count: card.apdus(),
    })
}

fn authenticate_write<T: Transmit + ?Sized>(
    card: &mut Card<'_, '_, T>,
    keys: &DesfireKeys,
) -> Result<(), JobError> {
    let key = keys.app_key(layout::KEY_WRITE).unwrap_or(ZERO_KEY);
    if card.auth(layout::KEY_WRITE, &key, "authenticate_write")? == Auth::Ok {
        Ok(())
    } else {
        Err(card.fail(
            Uncategorized::ReadBackMismatch,
            "authenticate_write",
            "the write key just set is refused",
        ))
    }
}

/// Our application is there: open it with the write key of the current version; one of an
/// older version is rotated to the current (§10.8); an application whose master key is still
/// zero was torn while being set up and is finished.
fn open_existing<T: Transmit + ?Sized>(
    card: &mut Card<'_, '_, T>,
    site: &SiteKeys,
    uid: &[u8],
    current: &DesfireKeys,
) -> Result<(), JobError> {
    let step = "authenticate_write";
    let write = current.app_key(layout::KEY_WRITE).unwrap_or(ZERO_KEY);
    if card.auth(layout::KEY_WRITE, &write, step)? == Auth::Ok {
        return Ok(());
    }
    if let Some(master) = open_with(card, site, uid, layout::KEY_MASTER, "authenticate_master")? {
        rotate(card, site, uid, &master, current)?;
        return authenticate_write(card, current);
    }
    if card.auth(layout::KEY_MASTER, &ZERO_KEY, "authenticate_new")? == Auth::Ok {
        set_up(card, current, false)?;
        return authenticate_write(card, current);
    }
    Err(card.incompatible(
        Incompatibility::ApplicationKeyUnknown,
        step,
        "no site key version opens our application",
    ))
}

/// The version of application key `key_no` and the key it has: zero for version 0, else that
/// site version's (`None` when the site has no such version).
fn key_in_place<T: Transmit + ?Sized>(
    card: &mut Card<'_, '_, T>,
    site: &SiteKeys,
    uid: &[u8],
    key_no: u8,
) -> Result<Option<[u8; 16]>, JobError> {
    let version = card
        .ch()
        .key_version(key_no)
        .map_err(|e| card.error(e, "get_key_version"))?;
    if version == 0 {
        return Ok(Some(ZERO_KEY));
    }
    if site.get(version).is_none() {
        return Ok(None);
    }
    Ok(keys_for(card, site, version, uid)?.app_key(key_no))
}

/// Rotates the application's keys from the version that opened its master key (`from`, the
/// session is open with it) to `to`: read and write keys first (each from the version it has,
/// so a rotation torn half way resumes), the master key last.
fn rotate<T: Transmit + ?Sized>(
    card: &mut Card<'_, '_, T>,
    site: &SiteKeys,
    uid: &[u8],
    from: &DesfireKeys,
    to: &DesfireKeys,
) -> Result<(), JobError> {
    card.writing("rotate_keys")?;
    for key_no in [layout::KEY_READ, layout::KEY_WRITE] {
        let Some(old) = key_in_place(card, site, uid, key_no)? else {
            return Err(card.incompatible(
                Incompatibility::ApplicationKeyUnknown,
                "rotate_keys",
                format!("key {key_no} of a version this site does not hold"),
            ));
        };
        change(card, key_no, to, Some(&old))?;
    }
    if from.version() != to.version() {
        change(card, layout::KEY_MASTER, to, None)?;
    }
    Ok(())
}

fn change<T: Transmit + ?Sized>(
    card: &mut Card<'_, '_, T>,
    key_no: u8,
    to: &DesfireKeys,
    old: Option<&[u8; 16]>,
) -> Result<(), JobError> {
    let new = to.app_key(key_no).unwrap_or(ZERO_KEY);
    card.ch()
        .change_key(key_no, &new, to.version(), old)
        .map_err(|e| card.error(e, "change_key"))
}

/// Sets up our application, authenticated with its zero master key: the file, then the read
/// and write keys, then the master key. `fresh`: just created (nothing to look at); otherwise a
/// set-up torn earlier is finished from where it stopped.
fn set_up<T: Transmit + ?Sized>(
    card: &mut Card<'_, '_, T>,
    keys: &DesfireKeys,
    fresh: bool,
) -> Result<(), JobError> {
    card.writing("create_file")?;
    let has_file = !fresh
        && card
            .ch()
            .file_ids()
            .map_err(|e| card.error(e, "get_file_ids"))?
            .contains(&layout::FILE_NO);
    if !has_file {
        match card.ch().create_backup_data_file(
            layout::FILE_NO,
            layout::FILE_COMM,
            layout::FILE_RIGHTS,
            layout::FILE_SIZE,
        ) {
            Ok(()) => {}
            Err(DesfireError::Card {
                status: Status::OutOfEeprom,
                ..
            }) => {
                return Err(card.incompatible(
                    Incompatibility::NoRoomDesfire,
                    "create_file",
                    "out of memory",
                ));
            }
            Err(e) => return Err(card.error(e, "create_file")),
        }
    }
    for key_no in [layout::KEY_READ, layout::KEY_WRITE] {
        let done = !fresh
            && card
                .ch()
                .key_version(key_no)
                .map_err(|e| card.error(e, "get_key_version"))?
                == keys.version();
        if !done {
            change(card, key_no, keys, Some(&ZERO_KEY))?;
        }
    }
    change(card, layout::KEY_MASTER, keys, None)
}

/// Creates our application at the PICC level (where the card is after a missed
/// `SelectApplication`), taking the PICC master key over first when the policy says so.
fn create<T: Transmit + ?Sized>(
    card: &mut Card<'_, '_, T>,
    site: &SiteKeys,
    uid: &[u8],
    keys: &DesfireKeys,
    options: DesfireOptions,
) -> Result<(), JobError> {
    let step = "create_application";
    if options.picc == PiccPolicy::TakeOwnership {
        take_ownership(card, keys)?;
    }
    card.writing(step)?;
    match try_create(card) {
        Ok(()) => return Ok(()),
        Err(DesfireError::Card {
            status: Status::AuthenticationError | Status::PermissionDenied,
            ..
        }) => {}
        Err(e) => return Err(create_error(card, e)),
    }
    // The PICC wants its master key for this: ours (a card we took over), else the factory key.
    if !card.select(Aid::PICC, step)? {
        return Err(card.fail(Uncategorized::CommandRejected, step, "no PICC level"));
    }
    let mut opened = open_picc(card, site, uid)?;
    if !opened {
        let rnd: [u8; 16] = (card.nonces)();
        let mut rnd_a = [0u8; 8];
        rnd_a.copy_from_slice(rnd.get(..8).unwrap_or(&[0; 8]));
        opened = card
            .ch()
            .authenticate_legacy(&FACTORY_DES, 0, rnd_a)
            .is_ok();
    }
    if !opened {
        return Err(card.incompatible(
            Incompatibility::PiccKeyUnknown,
            step,
            "creating applications needs a PICC master key this site cannot derive",
        ));
    }
    try_create(card).map_err(|e| create_error(card, e))
}

fn open_picc<T: Transmit + ?Sized>(
    card: &mut Card<'_, '_, T>,
    site: &SiteKeys,
    uid: &[u8],
) -> Result<bool, JobError> {
    for version in site.versions() {
        let keys = keys_for(card, site, version, uid)?;
        if card.auth(0, &keys.picc_key(), "authenticate_picc")? == Auth::Ok {
            return Ok(true);
        }
    }
    Ok(false)
}

fn try_create<T: Transmit + ?Sized>(card: &mut Card<'_, '_, T>) -> Result<(), DesfireError> {
    card.ch()
        .create_application(layout::APP, layout::APP_SETTINGS, layout::APP_KEYS)
}

fn create_error<T: Transmit + ?Sized>(card: &mut Card<'_, '_, T>, e: DesfireError) -> JobError {
    let step = "create_application";
    match e {
        DesfireError::Card {
            status: Status::OutOfEeprom | Status::CountError,
            ..
        } => card.incompatible(Incompatibility::NoRoomDesfire, step, e.to_string()),
        DesfireError::Card {
            status: Status::ParameterError | Status::IllegalCommand,
            ..
        } => card.ev0_or(e, step),
        DesfireError::Card {
            status: Status::AuthenticationError | Status::PermissionDenied,
            ..
        } => card.incompatible(Incompatibility::PiccKeyUnknown, step, e.to_string()),
        other => card.error(other, step),
    }
}

/// A card with the factory PICC master key gets the site's diversified AES key (version =
/// the site's); any other card is left as it is.
fn take_ownership<T: Transmit + ?Sized>(
    card: &mut Card<'_, '_, T>,
    keys: &DesfireKeys,
) -> Result<(), JobError> {
    let step = "take_picc";
    let rnd: [u8; 16] = (card.nonces)();
    let mut rnd_a = [0u8; 8];
    rnd_a.copy_from_slice(rnd.get(..8).unwrap_or(&[0; 8]));
    match card.ch().authenticate_legacy(&FACTORY_DES, 0, rnd_a) {
        Ok(()) => {}
        Err(DesfireError::Transmit(t)) => return Err(card.error(DesfireError::Transmit(t), step)),
        Err(_) => return Ok(()),
    }
    card.writing(step)?;
    card.ch()
        .change_key(0x80, &keys.picc_key(), keys.version(), None)
        .map_err(|e| card.error(e, step))
}

/// Writes the record, commits, reads it back and checks it (§10.7).
fn write_record<T: Transmit + ?Sized>(
    card: &mut Card<'_, '_, T>,
    uid: &[u8],
    keys: &DesfireKeys,
    credential: &Credential,
) -> Result<format::CardCredential, JobError> {
    let blocks = format::encode_record(
        credential,
        keys.record_keys(),
        layout::SEQUENCE,
        uid,
        layout::RECORD_CAPACITY,
    )
    .map_err(|e| {
        card.fail(
            Uncategorized::InvalidCredential,
            "encode_record",
            e.to_string(),
        )
    })?;
    let bytes = blocks.concat();
    card.writing("write_record")?;
    card.ch()
        .write_data(layout::FILE_NO, 0, &bytes, layout::FILE_COMM)
        .map_err(|e| card.error(e, "write_record"))?;
    card.ch().commit().map_err(|e| card.error(e, "commit"))?;
    let len = u32::try_from(bytes.len()).unwrap_or(layout::FILE_SIZE);
    let back = card
        .ch()
        .read_data(layout::FILE_NO, 0, len, layout::FILE_COMM)
        .map_err(|e| card.error(e, "verify_record"))?;
    if back != bytes {
        return Err(card.fail(
            Uncategorized::ReadBackMismatch,
            "verify_record",
            "the record read back differs",
        ));
    }
    match decode(card, &back, uid, keys)? {
        Some(written) => Ok(written),
        None => Err(card.fail(
            Uncategorized::ReadBackMismatch,
            "verify_record",
            "the record read back is empty",
        )),
    }
}
