//! Keepalive and reconnection of the cloud link as one I/O-free state machine
//! (docs/cloud-protocol.md §1): a ping every `ping_every` while connected, the link declared
//! dead when a ping goes unanswered for `pong_deadline` and nothing else arrived meanwhile,
//! and the delay before each reconnect: backoff with jitter from [`BACKOFF_INITIAL`] to
//! [`BACKOFF_MAX`], reset by a link that stayed up [`STABLE_AFTER`], and the longest delay
//! after a refused token (never a tight loop).
//!
//! The daemon feeds it what happened and the time; it answers what to do. No clock, no
//! socket: the tests drive it with made-up instants.

use std::time::{Duration, Instant};

use encoder_hal::Backoff;

use super::link::{BACKOFF_INITIAL, BACKOFF_MAX, STABLE_AFTER};

/// What to do after a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing.
    Nothing,
    /// Send a ping.
    Ping,
    /// The link is dead (an unanswered ping): drop it and reconnect.
    Dead,
}

#[derive(Debug, Clone, Copy)]
struct Up {
    since: Instant,
    last_rx: Instant,
    ping_sent: Option<Instant>,
    next_ping: Instant,
}

/// See the module docs.
#[derive(Debug)]
pub struct Liveness {
    ping_every: Duration,
    pong_deadline: Duration,
    backoff: Backoff,
    up: Option<Up>,
}

impl Liveness {
    /// A link that is not up yet.
    pub fn new(ping_every: Duration, pong_deadline: Duration) -> Self {
        Self {
            ping_every,
            pong_deadline,
            backoff: Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX),
            up: None,
        }
    }

    /// Whether the link is up.
    pub fn is_up(&self) -> bool {
        self.up.is_some()
    }

    /// The link came up at `now`.
    pub fn connected(&mut self, now: Instant) {
        self.up = Some(Up {
            since: now,
            last_rx: now,
            ping_sent: None,
            next_ping: now + self.ping_every,
        });
    }

    /// A frame (any: a pong, a message) arrived at `now`.
    pub fn received(&mut self, now: Instant) {
        if let Some(up) = &mut self.up {
            up.last_rx = now;
            up.ping_sent = None;
        }
    }

    /// The periodic check.
    pub fn tick(&mut self, now: Instant) -> Due {
        let Some(up) = &mut self.up else {
            return Due::Nothing;
        };
        if up
            .ping_sent
            .is_some_and(|at| now.duration_since(at) >= self.pong_deadline)
            && now.duration_since(up.last_rx) >= self.pong_deadline
        {
            return Due::Dead;
        }
        if now >= up.next_ping {
            up.next_ping = now + self.ping_every;
            up.ping_sent.get_or_insert(now);
            return Due::Ping;
        }
        Due::Nothing
    }

    /// The link went down at `now`; returns the delay before the next connect.
    pub fn lost(&mut self, now: Instant) -> Duration {
        if let Some(up) = self.up.take()
            && now.duration_since(up.since) >= STABLE_AFTER
        {
            self.backoff.reset();
        }
        self.backoff.next_delay()
    }

    /// A connect failed; `refused` when the cloud refused the token. Returns the delay before
    /// the next one.
    pub fn failed(&mut self, refused: bool) -> Duration {
        self.up = None;
        if refused {
            BACKOFF_MAX
        } else {
            self.backoff.next_delay()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn pings_while_up_and_declares_a_silent_link_dead() {
        let t0 = Instant::now();
        let mut l = Liveness::new(20 * S, 20 * S);
        assert_eq!(l.tick(t0), Due::Nothing, "not up");
        l.connected(t0);
        assert_eq!(l.tick(t0 + 19 * S), Due::Nothing);
        assert_eq!(l.tick(t0 + 20 * S), Due::Ping);
        // Answered: the next ping 20 s later, never dead.
        l.received(t0 + 21 * S);
        assert_eq!(l.tick(t0 + 39 * S), Due::Nothing);
        assert_eq!(l.tick(t0 + 40 * S), Due::Ping);
        // Unanswered: another ping is due at 60 s, dead at 60 s (20 s after the ping).
        assert_eq!(l.tick(t0 + 59 * S), Due::Nothing);
        assert_eq!(l.tick(t0 + 60 * S), Due::Dead);
    }

    #[test]
    fn any_frame_keeps_the_link_alive() {
        let t0 = Instant::now();
        let mut l = Liveness::new(5 * S, 3 * S);
        l.connected(t0);
        assert_eq!(l.tick(t0 + 5 * S), Due::Ping);
        l.received(t0 + 7 * S);
        assert_eq!(l.tick(t0 + 9 * S), Due::Nothing);
        assert_eq!(l.tick(t0 + 10 * S), Due::Ping);
        assert_eq!(l.tick(t0 + 13 * S), Due::Dead);
    }

    #[test]
    fn reconnect_delays_back_off_reset_after_a_stable_link_and_wait_longest_on_a_refused_token() {
        let t0 = Instant::now();
        let mut l = Liveness::new(20 * S, 20 * S);
        let first = l.failed(false);
        assert!(first <= BACKOFF_INITIAL * 2, "{first:?}");
        let mut last = first;
        for _ in 0..10 {
            last = l.failed(false);
        }
        assert!(last > first && last <= BACKOFF_MAX, "{last:?}");
        assert_eq!(l.failed(true), BACKOFF_MAX);
        // A short-lived link keeps the backoff; a stable one resets it.
        l.connected(t0);
        assert!(l.lost(t0 + S) > BACKOFF_INITIAL * 2);
        l.connected(t0);
        assert!(l.is_up());
        assert!(l.lost(t0 + STABLE_AFTER) <= BACKOFF_INITIAL * 2);
        assert!(!l.is_up());
    }
}
