//! Delivering action commands to printer agents.
//!
//! The service decides *what* to send; a [`CommandDelivery`] implementation
//! decides *how* it reaches the agent's live connection. `deliver` answers
//! true only when the command was written to a live connection, which is
//! what an action's `succeeded` reports.

use serde::Serialize;

/// One command for an agent, as the agent protocol names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentCommand {
    /// `pause`, `resume` or `cancel`.
    pub cmd: &'static str,
    /// The command's arguments; pause carries exactly four keys.
    pub args: serde_json::Value,
    /// Who asked: `api` (a user's action) or `system` (the failure
    /// detector's automatic pause).
    pub initiator: &'static str,
}

/// How commands reach agents.
#[async_trait::async_trait]
pub trait CommandDelivery: Send + Sync + 'static {
    /// Writes `command` to the printer's live agent connection; true only
    /// when that write happened.
    async fn deliver(&self, printer_id: i32, command: &AgentCommand) -> bool;

    /// Tells a connected agent whether it should watch for failures now.
    /// Best effort: an offline agent hears it when it next connects.
    async fn should_watch_changed(&self, printer_id: i32, should_watch: bool);

    /// Closes the printer's live agent connection, if any (the printer was
    /// deleted or archived, so its token no longer works).
    async fn disconnect(&self, printer_id: i32);
}

/// The delivery used when no agent can be connected: nothing is ever
/// delivered, so the command actions honestly answer `succeeded: false`.
#[derive(Debug, Default)]
pub struct NoAgents;

#[async_trait::async_trait]
impl CommandDelivery for NoAgents {
    async fn deliver(&self, _printer_id: i32, _command: &AgentCommand) -> bool {
        false
    }

    async fn should_watch_changed(&self, _printer_id: i32, _should_watch: bool) {}

    async fn disconnect(&self, _printer_id: i32) {}
}
