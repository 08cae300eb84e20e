//! The serial line to a PN532 in HSU mode: frames out, ACK, reply frames in.
//!
//! Every exchange follows docs/reference/pn532.md §2: flush stale input, send the command frame,
//! expect the ACK within [`LinkConfig::ack_timeout`] (resending once, and on a NACK), then read
//! the reply frame until the command's own timeout. Reads are done in short slices so that a
//! cancellation is noticed between them; a cancelled command is aborted by sending an ACK,
//! as the datasheet allows.

use std::io::{ErrorKind as IoKind, Read, Write};
use std::time::{Duration, Instant};

use serialport::{ClearBuffer, SerialPort};

use super::frame::{self, Decoder, Frame, TFI_CHIP, TFI_HOST};
use crate::cancel::Canceller;
use crate::error::{ErrorKind, HalError};

/// Timing of the serial link.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Line speed. The PN532 starts at 115200 baud.
    pub baud: u32,
    /// How long to wait for the ACK of a command before resending it once. The chip sends it
    /// within 15 ms (docs/reference/pn532.md §2); a USB-serial adapter may hold input for its
    /// latency timer (up to 16 ms unless udev lowers it) and a busy host may read late, so the
    /// default leaves room: 50 ms, and a silent chip is still noticed within 0.1 s (two sends).
    /// Seen with 15 ms: an emulator on a loaded 2-core machine missed it and a job ended with
    /// `encoder_communication_timeout`.
    pub ack_timeout: Duration,
    /// ACK wait for the first command after opening: some USB-serial adapters take 1-1.5 s.
    pub first_ack_timeout: Duration,
    /// Default wait for a reply after the ACK (libnfc uses 350 ms).
    pub reply_timeout: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            baud: 115_200,
            ack_timeout: Duration::from_millis(50),
            first_ack_timeout: Duration::from_millis(1500),
            reply_timeout: Duration::from_millis(350),
        }
    }
}

/// Longest single blocking read: bounds how late a cancellation is noticed.
const READ_SLICE: Duration = Duration::from_millis(20);

/// The wait of the one read made past a deadline (see `Link::read_frame`).
const LAST_LOOK: Duration = Duration::from_millis(1);

/// An open serial line to a PN532.
pub struct Link {
    port: Box<dyn SerialPort>,
    path: String,
    config: LinkConfig,
    decoder: Decoder,
    canceller: Canceller,
    acked_once: bool,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Maps an I/O error of the port to a hal error.
fn io_error(path: &str, what: &str, e: &std::io::Error) -> HalError {
    let kind = match e.kind() {
        IoKind::TimedOut | IoKind::WouldBlock => ErrorKind::Timeout,
        IoKind::PermissionDenied => ErrorKind::Permission,
        _ => ErrorKind::ReaderUnavailable,
    };
    HalError::new(kind, format!("{what}: {e}")).on_reader(path)
}

fn open_error(path: &str, e: &serialport::Error) -> HalError {
    let kind = match e.kind() {
        serialport::ErrorKind::Io(IoKind::PermissionDenied) => ErrorKind::Permission,
        serialport::ErrorKind::Io(_) if e.description.contains("ermission") => {
            ErrorKind::Permission
        }
        // NoDevice, NotFound and the rest: the device is not (or no longer) there.
        _ => ErrorKind::ReaderUnavailable,
    };
    let detail = if kind == ErrorKind::Permission {
        format!(
            "cannot open {path}: {e}; add the service user to the device's group \
             (`encoder-bridge` with udev/99-encoder-bridge.rules, or `dialout`)"
        )
    } else {
        format!("cannot open {path}: {e}")
    };
    HalError::new(kind, detail).on_reader(path)
}

impl Link {
    /// Opens `path` (8N1, no flow control, exclusive) without talking to the chip yet.
    pub fn open(path: &str, config: LinkConfig, canceller: Canceller) -> Result<Self, HalError> {
        // The path may be a udev symlink: make sure it exists before serialport reports a
        // generic error for it.
        if !std::path::Path::new(path).exists() {
            return Err(HalError::new(
                ErrorKind::ReaderUnavailable,
                format!("{path} does not exist"),
            )
            .on_reader(path));
        }
        let port = serialport::new(path, config.baud)
            .data_bits(serialport::DataBits::Eight)
            .parity(serialport::Parity::None)
            .stop_bits(serialport::StopBits::One)
            .flow_control(serialport::FlowControl::None)
            .timeout(READ_SLICE)
            .open()
            .map_err(|e| open_error(path, &e))?;
        Ok(Self::from_port(port, path, config, canceller))
    }

    /// Wraps an already open port (tests, pseudo-terminals).
    pub fn from_port(
        port: Box<dyn SerialPort>,
        path: &str,
        config: LinkConfig,
        canceller: Canceller,
    ) -> Self {
        Self {
            port,
            path: path.to_owned(),
            config,
            decoder: Decoder::new(),
            canceller,
            acked_once: false,
        }
    }

    /// The device path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Wakes the chip from power-down: `55 55` and 14 zero bytes (reference §5). The caller
    /// must follow with `SAMConfiguration`.
    pub fn wake_up(&mut self) -> Result<(), HalError> {
        let mut wake = vec![0x55, 0x55];
        wake.extend_from_slice(&[0u8; 14]);
        self.write_all(&wake)
    }

    /// Sends an ACK frame: aborts the command the chip is running.
    pub fn abort(&mut self) -> Result<(), HalError> {
        self.write_all(&frame::ACK)
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), HalError> {
        self.port
            .write_all(bytes)
            .map_err(|e| io_error(&self.path, "write", &e))?;
        self.port
            .flush()
            .map_err(|e| io_error(&self.path, "flush", &e))
    }

    /// Drops whatever the line delivered before now.
    fn flush_input(&mut self) -> Result<(), HalError> {
        self.decoder.clear();
        self.port.clear(ClearBuffer::Input).map_err(|e| {
            HalError::new(ErrorKind::ReaderUnavailable, format!("flush: {e}")).on_reader(&self.path)
        })?;
        // A pty's tcflush does not drop what is already queued on the other side's write:
        // read whatever is immediately available too.
        let _ = self.port.set_timeout(Duration::ZERO);
        let mut scratch = [0u8; 256];
        let mut result = Ok(());
        for _ in 0..64 {
            match self.port.read(&mut scratch) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        IoKind::TimedOut | IoKind::WouldBlock | IoKind::Interrupted
                    ) =>
                {
                    break;
                }
                Err(e) => {
                    result = Err(io_error(&self.path, "read", &e));
                    break;
                }
            }
        }
        self.decoder.clear();
        result
    }

    /// Reads until a frame is decoded or `deadline` passes (`Ok(None)`).
    ///
    /// Past the deadline the port is looked at once more without waiting: a thread that was
    /// not scheduled until after the deadline (a loaded machine) still takes a frame that had
    /// arrived in time, instead of calling it lost.
    fn read_frame(&mut self, deadline: Instant) -> Result<Option<Frame>, HalError> {
        let mut buf = [0u8; 128];
        let mut last_look = false;
        loop {
            if let Some(frame) = self.decoder.next_frame() {
                return Ok(Some(frame));
            }
            if self.canceller.is_cancelled() {
                let _ = self.abort();
                return Err(
                    HalError::new(ErrorKind::Cancelled, "encoder is shutting down")
                        .on_reader(&self.path),
                );
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                if last_look {
                    return Ok(None);
                }
                last_look = true;
            }
            self.port
                .set_timeout(left.clamp(LAST_LOOK, READ_SLICE))
                .map_err(|e| {
                    HalError::new(ErrorKind::ReaderUnavailable, e.to_string()).on_reader(&self.path)
                })?;
            match self.port.read(&mut buf) {
                Ok(0) => {
                    return Err(HalError::new(ErrorKind::ReaderUnavailable, "device closed")
                        .on_reader(&self.path));
                }
                Ok(n) => self.decoder.push(buf.get(..n).unwrap_or_default()),
                Err(e)
                    if matches!(
                        e.kind(),
                        IoKind::TimedOut | IoKind::WouldBlock | IoKind::Interrupted
                    ) => {}
                Err(e) => return Err(io_error(&self.path, "read", &e)),
            }
        }
    }

    /// Runs one command: `code` and `data` go out as `D4 code data`; returns the reply's data
    /// (after `D5 code+1`). `reply_timeout` bounds the wait after the ACK.
    pub fn command(
        &mut self,
        code: u8,
        data: &[u8],
        reply_timeout: Duration,
    ) -> Result<Vec<u8>, HalError> {
        let mut body = Vec::with_capacity(data.len() + 2);
        body.extend_from_slice(&[TFI_HOST, code]);
        body.extend_from_slice(data);
        let wire = frame::encode(&body).ok_or_else(|| {
            HalError::new(
                ErrorKind::Other,
                format!("command {code:02X}: {} data bytes is too long", data.len()),
            )
            .on_reader(&self.path)
        })?;
        self.flush_input()?;
        let ack_timeout = if self.acked_once {
            self.config.ack_timeout
        } else {
            self.config.first_ack_timeout
        };
        let mut sends = 0;
        'send: loop {
            self.write_all(&wire)?;
            sends += 1;
            let deadline = Instant::now() + ack_timeout;
            loop {
                match self.read_frame(deadline)? {
                    Some(Frame::Ack) => break 'send,
                    Some(Frame::Nack) | None if sends < 2 => {
                        tracing::debug!(reader = %self.path, code, "no ACK, resending");
                        continue 'send;
                    }
                    Some(Frame::Nack) | None => {
                        return Err(HalError::new(
                            ErrorKind::Timeout,
                            format!("PN532 did not acknowledge command {code:02X}"),
                        )
                        .on_reader(&self.path));
                    }
                    Some(Frame::Error) => {
                        return Err(self
                            .protocol(format!("PN532 rejected command {code:02X} (error frame)")));
                    }
                    // A late reply to an earlier command: not ours.
                    Some(Frame::Info(_)) => {}
                }
            }
        }
        self.acked_once = true;
        let deadline = Instant::now() + reply_timeout;
        loop {
            match self.read_frame(deadline)? {
                Some(Frame::Info(reply)) => match reply.as_slice() {
                    [TFI_CHIP, got, rest @ ..] if *got == code.wrapping_add(1) => {
                        let rest = rest.to_vec();
                        if sends > 1 {
                            // The first send may have been executed too: let its reply come
                            // and go before the next command.
                            let until = Instant::now() + self.config.ack_timeout;
                            while let Ok(Some(_)) = self.read_frame(until) {}
                        }
                        return Ok(rest);
                    }
                    _ => tracing::debug!(reader = %self.path, code, "ignoring an unrelated frame"),
                },
                Some(Frame::Ack | Frame::Nack) => {}
                Some(Frame::Error) => {
                    return Err(self.protocol(format!("PN532 sent an error frame for {code:02X}")));
                }
                None => {
                    let _ = self.abort();
                    return Err(HalError::new(
                        ErrorKind::Timeout,
                        format!("no reply to PN532 command {code:02X} within {reply_timeout:?}"),
                    )
                    .on_reader(&self.path));
                }
            }
        }
    }

    /// Runs a command with the configured default reply timeout.
    pub fn call(&mut self, code: u8, data: &[u8]) -> Result<Vec<u8>, HalError> {
        self.command(code, data, self.config.reply_timeout)
    }

    fn protocol(&self, detail: String) -> HalError {
        HalError::new(ErrorKind::Protocol, detail).on_reader(&self.path)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use std::io::Write;

    use serialport::TTYPort;

    use super::*;

    /// A frame that arrived before the deadline is taken even when the reader only looks after
    /// it (a thread scheduled late on a loaded machine), and nothing is made up when none came.
    #[test]
    fn a_frame_already_there_is_taken_past_the_deadline() {
        let (mut chip, host) = TTYPort::pair().expect("pty pair");
        let mut link = Link::from_port(
            Box::new(host),
            "pty",
            LinkConfig::default(),
            Canceller::new(),
        );
        let past = Instant::now();
        assert_eq!(link.read_frame(past).expect("read"), None);
        chip.write_all(&frame::ACK).expect("write");
        chip.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(link.read_frame(past).expect("read"), Some(Frame::Ack));
    }
}
