//! encoder-protocol: every byte that goes to a card and every byte that comes back.
//!
//! Sans-IO: no threads, no sockets, no files. The only I/O seam is the [`transmit::Transmit`]
//! trait, implemented by the hal's card sessions.
//!
//! Modules, bottom up:
//! - [`status`], [`apdu`]: status words and the PC/SC Part 3 storage-card commands;
//! - [`card`]: card identification from ATR and SAK;
//! - [`mifare`]: the MIFARE Classic model (geometry, access bits, trailers, value blocks, MAD);
//! - [`keys`]: AN10922 key diversification and per-card keys;
//! - [`mod@format`]: the credential card format, v2 written and v1 read (docs/card-format.md);
//! - [`card_image`]: offline decoding of a saved card image with the scan job's checks;
//! - [`desfire`]: `DESFire` EV2 framing, status codes and secure messaging (foundation);
//! - [`job`]: the scan and encode jobs as APDU sequences driven by responses;
//! - [`error`]: job errors mapped to the cloud's error types.

#![forbid(unsafe_code)]

pub mod apdu;
pub mod card;
pub mod card_image;
pub mod cloud_error;
pub mod desfire;
pub mod error;
pub mod format;
pub mod hex;
pub mod job;
pub mod keys;
pub mod mifare;
pub mod status;
pub mod transmit;

pub use apdu::redact_apdu;
