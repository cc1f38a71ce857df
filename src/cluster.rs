//! Many printgate instances on one PostgreSQL: events, commands and agent
//! presence carried by LISTEN/NOTIFY, so no other broker is needed.
//!
//! Every message is a small JSON object on one channel, naming ids only (a
//! NOTIFY payload is capped at 8000 bytes; a command frame is a few hundred).
//! Each instance ignores its own messages. What travels:
//! - `event`: a change to a printer; forwarded into the local event bus, so
//!   subscribers on every instance hear it.
//! - `hello`: an agent connected here for a printer; an instance holding an
//!   older connection for it closes that one with 4321.
//! - `cmd` / `ack`: a command for a printer whose agent is connected
//!   elsewhere; the holder writes it and answers whether it did.
//! - `watch`, `drop`: a new should_watch for an agent, or a printer whose
//!   agent must be disconnected (deleted, archived).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use sea_orm::DatabaseConnection;
use sea_orm::sqlx::postgres::{PgListener, PgPool};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::agent::hub::{AgentHub, CLOSE_REPLACED, DELIVERY_TIMEOUT, command_frame, remote_status};
use crate::events::{Event, EventBus, EventKind, LocalBus};
use crate::service::{AgentCommand, CommandDelivery};

/// The NOTIFY channel.
const CHANNEL: &str = "printgate";
/// Messages waiting to be sent; past it (PostgreSQL slow or down) new ones
/// are dropped and counted (`printgate_cluster_messages_dropped_total`):
/// other instances then catch up from the database (read caches expire
/// within 1 s, subscribers get the next change).
pub const QUEUE: usize = 10_000;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
enum Wire {
    Event {
        printer: i32,
        user: i32,
        kind: u8,
        /// The event-log record, for `Logged`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        record: Option<i32>,
    },
    Hello {
        printer: i32,
    },
    Cmd {
        id: u64,
        printer: i32,
        frame: String,
    },
    Ack {
        id: u64,
        to: String,
        ok: bool,
    },
    Watch {
        printer: i32,
        watch: bool,
    },
    Drop {
        printer: i32,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// The sending instance.
    from: String,
    #[serde(flatten)]
    msg: Wire,
}

fn kind_code(k: EventKind) -> u8 {
    match k {
        EventKind::Logged { .. } => 7,
        EventKind::Created => 0,
        EventKind::Updated => 1,
        EventKind::Deleted => 2,
        EventKind::Action => 3,
        EventKind::AgentStatus => 4,
        EventKind::Print => 5,
        EventKind::Connection => 6,
        EventKind::Integration => 8,
        EventKind::Archived => 9,
    }
}

fn kind_of(c: u8, record: Option<i32>) -> EventKind {
    match c {
        7 => EventKind::Logged {
            record: record.unwrap_or(0),
        },
        0 => EventKind::Created,
        1 => EventKind::Updated,
        2 => EventKind::Deleted,
        3 => EventKind::Action,
        5 => EventKind::Print,
        6 => EventKind::Connection,
        8 => EventKind::Integration,
        9 => EventKind::Archived,
        _ => EventKind::AgentStatus,
    }
}

/// This instance's end of the cluster: the local hub and bus, plus the
/// PostgreSQL link to the other instances.
pub struct Cluster {
    instance: String,
    hub: Arc<AgentHub>,
    bus: LocalBus,
    out: mpsc::Sender<String>,
    pending: Mutex<HashMap<u64, oneshot::Sender<bool>>>,
    next_cmd: AtomicU64,
}

impl Cluster {
    /// Starts listening and notifying on the database's pool.
    pub async fn start(db: &DatabaseConnection, hub: Arc<AgentHub>) -> Result<Arc<Self>, String> {
        let pool = db.get_postgres_connection_pool().clone();
        let mut listener = PgListener::connect_with(&pool)
            .await
            .map_err(|e| format!("LISTEN connection: {e}"))?;
        listener
            .listen(CHANNEL)
            .await
            .map_err(|e| format!("LISTEN: {e}"))?;
        let (out, rx) = mpsc::channel(QUEUE);
        let cluster = Arc::new(Self {
            instance: uuid::Uuid::new_v4().simple().to_string(),
            hub,
            bus: LocalBus::default(),
            out,
            pending: Mutex::new(HashMap::new()),
            next_cmd: AtomicU64::new(1),
        });
        tokio::spawn(notifier(pool, rx));
        tokio::spawn(listen(listener, Arc::downgrade(&cluster)));
        tracing::info!(instance = %cluster.instance, "joined the cluster over PostgreSQL LISTEN/NOTIFY");
        Ok(cluster)
    }

    /// This instance's id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    fn send(&self, msg: Wire) {
        let env = Envelope {
            from: self.instance.clone(),
            msg,
        };
        if let Ok(text) = serde_json::to_string(&env) {
            enqueue(&self.out, text);
        }
    }

    /// Tells the other instances an agent connected here for `printer_id`,
    /// so one holding an older connection closes it with 4321.
    pub fn agent_connected(&self, printer_id: i32) {
        self.send(Wire::Hello {
            printer: printer_id,
        });
    }

    async fn handle(&self, env: Envelope) {
        if env.from == self.instance {
            return;
        }
        match env.msg {
            Wire::Event {
                printer,
                user,
                kind,
                record,
            } => self.bus.publish(Event {
                printer_id: printer,
                user_id: user,
                kind: kind_of(kind, record),
                seq: 0,
            }),
            Wire::Hello { printer } => {
                self.hub
                    .close(printer, CLOSE_REPLACED, "token used by another connection");
            }
            Wire::Cmd { id, printer, frame } => {
                if self.hub.holds(printer) {
                    let ok = self.hub.send_and_confirm(printer, frame).await;
                    self.send(Wire::Ack {
                        id,
                        to: env.from,
                        ok,
                    });
                }
            }
            Wire::Ack { id, to, ok } => {
                if to == self.instance
                    && let Some(tx) = self.pending.lock().ok().and_then(|mut p| p.remove(&id))
                {
                    let _ = tx.send(ok);
                }
            }
            Wire::Watch { printer, watch } => self.hub.send(printer, remote_status(watch)),
            Wire::Drop { printer } => self.hub.close(printer, 1000, "printer removed"),
        }
    }
}

/// Queues a message for the notifier, or drops and counts it when the
/// queue is full: memory stays bounded however long PostgreSQL is away.
fn enqueue(out: &mpsc::Sender<String>, text: String) -> bool {
    if out.try_send(text).is_ok() {
        return true;
    }
    let dropped = crate::metrics::metrics()
        .cluster_dropped
        .fetch_add(1, Ordering::Relaxed);
    if dropped.is_multiple_of(1000) {
        tracing::warn!(
            dropped = dropped + 1,
            "cluster queue full (PostgreSQL slow or down); dropping messages"
        );
    }
    false
}

/// Sends NOTIFYs in order, one at a time.
async fn notifier(pool: PgPool, mut rx: mpsc::Receiver<String>) {
    while let Some(payload) = rx.recv().await {
        let res = sea_orm::sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(&payload)
            .execute(&pool)
            .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "NOTIFY failed; a cluster message was lost");
        }
    }
}

/// Receives NOTIFYs until the cluster is dropped.
async fn listen(mut listener: PgListener, cluster: Weak<Cluster>) {
    loop {
        let n = match listener.recv().await {
            Ok(n) => n,
            Err(e) => {
                // sqlx reconnects on the next recv; messages meanwhile are lost.
                tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                continue;
            }
        };
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        match serde_json::from_str::<Envelope>(n.payload()) {
            Ok(env) => {
                // Commands wait for a socket write: don't hold up the rest.
                if matches!(env.msg, Wire::Cmd { .. }) {
                    tokio::spawn(async move { cluster.handle(env).await });
                } else {
                    cluster.handle(env).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "unreadable cluster message"),
        }
    }
}

impl EventBus for Cluster {
    fn publish(&self, event: Event) {
        self.bus.publish(event);
        self.send(Wire::Event {
            printer: event.printer_id,
            user: event.user_id,
            kind: kind_code(event.kind),
            record: match event.kind {
                EventKind::Logged { record } => Some(record),
                _ => None,
            },
        });
    }

    fn reserve_seq(&self) -> u64 {
        self.bus.reserve_seq()
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.bus.subscribe()
    }

    fn generation(&self, user_id: i32) -> u64 {
        self.bus.generation(user_id)
    }
}

#[async_trait::async_trait]
impl CommandDelivery for Cluster {
    async fn deliver(&self, printer_id: i32, command: &AgentCommand) -> bool {
        if self.hub.holds(printer_id) {
            return self.hub.deliver(printer_id, command).await;
        }
        let id = self.next_cmd.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id, tx);
        }
        self.send(Wire::Cmd {
            id,
            printer: printer_id,
            frame: command_frame(command),
        });
        let ok = matches!(
            tokio::time::timeout(DELIVERY_TIMEOUT, rx).await,
            Ok(Ok(true))
        );
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&id);
        }
        tracing::info!(
            printer_id,
            cmd = command.cmd,
            delivered = ok,
            "command (remote)"
        );
        ok
    }

    async fn should_watch_changed(&self, printer_id: i32, should_watch: bool) {
        self.hub
            .should_watch_changed(printer_id, should_watch)
            .await;
        self.send(Wire::Watch {
            printer: printer_id,
            watch: should_watch,
        });
    }

    async fn disconnect(&self, printer_id: i32) {
        self.hub.disconnect(printer_id).await;
        self.send(Wire::Drop {
            printer: printer_id,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_growing() {
        let (out, _rx) = mpsc::channel(3);
        let before = crate::metrics::metrics()
            .cluster_dropped
            .load(Ordering::Relaxed);
        let kept = (0..10).filter(|n| enqueue(&out, n.to_string())).count();
        assert_eq!(kept, 3);
        let after = crate::metrics::metrics()
            .cluster_dropped
            .load(Ordering::Relaxed);
        assert!(after - before >= 7);
    }
}
