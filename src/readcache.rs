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
//! A miss is computed once for all the requests waiting for it
//! ([`ReadCache::turn`]): a request that misses while its key's answer is
//! being computed waits for the next computation, which starts after the
//! current one ends, and takes its answer (it started after the request
//! arrived, so it shows every change committed before the request: never a
//! stale answer). On a live farm the user's counts move many times a
//! second, so an answer is rarely reused as kept; this is what lets one
//! computation answer every poller that arrived during the one before,
//! instead of each poller computing the whole list in turn.
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
use tokio::sync::watch;

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

/// A computation's outcome, as those waiting for it see it: its body, or
/// `None` when it has none to share (an error, a non-200 answer).
#[derive(Clone)]
enum Outcome {
    Pending,
    Done(Option<Bytes>),
}

/// A key's computations: the one running, and the one that starts when it
/// ends (which every request arriving meanwhile waits for).
#[derive(Default)]
struct Slot {
    running: Option<watch::Receiver<Outcome>>,
    next: Option<watch::Receiver<Outcome>>,
}

type Flights = Arc<Mutex<HashMap<Key, Slot>>>;

/// The cached answers.
pub struct ReadCache {
    inner: Mutex<Inner>,
    per_user_bytes: usize,
    /// The keys whose answer is being computed now (one entry per key
    /// with a request in flight: bounded by the requests in flight).
    flights: Flights,
}

/// What a request that missed does.
pub enum Turn {
    /// Another request computed the answer, starting after this one
    /// arrived: serve it.
    Shared(Bytes),
    /// Compute the answer, then hand it to the requests waiting for it
    /// with [`Leader::finish`].
    Compute(Leader),
}

/// The request computing a key's answer for those waiting. Dropped
/// without [`Leader::finish`] (an error, a client gone), the waiting
/// requests compute their own.
pub struct Leader {
    flight: Option<(
        Key,
        Flights,
        watch::Sender<Outcome>,
        watch::Receiver<Outcome>,
    )>,
}

impl Leader {
    /// Hands `body` (`None`: nothing to share) to the requests waiting.
    pub fn finish(mut self, body: Option<Bytes>) {
        if let Some((_, _, tx, _)) = &self.flight {
            let _ = tx.send(Outcome::Done(body));
        }
        self.leave();
    }

    fn leave(&mut self) {
        let Some((key, flights, _tx, mine)) = self.flight.take() else {
            return;
        };
        if let Ok(mut f) = flights.lock()
            && let Some(slot) = f.get_mut(&key)
        {
            for place in [&mut slot.running, &mut slot.next] {
                if place.as_ref().is_some_and(|r| r.same_channel(&mine)) {
                    *place = None;
                }
            }
            if slot.running.is_none() && slot.next.is_none() {
                f.remove(&key);
            }
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.leave();
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

    /// What a request that missed `key` does: wait for the computation
    /// that starts next and take its answer, or be the one computing it.
    /// A computation starts only once the one before it ended, and only
    /// requests that arrived before it started take its answer.
    pub async fn turn(&self, key: &Key) -> Turn {
        let alone = || Turn::Compute(Leader { flight: None });
        let (wait, lead) = {
            let Ok(mut f) = self.flights.lock() else {
                return alone();
            };
            let slot = f.entry(key.clone()).or_default();
            match (&slot.running, &slot.next) {
                // Not started yet: it starts after this request arrived.
                (_, Some(next)) => (Some(next.clone()), None),
                (running, None) => {
                    let (tx, rx) = watch::channel(Outcome::Pending);
                    let after = running.clone();
                    if after.is_some() {
                        slot.next = Some(rx.clone());
                    } else {
                        slot.running = Some(rx.clone());
                    }
                    let leader = Leader {
                        flight: Some((key.clone(), self.flights.clone(), tx, rx)),
                    };
                    (after, Some(leader))
                }
            }
        };
        let Some(mut leader) = lead else {
            // Waiting for the next computation.
            let Some(mut rx) = wait else {
                return alone();
            };
            return match rx.wait_for(|o| matches!(o, Outcome::Done(_))).await {
                Ok(o) => match &*o {
                    Outcome::Done(Some(body)) => Turn::Shared(body.clone()),
                    _ => alone(),
                },
                // Its leader left without an answer.
                Err(_) => alone(),
            };
        };
        if let Some(mut running) = wait {
            // Ended or abandoned: either way this one starts now.
            let _ = running.wait_for(|o| matches!(o, Outcome::Done(_))).await;
            if let Some((key, flights, _, mine)) = &leader.flight
                && let Ok(mut f) = flights.lock()
            {
                let slot = f.entry(key.clone()).or_default();
                if slot.next.as_ref().is_some_and(|n| n.same_channel(mine)) {
                    slot.next = None;
                }
                slot.running = Some(mine.clone());
            } else {
                leader.leave();
            }
        }
        Turn::Compute(leader)
    }

    /// The body kept under `key` for `user_id`, served only while it is
    /// young and the user's counts now (`current`) are the ones it was
    /// computed under. Every edge asks this one question, so the rule for
    /// reuse lives here.
    pub fn kept(&self, key: &Key, user_id: i32, current: Freshness) -> Option<Bytes> {
        let mut inner = self.inner.lock().ok()?;
        let e = inner.entries.get(key)?;
        (e.at.elapsed() < MAX_AGE && e.user_id == user_id && e.freshness == current)
            .then(|| e.body.clone())
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
        let got = cache.kept(&key("a", "1"), 7, fresh(3));
        assert_eq!(got.as_deref(), Some(&b"[]"[..]));
        assert_eq!(
            cache.kept(&key("a", "1"), 7, fresh(4)),
            None,
            "a change was published"
        );
        let version_moved = Freshness {
            generation: 3,
            version: Some(1),
        };
        assert_eq!(
            cache.kept(&key("a", "1"), 7, version_moved),
            None,
            "another instance wrote"
        );
        assert_eq!(
            cache.kept(&key("b", "1"), 7, fresh(3)),
            None,
            "another credential's answer is never shared"
        );
        assert_eq!(
            cache.kept(&key("a", "1"), 8, fresh(3)),
            None,
            "another user's answer is never shared"
        );
    }

    /// One request's miss as the edges handle it: wait for a turn, then
    /// serve the shared answer or compute it from `data` (read as the
    /// computation starts) and hand it on.
    async fn ask(
        cache: &ReadCache,
        data: &std::sync::atomic::AtomicUsize,
        computed: &std::sync::atomic::AtomicUsize,
    ) -> Bytes {
        use std::sync::atomic::Ordering::SeqCst;
        match cache.turn(&key("a", "1")).await {
            Turn::Shared(body) => body,
            Turn::Compute(leader) => {
                computed.fetch_add(1, SeqCst);
                let body = Bytes::from(format!("[{}]", data.load(SeqCst)));
                tokio::time::sleep(Duration::from_millis(30)).await;
                leader.finish(Some(body.clone()));
                body
            }
        }
    }

    #[tokio::test]
    async fn requests_that_wait_share_the_computation_that_starts_after_them() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let cache = Arc::new(ReadCache::new(1 << 20, Arc::default()));
        let data = Arc::new(AtomicUsize::new(1));
        let computed = Arc::new(AtomicUsize::new(0));
        let run = |cache: Arc<ReadCache>, data: Arc<AtomicUsize>, computed: Arc<AtomicUsize>| {
            tokio::spawn(async move { ask(&cache, &data, &computed).await })
        };
        // The first computation starts (it reads data 1)...
        let first = run(cache.clone(), data.clone(), computed.clone());
        tokio::time::sleep(Duration::from_millis(10)).await;
        // ...the data changes while it runs, then 20 requests arrive.
        data.store(2, SeqCst);
        let later: Vec<_> = (0..20)
            .map(|_| run(cache.clone(), data.clone(), computed.clone()))
            .collect();
        assert_eq!(&first.await.unwrap()[..], b"[1]");
        for t in later {
            assert_eq!(
                &t.await.unwrap()[..],
                b"[2]",
                "a request is never answered by a computation that started before it arrived"
            );
        }
        assert_eq!(computed.load(SeqCst), 2, "the 20 shared one computation");
        assert!(
            cache.flights.lock().unwrap().is_empty(),
            "nothing is kept once nobody is in flight"
        );
    }

    #[tokio::test]
    async fn when_the_one_computing_gives_up_those_waiting_compute_their_own() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let cache = Arc::new(ReadCache::new(1 << 20, Arc::default()));
        let Turn::Compute(running) = cache.turn(&key("a", "1")).await else {
            panic!("nobody was computing");
        };
        let (data, computed) = (Arc::new(AtomicUsize::new(5)), Arc::new(AtomicUsize::new(0)));
        let waiting: Vec<_> = (0..3)
            .map(|_| {
                let (cache, data, computed) = (cache.clone(), data.clone(), computed.clone());
                tokio::spawn(async move { ask(&cache, &data, &computed).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
        // The next computation's leader waits for this one; dropping it
        // (a client gone) lets it start.
        drop(running);
        for t in waiting {
            assert_eq!(&t.await.unwrap()[..], b"[5]");
        }
        assert_eq!(computed.load(SeqCst), 1);
        // A leader that leaves while others wait for its answer.
        let Turn::Compute(first) = cache.turn(&key("a", "1")).await else {
            panic!("nobody was computing");
        };
        let c2 = cache.clone();
        let next_leader = tokio::spawn(async move {
            match c2.turn(&key("a", "1")).await {
                Turn::Compute(l) => l,
                Turn::Shared(_) => panic!("nothing was shared"),
            }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let c3 = cache.clone();
        let follower =
            tokio::spawn(async move { matches!(c3.turn(&key("a", "1")).await, Turn::Compute(_)) });
        first.finish(Some(Bytes::from_static(b"old")));
        let next = next_leader.await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(next);
        assert!(
            follower.await.unwrap(),
            "told to compute its own, not served"
        );
        assert!(cache.flights.lock().unwrap().is_empty());
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
            cache.kept(&key("victim", "1"), 1, fresh(0)).is_some(),
            "the flood stayed within its share"
        );
    }
}
