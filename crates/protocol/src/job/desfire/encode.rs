//! The `DESFire` encode (docs/card-format.md §10.7): create our application when it is
//! missing, set its keys, write the record into the backup file, commit, read back.
//!
//! The write key is the key a re-encode opens the application with, and it is always the last
//! key set: an application whose write key opens with the current version is finished, and any
//! other state (a set-up or a rotation torn half way) is found by that first authentication
//! and finished by the next encode. Order on a new application: authenticated with its zero
//! master key, `CreateBackupDataFile`, `ChangeKey 0` (the session ends); authenticated with the
//! write key (still zero, and allowed to change keys: KS1 `2B`), `ChangeKey 1`, `WriteData`,
//! `CommitTransaction`, `ReadData` (compared), then `ChangeKey 2`. The file changes only at the
//! commit, and only whole: a card taken away anywhere holds the old record or the new, never a
//! record nobody wrote.

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
    if card.select(layout::APP, "select_application")? {
        let written = match open_existing(&mut card, site, &uid, &current)? {
            None => write_record(&mut card, &uid, &current, credential)?,
            Some(state) => finish(&mut card, &uid, &current, state, credential)?,
        };
        Ok(EncodeOutcome {
            uid,
            card_type: card.kind,
            written,
            first_encode: false,
            apdu_count: card.apdus(),
        })
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
        let state = InPlace {
            master: Some(ZERO_KEY),
            read: Some(ZERO_KEY),
            write: Some(ZERO_KEY),
            file: false,
        };
        let written = finish(&mut card, &uid, &current, state, credential)?;
        Ok(EncodeOutcome {
            uid,
            card_type: card.kind,
            written,
            first_encode: true,
            apdu_count: card.apdus(),
        })
    }
}

/// What an unfinished application has: each key's bytes (`None`: already the target
/// version's) and whether the file exists.
#[derive(Clone, Copy)]
struct InPlace {
    master: Option<[u8; 16]>,
    read: Option<[u8; 16]>,
    write: Option<[u8; 16]>,
    file: bool,
}

/// Our application is there: opens it with the write key of the current version (a re-encode:
/// `Ok(None)`, the session is open). Otherwise it is unfinished (a set-up or rotation torn half
/// way) or of an older version: opened with a site version's master key, or the zero key of a
/// set-up torn before its first `ChangeKey`, it tells what it has (`GetFileIDs`,
/// `GetKeyVersion`), for [`finish`].
fn open_existing<T: Transmit + ?Sized>(
    card: &mut Card<'_, '_, T>,
    site: &SiteKeys,
    uid: &[u8],
    current: &DesfireKeys,
) -> Result<Option<InPlace>, JobError> {
    let step = "authenticate_write";
    let write = current.app_key(layout::KEY_WRITE).unwrap_or(ZERO_KEY);
    if card.auth(layout::KEY_WRITE, &write, step)? == Auth::Ok {
        return Ok(None);
    }
    let master = match open_with(card, site, uid, layout::KEY_MASTER, "authenticate_master")? {
        Some(keys) => keys.app_key(layout::KEY_MASTER),
        None if card.auth(layout::KEY_MASTER, &ZERO_KEY, "authenticate_new")? == Auth::Ok => {
            Some(ZERO_KEY)
        }
        None => {
            return Err(card.incompatible(
                Incompatibility::ApplicationKeyUnknown,
                step,
                "no site key version opens our application",
            ));
        }
    };
    let file = card
        .ch()
        .file_ids()
        .map_err(|e| card.error(e, "get_file_ids"))?
        .contains(&layout::FILE_NO);
    let master_version = card
        .ch()
        .key_version(layout::KEY_MASTER)
        .map_err(|e| card.error(e, "get_key_version"))?;
    Ok(Some(InPlace {
        master: (master_version != current.version()).then_some(master.unwrap_or(ZERO_KEY)),
        read: key_in_place(card, site, uid, layout::KEY_READ, current.version())?,
        write: key_in_place(card, site, uid, layout::KEY_WRITE, current.version())?,
        file,
    }))
}

/// Finishes an application whose master key session is open and whose state is `state`, to
/// the keys `to`, and writes the record (§10.7): the file if missing; the master key (its
/// `ChangeKey` ends the session); the write key's session (with the key it has), the read key,
/// the record (written, committed, read back), and the write key last.
fn finish<T: Transmit + ?Sized>(
    card: &mut Card<'_, '_, T>,
    uid: &[u8],
    to: &DesfireKeys,
    state: InPlace,
    credential: &Credential,
) -> Result<format::CardCredential, JobError> {
    card.writing("set_up_application")?;
    if !state.file {
        create_file(card)?;
    }
    if state.master.is_some() {
        change(card, layout::KEY_MASTER, to, None)?;
    }
    let write_now = state
        .write
        .or_else(|| to.app_key(layout::KEY_WRITE))
        .unwrap_or(ZERO_KEY);
    if card.auth(layout::KEY_WRITE, &write_now, "authenticate_write")? != Auth::Ok {
        return Err(card.fail(
            Uncategorized::ReadBackMismatch,
            "authenticate_write",
            "the write key is not the one GetKeyVersion named",
        ));
    }
    if let Some(old) = state.read {
        change(card, layout::KEY_READ, to, Some(&old))?;
    }
    let written = write_record(card, uid, to, credential)?;
    if state.write.is_some() {
        change(card, layout::KEY_WRITE, to, None)?;
    }
    Ok(written)
}

fn create_file<T: Transmit + ?Sized>(card: &mut Card<'_, '_, T>) -> Result<(), JobError> {
    match card.ch().create_backup_data_file(
        layout::FILE_NO,
        layout::FILE_COMM,
        layout::FILE_RIGHTS,
        layout::FILE_SIZE,
    ) {
        Ok(()) => Ok(()),
        Err(DesfireError::Card {
            status: Status::OutOfEeprom,
            ..
        }) => Err(card.incompatible(
            Incompatibility::NoRoomDesfire,
            "create_file",
            "out of memory",
        )),
        Err(e) => Err(card.error(e, "create_file")),
    }
}

/// The key application key `key_no` has, for a `ChangeKey` to version `to`: `None` when it
/// is `to`'s already, the zero key for version 0 (a new application's), else that site
/// version's; a version the site does not hold is `application_key_unknown`.
fn key_in_place<T: Transmit + ?Sized>(
    card: &mut Card<'_, '_, T>,
    site: &SiteKeys,
    uid: &[u8],
    key_no: u8,
    to: u8,
) -> Result<Option<[u8; 16]>, JobError> {
    let version = card
        .ch()
        .key_version(key_no)
        .map_err(|e| card.error(e, "get_key_version"))?;
    if version == to {
        return Ok(None);
    }
    if version == 0 {
        return Ok(Some(ZERO_KEY));
    }
    if site.get(version).is_none() {
        return Err(card.incompatible(
            Incompatibility::ApplicationKeyUnknown,
            "get_key_version",
            format!("key {key_no} of version {version}, which this site does not hold"),
        ));
    }
    Ok(keys_for(card, site, version, uid)?.app_key(key_no))
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
