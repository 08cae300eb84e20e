//! The emulator's end of the serial line: a pseudo-terminal pair whose device side is linked
//! at a path of the user's choosing, as udev links a USB-serial adapter.
//!
//! A pty delivers bytes at once whatever the baud rate (docs/reference/serial-udev.md §4), so with
//! a baud rate set the emulator paces the line itself: a frame counts as received only after the
//! time its bytes take on a real line, and a reply reaches the host only after its own line time.
//! Dropping the [`Pty`] closes the pair and removes the link: a USB unplug.

use std::io::{self, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serialport::{SerialPort, TTYPort};

use crate::error::SimError;

/// The emulator side of the line.
pub struct Pty {
    master: TTYPort,
    /// Kept open so the master never sees a hang-up between two clients.
    _device: TTYPort,
    device_path: PathBuf,
    link: PathBuf,
    byte_time: Option<Duration>,
}

impl std::fmt::Debug for Pty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pty")
            .field("device", &self.device_path)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

/// Time one byte takes at `baud` with 8N1 framing (10 bits).
pub fn byte_time(baud: u32) -> Duration {
    Duration::from_nanos(10_000_000_000 / u64::from(baud.max(1)))
}

impl Pty {
    /// Creates a pty pair and links `link` to its device side (replacing an old link).
    /// `baud`: pace the line at this speed; `None`: as fast as the pty goes.
    pub fn create(link: &Path, baud: Option<u32>) -> Result<Self, SimError> {
        let io = |context| {
            move |e: serialport::Error| SimError::Io {
                context,
                source: e.into(),
            }
        };
        let (master, device) = TTYPort::pair().map_err(io("creating a pseudo-terminal pair"))?;
        let device_path = device
            .name()
            .map(PathBuf::from)
            .ok_or_else(|| SimError::Usage("the pseudo-terminal has no name".into()))?;
        match std::fs::symlink_metadata(link) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let _ = std::fs::remove_file(link);
            }
            Ok(_) => {
                return Err(SimError::Usage(format!(
                    "{} exists and is not a symbolic link; refusing to replace it",
                    link.display()
                )));
            }
            Err(_) => {}
        }
        std::os::unix::fs::symlink(&device_path, link).map_err(|source| SimError::File {
            action: "linking",
            path: link.to_owned(),
            source,
        })?;
        Ok(Self {
            master,
            _device: device,
            device_path,
            link: link.to_owned(),
            byte_time: baud.map(byte_time),
        })
    }

    /// The pty device the link points to.
    pub fn device_path(&self) -> &Path {
        &self.device_path
    }

    /// Line time of `bytes` bytes (zero when not pacing).
    pub fn line_time(&self, bytes: usize) -> Duration {
        self.byte_time.map_or(Duration::ZERO, |t| {
            t.saturating_mul(u32::try_from(bytes).unwrap_or(u32::MAX))
        })
    }

    /// Reads what the host sent, waiting up to `timeout`; `Ok(0)` when nothing came.
    pub fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        self.master.set_timeout(timeout).map_err(io::Error::from)?;
        match self.master.read(buf) {
            Ok(n) => Ok(n),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::TimedOut | ErrorKind::WouldBlock | ErrorKind::Interrupted
                ) =>
            {
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }

    /// Sends `bytes` to the host after their line time.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let wait = self.line_time(bytes.len());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        self.master
            .set_timeout(Duration::from_millis(500))
            .map_err(io::Error::from)?;
        self.master.write_all(bytes)?;
        self.master.flush()
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        // Only remove the link if it is still ours.
        if std::fs::read_link(&self.link).is_ok_and(|target| target == self.device_path) {
            let _ = std::fs::remove_file(&self.link);
        }
    }
}
