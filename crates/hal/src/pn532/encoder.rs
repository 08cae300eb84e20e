//! A PN532 module on a serial line as an [`Encoder`] that speaks PC/SC Part 3.
//!
//! The session translates the PC/SC Part 3 storage-card commands (docs/reference/pcsc-part3.md §1)
//! to PN532 `InDataExchange` MIFARE commands and answers with the status words of an ACS ACR122U
//! (whose firmware does the same translation in front of its own PN532): `90 00` success, `63 00`
//! any failure, `6A 81` unsupported. Key slots 0 and 1 are volatile and live here. After a failed
//! authentication (or any refused card command) the card is halted, so the next command first
//! re-selects it with `InListPassiveTarget`, as ACR122U firmware does.

use std::time::{Duration, Instant};

use encoder_protocol::transmit::{Transmit, TransmitError};

use super::chip::{Chip, Status, Target};
use super::link::{Link, LinkConfig};
use crate::backoff::Backoff;
use crate::cancel::Canceller;
use crate::encoder::{CardInfo, CardSession, Encoder, EncoderKind, hex};
use crate::error::{ErrorKind, HalError};

/// Settings of a PN532 encoder.
#[derive(Debug, Clone)]
pub struct Pn532Config {
    /// Serial line timing.
    pub link: LinkConfig,
    /// `MxRtyPassiveActivation`: how often the chip retries activation before answering "no
    /// target" (0xFF would wait forever). Each retry costs the chip a few milliseconds.
    pub passive_retries: u8,
    /// Pause between two unsuccessful `InListPassiveTarget` calls of a wait, so a waiting
    /// encoder costs neither CPU nor line time; cancellable.
    pub poll_interval: Duration,
    /// Reply wait for `InListPassiveTarget`.
    pub list_timeout: Duration,
}

impl Default for Pn532Config {
    fn default() -> Self {
        Self {
            link: LinkConfig::default(),
            passive_retries: 0x02,
            poll_interval: Duration::from_millis(100),
            list_timeout: Duration::from_secs(1),
        }
    }
}

/// ACS status words.
mod sw {
    pub(super) const OK: [u8; 2] = [0x90, 0x00];
    pub(super) const FAILED: [u8; 2] = [0x63, 0x00];
    pub(super) const UNSUPPORTED: [u8; 2] = [0x6A, 0x81];
    pub(super) const WRONG_LENGTH: [u8; 2] = [0x67, 0x00];
    pub(super) const CLA_NOT_SUPPORTED: [u8; 2] = [0x6E, 0x00];
}

/// MIFARE Classic commands sent through `InDataExchange`.
mod mf {
    pub(super) const READ: u8 = 0x30;
    pub(super) const WRITE: u8 = 0xA0;
    pub(super) const AUTH_A: u8 = 0x60;
    pub(super) const AUTH_B: u8 = 0x61;
}

/// A PN532 on a serial device (e.g. `/dev/encoder-bridge/pn532-...`, `/dev/ttyUSB0`).
pub struct Pn532Encoder {
    path: String,
    config: Pn532Config,
    link: Option<Link>,
    target: Option<Target>,
    /// The card needs a new `InListPassiveTarget` before the next command.
    reselect: bool,
    keys: [Option<[u8; 6]>; 2],
    canceller: Canceller,
    backoff: Backoff,
}

impl std::fmt::Debug for Pn532Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("Pn532Encoder")
            .field("path", &self.path)
            .field("open", &self.link.is_some())
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Pn532Encoder {
    /// An encoder on the serial device `path` with default timing. Nothing is opened yet:
    /// the device may appear later.
    pub fn new(path: impl Into<String>) -> Self {
        Self::with_config(path, Pn532Config::default())
    }

    /// An encoder on `path` with `config`.
    pub fn with_config(path: impl Into<String>, config: Pn532Config) -> Self {
        Self {
            path: path.into(),
            config,
            link: None,
            target: None,
            reselect: false,
            keys: [None; 2],
            canceller: Canceller::new(),
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(2)),
        }
    }

    /// An encoder on an open `link` whose chip is already up (`SAMConfiguration` sent): for the
    /// fuzz targets (crates/fuzz-targets), which put an emulated chip behind a fake serial
    /// line. When the link fails, the encoder reopens `path` as usual.
    pub fn with_link(path: impl Into<String>, config: Pn532Config, link: Link) -> Self {
        let mut encoder = Self::with_config(path, config);
        encoder.link = Some(link);
        encoder
    }

    /// Opens the device and brings the chip up: wake-up, `SAMConfiguration`, firmware check,
    /// finite `MaxRetries`. Returns the open link.
    fn link(&mut self) -> Result<&mut Link, HalError> {
        if self.link.is_none() {
            let mut link =
                Link::open(&self.path, self.config.link.clone(), self.canceller.clone())?;
            link.wake_up()?;
            link.sam_configuration()?;
            let firmware = link.firmware()?;
            if firmware.ic != 0x32 {
                tracing::warn!(reader = %self.path, ic = firmware.ic, "not a PN532; trying anyway");
            }
            link.set_max_retries(self.config.passive_retries)?;
            tracing::info!(
                reader = %self.path,
                version = %format!("{}.{}", firmware.version, firmware.revision),
                "PN532 ready"
            );
            self.backoff.reset();
            self.link = Some(link);
        }
        self.link.as_mut().ok_or_else(|| {
            HalError::new(ErrorKind::ReaderUnavailable, "device not open").on_reader(&self.path)
        })
    }

    /// Drops the link after an error that means the device is gone or out of step, so the
    /// next call reopens it.
    fn note(&mut self, error: HalError) -> HalError {
        if matches!(
            error.kind(),
            ErrorKind::ReaderUnavailable
                | ErrorKind::Permission
                | ErrorKind::Protocol
                | ErrorKind::Timeout
        ) {
            self.link = None;
            self.target = None;
        }
        error
    }

    /// One bounded `InListPassiveTarget`.
    fn list(&mut self) -> Result<Option<Target>, HalError> {
        let timeout = self.config.list_timeout;
        let result = self
            .link()
            .and_then(|link| link.list_passive_target(timeout));
        let found = result.map_err(|e| self.note(e))?;
        self.target.clone_from(&found);
        self.reselect = false;
        Ok(found)
    }

    fn cancelled(&self) -> HalError {
        HalError::new(ErrorKind::Cancelled, "encoder is shutting down").on_reader(&self.path)
    }

    /// `InDataExchange` with the current target; maps "card gone" to [`ErrorKind::CardRemoved`].
    fn exchange(&mut self, data: &[u8]) -> Result<(Status, Vec<u8>), HalError> {
        let tg = self.target.as_ref().map_or(1, |t| t.tg);
        let result = self.link().and_then(|link| link.data_exchange(tg, data));
        let (status, reply) = result.map_err(|e| self.note(e))?;
        if status.card_gone() {
            self.target = None;
            return Err(HalError::new(
                ErrorKind::CardRemoved,
                format!("card left the field (PN532 status {:02X})", status.code()),
            )
            .on_reader(&self.path));
        }
        Ok((status, reply))
    }

    /// Re-selects the card after a failed authentication; the card must be the same one.
    fn ensure_selected(&mut self, uid: &[u8]) -> Result<(), HalError> {
        if !self.reselect && self.target.is_some() {
            return Ok(());
        }
        let removed = |path: &str| {
            HalError::new(ErrorKind::CardRemoved, "card left the field").on_reader(path)
        };
        match self.list()? {
            Some(t) if t.uid == uid => Ok(()),
            _ => Err(removed(&self.path)),
        }
    }
}

impl Encoder for Pn532Encoder {
    fn name(&self) -> &str {
        &self.path
    }

    fn kind(&self) -> EncoderKind {
        EncoderKind::Pn532
    }

    fn wait_for_card(&mut self, timeout: Duration) -> Result<bool, HalError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.canceller.is_cancelled() {
                return Err(self.cancelled());
            }
            let started = Instant::now();
            match self.list() {
                Ok(Some(_)) => return Ok(true),
                Ok(None) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(false);
                    }
                    // The chip's own retries took `elapsed`; rest for the remainder of a poll
                    // interval so the loop never spins.
                    let pause = self
                        .config
                        .poll_interval
                        .saturating_sub(started.elapsed())
                        .min(left);
                    if !self.canceller.sleep(pause) {
                        return Err(self.cancelled());
                    }
                }
                Err(e) if e.kind() == ErrorKind::Cancelled => return Err(e),
                // Gone or confused: reopen with backoff while the wait lasts; report the
                // error if the device is still unusable when it ends.
                Err(e) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() || e.kind() == ErrorKind::Permission {
                        return Err(e);
                    }
                    tracing::debug!(reader = %self.path, error = %e, "PN532 unavailable, retrying");
                    let pause = self.backoff.next_delay().min(left);
                    if !self.canceller.sleep(pause) {
                        return Err(self.cancelled());
                    }
                    if Instant::now() >= deadline {
                        return Err(e);
                    }
                }
            }
        }
    }

    fn open_session(&mut self) -> Result<Box<dyn CardSession + '_>, HalError> {
        if self.reselect || self.target.is_none() {
            self.list()?;
        }
        let Some(target) = self.target.clone() else {
            return Err(
                HalError::new(ErrorKind::NoCard, "no card in the field").on_reader(&self.path)
            );
        };
        let info = card_info(&target);
        Ok(Box::new(Pn532Session {
            encoder: self,
            info,
        }))
    }

    fn canceller(&self) -> Canceller {
        self.canceller.clone()
    }
}

/// An open session with the card on a PN532 encoder.
pub struct Pn532Session<'a> {
    encoder: &'a mut Pn532Encoder,
    info: CardInfo,
}

impl std::fmt::Debug for Pn532Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pn532Session")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

fn reply(data: &[u8], status: [u8; 2]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 2);
    out.extend_from_slice(data);
    out.extend_from_slice(&status);
    out
}

impl Pn532Session<'_> {
    /// Translates one APDU.
    fn apdu(&mut self, apdu: &[u8]) -> Result<Vec<u8>, HalError> {
        let &[cla, ins, p1, p2, ref body @ ..] = apdu else {
            return Ok(sw::WRONG_LENGTH.to_vec());
        };
        if cla != 0xFF {
            // ISO 14443-4 cards get the APDU passed through, as an ACR122U does.
            if self.info.sak.is_some_and(|sak| sak & 0x20 != 0) {
                self.encoder.ensure_selected(&self.info.uid)?;
                let (status, data) = self.encoder.exchange(apdu)?;
                return Ok(if status.is_ok() {
                    data
                } else {
                    sw::FAILED.to_vec()
                });
            }
            return Ok(sw::CLA_NOT_SUPPORTED.to_vec());
        }
        match (ins, body) {
            (0xCA, [_] | []) => Ok(match p1 {
                0x00 if p2 == 0 => reply(&self.info.uid, sw::OK),
                0x01 if p2 == 0 => match self.encoder.target.as_ref().map(|t| t.ats.clone()) {
                    Some(ats) if !ats.is_empty() => reply(&ats, sw::OK),
                    _ => sw::UNSUPPORTED.to_vec(),
                },
                _ => sw::UNSUPPORTED.to_vec(),
            }),
            (0x82, &[0x06, ref key @ ..]) => {
                let slot = usize::from(p2);
                match (
                    p1,
                    <[u8; 6]>::try_from(key),
                    self.encoder.keys.get_mut(slot),
                ) {
                    (0x00, Ok(key), Some(slot)) => {
                        *slot = Some(key);
                        Ok(sw::OK.to_vec())
                    }
                    _ => Ok(sw::FAILED.to_vec()),
                }
            }
            (0x86, &[0x05, 0x01, 0x00, block, key_type, key_no]) if (p1, p2) == (0, 0) => {
                self.authenticate(block, key_type, key_no)
            }
            // Obsolete form: FF 88 00 <block> <type> <key no>.
            (0x88, &[key_type, key_no]) if p1 == 0 => self.authenticate(p2, key_type, key_no),
            (0xB0, &[le]) if p1 == 0 && (le == 0x10 || le == 0x00) => self.read(p2),
            (0xB0, [_]) => Ok([0x6C, 0x10].to_vec()),
            (0xD6, &[0x10, ref data @ ..]) if p1 == 0 && data.len() == 16 => self.write(p2, data),
            (0xD6, _) => Ok(sw::FAILED.to_vec()),
            (0xCA | 0x82 | 0x86 | 0x88 | 0xB0, _) => Ok(sw::WRONG_LENGTH.to_vec()),
            _ => Ok(sw::UNSUPPORTED.to_vec()),
        }
    }

    /// Runs a MIFARE command; a refused one halts the card, so re-select before the next.
    fn card_command(&mut self, data: &[u8]) -> Result<Option<Vec<u8>>, HalError> {
        self.encoder.ensure_selected(&self.info.uid)?;
        let (status, reply) = self.encoder.exchange(data)?;
        if status.is_ok() {
            Ok(Some(reply))
        } else {
            tracing::debug!(reader = %self.encoder.path, status = status.code(), "card refused the command");
            self.encoder.reselect = true;
            Ok(None)
        }
    }

    fn authenticate(&mut self, block: u8, key_type: u8, key_no: u8) -> Result<Vec<u8>, HalError> {
        let command = match key_type {
            0x60 => mf::AUTH_A,
            0x61 => mf::AUTH_B,
            _ => return Ok(sw::FAILED.to_vec()),
        };
        let Some(Some(key)) = self.encoder.keys.get(usize::from(key_no)).copied() else {
            return Ok(sw::FAILED.to_vec());
        };
        // The card's 4-byte NUID: the last four bytes of a 7-byte UID (as libnfc does).
        let uid = &self.info.uid;
        let nuid = uid.get(uid.len().saturating_sub(4)..).unwrap_or_default();
        let mut data = Vec::with_capacity(12);
        data.extend_from_slice(&[command, block]);
        data.extend_from_slice(&key);
        data.extend_from_slice(nuid);
        Ok(match self.card_command(&data)? {
            Some(_) => sw::OK.to_vec(),
            None => sw::FAILED.to_vec(),
        })
    }

    fn read(&mut self, block: u8) -> Result<Vec<u8>, HalError> {
        Ok(match self.card_command(&[mf::READ, block])? {
            Some(data) if data.len() == 16 => reply(&data, sw::OK),
            Some(data) => {
                return Err(HalError::new(
                    ErrorKind::Protocol,
                    format!("read of block {block} returned {} bytes", data.len()),
                )
                .on_reader(&self.encoder.path));
            }
            None => sw::FAILED.to_vec(),
        })
    }

    fn write(&mut self, block: u8, data: &[u8]) -> Result<Vec<u8>, HalError> {
        let mut command = Vec::with_capacity(18);
        command.extend_from_slice(&[mf::WRITE, block]);
        command.extend_from_slice(data);
        Ok(match self.card_command(&command)? {
            Some(_) => sw::OK.to_vec(),
            None => sw::FAILED.to_vec(),
        })
    }
}

impl Transmit for Pn532Session<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransmitError> {
        tracing::trace!(
            reader = %self.encoder.path,
            header = %hex(command.get(..4).unwrap_or(command)),
            len = command.len(),
            "APDU >"
        );
        let reply = self.apdu(command).map_err(TransmitError::from)?;
        tracing::trace!(
            reader = %self.encoder.path,
            len = reply.len(),
            sw = %hex(reply.get(reply.len().saturating_sub(2)..).unwrap_or_default()),
            "APDU <"
        );
        Ok(reply)
    }
}

impl CardSession for Pn532Session<'_> {
    fn info(&self) -> &CardInfo {
        &self.info
    }
}

impl Drop for Pn532Session<'_> {
    fn drop(&mut self) {
        // Like SCARD_RESET_CARD: no later session inherits an authenticated sector. The next
        // command re-selects the card (InListPassiveTarget), which resets its state.
        self.encoder.reselect = true;
    }
}

/// The card as the chip reported it in `InListPassiveTarget`: UID, SAK and the ATS of an
/// ISO 14443-4 card; no ATR, which a PN532 does not have (nothing is made up for the protocol
/// crate to parse back).
fn card_info(target: &Target) -> CardInfo {
    let ats = (!target.ats.is_empty()).then(|| target.ats.clone());
    CardInfo::new(target.uid.clone(), None, Some(target.sak), ats)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use encoder_protocol::card::CardType;

    fn target(sak: u8, uid: &[u8], ats: &[u8]) -> Target {
        Target {
            tg: 1,
            atqa: [0, 4],
            sak,
            uid: uid.to_vec(),
            ats: ats.to_vec(),
        }
    }

    #[test]
    fn card_info_is_what_the_chip_said() {
        for (sak, card_type) in [
            (0x08, CardType::Classic1k),
            (0x18, CardType::Classic4k),
            (0x09, CardType::ClassicMini),
            (0x00, CardType::Ultralight),
        ] {
            let info = card_info(&target(sak, &[1, 2, 3, 4], &[]));
            assert_eq!(info.card_type(), card_type, "SAK {sak:02X}");
            assert_eq!(info.atr, None);
            assert_eq!(info.ats, None);
            assert_eq!(info.uid, [1, 2, 3, 4]);
        }
        let ats = [0x06, 0x75, 0x77, 0x81, 0x02, 0x80];
        let info = card_info(&target(0x20, &[1, 2, 3, 4, 5, 6, 7], &ats));
        assert_eq!(info.card_type(), CardType::Iso14443_4);
        assert_eq!(info.ats.as_deref(), Some(&ats[..]));
    }

    #[test]
    fn every_classic_sak_is_a_classic_card() {
        // The card_identify fuzz target found SAKs the protocol calls Classic (29, 39, 6D...:
        // the ISO 14443-4 bit set too) turned into an ISO 14443-4 ATR by the backend, so jobs
        // refused the card. The backend now passes the SAK itself.
        for sak in 0..=255u8 {
            let from_sak = encoder_protocol::card::type_from_sak(sak);
            let info = card_info(&target(sak, &[1, 2, 3, 4], &[0x05, 0x78, 0x80, 0x70, 0x02]));
            if from_sak.is_mifare_classic() {
                assert_eq!(info.card_type(), from_sak, "SAK {sak:02X}");
            }
        }
    }
}
