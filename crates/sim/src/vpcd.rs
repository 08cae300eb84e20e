//! The TCP link to pcscd's virtual reader driver, vpcd (docs/reference/pcsc-lite.md §6-§8).
//!
//! The card is the TCP client; vpcd listens (default `127.0.0.1:35963`). Both ways every
//! message is a 2-byte big-endian length followed by that many bytes. A 1-byte message from
//! vpcd is a control: `00` power off, `01` power on, `02` reset (no answer), `04` get ATR
//! (answer the ATR). Anything longer is a command APDU, answered with the response APDU.
//!
//! Debian 12's vpcd writes the length and the data separately, so the card sets
//! `TCP_QUICKACK` after every read (and `TCP_NODELAY`), else each APDU stalls about 44 ms on
//! delayed ACKs.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::card::VirtualCard;
use crate::error::SimError;

/// vpcd's default address (first reader slot).
pub const DEFAULT_ADDR: &str = "127.0.0.1:35963";

/// A message received from vpcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// `00`: power off.
    PowerOff,
    /// `01`: power on.
    PowerOn,
    /// `02`: reset.
    Reset,
    /// `04`: get ATR.
    GetAtr,
    /// Another 1-byte control, ignored.
    UnknownControl(u8),
    /// A zero-length message, ignored.
    Empty,
    /// A command APDU (two bytes or more).
    Apdu(Vec<u8>),
}

impl Message {
    /// Classifies a received frame payload.
    pub fn parse(frame: Vec<u8>) -> Self {
        match frame.as_slice() {
            [] => Self::Empty,
            [0x00] => Self::PowerOff,
            [0x01] => Self::PowerOn,
            [0x02] => Self::Reset,
            [0x04] => Self::GetAtr,
            &[other] => Self::UnknownControl(other),
            _ => Self::Apdu(frame),
        }
    }
}

/// Result of one [`Link::recv`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recv {
    /// A complete frame payload.
    Frame(Vec<u8>),
    /// Nothing complete arrived within the poll interval (partial data is kept).
    Idle,
    /// vpcd closed the connection (EOF or reset): pcscd went away.
    Closed,
}

fn quickack(stream: &TcpStream) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // Best effort: a failure only costs latency.
        let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = stream;
}

/// A framed connection to vpcd.
#[derive(Debug)]
pub struct Link {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Link {
    /// Wraps a connected stream: sets `TCP_NODELAY` and `TCP_QUICKACK`.
    pub fn new(stream: TcpStream) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        quickack(&stream);
        Ok(Self {
            stream,
            buf: Vec::new(),
        })
    }

    /// One connection attempt.
    pub fn connect(addr: &str) -> io::Result<Self> {
        Self::new(TcpStream::connect(addr)?)
    }

    /// Connects, retrying every 100 ms for up to `within` (pcscd may still be starting), or
    /// until `give_up()` says so. The error names the address and suggests the likely cause.
    pub fn connect_with_retry(
        addr: &str,
        within: Duration,
        mut give_up: impl FnMut() -> bool,
    ) -> Result<Self, SimError> {
        let start = Instant::now();
        loop {
            match Self::connect(addr) {
                Ok(link) => return Ok(link),
                Err(e) if start.elapsed() >= within || give_up() => {
                    return Err(SimError::VpcdUnreachable {
                        addr: addr.to_owned(),
                        waited_ms: start.elapsed().as_millis(),
                        source: e,
                    });
                }
                Err(_) => thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// How long [`Self::recv`] waits before answering [`Recv::Idle`]; `None` blocks.
    pub fn set_poll_interval(&self, interval: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(interval)
    }

    fn take_frame(&mut self) -> Option<Vec<u8>> {
        let &[hi, lo, ..] = self.buf.as_slice() else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let payload = self.buf.get(2..2 + len)?.to_vec();
        self.buf.drain(..2 + len);
        Some(payload)
    }

    /// Receives the next frame. Partial frames are buffered across calls, so a length and
    /// its data may arrive in separate segments (as Debian 12's vpcd sends them).
    pub fn recv(&mut self) -> io::Result<Recv> {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(frame) = self.take_frame() {
                return Ok(Recv::Frame(frame));
            }
            let read = self.stream.read(&mut chunk);
            quickack(&self.stream);
            match read {
                Ok(0) => return Ok(Recv::Closed),
                Ok(n) => self
                    .buf
                    .extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(Recv::Idle);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset
                            | ErrorKind::ConnectionAborted
                            | ErrorKind::BrokenPipe
                            | ErrorKind::UnexpectedEof
                    ) =>
                {
                    return Ok(Recv::Closed);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one frame (length prefix and payload in a single write).
    pub fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        let len = u16::try_from(payload.len()).map_err(|_| {
            io::Error::new(ErrorKind::InvalidInput, "frame longer than 65535 bytes")
        })?;
        let mut frame = Vec::with_capacity(payload.len() + 2);
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame)?;
        self.stream.flush()
    }

    /// Closes the connection: vpcd then sees the card removed.
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Applies one vpcd message to the card and returns the answer to send, if any. Power off,
/// power on and reset clear the card's authentication state and get no answer.
pub fn handle(card: &mut VirtualCard, message: &Message) -> Option<Vec<u8>> {
    match message {
        Message::PowerOff => {
            card.power_off();
            None
        }
        Message::PowerOn => {
            card.power_on();
            None
        }
        Message::Reset => {
            card.reset();
            None
        }
        Message::GetAtr => Some(card.atr()),
        Message::UnknownControl(_) | Message::Empty => None,
        Message::Apdu(apdu) => Some(card.transmit(apdu)),
    }
}

/// Why [`serve`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServeEnd {
    /// vpcd closed the connection.
    PeerClosed,
    /// `should_stop` asked to stop.
    Stopped,
    /// The card tore during a write: it left the field without answering.
    Torn,
}

/// Serves vpcd until it disconnects, `should_stop()` returns true (checked between frames
/// and at every poll interval), or the card tears. `on_apdu(command, response)` sees each
/// exchange; the response is `None` for the write during which the card left the field (no
/// answer is sent: the caller should then close the link).
pub fn serve(
    link: &mut Link,
    card: &mut VirtualCard,
    mut should_stop: impl FnMut() -> bool,
    mut on_apdu: impl FnMut(&[u8], Option<&[u8]>),
) -> io::Result<ServeEnd> {
    loop {
        if should_stop() {
            return Ok(ServeEnd::Stopped);
        }
        let frame = match link.recv()? {
            Recv::Frame(frame) => frame,
            Recv::Idle => continue,
            Recv::Closed => return Ok(ServeEnd::PeerClosed),
        };
        let message = Message::parse(frame);
        let was_torn = card.is_torn();
        let answer = handle(card, &message);
        if let Message::Apdu(apdu) = &message {
            if card.is_torn() && !was_torn {
                on_apdu(apdu, None);
                return Ok(ServeEnd::Torn);
            }
            on_apdu(apdu, answer.as_deref());
        }
        if let Some(answer) = answer {
            link.send(&answer)?;
        }
    }
}

#[cfg(test)]
mod tests;
