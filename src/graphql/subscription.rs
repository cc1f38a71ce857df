//! The subscription root: live printers.
//!
//! Each event from the service's bus that concerns the viewer's printer(s)
//! is answered with the printer as it is now, read fresh. A subscriber that
//! falls more than the bus's capacity behind does not slow anyone down: the
//! events it missed are dropped, and it is sent the current state of every
//! printer it watches instead (coalescing), so it ends up correct.
//! `printerChanged` says what happened (so a deleted printer can be dropped)
//! and can coalesce a printer's updates to one per interval: the newest
//! state goes out at the interval's end.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use async_graphql::{Context, Enum, ID, Result, SimpleObject, Subscription};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::context::request;
use super::query::row_id;
use super::types::{Printer, PrinterEvent};
use crate::error::AppError;
use crate::events::{Event, EventKind};
use crate::service::{Service, Viewer};

/// The subscription root (over websockets at `/graphql/ws`, graphql-transport-ws): live printers and their event logs.
#[derive(Default)]
pub struct Subscription;

/// What a subscription listens to: the bus, as the viewer, for one of their printers or all of them. Counted in `/metrics` while it lives.
struct Target {
    rx: tokio::sync::broadcast::Receiver<Event>,
    service: Service,
    viewer: Viewer,
    only: Option<i32>,
}

impl Target {
    /// The viewer's target: printer `id` (NOT_FOUND unless it is theirs), or all their printers.
    async fn of(ctx: &Context<'_>, id: Option<ID>) -> Result<Self> {
        let rc = request(ctx)?;
        let viewer = rc.viewer().await?.clone();
        let service = rc.service().clone();
        let only = match id {
            None => None,
            Some(id) => {
                let n = row_id(&id).ok_or(AppError::NotFound)?;
                service
                    .printer(&viewer, n)
                    .await?
                    .ok_or(AppError::NotFound)?;
                Some(n)
            }
        };
        crate::metrics::metrics()
            .subscriptions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Self {
            rx: service.events().subscribe(),
            service,
            viewer,
            only,
        })
    }

    /// Whether an event is of the viewer's watched printer(s).
    fn covers(&self, e: &Event) -> bool {
        e.user_id == self.viewer.id() && self.only.is_none_or(|id| id == e.printer_id)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        crate::metrics::metrics()
            .subscriptions
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A printer waiting to be sent: for its newest event, or as read after a
/// lag.
enum Pending {
    Event(Event),
    Row(Box<entity::printer::Model>),
}

/// Takes every event the bus already holds (at most the bus's capacity),
/// handing each to `hear`; `Err` when the bus closed, `Ok(true)` when events
/// were missed (a lag).
fn drain(
    rx: &mut tokio::sync::broadcast::Receiver<Event>,
    mut hear: impl FnMut(Event),
) -> Result<bool, ()> {
    use tokio::sync::broadcast::error::TryRecvError;
    for _ in 0..crate::events::CAPACITY {
        match rx.try_recv() {
            Ok(e) => hear(e),
            Err(TryRecvError::Empty) => return Ok(false),
            Err(TryRecvError::Lagged(missed)) => {
                tracing::warn!(missed, "slow subscriber; sending current state instead");
                return Ok(true);
            }
            Err(TryRecvError::Closed) => return Err(()),
        }
    }
    Ok(false)
}

/// A `printerUpdated` subscriber. One that keeps up gets every change; one
/// that falls behind gets each printer once, at its newest (the events
/// waiting for it are coalesced per printer, so its work is bounded by the
/// printers, not by the events), and never a printer's changes out of
/// order. Bound: one waiting entry per printer.
struct Watch {
    t: Target,
    /// Printers to send, in the order they first changed.
    order: VecDeque<i32>,
    waiting: HashMap<i32, Pending>,
}

impl Watch {
    fn concerns(&self, e: &Event) -> bool {
        // A log record changes nothing a printer shows; what went with it
        // was published on its own.
        !matches!(e.kind, EventKind::Logged { .. } | EventKind::Integration) && self.t.covers(e)
    }

    fn queue(&mut self, id: i32, p: Pending) {
        if self.waiting.insert(id, p).is_none() {
            self.order.push_back(id);
        }
    }

    fn hear(&mut self, e: Event) {
        if self.concerns(&e) {
            self.queue(e.printer_id, Pending::Event(e));
        }
    }

    /// After a lag: every watched printer as it is now.
    async fn catch_up(&mut self) {
        match self.t.service.printers(&self.t.viewer, true).await {
            Ok(ps) => {
                for p in ps {
                    if self.t.only.is_none_or(|id| id == p.id) {
                        self.queue(p.id, Pending::Row(Box::new(p)));
                    }
                }
            }
            Err(e) => e.log(),
        }
    }

    /// The next printer to send, waiting for events as needed.
    async fn next(&mut self) -> Option<Printer> {
        loop {
            let mut heard = Vec::new();
            let lagged = drain(&mut self.t.rx, |e| heard.push(e)).ok()?;
            for e in heard {
                self.hear(e);
            }
            if lagged {
                self.catch_up().await;
            }
            if let Some(id) = self.order.pop_front() {
                let row = match self.waiting.remove(&id) {
                    Some(Pending::Row(p)) => Some(*p),
                    Some(Pending::Event(e)) => {
                        match self.t.service.printer_after(&self.t.viewer, &e).await {
                            Ok(p) => p,
                            Err(e) => {
                                e.log();
                                None
                            }
                        }
                    }
                    None => None,
                };
                match row {
                    Some(p) => return Some(Printer(p)),
                    // Deleted meanwhile (or not the viewer's).
                    None => continue,
                }
            }
            match self.t.rx.recv().await {
                Ok(e) => self.hear(e),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "slow subscriber; sending current state instead");
                    self.catch_up().await;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// A subscriber to a printer's event log.
struct LogWatch {
    t: Target,
    types: Option<Vec<String>>,
}

impl LogWatch {
    async fn next(&mut self) -> Option<PrinterEvent> {
        loop {
            let e = match self.t.rx.recv().await {
                Ok(e) => e,
                // A slow subscriber misses records; it hears the next ones
                // (the log itself keeps them: `Printer.events`).
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "slow event-log subscriber");
                    continue;
                }
                Err(RecvError::Closed) => return None,
            };
            let EventKind::Logged { record } = e.kind else {
                continue;
            };
            if !self.t.covers(&e) {
                continue;
            }
            match self
                .t
                .service
                .printer_event_record(&self.t.viewer, record)
                .await
            {
                Ok(Some(r))
                    if self
                        .types
                        .as_ref()
                        .is_none_or(|t| t.contains(&r.event_type)) =>
                {
                    return Some(PrinterEvent(r));
                }
                Ok(_) => {}
                Err(e) => e.log(),
            }
        }
    }
}

/// What happened to a printer.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum PrinterChangeKind {
    /// It was added.
    Created,
    /// What it shows changed: its settings, its agent's status, a print, a command.
    Updated,
    /// It was archived (`printers` no longer lists it unless `withArchived`).
    Archived,
    /// It was deleted: drop it (`printer` is null).
    Deleted,
}

/// A change to one of the viewer's printers.
#[derive(SimpleObject)]
pub struct PrinterChange {
    /// What happened.
    pub kind: PrinterChangeKind,
    /// The printer's id (also when it was deleted).
    pub printer_id: ID,
    /// The printer as it is now; null when it was deleted.
    pub printer: Option<Printer>,
}

/// Longest coalescing interval a subscriber may ask for.
const MAX_INTERVAL_MS: i32 = 60_000;

/// A change waiting to be sent.
enum Ready {
    /// Read the printer for this event, then send it as `kind`.
    Event(PrinterChangeKind, Event),
    /// Read the printer for its newest waiting update (in `updates`).
    Updated(i32),
    /// Already read (after a lag).
    Row(PrinterChangeKind, Box<entity::printer::Model>),
    Deleted(i32),
}

/// A `printerChanged` subscriber. Like `printerUpdated`'s, one that falls
/// behind gets each printer's newest update once, never its updates out of
/// order. Bounds: one waiting update and one send time per printer of the
/// viewer's.
struct ChangeWatch {
    t: Target,
    interval: Option<Duration>,
    /// Printers whose update waits for their interval to end.
    due: HashMap<i32, (Instant, Event)>,
    last_sent: HashMap<i32, Instant>,
    /// The printers this subscriber was told of (to tell deletions missed in a lag).
    known: HashSet<i32>,
    ready: VecDeque<Ready>,
    /// The newest event of each printer whose update is in `ready`.
    updates: HashMap<i32, Event>,
}

impl ChangeWatch {
    /// An update of printer `id` to send next (once, with its newest event).
    fn ready_update(&mut self, id: i32, e: Event) {
        if self.updates.insert(id, e).is_none() {
            self.ready.push_back(Ready::Updated(id));
        }
    }

    /// An update of printer `id`: now, or when its interval ends.
    fn update(&mut self, id: i32, e: Event) {
        let Some(interval) = self.interval else {
            return self.ready_update(id, e);
        };
        if let Some((_, waiting)) = self.due.get_mut(&id) {
            // Already waiting: the newest event is the one read at the end.
            *waiting = e;
            return;
        }
        if let Some(waiting) = self.updates.get_mut(&id) {
            // Already about to go: with the newest event.
            *waiting = e;
            return;
        }
        match self.last_sent.get(&id) {
            Some(last) if Instant::now() < *last + interval => {
                self.due.insert(id, (*last + interval, e));
            }
            _ => self.ready_update(id, e),
        }
    }

    fn hear(&mut self, e: Event) {
        if matches!(e.kind, EventKind::Logged { .. } | EventKind::Integration) || !self.t.covers(&e)
        {
            return;
        }
        match e.kind {
            EventKind::Deleted => {
                self.due.remove(&e.printer_id);
                self.updates.remove(&e.printer_id);
                self.last_sent.remove(&e.printer_id);
                self.known.remove(&e.printer_id);
                self.ready.push_back(Ready::Deleted(e.printer_id));
            }
            EventKind::Created => {
                self.known.insert(e.printer_id);
                self.ready
                    .push_back(Ready::Event(PrinterChangeKind::Created, e));
            }
            EventKind::Archived => {
                self.due.remove(&e.printer_id);
                self.updates.remove(&e.printer_id);
                self.ready
                    .push_back(Ready::Event(PrinterChangeKind::Archived, e));
            }
            _ => self.update(e.printer_id, e),
        }
    }

    /// After a lag: every watched printer as it is now, and a deletion for each known one that is gone.
    async fn catch_up(&mut self) {
        let rows = match self.t.service.printers(&self.t.viewer, true).await {
            Ok(rows) => rows,
            Err(e) => return e.log(),
        };
        let rows: Vec<_> = rows
            .into_iter()
            .filter(|p| self.t.only.is_none_or(|id| id == p.id))
            .collect();
        let now: HashSet<i32> = rows.iter().map(|p| p.id).collect();
        for gone in self.known.difference(&now).copied().collect::<Vec<_>>() {
            self.due.remove(&gone);
            self.ready.push_back(Ready::Deleted(gone));
        }
        self.known = now;
        for p in rows {
            self.due.remove(&p.id);
            self.updates.remove(&p.id);
            self.ready
                .push_back(Ready::Row(PrinterChangeKind::Updated, Box::new(p)));
        }
    }

    async fn next(&mut self) -> Option<PrinterChange> {
        loop {
            let mut heard = Vec::new();
            let lagged = drain(&mut self.t.rx, |e| heard.push(e)).ok()?;
            for e in heard {
                self.hear(e);
            }
            if lagged {
                self.catch_up().await;
            }
            if let Some(r) = self.ready.pop_front() {
                let (kind, row) = match r {
                    Ready::Deleted(id) => {
                        return Some(PrinterChange {
                            kind: PrinterChangeKind::Deleted,
                            printer_id: ID(id.to_string()),
                            printer: None,
                        });
                    }
                    Ready::Row(kind, row) => (kind, *row),
                    Ready::Updated(id) => {
                        let Some(e) = self.updates.remove(&id) else {
                            continue;
                        };
                        match self.t.service.printer_after(&self.t.viewer, &e).await {
                            Ok(Some(row)) => (PrinterChangeKind::Updated, row),
                            Ok(None) => continue,
                            Err(err) => {
                                err.log();
                                continue;
                            }
                        }
                    }
                    Ready::Event(kind, e) => {
                        match self.t.service.printer_after(&self.t.viewer, &e).await {
                            Ok(Some(row)) => (kind, row),
                            // Gone meanwhile: its deletion follows.
                            Ok(None) => continue,
                            Err(err) => {
                                err.log();
                                continue;
                            }
                        }
                    }
                };
                if kind == PrinterChangeKind::Updated && self.interval.is_some() {
                    self.last_sent.insert(row.id, Instant::now());
                }
                return Some(PrinterChange {
                    kind,
                    printer_id: ID(row.id.to_string()),
                    printer: Some(Printer(row)),
                });
            }
            let next_due = self.due.values().map(|(at, _)| *at).min();
            tokio::select! {
                r = self.t.rx.recv() => match r {
                    Ok(e) => self.hear(e),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "slow subscriber; sending current state instead");
                        self.catch_up().await;
                    }
                    Err(RecvError::Closed) => return None,
                },
                () = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                    let now = Instant::now();
                    let mut went: Vec<(i32, Event)> = self
                        .due
                        .iter()
                        .filter(|(_, (at, _))| *at <= now)
                        .map(|(id, (_, e))| (*id, *e))
                        .collect();
                    went.sort_unstable_by_key(|(_, e)| e.seq);
                    for (id, e) in went {
                        self.due.remove(&id);
                        self.ready_update(id, e);
                    }
                }
            }
        }
    }
}

/// The subscription root (over websockets at `/graphql/ws`, graphql-transport-ws): live printers and their event logs.
#[Subscription]
impl Subscription {
    /// Each new record of the event log of one printer (`printerId`) or of all the viewer's printers, of the given `types` only when given.
    async fn printer_event(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only this printer's records (NOT_FOUND unless it is the viewer's).")]
        printer_id: Option<ID>,
        #[graphql(desc = "Only records of these types.")] types: Option<Vec<String>>,
    ) -> Result<impl Stream<Item = PrinterEvent> + use<>> {
        let watch = LogWatch {
            t: Target::of(ctx, printer_id).await?,
            types,
        };
        Ok(futures_util::stream::unfold(watch, |mut w| async move {
            w.next().await.map(|e| (e, w))
        }))
    }

    /// A printer each time what it shows changes: one printer, or every one of the viewer's printers when `id` is omitted.
    async fn printer_updated(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only this printer (NOT_FOUND unless it is the viewer's).")] id: Option<
            ID,
        >,
    ) -> Result<impl Stream<Item = Printer> + use<>> {
        let watch = Watch {
            t: Target::of(ctx, id).await?,
            order: VecDeque::new(),
            waiting: HashMap::new(),
        };
        Ok(futures_util::stream::unfold(watch, |mut w| async move {
            w.next().await.map(|p| (p, w))
        }))
    }

    /// Each change to one of the viewer's printers (or to printer `id`), saying what happened. With `minIntervalMs`, a printer's UPDATED changes come at most once per that many milliseconds (1 to 60000): the newest state is sent when the interval ends. CREATED, ARCHIVED and DELETED are sent at once.
    async fn printer_changed(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only this printer (NOT_FOUND unless it is the viewer's).")] id: Option<
            ID,
        >,
        #[graphql(desc = "At most one UPDATED per printer per this many milliseconds.")]
        min_interval_ms: Option<i32>,
    ) -> Result<impl Stream<Item = PrinterChange> + use<>> {
        let interval = match min_interval_ms {
            None => None,
            Some(ms) if (1..=MAX_INTERVAL_MS).contains(&ms) => {
                Some(Duration::from_millis(ms.unsigned_abs().into()))
            }
            Some(_) => {
                return Err(AppError::invalid(
                    "minIntervalMs",
                    format!("Ensure this value is between 1 and {MAX_INTERVAL_MS}."),
                )
                .into());
            }
        };
        let t = Target::of(ctx, id).await?;
        let known = t
            .service
            .printers(&t.viewer, true)
            .await?
            .into_iter()
            .map(|p| p.id)
            .filter(|id| t.only.is_none_or(|only| only == *id))
            .collect();
        let watch = ChangeWatch {
            t,
            interval,
            due: HashMap::new(),
            last_sent: HashMap::new(),
            known,
            ready: VecDeque::new(),
            updates: HashMap::new(),
        };
        Ok(futures_util::stream::unfold(watch, |mut w| async move {
            w.next().await.map(|c| (c, w))
        }))
    }
}
