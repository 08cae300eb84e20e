//! The scan and encode jobs as APDU sequences driven by responses.
//!
//! Both are plain functions generic over [`Transmit`](crate::transmit::Transmit): they take the
//! card's [`CardInfo`](crate::card::CardInfo) (from the hal), the [`SiteKeys`](crate::keys::SiteKeys) and, for encode, the
//! [`Credential`](crate::format::Credential). They never panic, count every APDU they send
//! (also reported in errors, see [`JobError::apdu_count`](crate::error::JobError::apdu_count)),
//! and classify every failure into the cloud's error types.
//!
//! Frugality: each key is loaded once per job into one of the reader's two volatile slots,
//! each sector is authenticated once per pass, only changed blocks are written, and what is
//! written is read back once. The UID comes with the [`CardInfo`](crate::card::CardInfo) the
//! hal read when it opened the card: a job never asks for it. Measured on a blank 1K card with
//! a one-sector record (a 10-digit card number and up to 8 bytes of access data, format v2):
//! encode 31 APDUs of its own (the trailer of each claimed sector is read before ours is
//! written: only the transport conditions take a whole trailer); re-encode 18; scan 10; at the
//! card each is one more, the hal's `FF CA` (see the tests, `cargo bench -p encoder-tests
//! --bench apdu_budget` and docs/card-format.md §7).

pub mod desfire;
mod encode;
mod probe;
mod scan;
mod session;

#[cfg(test)]
pub(crate) mod fake;

pub use encode::{EncodeOutcome, directory_trailer, encode, our_trailer};
pub use scan::{CardState, ScanOutcome, scan};

#[cfg(test)]
mod tests;
