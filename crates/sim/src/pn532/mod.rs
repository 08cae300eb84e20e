//! `encoder-sim pn532`: a PN532 (firmware 1.6) with a MIFARE Classic or DESFire card in its field,
//! behind a pseudo-terminal, for the serial backend's tests and for libnfc's tools.
//!
//! - [`frame`]: the chip side of the HSU framing (its own decoder, independent of the hal's).
//! - [`chip`]: the commands the chip answers, over [`crate::mifare`].
//! - [`pty`]: the pty pair, the link at `--link PATH`, and line pacing (`--baud`).
//!
//! The runner prints `ready` once the link exists, then `present` / `removed` as the card
//! comes and goes (like `encoder-sim card`). Commands on stdin, one per line: `remove`,
//! `insert`, `unplug` (the link disappears, as a USB unplug; prints `unplugged`), `plug`
//! (it comes back; prints `ready`), `quit`. The card image is saved (`--save`) whenever the
//! card is removed and at exit.

pub mod chip;
pub mod frame;
pub mod pty;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::thread;
use std::time::Duration;

use crate::error::{SimError, hex};
use crate::runner::{CardOptions, announce, build_card};
use chip::{Event, FieldCard, FieldChip, Outcome, Pn532};
use frame::{FrameReader, HostFrame};
use pty::Pty;

/// How long one read waits before commands and the stop flag are looked at again.
const POLL: Duration = Duration::from_millis(20);

/// A control command read from stdin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Take the card out of the field (and save its image).
    Remove,
    /// Put the card (back) in the field.
    Insert,
    /// The USB-serial adapter is unplugged: the link disappears.
    Unplug,
    /// The adapter is plugged in again: a new link at the same path.
    Plug,
    /// Exit (the link disappears).
    Quit,
}

impl FromStr for Command {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "remove" => Ok(Self::Remove),
            "insert" => Ok(Self::Insert),
            "unplug" => Ok(Self::Unplug),
            "plug" => Ok(Self::Plug),
            "quit" | "exit" => Ok(Self::Quit),
            other => Err(format!(
                "unknown command {other:?} (remove, insert, unplug, plug, quit)"
            )),
        }
    }
}

/// Options of `encoder-sim pn532`.
#[derive(Clone, Debug)]
pub struct Pn532Options {
    /// The card in the field (its `vpcd` fields are unused).
    pub card: CardOptions,
    /// Where to link the device side of the pty.
    pub link: PathBuf,
    /// Pace the line at this baud rate.
    pub baud: Option<u32>,
}

fn save(path: Option<&Path>, card: &FieldChip) -> Result<(), SimError> {
    let Some(path) = path else {
        return Ok(());
    };
    let file_error = |source| SimError::File {
        action: "writing",
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, card.image()).map_err(file_error)?;
    std::fs::rename(&tmp, path).map_err(file_error)
}

/// Builds the chip with the card the options describe.
pub fn build_chip(options: &CardOptions) -> Result<Pn532, SimError> {
    let virtual_card = build_card(options)?;
    let card = if let Some(classic) = virtual_card.classic() {
        FieldChip::Classic(classic.clone())
    } else if let Some(desfire) = virtual_card.desfire() {
        FieldChip::Desfire(Box::new(desfire.clone()))
    } else {
        return Err(SimError::Usage(format!(
            "the PN532 emulator holds MIFARE Classic and DESFire cards, not {}",
            options.card_type
        )));
    };
    Ok(Pn532::new(FieldCard {
        card,
        uid: virtual_card.uid().to_vec(),
        sak: virtual_card.sak(),
        atqa: virtual_card.atqa(),
        present: true,
        writes: 0,
        tear_at: options.tear_after_writes.map(|n| (n, options.tear_mode)),
    }))
}

/// The running emulator: chip, line and logs.
struct Emulator<'a> {
    chip: Pn532,
    pty: Option<Pty>,
    reader: FrameReader,
    last_reply: Vec<u8>,
    pending: bool,
    inbound: usize,
    log: Option<BufWriter<File>>,
    options: &'a Pn532Options,
}

impl Emulator<'_> {
    fn send(&mut self, bytes: &[u8]) {
        if let Some(pty) = self.pty.as_mut()
            && let Err(e) = pty.send(bytes)
        {
            eprintln!("encoder-sim: writing to the pty: {e}");
        }
    }

    fn record(&mut self, command: &[u8], reply: &[u8]) {
        if let Some(log) = self.log.as_mut() {
            let _ = writeln!(log, "{} -> {}", hex(command), hex(reply));
            let _ = log.flush();
        }
    }

    fn on_frame(&mut self, frame: HostFrame, out: &mut dyn Write) -> Result<(), SimError> {
        match frame {
            // The host aborts the running command.
            HostFrame::Ack => self.pending = false,
            HostFrame::Nack => {
                let last = self.last_reply.clone();
                self.send(&last);
            }
            // The chip ignores a frame with bad checksums; the host resends when no ACK comes.
            HostFrame::Corrupt => {}
            HostFrame::Command(body) => {
                let received = self
                    .pty
                    .as_ref()
                    .map_or(Duration::ZERO, |p| p.line_time(self.inbound));
                self.inbound = 0;
                if !received.is_zero() {
                    thread::sleep(received);
                }
                self.send(&frame::ACK);
                self.pending = false;
                match self.chip.handle(&body) {
                    Outcome::Reply(reply) => {
                        self.record(&body, &reply);
                        let wire = frame::reply_frame(&reply);
                        self.send(&wire);
                        self.last_reply = wire;
                    }
                    Outcome::SyntaxError => {
                        self.record(&body, &[0x7F]);
                        self.send(&frame::ERROR);
                        self.last_reply = frame::ERROR.to_vec();
                    }
                    Outcome::Pending => {
                        self.record(&body, &[]);
                        self.pending = true;
                    }
                }
                for event in self.chip.take_events() {
                    match event {
                        Event::Torn => {
                            announce(out, "removed");
                            save(self.options.card.save.as_deref(), &self.chip.field.card)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Runs the emulator until `quit`, the stop flag (SIGTERM/SIGINT) or a fatal error.
pub fn run_pn532(
    options: &Pn532Options,
    commands: &Receiver<Command>,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> Result<(), SimError> {
    let chip = build_chip(&options.card)?;
    let log = match &options.card.apdu_log {
        Some(path) => Some(BufWriter::new(File::create(path).map_err(|source| {
            SimError::File {
                action: "creating",
                path: path.clone(),
                source,
            }
        })?)),
        None => None,
    };
    let mut emu = Emulator {
        chip,
        pty: Some(Pty::create(&options.link, options.baud)?),
        reader: FrameReader::new(),
        last_reply: Vec::new(),
        pending: false,
        inbound: 0,
        log,
        options,
    };
    let save_path = options.card.save.as_deref();
    announce(out, "ready");
    announce(out, "present");
    let mut commands_open = true;
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::SeqCst) {
        if commands_open {
            match commands.try_recv() {
                Ok(Command::Quit) => break,
                Ok(Command::Remove) => {
                    if emu.chip.field.present {
                        emu.chip.remove_card();
                        // Saved before it is announced: a test that waits for `removed`
                        // then reads the image finds it complete.
                        save(save_path, &emu.chip.field.card)?;
                        announce(out, "removed");
                    }
                }
                Ok(Command::Insert) => {
                    if !emu.chip.field.present {
                        emu.chip.insert_card();
                    }
                    announce(out, "present");
                }
                Ok(Command::Unplug) => {
                    emu.pty = None;
                    emu.reader.reset();
                    emu.pending = false;
                    announce(out, "unplugged");
                }
                Ok(Command::Plug) => {
                    if emu.pty.is_none() {
                        emu.pty = Some(Pty::create(&options.link, options.baud)?);
                    }
                    announce(out, "ready");
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => commands_open = false,
            }
        }
        if emu.pending
            && let Some(reply) = emu.chip.poll_pending()
        {
            emu.pending = false;
            let wire = frame::reply_frame(&reply);
            emu.send(&wire);
            emu.last_reply = wire;
        }
        let Some(pty) = emu.pty.as_mut() else {
            thread::sleep(POLL);
            continue;
        };
        let n = pty.read(&mut buf, POLL).map_err(|source| SimError::Io {
            context: "reading the pty",
            source,
        })?;
        emu.inbound += n;
        for &byte in buf.get(..n).unwrap_or_default() {
            if let Some(frame) = emu.reader.feed(byte) {
                emu.on_frame(frame, out)?;
            }
        }
    }
    drop(emu.pty.take());
    save(save_path, &emu.chip.field.card)
}
