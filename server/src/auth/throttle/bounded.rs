//! Maps of bounded size, so a flood of addresses cannot grow memory.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// A map of at most `capacity` entries that evicts the least recently
/// inserted or touched one.
#[derive(Debug)]
pub struct Bounded<K, V> {
    entries: HashMap<K, (V, u64)>,
    order: BTreeMap<u64, K>,
    next: u64,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    /// An empty map holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Bounded {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            next: 0,
            capacity: capacity.max(1),
        }
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of `key`, if held (not counted as a touch).
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(value, _)| value)
    }

    /// Stores `value` under `key` as the most recent entry, evicting the
    /// oldest when full.
    pub fn insert(&mut self, key: K, value: V) {
        if let Some((_, seq)) = self.entries.remove(&key) {
            self.order.remove(&seq);
        } else if self.entries.len() >= self.capacity
            && let Some((_, oldest)) = self.order.pop_first()
        {
            self.entries.remove(&oldest);
        }
        let seq = self.next;
        self.next += 1;
        self.order.insert(seq, key.clone());
        self.entries.insert(key, (value, seq));
    }

    /// Keeps only the entries whose value `keep` holds for.
    pub fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        let order = &mut self.order;
        self.entries.retain(|_, (value, seq)| {
            let kept = keep(value);
            if !kept {
                order.remove(seq);
            }
            kept
        });
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &K) {
        if let Some((_, seq)) = self.entries.remove(key) {
            self.order.remove(&seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Bounded;

    #[test]
    fn retain_drops_entries_and_their_place_in_the_eviction_order() {
        let mut map = Bounded::new(3);
        for (key, value) in [(1, "a"), (2, "b"), (3, "a")] {
            map.insert(key, value);
        }
        map.retain(|value| *value != "a");
        assert_eq!((map.len(), map.get(&2)), (1, Some(&"b")));
        // Two free places again: nothing is evicted until a fourth entry.
        map.insert(4, "c");
        map.insert(5, "d");
        assert_eq!(map.len(), 3);
        map.insert(6, "e");
        assert_eq!((map.get(&2), map.len()), (None, 3), "the oldest goes first");
    }
}
