//! `pn532_frame`, `pn532_reply`: what a PN532 sends on the serial line
//! (`encoder_hal::pn532::frame`, `encoder_hal::pn532::chip`, `encoder_hal::pn532::Link`).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::Duration;

use encoder_hal::Canceller;
use encoder_hal::pn532::chip::{self, Chip};
use encoder_hal::pn532::frame::{self, Decoder, Frame};
use encoder_hal::pn532::{Link, LinkConfig};

use crate::input::Input;
use crate::port::{Line, Port};

/// Chunk lengths drawn from one seed byte: 1 to 16 bytes, varying along the stream.
fn chunks(seed: u8, stream: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = stream;
    let mut i = 0usize;
    while !rest.is_empty() {
        let n = 1 + (usize::from(seed).wrapping_mul(i + 1) + i / 3) % 16;
        let (head, tail) = rest.split_at(n.min(rest.len()));
        out.push(head);
        rest = tail;
        i += 1;
    }
    out
}

fn drain(decoder: &mut Decoder, into: &mut Vec<Frame>) {
    // A decoder must make progress: at most one frame per buffered byte.
    for _ in 0..=4 * (frame::MAX_BODY + 16) {
        match decoder.next_frame() {
            Some(f) => into.push(f),
            None => return,
        }
    }
    panic!("the decoder yields frames without consuming bytes");
}

/// The first byte seeds the chunk lengths; the rest is the line's byte stream.
///
/// Properties: the frames found do not depend on how the stream was cut into chunks (for
/// streams within the decoder's buffer bound); every information frame has a body of
/// 1..=`MAX_BODY` bytes that encodes to a frame which decodes to itself; after any garbage, a
/// valid frame and enough bytes to settle what the garbage started, the decoder yields that
/// frame or an information frame that began in the garbage and took its bytes.
pub fn pn532_frame(data: &[u8]) {
    let mut input = Input::new(data);
    let seed = input.byte();
    let stream = input.rest();

    let mut chunked = Vec::new();
    let mut decoder = Decoder::new();
    for chunk in chunks(seed, stream) {
        decoder.push(chunk);
        drain(&mut decoder, &mut chunked);
    }
    if stream.len() <= 4 * (frame::MAX_BODY + 16) {
        let mut whole = Vec::new();
        let mut decoder = Decoder::new();
        decoder.push(stream);
        drain(&mut decoder, &mut whole);
        assert_eq!(whole, chunked, "frames depend on chunking");
    }
    for f in &chunked {
        if let Frame::Info(body) = f {
            assert!((1..=frame::MAX_BODY).contains(&body.len()));
            let wire = frame::encode(body);
            assert!(wire.is_some());
            let mut again = Vec::new();
            let mut decoder = Decoder::new();
            decoder.push(&wire.unwrap_or_default());
            drain(&mut decoder, &mut again);
            assert_eq!(again, std::slice::from_ref(f));
        }
    }
    // Garbage, then a whole frame, then enough filler to settle any frame the garbage may have
    // started: the decoder yields our frame, or (noise shaped as a frame header cannot be
    // told from a frame until its length is read) a frame that began in the garbage and took
    // some of our bytes; never nothing. The link's resend after a timeout covers the latter.
    let wire = frame::encode(&[frame::TFI_CHIP, 0x41, 0x00, 0xAB]).unwrap_or_default();
    let good = Frame::Info(vec![frame::TFI_CHIP, 0x41, 0x00, 0xAB]);
    let mut decoder = Decoder::new();
    let mut found = Vec::new();
    for chunk in chunks(seed, stream.get(..300).unwrap_or(stream)) {
        decoder.push(chunk);
        drain(&mut decoder, &mut found);
    }
    let before = found.len();
    decoder.push(&wire);
    decoder.push(&[0xFF; frame::MAX_BODY + 16]);
    drain(&mut decoder, &mut found);
    let tail = found.get(before..).unwrap_or_default();
    // (Frames the garbage started may settle only now, so others can come first.)
    assert!(
        tail.contains(&good) || tail.iter().any(|f| matches!(f, Frame::Info(_))),
        "a frame after garbage was lost: {tail:?}"
    );
}

/// A serial line whose far side sends the fuzzer's bytes: a queue of transmissions, each
/// becoming readable once the previous one has been read (so the link's input flush before a
/// command sees only what is already there, as on a real line). Reads return short chunks;
/// when the queue is empty the device reports end of file (unplugged), so nothing waits on
/// the clock.
struct FuzzLine {
    queue: VecDeque<Vec<u8>>,
    pending: VecDeque<u8>,
    chunk: usize,
    timeout: Duration,
}

impl FuzzLine {
    fn new(input: &mut Input<'_>) -> Self {
        let chunk = 1 + usize::from(input.byte() % 32);
        let mut queue = VecDeque::new();
        while !input.is_empty() {
            queue.push_back(input.slice(64).to_vec());
        }
        Self {
            queue,
            pending: VecDeque::new(),
            chunk,
            timeout: Duration::from_millis(20),
        }
    }
}

impl Read for FuzzLine {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pending.is_empty() {
            if self.timeout.is_zero() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            match self.queue.pop_front() {
                Some(next) => self.pending.extend(next),
                None => return Ok(0),
            }
        }
        let mut n = 0;
        for dst in buf.iter_mut().take(self.chunk) {
            match self.pending.pop_front() {
                Some(b) => {
                    *dst = b;
                    n += 1;
                }
                None => break,
            }
        }
        if n == 0 {
            return Err(io::ErrorKind::TimedOut.into());
        }
        Ok(n)
    }
}

impl Write for FuzzLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Line for FuzzLine {
    fn ready(&self) -> usize {
        self.pending.len()
    }
    fn timeout(&self) -> Duration {
        self.timeout
    }
    fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }
}

/// The reply parsers on the whole input, then a [`Link`] whose serial line delivers the
/// fuzzer's bytes (after a chunk-size byte, length-prefixed transmissions) running the
/// commands the PN532 backend uses: `GetFirmwareVersion`, `RFConfiguration`,
/// `InListPassiveTarget`, `InDataExchange` (a MIFARE read) and `InRelease`.
///
/// Properties: no panic, no wait on the clock beyond the line's own reads; a target the chip
/// reports has a 4, 7 or 10 byte UID and its ATS only for an ISO 14443-4 SAK.
pub fn pn532_reply(data: &[u8]) {
    let _ = chip::parse_firmware(data);
    if let Ok(Some(target)) = chip::parse_list_passive_target(data) {
        assert!(matches!(target.uid.len(), 4 | 7 | 10));
        assert!(target.ats.is_empty() || target.sak & 0x20 != 0);
        assert!(target.ats.len() <= data.len());
    }
    let status = chip::Status(data.first().copied().unwrap_or(0));
    let _ = (status.is_ok(), status.card_gone(), status.auth_failed());

    let mut input = Input::new(data);
    let port = FuzzLine::new(&mut input);
    let config = LinkConfig {
        ack_timeout: Duration::from_secs(5),
        first_ack_timeout: Duration::from_secs(5),
        reply_timeout: Duration::from_secs(5),
        ..LinkConfig::default()
    };
    let mut link = Link::from_port(Box::new(Port(port)), "fuzz", config, Canceller::new());
    let _ = link.firmware();
    let _ = link.set_max_retries(2);
    if let Ok(Some(target)) = link.list_passive_target(Duration::from_secs(5)) {
        assert!(matches!(target.uid.len(), 4 | 7 | 10));
    }
    let _ = link.data_exchange(1, &[0x30, 0x04]);
    let _ = link.release(1);
}
