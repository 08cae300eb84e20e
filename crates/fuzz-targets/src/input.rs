//! A small reader over the fuzzer's bytes, for targets that need structured input.
//!
//! Every read succeeds: once the bytes run out it yields zeros and empty slices, so a target
//! never has to handle "not enough input" and the fuzzer's shortest inputs stay meaningful.

/// The fuzzer's bytes, consumed from the front.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    /// Reads from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next byte, or 0.
    pub fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                b
            }
            None => 0,
        }
    }

    /// The next big-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = rest;
        head
    }

    /// A length-prefixed slice: one byte `n`, then up to `n % (max + 1)` bytes.
    pub fn slice(&mut self, max: usize) -> &'a [u8] {
        let n = usize::from(self.byte()) % (max + 1);
        self.bytes(n)
    }

    /// Exactly `N` bytes, zero padded.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for (dst, src) in out.iter_mut().zip(self.bytes(N)) {
            *dst = *src;
        }
        out
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }
}

/// An [`Input`] that owns its bytes, for readers that must be `'static` (a fake serial port
/// behind a `Box<dyn SerialPort>`).
#[derive(Debug, Clone, Default)]
pub struct OwnedInput {
    data: Vec<u8>,
    pos: usize,
}

impl OwnedInput {
    /// Takes what is left of `input`.
    pub fn take(input: &mut Input<'_>) -> Self {
        Self {
            data: input.rest().to_vec(),
            pos: 0,
        }
    }

    /// The next byte, or 0.
    pub fn byte(&mut self) -> u8 {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let byte = rest.first().copied().unwrap_or(0);
        self.pos = (self.pos + 1).min(self.data.len());
        byte
    }

    /// Runs `read` on the unread bytes and consumes what it read.
    pub fn read<R>(&mut self, read: impl FnOnce(&mut Input<'_>) -> R) -> R {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let mut input = Input::new(rest);
        let out = read(&mut input);
        self.pos = self.data.len() - input.rest.len();
        out
    }
}
