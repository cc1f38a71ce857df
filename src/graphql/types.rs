//! The GraphQL object types: printers, prints, their status and settings.
//!
//! These wrap entity models and compute derived fields through the service's
//! rules; the storage shape stays in `entity`.

use async_graphql::connection::{Connection, Edge};
use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, Enum, ID, Json, Object, Result, SimpleObject};
use chrono::Utc;
use entity::{print, printer};
use serde_json::Value;

use std::sync::Arc;

use super::context::viewer;
use super::loaders::PrintLoader;
use super::scalars::DateTime;
use crate::error::AppError;
use crate::service::{self, rules};
use crate::urls::UrlSigner;

/// What a printer does when a failure is detected.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ActionOnFailure {
    /// Pause the print.
    Pause,
    /// Only alert.
    None,
}

impl From<service::ActionOnFailure> for ActionOnFailure {
    fn from(a: service::ActionOnFailure) -> Self {
        match a {
            service::ActionOnFailure::Pause => Self::Pause,
            service::ActionOnFailure::None => Self::None,
        }
    }
}

impl From<ActionOnFailure> for service::ActionOnFailure {
    fn from(a: ActionOnFailure) -> Self {
        match a {
            ActionOnFailure::Pause => Self::Pause,
            ActionOnFailure::None => Self::None,
        }
    }
}

/// The user's verdict on a failure alert.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum AlertOverwrite {
    /// The print did fail.
    Failed,
    /// A false alarm.
    NotFailed,
}

impl From<service::AlertOverwrite> for AlertOverwrite {
    fn from(a: service::AlertOverwrite) -> Self {
        match a {
            service::AlertOverwrite::Failed => Self::Failed,
            service::AlertOverwrite::NotFailed => Self::NotFailed,
        }
    }
}

impl From<AlertOverwrite> for service::AlertOverwrite {
    fn from(a: AlertOverwrite) -> Self {
        match a {
            AlertOverwrite::Failed => Self::Failed,
            AlertOverwrite::NotFailed => Self::NotFailed,
        }
    }
}

/// The authenticated user.
pub struct User(pub entity::user::Model);

/// The authenticated user.
#[Object]
impl User {
    /// The user's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The `email` claim of the user's last token, if any.
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    /// "AI detection hours" balance; below zero, detection stops.
    async fn dh_balance(&self) -> f64 {
        self.0.dh_balance
    }
}

/// A printer's agent credential, asked for on purpose.
pub struct PrinterCredentials(pub printer::Model);

/// A printer's agent credential, asked for on purpose.
#[Object]
impl PrinterCredentials {
    /// The printer's id.
    async fn printer_id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The token its agent connects with (`Authorization: bearer <token>`).
    async fn auth_token(&self) -> &str {
        &self.0.auth_token
    }
}

/// A 3D printer and what its agent last reported.
pub struct Printer(pub printer::Model);

impl Printer {
    async fn current(&self, ctx: &Context<'_>) -> Result<Option<print::Model>, AppError> {
        let Some(id) = self.0.current_print_id else {
            return Ok(None);
        };
        let loader = ctx
            .data::<DataLoader<PrintLoader>>()
            .map_err(|_| AppError::internal("print loader missing"))?;
        loader
            .load_one(id)
            .await
            .map_err(|e| AppError::internal(format!("{e:?}")))
    }
}

/// A 3D printer and what its agent last reported.
#[Object]
impl Printer {
    /// The printer's id (the one the REST paths use).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// 1 to 256 characters.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// When it was added.
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    /// What happens when a failure is detected.
    async fn action_on_failure(&self) -> ActionOnFailure {
        service::ActionOnFailure::from_stored(&self.0.action_on_failure).into()
    }
    /// Whether failure detection watches it.
    async fn watching_enabled(&self) -> bool {
        self.0.watching_enabled
    }
    /// Why failure detection is not watching this printer right now, or null when it is.
    async fn not_watching_reason(&self, ctx: &Context<'_>) -> Result<Option<&'static str>> {
        let owner = &viewer(ctx).await?.user;
        let current = self.current(ctx).await?;
        Ok(rules::not_watching_reason(
            &self.0,
            owner,
            current.as_ref(),
            Utc::now(),
        ))
    }
    /// Turn the tool heaters off when paused for a failure.
    async fn tools_off_on_pause(&self) -> bool {
        self.0.tools_off_on_pause
    }
    /// Turn the bed heater off when paused for a failure.
    async fn bed_off_on_pause(&self) -> bool {
        self.0.bed_off_on_pause
    }
    /// Millimetres of filament retracted on pause, 0 to 100.
    async fn retract_on_pause(&self) -> f64 {
        self.0.retract_on_pause
    }
    /// Millimetres the head is lifted on pause, 0 to 100.
    async fn lift_z_on_pause(&self) -> f64 {
        self.0.lift_z_on_pause
    }
    /// 0.8 to 1.2.
    async fn detective_sensitivity(&self) -> f64 {
        self.0.detective_sensitivity
    }
    /// -1 for no timelapse.
    async fn min_timelapse_secs_on_finish(&self) -> i32 {
        self.0.min_timelapse_secs_on_finish
    }
    /// -1 for no timelapse.
    async fn min_timelapse_secs_on_cancel(&self) -> i32 {
        self.0.min_timelapse_secs_on_cancel
    }
    /// The agent's credential: only in `createPrinter`'s result (null in every other read, so it does not land in client caches); read it on purpose with `printerCredentials`, replace it with `regeneratePrinterToken`.
    async fn auth_token(&self, ctx: &Context<'_>) -> Option<&str> {
        let shown = ctx.data_opt::<super::context::ShowCredentials>().is_some()
            || super::context::request(ctx).is_ok_and(|r| r.revealed(self.0.id));
        shown.then_some(self.0.auth_token.as_str())
    }
    /// When it was archived (null: not archived).
    async fn archived_at(&self) -> Option<DateTime> {
        self.0.archived_at.map(Into::into)
    }
    /// The agent's name (`octoprint_obico`, `moonraker_obico`, ...), once one connected.
    async fn agent_name(&self) -> Option<&str> {
        self.0.agent_name.as_deref()
    }
    /// The agent's version, once one connected.
    async fn agent_version(&self) -> Option<&str> {
        self.0.agent_version.as_deref()
    }
    /// The latest webcam snapshot (null when none was taken in the last 30 minutes), as a signed URL that expires.
    async fn pic(&self, ctx: &Context<'_>) -> Result<Option<Pic>> {
        let now = Utc::now();
        let Some(taken_at) = rules::visible_pic_at(&self.0, now) else {
            return Ok(None);
        };
        let urls = ctx
            .data::<Arc<UrlSigner>>()
            .map_err(|_| AppError::internal("url signer missing"))?;
        Ok(Some(Pic {
            id: ID(self.0.id.to_string()),
            img_url: urls.sign(self.0.id, taken_at, now),
        }))
    }
    /// What the printer is doing, typed; OFFLINE when `status` is null.
    async fn state(&self) -> super::fleet::PrinterState {
        rules::printer_state(&self.0, Utc::now()).into()
    }
    /// Whether its agent is connected now (to any instance). A connected agent that has said nothing for 120 s is online with state OFFLINE.
    async fn online(&self) -> bool {
        self.0.agent_instance.is_some()
    }
    /// When the agent's last status arrived (server clock), shown or not: kept after the agent goes away and across restarts.
    async fn last_seen_at(&self) -> Option<DateTime> {
        self.0.last_seen_at.map(Into::into)
    }
    /// The agent's last status; null when the printer is offline (no agent, or nothing heard for 120 s).
    async fn status(&self) -> Option<PrinterStatus> {
        rules::visible_status(&self.0, Utc::now()).map(|s| PrinterStatus {
            printer: self.0.id,
            value: s.clone(),
        })
    }
    /// Webcam and agent settings; always present.
    async fn settings(&self) -> PrinterSettings {
        PrinterSettings {
            printer: self.0.id,
            map: rules::derived_settings(&self.0),
        }
    }
    /// This printer's print history (see `Query.prints`).
    #[allow(clippy::too_many_arguments)]
    async fn prints(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only the prints matching it.")] filter: Option<
            super::history::PrintFilter,
        >,
        #[graphql(desc = "The order (newest first when omitted).")] order_by: Option<
            super::history::PrintOrder,
        >,
        #[graphql(
            desc = "Forward: how many prints (1 to 100; 20 when neither `first` nor `last` is given)."
        )]
        first: Option<i32>,
        #[graphql(desc = "A cursor: the prints after it.")] after: Option<String>,
        #[graphql(desc = "Backward: how many prints (1 to 100).")] last: Option<i32>,
        #[graphql(desc = "A cursor: the prints before it.")] before: Option<String>,
    ) -> Result<super::history::PrintConnection> {
        super::history::prints(
            ctx,
            Some(self.0.id),
            super::history::PrintsArgs {
                filter,
                order_by,
                first,
                after,
                last,
                before,
            },
        )
        .await
    }
    /// The print in progress, or null.
    async fn current_print(&self, ctx: &Context<'_>) -> Result<Option<Print>> {
        Ok(self.current(ctx).await?.map(Print))
    }
    /// Failure score, 0 to 1.
    async fn normalized_p(&self) -> f64 {
        self.0.normalized_p
    }
    /// The printer's event log, newest first: print starts and ends, pauses and resumes, filament changes, failure alerts, mute and unmute, and what the agent reports. `first` is at most 100; `after` is a cursor from a previous page; `types` keeps only those types (`STARTED`, `ENDED`, `PAUSED`, `RESUMED`, `FAILURE_ALERTED`, `ALERT_MUTED`, `ALERT_UNMUTED`, `FILAMENT_CHANGE`, `PRINTER_ERROR`, or what an agent posted).
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, desc = "How many records (1 to 100).")] first: i32,
        #[graphql(desc = "A cursor from a previous page: the records after it.")] after: Option<
            String,
        >,
        #[graphql(desc = "Only records of these types.")] types: Option<Vec<String>>,
    ) -> Result<PrinterEventConnection> {
        let viewer = viewer(ctx).await?;
        let service = super::context::request(ctx)?.service();
        let after_id = match after.as_deref() {
            None => None,
            Some(c) => Some(event_cursor_id(c).ok_or_else(|| {
                AppError::invalid("after", "This is not a cursor from this list.")
            })?),
        };
        let first = u64::try_from(first.max(1)).unwrap_or(1);
        let page = service
            .printer_events(viewer, self.0.id, first, after_id, types.as_deref())
            .await?
            .ok_or(AppError::NotFound)?;
        let mut conn = Connection::new(after_id.is_some(), page.has_next);
        conn.edges.extend(
            page.events
                .into_iter()
                .map(|e| Edge::new(event_cursor(e.id), PrinterEvent(e))),
        );
        Ok(conn)
    }
}

/// A page of a printer's event log.
pub type PrinterEventConnection = Connection<String, PrinterEvent>;

/// The opaque cursor of row `id` in a list of `kind`s.
pub(super) fn cursor(kind: &str, id: i32) -> String {
    hex::encode(format!("{kind}:{id}"))
}

/// The row id of a cursor of a list of `kind`s (`None`: not one).
pub(super) fn cursor_id(kind: &str, cursor: &str) -> Option<i32> {
    let raw = hex::decode(cursor).ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix(kind)?
        .strip_prefix(':')?
        .parse()
        .ok()
}

fn event_cursor(id: i32) -> String {
    cursor("event", id)
}

fn event_cursor_id(c: &str) -> Option<i32> {
    cursor_id("event", c)
}

/// What a record of a printer's event log is about.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum PrinterEventKind {
    /// A print started.
    Started,
    /// A print ended (finished, cancelled or failed).
    Ended,
    /// The print was paused.
    Paused,
    /// The print was resumed.
    Resumed,
    /// Failure detection alerted (and paused the print when the printer says so).
    FailureAlerted,
    /// Alerts were muted for the current print.
    AlertMuted,
    /// Alerts were unmuted.
    AlertUnmuted,
    /// The printer asks for a filament change.
    FilamentChange,
    /// The printer reported an error.
    PrinterError,
    /// A type an agent posted that printgate does not know (see `type`).
    Other,
}

impl PrinterEventKind {
    fn of(stored: &str) -> Self {
        use service::printer_events::types as t;
        match stored {
            t::STARTED => Self::Started,
            t::ENDED => Self::Ended,
            t::PAUSED => Self::Paused,
            t::RESUMED => Self::Resumed,
            t::FAILURE_ALERTED => Self::FailureAlerted,
            t::ALERT_MUTED => Self::AlertMuted,
            t::ALERT_UNMUTED => Self::AlertUnmuted,
            t::FILAMENT_CHANGE => Self::FilamentChange,
            t::PRINTER_ERROR => Self::PrinterError,
            _ => Self::Other,
        }
    }
}

/// A record of the printer's event log.
pub struct PrinterEvent(pub entity::printer_event::Model);

/// A record of the printer's event log.
#[Object]
impl PrinterEvent {
    /// The record's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// `STARTED`, `ENDED`, `PAUSED`, `RESUMED`, `FAILURE_ALERTED`, `ALERT_MUTED`, `ALERT_UNMUTED`, `FILAMENT_CHANGE`, `PRINTER_ERROR`, or a type an agent posted.
    async fn r#type(&self) -> &str {
        &self.0.event_type
    }
    /// The record's type, typed: OTHER for a type an agent posted.
    async fn kind(&self) -> PrinterEventKind {
        PrinterEventKind::of(&self.0.event_type)
    }
    /// `ERROR`, `WARNING`, `SUCCESS` or `INFO`.
    async fn class(&self) -> &str {
        self.0.event_class.as_deref().unwrap_or("INFO")
    }
    /// A short title.
    async fn title(&self) -> Option<&str> {
        self.0.event_title.as_deref()
    }
    /// The text, as the event words it.
    async fn text(&self) -> Option<&str> {
        self.0.event_text.as_deref()
    }
    /// A page with more about it.
    async fn info_url(&self) -> Option<&str> {
        self.0.info_url.as_deref()
    }
    /// When it happened.
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    /// The printer's id.
    #[graphql(deprecation = "Use `printer { id }`.")]
    async fn printer_id(&self) -> ID {
        ID(self.0.printer_id.to_string())
    }
    /// The printer it happened on; null once that printer was deleted.
    async fn printer(&self, ctx: &Context<'_>) -> Result<Option<Printer>> {
        printer_of(ctx, self.0.printer_id).await
    }
    /// The print it happened in, if any.
    async fn print(&self, ctx: &Context<'_>) -> Result<Option<Print>> {
        let Some(id) = self.0.print_id else {
            return Ok(None);
        };
        // The loader reads as the viewer, once resolved.
        viewer(ctx).await?;
        let loader = ctx
            .data::<DataLoader<PrintLoader>>()
            .map_err(|_| AppError::internal("print loader missing"))?;
        Ok(loader
            .load_one(id)
            .await
            .map_err(|e| AppError::internal(format!("{e:?}")))?
            .map(Print))
    }
}

/// Printer `id` of the viewer's, through the request's loader.
async fn printer_of(ctx: &Context<'_>, id: i32) -> Result<Option<Printer>> {
    // The loader reads as the viewer, once resolved.
    viewer(ctx).await?;
    let loader = ctx
        .data::<DataLoader<super::loaders::PrinterLoader>>()
        .map_err(|_| AppError::internal("printer loader missing"))?;
    let row = loader.load_one(id).await.map_err(|e| AppError::clone(&e))?;
    Ok(row.map(Printer))
}

/// A printer's latest webcam snapshot.
#[derive(SimpleObject)]
pub struct Pic {
    /// The printer's id (one snapshot is shown per printer, so a client cache keeps one).
    pub id: ID,
    /// A signed, expiring URL an `<img>` tag can load.
    pub img_url: String,
}

/// One run of a G-code file on a printer.
pub struct Print(pub print::Model);

/// One run of a G-code file on a printer.
#[Object]
impl Print {
    /// The print's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The printer's id.
    #[graphql(deprecation = "Use `printer { id }`.")]
    async fn printer_id(&self) -> ID {
        ID(self.0.printer_id.to_string())
    }
    /// The printer it ran on (archived ones too); null once that printer was deleted.
    async fn printer(&self, ctx: &Context<'_>) -> Result<Option<Printer>> {
        printer_of(ctx, self.0.printer_id).await
    }
    /// Where it is in its lifecycle.
    async fn state(&self) -> super::history::PrintState {
        rules::print_state(&self.0).into()
    }
    /// Seconds from its start to its end (to now while it runs).
    async fn duration(&self) -> i64 {
        let end = rules::ended_at(&self.0).unwrap_or_else(Utc::now);
        (end - self.0.started_at).num_seconds().max(0)
    }
    /// When the agent reported it failed.
    async fn failed_at(&self) -> Option<DateTime> {
        self.0.failed_at.map(Into::into)
    }
    /// The G-code file's name.
    async fn filename(&self) -> &str {
        &self.0.filename
    }
    /// When the print started.
    async fn started_at(&self) -> DateTime {
        self.0.started_at.into()
    }
    /// When it ended: `cancelledAt`, else `finishedAt`.
    async fn ended_at(&self) -> Option<DateTime> {
        rules::ended_at(&self.0).map(Into::into)
    }
    /// When it finished normally.
    async fn finished_at(&self) -> Option<DateTime> {
        self.0.finished_at.map(Into::into)
    }
    /// When it was cancelled (or failed).
    async fn cancelled_at(&self) -> Option<DateTime> {
        self.0.cancelled_at.map(Into::into)
    }
    /// When its timelapse was uploaded.
    async fn uploaded_at(&self) -> Option<DateTime> {
        self.0.uploaded_at.map(Into::into)
    }
    /// When failure detection last alerted on it.
    async fn alerted_at(&self) -> Option<DateTime> {
        self.0.alerted_at.map(Into::into)
    }
    /// When the user last answered an alert.
    async fn alert_acknowledged_at(&self) -> Option<DateTime> {
        self.0.alert_acknowledged_at.map(Into::into)
    }
    /// When alerts were muted for it (null: not muted).
    async fn alert_muted_at(&self) -> Option<DateTime> {
        self.0.alert_muted_at.map(Into::into)
    }
    /// Set only by an automatic (failure) pause.
    async fn paused_at(&self) -> Option<DateTime> {
        self.0.paused_at.map(Into::into)
    }
    /// Its timelapse video, once uploaded.
    async fn video_url(&self) -> Option<&str> {
        self.0.video_url.as_deref()
    }
    /// Its timelapse with the detections drawn in.
    async fn tagged_video_url(&self) -> Option<&str> {
        self.0.tagged_video_url.as_deref()
    }
    /// A still of its timelapse.
    async fn poster_url(&self) -> Option<&str> {
        self.0.poster_url.as_deref()
    }
    /// The detector's frames, as a JSON file.
    async fn prediction_json_url(&self) -> Option<&str> {
        self.0.prediction_json_url.as_deref()
    }
    /// The user's verdict on its alert, if any.
    async fn alert_overwrite(&self) -> Option<AlertOverwrite> {
        self.0
            .alert_overwrite
            .as_deref()
            .and_then(service::AlertOverwrite::from_stored)
            .map(Into::into)
    }
    /// The frames the failure detector judged during this print, oldest first: the failure-score curve (at most the newest 10,000).
    async fn predictions(&self, ctx: &Context<'_>) -> Result<Vec<PredictionFrame>> {
        let viewer = viewer(ctx).await?;
        let service = super::context::request(ctx)?.service();
        let frames = service.print_frames(viewer, self.0.id).await?;
        Ok(frames.into_iter().map(PredictionFrame::from).collect())
    }
}

/// One frame the failure detector judged.
#[derive(SimpleObject)]
pub struct PredictionFrame {
    /// When it was judged.
    pub at: DateTime,
    /// The sum of the detections' confidences (may exceed 1).
    pub p: f64,
    /// The display score after this frame, 0 to 1 (1/3 warning, 2/3 failing).
    pub normalized_p: f64,
    /// What the ML service saw, most confident first.
    pub detections: Vec<FailureDetection>,
}

/// A region of the snapshot the ML service thinks is failing.
#[derive(SimpleObject)]
pub struct FailureDetection {
    /// 0 to 1.
    pub confidence: f64,
    /// Centre x, centre y, width, height, in pixels of the snapshot.
    pub bbox: Vec<f64>,
}

impl From<entity::print_prediction::Model> for PredictionFrame {
    fn from(m: entity::print_prediction::Model) -> Self {
        let parsed: Vec<(f64, [f64; 4])> = serde_json::from_str(&m.detections).unwrap_or_default();
        Self {
            at: m.created_at.into(),
            p: m.p,
            normalized_p: m.normalized_p,
            detections: parsed
                .into_iter()
                .map(|(confidence, b)| FailureDetection {
                    confidence,
                    bbox: b.to_vec(),
                })
                .collect(),
        }
    }
}

/// The agent's status, typed for what frontends read; `raw` is the agent's object verbatim. Every part of it carries the printer's id, so client caches merge a partial selection (a subscription's) into what a list query read instead of replacing it.
pub struct PrinterStatus {
    printer: i32,
    value: Value,
}

fn num(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
}

/// The client-cache identity of a part of printer `printer`: the printer's id (the part's type tells it apart: caches key by `__typename` and `id`).
fn part_id(printer: i32) -> ID {
    ID(printer.to_string())
}

/// The agent's status, typed for what frontends read; `raw` is the agent's object verbatim. Every part of it carries the printer's id, so client caches merge a partial selection (a subscription's) into what a list query read instead of replacing it.
#[Object]
impl PrinterStatus {
    /// The printer's id (a status is one per printer).
    async fn id(&self) -> ID {
        part_id(self.printer)
    }
    /// The state as the agent words it, and its flags (`Printer.state` is the typed state).
    async fn state(&self) -> Option<AgentState> {
        self.value.get("state").map(|s| AgentState {
            printer: self.printer,
            value: s.clone(),
        })
    }
    /// Progress of the current job.
    async fn progress(&self) -> Option<PrintProgress> {
        self.value.get("progress").map(|s| PrintProgress {
            printer: self.printer,
            value: s.clone(),
        })
    }
    /// The file being printed.
    async fn job(&self) -> Option<PrintJob> {
        self.value.get("job").map(|s| PrintJob {
            printer: self.printer,
            value: s.clone(),
        })
    }
    /// Heaters (tools, bed, chamber), ordered by name.
    async fn temperatures(&self) -> Vec<Heater> {
        let Some(map) = self.value.get("temperatures").and_then(Value::as_object) else {
            return Vec::new();
        };
        let mut heaters: Vec<Heater> = map
            .iter()
            .filter(|(_, v)| v.is_object())
            .map(|(name, v)| Heater {
                id: ID(format!("{}:{name}", self.printer)),
                name: name.clone(),
                actual: num(v.get("actual")),
                target: num(v.get("target")),
                offset: num(v.get("offset")),
            })
            .collect();
        heaters.sort_by(|a, b| a.name.cmp(&b.name));
        heaters
    }
    /// When the agent collected this status (its clock).
    async fn collected_at(&self) -> Option<DateTime> {
        let ts = num(self.value.get("_ts"))?;
        chrono::DateTime::from_timestamp_millis((ts * 1000.0) as i64).map(Into::into)
    }
    /// When the agent collected this status, in unix seconds.
    #[graphql(deprecation = "Use `collectedAt`, a DateTime like every other time.")]
    async fn ts(&self) -> Option<f64> {
        num(self.value.get("_ts"))
    }
    /// The agent's status object, verbatim.
    async fn raw(&self) -> Json<Value> {
        Json(self.value.clone())
    }
}

/// The printer's state as the agent words it.
pub struct AgentState {
    printer: i32,
    value: Value,
}

/// The printer's state as the agent words it.
#[Object]
impl AgentState {
    /// The printer's id.
    async fn id(&self) -> ID {
        part_id(self.printer)
    }
    /// The agent's words: "Operational", "Printing", "Paused", ...
    async fn text(&self) -> Option<&str> {
        self.value.get("text").and_then(Value::as_str)
    }
    /// An error text, if the printer reports one.
    async fn error(&self) -> Option<String> {
        match self.value.get("error") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        }
    }
    /// The state's flags.
    async fn flags(&self) -> StateFlags {
        StateFlags {
            printer: self.printer,
            value: self.value.get("flags").cloned().unwrap_or(Value::Null),
        }
    }
}

/// The state's boolean flags; a flag the agent does not send is false.
pub struct StateFlags {
    printer: i32,
    value: Value,
}

impl StateFlags {
    fn flag(&self, key: &str) -> bool {
        self.value
            .get(key)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// The state's boolean flags; a flag the agent does not send is false.
#[Object]
impl StateFlags {
    /// The printer's id.
    async fn id(&self) -> ID {
        part_id(self.printer)
    }
    /// Connected and able to print.
    async fn operational(&self) -> bool {
        self.flag("operational")
    }
    /// A print is running (false while paused).
    async fn printing(&self) -> bool {
        self.flag("printing")
    }
    /// The print is paused.
    async fn paused(&self) -> bool {
        self.flag("paused")
    }
    /// A pause was asked for and is under way.
    async fn pausing(&self) -> bool {
        self.flag("pausing")
    }
    /// A resume is under way.
    async fn resuming(&self) -> bool {
        self.flag("resuming")
    }
    /// A cancel is under way.
    async fn cancelling(&self) -> bool {
        self.flag("cancelling")
    }
    /// The print is finishing.
    async fn finishing(&self) -> bool {
        self.flag("finishing")
    }
    /// The printer reports an error.
    async fn error(&self) -> bool {
        self.flag("error")
    }
    /// Ready for a new job.
    async fn ready(&self) -> bool {
        self.flag("ready")
    }
    /// The printer's connection is closed or in error.
    async fn closed_or_error(&self) -> bool {
        self.flag("closedOrError")
    }
}

/// Progress of the current job.
pub struct PrintProgress {
    printer: i32,
    value: Value,
}

/// Progress of the current job.
#[Object]
impl PrintProgress {
    /// The printer's id.
    async fn id(&self) -> ID {
        part_id(self.printer)
    }
    /// Percent done, 0 to 100.
    async fn completion(&self) -> Option<f64> {
        num(self.value.get("completion"))
    }
    /// Seconds printed so far.
    async fn print_time(&self) -> Option<f64> {
        num(self.value.get("printTime"))
    }
    /// Seconds left, as the agent estimates.
    async fn print_time_left(&self) -> Option<f64> {
        num(self.value.get("printTimeLeft"))
    }
    /// Byte position in the file.
    async fn filepos(&self) -> Option<f64> {
        num(self.value.get("filepos"))
    }
}

/// The job the printer is running.
pub struct PrintJob {
    printer: i32,
    value: Value,
}

/// The job the printer is running.
#[Object]
impl PrintJob {
    /// The printer's id.
    async fn id(&self) -> ID {
        part_id(self.printer)
    }
    /// The file's name (as `Print.filename`).
    async fn filename(&self) -> Option<&str> {
        self.value.pointer("/file/name").and_then(Value::as_str)
    }
    /// The file's name.
    #[graphql(deprecation = "Use `filename`, as on `Print`.")]
    async fn file_name(&self) -> Option<&str> {
        self.value.pointer("/file/name").and_then(Value::as_str)
    }
    /// The file's size in bytes.
    async fn file_size(&self) -> Option<f64> {
        num(self.value.pointer("/file/size"))
    }
    /// Seconds the slicer estimated.
    async fn estimated_print_time(&self) -> Option<f64> {
        num(self.value.get("estimatedPrintTime"))
    }
}

/// One heater's temperatures, in °C.
#[derive(SimpleObject)]
pub struct Heater {
    /// The printer's id and the heater's name, as `7:tool0`.
    pub id: ID,
    /// `tool0`, `bed`, `chamber`, ...
    pub name: String,
    /// The temperature now.
    pub actual: Option<f64>,
    /// The temperature asked for (0: off).
    pub target: Option<f64>,
    /// The offset the printer applies to the target.
    pub offset: Option<f64>,
}

/// A temperature preset of the agent's (OctoPrint's "ABS", "PLA", ...), in °C.
#[derive(SimpleObject)]
pub struct TemperatureProfile {
    /// The preset's name.
    pub name: String,
    /// The tools' target.
    pub extruder: Option<f64>,
    /// The bed's target.
    pub bed: Option<f64>,
    /// The chamber's target.
    pub chamber: Option<f64>,
}

/// Webcam and agent settings, derived from what the agent sent.
pub struct PrinterSettings {
    printer: i32,
    map: serde_json::Map<String, Value>,
}

impl PrinterSettings {
    fn flag(&self, key: &str) -> bool {
        self.map.get(key).and_then(Value::as_bool).unwrap_or(false)
    }
}

/// Webcam and agent settings, derived from what the agent sent.
#[Object]
impl PrinterSettings {
    /// The printer's id.
    async fn id(&self) -> ID {
        part_id(self.printer)
    }
    /// The webcam picture is flipped vertically.
    #[graphql(name = "webcamFlipV")]
    async fn webcam_flip_v(&self) -> bool {
        self.flag("webcam_flipV")
    }
    /// The webcam picture is flipped horizontally.
    #[graphql(name = "webcamFlipH")]
    async fn webcam_flip_h(&self) -> bool {
        self.flag("webcam_flipH")
    }
    /// True when the rotation is 270.
    async fn webcam_rotate90(&self) -> bool {
        self.flag("webcam_rotate90")
    }
    /// 0, 90, 180 or 270.
    async fn webcam_rotation(&self) -> i32 {
        self.map
            .get("webcam_rotation")
            .and_then(Value::as_i64)
            .and_then(|r| i32::try_from(r).ok())
            .unwrap_or(0)
    }
    /// "16:9" or "4:3".
    async fn webcam_stream_ratio(&self) -> &str {
        self.map
            .get("webcam_streamRatio")
            .and_then(Value::as_str)
            .unwrap_or("16:9")
    }
    /// True when the stream ratio is 16:9.
    async fn ratio169(&self) -> bool {
        self.flag("ratio169")
    }
    /// The agent's temperature presets (empty when it sent none).
    async fn temperature_profiles(&self) -> Vec<TemperatureProfile> {
        let Some(list) = self.map.get("temp_profiles").and_then(Value::as_array) else {
            return Vec::new();
        };
        list.iter()
            .filter_map(|p| {
                Some(TemperatureProfile {
                    name: p.get("name")?.as_str()?.to_owned(),
                    extruder: num(p.get("extruder")),
                    bed: num(p.get("bed")),
                    chamber: num(p.get("chamber")),
                })
            })
            .collect()
    }
    /// The agent's temperature presets, as it sent them.
    #[graphql(deprecation = "Use `temperatureProfiles`, typed.")]
    async fn temp_profiles(&self) -> Option<Json<Value>> {
        self.map.get("temp_profiles").cloned().map(Json)
    }
    /// The whole settings object, with the snake_case keys of the REST API.
    async fn raw(&self) -> Json<Value> {
        Json(Value::Object(self.map.clone()))
    }
}

/// What an action did.
pub struct PrinterActionResult(pub service::ActionOutcome);

/// What an action did.
#[Object]
impl PrinterActionResult {
    /// For cancel/pause/resume: true only when the command was written to the printer's live agent connection. For mute and acknowledge: true when there is a current print.
    async fn succeeded(&self) -> bool {
        self.0.succeeded
    }
    /// The printer after the action.
    async fn printer(&self) -> Printer {
        Printer(self.0.printer.clone())
    }
}
