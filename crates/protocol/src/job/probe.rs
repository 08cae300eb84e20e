//! Reading steps shared by scan and encode: who owns sector 0, the MAD, our layout, and the
//! slot headers.

use super::session::Session;
use crate::error::{JobError, Uncategorized};
use crate::format::{self, FormatError, Header};
use crate::keys::{CardKeys, Crypto1Key, SiteKeys};
use crate::mifare::Block;
use crate::mifare::access::KeyType;
use crate::mifare::geometry;
use crate::mifare::mad::{self, Mad1};
use crate::mifare::trailer::TrailerRead;
use crate::transmit::Transmit;

/// Who can open sector 0.
#[derive(Debug, Clone)]
pub(crate) enum Sector0 {
    /// Our key B of this version: the MAD is ours.
    Ours(CardKeys),
    /// Factory key A: a blank (or transport-keyed) sector 0; its trailer as read.
    Factory(TrailerRead),
    /// Only the public MAD key A: a MAD written by someone else.
    PublicMad,
    /// No key we know.
    Locked,
}

pub(crate) fn keys_for(
    s: &Session<'_, impl Transmit + ?Sized>,
    site: &SiteKeys,
    version: u8,
    uid: &[u8],
) -> Result<CardKeys, JobError> {
    site.card_keys(version, uid)
        .map_err(|e| s.fail(Uncategorized::KeyError, "derive_keys", None, e.to_string()))
}

/// Opens sector 0: our key B (each version, current first), then factory key A, then the public
/// MAD key A. Leaves the session authenticated to sector 0 unless `Locked`.
pub(crate) fn open_sector0<T: Transmit + ?Sized>(
    s: &mut Session<'_, T>,
    site: &SiteKeys,
    uid: &[u8],
) -> Result<Sector0, JobError> {
    let step = "open_directory";
    for version in site.versions() {
        let keys = keys_for(s, site, version, uid)?;
        if s.auth(0, KeyType::B, keys.key_b(), step)? {
            return Ok(Sector0::Ours(keys));
        }
    }
    if s.auth(0, KeyType::A, Crypto1Key::FACTORY, step)? {
        let block = s.read(3, "read_directory_trailer")?;
        let trailer = TrailerRead::parse(&block).map_err(|e| {
            s.fail(
                Uncategorized::DirectoryCorrupt,
                step,
                Some(3),
                e.to_string(),
            )
        })?;
        return Ok(Sector0::Factory(trailer));
    }
    if s.auth(0, KeyType::A, Crypto1Key::MAD_PUBLIC, step)? {
        return Ok(Sector0::PublicMad);
    }
    Ok(Sector0::Locked)
}

/// Reads and checks MAD1 (blocks 1-2) when sector 0 announces one. The session must still be
/// authenticated to sector 0 by [`open_sector0`].
pub(crate) fn read_mad<T: Transmit + ?Sized>(
    s: &mut Session<'_, T>,
    sector0: &Sector0,
) -> Result<Option<Mad1>, JobError> {
    let present = match sector0 {
        Sector0::Ours(_) | Sector0::PublicMad => true,
        Sector0::Factory(trailer) => mad::mad_version(trailer.gpb).is_some(),
        Sector0::Locked => false,
    };
    if !present {
        return Ok(None);
    }
    let step = "read_directory";
    let bytes = s.read_many(&[1, 2], step)?.concat();
    Mad1::parse(&bytes).map(Some).map_err(|e| {
        s.fail(
            Uncategorized::DirectoryCorrupt,
            step,
            Some(1),
            e.to_string(),
        )
    })
}

/// Our sectors and how they form two slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    sectors: Vec<u8>,
}

impl Layout {
    /// From our sectors (ascending); `None` unless exactly 2 or 4 sectors of the MAD1 range
    /// 1-15 (docs/card-format.md §4: two slots of one or two sectors).
    pub(crate) fn new(sectors: Vec<u8>) -> Option<Self> {
        if !matches!(sectors.len(), 2 | 4) || sectors.iter().any(|s| *s == 0 || *s > 15) {
            return None;
        }
        Some(Self { sectors })
    }

    pub(crate) fn per_slot(&self) -> usize {
        self.sectors.len() / 2
    }

    pub(crate) fn slot_sectors(&self, slot: usize) -> &[u8] {
        let k = self.per_slot();
        self.sectors.get(slot * k..(slot + 1) * k).unwrap_or(&[])
    }

    pub(crate) fn slot_blocks(&self, slot: usize) -> Vec<u8> {
        self.slot_sectors(slot)
            .iter()
            .flat_map(|s| geometry::data_blocks(*s))
            .collect()
    }

    pub(crate) fn capacity(&self) -> usize {
        format::body_capacity(self.per_slot())
    }
}

/// How one of our sectors opens.
#[derive(Debug, Clone)]
pub(crate) enum SectorKeys {
    /// With our key B of these keys.
    Ours(CardKeys),
    /// With the factory key A: not formatted yet (a first encode was interrupted).
    Factory,
    /// With nothing we know.
    Locked,
}

/// Opens `sector`: our key B with `preferred` keys, then the other versions, then (when
/// `try_factory`) the factory key A. With `factory_first` the factory key is tried first
/// (sectors we are about to claim are usually blank).
pub(crate) fn open_sector<T: Transmit + ?Sized>(
    s: &mut Session<'_, T>,
    sector: u8,
    site: &SiteKeys,
    uid: &[u8],
    preferred: &CardKeys,
    factory_first: bool,
    step: &'static str,
) -> Result<SectorKeys, JobError> {
    if factory_first && s.auth(sector, KeyType::A, Crypto1Key::FACTORY, step)? {
        return Ok(SectorKeys::Factory);
    }
    if s.auth(sector, KeyType::B, preferred.key_b(), step)? {
        return Ok(SectorKeys::Ours(preferred.clone()));
    }
    for version in site.versions() {
        if version == preferred.version() {
            continue;
        }
        let keys = keys_for(s, site, version, uid)?;
        if s.auth(sector, KeyType::B, keys.key_b(), step)? {
            return Ok(SectorKeys::Ours(keys));
        }
    }
    if !factory_first && s.auth(sector, KeyType::A, Crypto1Key::FACTORY, step)? {
        return Ok(SectorKeys::Factory);
    }
    Ok(SectorKeys::Locked)
}

/// What the first block of a slot says.
#[derive(Debug, Clone)]
pub(crate) struct SlotHead {
    pub(crate) keys: SectorKeys,
    /// The header block as read (when the sector opened with our keys).
    pub(crate) block: Option<Block>,
    pub(crate) header: Result<Header, FormatError>,
    /// The slot's other blocks of the same sector, read with the header where the reader
    /// reads several blocks at once (then [`read_record`] needs no read for them).
    pub(crate) prefetched: Vec<(u8, Block)>,
}

/// Opens the first sector of `slot` and reads its header block; where the reader reads several
/// blocks at once, with the slot's other blocks of that sector in the same read.
pub(crate) fn read_slot_head<T: Transmit + ?Sized>(
    s: &mut Session<'_, T>,
    layout: &Layout,
    slot: usize,
    site: &SiteKeys,
    uid: &[u8],
    preferred: &CardKeys,
) -> Result<SlotHead, JobError> {
    let step = "read_slot_header";
    let Some(&first) = layout.slot_blocks(slot).first() else {
        return Err(s.fail(Uncategorized::LayoutCorrupt, step, None, "empty slot"));
    };
    let sector = geometry::sector_of(first);
    let keys = open_sector(s, sector, site, uid, preferred, false, step)?;
    if let SectorKeys::Ours(_) = keys {
        // One block (the header), or the slot's blocks of this sector where the reader reads
        // several at once: the same APDU count, and read_record needs no read for them.
        let take = if s.caps().read_blocks > 1 {
            usize::MAX
        } else {
            1
        };
        let blocks: Vec<u8> = layout
            .slot_blocks(slot)
            .into_iter()
            .take_while(|b| geometry::sector_of(*b) == sector)
            .take(take)
            .collect();
        let mut read = blocks.iter().copied().zip(s.read_many(&blocks, step)?);
        let Some((_, block)) = read.next() else {
            return Err(s.fail(
                Uncategorized::UnexpectedResponse,
                step,
                Some(first),
                "no block read",
            ));
        };
        Ok(SlotHead {
            keys,
            block: Some(block),
            header: Header::parse(&block),
            prefetched: read.collect(),
        })
    } else {
        Ok(SlotHead {
            keys,
            block: None,
            header: Err(FormatError::Empty),
            prefetched: Vec::new(),
        })
    }
}

/// Reads the remaining blocks of the record whose header block is `head_block`, in `slot`,
/// authenticating with `keys` (key B) as needed. `Ok(None)` when the record does not fit the
/// slot or a sector refuses our key: such a record is not valid.
pub(crate) fn read_record<T: Transmit + ?Sized>(
    s: &mut Session<'_, T>,
    layout: &Layout,
    slot: usize,
    keys: &CardKeys,
    header: &Header,
    head_block: &Block,
    prefetched: &[(u8, Block)],
) -> Result<Option<Vec<u8>>, JobError> {
    let step = "read_record";
    let blocks = layout.slot_blocks(slot);
    let Some(rest) = blocks.get(1..header.record_blocks()) else {
        return Ok(None);
    };
    let mut bytes = head_block.to_vec();
    // Sector by sector, each sector's blocks in as few reads as the reader allows; blocks
    // read with the header are not read again.
    let mut rest = rest;
    while let Some(&first) = rest.first() {
        let sector = geometry::sector_of(first);
        let run = rest
            .iter()
            .take_while(|b| geometry::sector_of(**b) == sector)
            .count();
        let blocks = rest.get(..run).unwrap_or_default();
        let known: Option<Vec<Block>> = blocks
            .iter()
            .map(|b| prefetched.iter().find(|(p, _)| p == b).map(|(_, d)| *d))
            .collect();
        let read = if let Some(known) = known {
            known
        } else {
            if !s.auth(sector, KeyType::B, keys.key_b(), step)? {
                return Ok(None);
            }
            s.read_many(blocks, step)?
        };
        for block in read {
            bytes.extend_from_slice(&block);
        }
        rest = rest.get(run..).unwrap_or_default();
    }
    Ok(Some(bytes))
}
