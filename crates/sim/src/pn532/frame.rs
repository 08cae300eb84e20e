//! The chip side of the PN532 HSU framing (PN532 user manual §6.2), written for the emulator
//! on its own (it does not share code with encoder-hal's decoder: a shared bug must not cancel
//! itself out).
//!
//! [`FrameReader`] is a byte-at-a-time state machine. A byte that does not fit the frame being
//! read sends it back to hunting for a preamble; a frame with a bad checksum is reported as
//! [`HostFrame::Corrupt`] so the chip can answer with a NACK, as the datasheet asks.

/// The ACK frame.
pub const ACK: [u8; 6] = [0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00];
/// The NACK frame.
pub const NACK: [u8; 6] = [0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00];
/// The application error frame (syntax error).
pub const ERROR: [u8; 8] = [0x00, 0x00, 0xFF, 0x01, 0xFF, 0x7F, 0x81, 0x00];

/// What the host sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostFrame {
    /// An ACK: aborts the running command.
    Ack,
    /// A NACK: send the last reply again.
    Nack,
    /// An information frame whose TFI and data follow (`D4 cmd ...`).
    Command(Vec<u8>),
    /// A frame whose checksums did not add up.
    Corrupt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the `00` that may start a start code.
    Hunt,
    /// Saw `00`; waiting for `FF`.
    Zero,
    /// Saw `00 FF`; waiting for LEN.
    Len,
    /// Saw LEN; waiting for LCS.
    Lcs(u8),
    /// Extended frame: waiting for `LENm` (after `FF FF`).
    ExtHi,
    /// Extended frame: waiting for `LENl`.
    ExtLo(u8),
    /// Extended frame: waiting for the length checksum.
    ExtLcs(u8, u8),
    /// Reading the body, `usize` bytes still to come.
    Body(usize),
    /// Waiting for DCS.
    Dcs,
}

/// Reassembles host frames from the bytes of the line, in any chunking.
#[derive(Clone, Debug)]
pub struct FrameReader {
    state: State,
    body: Vec<u8>,
}

impl Default for FrameReader {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameReader {
    /// A reader hunting for the first frame.
    pub const fn new() -> Self {
        Self {
            state: State::Hunt,
            body: Vec::new(),
        }
    }

    /// Feeds one byte; returns a frame when this byte completes one.
    pub fn feed(&mut self, byte: u8) -> Option<HostFrame> {
        let (next, out) = match (self.state, byte) {
            (State::Hunt | State::Zero, 0x00) => (State::Zero, None),
            (State::Zero, 0xFF) => (State::Len, None),
            (State::Hunt | State::Zero, _) => (State::Hunt, None),
            (State::Len, len) => (State::Lcs(len), None),
            (State::Lcs(0x00), 0xFF) => (State::Hunt, Some(HostFrame::Ack)),
            (State::Lcs(0xFF), 0x00) => (State::Hunt, Some(HostFrame::Nack)),
            (State::Lcs(0xFF), 0xFF) => (State::ExtHi, None),
            (State::Lcs(len), lcs) if len.wrapping_add(lcs) == 0 && len > 0 => {
                self.body.clear();
                (State::Body(usize::from(len)), None)
            }
            (State::Lcs(_), 0x00) => (State::Zero, Some(HostFrame::Corrupt)),
            (State::Lcs(_), _) => (State::Hunt, Some(HostFrame::Corrupt)),
            (State::ExtHi, hi) => (State::ExtLo(hi), None),
            (State::ExtLo(hi), lo) => (State::ExtLcs(hi, lo), None),
            (State::ExtLcs(hi, lo), lcs) => {
                let len = usize::from(u16::from_be_bytes([hi, lo]));
                if hi.wrapping_add(lo).wrapping_add(lcs) == 0 && len > 0 && len <= 512 {
                    self.body.clear();
                    (State::Body(len), None)
                } else {
                    (State::Hunt, Some(HostFrame::Corrupt))
                }
            }
            (State::Body(left), b) => {
                self.body.push(b);
                if left <= 1 {
                    (State::Dcs, None)
                } else {
                    (State::Body(left - 1), None)
                }
            }
            (State::Dcs, dcs) => {
                let sum = self.body.iter().fold(dcs, |acc, b| acc.wrapping_add(*b));
                let body = std::mem::take(&mut self.body);
                if sum == 0 {
                    (State::Hunt, Some(HostFrame::Command(body)))
                } else {
                    (State::Hunt, Some(HostFrame::Corrupt))
                }
            }
        };
        self.state = next;
        out
    }

    /// Forgets a partly read frame.
    pub fn reset(&mut self) {
        self.state = State::Hunt;
        self.body.clear();
    }
}

/// Builds a reply frame for `body` (`D5 cmd+1 ...`): normal up to 254 bytes, extended above.
pub fn reply_frame(body: &[u8]) -> Vec<u8> {
    let mut out = vec![0x00, 0x00, 0xFF];
    match u8::try_from(body.len()) {
        Ok(len) if len < 0xFF => out.extend([len, 0u8.wrapping_sub(len)]),
        _ => {
            let [hi, lo] = u16::try_from(body.len()).unwrap_or(u16::MAX).to_be_bytes();
            out.extend([0xFF, 0xFF, hi, lo, 0u8.wrapping_sub(hi).wrapping_sub(lo)]);
        }
    }
    out.extend_from_slice(body);
    let sum = body.iter().fold(0u8, |acc, b| acc.wrapping_add(*b));
    out.push(0u8.wrapping_sub(sum));
    out.push(0x00);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn feed_all(reader: &mut FrameReader, bytes: &[u8]) -> Vec<HostFrame> {
        bytes.iter().filter_map(|b| reader.feed(*b)).collect()
    }

    #[test]
    fn reads_the_datasheet_frames() {
        let mut r = FrameReader::new();
        // Wake-up preamble, then SAMConfiguration (docs/reference/pn532.md §3).
        let mut wire = vec![0x55, 0x55];
        wire.extend([0u8; 14]);
        wire.extend([0x00, 0x00, 0xFF, 0x03, 0xFD, 0xD4, 0x14, 0x01, 0x17, 0x00]);
        wire.extend(ACK);
        wire.extend(NACK);
        assert_eq!(
            feed_all(&mut r, &wire),
            [
                HostFrame::Command(vec![0xD4, 0x14, 0x01]),
                HostFrame::Ack,
                HostFrame::Nack
            ]
        );
    }

    #[test]
    fn reply_frames_match_the_datasheet() {
        assert_eq!(
            reply_frame(&[0xD5, 0x4B, 0x00]),
            [0x00, 0x00, 0xFF, 0x03, 0xFD, 0xD5, 0x4B, 0x00, 0xE0, 0x00]
        );
        let long = vec![0xD5; 300];
        let frame = reply_frame(&long);
        assert_eq!(
            &frame[..8],
            &[0x00, 0x00, 0xFF, 0xFF, 0xFF, 0x01, 0x2C, 0xD3]
        );
    }

    #[test]
    fn bad_checksum_is_corrupt() {
        let mut r = FrameReader::new();
        let wire = [0x00, 0x00, 0xFF, 0x02, 0xFE, 0xD4, 0x02, 0x2B, 0x00];
        assert_eq!(feed_all(&mut r, &wire), [HostFrame::Corrupt]);
        let wire = [0x00, 0x00, 0xFF, 0x02, 0xFE, 0xD4, 0x02, 0x2A, 0x00];
        assert_eq!(
            feed_all(&mut r, &wire),
            [HostFrame::Command(vec![0xD4, 0x02])]
        );
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut r = FrameReader::new();
            let _ = feed_all(&mut r, &bytes);
        }

        #[test]
        fn extended_and_normal_frames_are_read_back(body in proptest::collection::vec(any::<u8>(), 1..400)) {
            let mut r = FrameReader::new();
            prop_assert_eq!(feed_all(&mut r, &reply_frame(&body)), vec![HostFrame::Command(body)]);
        }
    }
}
