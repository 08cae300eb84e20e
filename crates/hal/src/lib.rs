//! encoder-hal: drives real card encoders.
//!
//! - [`Encoder`] and [`CardSession`]: the small reader/session interface (wait for a card,
//!   open an exclusive session, transmit APDUs, card info). Sessions implement the protocol
//!   crate's [`encoder_protocol::transmit::Transmit`], so encode and scan jobs have one code
//!   path for every transport.
//! - [`pcsc`]: PC/SC readers through pcscd, with hot-plug ([`pcsc::ReaderMonitor`]) and
//!   recovery from pcscd restarts, card re-insertion and unplugged readers.
//! - [`pn532`]: PN532 modules on a serial line (HSU), translating the same PC/SC Part 3
//!   commands to PN532 frames as an ACR122U's firmware does.
//! - [`HalError`]: typed errors that keep the transport's error kind and carry a hint a person
//!   can act on.
//!
//! Every call blocks. Give each encoder its own OS thread and talk to async code over channels.

#![forbid(unsafe_code)]

mod backoff;
mod cancel;
mod encoder;
mod error;
pub mod pcsc;
pub mod pn532;

pub use backoff::Backoff;
pub use cancel::{Canceller, WakeHook};
pub use encoder::{CardInfo, CardSession, Encoder, EncoderKind, Feedback, hex};
pub use error::{ErrorKind, HalError};
pub use pn532::{Pn532Config, Pn532Encoder};
