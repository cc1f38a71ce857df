//! What printer agents change: status, settings, the print lifecycle,
//! failure scores, snapshots, G-code files and printer events. The agent
//! edge (websocket and HTTP) parses frames; the rules are here.

use chrono::{DateTime, Utc};
use entity::{g_code_file, print, printer, printer_event, snapshot};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::Value;

use super::printer_events::{LogEntry, classes, types};
use super::{Service, now, rules, webhooks};
use crate::error::AppError;
use crate::events::EventKind;

/// Two print timestamps this close, with the same file, are the same print
/// (agents re-derive the start time after a reconnect).
const SAME_PRINT_WINDOW_SECS: u64 = 20;
/// Longest agent text kept, per field, in characters.
pub const MAX_EVENT_TYPE_CHARS: usize = 64;
pub const MAX_EVENT_TITLE_CHARS: usize = 512;
pub const MAX_EVENT_TEXT_CHARS: usize = 16 * 1024;
pub const MAX_URL_CHARS: usize = 2048;
pub const MAX_FILENAME_CHARS: usize = 1024;
pub const MAX_SIGNATURE_CHARS: usize = 256;
/// Most printer events kept per printer (the oldest go first), whatever
/// the retention; checked every [`TRIM_EVERY`] events.
pub const MAX_EVENTS_PER_PRINTER: u64 = 1000;
const TRIM_EVERY: i32 = 50;

/// One status message from an agent, already checked for types.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusReport {
    /// Replaces the stored agent settings when present.
    pub settings: Option<Value>,
    /// The status object; `None` means the key was absent (the agent lost
    /// its printer), which clears the stored status.
    pub status: Option<Value>,
    /// `None` for absent, null or 0 (no information); -1 for idle.
    pub current_print_ts: Option<i64>,
    pub event_type: Option<String>,
    /// `event.data.name`, the printed file's name, when the event says it.
    pub event_file: Option<String>,
}

/// What an agent's session knows of its printer's print lifecycle, so a
/// plain status (nearly every frame) is handed to the status writer with
/// no read. This session is the only writer of the printer's current
/// print (another connection of the printer replaces it), so what it
/// learnt from its last full report still holds.
#[derive(Debug)]
pub struct AgentSession {
    printer_id: i32,
    /// The current print (id, agent timestamp) after the last full
    /// report; `None` until the first one.
    known: Option<Option<(i32, i64)>>,
}

impl AgentSession {
    pub fn new(printer_id: i32) -> Self {
        Self {
            printer_id,
            known: None,
        }
    }

    pub fn printer_id(&self) -> i32 {
        self.printer_id
    }

    /// Whether a report is a plain status: no settings, no event the
    /// print lifecycle acts on (an agent's `PrinterStateChanged` and the
    /// like change nothing but the status), the print the session knows (or none).
    fn plain(&self, report: &StatusReport) -> bool {
        let Some(current) = self.known else {
            return false;
        };
        report.settings.is_none()
            && report
                .event_type
                .as_deref()
                .is_none_or(|e| !LIFECYCLE_EVENTS.contains(&e))
            && report.status.is_some()
            && match (report.current_print_ts, current) {
                (None, _) | (Some(-1), None) => true,
                (Some(ts), Some((_, ext))) => ts == ext,
                (Some(_), None) => false,
            }
    }
}

/// The agent events the print lifecycle acts on (`agent_report`'s match);
/// a report with any other event is a plain status.
const LIFECYCLE_EVENTS: [&str; 6] = [
    "PrintCancelled",
    "PrintPaused",
    "PrintResumed",
    "FilamentChange",
    "PrintFailed",
    "PrintDone",
];

/// A G-code file as the agent describes it.
#[derive(Debug, Clone, Default)]
pub struct GCodeFile {
    pub filename: String,
    pub safe_filename: String,
    pub num_bytes: Option<i64>,
    pub agent_signature: String,
    pub url: Option<String>,
}

/// A printer event reported over HTTP.
#[derive(Debug, Clone, Default)]
pub struct PrinterEvent {
    pub event_type: String,
    pub event_class: Option<String>,
    pub event_title: Option<String>,
    pub event_text: Option<String>,
    pub info_url: Option<String>,
}

impl Service {
    /// The printer an agent token belongs to: never a deleted or archived one.
    pub async fn agent_printer(&self, token: &str) -> Result<Option<printer::Model>, AppError> {
        if token.is_empty() {
            return Ok(None);
        }
        Ok(printer::Entity::find()
            .filter(printer::Column::AuthToken.eq(token))
            .filter(printer::Column::DeletedAt.is_null())
            .filter(printer::Column::ArchivedAt.is_null())
            .one(self.db())
            .await?)
    }

    /// The printer an agent session writes for: a deleted or archived
    /// one is `NotFound`, and its session ends (see the agent socket).
    pub(super) async fn agent_owned(&self, printer_id: i32) -> Result<printer::Model, AppError> {
        printer::Entity::find_by_id(printer_id)
            .filter(printer::Column::DeletedAt.is_null())
            .filter(printer::Column::ArchivedAt.is_null())
            .one(self.db())
            .await?
            .ok_or(AppError::NotFound)
    }

    /// The printer's current print, if any.
    pub(super) async fn current_print(
        &self,
        p: &printer::Model,
    ) -> Result<Option<print::Model>, AppError> {
        match p.current_print_id {
            Some(id) => Ok(print::Entity::find_by_id(id).one(self.db()).await?),
            None => Ok(None),
        }
    }

    /// Whether the printer's agent should watch for failures now.
    pub async fn should_watch(&self, p: &printer::Model) -> Result<bool, AppError> {
        let owner = entity::user::Entity::find_by_id(p.user_id)
            .one(self.db())
            .await?
            .ok_or(AppError::NotFound)?;
        let current = self.current_print(p).await?;
        Ok(rules::should_watch(p, &owner, current.as_ref()))
    }

    /// An agent connected here: the printer is online (held by this
    /// instance) and that is announced (its status arrives with its frames).
    pub async fn agent_connected(&self, p: &printer::Model) -> Result<(), AppError> {
        printer::Entity::update_many()
            .col_expr(
                printer::Column::AgentInstance,
                Expr::value(self.instance().to_owned()),
            )
            .filter(printer::Column::Id.eq(p.id))
            .exec(self.db())
            .await?;
        self.publish(p, EventKind::Connection);
        Ok(())
    }

    /// The agent's connection here closed: its printer shows offline,
    /// unless a newer connection (on another instance) holds it already.
    pub async fn agent_disconnected(&self, printer_id: i32) -> Result<(), AppError> {
        // Its status is about to be cleared: a waiting one must not land after.
        self.settle_status(printer_id, true).await;
        let p = self.agent_owned(printer_id).await?;
        let res = printer::Entity::update_many()
            .col_expr(printer::Column::Status, Expr::value(None::<Value>))
            .col_expr(
                printer::Column::StatusAt,
                Expr::value(None::<DateTime<Utc>>),
            )
            .col_expr(printer::Column::AgentInstance, Expr::value(None::<String>))
            .filter(printer::Column::Id.eq(printer_id))
            .filter(printer::Column::AgentInstance.eq(self.instance()))
            .exec(self.db())
            .await?;
        if res.rows_affected > 0 {
            self.publish(&p, EventKind::Connection);
        }
        Ok(())
    }

    /// Applies a status message: settings, then status (late ones never
    /// win), then the print lifecycle, then the event. Returns the new
    /// `should_watch` when it changed, for the agent to hear.
    pub async fn agent_report(
        &self,
        session: &mut AgentSession,
        mut report: StatusReport,
    ) -> Result<Option<bool>, AppError> {
        let printer_id = session.printer_id;
        // Agent data is cleaned, never refused whole: NULs (which
        // PostgreSQL cannot store) go, an absurd print timestamp counts as
        // absent, and the rest of the report still applies.
        report.settings = report.settings.map(rules::clean_agent_json);
        report.status = report.status.map(rules::clean_agent_json);
        report.event_type = report
            .event_type
            .map(|t| rules::clean_agent_text(&t, MAX_EVENT_TYPE_CHARS));
        report.event_file = report
            .event_file
            .map(|f| rules::clean_agent_text(&f, MAX_FILENAME_CHARS));
        if report
            .current_print_ts
            .is_some_and(|ts| !rules::plausible_print_ts(ts))
        {
            tracing::warn!(printer_id, ts = ?report.current_print_ts, "absurd print timestamp ignored");
            report.current_print_ts = None;
        }
        if session.plain(&report)
            && let Some(status) = report.status.take()
        {
            let ts = status.get("_ts").and_then(Value::as_f64);
            self.queue_status(printer_id, status, ts);
            return Ok(None);
        }
        // This report writes the printer itself: its waiting status first.
        self.settle_status(printer_id, false).await;
        let p = self.agent_owned(printer_id).await?;
        let owner = entity::user::Entity::find_by_id(p.user_id)
            .one(self.db())
            .await?
            .ok_or(AppError::NotFound)?;
        let current = self.current_print(&p).await?;
        let watch_before = rules::should_watch(&p, &owner, current.as_ref());
        let mut row = p.clone().into_active_model();
        if let Some(settings) = &report.settings {
            let agent = settings.get("agent");
            let text = |k: &str| {
                agent
                    .and_then(|a| a.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            row.agent_settings = Set(Some(settings.clone()));
            row.agent_name = Set(text("name").or(p.agent_name.clone()));
            row.agent_version = Set(text("version").or(p.agent_version.clone()));
        }
        match &report.status {
            Some(status) => {
                let ts = status.get("_ts").and_then(Value::as_f64);
                let late = matches!((ts, p.status_ts), (Some(new), Some(old)) if new < old);
                if !late {
                    let at = now();
                    let (state, finishes_at) = rules::status_columns(Some(status), at);
                    row.status = Set(Some(status.clone()));
                    row.status_ts = Set(ts.or(p.status_ts));
                    row.status_at = Set(Some(at));
                    row.last_seen_at = Set(Some(at));
                    row.state = Set(state.map(str::to_owned));
                    row.finishes_at = Set(finishes_at);
                }
            }
            None => {
                row.status = Set(None);
                row.status_at = Set(None);
                row.state = Set(None);
                row.finishes_at = Set(None);
            }
        }
        let filename = report.event_file.clone().or_else(|| {
            report
                .status
                .as_ref()
                .and_then(|s| s.pointer("/job/file/name"))
                .and_then(Value::as_str)
                .map(|f| rules::clean_agent_text(f, MAX_FILENAME_CHARS))
        });
        let mut print_changed = false;
        let mut current_id = current.as_ref().map(|c| c.id);
        match (report.current_print_ts, &current) {
            (None, _) => {}
            (Some(-1), Some(c)) => {
                self.end_print(&p, c).await?;
                current_id = None;
                print_changed = true;
            }
            (Some(-1), None) => {}
            (Some(ts), None) => {
                if let Some(name) = &filename {
                    current_id = Some(self.start_print(&p, ts, name).await?);
                    print_changed = true;
                }
            }
            (Some(ts), Some(c)) if ts == c.ext_id => {}
            (Some(ts), Some(c)) => {
                let same_file = filename.as_deref().is_none_or(|f| f == c.filename);
                if ts.abs_diff(c.ext_id) <= SAME_PRINT_WINDOW_SECS && same_file {
                    print::Entity::update_many()
                        .col_expr(print::Column::ExtId, Expr::value(ts))
                        .filter(print::Column::Id.eq(c.id))
                        .exec(self.db())
                        .await?;
                } else {
                    self.end_print(&p, c).await?;
                    current_id = None;
                    if let Some(name) = filename.as_deref().or(Some(c.filename.as_str())) {
                        current_id = Some(self.start_print(&p, ts, name).await?);
                    }
                    print_changed = true;
                }
            }
        }
        if let (Some(event), Some(id)) = (report.event_type.as_deref(), current_id) {
            // Every type acted on here is in LIFECYCLE_EVENTS.
            match event {
                "PrintCancelled" => {
                    self.mark_cancelled(id).await?;
                }
                "PrintPaused" | "PrintResumed" | "FilamentChange" => {
                    let ty = match event {
                        "PrintPaused" => types::PAUSED,
                        "PrintResumed" => types::RESUMED,
                        _ => types::FILAMENT_CHANGE,
                    };
                    self.log_event(&p, Some(id), LogEntry::of(ty)).await?;
                }
                "PrintFailed" | "PrintDone" => {
                    if event == "PrintFailed" {
                        self.mark_failed(id).await?;
                    }
                    if let Some(c) = print::Entity::find_by_id(id).one(self.db()).await? {
                        self.end_print(&p, &c).await?;
                    }
                    current_id = None;
                    print_changed = true;
                }
                _ => {}
            }
        }
        if print_changed {
            row.current_print_id = Set(current_id);
            row.normalized_p = Set(0.0);
            self.reset_prediction(p.id).await?;
        }
        let updated = if row.is_changed() {
            row.update(self.db()).await?
        } else {
            p
        };
        self.publish_row(
            updated.clone(),
            if print_changed {
                EventKind::Print
            } else {
                EventKind::AgentStatus
            },
        );
        let now_current = if print_changed {
            self.current_print(&updated).await?
        } else {
            current
        };
        let watch_after = rules::should_watch(&updated, &owner, now_current.as_ref());
        session.known = Some(
            now_current
                .as_ref()
                .filter(|c| Some(c.id) == updated.current_print_id)
                .map(|c| {
                    (
                        c.id,
                        report
                            .current_print_ts
                            .filter(|ts| *ts > 0)
                            .unwrap_or(c.ext_id),
                    )
                }),
        );
        Ok((watch_after != watch_before).then_some(watch_after))
    }

    /// Starts (or, for a known timestamp, resumes) a print; never
    /// duplicates. A new print is logged (STARTED).
    async fn start_print(
        &self,
        p: &printer::Model,
        ext_id: i64,
        filename: &str,
    ) -> Result<i32, AppError> {
        let row = print::ActiveModel {
            printer_id: Set(p.id),
            ext_id: Set(ext_id),
            filename: Set(filename.to_owned()),
            started_at: Set(now()),
            ..Default::default()
        };
        let inserted = print::Entity::insert(row)
            .on_conflict_do_nothing_on([print::Column::PrinterId, print::Column::ExtId])
            .exec_without_returning(self.db())
            .await?;
        let id = print::Entity::find()
            .filter(print::Column::PrinterId.eq(p.id))
            .filter(print::Column::ExtId.eq(ext_id))
            .one(self.db())
            .await?
            .map(|p| p.id)
            .ok_or_else(|| AppError::internal("print vanished after insert"))?;
        if matches!(inserted, sea_orm::TryInsertResult::Inserted(n) if n > 0) {
            self.log_event(
                p,
                Some(id),
                LogEntry::of(types::STARTED).with_text(filename),
            )
            .await?;
        }
        Ok(id)
    }

    /// Ends a print: finished unless it was cancelled; logged (ENDED),
    /// and to webhooks as its state says (`rules::print_state`).
    async fn end_print(&self, p: &printer::Model, c: &print::Model) -> Result<(), AppError> {
        if c.cancelled_at.is_none() && c.finished_at.is_none() {
            print::Entity::update_many()
                .col_expr(print::Column::FinishedAt, Expr::value(now()))
                .filter(print::Column::Id.eq(c.id))
                .exec(self.db())
                .await?;
        }
        let state = print::Entity::find_by_id(c.id)
            .one(self.db())
            .await?
            .map(|c| rules::print_state(&c));
        let entry = match state {
            Some(rules::PrintState::Failed) => LogEntry::of(types::ENDED)
                .with(classes::WARNING, "Print Job Canceled")
                .as_webhook(webhooks::types::PRINT_FAILED),
            Some(rules::PrintState::Cancelled) => LogEntry::of(types::ENDED)
                .with(classes::WARNING, "Print Job Canceled")
                .as_webhook(webhooks::types::PRINT_CANCELLED),
            _ => LogEntry::of(types::ENDED),
        };
        self.log_event(p, Some(c.id), entry.with_text(c.filename.clone()))
            .await?;
        Ok(())
    }

    /// The agent says the print failed: it ended, cancelled and failed.
    async fn mark_failed(&self, print_id: i32) -> Result<(), AppError> {
        print::Entity::update_many()
            .col_expr(print::Column::FailedAt, Expr::value(now()))
            .filter(print::Column::Id.eq(print_id))
            .filter(print::Column::FailedAt.is_null())
            .exec(self.db())
            .await?;
        self.mark_cancelled(print_id).await
    }

    async fn mark_cancelled(&self, print_id: i32) -> Result<(), AppError> {
        print::Entity::update_many()
            .col_expr(print::Column::CancelledAt, Expr::value(now()))
            .filter(print::Column::Id.eq(print_id))
            .filter(print::Column::CancelledAt.is_null())
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// Keeps the latest snapshot of a printer.
    /// Returns the printer as it is with the new snapshot (what the failure
    /// detector judges it by).
    pub async fn store_snapshot(
        &self,
        printer_id: i32,
        content_type: &str,
        data: Vec<u8>,
    ) -> Result<printer::Model, AppError> {
        let taken_at = now();
        // One transaction: the picture and the printer's `pic_at` agree,
        // and the write lock is taken once. The printer comes back from
        // its own update (no read before it): a deleted or archived one
        // matches nothing, and dropping the transaction writes nothing.
        let txn = self.db().begin().await?;
        let p = printer::Entity::update_many()
            .col_expr(printer::Column::PicAt, Expr::value(taken_at))
            .filter(printer::Column::Id.eq(printer_id))
            .filter(printer::Column::DeletedAt.is_null())
            .filter(printer::Column::ArchivedAt.is_null())
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .next()
            .ok_or(AppError::NotFound)?;
        let row = snapshot::ActiveModel {
            printer_id: Set(printer_id),
            content_type: Set(content_type.to_owned()),
            data: Set(data),
            taken_at: Set(taken_at),
        };
        snapshot::Entity::insert(row)
            .on_conflict(
                OnConflict::column(snapshot::Column::PrinterId)
                    .update_columns([
                        snapshot::Column::ContentType,
                        snapshot::Column::Data,
                        snapshot::Column::TakenAt,
                    ])
                    .to_owned(),
            )
            .exec(&txn)
            .await?;
        txn.commit().await?;
        self.publish(&p, EventKind::AgentStatus);
        Ok(p)
    }

    /// A printer's latest snapshot; the caller has checked the URL signature.
    pub async fn snapshot(&self, printer_id: i32) -> Result<Option<snapshot::Model>, AppError> {
        Ok(snapshot::Entity::find_by_id(printer_id)
            .one(self.db())
            .await?)
    }

    /// A stable id for a G-code file: the same file reported again gets the
    /// same id (an upsert on the unique key, so two reports at once cannot
    /// make two records). Records older than the retention are pruned.
    pub async fn g_code_file(&self, printer_id: i32, f: GCodeFile) -> Result<i32, AppError> {
        let safe_filename = rules::clean_agent_text(&f.safe_filename, MAX_FILENAME_CHARS);
        let agent_signature = rules::clean_agent_text(&f.agent_signature, MAX_SIGNATURE_CHARS);
        let row = g_code_file::ActiveModel {
            printer_id: Set(printer_id),
            filename: Set(rules::clean_agent_text(&f.filename, MAX_FILENAME_CHARS)),
            safe_filename: Set(safe_filename.clone()),
            num_bytes: Set(f.num_bytes),
            agent_signature: Set(agent_signature.clone()),
            url: Set(f.url.map(|u| rules::clean_agent_text(&u, MAX_URL_CHARS))),
            created_at: Set(now()),
            ..Default::default()
        };
        g_code_file::Entity::insert(row)
            .on_conflict_do_nothing_on([
                g_code_file::Column::PrinterId,
                g_code_file::Column::SafeFilename,
                g_code_file::Column::AgentSignature,
            ])
            .exec_without_returning(self.db())
            .await?;
        g_code_file::Entity::find()
            .filter(g_code_file::Column::PrinterId.eq(printer_id))
            .filter(g_code_file::Column::SafeFilename.eq(safe_filename.as_str()))
            .filter(g_code_file::Column::AgentSignature.eq(agent_signature.as_str()))
            .one(self.db())
            .await?
            .map(|g| g.id)
            .ok_or_else(|| AppError::internal("g-code file vanished after upsert"))
    }

    /// Keeps a printer event reported over HTTP.
    /// Fields are cut to their caps and cleaned of NULs; a printer keeps at
    /// most [`MAX_EVENTS_PER_PRINTER`] events.
    pub async fn printer_event(&self, printer_id: i32, e: PrinterEvent) -> Result<(), AppError> {
        let clean = |t: Option<String>, max| t.map(|t| rules::clean_agent_text(&t, max));
        let p = self.agent_owned(printer_id).await?;
        let entry = LogEntry {
            event_type: rules::clean_agent_text(&e.event_type, MAX_EVENT_TYPE_CHARS),
            class: clean(e.event_class, MAX_EVENT_TYPE_CHARS),
            title: clean(e.event_title, MAX_EVENT_TITLE_CHARS),
            text: clean(e.event_text, MAX_EVENT_TEXT_CHARS),
            info_url: clean(e.info_url, MAX_URL_CHARS),
            webhook: None,
            paused: None,
        };
        let id = self.log_event(&p, p.current_print_id, entry).await?.id;
        if id % TRIM_EVERY == 0 {
            self.trim_events(printer_id, MAX_EVENTS_PER_PRINTER).await?;
        }
        Ok(())
    }

    /// Keeps only a printer's `keep` newest events.
    pub async fn trim_events(&self, printer_id: i32, keep: u64) -> Result<u64, AppError> {
        let oldest_kept: Option<i32> = printer_event::Entity::find()
            .select_only()
            .column(printer_event::Column::Id)
            .filter(printer_event::Column::PrinterId.eq(printer_id))
            .order_by_desc(printer_event::Column::Id)
            .offset(keep.saturating_sub(1))
            .limit(1)
            .into_tuple()
            .one(self.db())
            .await?;
        let Some(oldest_kept) = oldest_kept else {
            return Ok(0);
        };
        let res = printer_event::Entity::delete_many()
            .filter(printer_event::Column::PrinterId.eq(printer_id))
            .filter(printer_event::Column::Id.lt(oldest_kept))
            .exec(self.db())
            .await?;
        Ok(res.rows_affected)
    }

    /// Deletes what agents left that is older than `retention`: printer
    /// events, G-code file records and snapshots (whose printers then show
    /// no picture). Returns the rows deleted.
    pub async fn prune(&self, retention: std::time::Duration) -> Result<u64, AppError> {
        let cutoff = now() - super::chrono_of(retention);
        let events = printer_event::Entity::delete_many()
            .filter(printer_event::Column::CreatedAt.lt(cutoff))
            .exec(self.db())
            .await?;
        let files = g_code_file::Entity::delete_many()
            .filter(g_code_file::Column::CreatedAt.lt(cutoff))
            .exec(self.db())
            .await?;
        let pics = snapshot::Entity::delete_many()
            .filter(snapshot::Column::TakenAt.lt(cutoff))
            .exec(self.db())
            .await?;
        printer::Entity::update_many()
            .col_expr(printer::Column::PicAt, Expr::value(None::<DateTime<Utc>>))
            .filter(printer::Column::PicAt.lt(cutoff))
            .exec(self.db())
            .await?;
        Ok(events.rows_affected + files.rows_affected + pics.rows_affected)
    }
}
