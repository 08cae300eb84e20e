//! [`Rows`]: one kind of object of the simulator's state, in order, each with the number of
//! its row in the store (`--state`, [`super::store`]), and the rows changed since the last
//! save.
//!
//! Reading goes through the slice (`rows.get(i)`, `rows.iter()`); every change goes through a
//! method here, which notes the row as changed. There is no `&mut [T]`: a change that did not
//! note its row could not be saved, so it does not compile. A save then writes the noted rows
//! alone ([`Rows::take_changed`]): the cost of a change does not grow with the history.

use std::collections::BTreeSet;
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Objects of one kind in creation order, with their row numbers (increasing) and the rows
/// changed since [`Rows::take_changed`].
#[derive(Debug, Clone)]
pub struct Rows<T> {
    items: Vec<T>,
    /// `keys[i]` is the row of `items[i]`; strictly increasing.
    keys: Vec<u64>,
    next: u64,
    changed: BTreeSet<u64>,
}

impl<T> Default for Rows<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            keys: Vec::new(),
            next: 0,
            changed: BTreeSet::new(),
        }
    }
}

impl<T> Deref for Rows<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.items
    }
}

impl<T> Rows<T> {
    /// Rows as loaded from the store: `(row, object)` in increasing row order (the caller
    /// reads them from an ordered table); nothing is noted as changed.
    pub fn loaded(rows: Vec<(u64, T)>) -> Self {
        let next = rows.last().map_or(0, |(k, _)| k.saturating_add(1));
        let (keys, items) = rows.into_iter().unzip();
        Self {
            items,
            keys,
            next,
            changed: BTreeSet::new(),
        }
    }

    /// Appends `item` as a new row; returns its position.
    pub fn push(&mut self, item: T) -> usize {
        let key = self.next;
        self.next = self.next.saturating_add(1);
        self.items.push(item);
        self.keys.push(key);
        self.changed.insert(key);
        self.items.len() - 1
    }

    /// The object at `position`, to change (its row is noted as changed).
    pub fn get_mut(&mut self, position: usize) -> Option<&mut T> {
        let key = *self.keys.get(position)?;
        self.changed.insert(key);
        self.items.get_mut(position)
    }

    /// The first object that matches, to change (its row is noted as changed).
    pub fn find_mut(&mut self, matches: impl Fn(&T) -> bool) -> Option<&mut T> {
        let position = self.items.iter().position(matches)?;
        self.get_mut(position)
    }

    /// Keeps the objects for which `keep` is true (in order); the others' rows are noted as
    /// deleted. Returns how many were dropped.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) -> usize {
        let before = self.items.len();
        let mut kept_items = Vec::with_capacity(before);
        let mut kept_keys = Vec::with_capacity(before);
        for (item, key) in std::mem::take(&mut self.items)
            .into_iter()
            .zip(std::mem::take(&mut self.keys))
        {
            if keep(&item) {
                kept_items.push(item);
                kept_keys.push(key);
            } else {
                self.changed.insert(key);
            }
        }
        self.items = kept_items;
        self.keys = kept_keys;
        before - self.items.len()
    }

    /// Drops the first `count` objects (their rows are noted as deleted).
    pub fn drop_front(&mut self, count: usize) {
        let count = count.min(self.items.len());
        self.items.drain(..count);
        self.changed.extend(self.keys.drain(..count));
    }

    /// Gives back memory beyond twice what is held (after a prune).
    pub fn shrink(&mut self) {
        self.items.shrink_to(self.items.len() * 2);
        self.keys.shrink_to(self.keys.len() * 2);
    }

    /// The row of the object at `position`.
    pub fn key(&self, position: usize) -> Option<u64> {
        self.keys.get(position).copied()
    }

    /// The position of row `key`, if it is still there (a bisection: rows are in key order).
    pub fn position(&self, key: u64) -> Option<usize> {
        self.keys.binary_search(&key).ok()
    }

    /// The object in row `key`, if it is still there.
    pub fn by_key(&self, key: u64) -> Option<&T> {
        self.items.get(self.position(key)?)
    }

    /// The rows changed (or deleted) since the last call, oldest row first.
    pub fn take_changed(&mut self) -> BTreeSet<u64> {
        std::mem::take(&mut self.changed)
    }

    /// Notes `keys` as changed again (a save that failed is retried with the next one).
    pub fn restore_changed(&mut self, keys: BTreeSet<u64>) {
        self.changed.extend(keys);
    }

    /// Notes every row as changed (the first save of a state that was not loaded from the
    /// store: seeded, or imported from a JSON state file).
    pub fn touch_all(&mut self) {
        self.changed.extend(self.keys.iter().copied());
    }

    /// Whether a row is waiting to be saved.
    pub fn is_changed(&self) -> bool {
        !self.changed.is_empty()
    }
}

/// As a JSON list of the objects (the legacy state file's shape); rows are numbered afresh
/// when read.
impl<T: Serialize> Serialize for Rows<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.items.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Rows<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let items = Vec::<T>::deserialize(deserializer)?;
        Ok(Self::loaded((0..).zip(items).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_noted_per_row() {
        let mut rows = Rows::default();
        for n in 0..5 {
            rows.push(n);
        }
        assert_eq!(rows.take_changed().len(), 5);
        *rows.get_mut(2).unwrap() = 20;
        *rows.find_mut(|&n| n == 4).unwrap() = 40;
        assert_eq!(rows.take_changed(), BTreeSet::from([2, 4]));
        assert_eq!(rows.retain(|&n| n != 20), 1);
        rows.drop_front(1);
        assert_eq!(rows.take_changed(), BTreeSet::from([0, 2]));
        assert_eq!(&rows[..], &[1, 3, 40]);
        assert_eq!(rows.by_key(3), Some(&3));
        assert_eq!(rows.by_key(2), None);
        assert_eq!(rows.push(5), 3);
        assert_eq!(rows.key(3), Some(5));
        assert!(!rows.take_changed().is_empty());
        assert!(!rows.is_changed());
    }

    #[test]
    fn loaded_rows_continue_their_numbering() {
        let mut rows = Rows::loaded(vec![(3, 'a'), (7, 'b')]);
        assert!(!rows.is_changed());
        assert_eq!(rows.push('c'), 2);
        assert_eq!(rows.key(2), Some(8));
        assert_eq!(rows.by_key(7), Some(&'b'));
        rows.touch_all();
        assert_eq!(rows.take_changed(), BTreeSet::from([3, 7, 8]));
    }
}
