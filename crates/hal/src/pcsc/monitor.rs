//! Hot-plug: readers added and removed, cards inserted and removed, as events.
//!
//! One thread with its own context waits in `SCardGetStatusChange` on the pseudo-reader
//! `\\?PnP?\Notification` and on every known reader (the pcsc crate's `monitor.rs` example,
//! hardened). Nothing polls: the thread sleeps in pcsc-lite until something changes or the
//! monitor is stopped (`SCardCancel`).
//!
//! A quick remove+insert of the same reader between two calls is not lost: the removed
//! reader's own entry reports `UNKNOWN` (and the notification's event counter moves, which we
//! hand back through `sync_current_state`), so the thread relists and reports `Removed` then
//! `Added`. Cards use the per-reader event counter (upper 16 bits of the event state,
//! docs/reference/pcsc-lite.md §2) the same way. When pcscd dies, every reader is reported removed,
//! and the monitor re-establishes a context with backoff and reports them again when pcscd is back.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::cancel::Canceller;
use crate::error::{ErrorKind, HalError};

use super::errors::hal_error;

/// How often [`ReaderMonitor::stop`] repeats a cancel that did not end the thread.
const RECANCEL: Duration = Duration::from_millis(50);

/// Something that changed on the PC/SC side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderEvent {
    /// A reader appeared (also reported for every reader present at start).
    Added(String),
    /// A reader went away (unplugged, or pcscd stopped).
    Removed(String),
    /// A card entered the field of a reader; its ATR.
    CardInserted {
        /// The reader.
        reader: String,
        /// The card's ATR.
        atr: Vec<u8>,
    },
    /// The card left the field of a reader.
    CardRemoved(String),
    /// pcscd became unreachable; the monitor keeps trying.
    ServiceLost(HalError),
    /// pcscd is reachable (again).
    ServiceUp,
}

/// A running hot-plug monitor; stops (promptly) when dropped or on [`ReaderMonitor::stop`].
#[derive(Debug)]
pub struct ReaderMonitor {
    canceller: Canceller,
    thread: Option<JoinHandle<()>>,
    /// Disconnected when the monitor thread ends.
    done: Receiver<()>,
}

impl ReaderMonitor {
    /// Starts the monitor thread; events go to `events` until the receiver is dropped.
    pub fn spawn(events: Sender<ReaderEvent>) -> Result<Self, HalError> {
        let canceller = Canceller::new();
        let watcher = Watcher::new(events, canceller.clone());
        let (alive, done) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("pcsc-monitor".into())
            .spawn(move || {
                let _alive = alive;
                watcher.run();
            })
            .map_err(|e| HalError::new(ErrorKind::Other, format!("cannot start thread: {e}")))?;
        Ok(Self {
            canceller,
            thread: Some(thread),
            done,
        })
    }

    /// Stops the monitor and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // pcsc-lite forgets an SCardCancel that arrives before the thread has entered its wait,
        // so cancel again until the thread is gone (usually the first one does it).
        self.canceller.cancel();
        while let Err(RecvTimeoutError::Timeout) = self.done.recv_timeout(RECANCEL) {
            self.canceller.cancel();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ReaderMonitor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What the monitor knows of one reader.
#[derive(Debug, Default, Clone, Copy)]
struct Known {
    present: bool,
    /// The reader's event counter at the last change we saw.
    count: Option<u32>,
}

struct Watcher {
    events: Sender<ReaderEvent>,
    canceller: Canceller,
    slot: super::context::ContextSlot,
    known: BTreeMap<String, Known>,
    service_up: bool,
}

impl Watcher {
    fn new(events: Sender<ReaderEvent>, canceller: Canceller) -> Self {
        let slot = super::context::ContextSlot::new(canceller.clone());
        Self {
            events,
            canceller,
            slot,
            known: BTreeMap::new(),
            service_up: false,
        }
    }

    /// Sends an event; `false` when nobody listens any more.
    fn send(&self, event: ReaderEvent) -> bool {
        self.events.send(event).is_ok()
    }

    fn run(mut self) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        while !self.canceller.is_cancelled() {
            match self.watch() {
                Ok(()) => return,
                Err(e) if e.kind() == ErrorKind::Cancelled => return,
                Err(e) => {
                    self.slot.invalidate_on(&e);
                    if !self.forget_all(&e) {
                        return;
                    }
                    if !self.canceller.sleep(backoff.next_delay()) {
                        return;
                    }
                }
            }
        }
    }

    /// Reports every known reader removed after pcscd went away. `false`: nobody listens.
    fn forget_all(&mut self, error: &HalError) -> bool {
        let gone: Vec<String> = std::mem::take(&mut self.known).into_keys().collect();
        for reader in gone {
            if !self.send(ReaderEvent::Removed(reader)) {
                return false;
            }
        }
        if self.service_up {
            self.service_up = false;
            return self.send(ReaderEvent::ServiceLost(error.clone()));
        }
        true
    }

    /// Watches until cancelled (`Ok`) or the context fails (`Err`).
    fn watch(&mut self) -> Result<(), HalError> {
        let ctx = self.slot.get()?;
        if !self.service_up {
            self.service_up = true;
            if !self.send(ReaderEvent::ServiceUp) {
                return Ok(());
            }
        }
        // states[0] is the PnP pseudo-reader; the others are the readers we know. The same
        // `ReaderState` values live across calls, so `sync_current_state` hands pcsc-lite back
        // the event counters it gave us.
        let mut states = vec![pcsc::ReaderState::new(
            pcsc::PNP_NOTIFICATION(),
            pcsc::State::UNAWARE,
        )];
        let mut relist = true;
        loop {
            if relist && !self.relist(&ctx, &mut states)? {
                return Ok(());
            }
            match ctx.get_status_change(None, &mut states) {
                Ok(()) => {}
                Err(pcsc::Error::Timeout) => continue,
                Err(pcsc::Error::UnknownReader) => {
                    relist = true;
                    continue;
                }
                Err(e) => return Err(hal_error("SCardGetStatusChange", e)),
            }
            if self.canceller.is_cancelled() {
                return Ok(());
            }
            relist = states
                .first()
                .is_some_and(|pnp| pnp.event_state().contains(pcsc::State::CHANGED));
            let mut gone = Vec::new();
            for state in states.iter_mut().skip(1) {
                let event = state.event_state();
                if event.intersects(pcsc::State::UNKNOWN | pcsc::State::IGNORE) {
                    // Gone (maybe already back): report it now; the relist finds it again.
                    gone.push(state.name().to_owned());
                } else if event.contains(pcsc::State::CHANGED) && !self.card_change(state) {
                    return Ok(());
                }
            }
            for state in &mut states {
                state.sync_current_state();
            }
            for name in gone {
                let text = name.to_string_lossy().into_owned();
                self.known.remove(&text);
                states.retain(|s| s.name() != name.as_c_str());
                relist = true;
                if !self.send(ReaderEvent::Removed(text)) {
                    return Ok(());
                }
            }
        }
    }

    /// Reports card changes of one reader. `false`: nobody listens.
    fn card_change(&mut self, state: &pcsc::ReaderState) -> bool {
        let name = state.name().to_string_lossy().into_owned();
        let event = state.event_state();
        let present = event.contains(pcsc::State::PRESENT) && !event.contains(pcsc::State::MUTE);
        let count = state.event_count();
        let Some(known) = self.known.get_mut(&name) else {
            return true;
        };
        let was_present = known.present;
        // Each insertion or removal moves the counter by one: a jump of two or more while the
        // card is present again means it was removed and put back between two waits.
        let bounced = known.count.is_some_and(|old| count >= old + 2) && was_present && present;
        known.present = present;
        known.count = Some(count);
        if was_present
            && (!present || bounced)
            && !self.send(ReaderEvent::CardRemoved(name.clone()))
        {
            return false;
        }
        if present && (!was_present || bounced) {
            return self.send(ReaderEvent::CardInserted {
                reader: name,
                atr: state.atr().to_vec(),
            });
        }
        true
    }

    /// Lists readers, reports additions and removals, and rebuilds the watch list
    /// (`states[0]`, the `PnP` pseudo-reader, stays).
    fn relist(
        &mut self,
        ctx: &pcsc::Context,
        states: &mut Vec<pcsc::ReaderState>,
    ) -> Result<bool, HalError> {
        let names: Vec<CString> = match ctx.list_readers_owned() {
            Ok(names) => names,
            Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
            Err(e) => return Err(hal_error("SCardListReaders", e)),
        };
        let now: Vec<String> = names
            .iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        let gone: Vec<String> = self
            .known
            .keys()
            .filter(|k| !now.contains(k))
            .cloned()
            .collect();
        for name in gone {
            self.known.remove(&name);
            if let Ok(c) = CString::new(name.as_str()) {
                states.retain(|s| s.name() != c.as_c_str());
            }
            if !self.send(ReaderEvent::Removed(name)) {
                return Ok(false);
            }
        }
        for (name, text) in names.into_iter().zip(now) {
            if !self.known.contains_key(&text) {
                self.known.insert(text.clone(), Known::default());
                // New readers start UNAWARE: the next wait returns at once with their state,
                // and a card already in the field is reported as inserted.
                states.push(pcsc::ReaderState::new(name, pcsc::State::UNAWARE));
                if !self.send(ReaderEvent::Added(text)) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}
