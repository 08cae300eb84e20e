//! The MIFARE Classic memory model (docs/reference/mifare-classic.md, mad.md): geometry, access
//! bits, trailers, value blocks and the MIFARE Application Directory.

pub mod access;
pub mod geometry;
pub mod mad;
pub mod trailer;
pub mod value;

/// One 16-byte block.
pub type Block = [u8; 16];
