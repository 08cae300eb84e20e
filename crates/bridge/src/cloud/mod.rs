//! The bridge side of docs/cloud-protocol.md.

pub mod connection;
pub mod link;
pub mod liveness;
pub mod message;
pub mod remembered;
pub mod session;
pub mod translate;
