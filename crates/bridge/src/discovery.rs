//! Which encoders the bridge drives: PC/SC readers as the hot-plug monitor reports them,
//! filtered by the configuration's names and patterns, and PN532 modules from the
//! configuration.

use std::time::Duration;

use encoder_hal::pcsc::{PcscEncoder, ReaderEvent, ReaderMonitor};
use encoder_hal::{CardSession, Encoder, EncoderKind, ErrorKind, HalError, Pn532Encoder};

use crate::config::{Config, ReaderPolicy};
use crate::runner::EncoderFactory;

/// One encoder the configuration asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    /// `pcsc` or `pn532`.
    pub kind: EncoderKind,
    /// Reader name or device path.
    pub reader: String,
    /// Shown in the cloud.
    pub display_name: String,
    /// Card wait.
    pub card_wait: Duration,
    /// Beep and light at the end of a job (readers that can).
    pub feedback: bool,
    /// Named in the configuration (stays known while absent).
    pub configured: bool,
}

/// The encoders known before any reader is seen: exact PC/SC names and every PN532.
pub fn configured(config: &Config) -> Vec<Wanted> {
    let mut out = Vec::new();
    for name in config.exact_readers() {
        if let ReaderPolicy::Drive {
            display_name,
            card_wait,
            feedback,
            ..
        } = config.reader_policy(&name)
        {
            out.push(Wanted {
                kind: EncoderKind::Pcsc,
                reader: name,
                display_name,
                card_wait,
                feedback,
                configured: true,
            });
        }
    }
    for entry in &config.encoders.pn532 {
        let path = entry.device.display().to_string();
        out.push(Wanted {
            kind: EncoderKind::Pn532,
            display_name: entry.display_name.clone().unwrap_or_else(|| path.clone()),
            reader: path,
            card_wait: entry
                .card_wait_secs
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .unwrap_or_else(|| config.card_wait()),
            // A PN532 has no buzzer.
            feedback: false,
            configured: true,
        });
    }
    out
}

/// The PC/SC reader `name`, if the configuration wants it driven.
pub fn pcsc_reader(config: &Config, name: &str) -> Option<Wanted> {
    match config.reader_policy(name) {
        ReaderPolicy::Drive {
            display_name,
            card_wait,
            feedback,
            configured,
        } => Some(Wanted {
            kind: EncoderKind::Pcsc,
            reader: name.to_owned(),
            display_name,
            card_wait,
            feedback,
            configured,
        }),
        ReaderPolicy::Ignore => None,
    }
}

/// An encoder that cannot be created (a reader name with a NUL byte): every call fails.
struct Broken {
    name: String,
    error: HalError,
    canceller: encoder_hal::Canceller,
}

impl Encoder for Broken {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> EncoderKind {
        EncoderKind::Pcsc
    }
    fn wait_for_card(&mut self, _: Duration) -> Result<bool, HalError> {
        Err(self.error.clone())
    }
    fn open_session(&mut self) -> Result<Box<dyn CardSession + '_>, HalError> {
        Err(self.error.clone())
    }
    fn canceller(&self) -> encoder_hal::Canceller {
        self.canceller.clone()
    }
}

/// Creates the encoder for `wanted`, again after each cancelled wait.
pub fn factory(wanted: &Wanted) -> EncoderFactory {
    let reader = wanted.reader.clone();
    match wanted.kind {
        EncoderKind::Pcsc => Box::new(move || match PcscEncoder::new(&reader) {
            Ok(e) => Box::new(e) as Box<dyn Encoder>,
            Err(error) => Box::new(Broken {
                name: reader.clone(),
                error,
                canceller: encoder_hal::Canceller::new(),
            }),
        }),
        EncoderKind::Pn532 => Box::new(move || Box::new(Pn532Encoder::new(reader.clone()))),
    }
}

/// Starts the PC/SC hot-plug monitor; its events are handed to `forward` from a thread of
/// its own. `None` (logged) when the monitor cannot start.
pub fn watch_pcsc(forward: impl Fn(ReaderEvent) -> bool + Send + 'static) -> Option<ReaderMonitor> {
    let (tx, rx) = std::sync::mpsc::channel();
    let monitor = match ReaderMonitor::spawn(tx) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!("cannot watch PC/SC readers: {e}");
            return None;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("pcsc-events".into())
        .spawn(move || {
            while let Ok(event) = rx.recv() {
                if !forward(event) {
                    break;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start a thread: {e}");
        return None;
    }
    Some(monitor)
}

/// Whether a serial device exists and is openable for reading and writing (for status and
/// `doctor`).
pub fn serial_access(path: &str) -> Result<(), HalError> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(HalError::new(
            ErrorKind::ReaderUnavailable,
            format!("{path} does not exist"),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(HalError::new(
            ErrorKind::Permission,
            format!("no read/write access to {path}"),
        )),
        Err(e) => Err(HalError::new(ErrorKind::Other, format!("{path}: {e}"))),
    }
}

/// The error when a command names no encoder and several could be meant.
pub fn several_encoders<'a>(readers: impl Iterator<Item = &'a str>) -> String {
    format!(
        "several encoders ({}): pass --reader NAME or --device PATH",
        readers
            .map(|r| format!("\"{r}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}
