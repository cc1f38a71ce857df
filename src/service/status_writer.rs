//! Coalesced status writes: an agent's plain status (no print lifecycle,
//! no settings, no event: nearly every frame a live farm sends) is not
//! written by the agent's own session but handed here. One writer per
//! instance writes whatever is waiting in one statement (per [`BATCH`]),
//! the newest status of each printer only, and publishes each printer it wrote with
//! the row the write returned, so subscribers read nothing. An agent's
//! frame therefore never waits for another agent's write (on SQLite, for
//! the single write lock and its busy sleeps), and a burst of frames costs
//! one commit instead of one each.
//!
//! Order: one printer's statuses are written in the order they arrived
//! (a newer one replaces a waiting older one; batches are written one
//! after another), late ones (an older `_ts`) never win, as on the full
//! path, and the full path settles a printer's waiting status first.
//! Bound: one waiting entry per printer with a live agent session here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use entity::printer;
use std::fmt::Write as _;

use sea_orm::{DbBackend, EntityTrait, Statement};
use serde_json::Value;
use tokio::sync::{Notify, watch};

use super::Service;
use crate::error::AppError;
use crate::events::EventKind;

/// Most statuses written in one statement (a bigger backlog takes
/// several, one after another; SQLite binds at most 32,766 values).
const BATCH: usize = 500;

/// A status waiting to be written.
#[derive(Debug, Clone)]
struct Waiting {
    status: Value,
    ts: Option<f64>,
    at: DateTime<Utc>,
}

#[derive(Default)]
struct Queue {
    waiting: HashMap<i32, Waiting>,
    /// The number of the batch `waiting` will be written as.
    batch: u64,
}

/// The instance's status writer (shared by every clone of the service).
pub struct StatusWriter {
    queue: Mutex<Queue>,
    wake: Notify,
    /// The last batch written (or given up on).
    written: watch::Sender<u64>,
    started: OnceLock<()>,
}

impl Default for StatusWriter {
    fn default() -> Self {
        Self {
            queue: Mutex::new(Queue {
                waiting: HashMap::new(),
                batch: 1,
            }),
            wake: Notify::new(),
            written: watch::channel(0).0,
            started: OnceLock::new(),
        }
    }
}

impl StatusWriter {
    /// Waits until what is waiting or being written for `printer_id` is
    /// written; with `discard`, a waiting status is dropped instead (the
    /// caller is about to clear it).
    async fn settle(&self, printer_id: i32, discard: bool) {
        let target = {
            let Ok(mut q) = self.queue.lock() else {
                return;
            };
            let waiting = if discard {
                q.waiting.remove(&printer_id);
                false
            } else {
                q.waiting.contains_key(&printer_id)
            };
            // The batch being written (if any) is the one before.
            if waiting { q.batch } else { q.batch - 1 }
        };
        let mut rx = self.written.subscribe();
        let _ = rx.wait_for(|w| *w >= target).await;
    }
}

impl Service {
    /// Hands a plain status of printer `printer_id` to the writer.
    pub(super) fn queue_status(&self, printer_id: i32, status: Value, ts: Option<f64>) {
        let w = &self.status_writer;
        if let Ok(mut q) = w.queue.lock() {
            let late = matches!(
                (ts, q.waiting.get(&printer_id).and_then(|w| w.ts)),
                (Some(new), Some(old)) if new < old
            );
            // A late status loses to the newer one waiting, as it would to
            // the stored one.
            if !late {
                q.waiting.insert(
                    printer_id,
                    Waiting {
                        status,
                        ts,
                        at: super::now(),
                    },
                );
            }
        }
        if w.started.set(()).is_ok() {
            let service = self.clone();
            tokio::spawn(async move { service.write_statuses().await });
        }
        w.wake.notify_one();
    }

    /// Before a write of `printer_id`'s own (the full status path, the
    /// agent going away): its waiting status is written (or, with
    /// `discard`, dropped) and no batch holding it is still in flight.
    pub(super) async fn settle_status(&self, printer_id: i32, discard: bool) {
        self.status_writer.settle(printer_id, discard).await;
    }

    /// The writer: every batch in turn, for as long as the service lives.
    async fn write_statuses(&self) {
        let w = self.status_writer.clone();
        loop {
            w.wake.notified().await;
            loop {
                let (batch, no) = {
                    let Ok(mut q) = w.queue.lock() else {
                        return;
                    };
                    if q.waiting.is_empty() {
                        break;
                    }
                    let no = q.batch;
                    q.batch += 1;
                    (std::mem::take(&mut q.waiting), no)
                };
                let mut rows: Vec<(i32, Waiting)> = batch.into_iter().collect();
                rows.sort_unstable_by_key(|(id, _)| *id);
                for chunk in rows.chunks(BATCH) {
                    match self.write_batch(chunk).await {
                        Ok(written) => {
                            for p in written {
                                self.publish_row(p, EventKind::AgentStatus);
                            }
                        }
                        // The database is failing: these statuses are lost
                        // (the agents' next ones replace them).
                        Err(e) => e.log(),
                    }
                }
                w.written.send_replace(no);
            }
        }
    }

    /// One statement for the whole chunk: each printer's status, unless
    /// it is late (older `_ts` than the stored one) or the printer was
    /// deleted or archived. One statement, not one per printer: each
    /// statement is a round trip to the database (on SQLite, to sqlx's
    /// worker thread: two thread switches, a millisecond when the machine
    /// is busy), and the batch waits for all of them.
    async fn write_batch(&self, rows: &[(i32, Waiting)]) -> Result<Vec<printer::Model>, AppError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let backend = self.db().get_database_backend();
        let postgres = backend == DbBackend::Postgres;
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(rows.len() * COLUMNS);
        let mut tuples = String::with_capacity(rows.len() * 8 * COLUMNS);
        for (i, (id, s)) in rows.iter().enumerate() {
            let (state, finishes_at) = super::rules::status_columns(Some(&s.status), s.at);
            tuples.push_str(if i == 0 { "(" } else { ", (" });
            for k in 0..COLUMNS {
                let sep = if k == 0 { "" } else { ", " };
                let mark = super::placeholder(backend, values.len() + k + 1);
                let _ = write!(tuples, "{sep}{mark}");
            }
            tuples.push(')');
            values.extend([
                sea_orm::Value::from(*id),
                s.status.clone().into(),
                s.at.into(),
                state.map(str::to_owned).into(),
                finishes_at.into(),
                s.ts.into(),
            ]);
        }
        // `v`'s columns are named by position (column1 ...) on both
        // backends. The revision is bumped here, as its trigger would: on
        // SQLite the trigger's own UPDATE would write the row again.
        let sql = format!(
            r#"UPDATE "printers" SET "status" = v.column2, "status_at" = v.column3,
  "last_seen_at" = v.column3, "state" = v.column4, "finishes_at" = v.column5,
  "status_ts" = COALESCE(v.column6, "printers"."status_ts"),
  "revision" = "printers"."revision" + 1
FROM (VALUES {tuples}) AS v
WHERE "printers"."id" = v.column1
  AND "printers"."deleted_at" IS NULL AND "printers"."archived_at" IS NULL
  AND (v.column6 IS NULL OR "printers"."status_ts" IS NULL OR "printers"."status_ts" <= v.column6)
RETURNING {}"#,
            // SQLite returns the updated table's columns for `*` and
            // refuses a qualified one; PostgreSQL's `*` has `v`'s too.
            if postgres { r#""printers".*"# } else { "*" }
        );
        Ok(printer::Entity::find()
            .from_raw_sql(Statement::from_sql_and_values(backend, sql, values))
            .all(self.db())
            .await?)
    }
}

/// The values each status binds: id, status, time, state, finish, `_ts`.
const COLUMNS: usize = 6;

/// Shared by the service's clones.
pub(super) type Writer = Arc<StatusWriter>;
