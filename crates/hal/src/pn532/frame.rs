//! PN532 host-interface frames (docs/reference/pn532.md §1-§2), sans I/O.
//!
//! [`encode`] builds normal and extended information frames; [`Decoder`] takes the bytes of a
//! serial line in whatever chunks they arrive and yields ACK, NACK, error and information
//! frames. The decoder never trusts the line: it skips anything before a start code, checks
//! both checksums, and after a bad checksum or a half frame resynchronises on the next start
//! code *inside* the rejected bytes, so a frame that follows garbage is still found.

/// The ACK frame (also sent by the host to abort a running command).
pub const ACK: [u8; 6] = [0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00];
/// The NACK frame: asks the other side to send its last frame again.
pub const NACK: [u8; 6] = [0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00];
/// TFI of host-to-PN532 frames.
pub const TFI_HOST: u8 = 0xD4;
/// TFI of PN532-to-host frames.
pub const TFI_CHIP: u8 = 0xD5;
/// Largest body (TFI + data) an extended frame may carry here. The PN532 itself never
/// sends more than 265 bytes; anything claiming more is garbage.
pub const MAX_BODY: usize = 300;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `00 00 FF 00 FF 00`.
    Ack,
    /// `00 00 FF FF 00 00`.
    Nack,
    /// The application-level error frame `00 00 FF 01 FF 7F 81 00` (syntax error in the
    /// command the chip received).
    Error,
    /// An information frame: TFI followed by the command or reply bytes.
    Info(Vec<u8>),
}

/// Encodes `body` (TFI + data, 1..=[`MAX_BODY`] bytes) as a frame: a normal frame up to 254
/// bytes, an extended frame above. Returns `None` for an empty or oversized body.
pub fn encode(body: &[u8]) -> Option<Vec<u8>> {
    if body.is_empty() || body.len() > MAX_BODY {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() + 10);
    out.extend_from_slice(&[0x00, 0x00, 0xFF]);
    if let Ok(len) = u8::try_from(body.len())
        && len < 0xFF
    {
        out.extend_from_slice(&[len, len.wrapping_neg()]);
    } else {
        let [hi, lo] = u16::try_from(body.len()).ok()?.to_be_bytes();
        out.extend_from_slice(&[0xFF, 0xFF, hi, lo, hi.wrapping_add(lo).wrapping_neg()]);
    }
    out.extend_from_slice(body);
    out.push(checksum(body));
    out.push(0x00);
    Some(out)
}

/// DCS: the byte that makes the body's sum zero (mod 256).
pub fn checksum(body: &[u8]) -> u8 {
    body.iter()
        .fold(0u8, |acc, b| acc.wrapping_add(*b))
        .wrapping_neg()
}

/// What one look at the buffer found.
enum Step {
    /// A frame, and the number of bytes it took from the buffer front.
    Frame(Frame, usize),
    /// Drop this many bytes (garbage or a rejected start code) and look again.
    Skip(usize),
    /// A frame may be starting but is not complete yet.
    NeedMore,
}

/// Incremental frame decoder: push bytes as they come, pull frames as they complete.
#[derive(Debug, Default, Clone)]
pub struct Decoder {
    buffer: Vec<u8>,
    discarded: usize,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the line.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
        // Bound the memory a babbling line can take: a frame is never longer than this.
        let limit = MAX_BODY + 16;
        if self.buffer.len() > 4 * limit {
            let cut = self.buffer.len() - limit;
            self.buffer.drain(..cut);
            self.discarded += cut;
        }
    }

    /// Forgets everything buffered (stale input before a new command).
    pub fn clear(&mut self) {
        self.discarded += self.buffer.len();
        self.buffer.clear();
    }

    /// Bytes dropped so far as garbage (for diagnostics).
    pub fn discarded(&self) -> usize {
        self.discarded
    }

    /// Whether bytes of an incomplete frame (or garbage) are waiting.
    pub fn is_empty(&self) -> bool {
        self.buffer.is_empty()
    }

    /// The next complete frame, if the buffered bytes hold one.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match step(&self.buffer) {
                Step::Frame(frame, used) => {
                    self.buffer.drain(..used.min(self.buffer.len()));
                    return Some(frame);
                }
                Step::Skip(n) => {
                    let n = n.min(self.buffer.len());
                    if n == 0 {
                        return None;
                    }
                    self.buffer.drain(..n);
                    self.discarded += n;
                }
                Step::NeedMore => return None,
            }
        }
    }
}

/// Looks at the front of `buf` for one frame.
fn step(buf: &[u8]) -> Step {
    // Find the start code 00 FF. Preamble and postamble zeros are skipped like any byte
    // outside a frame (consuming a postamble eagerly would make the result depend on where
    // the line's chunks end: `00` | `FF` may be the next frame's start code).
    let Some(start) = buf.windows(2).position(|w| w == [0x00, 0xFF]) else {
        // Keep a trailing 00: it may be the first half of a start code.
        return match buf.last() {
            Some(0x00) => {
                if buf.len() > 1 {
                    Step::Skip(buf.len() - 1)
                } else {
                    Step::NeedMore
                }
            }
            Some(_) => Step::Skip(buf.len()),
            None => Step::NeedMore,
        };
    };
    if start > 0 {
        return Step::Skip(start);
    }
    // buf = 00 FF ...
    let rest = buf.get(2..).unwrap_or_default();
    let &[len, lcs, ..] = rest else {
        return Step::NeedMore;
    };
    match (len, lcs) {
        (0x00, 0xFF) => return Step::Frame(Frame::Ack, 4),
        (0xFF, 0x00) => return Step::Frame(Frame::Nack, 4),
        _ => {}
    }
    let (body_len, header) = if (len, lcs) == (0xFF, 0xFF) {
        // Extended: 00 FF FF FF LENm LENl LCS
        let Some(&[hi, lo, lcs]) = buf.get(4..7) else {
            return Step::NeedMore;
        };
        if hi.wrapping_add(lo).wrapping_add(lcs) != 0 {
            return Step::Skip(1);
        }
        (usize::from(u16::from_be_bytes([hi, lo])), 7)
    } else {
        if len.wrapping_add(lcs) != 0 {
            return Step::Skip(1);
        }
        (usize::from(len), 4)
    };
    if body_len == 0 || body_len > MAX_BODY {
        return Step::Skip(1);
    }
    let Some(body) = buf.get(header..header + body_len) else {
        return Step::NeedMore;
    };
    let Some(&dcs) = buf.get(header + body_len) else {
        return Step::NeedMore;
    };
    if checksum(body) != dcs {
        // A half frame followed by a whole one, or line noise: look for the next start code
        // inside what we took for this frame.
        return Step::Skip(1);
    }
    let used = header + body_len + 1;
    let frame = if body == [0x7F] {
        Frame::Error
    } else {
        Frame::Info(body.to_vec())
    };
    Step::Frame(frame, used)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<Frame> {
        let mut d = Decoder::new();
        let mut out = vec![];
        for c in chunks {
            d.push(c);
            while let Some(f) = d.next_frame() {
                out.push(f);
            }
        }
        out
    }

    #[test]
    fn reference_vectors() {
        // docs/reference/pn532.md §1-§5
        assert_eq!(
            encode(&[0xD4, 0x14, 0x01]).unwrap(),
            [0x00, 0x00, 0xFF, 0x03, 0xFD, 0xD4, 0x14, 0x01, 0x17, 0x00]
        );
        assert_eq!(
            encode(&[0xD4, 0x02]).unwrap(),
            [0x00, 0x00, 0xFF, 0x02, 0xFE, 0xD4, 0x02, 0x2A, 0x00]
        );
        assert_eq!(
            encode(&[0xD4, 0x4A, 0x01, 0x00]).unwrap(),
            [
                0x00, 0x00, 0xFF, 0x04, 0xFC, 0xD4, 0x4A, 0x01, 0x00, 0xE1, 0x00
            ]
        );
        assert_eq!(decode_all(&[&ACK]), [Frame::Ack]);
        assert_eq!(decode_all(&[&NACK]), [Frame::Nack]);
        assert_eq!(
            decode_all(&[&[0x00, 0x00, 0xFF, 0x01, 0xFF, 0x7F, 0x81, 0x00]]),
            [Frame::Error]
        );
    }

    #[test]
    fn extended_frames_round_trip() {
        let body: Vec<u8> = (0..=255u8).chain(0..20).collect();
        let wire = encode(&body).unwrap();
        assert_eq!(&wire[..5], &[0x00, 0x00, 0xFF, 0xFF, 0xFF]);
        assert_eq!(decode_all(&[&wire]), [Frame::Info(body)]);
        assert!(encode(&[]).is_none());
        assert!(encode(&[0; MAX_BODY + 1]).is_none());
    }

    #[test]
    fn half_frame_then_whole_frame_resynchronises() {
        let good = encode(&[0xD5, 0x41, 0x00, 1, 2, 3]).unwrap();
        let half = &encode(&[0xD5, 0x4B, 0x01, 0x01, 0x00, 0x04, 0x08]).unwrap()[..6];
        let mut wire = half.to_vec();
        wire.extend_from_slice(&good);
        assert_eq!(
            decode_all(&[&wire]),
            [Frame::Info(vec![0xD5, 0x41, 0x00, 1, 2, 3])]
        );
    }

    #[test]
    fn bad_length_checksum_and_bad_data_checksum_are_skipped() {
        let mut bad = encode(&[0xD5, 0x03, 0x32]).unwrap();
        bad[4] ^= 1;
        let mut bad_dcs = encode(&[0xD5, 0x03, 0x32]).unwrap();
        let n = bad_dcs.len();
        bad_dcs[n - 2] ^= 1;
        let good = encode(&[0xD5, 0x15]).unwrap();
        let wire = [bad, bad_dcs, good].concat();
        assert_eq!(decode_all(&[&wire]), [Frame::Info(vec![0xD5, 0x15])]);
    }

    #[test]
    fn wake_up_preamble_is_garbage() {
        let mut wire = vec![0x55, 0x55];
        wire.extend_from_slice(&[0; 14]);
        wire.extend(encode(&[0xD4, 0x14, 0x01]).unwrap());
        assert_eq!(decode_all(&[&wire]), [Frame::Info(vec![0xD4, 0x14, 0x01])]);
    }

    fn chunked(wire: &[u8], cuts: &[usize]) -> Vec<Frame> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        points.push(0);
        points.push(wire.len());
        points.sort_unstable();
        let chunks: Vec<&[u8]> = points.windows(2).map(|w| &wire[w[0]..w[1]]).collect();
        decode_all(&chunks)
    }

    fn frame_strategy() -> impl Strategy<Value = Frame> {
        prop_oneof![
            Just(Frame::Ack),
            Just(Frame::Nack),
            Just(Frame::Error),
            proptest::collection::vec(any::<u8>(), 1..=MAX_BODY)
                .prop_filter("not the error body", |b| b != &[0x7F])
                .prop_map(Frame::Info),
        ]
    }

    fn wire_of(f: &Frame) -> Vec<u8> {
        match f {
            Frame::Ack => ACK.to_vec(),
            Frame::Nack => NACK.to_vec(),
            Frame::Error => vec![0x00, 0x00, 0xFF, 0x01, 0xFF, 0x7F, 0x81, 0x00],
            Frame::Info(b) => encode(b).unwrap(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_in_arbitrary_chunks_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..1200),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
        ) {
            let frames = chunked(&bytes, &cuts);
            // Whatever came out, it came out of the bytes: never more frames than start codes.
            let starts = bytes.windows(2).filter(|w| *w == [0x00, 0xFF]).count();
            prop_assert!(frames.len() <= starts);
        }

        #[test]
        fn frames_round_trip_through_any_chunking_and_leading_garbage(
            frames in proptest::collection::vec(frame_strategy(), 1..5),
            garbage in proptest::collection::vec(any::<u8>().prop_filter("no FF", |b| *b != 0xFF), 0..64),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
        ) {
            let mut wire = garbage;
            for f in &frames {
                wire.extend(wire_of(f));
            }
            prop_assert_eq!(chunked(&wire, &cuts), frames);
        }

        #[test]
        fn chunking_does_not_change_what_is_decoded(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
        ) {
            prop_assert_eq!(chunked(&bytes, &cuts), chunked(&bytes, &[]));
        }
    }
}
