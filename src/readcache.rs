//! A read cache for answers to reads: the REST GET routes and GraphQL
//! queries over HTTP (one cache each).
//!
//! Clients poll the printer list and detail. A kept answer is
//! reused while nothing changed for its user, by two counts taken before
//! the answer was computed and compared before it is served again:
//! - the event bus's change count for the user: every change to a printer
//!   is published (on this instance synchronously, from the service; from
//!   other instances within a NOTIFY's latency);
//! - the user's data version in the database, bumped in the same
//!   transaction as every change the user makes: checked only with several
//!   instances (PostgreSQL), so a write answered by one instance is never
//!   followed by an old answer from another.
//!
//! An answer is also never reused after [`MAX_AGE`], because some of what
//! it shows is derived from time (a status older than 120 s is shown as
//! offline; snapshot links expire) or comes from agents on other instances.
//!
//! A miss is computed once: requests that miss the same key while its
//! answer is being computed wait for it ([`ReadCache::flight`]) instead of
//! each computing it again (after a change, every poller of a live farm's
//! list would otherwise render the whole list at once).
//!
//! What a client can make it keep is bounded: the key is what the edge
//! says makes the answer (for REST, the route's declared parameters,
//! parsed, so `?junk=N` or `?x=1&x=2` is the same key; for GraphQL, the
//! document, operation and variables), the whole cache by bytes (least
//! recently used first), and each user to a share of it
//! ([`PER_USER_SHARE`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;

use crate::bounded::ByteLru;
use crate::metrics::CacheGauge;

/// Longest an answer is reused, even when nothing was published.
pub const MAX_AGE: Duration = Duration::from_secs(1);
/// The part of the cache's budget one user's answers may take.
pub const PER_USER_SHARE: usize = 16;
/// Bytes an entry costs besides its body (key, bookkeeping).
const OVERHEAD: usize = 256;

/// What identifies an answer: who asked, and what they asked, as the edge
/// describes it (everything the answer depends on besides the data).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub sub: Arc<str>,
    pub what: Arc<str>,
}

/// The counts an answer was computed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    pub generation: u64,
    /// The user's data version, when instances share the database.
    pub version: Option<i64>,
}

struct Entry {
    user_id: i32,
    freshness: Freshness,
    at: Instant,
    body: Bytes,
}

struct Inner {
    entries: ByteLru<Key, Entry>,
    /// Each user's keys and their bytes, for the per-user share.
    by_user: HashMap<Arc<str>, (usize, HashSet<Key>)>,
}

type Flights = Arc<Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>>;

/// The cached answers.
pub struct ReadCache {
    inner: Mutex<Inner>,
    per_user_bytes: usize,
    /// The keys whose answer is being computed now (one entry per key
    /// with a request in flight: bounded by the requests in flight).
    flights: Flights,
}

/// Held while an answer is computed; dropping it lets the next request
/// for the key look again.
pub struct Flight {
    key: Key,
    flights: Flights,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for Flight {
    fn drop(&mut self) {
        if let Ok(mut f) = self.flights.lock()
            && f.get(&self.key).is_some_and(|m| Arc::strong_count(m) <= 2)
        {
            // Nobody else waits (the map and this turn hold it).
            f.remove(&self.key);
        }
    }
}

impl ReadCache {
    pub fn new(max_bytes: usize, gauge: Arc<CacheGauge>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                entries: ByteLru::new(gauge, max_bytes),
                by_user: HashMap::new(),
            }),
            per_user_bytes: (max_bytes / PER_USER_SHARE).max(1),
            flights: Arc::default(),
        }
    }

    /// Waits for the turn to compute `key`'s answer: at once when nobody
    /// is computing it, else when the one computing it is done (then look
    /// again: it is probably there).
    pub async fn flight(&self, key: &Key) -> Flight {
        let turn = {
            let Ok(mut f) = self.flights.lock() else {
                return Flight {
                    key: key.clone(),
                    flights: self.flights.clone(),
                    _turn: Arc::new(tokio::sync::Mutex::new(())).lock_owned().await,
                };
            };
            f.entry(key.clone()).or_default().clone()
        };
        Flight {
            key: key.clone(),
            flights: self.flights.clone(),
            _turn: turn.lock_owned().await,
        }
    }

    /// A kept body young enough to be reused, with its user and the counts
    /// it was computed under: the caller serves it only when the user's
    /// counts now are the same.
    pub fn lookup(&self, key: &Key) -> Option<(i32, Freshness, Bytes)> {
        let mut inner = self.inner.lock().ok()?;
        let e = inner.entries.get(key)?;
        (e.at.elapsed() < MAX_AGE).then(|| (e.user_id, e.freshness, e.body.clone()))
    }

    /// [`ReadCache::lookup`], served only when `current` (the user's counts
    /// now) matches.
    #[cfg(test)]
    fn get(&self, key: &Key, current: impl FnOnce(i32) -> Option<Freshness>) -> Option<Bytes> {
        let (user_id, freshness, body) = self.lookup(key)?;
        (current(user_id)? == freshness).then_some(body)
    }

    /// Keeps a body computed under `freshness` (read before the answer was
    /// computed, so a change during it makes the entry stale at once).
    pub fn put(&self, key: Key, user_id: i32, freshness: Freshness, body: Bytes) {
        let size = body.len() + key.what.len() + OVERHEAD;
        if size > self.per_user_bytes {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let inner = &mut *inner;
        // Over the user's share: their least recent answers go first.
        let used = inner.by_user.get(&key.sub).map_or(0, |(b, _)| *b);
        if used + size > self.per_user_bytes
            && let Some((_, keys)) = inner.by_user.remove(&key.sub)
        {
            for k in keys {
                inner.entries.remove(&k);
            }
        }
        let entry = Entry {
            user_id,
            freshness,
            at: Instant::now(),
            body,
        };
        if let Some(old) = inner.entries.peek(&key) {
            let old_size = old.body.len() + key.what.len() + OVERHEAD;
            if let Some((b, _)) = inner.by_user.get_mut(&key.sub) {
                *b = b.saturating_sub(old_size);
            }
        }
        let (kept, evicted) = inner.entries.put_evicting(key.clone(), entry, size);
        for (k, freed) in evicted {
            if let Some((b, keys)) = inner.by_user.get_mut(&k.sub)
                && keys.remove(&k)
            {
                *b = b.saturating_sub(freed);
                if keys.is_empty() {
                    inner.by_user.remove(&k.sub);
                }
            }
        }
        if kept {
            let (b, keys) = inner.by_user.entry(key.sub.clone()).or_default();
            *b += size;
            keys.insert(key);
        }
    }

    /// Bytes of answers held now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.inner.lock().map(|i| i.entries.bytes()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sub: &str, id: &str) -> Key {
        Key {
            sub: sub.into(),
            what: format!("printer {id}").into(),
        }
    }

    fn fresh(generation: u64) -> Freshness {
        Freshness {
            generation,
            version: None,
        }
    }

    #[test]
    fn an_answer_is_reused_until_its_user_changes() {
        let cache = ReadCache::new(1 << 20, Arc::default());
        cache.put(key("a", "1"), 7, fresh(3), Bytes::from_static(b"[]"));
        let got = cache.get(&key("a", "1"), |_| Some(fresh(3)));
        assert_eq!(got.as_deref(), Some(&b"[]"[..]));
        assert_eq!(
            cache.get(&key("a", "1"), |_| Some(fresh(4))),
            None,
            "a change was published"
        );
        let version_moved = Freshness {
            generation: 3,
            version: Some(1),
        };
        assert_eq!(
            cache.get(&key("a", "1"), |_| Some(version_moved)),
            None,
            "another instance wrote"
        );
        assert_eq!(
            cache.get(&key("b", "1"), |_| Some(fresh(3))),
            None,
            "another user's answer is never shared"
        );
    }

    #[tokio::test]
    async fn a_miss_is_computed_once_by_the_requests_that_wait_for_it() {
        let cache = Arc::new(ReadCache::new(1 << 20, Arc::default()));
        let computed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (cache, computed) = (cache.clone(), computed.clone());
            tasks.push(tokio::spawn(async move {
                let k = key("a", "1");
                if let Some(b) = cache.get(&k, |_| Some(fresh(1))) {
                    return b;
                }
                let _turn = cache.flight(&k).await;
                if let Some(b) = cache.get(&k, |_| Some(fresh(1))) {
                    return b;
                }
                computed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                let body = Bytes::from_static(b"[1]");
                cache.put(k, 7, fresh(1), body.clone());
                body
            }));
        }
        for t in tasks {
            assert_eq!(&t.await.unwrap()[..], b"[1]");
        }
        assert_eq!(computed.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(
            cache.flights.lock().unwrap().is_empty(),
            "nothing is kept once nobody is in flight"
        );
    }

    #[test]
    fn one_user_cannot_take_more_than_their_share() {
        let budget = 64 * 1024;
        let cache = ReadCache::new(budget, Arc::default());
        cache.put(
            key("victim", "1"),
            1,
            fresh(0),
            Bytes::from(vec![b'v'; 1000]),
        );
        for n in 0..1000 {
            cache.put(
                key("flood", &n.to_string()),
                2,
                fresh(0),
                Bytes::from(vec![b'x'; 1000]),
            );
        }
        assert!(cache.bytes() <= budget);
        assert!(
            cache.get(&key("victim", "1"), |_| Some(fresh(0))).is_some(),
            "the flood stayed within its share"
        );
    }
}
