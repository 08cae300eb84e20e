//! A one-shot view of every PC/SC reader and the card on it, for `encoder-bridge readers`.

use std::time::Duration;

use crate::encoder::CardInfo;
use crate::error::{ErrorKind, HalError};

use super::errors::hal_error;
use super::uid::{GET_UID, uid_from_reply};

/// What a reader is doing right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderState {
    /// No card in the field.
    Empty,
    /// A card is in the field.
    CardPresent,
    /// A card is in the field, but another program holds it exclusively.
    InUse,
    /// A card is in the field but does not answer.
    Mute,
    /// The reader is not usable.
    Unavailable,
}

impl ReaderState {
    /// Stable name for output: `empty`, `card_present`, `in_use`, `mute`, `unavailable`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::CardPresent => "card_present",
            Self::InUse => "in_use",
            Self::Mute => "mute",
            Self::Unavailable => "unavailable",
        }
    }
}

/// One reader and what is on it.
#[derive(Debug, Clone)]
pub struct ReaderSnapshot {
    /// The reader's name.
    pub name: String,
    /// Its state.
    pub state: ReaderState,
    /// The card on it, where it could be read (ATR always; UID when the card could be opened).
    pub card: Option<CardInfo>,
    /// Why the card could not be opened, if it could not.
    pub error: Option<HalError>,
}

/// Lists every reader with its state and card, opening each card briefly in shared mode to
/// read its UID (a card held exclusively by the daemon is reported `in_use`, with its ATR).
pub fn snapshot() -> Result<Vec<ReaderSnapshot>, HalError> {
    take(true)
}

/// Like [`snapshot`] without touching any card: reader names, states and ATRs only (the UID
/// stays empty). For code that only needs to know which readers exist and hold a card, so a
/// card is not sent an `FF CA` it did not need (a job reads the UID once, when it opens it).
pub fn states() -> Result<Vec<ReaderSnapshot>, HalError> {
    take(false)
}

fn take(read_uids: bool) -> Result<Vec<ReaderSnapshot>, HalError> {
    let ctx = pcsc::Context::establish(pcsc::Scope::User)
        .map_err(|e| hal_error("SCardEstablishContext", e))?;
    let names = match ctx.list_readers_owned() {
        Ok(names) => names,
        Err(pcsc::Error::NoReadersAvailable) => return Ok(Vec::new()),
        Err(e) => return Err(hal_error("SCardListReaders", e)),
    };
    let mut states: Vec<pcsc::ReaderState> = names
        .iter()
        .map(|n| pcsc::ReaderState::new(n.clone(), pcsc::State::UNAWARE))
        .collect();
    ctx.get_status_change(Duration::ZERO, &mut states)
        .map_err(|e| hal_error("SCardGetStatusChange", e))?;
    let mut out = Vec::with_capacity(states.len());
    for state in &states {
        let name = state.name().to_string_lossy().into_owned();
        let event = state.event_state();
        let mut snap = ReaderSnapshot {
            name: name.clone(),
            state: ReaderState::Empty,
            card: None,
            error: None,
        };
        if event.intersects(pcsc::State::UNKNOWN | pcsc::State::UNAVAILABLE | pcsc::State::IGNORE) {
            snap.state = ReaderState::Unavailable;
        } else if event.contains(pcsc::State::PRESENT) {
            let atr = state.atr().to_vec();
            snap.state = if event.contains(pcsc::State::MUTE) {
                ReaderState::Mute
            } else if event.contains(pcsc::State::EXCLUSIVE) {
                ReaderState::InUse
            } else {
                ReaderState::CardPresent
            };
            let mut info = CardInfo::new(Vec::new(), Some(atr), None, None);
            if read_uids && snap.state == ReaderState::CardPresent {
                match read_uid(&ctx, state.name()) {
                    Ok(uid) => info.uid = uid,
                    Err(e) => {
                        if e.kind() == ErrorKind::Busy {
                            snap.state = ReaderState::InUse;
                        }
                        snap.error = Some(e.on_reader(&name));
                    }
                }
            }
            snap.card = Some(info);
        }
        out.push(snap);
    }
    Ok(out)
}

fn read_uid(ctx: &pcsc::Context, reader: &std::ffi::CStr) -> Result<Vec<u8>, HalError> {
    let card = ctx
        .connect(reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .map_err(|e| hal_error("SCardConnect", e))?;
    let mut buffer = [0u8; 64];
    let reply = card
        .transmit(&GET_UID, &mut buffer)
        .map_err(|e| hal_error("SCardTransmit", e))?;
    uid_from_reply(reply)
}
