//! The MIFARE Classic memory model (reference/cards.md §1-2): geometry, access bits,
//! trailers, value blocks and the MIFARE Application Directory.

pub mod access;
pub mod geometry;
pub mod mad;
pub mod trailer;
pub mod value;

/// One 16-byte block.
pub type Block = [u8; 16];
