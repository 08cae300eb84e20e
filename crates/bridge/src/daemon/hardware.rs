//! What the daemon needs of the machine's encoders, as a trait so tests inject their own:
//! a way to make each encoder, pcscd's readers as they are now, and pcscd's hot-plug events.

use std::collections::HashMap;

use encoder_hal::pcsc::ReaderEvent;

use crate::discovery::{self, Wanted};
use crate::runner::EncoderFactory;

/// A reader as pcscd lists it: whether it is usable, and whether a card is in its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderNow {
    /// pcscd can use it.
    pub online: bool,
    /// A card is in its field.
    pub card_present: bool,
}

/// A running hot-plug watch; dropping it stops the watch.
pub type Watch = Box<dyn Send>;

/// The encoders of this machine.
pub trait Hardware: Send + Sync {
    /// Makes the encoder `wanted` (called again after a cancelled wait).
    fn factory(&self, wanted: &Wanted) -> EncoderFactory;

    /// pcscd's readers now (blocking); empty when pcscd cannot be asked.
    fn readers(&self) -> HashMap<String, ReaderNow>;

    /// Starts watching pcscd's readers; `forward` gets each event until it returns `false`.
    fn watch(&self, forward: Box<dyn Fn(ReaderEvent) -> bool + Send>) -> Option<Watch>;
}

/// The real machine: PC/SC readers through pcscd, PN532 modules on serial devices.
#[derive(Debug, Clone, Copy, Default)]
pub struct System;

impl Hardware for System {
    fn factory(&self, wanted: &Wanted) -> EncoderFactory {
        discovery::factory(wanted)
    }

    fn readers(&self) -> HashMap<String, ReaderNow> {
        use encoder_hal::pcsc::{ReaderState, states};
        match states() {
            Ok(readers) => readers
                .into_iter()
                .map(|r| {
                    let online = r.state != ReaderState::Unavailable;
                    let card_present =
                        matches!(r.state, ReaderState::CardPresent | ReaderState::InUse);
                    (
                        r.name,
                        ReaderNow {
                            online,
                            card_present,
                        },
                    )
                })
                .collect(),
            Err(e) => {
                tracing::debug!("cannot list PC/SC readers: {e}");
                HashMap::new()
            }
        }
    }

    fn watch(&self, forward: Box<dyn Fn(ReaderEvent) -> bool + Send>) -> Option<Watch> {
        discovery::watch_pcsc(forward).map(|m| Box::new(m) as Watch)
    }
}
