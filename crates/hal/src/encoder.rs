//! The reader/session interface every encoder backend implements.
//!
//! The split follows openpgp-card: this trait has no hardware dependency, each transport
//! (PC/SC, serial PN532) implements it, and the protocol crate's jobs run over
//! [`Transmit`], so there is one code path for every encoder.
//!
//! All methods block. A backend is driven from one dedicated OS thread (PC/SC and serial calls
//! block, and pcsc-lite wants one context per thread, docs/reference/pcsc-lite.md §1); other
//! threads interrupt a blocked wait through the [`Canceller`] the encoder hands out.

use std::time::Duration;

pub use encoder_protocol::card::CardInfo;
use encoder_protocol::transmit::Transmit;

use crate::cancel::Canceller;
use crate::error::HalError;

/// The transport behind an encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncoderKind {
    /// A PC/SC contactless reader through pcscd.
    Pcsc,
    /// A PN532 module on a serial line.
    Pn532,
}

impl EncoderKind {
    /// Stable name: `pcsc` or `pn532`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pcsc => "pcsc",
            Self::Pn532 => "pn532",
        }
    }
}

/// Upper-case hex with spaces between bytes, for logs and CLI output.
pub fn hex(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
    parts.join(" ")
}

/// What a job's end sounds and looks like at the desk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feedback {
    /// The card is done: a short beep and green light.
    Success,
    /// The job failed: a distinct (longer, red) pattern.
    Failure,
}

/// An open, exclusive session with the card on an encoder.
///
/// Dropping the session releases the card (and leaves it powered, so another session can
/// resume without a new anticollision).
pub trait CardSession: Transmit {
    /// ATR, UID and SAK of the card this session talks to.
    fn info(&self) -> &CardInfo;

    /// Beeps and lights for `feedback` where the reader can (with the card present). `Ok(false)`
    /// when the reader has no such command (the PN532 has no buzzer: the default). Callers
    /// never fail a job on an error here.
    fn feedback(&mut self, feedback: Feedback) -> Result<bool, HalError> {
        let _ = feedback;
        Ok(false)
    }
}

/// One card encoder: a reader with at most one card in its field.
pub trait Encoder: Send {
    /// The reader's name as the system reports it (PC/SC reader name or serial device path).
    fn name(&self) -> &str;

    /// The transport behind it.
    fn kind(&self) -> EncoderKind;

    /// Blocks until a card is in the field; `Ok(false)` when `timeout` passes first.
    ///
    /// Event-driven: it sleeps in the transport's own wait (for PC/SC, `SCardGetStatusChange`),
    /// never in a polling loop of ours. Returns [`crate::ErrorKind::Cancelled`] when the
    /// encoder's [`Canceller`] fires.
    fn wait_for_card(&mut self, timeout: Duration) -> Result<bool, HalError>;

    /// Opens an exclusive session with the card in the field and reads its UID.
    fn open_session(&mut self) -> Result<Box<dyn CardSession + '_>, HalError>;

    /// A handle other threads use to interrupt a blocked call on this encoder.
    fn canceller(&self) -> Canceller;
}
