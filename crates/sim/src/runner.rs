//! The `encoder-sim card` process: places a [`VirtualCard`] on vpcd and keeps it there.
//!
//! - The card is present while connected to vpcd; `present` / `removed` lines on the output
//!   (flushed) say when, so harnesses can wait for them.
//! - Commands, one per line: `remove` (disconnect and save), `insert` (reconnect, card fresh
//!   from power-up), `quit`.
//! - If vpcd is not reachable at start, connecting is retried for `connect_timeout`, then a
//!   clear error. If vpcd goes away later (pcscd restarted), the card reports `removed` and
//!   keeps trying to come back until told otherwise.
//! - A torn write (see [`VirtualCard::set_tear_after_writes`]) disconnects without answering;
//!   the card stays removed until `insert`.
//! - The memory image is saved (`save`) whenever the card is removed and at exit.

use std::fs::File;
use std::io::{self, BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::thread;
use std::time::Duration;

use crate::card::{CardType, ReaderProfile, TearMode, VirtualCard};
use crate::error::{SimError, hex};
use crate::vpcd::{self, Link, ServeEnd};

/// How often blocked waits look at commands and the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// How long a removed card stays out of the field before it may come back.
///
/// pcscd learns of vpcd cards by polling every 400 ms (docs/reference/pcsc-lite.md §4). When a
/// client transmits to a card that just left, vpcd drops the connection inside the transmit; if the
/// card is back before the next presence poll, pcscd never sees an absent reader, keeps its cached
/// "present" status, and from then on reports the reader empty to clients while the card sits in
/// it. A real card cannot be pulled and put back within a fraction of a second either, so the card
/// stays out for longer than one poll period.
const MIN_ABSENCE: Duration = Duration::from_millis(600);

/// A control command read from stdin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Take the card off the reader (disconnect from vpcd) and save its image.
    Remove,
    /// Put the card (back) on the reader.
    Insert,
    /// Remove the card and exit.
    Quit,
}

impl FromStr for Command {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "remove" => Ok(Self::Remove),
            "insert" => Ok(Self::Insert),
            "quit" | "exit" => Ok(Self::Quit),
            other => Err(format!("unknown command {other:?} (remove, insert, quit)")),
        }
    }
}

/// Options of `encoder-sim card`.
#[derive(Clone, Debug)]
pub struct CardOptions {
    /// Card type.
    pub card_type: CardType,
    /// UID (4 or 7 bytes); the type's default when `None`.
    pub uid: Option<Vec<u8>>,
    /// Memory image to start from.
    pub load: Option<PathBuf>,
    /// Where to save the memory image on removal and exit.
    pub save: Option<PathBuf>,
    /// Where to log each APDU exchange in hex, one per line.
    pub apdu_log: Option<PathBuf>,
    /// Tear during the write after this many accepted writes.
    pub tear_after_writes: Option<u32>,
    /// What lands of the torn write.
    pub tear_mode: TearMode,
    /// A DESFire with the random-UID option (see [`VirtualCard::set_random_uid`]).
    pub random_uid: bool,
    /// A worn-out card: data writes store a flipped bit.
    pub worn: bool,
    /// The reader family in front of the card (vpcd only).
    pub reader_profile: ReaderProfile,
    /// vpcd address, `HOST:PORT`.
    pub vpcd: String,
    /// How long to retry the first connection.
    pub connect_timeout: Duration,
}

impl CardOptions {
    /// Defaults for a card type: default UID, no files, no tear, vpcd at its default
    /// address, 5 s to connect.
    pub fn new(card_type: CardType) -> Self {
        Self {
            card_type,
            uid: None,
            load: None,
            save: None,
            apdu_log: None,
            tear_after_writes: None,
            tear_mode: TearMode::default(),
            random_uid: false,
            worn: false,
            reader_profile: ReaderProfile::DEFAULT,
            vpcd: vpcd::DEFAULT_ADDR.to_owned(),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Builds the card the options describe (loading the image if asked) with the tear armed.
pub fn build_card(options: &CardOptions) -> Result<VirtualCard, SimError> {
    let mut card = match (&options.load, &options.uid) {
        (Some(_), Some(_)) => {
            return Err(SimError::Usage(
                "--uid and --load conflict: a loaded image carries its UID in block 0".into(),
            ));
        }
        (Some(path), None) => {
            let image = std::fs::read(path).map_err(|source| SimError::File {
                action: "reading",
                path: path.clone(),
                source,
            })?;
            VirtualCard::from_image(options.card_type, &image)?
        }
        (None, uid) => VirtualCard::new(options.card_type, uid.as_deref())?,
    };
    if options.save.is_some() && !options.card_type.has_image() {
        return Err(SimError::NoImage(options.card_type.name()));
    }
    if options.random_uid {
        card.set_random_uid(true)?;
    }
    card.set_tear_after_writes(options.tear_after_writes, options.tear_mode);
    card.set_worn(options.worn);
    card.set_reader_profile(options.reader_profile);
    Ok(card)
}

/// Saves the card's image to `path` atomically (temporary file, then rename).
pub fn save_image(path: &Path, card: &VirtualCard) -> Result<(), SimError> {
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

/// Reads commands (of `encoder-sim card` or `pn532`) from stdin on a thread, one a line.
/// Unknown lines are reported on stderr; at end of input the channel closes (the emulator
/// keeps running until a signal).
pub fn spawn_stdin_commands<C>() -> Receiver<C>
where
    C: FromStr + Send + 'static,
    C::Err: std::fmt::Display,
{
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            match line.parse::<C>() {
                Ok(cmd) => {
                    if tx.send(cmd).is_err() {
                        break;
                    }
                }
                Err(e) => eprintln!("encoder-sim: {e}"),
            }
        }
    });
    rx
}

/// Prints a state line (`present`, `removed`, ...) for test harnesses, flushed at once.
pub(crate) fn announce(out: &mut dyn Write, what: &str) {
    // A closed stdout must not stop the card.
    let _ = writeln!(out, "{what}");
    let _ = out.flush();
}

/// The command channel, tolerating its closing (stdin at end of input).
struct Commands<'a> {
    rx: &'a Receiver<Command>,
    open: bool,
}

impl Commands<'_> {
    /// The next command: waits up to [`POLL`] when `wait`, else only looks.
    fn next(&mut self, wait: bool) -> Option<Command> {
        if !self.open {
            if wait {
                thread::sleep(POLL);
            }
            return None;
        }
        let got = if wait {
            self.rx
                .recv_timeout(POLL)
                .map_err(|e| e == RecvTimeoutError::Disconnected)
        } else {
            self.rx
                .try_recv()
                .map_err(|e| e == TryRecvError::Disconnected)
        };
        got.map_err(|closed| self.open &= !closed).ok()
    }
}

/// The `--apdu-log` file.
struct ApduLog(Option<BufWriter<File>>);

impl ApduLog {
    fn open(path: Option<&Path>) -> Result<Self, SimError> {
        let Some(path) = path else {
            return Ok(Self(None));
        };
        let file = File::create(path).map_err(|source| SimError::File {
            action: "creating",
            path: path.to_owned(),
            source,
        })?;
        Ok(Self(Some(BufWriter::new(file))))
    }

    /// One line: `<command hex> -> <response hex>`.
    fn record(&mut self, command: &[u8], response: Option<&[u8]>) {
        if let Some(log) = self.0.as_mut() {
            let answer = response.map_or_else(|| "(torn: card left the field)".to_owned(), hex);
            let _ = writeln!(log, "{} -> {answer}", hex(command));
            let _ = log.flush();
        }
    }
}

/// Runs the card until `quit`, the stop flag (SIGTERM/SIGINT), or a fatal error. `out` gets
/// the `present` / `removed` lines.
pub fn run_card(
    options: &CardOptions,
    commands: &Receiver<Command>,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> Result<(), SimError> {
    let mut card = build_card(options)?;
    let mut log = ApduLog::open(options.apdu_log.as_deref())?;
    let save = |card: &VirtualCard| match &options.save {
        Some(path) => save_image(path, card),
        None => Ok(()),
    };
    let mut commands = Commands {
        rx: commands,
        open: true,
    };
    let mut want_present = true;
    let mut first_connect = true;
    let mut removed_at: Option<std::time::Instant> = None;
    let mut quit = false;

    while !quit && !stop.load(Ordering::SeqCst) {
        if !want_present {
            match commands.next(true) {
                Some(Command::Insert) => want_present = true,
                Some(Command::Quit) => quit = true,
                Some(Command::Remove) | None => {}
            }
            continue;
        }
        if let Some(at) = removed_at.take() {
            thread::sleep(MIN_ABSENCE.saturating_sub(at.elapsed()));
        }
        let mut link = if first_connect {
            Link::connect_with_retry(&options.vpcd, options.connect_timeout, || {
                stop.load(Ordering::SeqCst)
            })?
        } else if let Ok(link) = Link::connect(&options.vpcd) {
            link
        } else {
            // vpcd is gone (pcscd restarting): keep trying, but obey commands.
            match commands.next(true) {
                Some(Command::Remove) => want_present = false,
                Some(Command::Quit) => quit = true,
                Some(Command::Insert) | None => {}
            }
            continue;
        };
        first_connect = false;
        link.set_poll_interval(Some(POLL))
            .map_err(|source| SimError::Io {
                context: "configuring the vpcd socket",
                source,
            })?;
        card.insert();
        announce(out, "present");
        let mut pending = None;
        let end = vpcd::serve(
            &mut link,
            &mut card,
            || {
                if stop.load(Ordering::SeqCst) {
                    return true;
                }
                match commands.next(false) {
                    Some(cmd @ (Command::Remove | Command::Quit)) => {
                        pending = Some(cmd);
                        true
                    }
                    Some(Command::Insert) | None => false,
                }
            },
            |command, response| log.record(command, response),
        );
        link.shutdown();
        removed_at = Some(std::time::Instant::now());
        // Saved before it is announced: a harness that waits for `removed` and then reads
        // the image finds it complete.
        save(&card)?;
        announce(out, "removed");
        match end {
            Ok(ServeEnd::PeerClosed) => thread::sleep(POLL),
            Ok(ServeEnd::Torn) => want_present = false,
            Ok(ServeEnd::Stopped) => match pending {
                Some(Command::Quit) => quit = true,
                Some(Command::Remove) => want_present = false,
                _ => {}
            },
            Err(e) => {
                eprintln!("encoder-sim: vpcd link failed: {e}; reconnecting");
                thread::sleep(POLL);
            }
        }
    }
    save(&card)
}

#[cfg(test)]
mod tests;
