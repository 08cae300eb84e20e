//! MIFARE `DESFire` EV2/EV3 with AES keys, sans I/O (docs/reference/desfire.md): native commands
//! in ISO 7816-4 wrapping ([`frame`]), typed status codes ([`status`]), the crypto building
//! blocks ([`crypto`]), EV2 authentication and secure messaging ([`ev2`]), commands in their
//! communication modes over [`Transmit`](crate::transmit::Transmit) ([`channel`]) and
//! `GetVersion` ([`version`]), each checked against NXP's and NIST's published vectors.
//!
//! This is the foundation of the `DESFire` credential (the card format, the jobs, EV1 secure
//! messaging and the virtual card follow); nothing drives it yet.

pub mod channel;
pub mod command;
pub mod crypto;
pub mod ev1;
pub mod ev2;
pub mod frame;
pub mod legacy;
pub mod status;
pub mod version;
