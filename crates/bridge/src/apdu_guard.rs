//! The [`Transmit`] wrapper every card job runs through: it records the phase `writing` when
//! the job announces its first card write (docs/cloud-protocol.md §5), honours an abort between two
//! APDUs, times the job, and traces APDUs at debug level with keys and card data masked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use encoder_protocol::transmit::{Transmit, TransmitError, TransmitErrorKind};

use crate::runner::Control;

/// Called once, just before the first card write; an error leaves the card untouched.
pub(crate) type BeforeFirstWrite<'a> = Box<dyn FnOnce() -> Result<(), String> + 'a>;

/// Wall-clock times of the first and last APDU of a job (unix microseconds) and their
/// count, for the `card timing` log line.
#[derive(Debug, Default)]
pub(crate) struct Timing {
    first: AtomicU64,
    last: AtomicU64,
    count: AtomicU64,
}

impl Timing {
    /// Logs the `card timing` line.
    pub(crate) fn log(&self) {
        tracing::info!(
            first_apdu_us = self.first.load(Ordering::SeqCst),
            last_apdu_us = self.last.load(Ordering::SeqCst),
            apdus = self.count.load(Ordering::SeqCst),
            "card timing"
        );
    }
}

fn unix_micros() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros(),
    )
    .unwrap_or(u64::MAX)
}

/// See the module docs.
pub(crate) struct Guard<'a, T: ?Sized> {
    pub(crate) inner: &'a mut T,
    pub(crate) reader: &'a str,
    pub(crate) before_first_write: Option<BeforeFirstWrite<'a>>,
    pub(crate) control: Option<&'a Control>,
    pub(crate) timing: &'a Timing,
}

impl<T: Transmit + ?Sized> Transmit for Guard<'_, T> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransmitError> {
        if self.control.is_some_and(Control::aborted) {
            return Err(TransmitError::new(
                TransmitErrorKind::Other,
                "aborted: the bridge is stopping",
            ));
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(reader = %self.reader, apdu = %masked(command), "APDU >");
        }
        let _ = self.timing.first.compare_exchange(
            0,
            unix_micros(),
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        self.timing.count.fetch_add(1, Ordering::SeqCst);
        let reply = self.inner.transmit(command);
        self.timing.last.store(unix_micros(), Ordering::SeqCst);
        if let Ok(reply) = &reply {
            // Replies carry card data and MACs: length and status word only.
            tracing::debug!(
                reader = %self.reader,
                len = reply.len(),
                sw = %encoder_hal::hex(reply.get(reply.len().saturating_sub(2)..).unwrap_or_default()),
                "APDU <"
            );
        }
        reply
    }

    fn before_first_write(&mut self) -> Result<(), TransmitError> {
        if let Some(hook) = self.before_first_write.take() {
            hook().map_err(|e| {
                TransmitError::new(
                    TransmitErrorKind::Other,
                    format!("cannot record the write phase, card left untouched: {e}"),
                )
            })?;
        }
        self.inner.before_first_write()
    }

    fn reader_caps(&self) -> encoder_protocol::transmit::ReaderCaps {
        self.inner.reader_caps()
    }
}

/// A command for the trace: card data of writes (`FF D6`) and key bytes masked
/// ([`encoder_protocol::redact_apdu`] masks keys and trailers; a data block is card data too).
fn masked(command: &[u8]) -> String {
    match command {
        [0xFF, 0xD6, ..] => format!(
            "{} <{} bytes masked>",
            encoder_hal::hex(command.get(..5).unwrap_or(command)),
            command.len().saturating_sub(5)
        ),
        _ => encoder_protocol::redact_apdu(command),
    }
}
