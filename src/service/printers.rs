//! Reading and changing a viewer's printers, and the print actions.

use std::collections::HashMap;

use entity::{print, printer};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::{NotSet, Set},
    ColumnTrait, EntityTrait, JoinType, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    RelationTrait, TransactionTrait,
    sea_query::Expr,
};

use super::printer_events::{LogEntry, types};
use super::rules::{self, ActionOnFailure, AlertOverwrite, defaults};
use super::{AgentCommand, Service, Viewer, bump_version, now};
use crate::error::{AppError, Checks};
use crate::events::{Event, EventKind};

/// A new printer: the name is required, every other writable field optional.
#[derive(Debug, Clone, Default)]
pub struct NewPrinter {
    pub name: String,
    pub patch: PrinterPatch,
}

/// The writable fields of a printer; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct PrinterPatch {
    pub name: Option<String>,
    pub action_on_failure: Option<ActionOnFailure>,
    pub watching_enabled: Option<bool>,
    pub tools_off_on_pause: Option<bool>,
    pub bed_off_on_pause: Option<bool>,
    pub retract_on_pause: Option<f64>,
    pub lift_z_on_pause: Option<f64>,
    pub detective_sensitivity: Option<f64>,
    pub min_timelapse_secs_on_finish: Option<i32>,
    pub min_timelapse_secs_on_cancel: Option<i32>,
    /// Fields the client set to null, which none of these may be (kept so
    /// they are reported with every other invalid field).
    pub nulls: Vec<&'static str>,
}

impl PrinterPatch {
    /// Checks every given field and turns the patch into an active model
    /// that sets only those fields. Nothing is written when any is invalid.
    fn validate(self) -> Result<printer::ActiveModel, AppError> {
        fn set<T: Into<sea_orm::Value>>(v: Option<T>) -> sea_orm::ActiveValue<T> {
            v.map_or(NotSet, Set)
        }
        // Every field is checked, so all that are wrong are reported.
        let mut c = Checks::default();
        for field in &self.nulls {
            c.refuse(field, "This field may not be null.");
        }
        let name = c.optional(self.name.as_deref(), rules::valid_name);
        let retract = c.optional(self.retract_on_pause, |v| {
            rules::valid_mm("retract_on_pause", v)
        });
        let lift = c.optional(self.lift_z_on_pause, |v| {
            rules::valid_mm("lift_z_on_pause", v)
        });
        let sensitivity = c.optional(self.detective_sensitivity, rules::valid_sensitivity);
        let on_finish = c.optional(self.min_timelapse_secs_on_finish, |v| {
            rules::valid_timelapse_secs("min_timelapse_secs_on_finish", v)
        });
        let on_cancel = c.optional(self.min_timelapse_secs_on_cancel, |v| {
            rules::valid_timelapse_secs("min_timelapse_secs_on_cancel", v)
        });
        c.finish()?;
        Ok(printer::ActiveModel {
            name: set(name),
            action_on_failure: set(self.action_on_failure.map(|a| a.as_str().to_owned())),
            watching_enabled: set(self.watching_enabled),
            tools_off_on_pause: set(self.tools_off_on_pause),
            bed_off_on_pause: set(self.bed_off_on_pause),
            retract_on_pause: set(retract),
            lift_z_on_pause: set(lift),
            detective_sensitivity: set(sensitivity),
            min_timelapse_secs_on_finish: set(on_finish),
            min_timelapse_secs_on_cancel: set(on_cancel),
            ..Default::default()
        })
    }
}

/// An action on a printer's current print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrinterAction {
    Cancel,
    Pause,
    Resume,
    /// Mute (true) or unmute (false) alerts for the current print.
    Mute(bool),
    /// Acknowledge the current alert, optionally with a verdict.
    AcknowledgeAlert(Option<AlertOverwrite>),
}

/// What an action did: whether it succeeded, and the printer afterwards.
#[derive(Debug, Clone)]
pub struct ActionOutcome {
    pub succeeded: bool,
    pub printer: printer::Model,
}

impl Service {
    /// The viewer's printers, ordered by id; archived ones only when asked.
    pub async fn printers(
        &self,
        viewer: &Viewer,
        with_archived: bool,
    ) -> Result<Vec<printer::Model>, AppError> {
        let mut q = printer::Entity::find()
            .filter(printer::Column::UserId.eq(viewer.id()))
            .filter(printer::Column::DeletedAt.is_null());
        if !with_archived {
            q = q.filter(printer::Column::ArchivedAt.is_null());
        }
        Ok(q.order_by_asc(printer::Column::Id).all(self.db()).await?)
    }

    /// One of the viewer's printers (archived ones included), or none when
    /// it is missing, deleted or someone else's.
    pub async fn printer(
        &self,
        viewer: &Viewer,
        id: i32,
    ) -> Result<Option<printer::Model>, AppError> {
        Ok(printer::Entity::find_by_id(id)
            .filter(printer::Column::UserId.eq(viewer.id()))
            .filter(printer::Column::DeletedAt.is_null())
            .one(self.db())
            .await?)
    }

    async fn existing_printer(&self, viewer: &Viewer, id: i32) -> Result<printer::Model, AppError> {
        self.printer(viewer, id).await?.ok_or(AppError::NotFound)
    }

    /// The viewer's prints with the given ids (a DataLoader batch).
    pub async fn prints_by_id(
        &self,
        viewer: &Viewer,
        ids: &[i32],
    ) -> Result<HashMap<i32, print::Model>, AppError> {
        let rows = print::Entity::find()
            .join(JoinType::InnerJoin, print::Relation::Printer.def())
            .filter(print::Column::Id.is_in(ids.iter().copied()))
            .filter(printer::Column::UserId.eq(viewer.id()))
            .all(self.db())
            .await?;
        Ok(rows.into_iter().map(|p| (p.id, p)).collect())
    }

    /// Creates a printer with a fresh agent token.
    pub async fn create_printer(
        &self,
        viewer: &Viewer,
        new: NewPrinter,
    ) -> Result<printer::Model, AppError> {
        let mut c = Checks::default();
        let name = c.check(rules::valid_name(&new.name));
        let row = c.check(new.patch.validate());
        c.finish()?;
        let (Some(name), Some(mut row)) = (name, row) else {
            return Err(AppError::internal("checked input vanished"));
        };
        row.name = Set(name);
        row.user_id = Set(viewer.id());
        row.created_at = Set(now());
        row.auth_token = Set(rules::new_auth_token());
        row.normalized_p = Set(0.0);
        fill_default(
            &mut row.action_on_failure,
            ActionOnFailure::Pause.as_str().to_owned(),
        );
        fill_default(&mut row.watching_enabled, defaults::WATCHING_ENABLED);
        fill_default(&mut row.tools_off_on_pause, defaults::TOOLS_OFF_ON_PAUSE);
        fill_default(&mut row.bed_off_on_pause, defaults::BED_OFF_ON_PAUSE);
        fill_default(&mut row.retract_on_pause, defaults::RETRACT_ON_PAUSE);
        fill_default(&mut row.lift_z_on_pause, defaults::LIFT_Z_ON_PAUSE);
        fill_default(
            &mut row.detective_sensitivity,
            defaults::DETECTIVE_SENSITIVITY,
        );
        fill_default(
            &mut row.min_timelapse_secs_on_finish,
            defaults::MIN_TIMELAPSE_SECS_ON_FINISH,
        );
        fill_default(
            &mut row.min_timelapse_secs_on_cancel,
            defaults::MIN_TIMELAPSE_SECS_ON_CANCEL,
        );
        let txn = self.db().begin().await?;
        // First, so the user's row lock orders concurrent creations and the
        // count below cannot be passed by two of them at once.
        bump_version(&txn, viewer.id()).await?;
        let limit = self.limits.max_printers_per_user;
        let owned = printer::Entity::find()
            .filter(printer::Column::UserId.eq(viewer.id()))
            .filter(printer::Column::DeletedAt.is_null())
            .count(&txn)
            .await?;
        if owned >= limit {
            // Dropping the transaction rolls the bump back: nothing written.
            return Err(AppError::LimitReached {
                code: crate::error::code::PRINTER_LIMIT_REACHED,
                message: format!(
                    "You have reached the limit of {limit} printers; delete one to add another."
                ),
                limit,
            });
        }
        let created = printer::Entity::insert(row)
            .exec_with_returning(&txn)
            .await?;
        let hook = serde_json::json!({"printer": super::webhooks::printer_data(&created)});
        let queued = self
            .enqueue(
                &txn,
                viewer.id(),
                super::webhooks::types::PRINTER_CREATED,
                hook,
                None,
            )
            .await?;
        txn.commit().await?;
        if queued.is_some() {
            self.wake_webhooks();
        }
        self.publish(&created, EventKind::Created);
        Ok(created)
    }

    /// Writes only the given fields, in one statement, so concurrent updates
    /// of different fields both survive. An empty patch changes nothing.
    pub async fn update_printer(
        &self,
        viewer: &Viewer,
        id: i32,
        patch: PrinterPatch,
    ) -> Result<printer::Model, AppError> {
        let watching_changed = patch.watching_enabled.is_some();
        let row = patch.validate()?;
        let row_changed = row.is_changed();
        if row_changed {
            let txn = self.db().begin().await?;
            let res = printer::Entity::update_many()
                .set(row)
                .filter(printer::Column::Id.eq(id))
                .filter(printer::Column::UserId.eq(viewer.id()))
                .filter(printer::Column::DeletedAt.is_null())
                .exec(&txn)
                .await?;
            if res.rows_affected == 0 {
                return Err(AppError::NotFound);
            }
            bump_version(&txn, viewer.id()).await?;
            txn.commit().await?;
        }
        let updated = self.existing_printer(viewer, id).await?;
        if row_changed {
            self.publish(&updated, EventKind::Updated);
        }
        if watching_changed {
            self.tell_should_watch(viewer, &updated).await?;
        }
        Ok(updated)
    }

    /// Soft-deletes a printer: it is gone from every read, its token stops
    /// working, and its prints keep their history.
    pub async fn delete_printer(&self, viewer: &Viewer, id: i32) -> Result<(), AppError> {
        let txn = self.db().begin().await?;
        let Some(deleted) = printer::Entity::update_many()
            .col_expr(printer::Column::DeletedAt, Expr::value(now()))
            .filter(printer::Column::Id.eq(id))
            .filter(printer::Column::UserId.eq(viewer.id()))
            .filter(printer::Column::DeletedAt.is_null())
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .next()
        else {
            return Err(AppError::NotFound);
        };
        bump_version(&txn, viewer.id()).await?;
        let hook = serde_json::json!({"printer": super::webhooks::printer_data(&deleted)});
        let queued = self
            .enqueue(
                &txn,
                viewer.id(),
                super::webhooks::types::PRINTER_DELETED,
                hook,
                None,
            )
            .await?;
        txn.commit().await?;
        if queued.is_some() {
            self.wake_webhooks();
        }
        self.events.publish(Event {
            printer_id: id,
            user_id: viewer.id(),
            kind: EventKind::Deleted,
            seq: 0,
        });
        self.commands.disconnect(id).await;
        Ok(())
    }

    /// A new agent token for one of the viewer's printers; the old token's
    /// live connection is closed (the hub refuses it from now on, as the
    /// token no longer names the printer).
    pub async fn regenerate_printer_token(
        &self,
        viewer: &Viewer,
        id: i32,
    ) -> Result<printer::Model, AppError> {
        let txn = self.db().begin().await?;
        bump_version(&txn, viewer.id()).await?;
        let updated = printer::Entity::update_many()
            .col_expr(
                printer::Column::AuthToken,
                Expr::value(rules::new_auth_token()),
            )
            .filter(printer::Column::Id.eq(id))
            .filter(printer::Column::UserId.eq(viewer.id()))
            .filter(printer::Column::DeletedAt.is_null())
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .next()
            .ok_or(AppError::NotFound)?;
        txn.commit().await?;
        self.publish(&updated, EventKind::Updated);
        self.commands.disconnect(id).await;
        Ok(updated)
    }

    /// Archives (keeping the first archive time) or unarchives a printer.
    pub async fn set_archived(
        &self,
        viewer: &Viewer,
        id: i32,
        archived: bool,
    ) -> Result<printer::Model, AppError> {
        let mut q = printer::Entity::update_many()
            .filter(printer::Column::Id.eq(id))
            .filter(printer::Column::UserId.eq(viewer.id()))
            .filter(printer::Column::DeletedAt.is_null());
        q = if archived {
            q.col_expr(printer::Column::ArchivedAt, Expr::value(now()))
                .filter(printer::Column::ArchivedAt.is_null())
        } else {
            q.col_expr(
                printer::Column::ArchivedAt,
                Expr::value(None::<chrono::DateTime<chrono::Utc>>),
            )
        };
        let txn = self.db().begin().await?;
        let res = q.exec(&txn).await?;
        if res.rows_affected > 0 {
            bump_version(&txn, viewer.id()).await?;
        }
        txn.commit().await?;
        let printer = self.existing_printer(viewer, id).await?;
        if res.rows_affected > 0 {
            let kind = if archived {
                EventKind::Archived
            } else {
                EventKind::Updated
            };
            self.publish(&printer, kind);
            if archived {
                // An archived printer's token no longer connects.
                self.commands.disconnect(id).await;
            }
        }
        Ok(printer)
    }

    /// Runs an action on the printer's current print. With no current print
    /// nothing changes and the action answers `succeeded: false`.
    pub async fn act(
        &self,
        viewer: &Viewer,
        id: i32,
        action: PrinterAction,
    ) -> Result<ActionOutcome, AppError> {
        let printer = self.existing_printer(viewer, id).await?;
        let current = self.current_print(&printer).await?;
        let Some(current) = current else {
            return Ok(ActionOutcome {
                succeeded: false,
                printer,
            });
        };
        // A command is delivered first: the verdict it implies (cancel: the
        // alert was right; resume: it was not) is recorded only once the
        // agent has the command, so a refused action writes nothing.
        let succeeded = match action {
            PrinterAction::Cancel => {
                let delivered = self.send(&printer, "cancel", serde_json::json!({})).await;
                if delivered {
                    self.acknowledge(viewer, &current, Some(AlertOverwrite::Failed))
                        .await?;
                }
                delivered
            }
            PrinterAction::Pause => {
                self.send(&printer, "pause", rules::pause_args(&printer))
                    .await
            }
            PrinterAction::Resume => {
                let delivered = self.send(&printer, "resume", serde_json::json!({})).await;
                if delivered {
                    self.acknowledge(viewer, &current, Some(AlertOverwrite::NotFailed))
                        .await?;
                }
                delivered
            }
            PrinterAction::Mute(mute) => {
                let muted_at = mute.then(now);
                let txn = self.db().begin().await?;
                print::Entity::update_many()
                    .col_expr(print::Column::AlertMutedAt, Expr::value(muted_at))
                    .filter(print::Column::Id.eq(current.id))
                    .exec(&txn)
                    .await?;
                bump_version(&txn, viewer.id()).await?;
                txn.commit().await?;
                let ty = if mute {
                    types::ALERT_MUTED
                } else {
                    types::ALERT_UNMUTED
                };
                self.log_event(&printer, Some(current.id), LogEntry::of(ty))
                    .await?;
                let muted = print::Model {
                    alert_muted_at: muted_at,
                    ..current
                };
                let watch = rules::should_watch(&printer, &viewer.user, Some(&muted));
                self.commands.should_watch_changed(printer.id, watch).await;
                true
            }
            PrinterAction::AcknowledgeAlert(verdict) => {
                self.acknowledge(viewer, &current, verdict).await?;
                true
            }
        };
        self.publish(&printer, EventKind::Action);
        Ok(ActionOutcome { succeeded, printer })
    }

    /// Acknowledges a raised alert on `print` (no-op when none was raised);
    /// the verdict is stored when given.
    async fn acknowledge(
        &self,
        viewer: &Viewer,
        print: &print::Model,
        verdict: Option<AlertOverwrite>,
    ) -> Result<(), AppError> {
        if print.alerted_at.is_none() {
            return Ok(());
        }
        let mut q = print::Entity::update_many()
            .col_expr(print::Column::AlertAcknowledgedAt, Expr::value(now()))
            .filter(print::Column::Id.eq(print.id));
        if let Some(v) = verdict {
            q = q.col_expr(print::Column::AlertOverwrite, Expr::value(v.as_str()));
        }
        let txn = self.db().begin().await?;
        q.exec(&txn).await?;
        bump_version(&txn, viewer.id()).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn send(
        &self,
        printer: &printer::Model,
        cmd: &'static str,
        args: serde_json::Value,
    ) -> bool {
        self.commands
            .deliver(
                printer.id,
                &AgentCommand {
                    cmd,
                    args,
                    initiator: "api",
                },
            )
            .await
    }

    async fn tell_should_watch(
        &self,
        viewer: &Viewer,
        printer: &printer::Model,
    ) -> Result<(), AppError> {
        let current = self.current_print(printer).await?;
        let watch = rules::should_watch(printer, &viewer.user, current.as_ref());
        self.commands.should_watch_changed(printer.id, watch).await;
        Ok(())
    }
}

/// Sets an unset field of a new row to its default.
fn fill_default<T: Into<sea_orm::Value>>(field: &mut sea_orm::ActiveValue<T>, default: T) {
    if matches!(field, NotSet) {
        *field = Set(default);
    }
}
