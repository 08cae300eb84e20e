//! encoder-sim: virtual hardware for tests and the demo.
//!
//! - [`mifare`]: the MIFARE Classic card model (no reader specifics).
//! - [`ultralight`]: MIFARE Ultralight memory.
//! - [`desfire`]: a MIFARE DESFire EV0/EV1/EV2/EV3 card with its own crypto.
//! - [`card`]: a card of any supported type behind a PC/SC Part 3 reader front end
//!   (ACR122U-style status words).
//! - [`vpcd`]: the TCP link to pcscd's virtual reader driver.
//! - [`pn532`]: a PN532 emulator behind a pseudo-terminal (`encoder-sim pn532`).
//! - [`runner`]: the `encoder-sim card` process loop (vpcd, stdin commands, signals, images).
//! - [`cloud`]: the cloud access-control API and bridge websocket (`encoder-sim cloud`).
#![forbid(unsafe_code)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod atr;
pub mod card;
pub mod cloud;
pub mod desfire;
pub mod error;
pub mod mifare;
pub mod pn532;
pub mod runner;
pub mod ultralight;
pub mod vpcd;

pub use error::SimError;
