//! Serial PN532 modules (HSU) as encoders.
//!
//! - [`frame`]: the frame codec (sans I/O, fuzzed).
//! - [`Link`]: the serial line: ACK handling with one resend, abort, flush, wake-up.
//! - [`chip`]: typed PN532 commands.
//! - [`Pn532Encoder`]: the [`crate::Encoder`] that accepts PC/SC Part 3 storage-card commands
//!   and answers them as an ACS ACR122U does, so protocol code has one path for both backends.
//!
//! A device that disappears (USB unplug) turns into [`crate::ErrorKind::ReaderUnavailable`]
//! and is reopened, with backoff, by the next [`crate::Encoder::wait_for_card`] once it is back.

pub mod chip;
mod encoder;
pub mod frame;
mod link;

pub use encoder::{Pn532Config, Pn532Encoder, Pn532Session};
pub use link::{Link, LinkConfig};
