//! A least-recently-used map bounded by bytes, for everything a client can
//! make the server keep (persisted queries, parsed documents, REST
//! answers). Each entry is put with its size; the least recently used
//! entries go until the new one fits, and an entry larger than the whole
//! budget is not kept at all. Sizes are reported to `/metrics`.

use std::hash::Hash;

use lru::LruCache;

use std::sync::Arc;

use crate::metrics::CacheGauge;

pub struct ByteLru<K: Hash + Eq, V> {
    map: LruCache<K, (V, usize)>,
    bytes: usize,
    max_bytes: usize,
    gauge: Arc<CacheGauge>,
}

impl<K: Hash + Eq, V> ByteLru<K, V> {
    /// An empty map holding at most `max_bytes` (by the sizes given to
    /// [`ByteLru::put`]).
    pub fn new(gauge: Arc<CacheGauge>, max_bytes: usize) -> Self {
        Self {
            map: LruCache::unbounded(),
            bytes: 0,
            max_bytes,
            gauge,
        }
    }

    /// The value of `key`, now the most recently used.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        self.map.get(key).map(|(v, _)| v)
    }

    /// The value of `key`, without touching its recency.
    pub fn peek(&self, key: &K) -> Option<&V> {
        self.map.peek(key).map(|(v, _)| v)
    }

    /// Keeps `value` of `size` bytes, evicting as needed. Returns whether it
    /// was kept (not when larger than the whole budget).
    /// Keeps `value` of `size` bytes, evicting as needed; returns whether
    /// it was kept and the keys (with their sizes) evicted to make room.
    pub fn put_evicting(&mut self, key: K, value: V, size: usize) -> (bool, Vec<(K, usize)>) {
        let mut evicted = Vec::new();
        if let Some((_, old)) = self.map.pop(&key) {
            self.bytes -= old;
        }
        if size > self.max_bytes {
            self.report();
            return (false, evicted);
        }
        while self.bytes + size > self.max_bytes {
            match self.map.pop_lru() {
                Some((k, (_, s))) => {
                    self.bytes -= s;
                    evicted.push((k, s));
                }
                None => break,
            }
        }
        self.map.put(key, (value, size));
        self.bytes += size;
        self.report();
        (true, evicted)
    }

    pub fn put(&mut self, key: K, value: V, size: usize) -> bool {
        self.put_evicting(key, value, size).0
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (v, s) = self.map.pop(key)?;
        self.bytes -= s;
        self.report();
        Some(v)
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn report(&self) {
        self.gauge.set(self.bytes, self.map.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_stay_under_the_budget_and_the_least_recent_go_first() {
        let mut m = ByteLru::new(Arc::default(), 100);
        assert!(m.put(1, "a", 40));
        assert!(m.put(2, "b", 40));
        assert_eq!(m.get(&1), Some(&"a"));
        assert!(m.put(3, "c", 40), "2 is evicted, not 1");
        assert_eq!(m.peek(&2), None);
        assert_eq!(m.peek(&1), Some(&"a"));
        assert_eq!(m.bytes(), 80);
        assert!(!m.put(4, "huge", 101), "larger than the budget");
        assert!(m.bytes() <= 100);
        for n in 0..1000 {
            m.put(n, "x", 7);
        }
        assert!(m.bytes() <= 100 && m.len() <= 14);
    }
}
