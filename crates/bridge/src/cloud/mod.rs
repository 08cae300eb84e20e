//! The bridge side of docs/cloud-protocol.md.

pub mod link;
pub mod message;
pub mod session;
pub mod translate;
