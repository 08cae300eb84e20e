//! `whole_job`: encode, re-encode and scan against a card whose every reply the fuzzer
//! chooses (`encoder_protocol::job`).
//!
//! The card is the simulator's independent MIFARE Classic model behind an ACS-style reader
//! ([`encoder_sim::card::VirtualCard`], written from the datasheets, not from the protocol
//! crate), prepared by the fuzzer (type, UID, foreign directories, trailers, raw blocks, an
//! earlier encode with an older key version). For every APDU the fuzzer then decides: the
//! card's honest answer, a forged reply, a changed status word, a flipped byte, a truncated
//! reply, or a transport error (the card leaving the field, possibly during a write).
//!
//! Checked on every job, whatever the replies (the properties of issue 17):
//! - it ends within [`MAX_JOB_APDUS`] APDUs with a typed result whose APDU count is exact;
//! - every trailer write carries bytes built by the trailer type (`our_trailer` or
//!   `directory_trailer` of this site's keys for the UID the card gave), which decode to
//!   rewritable access conditions; every write is a well-formed 16-byte update;
//! - no write goes to block 0, to a sector above 15, or to a sector the directory the job read
//!   registers to another application;
//! - an encode that succeeds has read back every data block it wrote, with the bytes written,
//!   and reports the credential it was asked to write;
//! - a scan never returns a credential that no job was asked to write; after an encode that
//!   succeeded with honest replies only, an honest scan returns that credential.

use encoder_protocol::card::CardInfo;
use encoder_protocol::error::JobError;
use encoder_protocol::format::{self, Credential};
use encoder_protocol::job::{self, CardState};
use encoder_protocol::keys::{MasterKey, SiteKeys};
use encoder_protocol::mifare::access::AccessBits;
use encoder_protocol::mifare::geometry;
use encoder_protocol::mifare::mad::{Aid, Mad1};
use encoder_protocol::transmit::{Transmit, TransmitError, TransmitErrorKind};
use encoder_sim::card::{CardType, VirtualCard};

use crate::input::Input;

/// The most APDUs one job may send, whatever the card answers. A hostile card makes a job
/// try every key on every free sector; this bounds that.
pub const MAX_JOB_APDUS: usize = 200;

/// The cloud's error types (docs/cloud-protocol.md).
const ERROR_TYPES: [&str; 6] = [
    "no_card_on_encoder",
    "incompatible_card_format",
    "encoding_interrupted",
    "encoder_not_online",
    "encoder_communication_timeout",
    "uncategorized_error",
];

/// One exchange as the job saw it.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    pub(crate) command: Vec<u8>,
    pub(crate) reply: Option<Vec<u8>>,
}

/// The card in the reader, with the fuzzer choosing each reply.
pub(crate) struct FuzzCard<'a> {
    pub(crate) card: VirtualCard,
    pub(crate) input: Input<'a>,
    /// `false`: every reply is the card's own (the fuzzer is not asked).
    pub(crate) fuzzed: bool,
    pub(crate) removed: bool,
    pub(crate) deviated: bool,
    pub(crate) log: Vec<Exchange>,
    /// The status words a changed reply ends with.
    pub(crate) statuses: &'static [[u8; 2]],
}

const STATUS_WORDS: [[u8; 2]; 8] = [
    [0x63, 0x00],
    [0x69, 0x82],
    [0x6A, 0x81],
    [0x6A, 0x82],
    [0x67, 0x00],
    [0x6C, 0x10],
    [0x90, 0x00],
    [0x69, 0x86],
];

impl FuzzCard<'_> {
    /// Puts the card back on the reader for the next job.
    pub(crate) fn next_job(&mut self, fuzzed: bool) {
        self.card.insert();
        self.removed = false;
        self.deviated = false;
        self.fuzzed = fuzzed;
        self.log.clear();
    }

    fn reply(&mut self, command: &[u8]) -> Result<Vec<u8>, TransmitError> {
        if self.removed {
            return Err(TransmitError::new(TransmitErrorKind::CardRemoved, "gone"));
        }
        let action = if self.fuzzed { self.input.byte() } else { 0 };
        if action < 200 {
            return Ok(self.card.transmit(command));
        }
        self.deviated = true;
        match action {
            200..=215 => Ok(self.input.slice(24).to_vec()),
            216..=229 => {
                let mut reply = self.card.transmit(command);
                let n = self.statuses.len().max(1);
                let sw = self
                    .statuses
                    .get(usize::from(self.input.byte()) % n)
                    .copied()
                    .unwrap_or([0x63, 0x00]);
                let at = reply.len().saturating_sub(2);
                reply.truncate(at);
                reply.extend_from_slice(&sw);
                Ok(reply)
            }
            230..=239 => {
                let mut reply = self.card.transmit(command);
                let len = reply.len().max(1);
                let at = usize::from(self.input.byte()) % len;
                let mask = self.input.byte() | 1;
                if let Some(b) = reply.get_mut(at) {
                    *b ^= mask;
                }
                Ok(reply)
            }
            240..=247 => {
                let kind = match action {
                    240 | 241 => TransmitErrorKind::Timeout,
                    242 => TransmitErrorKind::ReaderUnavailable,
                    243 => TransmitErrorKind::Other,
                    _ => {
                        // The card leaves the field, before or after the command lands.
                        if action >= 246 {
                            let _ = self.card.transmit(command);
                        }
                        self.removed = true;
                        TransmitErrorKind::CardRemoved
                    }
                };
                Err(TransmitError::new(kind, "fuzzed"))
            }
            _ => {
                let mut reply = self.card.transmit(command);
                reply.truncate(usize::from(self.input.byte()) % reply.len().max(1));
                Ok(reply)
            }
        }
    }
}

impl Transmit for FuzzCard<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransmitError> {
        assert!(
            self.log.len() < 10 * MAX_JOB_APDUS,
            "the job does not end: {} APDUs",
            self.log.len()
        );
        let reply = self.reply(command);
        self.log.push(Exchange {
            command: command.to_vec(),
            reply: reply.as_ref().ok().cloned(),
        });
        reply
    }
}

pub(crate) fn site_keys(both_versions: bool) -> SiteKeys {
    let v1 = SiteKeys::new(1, MasterKey::new(*b"fuzz-site-key-v1"));
    if !both_versions {
        return v1;
    }
    let v2 = SiteKeys::new(2, MasterKey::new(*b"fuzz-site-key-v2"));
    v2.with_key(1, MasterKey::new(*b"fuzz-site-key-v1"))
        .unwrap_or_else(|_| SiteKeys::new(1, MasterKey::new(*b"fuzz-site-key-v1")))
}

pub(crate) fn credential(input: &mut Input<'_>, n: u8) -> Credential {
    let numbers = [
        "1234567890",
        "42",
        "",
        "ABC-12",
        "123456789012345678901234567890123",
    ];
    let pick = input.byte();
    let card_number = numbers
        .get(usize::from(pick % 5))
        .copied()
        .unwrap_or("1")
        .to_owned();
    let id = if pick & 0x80 != 0 {
        "not-a-uuid".to_owned()
    } else {
        format!("3f1c2a9e-5b7d-4e21-9a0c-1d2e3f4051{n:02x}")
    };
    let access_len = usize::from(input.byte() % 80);
    Credential {
        credential_id: id,
        card_number,
        // Whole minutes: card format v2 keeps times to the minute (docs/card-format.md §5.2).
        starts_at: Some(1_699_999_980 + 60 * i64::from(n)),
        ends_at: (pick & 0x40 == 0).then_some(1_800_000_000),
        issue_counter: u16::from(n),
        access_data: vec![n; access_len],
    }
}

fn aid_of(byte: u8) -> Aid {
    match byte % 8 {
        0 | 1 => Aid::FREE,
        2 => format::APP_AID,
        3 => Aid::NDEF,
        4 => Aid::DEFECT,
        5 => Aid::NOT_APPLICABLE,
        6 => Aid::new(0x48, 0x01),
        _ => Aid(u16::from(byte) << 8 | 0x11),
    }
}

/// The card the fuzzer prepares: type, UID and up to three changes to its memory.
fn prepare(input: &mut Input<'_>) -> Option<VirtualCard> {
    let kind = input.byte();
    let card_type = match kind % 8 {
        0..=4 => CardType::Classic1k,
        5 => CardType::Classic4k,
        6 => CardType::Mini,
        _ if kind & 0x80 != 0 => CardType::Ultralight,
        _ => CardType::Desfire,
    };
    let uid: &[u8] = match (card_type, kind & 0x40 != 0) {
        (CardType::Ultralight | CardType::Desfire, _) | (_, true) => {
            &[0x04, 0x51, 0x22, 0x33, 0x44, 0x55, 0x66]
        }
        _ => &[0xDE, 0xAD, 0xBE, 0xEF],
    };
    let card = VirtualCard::new(card_type, Some(uid)).ok()?;
    let mut image = card.image();
    if image.is_empty() {
        return Some(card);
    }
    let blocks = image.len() / 16;
    for _ in 0..input.byte() % 4 {
        let what = input.byte();
        let mut put = |block: usize, bytes: &[u8]| {
            if let Some(dst) = image.get_mut(block * 16..block * 16 + 16) {
                for (d, s) in dst.iter_mut().zip(bytes) {
                    *d = *s;
                }
            }
        };
        match what % 3 {
            // A directory of other applications (sector 0 announces a MAD).
            0 => {
                let mut mad = Mad1::empty();
                for sector in 1..=15u8 {
                    mad.set(sector, aid_of(input.byte()));
                }
                let [b1, b2] = mad.to_blocks();
                put(1, &b1);
                put(2, &b2);
                if let Some(gpb) = image.get_mut(3 * 16 + 9) {
                    *gpb = 0xC1;
                }
            }
            // A trailer: factory, MAD or random keys; fuzzed access bytes and GPB.
            1 => {
                let sector = input.byte() % 16;
                let mut trailer: [u8; 16] = input.array();
                match trailer[0] % 3 {
                    0 => trailer[..6].fill(0xFF),
                    1 => trailer[..6].copy_from_slice(&[0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5]),
                    _ => {}
                }
                if trailer[1].is_multiple_of(2) {
                    trailer[10..].fill(0xFF);
                }
                if let Some(block) = geometry::trailer_block(sector) {
                    put(usize::from(block), &trailer);
                }
            }
            // Any block.
            _ => {
                let block = usize::from(input.byte()) % blocks;
                let bytes: [u8; 16] = input.array();
                put(block, &bytes);
            }
        }
    }
    VirtualCard::from_image(card_type, &image).ok()
}

fn read_reply(e: &Exchange, block: u8) -> Option<[u8; 16]> {
    if e.command != [0xFF, 0xB0, 0x00, block, 0x10] {
        return None;
    }
    match e.reply.as_deref() {
        Some([data @ .., 0x90, 0x00]) => data.try_into().ok(),
        _ => None,
    }
}

/// The write properties over one job's exchanges on the card with `uid` (the UID the hal
/// read when it opened the card; the job never asks again).
pub(crate) fn check_writes(log: &[Exchange], site: &SiteKeys, uid: &[u8]) {
    assert!(log.len() <= MAX_JOB_APDUS, "{} APDUs", log.len());
    assert!(
        !log.iter().any(|e| e.command.starts_with(&[0xFF, 0xCA])),
        "a job asked for the UID again"
    );
    let allowed: Vec<[u8; 16]> = site
        .versions()
        .into_iter()
        .filter_map(|v| site.card_keys(v, uid).ok())
        .flat_map(|keys| {
            [
                job::our_trailer(&keys).to_block(),
                job::directory_trailer(&keys).to_block(),
            ]
        })
        .collect();
    let mut directory: [Option<[u8; 16]>; 2] = [None, None];
    for e in log {
        if let Some(b) = read_reply(e, 1) {
            directory[0] = Some(b);
        }
        if let Some(b) = read_reply(e, 2) {
            directory[1] = Some(b);
        }
        let &[0xFF, 0xD6, p1, block, ref rest @ ..] = e.command.as_slice() else {
            continue;
        };
        assert!(
            p1 == 0 && rest.len() == 17 && rest.first() == Some(&0x10),
            "{:02X?}",
            e.command
        );
        let data = rest.get(1..).unwrap_or_default();
        let sector = geometry::sector_of(block);
        assert!(block != 0, "write to the manufacturer block");
        assert!(sector <= 15, "write to sector {sector}, outside MAD1");
        if geometry::is_trailer(block) {
            assert!(
                allowed.iter().any(|t| t.as_slice() == data),
                "trailer write to block {block} not built by the trailer type"
            );
            let &[_, _, _, _, _, _, a, b, c, ..] = data else {
                panic!("short trailer write");
            };
            let access = AccessBits::decode([a, b, c]);
            assert!(access.is_ok_and(|a| a.trailer().is_rewritable()));
        }
        if sector > 0
            && let [Some(b1), Some(b2)] = directory
            && let Ok(mad) = Mad1::parse(&[b1, b2].concat())
        {
            let aid = mad.aid(sector);
            assert!(
                aid == Some(Aid::FREE) || aid == Some(format::APP_AID),
                "write to block {block} of sector {sector}, registered to {aid:?}"
            );
        }
    }
}

/// Every data block written was read back later with the bytes written.
pub(crate) fn check_read_back(log: &[Exchange]) {
    for (i, e) in log.iter().enumerate() {
        let [0xFF, 0xD6, 0x00, block, 0x10, data @ ..] = e.command.as_slice() else {
            continue;
        };
        if geometry::is_trailer(*block) {
            continue;
        }
        let last_write = !log
            .iter()
            .skip(i + 1)
            .any(|l| l.command.get(..4) == Some(&[0xFF, 0xD6, 0x00, *block]));
        if !last_write {
            continue;
        }
        let read_back = log
            .iter()
            .skip(i + 1)
            .any(|l| read_reply(l, *block).is_some_and(|b| b.as_slice() == data));
        assert!(read_back, "success without reading back block {block}");
    }
}

/// Every error is one of the cloud's types with its exact APDU count (and a sub-code where the
/// type has them).
pub(crate) fn check_error(e: &JobError, log: &[Exchange]) {
    assert!(ERROR_TYPES.contains(&e.name()), "{}", e.name());
    assert_eq!(e.apdu_count(), log.len(), "{e:?}");
    if matches!(
        e,
        JobError::Incompatible { .. } | JobError::Uncategorized { .. }
    ) {
        assert!(e.sub_code().is_some());
    }
}

/// The properties of one scan's outcome over its exchanges: exact count, no credential nobody
/// asked for, and after an honest encode an honest scan finds it. Its state or error name.
pub(crate) fn check_scan(
    log: &[Exchange],
    result: Result<job::ScanOutcome, encoder_protocol::error::JobError>,
    fuzzed: bool,
    asked: &[Credential],
    last_good: Option<&Credential>,
) -> Result<CardState, &'static str> {
    match result {
        Ok(outcome) => {
            assert_eq!(outcome.apdu_count, log.len());
            if let Some(found) = &outcome.credential {
                assert!(
                    asked.contains(&found.credential),
                    "a credential nobody wrote: {found:?}"
                );
                assert_eq!(outcome.state, CardState::Ours);
            }
            if !fuzzed && let Some(good) = last_good {
                assert_eq!(
                    outcome.credential.as_ref().map(|c| &c.credential),
                    Some(good),
                    "an honest scan after an honest encode"
                );
            }
            Ok(outcome.state)
        }
        Err(e) => {
            check_error(&e, log);
            assert!(
                fuzzed || last_good.is_none(),
                "an honest scan after an honest encode failed: {e:?}"
            );
            Err(e.name())
        }
    }
}

/// See the module docs.
pub fn whole_job(data: &[u8]) {
    let _ = run(data);
}

/// What the jobs of one run ended with (`None`: the card could not be prepared).
#[derive(Debug, Default, PartialEq, Eq)]
struct Summary {
    encodes: Vec<Result<bool, &'static str>>,
    scans: Vec<Result<CardState, &'static str>>,
}

fn run(data: &[u8]) -> Option<Summary> {
    let mut summary = Summary::default();
    let mut input = Input::new(data);
    let flags = input.byte();
    let card = prepare(&mut input)?;
    let info = CardInfo::new(card.uid().to_vec(), Some(card.atr()), None, None);
    let site = site_keys(flags & 1 != 0);
    let mut card = FuzzCard {
        card,
        input: Input::new(&[]),
        fuzzed: false,
        removed: false,
        deviated: false,
        log: Vec::new(),
        statuses: &STATUS_WORDS,
    };
    let mut asked: Vec<Credential> = Vec::new();
    if flags & 2 != 0 {
        // Encoded earlier, honestly, with key version 1 only.
        let first = credential(&mut input, 1);
        asked.push(first.clone());
        let _ = job::encode(&mut card, &info, &site_keys(false), &first);
    }
    let wanted = [credential(&mut input, 2), credential(&mut input, 3)];
    card.input = input;
    let mut last_good: Option<Credential> = None;
    for credential in &wanted {
        card.next_job(true);
        asked.push(credential.clone());
        let result = job::encode(&mut card, &info, &site, credential);
        check_writes(&card.log, &site, &info.uid);
        match result {
            Ok(outcome) => {
                summary.encodes.push(Ok(outcome.first_encode));
                check_read_back(&card.log);
                assert_eq!(outcome.apdu_count, card.log.len());
                assert_eq!(&outcome.written.credential, credential);
                assert_eq!(outcome.uid, info.uid);
                last_good = (!card.deviated).then(|| credential.clone());
            }
            Err(e) => {
                summary.encodes.push(Err(e.name()));
                check_error(&e, &card.log);
                if card
                    .log
                    .iter()
                    .any(|e| e.command.starts_with(&[0xFF, 0xD6]))
                {
                    last_good = None;
                }
            }
        }
    }
    for fuzzed in [true, false] {
        card.next_job(fuzzed);
        let result = job::scan(&mut card, &info, &site);
        check_writes(&card.log, &site, &info.uid);
        assert!(
            !card
                .log
                .iter()
                .any(|e| e.command.starts_with(&[0xFF, 0xD6])),
            "a scan wrote to the card"
        );
        summary.scans.push(check_scan(
            &card.log,
            result,
            fuzzed,
            &asked,
            last_good.as_ref(),
        ));
    }
    Some(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honest_replies_encode_reencode_and_scan() {
        // The seed `blank-1k`: a factory 1K card, every reply honest.
        let summary = run(&[0x00, 0x00, 0x00, 0, 3, 0, 3]);
        let ours = Ok(CardState::Ours);
        assert_eq!(
            summary,
            Some(Summary {
                encodes: vec![Ok(true), Ok(false)],
                scans: vec![ours, ours],
            })
        );
        // Encoded earlier with key version 1, then re-encoded by a site at version 2.
        let summary = run(&[0x03, 0x00, 0x00, 0, 3, 0, 3, 0, 3]).unwrap_or_default();
        assert_eq!(summary.encodes, vec![Ok(false), Ok(false)]);
        // A DESFire card is refused, and a scan says so.
        let summary = run(&[0x00, 0x07, 0x00]).unwrap_or_default();
        assert_eq!(summary.encodes, vec![Err("incompatible_card_format"); 2]);
        assert_eq!(summary.scans, vec![Ok(CardState::Unsupported); 2]);
    }

    #[test]
    fn a_forged_read_back_is_caught_by_the_job_not_the_target() {
        // After the honest preparation bytes, make the first replies forged: whatever the job
        // decides, the target's properties hold (no panic).
        let mut data = vec![0x00, 0x00, 0x00, 0, 3, 0, 3];
        data.extend_from_slice(&[200, 2, 0x90, 0x00, 216, 1, 230, 0, 1, 246]);
        assert!(run(&data).is_some());
    }
}
