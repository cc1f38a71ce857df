//! The live agent connections of this instance, and command delivery to
//! them. One connection per printer: a second one closes the first with
//! close code 4321, which agents read as "this token is used twice".

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::service::{AgentCommand, CommandDelivery};

/// Close code for a connection replaced by a newer one with the same token.
pub const CLOSE_REPLACED: u16 = 4321;
/// How long a command may wait to be written to the socket.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Frames queued for one connection before it counts as stuck.
const QUEUE: usize = 64;

/// Something to send down an agent's socket: a text frame; the sender
/// hears back once it was written. (Closing goes by the connection's
/// close signal, never through this queue.)
#[derive(Debug)]
pub enum Outbound {
    Text(String, Option<oneshot::Sender<()>>),
}

/// Why a connection must close: set once, seen by its session whatever
/// is queued (a full queue cannot keep a replaced or removed session
/// alive).
pub type CloseSignal = tokio::sync::watch::Receiver<Option<(u16, &'static str)>>;

struct Conn {
    id: u64,
    tx: mpsc::Sender<Outbound>,
    close: tokio::sync::watch::Sender<Option<(u16, &'static str)>>,
}

impl Conn {
    fn close(&self, code: u16, reason: &'static str) {
        let _ = self.close.send(Some((code, reason)));
    }
}

/// A registered connection, for its session.
pub struct Registration {
    pub id: u64,
    pub outbound: mpsc::Receiver<Outbound>,
    pub closed: CloseSignal,
}

/// Frames per second an agent may send, sustained, and the burst: per
/// printer, over every connection it makes (reconnecting does not refill).
pub const FRAMES_PER_SEC: f64 = 20.0;
pub const FRAME_BURST: f64 = 200.0;
/// Most frame budgets kept; past it, the refilled ones (as good as new)
/// are dropped.
const BUDGETS: usize = 100_000;

struct Budget {
    tokens: f64,
    last: std::time::Instant,
}

/// The connections this instance holds.
#[derive(Default)]
pub struct AgentHub {
    conns: Mutex<HashMap<i32, Conn>>,
    next_id: AtomicU64,
    budgets: Mutex<HashMap<i32, Budget>>,
}

impl AgentHub {
    /// Takes one frame from the printer's budget; `false` means it floods.
    /// Every frame counts (text, binary, ping, pong).
    pub fn take_frame(&self, printer_id: i32) -> bool {
        let Ok(mut b) = self.budgets.lock() else {
            return true;
        };
        let now = std::time::Instant::now();
        if b.len() >= BUDGETS && !b.contains_key(&printer_id) {
            b.retain(|_, x| {
                x.tokens + now.duration_since(x.last).as_secs_f64() * FRAMES_PER_SEC < FRAME_BURST
            });
        }
        let x = b.entry(printer_id).or_insert(Budget {
            tokens: FRAME_BURST,
            last: now,
        });
        x.tokens =
            (x.tokens + now.duration_since(x.last).as_secs_f64() * FRAMES_PER_SEC).min(FRAME_BURST);
        x.last = now;
        if x.tokens >= 1.0 {
            x.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Registers a new connection for `printer_id`, closing an older one.
    pub fn register(&self, printer_id: i32) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE);
        let (close, closed) = tokio::sync::watch::channel(None);
        let old = self
            .conns
            .lock()
            .map(|mut m| m.insert(printer_id, Conn { id, tx, close }))
            .unwrap_or(None);
        if let Some(old) = old {
            tracing::info!(
                printer_id,
                "second agent connection; closing the first with 4321"
            );
            old.close(CLOSE_REPLACED, "token used by another connection");
        }
        Registration {
            id,
            outbound: rx,
            closed,
        }
    }

    /// Forgets a connection, if it is still the printer's current one.
    /// Returns whether it was (a replaced connection must not mark the
    /// printer offline: its successor is live).
    pub fn unregister(&self, printer_id: i32, conn_id: u64) -> bool {
        self.conns
            .lock()
            .map(|mut m| {
                if m.get(&printer_id).is_some_and(|c| c.id == conn_id) {
                    m.remove(&printer_id);
                    true
                } else {
                    false
                }
            })
            .unwrap_or(false)
    }

    /// Whether an agent for `printer_id` is connected here.
    pub fn holds(&self, printer_id: i32) -> bool {
        self.conns
            .lock()
            .map(|m| m.contains_key(&printer_id))
            .unwrap_or(false)
    }

    /// Closes (and forgets) the printer's connection here, if any. Forgetting
    /// first means the closing session will not mark the printer offline.
    pub fn close(&self, printer_id: i32, code: u16, reason: &'static str) {
        let conn = self
            .conns
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&printer_id));
        if let Some(c) = conn {
            tracing::info!(printer_id, code, "closing agent connection");
            c.close(code, reason);
        }
    }

    /// How many agents are connected here.
    pub fn len(&self) -> usize {
        self.conns.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn sender(&self, printer_id: i32) -> Option<mpsc::Sender<Outbound>> {
        self.conns
            .lock()
            .ok()
            .and_then(|m| m.get(&printer_id).map(|c| c.tx.clone()))
    }

    /// Writes a frame and waits until the socket writer has sent it.
    pub async fn send_and_confirm(&self, printer_id: i32, frame: String) -> bool {
        let Some(tx) = self.sender(printer_id) else {
            return false;
        };
        let (done, written) = oneshot::channel();
        let sent = async {
            tx.send(Outbound::Text(frame, Some(done))).await.ok()?;
            written.await.ok()
        };
        matches!(
            tokio::time::timeout(DELIVERY_TIMEOUT, sent).await,
            Ok(Some(()))
        )
    }

    /// Queues a frame without waiting (best effort).
    pub fn send(&self, printer_id: i32, frame: String) {
        if let Some(tx) = self.sender(printer_id) {
            let _ = tx.try_send(Outbound::Text(frame, None));
        }
    }
}

/// The `remote_status` frame.
pub fn remote_status(should_watch: bool) -> String {
    json!({"remote_status": {"viewing": false, "should_watch": should_watch}}).to_string()
}

/// The `commands` frame for one command, exactly as the agents expect it.
pub fn command_frame(command: &AgentCommand) -> String {
    json!({"commands": [{"cmd": command.cmd, "args": command.args, "initiator": command.initiator}]})
        .to_string()
}

#[async_trait::async_trait]
impl CommandDelivery for AgentHub {
    async fn deliver(&self, printer_id: i32, command: &AgentCommand) -> bool {
        let delivered = self
            .send_and_confirm(printer_id, command_frame(command))
            .await;
        tracing::info!(printer_id, cmd = command.cmd, delivered, "command");
        delivered
    }

    async fn should_watch_changed(&self, printer_id: i32, should_watch: bool) {
        self.send(printer_id, remote_status(should_watch));
    }

    async fn disconnect(&self, printer_id: i32) {
        self.close(printer_id, 1000, "printer removed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_connection_closes_the_first_with_4321_even_when_its_queue_is_full() {
        let hub = AgentHub::default();
        let mut first = hub.register(7);
        for _ in 0..QUEUE {
            hub.send(7, "{}".into());
        }
        let second = hub.register(7);
        assert!(first.closed.changed().await.is_ok());
        assert_eq!(
            *first.closed.borrow(),
            Some((4321, "token used by another connection"))
        );
        assert!(
            !hub.unregister(7, first.id),
            "the replaced one is not current"
        );
        assert!(hub.unregister(7, second.id));
    }

    #[test]
    fn the_frame_budget_is_the_printers_not_the_connections() {
        let hub = AgentHub::default();
        let spent = (0..1000).filter(|_| hub.take_frame(1)).count();
        assert!(spent <= FRAME_BURST as usize + 5, "{spent}");
        let _ = hub.register(1);
        assert!(!hub.take_frame(1), "a new connection does not refill it");
        assert!(hub.take_frame(2), "another printer has its own");
    }

    #[tokio::test]
    async fn delivery_is_confirmed_only_after_the_write() {
        let hub = std::sync::Arc::new(AgentHub::default());
        let cmd = AgentCommand {
            cmd: "pause",
            args: json!({}),
            initiator: "api",
        };
        assert!(!hub.deliver(1, &cmd).await, "no connection, no delivery");
        let mut reg = hub.register(1);
        let writer = tokio::spawn(async move {
            if let Some(Outbound::Text(frame, Some(done))) = reg.outbound.recv().await {
                let _ = done.send(());
                return frame;
            }
            String::new()
        });
        assert!(hub.deliver(1, &cmd).await);
        let frame = writer.await.unwrap_or_default();
        assert_eq!(
            frame,
            r#"{"commands":[{"cmd":"pause","args":{},"initiator":"api"}]}"#
        );
    }
}
