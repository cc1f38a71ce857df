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

/// Something to send down an agent's socket.
#[derive(Debug)]
pub enum Outbound {
    /// A text frame; the sender hears back once it was written.
    Text(String, Option<oneshot::Sender<()>>),
    /// Close the socket with this code and reason.
    Close(u16, &'static str),
}

struct Conn {
    id: u64,
    tx: mpsc::Sender<Outbound>,
}

/// The connections this instance holds.
#[derive(Default)]
pub struct AgentHub {
    conns: Mutex<HashMap<i32, Conn>>,
    next_id: AtomicU64,
}

impl AgentHub {
    /// Registers a new connection for `printer_id`, closing an older one.
    /// Returns the connection's id and the queue its socket writer drains.
    pub fn register(&self, printer_id: i32) -> (u64, mpsc::Receiver<Outbound>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE);
        let old = self
            .conns
            .lock()
            .map(|mut m| m.insert(printer_id, Conn { id, tx }))
            .unwrap_or(None);
        if let Some(old) = old {
            tracing::info!(
                printer_id,
                "second agent connection; closing the first with 4321"
            );
            let _ = old.tx.try_send(Outbound::Close(
                CLOSE_REPLACED,
                "token used by another connection",
            ));
        }
        (id, rx)
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
            let _ = c.tx.try_send(Outbound::Close(code, reason));
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
    json!({"commands": [{"cmd": command.cmd, "args": command.args, "initiator": "api"}]})
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
    async fn a_second_connection_closes_the_first_with_4321() {
        let hub = AgentHub::default();
        let (first, mut rx1) = hub.register(7);
        let (second, _rx2) = hub.register(7);
        assert!(matches!(rx1.recv().await, Some(Outbound::Close(4321, _))));
        assert!(!hub.unregister(7, first), "the replaced one is not current");
        assert!(hub.unregister(7, second));
    }

    #[tokio::test]
    async fn delivery_is_confirmed_only_after_the_write() {
        let hub = std::sync::Arc::new(AgentHub::default());
        let cmd = AgentCommand {
            cmd: "pause",
            args: json!({}),
        };
        assert!(!hub.deliver(1, &cmd).await, "no connection, no delivery");
        let (_, mut rx) = hub.register(1);
        let writer = tokio::spawn(async move {
            if let Some(Outbound::Text(frame, Some(done))) = rx.recv().await {
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
