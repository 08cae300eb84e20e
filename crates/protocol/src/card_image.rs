//! Offline decoding of a saved MIFARE Classic card image (`.mfd`: every block in order,
//! 320 / 1024 / 4096 bytes for Mini / 1K / 4K), with the same checks, in the same order, as
//! the scan job makes on a card (docs/card-format.md §5.5). For support staff and lock
//! vendors (`encoder-bridge decode`) and the whole-card vectors of tests/vectors/.
//!
//! An image cannot be authenticated against, so the keys are recognised instead: a sector is
//! ours under key version `v` when its trailer's key B bytes are `v`'s derived key B; a dump
//! that left key B as zeros (not readable, §4) is tried under every version, and the version
//! whose MAC verifies wins.

use crate::format::{self, CardCredential, FormatError, Header, Selection, SlotContent};
use crate::keys::{CardKeys, SiteKeys};
use crate::mifare::access::AccessConditions;
use crate::mifare::geometry::{self, Geometry};
use crate::mifare::mad::{self, Mad1};

/// What the image holds (docs/card-format.md §5.5 names the states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageState {
    /// Factory-fresh: no MAD, sector 0 in transport configuration.
    Blank,
    /// No application of ours: other applications, or our AID under another site's keys.
    Foreign,
    /// Our sectors, no record yet.
    OursEmpty,
    /// A valid credential of ours.
    Ours,
    /// Our sectors, records that all fail verification: `card_payload_corrupt`.
    Damaged,
    /// Our sectors, a record of a format version this software does not know.
    UnknownFormat,
    /// The MAD or our sector layout is unusable (CRC, info byte, not 2 or 4 sectors).
    Corrupt,
}

impl ImageState {
    /// Stable name (the scan job's [`crate::job::CardState`] names where they exist).
    pub fn name(self) -> &'static str {
        match self {
            Self::Blank => "blank",
            Self::Foreign => "foreign",
            Self::OursEmpty => "ours_empty",
            Self::Ours => "ours",
            Self::Damaged => "damaged",
            Self::UnknownFormat => "unknown_format_version",
            Self::Corrupt => "corrupt",
        }
    }
}

/// One check a reader makes, and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Stable name of the check (docs/card-format.md §5.5).
    pub name: &'static str,
    /// `true` when the check passed.
    pub passed: bool,
    /// What was found (never key bytes).
    pub detail: String,
}

/// The result of decoding an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReport {
    /// The UID used (from block 0 unless given).
    pub uid: Vec<u8>,
    /// Card size from the image length.
    pub geometry: Geometry,
    /// What the card holds.
    pub state: ImageState,
    /// The card's credential, when it holds a valid one.
    pub credential: Option<CardCredential>,
    /// The slot (0 = A, 1 = B) the credential came from.
    pub slot: Option<usize>,
    /// Every check made, in order.
    pub checks: Vec<Check>,
}

/// Errors that stop decoding before any check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// Not 320, 1024 or 4096 bytes.
    #[error("a card image has 320, 1024 or 4096 bytes, not {0}")]
    BadSize(usize),
    /// The UID from block 0 or given is not 4, 7 or 10 bytes.
    #[error("UID of {0} bytes: MIFARE Classic UIDs have 4, 7 or 10")]
    BadUid(usize),
}

/// The UID in block 0: 4 bytes when byte 4 is their BCC (XOR) and byte 5 a MIFARE Classic
/// SAK, else 7 bytes (a 10-byte UID cannot be told from block 0: give it).
pub fn uid_from_block0(image: &[u8]) -> Option<Vec<u8>> {
    let b = image.get(..7)?;
    let bcc = b.iter().take(4).fold(0u8, |acc, x| acc ^ x);
    let classic_sak = |s: &u8| matches!(s, 0x08 | 0x09 | 0x18 | 0x28 | 0x38 | 0x68 | 0x88);
    if b.get(4) == Some(&bcc) && b.get(5).is_some_and(classic_sak) {
        b.get(..4).map(<[u8]>::to_vec)
    } else {
        Some(b.to_vec())
    }
}

fn block(image: &[u8], block: u16) -> Option<[u8; 16]> {
    let start = usize::from(block) * 16;
    image.get(start..start + 16)?.try_into().ok()
}

fn check(checks: &mut Vec<Check>, name: &'static str, passed: bool, detail: impl Into<String>) {
    checks.push(Check {
        name,
        passed,
        detail: detail.into(),
    });
}

/// Decodes `image` with `site`'s keys; `uid` overrides the UID in block 0.
pub fn decode(
    image: &[u8],
    uid: Option<&[u8]>,
    site: &SiteKeys,
) -> Result<ImageReport, ImageError> {
    let geometry = match image.len() {
        320 => Geometry::MINI,
        1024 => Geometry::CLASSIC_1K,
        4096 => Geometry::CLASSIC_4K,
        n => return Err(ImageError::BadSize(n)),
    };
    let uid = match uid {
        Some(u) => u.to_vec(),
        None => uid_from_block0(image).unwrap_or_default(),
    };
    if !crate::keys::UID_LENGTHS.contains(&uid.len()) {
        return Err(ImageError::BadUid(uid.len()));
    }
    let mut r = ImageReport {
        uid,
        geometry,
        state: ImageState::Corrupt,
        credential: None,
        slot: None,
        checks: Vec::new(),
    };
    decode_into(image, site, &mut r);
    Ok(r)
}

#[allow(clippy::too_many_lines)] // the steps of docs/card-format.md §5.5, in order, read best in one place
fn decode_into(image: &[u8], site: &SiteKeys, r: &mut ImageReport) {
    let t0 = block(image, 3).unwrap_or_default();
    let [_, _, _, _, _, _, a6, a7, a8, gpb, ..] = t0;
    let madv = mad::mad_version(gpb);
    check(
        &mut r.checks,
        "mad_present",
        madv.is_some(),
        format!("sector 0 GPB {gpb:02X}"),
    );
    if madv.is_none() {
        let transport = [a6, a7, a8] == AccessConditions::TRANSPORT.bits().encode();
        r.state = if transport {
            ImageState::Blank
        } else {
            ImageState::Foreign
        };
        return;
    }
    let dir = [block(image, 1), block(image, 2)]
        .into_iter()
        .flatten()
        .flatten()
        .collect::<Vec<u8>>();
    let mad = match Mad1::parse(&dir) {
        Ok(m) => {
            check(
                &mut r.checks,
                "mad_crc_and_info",
                true,
                format!("info {:02X}", m.info),
            );
            m
        }
        Err(e) => {
            check(&mut r.checks, "mad_crc_and_info", false, e.to_string());
            return;
        }
    };
    let ours: Vec<u8> = mad
        .sectors_of(format::APP_AID)
        .into_iter()
        .filter(|s| r.geometry.has_sector(*s))
        .collect();
    if ours.is_empty() {
        check(
            &mut r.checks,
            "our_sectors",
            false,
            "no sector registered under F0EB",
        );
        r.state = if mad.in_use() {
            ImageState::Foreign
        } else {
            ImageState::Blank
        };
        return;
    }
    let count_ok = matches!(ours.len(), 2 | 4);
    check(
        &mut r.checks,
        "sector_count",
        count_ok,
        format!("{} sectors under F0EB: {ours:?}", ours.len()),
    );
    if !count_ok {
        return;
    }
    let k = ours.len() / 2;
    let slots: Vec<Vec<u8>> = ours
        .chunks(k)
        .map(|sectors| {
            sectors
                .iter()
                .flat_map(|s| geometry::data_blocks(*s))
                .filter_map(|b| block(image, u16::from(b)))
                .flatten()
                .collect()
        })
        .collect();
    let Some(keys) = card_keys(image, &ours, site, &r.uid, &slots, &mut r.checks) else {
        r.state = ImageState::Foreign;
        return;
    };
    let results = read_slots(&slots, &r.uid, &keys, &mut r.checks);
    let contents: Vec<SlotContent> = results
        .iter()
        .map(|res| SlotContent::of(res, |c| c.sequence))
        .collect();
    r.state = match format::select(&contents) {
        Selection::Record(slot) => {
            r.slot = Some(slot);
            r.credential = results.get(slot).and_then(|res| res.as_ref().ok()).cloned();
            ImageState::Ours
        }
        Selection::Damaged => ImageState::Damaged,
        Selection::UnknownFormat => ImageState::UnknownFormat,
        Selection::NoRecord => ImageState::OursEmpty,
    };
}

/// Step 6 of docs/card-format.md §5.5 on each slot's bytes.
fn read_slots(
    slots: &[Vec<u8>],
    uid: &[u8],
    keys: &CardKeys,
    checks: &mut Vec<Check>,
) -> Vec<Result<CardCredential, FormatError>> {
    let results: Vec<Result<CardCredential, FormatError>> = slots
        .iter()
        .map(|bytes| {
            let head = Header::parse(bytes.get(..16).unwrap_or(&[]))?;
            if head.record_blocks() * 16 > bytes.len() {
                return Err(FormatError::BadLength);
            }
            format::decode_record(bytes, uid, keys)
        })
        .collect();
    for (slot, result) in results.iter().enumerate() {
        let name = if slot == 0 { "slot_a" } else { "slot_b" };
        let detail = match result {
            Ok(c) => format!(
                "format_version {} sequence {} verifies",
                c.format_version, c.sequence
            ),
            Err(e) => e.name().to_string(),
        };
        let passed = result.is_ok() || matches!(result, Err(FormatError::Empty));
        check(checks, name, passed, detail);
    }
    results
}

/// The keys of the card: the version whose key B is in our first sector's trailer, else (key
/// B dumped as zeros) the version under which a slot's record verifies, else the current one.
fn card_keys(
    image: &[u8],
    ours: &[u8],
    site: &SiteKeys,
    uid: &[u8],
    slots: &[Vec<u8>],
    checks: &mut Vec<Check>,
) -> Option<CardKeys> {
    let trailer = ours
        .first()
        .and_then(|s| geometry::trailer_block(*s))
        .and_then(|b| block(image, u16::from(b)))
        .unwrap_or_default();
    let key_b = trailer.get(10..16).unwrap_or(&[]);
    let all: Vec<CardKeys> = site
        .versions()
        .into_iter()
        .filter_map(|v| site.card_keys(v, uid).ok())
        .collect();
    if key_b.iter().any(|b| *b != 0) {
        let found = all.iter().find(|k| k.key_b().to_bytes() == key_b).cloned();
        check(
            checks,
            "site_keys",
            found.is_some(),
            found.as_ref().map_or_else(
                || "trailer key B is none of this site's keys".to_string(),
                |k| format!("key version {} (trailer key B)", k.version()),
            ),
        );
        return found;
    }
    let verifies = |k: &CardKeys| {
        slots
            .iter()
            .any(|bytes| format::decode_record(bytes, uid, k).is_ok())
    };
    let found = all
        .iter()
        .find(|k| verifies(k))
        .or_else(|| all.first())
        .cloned();
    check(
        checks,
        "site_keys",
        true,
        found.as_ref().map_or_else(String::new, |k| {
            format!("key version {} (key B not in the dump)", k.version())
        }),
    );
    found
}
