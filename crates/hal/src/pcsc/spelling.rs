//! Spelling canonical storage-card commands in a reader family's dialect ([`super::dialect`]).
//!
//! The jobs send canonical commands ([`StorageCommand`], the PC/SC Part 3 baseline form,
//! docs/reference/pcsc-part3.md §1); [`Speller::run`] turns one into the APDUs the reader takes
//! and their answers back into one canonical answer: data + `90 00`, or a status word where
//! the family's "refused" words read as `63 00`. It does no I/O itself: the session hands it
//! the exchange and the card reset as closures, so it is tested without a reader.

use std::sync::{Arc, Mutex, PoisonError};

use encoder_protocol::apdu::{KeySlot, StorageCommand};
use encoder_protocol::keys::Crypto1Key;
use encoder_protocol::mifare::geometry;

use super::dialect::{Dialect, KeyStore, MultiRead, Signal};
use crate::encoder::Feedback;
use crate::error::HalError;

const OK: [u8; 2] = [0x90, 0x00];
const REFUSED: [u8; 2] = [0x63, 0x00];

/// The keys this process put into a reader's non-volatile key store (LOAD KEYS P1 bit 5, as
/// the OMNIKEY entries use), slot by slot, shared by the sessions of one encoder: a key already
/// in its slot is not written again, so the reader's EEPROM is not rewritten by every job
/// (docs/reference/readers.md §3, §8).
pub(crate) type StoredKeys = Arc<Mutex<Vec<Option<Crypto1Key>>>>;

/// The per-session state of a dialect: keys held for key-type readers, and whether the card
/// must be reset before the next authentication.
#[derive(Debug)]
pub(crate) struct Speller {
    dialect: &'static Dialect,
    /// Canonical slot → key: the keys the job loaded (for [`KeyStore::ByKeyType`] readers
    /// loaded lazily; for stored keys, what to write if the store turns out stale).
    held: Vec<Option<Crypto1Key>>,
    /// The encoder's record of its non-volatile store, for stores that keep keys.
    stored: Option<StoredKeys>,
    /// Slots whose load was skipped in this session because the store held the key: not yet
    /// proven by an authentication.
    unproven: Vec<bool>,
    /// What the reader holds for key A and key B (by key-type readers), as far as we know.
    in_reader: [Option<Crypto1Key>; 2],
    /// A failed authentication left the card halted and the reader does not select it again.
    reset_pending: bool,
}

/// The exchange: one APDU out, the reader's whole answer back.
pub(crate) type Exchange<'a> = dyn FnMut(&[u8]) -> Result<Vec<u8>, HalError> + 'a;

/// The card reset (`SCardReconnect` with `SCARD_RESET_CARD`).
pub(crate) type Reset<'a> = dyn FnMut() -> Result<(), HalError> + 'a;

fn status_of(reply: &[u8]) -> [u8; 2] {
    match reply {
        [.., a, b] => [*a, *b],
        _ => REFUSED,
    }
}

impl Speller {
    /// A speller for `dialect`; `stored` is the encoder's record of the reader's
    /// non-volatile key store (used only where the dialect stores keys non-volatile).
    pub(crate) fn new(dialect: &'static Dialect, stored: Option<StoredKeys>) -> Self {
        let slots = usize::from(dialect.caps().key_slots);
        let non_volatile = matches!(dialect.keys, KeyStore::Slots { p1, .. } if p1 & 0x20 != 0);
        Self {
            dialect,
            held: vec![None; slots],
            stored: stored.filter(|_| non_volatile),
            unproven: vec![false; slots],
            in_reader: [None, None],
            reset_pending: false,
        }
    }

    /// The family's answer, with its refusals read as `63 00`.
    fn canonical(&self, mut reply: Vec<u8>) -> Vec<u8> {
        let sw = status_of(&reply);
        if self.dialect.refusals.contains(&sw) {
            let len = reply.len().saturating_sub(2);
            reply.truncate(len);
            reply.extend_from_slice(&REFUSED);
        }
        reply
    }

    /// Sends `op` in the reader's dialect; see the module docs.
    pub(crate) fn run(
        &mut self,
        op: &StorageCommand,
        canonical_bytes: &[u8],
        exchange: &mut Exchange<'_>,
        reset: &mut Reset<'_>,
    ) -> Result<Vec<u8>, HalError> {
        let d = self.dialect;
        match op {
            StorageCommand::GetUid => exchange(canonical_bytes),
            StorageCommand::LoadKey { slot, key } => match d.keys {
                KeyStore::Slots { slots, .. } => {
                    if slot.number() >= slots {
                        return Ok(REFUSED.to_vec());
                    }
                    let i = usize::from(slot.number());
                    if let Some(held) = self.held.get_mut(i) {
                        *held = Some(*key);
                    }
                    if self.stored_key(i) == Some(*key) {
                        if let Some(u) = self.unproven.get_mut(i) {
                            *u = true;
                        }
                        return Ok(OK.to_vec());
                    }
                    self.store_key(*slot, *key, exchange)
                }
                KeyStore::ByKeyType { .. } => match self.held.get_mut(usize::from(slot.number())) {
                    Some(held) => {
                        *held = Some(*key);
                        Ok(OK.to_vec())
                    }
                    None => Ok(REFUSED.to_vec()),
                },
            },
            StorageCommand::Authenticate {
                block,
                key_type,
                slot,
            } => self.authenticate(*block, *key_type, *slot, exchange, reset),
            StorageCommand::Read { block, count } => self.read(*block, *count, exchange),
            StorageCommand::Write { .. } => exchange(canonical_bytes).map(|r| self.canonical(r)),
        }
    }

    /// What the encoder's record says non-volatile slot `i` holds.
    fn stored_key(&self, i: usize) -> Option<Crypto1Key> {
        let stored = self.stored.as_ref()?;
        let keys = stored.lock().unwrap_or_else(PoisonError::into_inner);
        keys.get(i).copied().flatten()
    }

    /// `FF 82 <p1> <slot> 06 <key>`, and the record of the store updated.
    fn store_key(
        &mut self,
        slot: KeySlot,
        key: Crypto1Key,
        exchange: &mut Exchange<'_>,
    ) -> Result<Vec<u8>, HalError> {
        let KeyStore::Slots { p1, .. } = self.dialect.keys else {
            return Ok(REFUSED.to_vec());
        };
        let i = usize::from(slot.number());
        if let Some(u) = self.unproven.get_mut(i) {
            *u = false;
        }
        let mut apdu = vec![0xFF, 0x82, p1, slot.number(), 0x06];
        apdu.extend_from_slice(&key.to_bytes());
        let reply = self.canonical(exchange(&apdu)?);
        if let Some(stored) = &self.stored {
            let mut keys = stored.lock().unwrap_or_else(PoisonError::into_inner);
            if keys.len() <= i {
                keys.resize(i + 1, None);
            }
            if let Some(k) = keys.get_mut(i) {
                *k = (status_of(&reply) == OK).then_some(key);
            }
        }
        Ok(reply)
    }

    /// Authenticates; where the key's load was skipped (the store held it) and the card
    /// refuses, the store may have been changed behind our back: write the key and try once
    /// more.
    fn authenticate(
        &mut self,
        block: u8,
        key_type: u8,
        slot: KeySlot,
        exchange: &mut Exchange<'_>,
        reset: &mut Reset<'_>,
    ) -> Result<Vec<u8>, HalError> {
        let reply = self.authenticate_once(block, key_type, slot, exchange, reset)?;
        let i = usize::from(slot.number());
        if status_of(&reply) == OK || !self.unproven.get(i).copied().unwrap_or(false) {
            if let Some(u) = self.unproven.get_mut(i) {
                *u = false;
            }
            return Ok(reply);
        }
        let Some(Some(key)) = self.held.get(i).copied() else {
            return Ok(reply);
        };
        let loaded = self.store_key(slot, key, exchange)?;
        if status_of(&loaded) != OK {
            return Ok(loaded);
        }
        self.authenticate_once(block, key_type, slot, exchange, reset)
    }

    fn authenticate_once(
        &mut self,
        block: u8,
        key_type: u8,
        slot: KeySlot,
        exchange: &mut Exchange<'_>,
        reset: &mut Reset<'_>,
    ) -> Result<Vec<u8>, HalError> {
        let d = self.dialect;
        if self.reset_pending {
            reset()?;
            self.reset_pending = false;
        }
        let key_no = match d.keys {
            KeyStore::Slots { .. } => slot.number(),
            KeyStore::ByKeyType { auth_key_no } => {
                let Some(Some(key)) = self.held.get(usize::from(slot.number())).copied() else {
                    return Ok(REFUSED.to_vec());
                };
                let index = usize::from(key_type == 0x61);
                if self.in_reader.get(index).copied().flatten() != Some(key) {
                    if let Some(known) = self.in_reader.get_mut(index) {
                        *known = None;
                    }
                    let mut apdu = vec![0xFF, 0x82, 0x00, key_type, 0x06];
                    apdu.extend_from_slice(&key.to_bytes());
                    let reply = self.canonical(exchange(&apdu)?);
                    if status_of(&reply) != OK {
                        return Ok(reply);
                    }
                    if let Some(known) = self.in_reader.get_mut(index) {
                        *known = Some(key);
                    }
                }
                auth_key_no
            }
        };
        let apdu = if d.general_auth {
            vec![
                0xFF, 0x86, 0x00, 0x00, 0x05, 0x01, 0x00, block, key_type, key_no,
            ]
        } else {
            vec![0xFF, 0x88, 0x00, block, key_type, key_no]
        };
        let reply = self.canonical(exchange(&apdu)?);
        if status_of(&reply) != OK && !d.reselects_after_failed_auth {
            self.reset_pending = true;
        }
        Ok(reply)
    }

    fn read(
        &mut self,
        block: u8,
        count: u8,
        exchange: &mut Exchange<'_>,
    ) -> Result<Vec<u8>, HalError> {
        let d = self.dialect;
        let sector = geometry::sector_of(block);
        // FF B1 reads exactly the three data blocks of a small sector.
        if d.multi_read == MultiRead::SectorCommand
            && count == 3
            && sector < 32
            && geometry::data_blocks(sector).next() == Some(block)
        {
            return exchange(&[0xFF, 0xB1, 0x00, sector, 0x00]).map(|r| self.canonical(r));
        }
        let max = match d.multi_read {
            MultiRead::Binary { max } => max.max(1),
            MultiRead::Single | MultiRead::SectorCommand => 1,
        };
        let mut data = Vec::with_capacity(usize::from(count) * 16);
        let mut next = block;
        let end = block.saturating_add(count.max(1));
        while next < end {
            let n = (end - next).min(max);
            let le = if n == 1 { d.read_le } else { n * 16 };
            let reply = self.canonical(exchange(&[0xFF, 0xB0, 0x00, next, le])?);
            if status_of(&reply) != OK {
                return Ok(reply);
            }
            data.extend_from_slice(
                reply
                    .get(..reply.len().saturating_sub(2))
                    .unwrap_or_default(),
            );
            next = next.saturating_add(n);
        }
        data.extend_from_slice(&OK);
        Ok(data)
    }

    /// The LED and buzzer APDU for `feedback`, if the family has one (with a card present).
    pub(crate) fn signal_apdu(&self, feedback: Feedback) -> Option<[u8; 9]> {
        match self.dialect.signal {
            Signal::None => None,
            // LED control bits (A122 §6.2): 0-1 final red/green, 2-3 red/green mask, 4-5
            // initial red/green blink, 6-7 red/green blink mask. T1/T2 in 100 ms units;
            // buzzer 01 = during T1.
            // Success: green blinks once with one short beep. Failure: red blinks three
            // times, beeping each time.
            Signal::AcsLedBuzzer => Some(match feedback {
                Feedback::Success => [0xFF, 0x00, 0x40, 0xA8, 0x04, 0x01, 0x01, 0x01, 0x01],
                Feedback::Failure => [0xFF, 0x00, 0x40, 0x54, 0x04, 0x02, 0x01, 0x03, 0x01],
            }),
        }
    }

    /// Whether `reply` to [`Self::signal_apdu`] means it worked (ACS: `90 <LED state>`).
    pub(crate) fn signal_ok(&self, reply: &[u8]) -> bool {
        match self.dialect.signal {
            Signal::AcsLedBuzzer => matches!(status_of(reply), [0x90, _]),
            Signal::None => status_of(reply) == OK,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::pcsc::dialect::{BASELINE, by_id};
    use encoder_protocol::apdu;
    use encoder_protocol::hex;
    use encoder_protocol::mifare::access::KeyType;

    /// Runs `commands` against a reader answering from `answer`, returning what was sent.
    fn spell(
        id: &str,
        commands: &[Vec<u8>],
        mut answer: impl FnMut(&[u8]) -> Vec<u8>,
    ) -> (Vec<String>, Vec<Vec<u8>>, usize) {
        let mut speller = Speller::new(by_id(id).unwrap(), None);
        let mut sent = Vec::new();
        let mut replies = Vec::new();
        let mut resets = 0;
        for c in commands {
            let op = StorageCommand::parse(c).unwrap();
            let mut ex = |apdu: &[u8]| {
                sent.push(hex::encode(apdu));
                Ok(answer(apdu))
            };
            let mut rs = || {
                resets += 1;
                Ok(())
            };
            replies.push(speller.run(&op, c, &mut ex, &mut rs).unwrap());
        }
        (sent, replies, resets)
    }

    fn ok_reader(apdu: &[u8]) -> Vec<u8> {
        match apdu {
            [0xFF, 0xB0, _, _, 0x00 | 0x10] => [vec![0x11; 16], OK.to_vec()].concat(),
            [0xFF, 0xB0, _, _, le] => [vec![0x11; usize::from(*le)], OK.to_vec()].concat(),
            [0xFF, 0xB1, ..] => [vec![0x11; 48], OK.to_vec()].concat(),
            _ => OK.to_vec(),
        }
    }

    #[test]
    fn omnikey_loads_into_its_store_and_reads_with_le_00() {
        let key = Crypto1Key::FACTORY;
        let cmds = [
            apdu::load_key(KeySlot::new(5), key).to_bytes(),
            apdu::authenticate(4, KeyType::A, KeySlot::new(5)).to_bytes(),
            apdu::read_blocks(4, 3).to_bytes(),
        ];
        let (sent, replies, _) = spell("omnikey5422", &cmds, ok_reader);
        assert_eq!(
            sent,
            [
                "FF82200506FFFFFFFFFFFF",
                "FF860000050100046005",
                "FFB0000400",
                "FFB0000500",
                "FFB0000600"
            ]
        );
        assert_eq!(replies[2].len(), 50);
    }

    #[test]
    fn key_type_readers_load_lazily_and_once() {
        let a = Crypto1Key::FACTORY;
        let b = Crypto1Key::new([1, 2, 3, 4, 5, 6]);
        let cmds = [
            apdu::load_key(KeySlot::SLOT0, a).to_bytes(),
            apdu::load_key(KeySlot::SLOT1, b).to_bytes(),
            apdu::authenticate(3, KeyType::A, KeySlot::SLOT0).to_bytes(),
            apdu::authenticate(7, KeyType::A, KeySlot::SLOT0).to_bytes(),
            apdu::authenticate(7, KeyType::B, KeySlot::SLOT1).to_bytes(),
            apdu::read_blocks(4, 3).to_bytes(),
            apdu::read_blocks(1, 2).to_bytes(),
        ];
        let (sent, replies, _) = spell("utrust3720f", &cmds, ok_reader);
        assert_eq!(
            sent,
            [
                "FF82006006FFFFFFFFFFFF",
                "FF860000050100036001",
                "FF860000050100076001",
                "FF82006106010203040506",
                "FF860000050100076101",
                "FFB1000100",
                "FFB0000110",
                "FFB0000210",
            ]
        );
        assert!(replies.iter().all(|r| r.ends_with(&OK)));
        assert_eq!(replies[5].len(), 50);
        assert_eq!(replies[6].len(), 34);
    }

    #[test]
    fn failed_authentication_resets_unless_the_reader_reselects() {
        let cmds = [
            apdu::load_key(KeySlot::SLOT0, Crypto1Key::FACTORY).to_bytes(),
            apdu::authenticate(4, KeyType::A, KeySlot::SLOT0).to_bytes(),
            apdu::authenticate(4, KeyType::A, KeySlot::SLOT0).to_bytes(),
        ];
        let refuse_first_auth = |id: &str, sw: [u8; 2]| {
            let mut first = true;
            spell(id, &cmds, move |apdu| {
                if apdu[1] == 0x86 && std::mem::take(&mut first) {
                    sw.to_vec()
                } else {
                    OK.to_vec()
                }
            })
        };
        let (_, replies, resets) = refuse_first_auth("acr122u", REFUSED);
        assert_eq!((replies[1].clone(), resets), (REFUSED.to_vec(), 0));
        let (_, replies, resets) = refuse_first_auth("scl3711", [0x69, 0x82]);
        // 69 82 reads as the Part 3 refusal; one reset before the next authentication.
        assert_eq!((replies[1].clone(), resets), (REFUSED.to_vec(), 1));
        assert_eq!(replies[2], OK.to_vec());
    }

    /// OMNIKEY keys live in EEPROM: a key already in its slot is not written again by the
    /// next job; if the store changed behind our back, the refused authentication writes it
    /// and tries once more.
    #[test]
    fn stored_keys_are_written_once_and_rewritten_when_stale() {
        let stored = StoredKeys::default();
        let key = Crypto1Key::new([1, 2, 3, 4, 5, 6]);
        let cmds = [
            apdu::load_key(KeySlot::SLOT0, key).to_bytes(),
            apdu::authenticate(4, KeyType::B, KeySlot::SLOT0).to_bytes(),
        ];
        let job = |refuse_first: bool| {
            let mut speller = Speller::new(by_id("omnikey5422").unwrap(), Some(stored.clone()));
            let mut sent = Vec::new();
            let mut first = refuse_first;
            let mut resets = 0;
            let mut last = Vec::new();
            for c in &cmds {
                let op = StorageCommand::parse(c).unwrap();
                let mut ex = |apdu: &[u8]| {
                    sent.push(hex::encode(apdu));
                    Ok(if apdu[1] == 0x86 && std::mem::take(&mut first) {
                        vec![0x69, 0x82]
                    } else {
                        OK.to_vec()
                    })
                };
                let mut rs = || {
                    resets += 1;
                    Ok(())
                };
                last = speller.run(&op, c, &mut ex, &mut rs).unwrap();
            }
            (sent, last, resets)
        };
        let (sent, last, _) = job(false);
        assert_eq!(sent, ["FF82200006010203040506", "FF860000050100046100"]);
        assert_eq!(last, OK);
        let (sent, last, _) = job(false);
        assert_eq!(sent, ["FF860000050100046100"], "not written again");
        assert_eq!(last, OK);
        let (sent, last, resets) = job(true);
        assert_eq!(
            sent,
            [
                "FF860000050100046100",
                "FF82200006010203040506",
                "FF860000050100046100"
            ]
        );
        assert_eq!((last, resets), (OK.to_vec(), 1));
    }

    #[test]
    fn acr1252u_reads_three_blocks_at_once_and_acs_signals() {
        let cmds = [
            apdu::read_blocks(4, 3).to_bytes(),
            apdu::read_blocks(8, 2).to_bytes(),
        ];
        let (sent, _, _) = spell("acr1252u", &cmds, ok_reader);
        assert_eq!(sent, ["FFB0000430", "FFB0000820"]);
        let s = Speller::new(by_id("acr1252u").unwrap(), None);
        assert!(s.signal_apdu(Feedback::Success) != s.signal_apdu(Feedback::Failure));
        assert!(s.signal_ok(&[0x90, 0x02]) && !s.signal_ok(&[0x63, 0x00]));
        assert_eq!(
            Speller::new(&BASELINE, None).signal_apdu(Feedback::Success),
            None
        );
    }
}
