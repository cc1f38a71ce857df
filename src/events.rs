//! Who hears about changes: every change to what a printer shows is
//! published once, from the service layer, as an [`Event`]; subscriptions
//! (and, across instances, the scale-out transport) listen here.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::broadcast;

/// How many events a slow listener may fall behind before it starts missing
/// some (it then re-reads current state; see `graphql::subscription`).
pub const CAPACITY: usize = 4096;

/// A change to a printer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub printer_id: i32,
    /// The owner, so listeners can filter without a query.
    pub user_id: i32,
    pub kind: EventKind,
    /// Its number on this instance's bus (set by the bus when published;
    /// give 0): listeners reading the printer for the same event can share
    /// one read.
    pub seq: u64,
}

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Created,
    /// Settings changed by the owner (update, unarchive, a new token).
    Updated,
    /// The owner archived the printer.
    Archived,
    Deleted,
    /// An action (mute, acknowledge, a command sent).
    Action,
    /// The agent's status, settings, snapshot or score changed.
    AgentStatus,
    /// A print started or ended.
    Print,
    /// The agent connected or went away.
    Connection,
    /// A record was added to the printer's event log.
    Logged {
        record: i32,
    },
    /// The user's API keys or webhooks (their deliveries) changed; names
    /// no printer (`printer_id` 0). Only read caches listen.
    Integration,
}

/// Where events are published and heard.
pub trait EventBus: Send + Sync + 'static {
    /// Publishes `event`; a `seq` of 0 is given the next number, another
    /// one (from [`EventBus::reserve_seq`]) is kept.
    fn publish(&self, event: Event);
    /// A number for an event about to be published, for a publisher that
    /// hands listeners what they would read for it before they hear it.
    fn reserve_seq(&self) -> u64;
    fn subscribe(&self) -> broadcast::Receiver<Event>;
    /// A number that changes whenever an event for `user_id` is published
    /// here (synchronously, before `publish` returns): what a read cache
    /// compares to know an answer it kept is still current.
    fn generation(&self, user_id: i32) -> u64;
}

/// The in-process bus: a broadcast channel, plus a change counter per user.
pub struct LocalBus {
    tx: broadcast::Sender<Event>,
    generations: Mutex<HashMap<i32, u64>>,
    seq: std::sync::atomic::AtomicU64,
}

impl Default for LocalBus {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
            generations: Mutex::new(HashMap::new()),
            seq: std::sync::atomic::AtomicU64::new(1),
        }
    }
}

impl EventBus for LocalBus {
    fn publish(&self, mut event: Event) {
        if event.seq == 0 {
            event.seq = self.reserve_seq();
        }
        if let Ok(mut g) = self.generations.lock() {
            *g.entry(event.user_id).or_insert(0) += 1;
        }
        // No listener is not an error: nobody is subscribed right now.
        let _ = self.tx.send(event);
    }

    fn reserve_seq(&self) -> u64 {
        self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    fn generation(&self, user_id: i32) -> u64 {
        self.generations
            .lock()
            .map(|g| g.get(&user_id).copied().unwrap_or(0))
            .unwrap_or(u64::MAX)
    }
}
