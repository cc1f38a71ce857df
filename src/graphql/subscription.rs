//! The subscription root: live printers.
//!
//! Each event from the service's bus that concerns the viewer's printer(s)
//! is answered with the printer as it is now, read fresh. A subscriber that
//! falls more than the bus's capacity behind does not slow anyone down: the
//! events it missed are dropped, and it is sent the current state of every
//! printer it watches instead (coalescing), so it ends up correct.

use std::collections::VecDeque;

use async_graphql::{Context, ID, Result, Subscription};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::context::request;
use super::query::row_id;
use super::types::{Printer, PrinterEvent};
use crate::error::AppError;
use crate::events::{Event, EventKind};
use crate::service::{Service, Viewer};

#[derive(Default)]
pub struct Subscription;

/// What a subscription listens to: the bus, as the viewer, for one of
/// their printers or all of them. Counted in `/metrics` while it lives.
struct Target {
    rx: tokio::sync::broadcast::Receiver<Event>,
    service: Service,
    viewer: Viewer,
    only: Option<i32>,
}

impl Target {
    /// The viewer's target: printer `id` (NOT_FOUND unless it is theirs),
    /// or all their printers.
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

struct Watch {
    t: Target,
    pending: VecDeque<Printer>,
}

impl Watch {
    fn concerns(&self, e: &Event) -> bool {
        // A log record changes nothing a printer shows; what went with it
        // was published on its own.
        !matches!(e.kind, EventKind::Logged { .. } | EventKind::Integration) && self.t.covers(e)
    }

    /// The next printer to send, waiting for events as needed.
    async fn next(&mut self) -> Option<Printer> {
        loop {
            if let Some(p) = self.pending.pop_front() {
                return Some(p);
            }
            match self.t.rx.recv().await {
                Ok(e) if self.concerns(&e) => {
                    match self.t.service.printer_after(&self.t.viewer, &e).await {
                        Ok(Some(p)) => return Some(Printer(p)),
                        Ok(None) => {}
                        Err(e) => e.log(),
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "slow subscriber; sending current state instead");
                    match self.t.service.printers(&self.t.viewer, true).await {
                        Ok(ps) => self.pending.extend(
                            ps.into_iter()
                                .filter(|p| self.t.only.is_none_or(|id| id == p.id))
                                .map(Printer),
                        ),
                        Err(e) => e.log(),
                    }
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

#[Subscription]
impl Subscription {
    /// Each new record of the event log of one printer (`printerId`) or of
    /// all the viewer's printers, of the given `types` only when given.
    async fn printer_event(
        &self,
        ctx: &Context<'_>,
        printer_id: Option<ID>,
        types: Option<Vec<String>>,
    ) -> Result<impl Stream<Item = PrinterEvent> + use<>> {
        let watch = LogWatch {
            t: Target::of(ctx, printer_id).await?,
            types,
        };
        Ok(futures_util::stream::unfold(watch, |mut w| async move {
            w.next().await.map(|e| (e, w))
        }))
    }

    /// A printer each time what it shows changes: one printer, or every one
    /// of the viewer's printers when `id` is omitted.
    async fn printer_updated(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
    ) -> Result<impl Stream<Item = Printer> + use<>> {
        let watch = Watch {
            t: Target::of(ctx, id).await?,
            pending: VecDeque::new(),
        };
        Ok(futures_util::stream::unfold(watch, |mut w| async move {
            w.next().await.map(|p| (p, w))
        }))
    }
}
