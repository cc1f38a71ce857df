//! A read cache for the REST GET routes.
//!
//! The existing clients poll the printer list and detail. A kept answer is
//! reused while nothing changed for its user: every change to a printer is
//! published on the event bus (on this instance synchronously, from the
//! service; from other instances within a NOTIFY's latency), and the bus
//! counts them per user. An answer is also never reused after [`MAX_AGE`],
//! because some of what it shows is derived from time (a status older than
//! 120 s is shown as offline; snapshot links expire). The cache holds
//! finished REST bodies; the rules that made them stay in the service.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;

/// Longest an answer is reused, even when nothing was published.
pub const MAX_AGE: Duration = Duration::from_secs(1);
/// Most answers kept; past it the cache starts over.
const CAPACITY: usize = 10_000;

/// What identifies an answer: who asked, which route, with what.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub sub: String,
    pub route: usize,
    pub id: Option<String>,
    pub query: Vec<(String, String)>,
}

struct Entry {
    user_id: i32,
    generation: u64,
    at: Instant,
    body: Bytes,
}

/// The cached answers.
#[derive(Default)]
pub struct ReadCache {
    entries: Mutex<HashMap<Key, Entry>>,
}

impl ReadCache {
    /// A kept body, if it is still current (`generation` gives the user's
    /// current change count).
    pub fn get(&self, key: &Key, generation: impl Fn(i32) -> u64) -> Option<Bytes> {
        let entries = self.entries.lock().ok()?;
        let e = entries.get(key)?;
        (e.at.elapsed() < MAX_AGE && e.generation == generation(e.user_id)).then(|| e.body.clone())
    }

    /// Keeps a body computed when the user's change count was `generation`
    /// (read before the answer was computed, so a change during it makes
    /// the entry stale at once).
    pub fn put(&self, key: Key, user_id: i32, generation: u64, body: Bytes) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(
                key,
                Entry {
                    user_id,
                    generation,
                    at: Instant::now(),
                    body,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key {
            sub: "a".into(),
            route: 0,
            id: None,
            query: Vec::new(),
        }
    }

    #[test]
    fn an_answer_is_reused_until_its_user_changes() {
        let cache = ReadCache::default();
        cache.put(key(), 7, 3, Bytes::from_static(b"[]"));
        assert_eq!(cache.get(&key(), |_| 3).as_deref(), Some(&b"[]"[..]));
        assert_eq!(cache.get(&key(), |_| 4), None, "a change was published");
        let other = Key {
            sub: "b".into(),
            ..key()
        };
        assert_eq!(
            cache.get(&other, |_| 3),
            None,
            "another user's answer is never shared"
        );
    }
}
