//! The scan job: identify, read the MAD, read our slots, verify, decode.

use super::probe::{self, Layout, Sector0, SectorKeys};
use super::session::Session;
use crate::card::{CardInfo, CardType};
use crate::error::{Incompatibility, JobError, Uncategorized};
use crate::format::{self, CardCredential, FormatError, Selection, SlotContent};
use crate::keys::SiteKeys;
use crate::mifare::geometry::Geometry;
use crate::transmit::Transmit;

/// What a scan found on the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CardState {
    /// A valid credential of ours.
    Ours,
    /// Formatted for us (MAD entry, our keys) but no credential written yet.
    OursEmpty,
    /// Factory-fresh: no MAD.
    Blank,
    /// Other applications, or keys we do not hold: nothing of ours.
    Foreign,
    /// Not a MIFARE Classic card.
    Unsupported,
}

impl CardState {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ours => "ours",
            Self::OursEmpty => "ours_empty",
            Self::Blank => "blank",
            Self::Foreign => "foreign",
            Self::Unsupported => "unsupported",
        }
    }
}

/// The result of a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOutcome {
    /// The card's UID.
    pub uid: Vec<u8>,
    /// The card type (from the ATR).
    pub card_type: CardType,
    /// Our credential, when the card holds a valid one.
    pub credential: Option<CardCredential>,
    /// What the card holds.
    pub state: CardState,
    /// APDUs sent.
    pub apdu_count: usize,
}

/// Scans the card: its UID and type, and our credential if it holds a valid one.
///
/// "No credential of ours" (blank, foreign, other site's, or not MIFARE Classic) is a
/// successful scan with `credential: None`. A card that holds our application but whose
/// records all fail verification (torn, tampered) is `uncategorized_error/card_payload_corrupt`.
#[allow(clippy::too_many_lines)] // one linear sequence of steps reads best in one place
pub fn scan<T: Transmit + ?Sized>(
    tx: &mut T,
    info: &CardInfo,
    site: &SiteKeys,
) -> Result<ScanOutcome, JobError> {
    let card_type = info.card_type();
    let mut s = Session::new(tx, card_type);
    let uid = s.uid(info)?;
    let done = |s: &Session<'_, T>, state, credential| ScanOutcome {
        uid: uid.clone(),
        card_type,
        credential,
        state,
        apdu_count: s.apdus,
    };
    // An ATR that names a non-Classic card: do not touch it further.
    if info.is_identified() && !card_type.is_mifare_classic() {
        return Ok(done(&s, CardState::Unsupported, None));
    }
    let geometry = card_type.geometry().unwrap_or(Geometry::CLASSIC_1K);
    let sector0 = probe::open_sector0(&mut s, site, &uid)?;
    let mad = probe::read_mad(&mut s, &sector0)?;
    let Some(mad) = mad else {
        let state = if matches!(sector0, Sector0::Factory(_)) {
            CardState::Blank
        } else {
            CardState::Foreign
        };
        return Ok(done(&s, state, None));
    };
    let ours: Vec<u8> = mad
        .sectors_of(format::APP_AID)
        .into_iter()
        .filter(|sector| geometry.has_sector(*sector))
        .collect();
    if ours.is_empty() {
        let state = if mad.in_use() {
            CardState::Foreign
        } else {
            CardState::Blank
        };
        return Ok(done(&s, state, None));
    }
    let Some(layout) = Layout::new(ours) else {
        return Err(s.fail(
            Uncategorized::LayoutCorrupt,
            "read_directory",
            Some(1),
            "not 2 or 4 sectors registered",
        ));
    };
    let preferred = match &sector0 {
        Sector0::Ours(keys) => keys.clone(),
        _ => probe::keys_for(&s, site, site.current_version(), &uid)?,
    };
    let mut heads = Vec::with_capacity(2);
    for slot in 0..2 {
        let head = probe::read_slot_head(&mut s, &layout, slot, site, &uid, &preferred)?;
        heads.push(head);
    }
    if heads.iter().all(|h| matches!(h.keys, SectorKeys::Locked)) {
        // Our application id with keys we do not hold: another site's card.
        return Ok(done(&s, CardState::Foreign, None));
    }
    // Candidates in the total order of docs/card-format.md §5.5; the first that verifies is
    // the card's credential.
    let parsed: Vec<(usize, u8)> = heads
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.header.as_ref().ok().map(|h| (i, h.sequence)))
        .collect();
    let mut contents: Vec<SlotContent> = heads
        .iter()
        .map(|h| SlotContent::of(&h.header, |h| h.sequence))
        .collect();
    for slot in format::candidate_order(&parsed) {
        let Some(head) = heads.get(slot) else {
            continue;
        };
        let (SectorKeys::Ours(keys), Some(block), Ok(header)) =
            (&head.keys, &head.block, &head.header)
        else {
            continue;
        };
        let verdict =
            match probe::read_record(&mut s, &layout, slot, keys, header, block, &head.prefetched)?
            {
                Some(bytes) => format::decode_record(&bytes, &uid, keys),
                None => Err(FormatError::BadLength),
            };
        match verdict {
            Ok(credential) => return Ok(done(&s, CardState::Ours, Some(credential))),
            Err(e) => {
                if let Some(c) = contents.get_mut(slot) {
                    *c = SlotContent::Damaged(e);
                }
            }
        }
    }
    match format::select(&contents) {
        Selection::Damaged | Selection::Record(_) => Err(s.fail(
            Uncategorized::CardPayloadCorrupt,
            "verify_record",
            None,
            "no slot holds a valid record",
        )),
        Selection::UnknownFormat => {
            Err(s.incompatible(Incompatibility::UnknownFormat, "verify_record", None))
        }
        Selection::NoRecord => Ok(done(&s, CardState::OursEmpty, None)),
    }
}
