//! Which printers are online: a printer is online while its agent is
//! connected to a live instance. Each instance writes its id into the
//! printers its agents connect to (`agent_instance`) and a heartbeat into
//! `instances`; a printer held by an instance whose heartbeat stopped (it
//! crashed, or was killed) is shown offline by the sweep, and a single
//! instance on SQLite, having just started, holds no agent at all.

use chrono::{DateTime, Utc};
use entity::printer;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Value};

use super::{Service, now};
use crate::error::AppError;
use crate::events::EventKind;

/// An instance whose heartbeat is older than this is gone.
pub const INSTANCE_TTL_SECS: i64 = 30;

#[derive(sea_orm::DeriveIden)]
enum Instances {
    Table,
    Id,
    HeartbeatAt,
}

impl Service {
    /// Records that this instance is alive.
    pub async fn heartbeat(&self) -> Result<(), AppError> {
        let stmt = Query::insert()
            .into_table(Instances::Table)
            .columns([Instances::Id, Instances::HeartbeatAt])
            .values_panic([self.instance().into(), now().into()])
            .on_conflict(
                OnConflict::column(Instances::Id)
                    .update_column(Instances::HeartbeatAt)
                    .to_owned(),
            )
            .to_owned();
        self.db().execute(&stmt).await?;
        Ok(())
    }

    /// Shows offline every printer held by an instance that is gone (all
    /// of them but this one's when `alone`), and forgets dead instances.
    /// Returns how many printers went offline.
    pub async fn sweep_presence(&self, alone: bool) -> Result<usize, AppError> {
        let cutoff = now() - chrono::Duration::seconds(INSTANCE_TTL_SECS);
        let live: Vec<String> = if alone {
            vec![self.instance().to_owned()]
        } else {
            let rows = self
                .db()
                .query_all(
                    &Query::select()
                        .column(Instances::Id)
                        .from(Instances::Table)
                        .and_where(Expr::col(Instances::HeartbeatAt).gt(cutoff))
                        .to_owned(),
                )
                .await?;
            rows.iter()
                .filter_map(|r| r.try_get_by_index::<String>(0).ok())
                .collect()
        };
        let stale: Vec<printer::Model> = printer::Entity::find()
            .filter(printer::Column::AgentInstance.is_not_null())
            .filter(printer::Column::AgentInstance.is_not_in(live.clone()))
            .limit(10_000)
            .all(self.db())
            .await?;
        if !stale.is_empty() {
            printer::Entity::update_many()
                .col_expr(
                    printer::Column::Status,
                    Expr::value(None::<serde_json::Value>),
                )
                .col_expr(
                    printer::Column::StatusAt,
                    Expr::value(None::<DateTime<Utc>>),
                )
                .col_expr(
                    printer::Column::AgentInstance,
                    Expr::value(Value::String(None)),
                )
                .filter(printer::Column::Id.is_in(stale.iter().map(|p| p.id)))
                .filter(printer::Column::AgentInstance.is_not_in(live))
                .exec(self.db())
                .await?;
            for p in &stale {
                self.publish(p, EventKind::Connection);
            }
        }
        let forget = Query::delete()
            .from_table(Instances::Table)
            .and_where(Expr::col(Instances::HeartbeatAt).lt(now() - chrono::Duration::hours(1)))
            .to_owned();
        self.db().execute(&forget).await?;
        Ok(stale.len())
    }
}
