//! The `DESFire` scan (docs/card-format.md §10.9): select our application, authenticate with the
//! read key, read the file, verify the record. No application of ours is a successful scan
//! without a credential.

use super::{Card, Nonces, decode, open_with, uid_of};
use crate::card::CardInfo;
use crate::error::JobError;
use crate::format::desfire as layout;
use crate::job::{CardState, ScanOutcome};
use crate::keys::SiteKeys;
use crate::transmit::Transmit;

/// Scans a `DESFire` card for our credential.
pub fn scan<T: Transmit + ?Sized>(
    tx: &mut T,
    info: &CardInfo,
    site: &SiteKeys,
    nonces: Nonces<'_>,
) -> Result<ScanOutcome, JobError> {
    let mut card = Card::new(tx, info, nonces);
    let uid = uid_of(&card, info)?;
    let done = |card: &Card<'_, '_, T>, state, credential| ScanOutcome {
        uid: uid.clone(),
        card_type: card.kind,
        credential,
        state,
        apdu_count: card.apdus(),
    };
    if !card.select(layout::APP, "select_application")? {
        return Ok(done(&card, CardState::Blank, None));
    }
    let Some(keys) = open_with(&mut card, site, &uid, layout::KEY_READ, "authenticate_read")?
    else {
        // Our application id with keys this site cannot derive (another site's card, or one
        // whose set-up was torn before its keys were set): nothing of ours to read.
        return Ok(done(&card, CardState::Foreign, None));
    };
    let bytes = card
        .ch()
        .read_data(layout::FILE_NO, 0, layout::FILE_SIZE, layout::FILE_COMM)
        .map_err(|e| card.error(e, "read_record"))?;
    match decode(&card, &bytes, &uid, &keys)? {
        Some(credential) => Ok(done(&card, CardState::Ours, Some(credential))),
        None => Ok(done(&card, CardState::OursEmpty, None)),
    }
}
