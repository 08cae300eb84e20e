//! The one I/O seam of this crate: send a command APDU, get the response APDU back.
//!
//! The hal implements [`Transmit`] for its card sessions (PC/SC and PN532 backends, both
//! speaking PC/SC Part 3 storage-card commands). Jobs in [`crate::job`] are generic over it,
//! so they run unchanged against a real reader, the virtual card, or an in-test fake.

use std::fmt;

/// Why a transmission failed, kept as a kind because retry policy and the cloud's error type
/// depend on it (see docs/cloud-protocol.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransmitErrorKind {
    /// The card left the field (PC/SC `SCARD_W_REMOVED_CARD`, PN532 "target released").
    CardRemoved,
    /// The reader is gone or the service behind it is down (unplugged, pcscd dead).
    ReaderUnavailable,
    /// The reader stopped answering within its timeout.
    Timeout,
    /// Anything else.
    Other,
}

impl TransmitErrorKind {
    /// Stable lower-case name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::CardRemoved => "card_removed",
            Self::ReaderUnavailable => "reader_unavailable",
            Self::Timeout => "timeout",
            Self::Other => "other",
        }
    }
}

/// A failed transmission: a kind for policy plus a message for engineers.
///
/// The message must never contain key bytes; backends should log commands through
/// [`crate::apdu::redact_apdu`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransmitError {
    kind: TransmitErrorKind,
    message: String,
}

impl TransmitError {
    /// A new error of `kind` with a human-readable `message`.
    pub fn new(kind: TransmitErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> TransmitErrorKind {
        self.kind
    }

    /// The message given by the backend.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TransmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

impl std::error::Error for TransmitError {}

/// What the reader behind a [`Transmit`] offers for storage cards, in dialect-free terms
/// (the hal derives it from the reader family's entry in its dialect table,
/// docs/reference/readers.md §3 and §5). Jobs use it to send fewer APDUs; they never
/// learn how a command is spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReaderCaps {
    /// How many key slots the jobs may use (`00` up to `key_slots - 1`); at least 2.
    pub key_slots: u8,
    /// How many consecutive blocks of one sector one read may ask for; at least 1.
    pub read_blocks: u8,
}

impl ReaderCaps {
    /// The PC/SC Part 3 baseline: two volatile key slots, one block per read
    /// (docs/reference/pcsc-part3.md §1).
    pub const BASELINE: Self = Self {
        key_slots: 2,
        read_blocks: 1,
    };

    /// `self` with both figures raised to at least the baseline and `read_blocks` to at
    /// most [`crate::apdu::MAX_READ_BLOCKS`].
    #[must_use]
    pub fn sane(self) -> Self {
        Self {
            key_slots: self.key_slots.max(2),
            read_blocks: self.read_blocks.clamp(1, crate::apdu::MAX_READ_BLOCKS),
        }
    }
}

impl Default for ReaderCaps {
    fn default() -> Self {
        Self::BASELINE
    }
}

/// Exchanges one APDU with the card in the reader.
///
/// Contract: `command` is a complete command APDU; the `Ok` reply is the complete response
/// APDU including the trailing status word `SW1 SW2`. A reply shorter than two bytes is a
/// protocol violation that jobs report as an error; it must not make anything panic.
pub trait Transmit {
    /// Sends `command` and returns the response APDU (data followed by SW1 SW2).
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransmitError>;

    /// Called by a job just before it sends its first command that writes to the card (the
    /// jobs know; nobody has to recognise a write by its bytes). An error stops the job with
    /// the card untouched. The bridge records the phase `writing` here (docs/cloud-protocol.md
    /// §5); the default does nothing.
    fn before_first_write(&mut self) -> Result<(), TransmitError> {
        Ok(())
    }

    /// What the reader offers (key slots, blocks per read); the baseline unless the
    /// transport knows better. Wrappers must forward it.
    fn reader_caps(&self) -> ReaderCaps {
        ReaderCaps::BASELINE
    }
}

impl<T: Transmit + ?Sized> Transmit for &mut T {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransmitError> {
        (**self).transmit(command)
    }

    fn before_first_write(&mut self) -> Result<(), TransmitError> {
        (**self).before_first_write()
    }

    fn reader_caps(&self) -> ReaderCaps {
        (**self).reader_caps()
    }
}

/// A [`Transmit`] wrapper that counts the APDUs sent through it (including failed ones).
#[derive(Debug)]
pub struct Counting<T> {
    inner: T,
    count: usize,
}

impl<T: Transmit> Counting<T> {
    /// Wraps `inner` with a zero count.
    pub fn new(inner: T) -> Self {
        Self { inner, count: 0 }
    }

    /// APDUs sent so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Unwraps the inner transmitter.
    pub fn into_inner(self) -> T {
        self.inner
    }

    /// The inner transmitter.
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T: Transmit> Transmit for Counting<T> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransmitError> {
        self.count += 1;
        self.inner.transmit(command)
    }

    fn before_first_write(&mut self) -> Result<(), TransmitError> {
        self.inner.before_first_write()
    }

    fn reader_caps(&self) -> ReaderCaps {
        self.inner.reader_caps()
    }
}
