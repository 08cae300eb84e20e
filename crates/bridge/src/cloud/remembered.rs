//! The ids of finished attempts the session remembers, so a repeated offer is never run
//! twice, bounded by the [`Retention`] window (docs/cloud-protocol.md §5): ids leave oldest
//! first once older than [`Retention::keep_for`] or beyond [`Retention::keep_at_most`], at
//! a cost per call that does not grow with history (the ids are kept in the order they
//! finished, on the daemon's monotonic clock).
//!
//! An id whose result is not yet acknowledged is still recognised after it leaves: the
//! session also looks in its outbox, which is never pruned.
//!
//! The ids are a `BTreeSet`, not a `HashSet`: a hash table that keeps a steady count while ids
//! come and go fills with tombstones and, once, doubles its buckets (at about 35,000 jobs
//! with a window of 10,000: a 0.8 MB step in the daemon's RSS long after warm-up); a B-tree
//! holds what is live and no more, and a lookup among 10,000 ids is 14 comparisons.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use crate::store::Retention;

/// Finished attempt ids, oldest first.
#[derive(Debug, Default)]
pub struct Remembered {
    ids: BTreeSet<String>,
    order: VecDeque<(Instant, String)>,
}

impl Remembered {
    /// Remembers `id` as finished at `at` (a repeat keeps its first time). Times must not go
    /// backwards; one that does is taken as the newest so far.
    pub fn insert(&mut self, id: &str, at: Instant) {
        if self.ids.insert(id.to_owned()) {
            let at = self.order.back().map_or(at, |(last, _)| at.max(*last));
            self.order.push_back((at, id.to_owned()));
        }
    }

    /// Remembers ids finished `ages` ago (a restart: the store's times), as of `now`.
    pub fn insert_aged(&mut self, mut ages: Vec<(Duration, String)>, now: Instant) {
        ages.sort_by_key(|(age, _)| std::cmp::Reverse(*age));
        for (age, id) in ages {
            self.insert(&id, now.checked_sub(age).unwrap_or(now));
        }
    }

    /// Whether `id` is remembered.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Forgets what has left the window by `now`; returns how many.
    pub fn prune(&mut self, now: Instant, retention: Retention) -> usize {
        let mut dropped = 0;
        while let Some((at, _)) = self.order.front() {
            let expired = now.saturating_duration_since(*at) > retention.keep_for;
            if !expired && self.order.len() <= retention.keep_at_most {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.ids.remove(&id);
                dropped += 1;
            }
        }
        if dropped > 0 && self.order.capacity() > 4 * self.order.len().max(64) {
            // After a burst: give the memory back.
            self.order.shrink_to_fit();
        }
        dropped
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_leave_by_time_and_by_count_oldest_first() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let window = Retention {
            keep_for: 10 * s,
            keep_at_most: 3,
        };
        let mut r = Remembered::default();
        r.insert("a", t0);
        r.insert("b", t0 + s);
        r.insert("a", t0 + 2 * s);
        assert_eq!(r.len(), 2, "a repeat is one id");
        assert_eq!(r.prune(t0 + 10 * s, window), 0, "10 s old: still inside");
        assert_eq!(r.prune(t0 + 11 * s, window), 1);
        assert!(!r.contains("a") && r.contains("b"));
        for id in ["c", "d", "e"] {
            r.insert(id, t0 + 11 * s);
        }
        assert_eq!(r.prune(t0 + 11 * s, window), 1, "four: the oldest goes");
        assert!(!r.contains("b") && r.contains("c") && r.contains("e"));
        // Ages from the store: the oldest is placed first.
        let mut restored = Remembered::default();
        restored.insert_aged(vec![(s, "new".into()), (20 * s, "old".into())], t0 + 30 * s);
        assert_eq!(restored.prune(t0 + 30 * s, window), 1);
        assert!(restored.contains("new") && !restored.contains("old"));
    }
}
