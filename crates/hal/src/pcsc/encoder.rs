//! A PC/SC contactless reader as an [`Encoder`].

use std::ffi::CString;
use std::time::{Duration, Instant};

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use encoder_protocol::apdu::StorageCommand;
use encoder_protocol::transmit::{ReaderCaps, Transmit, TransmitError};

use crate::cancel::Canceller;
use crate::encoder::{CardInfo, CardSession, Encoder, EncoderKind, Feedback};
use crate::error::{ErrorKind, HalError};

use super::context::ContextSlot;
use super::dialect::{self, Dialect};
use super::errors::hal_error;
use super::spelling::{Speller, StoredKeys};
use super::uid::{GET_UID, uid_from_reply};

/// Readers already logged as unknown (the bridge makes an encoder again after each cancelled
/// wait: the line appears once per reader and process).
static LOGGED_UNKNOWN: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// The reader's family, logging once when it is not in the table.
fn dialect_of(name: &str) -> &'static Dialect {
    let d = dialect::recognise(name);
    if d.is_baseline() {
        let mut logged = LOGGED_UNKNOWN
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if logged
            .get_or_insert_with(HashSet::new)
            .insert(name.to_owned())
        {
            tracing::info!(
                reader = %name,
                "reader not in the dialect table: speaking the PC/SC Part 3 baseline to it \
                 (see the README's supported readers to add it)"
            );
        }
    }
    d
}

/// The longest single `SCardGetStatusChange` of a card wait: how late a cancel that pcsc-lite
/// dropped is noticed.
const CANCEL_CHECK: Duration = Duration::from_millis(250);

/// A PC/SC reader, driven from one thread with a context of its own.
pub struct PcscEncoder {
    name: String,
    reader: CString,
    slot: ContextSlot,
    dialect: &'static Dialect,
    /// What this process wrote into the reader's non-volatile key store.
    stored_keys: StoredKeys,
}

impl std::fmt::Debug for PcscEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcscEncoder")
            .field("name", &self.name)
            .field("family", &self.dialect.id)
            .finish_non_exhaustive()
    }
}

impl PcscEncoder {
    /// An encoder for the reader called `name` (as `SCardListReaders` reports it).
    ///
    /// Nothing is opened yet: the reader may appear later, and pcscd may be down.
    pub fn new(name: &str) -> Result<Self, HalError> {
        let reader = CString::new(name).map_err(|_| {
            HalError::new(ErrorKind::Other, "reader name contains a NUL byte").on_reader(name)
        })?;
        Ok(Self {
            name: name.to_owned(),
            reader,
            slot: ContextSlot::new(Canceller::new()),
            dialect: dialect_of(name),
            stored_keys: StoredKeys::default(),
        })
    }

    /// An encoder that speaks `dialect` to the reader whatever its name (to force a family on
    /// a reader the table does not know yet, and to compare dialects in tests).
    pub fn with_dialect(name: &str, dialect: &'static Dialect) -> Result<Self, HalError> {
        let mut encoder = Self::new(name)?;
        encoder.dialect = dialect;
        Ok(encoder)
    }

    /// The reader family recognised from the name (the baseline when unknown).
    pub fn dialect(&self) -> &'static Dialect {
        self.dialect
    }

    fn error(&mut self, call: &str, e: pcsc::Error) -> HalError {
        let error = hal_error(call, e).on_reader(&self.name);
        self.slot.invalidate_on(&error);
        error
    }

    /// Waits on one context until present, gone, timed out, cancelled or failed.
    ///
    /// The wait is event-driven (`SCardGetStatusChange`), in slices of at most
    /// [`CANCEL_CHECK`]: pcsc-lite drops an `SCardCancel` that arrives before the thread blocks
    /// (docs/reference/pcsc-lite.md §1), so between slices the canceller's flag is looked at,
    /// and a cancel is never later than one slice.
    fn wait_on(&mut self, ctx: &pcsc::Context, deadline: Instant) -> Result<bool, HalError> {
        let mut states = [pcsc::ReaderState::new(
            self.reader.clone(),
            pcsc::State::UNAWARE,
        )];
        loop {
            if self.slot.canceller().is_cancelled() {
                return Err(HalError::new(ErrorKind::Cancelled, "card wait cancelled")
                    .on_reader(&self.name));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match ctx.get_status_change(left.min(CANCEL_CHECK), &mut states) {
                Ok(()) => {}
                Err(pcsc::Error::Timeout) if left > CANCEL_CHECK => continue,
                Err(pcsc::Error::Timeout) => return Ok(false),
                Err(e) => return Err(self.error("SCardGetStatusChange", e)),
            }
            let [state] = &mut states;
            let event = state.event_state();
            if event.intersects(pcsc::State::UNKNOWN | pcsc::State::IGNORE) {
                return Err(
                    HalError::new(ErrorKind::ReaderUnavailable, "reader is not connected")
                        .on_reader(&self.name),
                );
            }
            if event.contains(pcsc::State::PRESENT) && !event.contains(pcsc::State::MUTE) {
                return Ok(true);
            }
            if left.is_zero() {
                return Ok(false);
            }
            state.sync_current_state();
        }
    }
}

impl Encoder for PcscEncoder {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> EncoderKind {
        EncoderKind::Pcsc
    }

    fn wait_for_card(&mut self, timeout: Duration) -> Result<bool, HalError> {
        let deadline = Instant::now() + timeout;
        loop {
            let ctx = self
                .slot
                .get_until(deadline)
                .map_err(|e| e.on_reader(&self.name))?;
            match self.wait_on(&ctx, deadline) {
                // pcscd restarted under us: wait on a new context for the time that is left.
                Err(e) if e.kind() == ErrorKind::NoService && Instant::now() < deadline => {
                    let delay = self.slot.next_delay();
                    if !self.slot.canceller().sleep(delay) {
                        return Err(HalError::new(
                            ErrorKind::Cancelled,
                            "encoder is shutting down",
                        ));
                    }
                }
                other => return other,
            }
        }
    }

    fn open_session(&mut self) -> Result<Box<dyn CardSession + '_>, HalError> {
        let ctx = self.slot.get().map_err(|e| e.on_reader(&self.name))?;
        let card = ctx
            .connect(
                &self.reader,
                pcsc::ShareMode::Exclusive,
                pcsc::Protocols::ANY,
            )
            .map_err(|e| self.error("SCardConnect", e))?;
        // `status2_owned` asks for the sizes, then for the data: when the reader or card
        // changes in between (pcscd restarting, a card swapped) the second call finds the
        // buffers too small. Ask once more; if it still fails, the card changed under us.
        let status = match card.status2_owned() {
            Err(pcsc::Error::InsufficientBuffer) => card.status2_owned(),
            other => other,
        };
        let atr = match status {
            Ok(status) => status.atr().to_vec(),
            Err(pcsc::Error::InsufficientBuffer) => {
                return Err(HalError::new(
                    ErrorKind::CardReset,
                    "SCardStatus: the card or reader changed while it was read",
                )
                .on_reader(&self.name));
            }
            Err(e) => return Err(self.error("SCardStatus", e)),
        };
        let mut session = PcscSession {
            card,
            reader: self.name.clone(),
            info: CardInfo::new(Vec::new(), Some(atr), None, None),
            speller: Speller::new(self.dialect, Some(self.stored_keys.clone())),
            caps: self.dialect.caps(),
        };
        // The one `FF CA` of a job: the protocol's jobs take the UID from this CardInfo.
        let reply = session.exchange(&GET_UID)?;
        session.info.uid = uid_from_reply(&reply).map_err(|e| e.on_reader(&self.name))?;
        Ok(Box::new(session))
    }

    fn canceller(&self) -> Canceller {
        self.slot.canceller().clone()
    }
}

/// An exclusive connection to the card on a PC/SC reader.
///
/// Dropping it disconnects with `SCARD_RESET_CARD`, which also drops the card's authentication
/// state, so no later session inherits an authenticated sector.
pub struct PcscSession {
    card: pcsc::Card,
    reader: String,
    info: CardInfo,
    speller: Speller,
    caps: ReaderCaps,
}

impl PcscSession {
    fn exchange(&mut self, command: &[u8]) -> Result<Vec<u8>, HalError> {
        let mut buffer = vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
        // The header only: the body may hold a key (FF 82) or card data with MACs.
        tracing::trace!(
            reader = %self.reader,
            header = %crate::encoder::hex(command.get(..4).unwrap_or(command)),
            len = command.len(),
            "APDU >"
        );
        let reply = self
            .card
            .transmit(command, &mut buffer)
            .map_err(|e| hal_error("SCardTransmit", e).on_reader(&self.reader))?;
        // Replies may carry MACs of our payload: trace their length and status word only.
        tracing::trace!(
            reader = %self.reader,
            len = reply.len(),
            sw = %crate::encoder::hex(reply.get(reply.len().saturating_sub(2)..).unwrap_or_default()),
            "APDU <"
        );
        if reply.len() < 2 {
            // Every response APDU ends in a status word. A reader that returns none lost the
            // card in the middle of the exchange (vpcd does this when the card leaves during a
            // write; pcscd notices the empty reader only at its next poll).
            return Err(HalError::new(
                ErrorKind::CardRemoved,
                format!(
                    "SCardTransmit: {}-byte reply without a status word",
                    reply.len()
                ),
            )
            .on_reader(&self.reader));
        }
        Ok(reply.to_vec())
    }
}

impl PcscSession {
    /// Resets the card (it was halted by a failed authentication and the reader does not
    /// select it again): `SCardReconnect` with `SCARD_RESET_CARD`; the reader's keys stay.
    fn reset_card(&mut self) -> Result<(), HalError> {
        tracing::debug!(reader = %self.reader, "resetting the card after a failed authentication");
        self.card
            .reconnect(
                pcsc::ShareMode::Exclusive,
                pcsc::Protocols::ANY,
                pcsc::Disposition::ResetCard,
            )
            .map_err(|e| hal_error("SCardReconnect", e).on_reader(&self.reader))
    }
}

/// Canonical storage-card commands ([`StorageCommand`]) are spelled in the reader's dialect;
/// anything else (`DESFire` APDUs, vendor commands) goes to the reader as it is.
impl Transmit for PcscSession {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransmitError> {
        let Some(op) = StorageCommand::parse(command) else {
            return self.exchange(command).map_err(TransmitError::from);
        };
        // The speller needs the exchange and the reset while it holds its own state.
        let mut speller =
            std::mem::replace(&mut self.speller, Speller::new(&dialect::BASELINE, None));
        let result = {
            let this = std::cell::RefCell::new(&mut *self);
            speller.run(
                &op,
                command,
                &mut |apdu| this.borrow_mut().exchange(apdu),
                &mut || this.borrow_mut().reset_card(),
            )
        };
        self.speller = speller;
        result.map_err(TransmitError::from)
    }

    fn reader_caps(&self) -> ReaderCaps {
        self.caps
    }
}

impl CardSession for PcscSession {
    fn info(&self) -> &CardInfo {
        &self.info
    }

    fn feedback(&mut self, feedback: Feedback) -> Result<bool, HalError> {
        let Some(apdu) = self.speller.signal_apdu(feedback) else {
            return Ok(false);
        };
        let reply = match self.exchange(&apdu) {
            Ok(reply) => reply,
            // The card is gone: the reader still beeps through an escape.
            Err(e) if e.kind() == ErrorKind::CardRemoved => return self.escape(&apdu),
            Err(e) => return Err(e),
        };
        if self.speller.signal_ok(&reply) {
            Ok(true)
        } else {
            Err(HalError::new(
                ErrorKind::Other,
                format!(
                    "the reader refused the LED/buzzer command ({})",
                    crate::encoder::hex(
                        reply
                            .get(reply.len().saturating_sub(2)..)
                            .unwrap_or_default()
                    )
                ),
            )
            .on_reader(&self.reader))
        }
    }
}

impl PcscSession {
    /// Sends `command` to the reader itself (`SCardControl` on this connection turned direct:
    /// no card needed; the session's exclusive hold on the reader would refuse a second
    /// connection), trying each of [`dialect::ESCAPE_FUNCTIONS`].
    fn escape(&mut self, command: &[u8]) -> Result<bool, HalError> {
        self.card
            .reconnect(
                pcsc::ShareMode::Direct,
                pcsc::Protocols::UNDEFINED,
                pcsc::Disposition::LeaveCard,
            )
            .map_err(|e| hal_error("SCardReconnect (direct)", e).on_reader(&self.reader))?;
        let direct = &self.card;
        let mut buffer = [0u8; 64];
        let mut last = None;
        for function in dialect::ESCAPE_FUNCTIONS {
            match direct.control(pcsc::ctl_code(function.into()), command, &mut buffer) {
                Ok(reply) if self.speller.signal_ok(reply) => return Ok(true),
                Ok(reply) => last = Some(crate::encoder::hex(reply)),
                Err(e) => last = Some(e.to_string()),
            }
        }
        Err(HalError::new(
            ErrorKind::Other,
            format!(
                "SCardControl escape not accepted ({}): the reader's driver must allow escapes \
                 (ACS's acsccid, or libccid with ifdDriverOptions 0x0001)",
                last.unwrap_or_default()
            ),
        )
        .on_reader(&self.reader))
    }
}
