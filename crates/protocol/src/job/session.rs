//! The APDU layer of a job: one [`Session`] per job, which counts APDUs, keeps track of the
//! reader's key slots and the current authentication so that each key is loaded once (as long
//! as the reader has a slot for each, [`ReaderCaps::key_slots`]) and each sector authenticated
//! once per pass, reads runs of blocks in as few reads as the reader allows
//! ([`ReaderCaps::read_blocks`]), and maps every failure to a [`JobError`].
//!
//! Everything it sends is a canonical storage-card command
//! ([`StorageCommand`](crate::apdu::StorageCommand)); the hal spells it for the reader.

use crate::apdu::{self, Command, KeySlot, Response};
use crate::card::{CardInfo, CardType};
use crate::error::{Detail, Incompatibility, JobError, Uncategorized};
use crate::keys::Crypto1Key;
use crate::mifare::Block;
use crate::mifare::access::KeyType;
use crate::mifare::geometry;
use crate::mifare::trailer::Trailer;
use crate::status::StatusWord;
use crate::transmit::{ReaderCaps, Transmit, TransmitError, TransmitErrorKind};

/// A failed transmission as a job error: a card removed after the first write (`wrote`) is
/// `encoding_interrupted`, before it `no_card_on_encoder` (docs/cloud-protocol.md §6).
pub(crate) fn transmit_job_error(e: &TransmitError, wrote: bool, mut detail: Detail) -> JobError {
    detail.note = e.to_string();
    match e.kind() {
        TransmitErrorKind::CardRemoved if wrote => JobError::EncodingInterrupted(detail),
        TransmitErrorKind::CardRemoved => JobError::NoCard(detail),
        TransmitErrorKind::ReaderUnavailable => JobError::EncoderNotOnline(detail),
        TransmitErrorKind::Timeout => JobError::CommunicationTimeout(detail),
        _ => JobError::Uncategorized {
            code: Uncategorized::TransmitFailed,
            detail,
        },
    }
}

pub(crate) struct Session<'t, T: Transmit + ?Sized> {
    tx: &'t mut T,
    pub(crate) apdus: usize,
    /// A write has been sent (or attempted): from now on a lost card is `encoding_interrupted`.
    pub(crate) wrote: bool,
    /// Key slot `i` holds this key, last used at this tick.
    slots: Vec<Option<(Crypto1Key, u64)>>,
    caps: ReaderCaps,
    tick: u64,
    authed: Option<(u8, KeyType, Crypto1Key)>,
    pub(crate) last_status: Option<StatusWord>,
    pub(crate) card_type: CardType,
}

impl<'t, T: Transmit + ?Sized> Session<'t, T> {
    pub(crate) fn new(tx: &'t mut T, card_type: CardType) -> Self {
        let caps = tx.reader_caps().sane();
        Self {
            tx,
            apdus: 0,
            wrote: false,
            slots: vec![None; usize::from(caps.key_slots)],
            caps,
            tick: 0,
            authed: None,
            last_status: None,
            card_type,
        }
    }

    pub(crate) fn detail(&self, step: &'static str, block: Option<u8>) -> Detail {
        Detail {
            step,
            block,
            status: self.last_status,
            apdus: self.apdus,
            note: String::new(),
        }
    }

    pub(crate) fn fail(
        &self,
        code: Uncategorized,
        step: &'static str,
        block: Option<u8>,
        note: impl Into<String>,
    ) -> JobError {
        let mut detail = self.detail(step, block);
        detail.note = note.into();
        JobError::Uncategorized { code, detail }
    }

    pub(crate) fn incompatible(
        &self,
        reason: Incompatibility,
        step: &'static str,
        block: Option<u8>,
    ) -> JobError {
        JobError::Incompatible {
            reason,
            detail: self.detail(step, block),
        }
    }

    fn transmit_error(&self, e: &TransmitError, step: &'static str, block: Option<u8>) -> JobError {
        transmit_job_error(e, self.wrote, self.detail(step, block))
    }

    fn send(
        &mut self,
        cmd: &Command,
        step: &'static str,
        block: Option<u8>,
    ) -> Result<Response, JobError> {
        self.apdus += 1;
        self.last_status = None;
        let raw = self
            .tx
            .transmit(&cmd.to_bytes())
            .map_err(|e| self.transmit_error(&e, step, block))?;
        let response = Response::parse(&raw).map_err(|e| {
            self.fail(
                Uncategorized::UnexpectedResponse,
                step,
                block,
                e.to_string(),
            )
        })?;
        self.last_status = Some(response.status());
        Ok(response)
    }

    /// What the reader offers.
    pub(crate) fn caps(&self) -> ReaderCaps {
        self.caps
    }

    /// The UID the hal read when it opened the card (4, 7 or 10 bytes), checked; no APDU.
    pub(crate) fn uid(&self, info: &CardInfo) -> Result<Vec<u8>, JobError> {
        if !crate::keys::UID_LENGTHS.contains(&info.uid.len()) {
            return Err(self.fail(
                Uncategorized::UidUnavailable,
                "get_uid",
                None,
                format!("UID of {} bytes", info.uid.len()),
            ));
        }
        Ok(info.uid.clone())
    }

    fn slot_for(&mut self, key: Crypto1Key, step: &'static str) -> Result<KeySlot, JobError> {
        self.tick += 1;
        let tick = self.tick;
        let index_of = |i: usize| KeySlot::new(u8::try_from(i).unwrap_or(0));
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if let Some((k, used)) = slot
                && *k == key
            {
                *used = tick;
                return Ok(index_of(i));
            }
        }
        // An empty slot, else the least recently used one.
        let i = self
            .slots
            .iter()
            .position(Option::is_none)
            .or_else(|| {
                self.slots
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| s.map_or(0, |(_, used)| used))
                    .map(|(i, _)| i)
            })
            .unwrap_or(0);
        let slot = index_of(i);
        // Forget the slot before loading: a failed load leaves it unknown.
        if let Some(s) = self.slots.get_mut(i) {
            *s = None;
        }
        let response = self.send(&apdu::load_key(slot, key), step, None)?;
        if !response.status().is_success() {
            return Err(self.fail(
                Uncategorized::CommandRejected,
                step,
                None,
                "load key refused",
            ));
        }
        if let Some(s) = self.slots.get_mut(i) {
            *s = Some((key, tick));
        }
        Ok(slot)
    }

    /// Authenticates `sector` with `key` as `key_type`, unless that is the current
    /// authentication already. `Ok(false)` when the card refuses (wrong key or not a MIFARE
    /// Classic card); the card is then halted and the reader re-selects it on the next
    /// authentication.
    pub(crate) fn auth(
        &mut self,
        sector: u8,
        key_type: KeyType,
        key: Crypto1Key,
        step: &'static str,
    ) -> Result<bool, JobError> {
        if self.authed == Some((sector, key_type, key)) {
            return Ok(true);
        }
        let Some(trailer) = geometry::trailer_block(sector) else {
            return Ok(false);
        };
        let slot = self.slot_for(key, step)?;
        self.authed = None;
        let response = self.send(
            &apdu::authenticate(trailer, key_type, slot),
            step,
            Some(trailer),
        )?;
        if response.status().is_success() {
            self.authed = Some((sector, key_type, key));
            Ok(true)
        } else if response.status().is_unsupported() {
            Err(self.incompatible(
                Incompatibility::NotMifareClassic(self.card_type),
                step,
                Some(trailer),
            ))
        } else {
            Ok(false)
        }
    }

    /// Reads one block of the currently authenticated sector.
    pub(crate) fn read(&mut self, block: u8, step: &'static str) -> Result<Block, JobError> {
        let mut blocks = self.read_run(block, 1, step)?;
        blocks.pop().ok_or_else(|| {
            self.fail(
                Uncategorized::UnexpectedResponse,
                step,
                Some(block),
                "no block read",
            )
        })
    }

    /// Reads `blocks` (of currently authenticated sectors: one sector at a time, the caller
    /// authenticates in between) in order, each run of consecutive blocks of one sector in as
    /// few reads as the reader allows. Trailers are read on their own (some readers refuse
    /// them in multi-block reads, docs/reference/readers.md §5).
    pub(crate) fn read_many(
        &mut self,
        blocks: &[u8],
        step: &'static str,
    ) -> Result<Vec<Block>, JobError> {
        let mut out = Vec::with_capacity(blocks.len());
        let mut rest = blocks;
        while let Some((&first, _)) = rest.split_first() {
            let max = usize::from(self.caps.read_blocks);
            let run = if geometry::is_trailer(first) {
                1
            } else {
                rest.iter()
                    .zip(first..)
                    .take_while(|(b, expect)| {
                        **b == *expect
                            && !geometry::is_trailer(**b)
                            && geometry::sector_of(**b) == geometry::sector_of(first)
                    })
                    .count()
                    .clamp(1, max)
            };
            out.extend(self.read_run(first, u8::try_from(run).unwrap_or(1), step)?);
            rest = rest.get(run..).unwrap_or_default();
        }
        Ok(out)
    }

    /// One canonical read of `count` consecutive blocks from `block`.
    fn read_run(
        &mut self,
        block: u8,
        count: u8,
        step: &'static str,
    ) -> Result<Vec<Block>, JobError> {
        let response = self.send(&apdu::read_blocks(block, count), step, Some(block))?;
        if !response.status().is_success() {
            self.authed = None;
            return Err(self.fail(
                Uncategorized::CommandRejected,
                step,
                Some(block),
                "read refused",
            ));
        }
        let data = response.data();
        if data.len() != usize::from(count) * 16 {
            return Err(self.fail(
                Uncategorized::UnexpectedResponse,
                step,
                Some(block),
                format!(
                    "{} bytes instead of {}",
                    data.len(),
                    usize::from(count) * 16
                ),
            ));
        }
        Ok(data
            .chunks_exact(16)
            .filter_map(|c| Block::try_from(c).ok())
            .collect())
    }

    fn check_write(
        &mut self,
        response: &Response,
        step: &'static str,
        block: u8,
    ) -> Result<(), JobError> {
        if response.status().is_success() {
            Ok(())
        } else {
            self.authed = None;
            Err(self.fail(
                Uncategorized::CommandRejected,
                step,
                Some(block),
                "write refused",
            ))
        }
    }

    /// Tells the transport, once per job, that the first card write comes next; from then on
    /// a lost card is `encoding_interrupted`. A refusal leaves the card untouched.
    fn announce_write(&mut self, step: &'static str, block: u8) -> Result<(), JobError> {
        if !self.wrote {
            self.tx
                .before_first_write()
                .map_err(|e| self.transmit_error(&e, step, Some(block)))?;
            self.wrote = true;
        }
        Ok(())
    }

    /// Writes a data block of the currently authenticated sector.
    pub(crate) fn write(
        &mut self,
        block: u8,
        data: &Block,
        step: &'static str,
    ) -> Result<(), JobError> {
        let cmd = apdu::write_block(block, data).map_err(|e| {
            self.fail(
                Uncategorized::CommandRejected,
                step,
                Some(block),
                e.to_string(),
            )
        })?;
        self.announce_write(step, block)?;
        let response = self.send(&cmd, step, Some(block))?;
        self.check_write(&response, step, block)
    }

    /// Writes the trailer of the currently authenticated `sector`.
    pub(crate) fn write_trailer(
        &mut self,
        sector: u8,
        trailer: &Trailer,
        step: &'static str,
    ) -> Result<(), JobError> {
        let block = geometry::trailer_block(sector).unwrap_or(0);
        let cmd = apdu::write_trailer(block, trailer).map_err(|e| {
            self.fail(
                Uncategorized::CommandRejected,
                step,
                Some(block),
                e.to_string(),
            )
        })?;
        self.announce_write(step, block)?;
        let response = self.send(&cmd, step, Some(block))?;
        self.check_write(&response, step, block)?;
        // The keys changed under the current authentication: authenticate afresh next time.
        self.authed = None;
        Ok(())
    }
}
