//! Coalesced status writes: an agent's plain status (no print lifecycle,
//! no settings, no event: nearly every frame a live farm sends) is not
//! written by the agent's own session but handed here. One writer per
//! instance writes whatever is waiting in one transaction, the newest
//! status of each printer only, and publishes each printer it wrote with
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
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use serde_json::Value;
use tokio::sync::{Notify, watch};

use super::Service;
use crate::error::AppError;
use crate::events::EventKind;

/// Most statuses written in one transaction (a bigger backlog takes
/// several, one after another).
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

    /// One transaction: each printer's status, unless it is late (older
    /// `_ts` than the stored one) or the printer was deleted or archived.
    async fn write_batch(&self, rows: &[(i32, Waiting)]) -> Result<Vec<printer::Model>, AppError> {
        let txn = self.db().begin().await?;
        let mut written = Vec::with_capacity(rows.len());
        for (id, s) in rows {
            let (state, finishes_at) = super::rules::status_columns(Some(&s.status), s.at);
            let mut update = printer::Entity::update_many()
                .col_expr(printer::Column::Status, Expr::value(s.status.clone()))
                .col_expr(printer::Column::StatusAt, Expr::value(s.at))
                .col_expr(printer::Column::LastSeenAt, Expr::value(s.at))
                .col_expr(printer::Column::State, Expr::value(state))
                .col_expr(printer::Column::FinishesAt, Expr::value(finishes_at))
                // What the revision trigger would set, set in the update
                // itself: on SQLite the trigger's own UPDATE would write
                // the row a second time, on the path every status takes.
                .col_expr(
                    printer::Column::Revision,
                    Expr::col(printer::Column::Revision).add(1),
                )
                .filter(printer::Column::Id.eq(*id))
                .filter(printer::Column::DeletedAt.is_null())
                .filter(printer::Column::ArchivedAt.is_null());
            if let Some(ts) = s.ts {
                update = update
                    .col_expr(printer::Column::StatusTs, Expr::value(ts))
                    .filter(
                        printer::Column::StatusTs
                            .is_null()
                            .or(Expr::col(printer::Column::StatusTs).lte(ts)),
                    );
            }
            written.extend(update.exec_with_returning(&txn).await?);
        }
        txn.commit().await?;
        Ok(written)
    }
}

/// Shared by the service's clones.
pub(super) type Writer = Arc<StatusWriter>;
