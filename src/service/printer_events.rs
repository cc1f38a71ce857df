//! The printer's event log (detection.md §5): a record for each print
//! start and end, pause and resume the agent reports, filament change,
//! failure alert, mute and unmute, and each event the agent posts. Every
//! record is published, so `printerEvent` subscribers hear it, and the
//! ones that are webhook events are queued for the owner's endpoints.

use entity::{print, printer, printer_event};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use serde_json::json;

use super::{Service, Viewer, now, webhooks};
use crate::error::AppError;
use crate::events::EventKind;

/// Most events one page may carry.
pub const MAX_PAGE: u64 = 100;

/// The event types printgate writes itself (agents may post others).
pub mod types {
    pub const STARTED: &str = "STARTED";
    pub const ENDED: &str = "ENDED";
    pub const PAUSED: &str = "PAUSED";
    pub const RESUMED: &str = "RESUMED";
    pub const FAILURE_ALERTED: &str = "FAILURE_ALERTED";
    pub const ALERT_MUTED: &str = "ALERT_MUTED";
    pub const ALERT_UNMUTED: &str = "ALERT_UNMUTED";
    pub const FILAMENT_CHANGE: &str = "FILAMENT_CHANGE";
    pub const PRINTER_ERROR: &str = "PRINTER_ERROR";
}

/// The event classes.
pub mod classes {
    pub const ERROR: &str = "ERROR";
    pub const WARNING: &str = "WARNING";
    pub const SUCCESS: &str = "SUCCESS";
    pub const INFO: &str = "INFO";
}

/// A record to write: its type, and the class and title the type implies
/// unless given.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub event_type: String,
    pub class: Option<String>,
    pub title: Option<String>,
    pub text: Option<String>,
    pub info_url: Option<String>,
    /// The webhook event it is, when not the type's own (a print that
    /// ended cancelled or failed).
    pub webhook: Option<&'static str>,
    /// For a failure alert: whether the print was paused.
    pub paused: Option<bool>,
}

impl LogEntry {
    pub fn of(event_type: &str) -> Self {
        Self {
            event_type: event_type.to_owned(),
            class: None,
            title: None,
            text: None,
            info_url: None,
            webhook: None,
            paused: None,
        }
    }

    /// Reports it to webhooks as `event_type`.
    pub fn as_webhook(mut self, event_type: &'static str) -> Self {
        self.webhook = Some(event_type);
        self
    }

    /// A failure alert that did (or did not) pause the print.
    pub fn paused(mut self, paused: bool) -> Self {
        self.paused = Some(paused);
        self
    }

    /// The webhook event this record is, if any.
    fn webhook_type(&self) -> Option<&'static str> {
        use super::webhooks::types as hook;
        self.webhook.or(match self.event_type.as_str() {
            types::STARTED => Some(hook::PRINT_STARTED),
            types::ENDED => Some(hook::PRINT_FINISHED),
            types::FAILURE_ALERTED => Some(hook::FAILURE_ALERTED),
            types::FILAMENT_CHANGE => Some(hook::FILAMENT_CHANGE),
            _ => None,
        })
    }

    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    pub fn with(mut self, class: &str, title: &str) -> Self {
        self.class = Some(class.to_owned());
        self.title = Some(title.to_owned());
        self
    }
}

/// The default class and title of a type (detection.md §5).
pub fn defaults(event_type: &str) -> (&'static str, &'static str) {
    use classes::*;
    match event_type {
        types::STARTED => (INFO, "Print Job Started"),
        types::ENDED => (SUCCESS, "Print Job Finished"),
        types::PAUSED => (INFO, "Paused"),
        types::RESUMED => (INFO, "Resumed"),
        types::FAILURE_ALERTED => (ERROR, "Possible Failure Detected"),
        types::ALERT_MUTED => (WARNING, "Watching Turned Off"),
        types::ALERT_UNMUTED => (INFO, "Watching Turned On"),
        types::FILAMENT_CHANGE => (WARNING, "Filament Change Required"),
        types::PRINTER_ERROR => (ERROR, "Printer Error"),
        _ => (INFO, "Printer Event"),
    }
}

/// One page of a printer's events, newest first.
#[derive(Debug, Clone)]
pub struct EventPage {
    pub events: Vec<printer_event::Model>,
    pub has_next: bool,
}

impl Service {
    /// Writes a record for printer `p` (and its print, if any) and
    /// publishes it; one that is a webhook event is queued for the
    /// owner's endpoints in the same transaction.
    pub(super) async fn log_event(
        &self,
        p: &printer::Model,
        print_id: Option<i32>,
        entry: LogEntry,
    ) -> Result<printer_event::Model, AppError> {
        let hook = entry.webhook_type();
        let paused = entry.paused;
        let (class, title) = defaults(&entry.event_type);
        let row = printer_event::ActiveModel {
            printer_id: Set(p.id),
            print_id: Set(print_id),
            event_type: Set(entry.event_type),
            event_class: Set(Some(entry.class.unwrap_or_else(|| class.to_owned()))),
            event_title: Set(Some(entry.title.unwrap_or_else(|| title.to_owned()))),
            event_text: Set(entry.text),
            info_url: Set(entry.info_url),
            created_at: Set(now()),
            ..Default::default()
        };
        let Some(hook) = hook else {
            let stored = row.insert(self.db()).await?;
            self.publish(p, EventKind::Logged { record: stored.id });
            return Ok(stored);
        };
        let txn = self.db().begin().await?;
        let stored = row.insert(&txn).await?;
        let mut data = json!({"printer": webhooks::printer_data(p)});
        if let Some(id) = print_id
            && let Some(run) = print::Entity::find_by_id(id).one(&txn).await?
        {
            data["print"] = webhooks::print_data(&run);
        }
        if let Some(paused) = paused {
            data["paused"] = paused.into();
            data["normalized_p"] = p.normalized_p.into();
        }
        if let Some(text) = &stored.event_text {
            data["text"] = text.as_str().into();
        }
        let queued = self.enqueue(&txn, p.user_id, hook, data, None).await?;
        txn.commit().await?;
        if queued.is_some() {
            self.wake_webhooks();
        }
        self.publish(p, EventKind::Logged { record: stored.id });
        Ok(stored)
    }

    /// A page of one of the viewer's printers' events, newest first:
    /// `first` of them (at most [`MAX_PAGE`]) older than the event `after`,
    /// only of `types` when given. `None` when the printer is not the
    /// viewer's.
    pub async fn printer_events(
        &self,
        viewer: &Viewer,
        printer_id: i32,
        first: u64,
        after: Option<i32>,
        types: Option<&[String]>,
    ) -> Result<Option<EventPage>, AppError> {
        if self.printer(viewer, printer_id).await?.is_none() {
            return Ok(None);
        }
        let first = first.clamp(1, MAX_PAGE);
        let mut q =
            printer_event::Entity::find().filter(printer_event::Column::PrinterId.eq(printer_id));
        if let Some(after) = after {
            q = q.filter(printer_event::Column::Id.lt(after));
        }
        if let Some(types) = types {
            q = q.filter(printer_event::Column::EventType.is_in(types.iter().cloned()));
        }
        let mut events = q
            .order_by_desc(printer_event::Column::Id)
            .limit(first + 1)
            .all(self.db())
            .await?;
        let has_next = events.len() as u64 > first;
        events.truncate(usize::try_from(first).unwrap_or(usize::MAX));
        Ok(Some(EventPage { events, has_next }))
    }

    /// One event record, if it is of one of the viewer's printers.
    pub async fn printer_event_record(
        &self,
        viewer: &Viewer,
        id: i32,
    ) -> Result<Option<printer_event::Model>, AppError> {
        let Some(e) = printer_event::Entity::find_by_id(id).one(self.db()).await? else {
            return Ok(None);
        };
        Ok(self.printer(viewer, e.printer_id).await?.map(|_| e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_type_has_the_class_and_title_obico_gives_it() {
        assert_eq!(
            defaults("FAILURE_ALERTED"),
            ("ERROR", "Possible Failure Detected")
        );
        assert_eq!(defaults("ENDED"), ("SUCCESS", "Print Job Finished"));
        assert_eq!(defaults("ALERT_MUTED"), ("WARNING", "Watching Turned Off"));
        assert_eq!(
            defaults("FILAMENT_CHANGE"),
            ("WARNING", "Filament Change Required")
        );
        assert_eq!(defaults("STARTED").1, "Print Job Started");
    }
}
