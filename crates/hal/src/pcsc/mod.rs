//! The PC/SC backend: contactless readers through pcscd, with the `pcsc` crate.
//!
//! Threading follows pcsc-lite's rules (docs/reference/pcsc-lite.md §1): every [`PcscEncoder`] and
//! the [`ReaderMonitor`] own a context of their own and are meant for one thread each; blocked
//! waits are interrupted with `SCardCancel` on that context through a [`crate::Canceller`].

mod context;
pub mod dialect;
mod encoder;
mod errors;
mod monitor;
mod snapshot;
mod spelling;
mod uid;

pub use encoder::{PcscEncoder, PcscSession};
pub use monitor::{ReaderEvent, ReaderMonitor};
pub use snapshot::{ReaderSnapshot, ReaderState, snapshot, states};
