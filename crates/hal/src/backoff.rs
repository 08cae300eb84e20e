//! Exponential backoff with jitter for reconnecting to a transport (pcscd, a serial device).
//!
//! Small enough to own: the `backoff` crate is unmaintained, and this needs no timer of its own
//! (callers sleep through [`crate::Canceller::sleep`] so shutdown stays prompt).

use std::time::Duration;

/// Delays that double from `initial` up to `max`, each with up to 25 % random jitter
/// subtracted so many bridges restarting together do not reconnect in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    seed: u64,
}

impl Backoff {
    /// A backoff starting at `initial` and capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let seed = u64::from(std::process::id())
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::from(d.subsec_nanos()));
        Self {
            initial,
            max,
            next: initial,
            seed: seed | 1,
        }
    }

    /// The delay to wait before the next attempt; each call doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        // xorshift64: jitter only, not cryptography.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let jitter_permille = u32::try_from(self.seed % 250).unwrap_or(0);
        base.saturating_sub(base * jitter_permille / 1000)
    }

    /// Starts over from the initial delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_bounded_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut bases = vec![];
        for _ in 0..8 {
            bases.push(b.next_delay());
        }
        let expected = [100u64, 200, 400, 800, 1000, 1000, 1000, 1000];
        for (got, base) in bases.iter().zip(expected) {
            let base = Duration::from_millis(base);
            assert!(*got <= base && *got >= base * 3 / 4, "{got:?} vs {base:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
