//! Watching prints for failures (detection.md §2 and §4): which snapshot
//! frames are judged, and what a judged frame changes: the printer's
//! prediction state (stored, so it survives restarts and any instance can
//! judge the next frame), the print's failure-score curve, `normalized_p`,
//! and the decisions (an alert, an automatic pause). The math is in
//! `prediction`; the ML service is reached through [`FrameJudge`], which
//! the detection worker implements over HTTP.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{print, print_prediction, printer, printer_prediction};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, JoinType, QueryFilter, QueryOrder, QuerySelect,
    RelationTrait, TransactionTrait,
};
use serde_json::Value;

use super::prediction::{Detection, State, Verdict};
use super::printer_events::{LogEntry, classes, types};
use super::{AgentCommand, Service, Viewer, now, rules};
use crate::error::AppError;
use crate::events::EventKind;

/// Obico's minimum time between two judged frames of a printer.
pub const MIN_DETECTION_INTERVAL: Duration = Duration::from_secs(10);
/// Obico's alert cooldown.
pub const ALERT_COOLDOWN: Duration = Duration::from_secs(90);
/// Most judged frames kept per print (a day of frames every 10 s); older
/// ones are trimmed.
pub const MAX_FRAMES_PER_PRINT: u64 = 10_000;

/// The detection settings.
#[derive(Debug, Clone, Copy)]
pub struct DetectionSettings {
    pub min_interval: Duration,
    pub alert_cooldown: Duration,
}

impl Default for DetectionSettings {
    fn default() -> Self {
        Self {
            min_interval: MIN_DETECTION_INTERVAL,
            alert_cooldown: ALERT_COOLDOWN,
        }
    }
}

/// Why a frame was not judged (§2), for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    NoPrint,
    ViewingBoost,
    NotWatching,
    NotPrinting,
    TooSoon,
    /// Another instance judged a frame of this printer meanwhile.
    Raced,
    /// A newer snapshot replaced the frame before the ML service fetched it.
    Replaced,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoPrint => "no_print",
            Self::ViewingBoost => "viewing_boost",
            Self::NotWatching => "not_watching",
            Self::NotPrinting => "not_printing",
            Self::TooSoon => "too_soon",
            Self::Raced => "raced",
            Self::Replaced => "replaced",
        }
    }
}

/// A frame §2 chose at its upload, as the upload saw the printer.
#[derive(Debug, Clone)]
pub struct Frame {
    pub printer: printer::Model,
    pub print: print::Model,
    /// When the snapshot to judge was taken (it names the image URL).
    pub taken_at: DateTime<Utc>,
}

/// A frame about to be judged: its printer's prediction state as read
/// just before the ML call (what the result will be folded into).
#[derive(Debug, Clone)]
pub struct Ticket {
    pub frame: Frame,
    pub state: State,
    /// The state row's version when read (none yet: `None`).
    version: Option<i64>,
}

/// What a judged frame did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged {
    pub normalized_p: f64,
    pub verdict: Verdict,
    /// Whether an alert was raised (not suppressed).
    pub alerted: bool,
    /// Whether the print was paused automatically (the command reached
    /// the agent or not: `paused_at` is set either way, once per print).
    pub paused: bool,
}

/// The ML service, as the service needs it.
#[async_trait::async_trait]
pub trait FrameJudge: Send + Sync + 'static {
    /// The detections in the image at `image_url`.
    async fn detect(&self, image_url: &str) -> Result<Vec<Detection>, String>;
}

fn state_of(row: &printer_prediction::Model) -> State {
    State {
        current_frame_num: u64::try_from(row.current_frame_num).unwrap_or(0),
        lifetime_frame_num: u64::try_from(row.lifetime_frame_num).unwrap_or(0),
        current_p: row.current_p,
        ewm_mean: row.ewm_mean,
        rolling_mean_short: row.rolling_mean_short,
        rolling_mean_long: row.rolling_mean_long,
        normalized_p: row.normalized_p,
    }
}

fn row_of(printer_id: i32, s: &State, version: i64) -> printer_prediction::ActiveModel {
    printer_prediction::ActiveModel {
        printer_id: Set(printer_id),
        current_frame_num: Set(i64::try_from(s.current_frame_num).unwrap_or(i64::MAX)),
        lifetime_frame_num: Set(i64::try_from(s.lifetime_frame_num).unwrap_or(i64::MAX)),
        current_p: Set(s.current_p),
        ewm_mean: Set(s.ewm_mean),
        rolling_mean_short: Set(s.rolling_mean_short),
        rolling_mean_long: Set(s.rolling_mean_long),
        normalized_p: Set(s.normalized_p),
        version: Set(version),
        updated_at: Set(now()),
    }
}

/// Whether `at` is less than `window` ago (a missing time is long ago).
fn within(at: Option<DateTime<Utc>>, window: Duration, now: DateTime<Utc>) -> bool {
    let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    at.is_some_and(|t| now - t < window)
}

impl Service {
    /// §2, steps 1 to 3: whether printer `p`'s latest snapshot (as
    /// `store_snapshot` returned it) is to be judged. What the printer row
    /// answers is checked first, so most skipped frames cost no read; the
    /// reason counted is the first of those that holds (the outcome is the
    /// spec's). Then the print and the owner, read together.
    pub async fn frame_to_judge(
        &self,
        p: printer::Model,
        viewing_boost: bool,
    ) -> Result<Result<Frame, Skip>, AppError> {
        let (Some(print_id), Some(taken_at)) = (p.current_print_id, p.pic_at) else {
            return Ok(Err(Skip::NoPrint));
        };
        if viewing_boost {
            return Ok(Err(Skip::ViewingBoost));
        }
        if !p.watching_enabled {
            return Ok(Err(Skip::NotWatching));
        }
        let printing = p
            .status
            .as_ref()
            .and_then(|s| s.pointer("/state/flags/printing"))
            .and_then(Value::as_bool)
            == Some(true);
        if !printing {
            return Ok(Err(Skip::NotPrinting));
        }
        let (print, owner) = tokio::try_join!(
            print::Entity::find_by_id(print_id).one(self.db()),
            entity::user::Entity::find_by_id(p.user_id).one(self.db()),
        )?;
        let Some(print) = print else {
            return Ok(Err(Skip::NoPrint));
        };
        let owner = owner.ok_or(AppError::NotFound)?;
        if !rules::should_watch(&p, &owner, Some(&print)) {
            return Ok(Err(Skip::NotWatching));
        }
        Ok(Ok(Frame {
            printer: p,
            print,
            taken_at,
        }))
    }

    /// §2, step 4, just before the ML call: the minimum interval since the
    /// printer's state was last written (by any instance), and the state
    /// the result will be folded into.
    pub async fn ticket(
        &self,
        frame: Frame,
        settings: DetectionSettings,
    ) -> Result<Result<Ticket, Skip>, AppError> {
        let row = printer_prediction::Entity::find_by_id(frame.printer.id)
            .one(self.db())
            .await?;
        if let Some(r) = &row
            && within(Some(r.updated_at), settings.min_interval, now())
        {
            return Ok(Err(Skip::TooSoon));
        }
        Ok(Ok(Ticket {
            state: row.as_ref().map(state_of).unwrap_or_default(),
            version: row.as_ref().map(|r| r.version),
            frame,
        }))
    }

    /// Whether a newer upload replaced the snapshot `frame` names (its
    /// signed link then finds nothing, and the ML service says so): a frame
    /// skipped, not an ML service failing.
    pub async fn snapshot_replaced(&self, frame: &Frame) -> Result<bool, AppError> {
        let taken_at: Option<DateTime<Utc>> =
            entity::snapshot::Entity::find_by_id(frame.printer.id)
                .select_only()
                .column(entity::snapshot::Column::TakenAt)
                .into_tuple()
                .one(self.db())
                .await?;
        Ok(taken_at.is_some_and(|t| t != frame.taken_at))
    }

    /// §3 and §4: folds the ML service's detections into the printer's
    /// state and acts on the verdict. The state is written only if no
    /// other instance wrote it since the ticket was read (else `Raced`).
    pub async fn apply_judgement(
        &self,
        ticket: Ticket,
        detections: &[Detection],
        settings: DetectionSettings,
    ) -> Result<Result<Judged, Skip>, AppError> {
        let p = &ticket.frame.printer;
        let (state, verdict) = ticket
            .state
            .judge(detections, p.detective_sensitivity, None);
        let next_version = ticket.version.map_or(0, |v| v + 1);
        // One transaction for the frame's writes: the state, the frame and
        // the score land together, and (on SQLite) a snapshot upload meets
        // one short write lock instead of three.
        let txn = self.db().begin().await?;
        let written = match ticket.version {
            None => {
                let res = printer_prediction::Entity::insert(row_of(p.id, &state, 0))
                    .on_conflict_do_nothing_on([printer_prediction::Column::PrinterId])
                    .exec_without_returning(&txn)
                    .await?;
                matches!(res, sea_orm::TryInsertResult::Inserted(n) if n > 0)
            }
            Some(v) => {
                let res = printer_prediction::Entity::update_many()
                    .set(row_of(p.id, &state, next_version))
                    .filter(printer_prediction::Column::PrinterId.eq(p.id))
                    .filter(printer_prediction::Column::Version.eq(v))
                    .exec(&txn)
                    .await?;
                res.rows_affected > 0
            }
        };
        if !written {
            // Dropping the transaction rolls it back: nothing written.
            return Ok(Err(Skip::Raced));
        }
        let frame = print_prediction::ActiveModel {
            print_id: Set(ticket.frame.print.id),
            p: Set(state.current_p),
            normalized_p: Set(state.normalized_p),
            detections: Set(detections_text(detections)),
            created_at: Set(now()),
            ..Default::default()
        };
        let frame_id = print_prediction::Entity::insert(frame)
            .exec(&txn)
            .await?
            .last_insert_id;
        let trim = i64::from(frame_id) % 100 == 0;
        printer::Entity::update_many()
            .col_expr(
                printer::Column::NormalizedP,
                Expr::value(state.normalized_p),
            )
            .filter(printer::Column::Id.eq(p.id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        if trim {
            self.trim_frames(ticket.frame.print.id).await?;
        }
        let (alerted, paused) = self.decide(&ticket, verdict, settings).await?;
        self.publish(
            p,
            if alerted || paused {
                EventKind::Action
            } else {
                EventKind::AgentStatus
            },
        );
        Ok(Ok(Judged {
            normalized_p: state.normalized_p,
            verdict,
            alerted,
            paused,
        }))
    }

    /// §4: alerts (with the cooldown, suppressed while unacknowledged) and
    /// the automatic pause (once per print). Returns (alerted, paused).
    async fn decide(
        &self,
        ticket: &Ticket,
        verdict: Verdict,
        settings: DetectionSettings,
    ) -> Result<(bool, bool), AppError> {
        if verdict == Verdict::Fine {
            return Ok((false, false));
        }
        let t = now();
        // Read again: an acknowledgement may have landed meanwhile.
        let Some(print) = print::Entity::find_by_id(ticket.frame.print.id)
            .one(self.db())
            .await?
        else {
            return Ok((false, false));
        };
        let unacknowledged = rules::alert_unanswered(&print);
        let suppressed = within(print.alerted_at, settings.alert_cooldown, t) || unacknowledged;
        let p = &ticket.frame.printer;
        let pause_wanted = verdict == Verdict::Pause
            && p.action_on_failure == rules::ActionOnFailure::Pause.as_str()
            && print.paused_at.is_none();
        if pause_wanted {
            if within(print.alert_acknowledged_at, settings.alert_cooldown, t) {
                // The user just said it is fine: leave it running.
                return Ok((false, false));
            }
            // Once per print, whoever wins: the column is set only if null.
            let res = print::Entity::update_many()
                .col_expr(print::Column::PausedAt, Expr::value(t))
                .col_expr(print::Column::AlertedAt, Expr::value(t))
                .filter(print::Column::Id.eq(print.id))
                .filter(print::Column::PausedAt.is_null())
                .exec(self.db())
                .await?;
            if res.rows_affected == 0 {
                return Ok((false, false));
            }
            let delivered = self
                .commands
                .deliver(
                    p.id,
                    &AgentCommand {
                        cmd: "pause",
                        args: rules::pause_args(p),
                        initiator: "system",
                    },
                )
                .await;
            tracing::warn!(
                printer_id = p.id,
                print_id = print.id,
                delivered,
                "failure detected: print paused"
            );
            crate::metrics::metrics().detection.auto_pause();
            self.log_event(
                p,
                Some(print.id),
                LogEntry::of(types::FAILURE_ALERTED)
                    .with_text("A possible failure was detected; the print was paused.")
                    .paused(true),
            )
            .await?;
            return Ok((true, true));
        }
        if suppressed {
            return Ok((false, false));
        }
        let res = print::Entity::update_many()
            .col_expr(print::Column::AlertedAt, Expr::value(t))
            .filter(print::Column::Id.eq(print.id))
            .exec(self.db())
            .await?;
        if res.rows_affected > 0 {
            tracing::warn!(
                printer_id = p.id,
                print_id = print.id,
                "failure detected: alert"
            );
            crate::metrics::metrics().detection.alert();
            // A warning (alert only) or, with NONE or once paused, a
            // failure the print goes on through.
            let (class, text) = if verdict == Verdict::Pause {
                (
                    classes::ERROR,
                    "A possible failure was detected; the print was not paused.",
                )
            } else {
                (
                    classes::WARNING,
                    "A possible failure was detected; the print was not paused.",
                )
            };
            self.log_event(
                p,
                Some(print.id),
                LogEntry::of(types::FAILURE_ALERTED)
                    .with(class, "Possible Failure Detected")
                    .with_text(text)
                    .paused(false),
            )
            .await?;
        }
        Ok((res.rows_affected > 0, false))
    }

    /// Keeps a print's newest [`MAX_FRAMES_PER_PRINT`] judged frames.
    async fn trim_frames(&self, print_id: i32) -> Result<(), AppError> {
        let oldest_kept: Option<i32> = print_prediction::Entity::find()
            .select_only()
            .column(print_prediction::Column::Id)
            .filter(print_prediction::Column::PrintId.eq(print_id))
            .order_by_desc(print_prediction::Column::Id)
            .offset(MAX_FRAMES_PER_PRINT - 1)
            .limit(1)
            .into_tuple()
            .one(self.db())
            .await?;
        if let Some(id) = oldest_kept {
            print_prediction::Entity::delete_many()
                .filter(print_prediction::Column::PrintId.eq(print_id))
                .filter(print_prediction::Column::Id.lt(id))
                .exec(self.db())
                .await?;
        }
        Ok(())
    }

    /// At a print's start or end: this print's numbers go to 0 (the reset
    /// counts as a write for the minimum interval); the lifetime ones stay.
    pub(super) async fn reset_prediction(&self, printer_id: i32) -> Result<(), AppError> {
        let row = printer_prediction::Entity::find_by_id(printer_id)
            .one(self.db())
            .await?;
        let (state, version) = match &row {
            Some(r) => (state_of(r).reset_for_print(), r.version + 1),
            None => (State::default(), 0),
        };
        printer_prediction::Entity::insert(row_of(printer_id, &state, version))
            .on_conflict(
                OnConflict::column(printer_prediction::Column::PrinterId)
                    .update_columns([
                        printer_prediction::Column::CurrentFrameNum,
                        printer_prediction::Column::CurrentP,
                        printer_prediction::Column::EwmMean,
                        printer_prediction::Column::RollingMeanShort,
                        printer_prediction::Column::NormalizedP,
                        printer_prediction::Column::Version,
                        printer_prediction::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(self.db())
            .await?;
        Ok(())
    }

    /// The judged frames of one of the viewer's prints, oldest first
    /// (none for another user's print).
    pub async fn print_frames(
        &self,
        viewer: &Viewer,
        print_id: i32,
    ) -> Result<Vec<print_prediction::Model>, AppError> {
        let mine = print::Entity::find_by_id(print_id)
            .join(JoinType::InnerJoin, print::Relation::Printer.def())
            .filter(printer::Column::UserId.eq(viewer.id()))
            .one(self.db())
            .await?
            .is_some();
        if !mine {
            return Ok(Vec::new());
        }
        Ok(print_prediction::Entity::find()
            .filter(print_prediction::Column::PrintId.eq(print_id))
            .order_by_asc(print_prediction::Column::Id)
            .all(self.db())
            .await?)
    }
}

/// The detections as stored: `[[confidence, [xc, yc, w, h]], ...]`.
fn detections_text(detections: &[Detection]) -> String {
    let list: Vec<Value> = detections
        .iter()
        .map(|d| serde_json::json!([d.confidence, d.bbox]))
        .collect();
    Value::Array(list).to_string()
}
