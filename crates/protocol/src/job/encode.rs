//! The encode job: format a blank card, re-encode our own card, or add our application to a
//! card with other applications; always read back before reporting success.
//!
//! Write order (docs/card-format.md §6): on a first encode, the trailers of the sectors we
//! claim, then the MAD (data blocks, then - only on a blank sector 0 - its trailer), then the
//! record; on a re-encode, only the record blocks that change in the slot that does not hold
//! the newest record. Trailers are written once, when a sector is claimed.

use super::probe::{self, Layout, Sector0, SectorKeys};
use super::session::Session;
use crate::card::{CardInfo, CardType};
use crate::error::{Incompatibility, JobError, Uncategorized};
use crate::format::{self, CardCredential, Credential, FormatError};
use crate::keys::{CardKeys, Crypto1Key, SiteKeys};
use crate::mifare::Block;
use crate::mifare::access::{AccessConditions, KeyType, TrailerAccess};
use crate::mifare::geometry::{self, Geometry};
use crate::mifare::mad::{self, Aid, Mad1};
use crate::mifare::trailer::{FACTORY_GPB, Trailer, TrailerRead};
use crate::transmit::Transmit;

/// The result of an encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeOutcome {
    /// The card's UID.
    pub uid: Vec<u8>,
    /// The card type (from the ATR).
    pub card_type: CardType,
    /// The credential as written and read back.
    pub written: CardCredential,
    /// `true` when this encode formatted the card for us (claimed sectors, wrote trailers);
    /// `false` for a re-encode.
    pub first_encode: bool,
    /// APDUs sent.
    pub apdu_count: usize,
}

/// The trailer of our sectors: key A reads, key B writes everything (`78 77 88`).
pub fn our_trailer(keys: &CardKeys) -> Trailer {
    Trailer::new(
        keys.key_a(),
        AccessConditions::READ_A_WRITE_B,
        FACTORY_GPB,
        keys.key_b(),
    )
}

/// The trailer of a MAD sector 0 we create: public MAD key A reads, our key B writes, GPB
/// `C1` (MAD1, multi-application).
pub fn directory_trailer(keys: &CardKeys) -> Trailer {
    Trailer::new(
        Crypto1Key::MAD_PUBLIC,
        AccessConditions::READ_A_WRITE_B,
        mad::GPB_MAD1,
        keys.key_b(),
    )
}

fn fresh_mad(geometry: Geometry) -> Mad1 {
    let mut mad = Mad1::empty();
    for sector in 1..=15u8 {
        if !geometry.has_sector(sector) {
            mad.set(sector, Aid::NOT_APPLICABLE);
        }
    }
    mad
}

/// Encodes `credential` onto the card. See the module docs and docs/card-format.md.
#[allow(clippy::too_many_lines)] // one linear sequence of steps reads best in one place
pub fn encode<T: Transmit + ?Sized>(
    tx: &mut T,
    info: &CardInfo,
    site: &SiteKeys,
    credential: &Credential,
) -> Result<EncodeOutcome, JobError> {
    let card_type = info.card_type();
    let mut s = Session::new(tx, card_type);
    if info.is_identified() && !card_type.is_mifare_classic() {
        return Err(s.incompatible(
            Incompatibility::NotMifareClassic(card_type),
            "identify",
            None,
        ));
    }
    let len = format::body_len(credential).map_err(|e| {
        s.fail(
            Uncategorized::InvalidCredential,
            "validate",
            None,
            e.to_string(),
        )
    })?;
    if len > format::body_capacity(2) {
        return Err(s.fail(
            Uncategorized::InvalidCredential,
            "validate",
            None,
            FormatError::TooLarge {
                len,
                capacity: format::body_capacity(2),
            }
            .to_string(),
        ));
    }
    let geometry = card_type.geometry().unwrap_or(Geometry::CLASSIC_1K);
    let uid = s.uid(info)?;
    let sector0 = probe::open_sector0(&mut s, site, &uid)?;
    let read = probe::read_mad(&mut s, &sector0)?;
    let (mut mad, fresh_directory) = match (&sector0, read) {
        (_, Some(mad)) => (mad, false),
        (Sector0::Factory(_), None) => (fresh_mad(geometry), true),
        _ => {
            return Err(s.incompatible(
                Incompatibility::DirectoryLocked,
                "open_directory",
                Some(3),
            ));
        }
    };
    let preferred = match &sector0 {
        Sector0::Ours(keys) => keys.clone(),
        _ => probe::keys_for(&s, site, site.current_version(), &uid)?,
    };
    let existing: Vec<u8> = mad
        .sectors_of(format::APP_AID)
        .into_iter()
        .filter(|sector| geometry.has_sector(*sector))
        .collect();

    let mut plan = if existing.is_empty() {
        let needed = if len <= format::body_capacity(1) {
            1
        } else {
            2
        };
        claim(
            &mut s,
            ClaimInput {
                site,
                uid: &uid,
                preferred: &preferred,
                sector0: &sector0,
                mad: &mut mad,
                fresh_directory,
                geometry,
                needed,
            },
        )?
    } else {
        let Some(layout) = Layout::new(existing) else {
            return Err(s.fail(
                Uncategorized::LayoutCorrupt,
                "read_directory",
                Some(1),
                "not 2 or 4 sectors registered",
            ));
        };
        choose_slot(&mut s, layout, site, &uid, &preferred)?
    };

    let written = write_record(&mut s, &mut plan, site, &uid, credential)?;

    if let Some((key_type, key, blocks)) = &plan.verify_directory {
        let step = "verify_directory";
        if !s.auth(0, *key_type, *key, step)? {
            return Err(s.fail(
                Uncategorized::ReadBackMismatch,
                step,
                Some(3),
                "directory key not accepted",
            ));
        }
        let read = s.read_many(&[1, 2], step)?;
        for ((block, expected), got) in [(1u8, blocks[0]), (2u8, blocks[1])].into_iter().zip(read) {
            if got != expected {
                return Err(s.fail(
                    Uncategorized::ReadBackMismatch,
                    step,
                    Some(block),
                    "directory differs",
                ));
            }
        }
    }
    Ok(EncodeOutcome {
        uid,
        card_type,
        written,
        first_encode: plan.first_encode,
        apdu_count: s.apdus,
    })
}

/// What the write phase needs to know.
struct Plan {
    layout: Layout,
    target: usize,
    sequence: u8,
    /// Known state of target sectors: keys that open them, or `Factory` (needs a trailer).
    sector_keys: Vec<(u8, SectorKeys)>,
    /// Blocks of the target slot as read from the card (for the diff): those not listed are
    /// read before they are compared.
    known: Vec<(u8, Block)>,
    /// Sectors whose content is unknown and must be written whole (freshly claimed).
    fresh: bool,
    first_encode: bool,
    verify_directory: Option<(KeyType, Crypto1Key, [Block; 2])>,
    card_keys: CardKeys,
}

struct ClaimInput<'a> {
    site: &'a SiteKeys,
    uid: &'a [u8],
    preferred: &'a CardKeys,
    sector0: &'a Sector0,
    mad: &'a mut Mad1,
    fresh_directory: bool,
    geometry: Geometry,
    needed: usize,
}

/// Who may write the MAD's data blocks (and, for a fresh directory, its trailer): our key B;
/// the factory key A under transport access; or, for a MAD another system wrote (sector 0
/// opens with the public MAD key A), the first of the site's published keys
/// ([`SiteKeys::published_directory_keys`]) that opens sector 0 as key B and may write blocks
/// 1 and 2. That system's trailer is never written (docs/card-format.md §2).
fn directory_writer<T: Transmit + ?Sized>(
    s: &mut Session<'_, T>,
    site: &SiteKeys,
    sector0: &Sector0,
    fresh_directory: bool,
) -> Result<(KeyType, Crypto1Key), JobError> {
    let step = "open_directory";
    let locked =
        |s: &Session<'_, T>| s.incompatible(Incompatibility::DirectoryLocked, step, Some(3));
    let can_write = |t: &TrailerRead, key: KeyType| {
        t.access.data(1).can_write(key) && t.access.data(2).can_write(key)
    };
    match sector0 {
        Sector0::Ours(keys) => Ok((KeyType::B, keys.key_b())),
        Sector0::Factory(trailer) => {
            let trailer_ok =
                !fresh_directory || trailer.access.trailer() == TrailerAccess::Transport;
            if can_write(trailer, KeyType::A) && trailer_ok {
                Ok((KeyType::A, Crypto1Key::FACTORY))
            } else {
                Err(locked(s))
            }
        }
        Sector0::PublicMad => {
            for key in site.published_directory_keys() {
                if !s.auth(0, KeyType::B, *key, step)? {
                    continue;
                }
                let block = s.read(3, step)?;
                if let Ok(t) = TrailerRead::parse(&block)
                    && can_write(&t, KeyType::B)
                    && !t.access.trailer().key_b_readable()
                {
                    return Ok((KeyType::B, *key));
                }
            }
            Err(locked(s))
        }
        Sector0::Locked => Err(locked(s)),
    }
}

/// Whether the trailer of `sector`, authenticated with the factory key A, has the transport
/// conditions (`FF 07 80`: key A writes keys and access bits). Under any other condition the
/// card takes only part of a trailer write (the keys, say, but not the access bits) and still
/// answers `90 00`, leaving a sector our keys open but the old conditions govern, that no
/// later scan or re-encode can use; so such a sector is not ours to format (found by the
/// `whole_job` fuzz target). A refused read counts as "not transport".
fn transport_trailer<T: Transmit + ?Sized>(
    s: &mut Session<'_, T>,
    sector: u8,
    step: &'static str,
) -> Result<bool, JobError> {
    let Some(block) = geometry::trailer_block(sector) else {
        return Ok(false);
    };
    match s.read(block, step) {
        Ok(trailer) => Ok(TrailerRead::parse(&trailer)
            .is_ok_and(|t| t.access.trailer() == TrailerAccess::Transport)),
        Err(JobError::Uncategorized {
            code: Uncategorized::CommandRejected,
            ..
        }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// First encode: claim free sectors (writing their trailers), then register them in the MAD.
fn claim<T: Transmit + ?Sized>(
    s: &mut Session<'_, T>,
    input: ClaimInput<'_>,
) -> Result<Plan, JobError> {
    let ClaimInput {
        site,
        uid,
        preferred,
        sector0,
        mad,
        fresh_directory,
        geometry,
        needed,
    } = input;
    let step = "claim_sectors";
    let free: Vec<u8> = (1..=15u8)
        .filter(|sector| geometry.has_sector(*sector) && mad.aid(*sector) == Some(Aid::FREE))
        .collect();
    if free.len() < 2 * needed {
        return Err(s.incompatible(Incompatibility::NoRoom, step, None));
    }
    let writer = directory_writer(s, site, sector0, fresh_directory)?;
    let mut claimed: Vec<(u8, SectorKeys)> = Vec::new();
    let mut locked = 0usize;
    for sector in free {
        if claimed.len() == 4 {
            break;
        }
        match probe::open_sector(s, sector, site, uid, preferred, true, step)? {
            SectorKeys::Factory => {
                if !transport_trailer(s, sector, step)? {
                    locked += 1;
                    continue;
                }
                s.write_trailer(sector, &our_trailer(preferred), step)?;
                claimed.push((sector, SectorKeys::Ours(preferred.clone())));
            }
            keys @ SectorKeys::Ours(_) => claimed.push((sector, keys)),
            SectorKeys::Locked => locked += 1,
        }
    }
    let k = match claimed.len() {
        4.. => 2,
        2 | 3 => 1,
        _ => 0,
    };
    if k < needed {
        let reason = if locked > 0 {
            Incompatibility::SectorsLocked
        } else {
            Incompatibility::NoRoom
        };
        return Err(s.incompatible(reason, step, None));
    }
    claimed.truncate(2 * k);
    // Register in the MAD: only the blocks that change; the trailer only on a blank sector 0.
    let before = mad.to_blocks();
    for (sector, _) in &claimed {
        mad.set(*sector, format::APP_AID);
    }
    let after = mad.to_blocks();
    let step = "write_directory";
    if !s.auth(0, writer.0, writer.1, step)? {
        return Err(s.incompatible(Incompatibility::DirectoryLocked, step, Some(3)));
    }
    for (i, (old, new)) in before.iter().zip(after.iter()).enumerate() {
        if fresh_directory || old != new {
            let block = u8::try_from(i + 1).unwrap_or(1);
            s.write(block, new, step)?;
        }
    }
    let verify_key = if fresh_directory {
        s.write_trailer(0, &directory_trailer(preferred), step)?;
        (KeyType::B, preferred.key_b())
    } else {
        writer
    };
    let sectors: Vec<u8> = claimed.iter().map(|(sector, _)| *sector).collect();
    let Some(layout) = Layout::new(sectors) else {
        return Err(s.fail(Uncategorized::LayoutCorrupt, step, None, "claimed sectors"));
    };
    let card_keys = match claimed.first() {
        Some((_, SectorKeys::Ours(keys))) => keys.clone(),
        _ => preferred.clone(),
    };
    Ok(Plan {
        layout,
        target: 0,
        sequence: 1,
        sector_keys: claimed,
        known: Vec::new(),
        fresh: true,
        first_encode: true,
        verify_directory: Some((verify_key.0, verify_key.1, after)),
        card_keys,
    })
}

/// Re-encode: read both slot headers and target the slot that does not hold the newest record.
fn choose_slot<T: Transmit + ?Sized>(
    s: &mut Session<'_, T>,
    layout: Layout,
    site: &SiteKeys,
    uid: &[u8],
    preferred: &CardKeys,
) -> Result<Plan, JobError> {
    let step = "read_slot_header";
    // Each slot's header, then at once (the sector is still authenticated) the rest of its
    // record: the newest record must be verified before choosing (below), and the target's
    // blocks are the diff's "before" without reading them again.
    let mut heads = Vec::with_capacity(2);
    let mut records: Vec<Option<Vec<u8>>> = Vec::with_capacity(2);
    for slot in 0..2 {
        let head = probe::read_slot_head(s, &layout, slot, site, uid, preferred)?;
        let record = match (&head.keys, &head.block, &head.header) {
            (SectorKeys::Ours(keys), Some(block), Ok(header)) => {
                probe::read_record(s, &layout, slot, keys, header, block, &head.prefetched)?
            }
            _ => None,
        };
        heads.push(head);
        records.push(record);
    }
    if heads.iter().any(|h| matches!(h.keys, SectorKeys::Locked)) {
        return Err(s.incompatible(Incompatibility::SectorsLocked, step, None));
    }
    if heads
        .iter()
        .any(|h| matches!(h.header, Err(FormatError::UnknownVersion(_))))
    {
        return Err(s.incompatible(Incompatibility::UnknownFormat, step, None));
    }
    // The card's record is the first slot, in the total order of docs/card-format.md §5.5,
    // whose record verifies (a header says nothing of the blocks after it: an earlier
    // re-encode torn after its header landed leaves a newest-looking slot without a valid
    // record). The new record goes into the *other* slot, with the sequence number one above
    // the card's record, so two valid records on a card always hold neighbouring numbers.
    // Without a valid record, the newest-looking slot is rewritten.
    let valid = |slot: usize| {
        let keys = heads.get(slot).and_then(|h| match &h.keys {
            SectorKeys::Ours(keys) => Some(keys),
            _ => None,
        });
        match (records.get(slot).and_then(Option::as_ref), keys) {
            (Some(bytes), Some(keys)) => format::decode_record(bytes, uid, keys).is_ok(),
            _ => false,
        }
    };
    let parsed: Vec<(usize, u8)> = heads
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.header.as_ref().ok().map(|h| (i, h.sequence)))
        .collect();
    let order = format::candidate_order(&parsed);
    let seq = |slot: usize| {
        parsed
            .iter()
            .find(|(s, _)| *s == slot)
            .map_or(0, |(_, q)| *q)
    };
    let (target, sequence) = match order.iter().copied().find(|slot| valid(*slot)) {
        Some(current) => (1 - current, seq(current).wrapping_add(1)),
        None => order
            .first()
            .map_or((0, 1), |slot| (*slot, seq(*slot).wrapping_add(1))),
    };
    // The card's keys: those that opened a slot, else the preferred ones.
    let card_keys = heads
        .iter()
        .find_map(|h| match &h.keys {
            SectorKeys::Ours(keys) => Some(keys.clone()),
            _ => None,
        })
        .unwrap_or_else(|| preferred.clone());
    let head = heads.get(target);
    let known: Vec<(u8, Block)> = match (records.get(target).and_then(Option::as_ref), head) {
        (Some(bytes), _) => layout
            .slot_blocks(target)
            .into_iter()
            .zip(
                bytes
                    .chunks_exact(16)
                    .filter_map(|c| Block::try_from(c).ok()),
            )
            .collect(),
        (None, Some(h)) => h
            .block
            .iter()
            .filter_map(|b| layout.slot_blocks(target).first().map(|first| (*first, *b)))
            .collect(),
        (None, None) => Vec::new(),
    };
    let head_sector = layout.slot_sectors(target).first().copied().unwrap_or(0);
    let head_keys = head.map_or(SectorKeys::Locked, |h| h.keys.clone());
    let fresh = matches!(head_keys, SectorKeys::Factory);
    Ok(Plan {
        target,
        sequence,
        sector_keys: vec![(head_sector, head_keys)],
        known,
        fresh,
        first_encode: false,
        verify_directory: None,
        card_keys,
        layout,
    })
}

/// Writes the record into the target slot, sector by sector: open, diff, write the changed
/// blocks, read them back.
/// Reads `written` back (in as few reads as the reader allows) and compares.
fn read_back<T: Transmit + ?Sized>(
    s: &mut Session<'_, T>,
    written: &[(u8, Block)],
) -> Result<(), JobError> {
    let blocks: Vec<u8> = written.iter().map(|(b, _)| *b).collect();
    let read = s.read_many(&blocks, "read_back")?;
    for ((block, data), got) in written.iter().zip(read) {
        if got != *data {
            return Err(s.fail(
                Uncategorized::ReadBackMismatch,
                "read_back",
                Some(*block),
                "block differs",
            ));
        }
    }
    Ok(())
}

fn write_record<T: Transmit + ?Sized>(
    s: &mut Session<'_, T>,
    plan: &mut Plan,
    site: &SiteKeys,
    uid: &[u8],
    credential: &Credential,
) -> Result<CardCredential, JobError> {
    let step = "write_record";
    let keys = plan.card_keys.clone();
    let record = format::encode_record(
        credential,
        &keys,
        plan.sequence,
        uid,
        plan.layout.capacity(),
    )
    .map_err(|e| match e {
        FormatError::TooLarge { .. } => s.incompatible(Incompatibility::NoRoom, step, None),
        other => s.fail(
            Uncategorized::InvalidCredential,
            step,
            None,
            other.to_string(),
        ),
    })?;
    let written = format::decode_record(&record.concat(), uid, &keys)
        .map_err(|e| s.fail(Uncategorized::InvalidCredential, step, None, e.to_string()))?;
    let blocks = plan.layout.slot_blocks(plan.target);
    if blocks.is_empty() {
        return Err(s.fail(Uncategorized::LayoutCorrupt, step, None, "empty slot"));
    }
    let items: Vec<(u8, Block)> = blocks.into_iter().zip(record).collect();
    let mut sectors: Vec<u8> = items.iter().map(|(b, _)| geometry::sector_of(*b)).collect();
    sectors.dedup();
    for sector in sectors {
        let known = plan
            .sector_keys
            .iter()
            .find(|(s2, _)| *s2 == sector)
            .map(|(_, k)| k.clone());
        let state = match known {
            Some(k) => k,
            None => probe::open_sector(s, sector, site, uid, &keys, false, step)?,
        };
        let mut fresh = plan.fresh;
        match state {
            SectorKeys::Ours(_) => {}
            SectorKeys::Factory => {
                // A sector left unformatted by an interrupted first encode.
                if !s.auth(sector, KeyType::A, Crypto1Key::FACTORY, step)?
                    || !transport_trailer(s, sector, step)?
                {
                    return Err(s.incompatible(Incompatibility::SectorsLocked, step, None));
                }
                s.write_trailer(sector, &our_trailer(&keys), step)?;
                fresh = true;
            }
            SectorKeys::Locked => {
                return Err(s.incompatible(Incompatibility::SectorsLocked, step, None));
            }
        }
        if !s.auth(sector, KeyType::B, keys.key_b(), step)? {
            return Err(s.incompatible(Incompatibility::SectorsLocked, step, None));
        }
        let mine: Vec<&(u8, Block)> = items
            .iter()
            .filter(|(b, _)| geometry::sector_of(*b) == sector)
            .collect();
        // What the card holds now: known, or read (the unknown ones in as few reads as the
        // reader allows); nothing for a freshly claimed sector (written whole).
        let unknown: Vec<u8> = if fresh {
            Vec::new()
        } else {
            mine.iter()
                .map(|(b, _)| *b)
                .filter(|b| !plan.known.iter().any(|(k, _)| k == b))
                .collect()
        };
        let read: Vec<(u8, Block)> = unknown
            .iter()
            .copied()
            .zip(s.read_many(&unknown, "diff_record")?)
            .collect();
        let mut changed: Vec<(u8, Block)> = Vec::new();
        for (block, data) in mine {
            let old = if fresh {
                None
            } else {
                plan.known
                    .iter()
                    .chain(read.iter())
                    .find(|(b, _)| b == block)
                    .map(|(_, d)| *d)
            };
            if old.as_ref() != Some(data) {
                changed.push((*block, *data));
            }
        }
        for (block, data) in &changed {
            s.write(*block, data, step)?;
        }
        read_back(s, &changed)?;
    }
    Ok(written)
}
