//! Who hears about changes: every change to what a printer shows is
//! published once, from the service layer, as an [`Event`]; subscriptions
//! (and, across instances, the scale-out transport) listen here.

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
}

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Created,
    /// Settings changed by the owner (update, archive, unarchive).
    Updated,
    Deleted,
    /// An action (mute, acknowledge, a command sent).
    Action,
    /// The agent's status, settings, snapshot or score changed.
    AgentStatus,
    /// A print started or ended.
    Print,
    /// The agent connected or went away.
    Connection,
}

/// Where events are published and heard.
pub trait EventBus: Send + Sync + 'static {
    fn publish(&self, event: Event);
    fn subscribe(&self) -> broadcast::Receiver<Event>;
}

/// The in-process bus: a broadcast channel.
pub struct LocalBus {
    tx: broadcast::Sender<Event>,
}

impl Default for LocalBus {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl EventBus for LocalBus {
    fn publish(&self, event: Event) {
        // No listener is not an error: nobody is subscribed right now.
        let _ = self.tx.send(event);
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
