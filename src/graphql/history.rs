//! Print history in the schema: `prints` (on the query root and on a
//! printer), a cursor connection with `totalCount`, filtered by state,
//! time and file name. The paging itself is the service's (keyset, so
//! every page costs the same and cursors survive new prints).

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, InputObject, Result, SimpleObject};
use base64::Engine;

use super::context::{request, viewer};
use super::scalars::DateTime;
use super::types::Print;
use crate::error::AppError;
use crate::service::history::{self, PageRequest, Position};
use crate::service::rules;

/// Where a print is in its lifecycle. A pause is the printer's state (`PrinterStatus`), not the print's: a paused print is PRINTING.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum PrintState {
    /// Started and not ended.
    Printing,
    /// Ended normally.
    Finished,
    /// Ended by a cancel.
    Cancelled,
    /// The agent reported it failed, or it was cancelled under a failure alert not marked false.
    Failed,
}

impl From<rules::PrintState> for PrintState {
    fn from(s: rules::PrintState) -> Self {
        match s {
            rules::PrintState::Printing => Self::Printing,
            rules::PrintState::Finished => Self::Finished,
            rules::PrintState::Cancelled => Self::Cancelled,
            rules::PrintState::Failed => Self::Failed,
        }
    }
}

impl From<PrintState> for rules::PrintState {
    fn from(s: PrintState) -> Self {
        match s {
            PrintState::Printing => Self::Printing,
            PrintState::Finished => Self::Finished,
            PrintState::Cancelled => Self::Cancelled,
            PrintState::Failed => Self::Failed,
        }
    }
}

/// Which prints a history shows; every given condition must hold.
#[derive(InputObject, Default)]
pub struct PrintFilter {
    /// Any of these states.
    pub states: Option<Vec<PrintState>>,
    /// Started at or after this time.
    pub since: Option<DateTime>,
    /// Started before this time.
    pub until: Option<DateTime>,
    /// The file name contains this text (case-insensitive).
    pub filename: Option<String>,
}

/// What a history is ordered by.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum PrintOrderField {
    /// When the print started (then its id).
    StartedAt,
}

/// Which way.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum OrderDirection {
    /// Smallest first (oldest first).
    Asc,
    /// Largest first (newest first).
    Desc,
}

/// The order of a history.
#[derive(InputObject)]
pub struct PrintOrder {
    /// What to order by.
    #[graphql(default_with = "PrintOrderField::StartedAt")]
    pub field: PrintOrderField,
    /// Which way.
    #[graphql(default_with = "OrderDirection::Desc")]
    pub direction: OrderDirection,
}

/// What a history connection carries besides its edges.
#[derive(SimpleObject)]
pub struct PrintTotals {
    /// How many prints match the filter (the same on every page; counted only when asked for).
    pub total_count: u64,
}

/// A page of prints.
pub type PrintConnection = Connection<String, Print, PrintTotals>;

/// The opaque cursor of a position.
fn cursor(p: Position) -> String {
    // The exact stored time (seconds and nanoseconds): a cursor must name
    // its row's position to the last digit, or the row shows up again.
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "print:{}:{}:{}",
        p.started_at.timestamp(),
        p.started_at.timestamp_subsec_nanos(),
        p.id
    ))
}

fn position(field: &'static str, cursor: &str) -> Result<Position, AppError> {
    let bad = || AppError::invalid(field, "This is not a cursor from this list.");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let mut parts = text.strip_prefix("print:").ok_or_else(bad)?.split(':');
    let secs: i64 = parts.next().and_then(|m| m.parse().ok()).ok_or_else(bad)?;
    let nanos: u32 = parts.next().and_then(|m| m.parse().ok()).ok_or_else(bad)?;
    let id: i32 = parts.next().and_then(|i| i.parse().ok()).ok_or_else(bad)?;
    let started_at = chrono::DateTime::from_timestamp(secs, nanos).ok_or_else(bad)?;
    Ok(Position { started_at, id })
}

fn count(field: &'static str, n: Option<i32>) -> Result<Option<u64>, AppError> {
    n.map(|n| {
        u64::try_from(n)
            .ok()
            .filter(|n| (1..=history::MAX_PAGE).contains(n))
            .ok_or_else(|| {
                AppError::invalid(
                    field,
                    format!("Must be between 1 and {}.", history::MAX_PAGE),
                )
            })
    })
    .transpose()
}

/// The arguments every `prints` field takes.
pub struct PrintsArgs {
    pub filter: Option<PrintFilter>,
    pub order_by: Option<PrintOrder>,
    pub first: Option<i32>,
    pub after: Option<String>,
    pub last: Option<i32>,
    pub before: Option<String>,
}

/// Resolves a `prints` field: of one printer, or of all the viewer's.
pub async fn prints(
    ctx: &Context<'_>,
    printer_id: Option<i32>,
    args: PrintsArgs,
) -> Result<PrintConnection> {
    let viewer = viewer(ctx).await?;
    if args.first.is_some() && args.last.is_some() {
        return Err(AppError::invalid("last", "Give first or last, not both.").into());
    }
    let page = PageRequest {
        first: count("first", args.first)?,
        last: count("last", args.last)?,
        after: args
            .after
            .as_deref()
            .map(|c| position("after", c))
            .transpose()?,
        before: args
            .before
            .as_deref()
            .map(|c| position("before", c))
            .transpose()?,
    };
    let filter = args.filter.unwrap_or_default();
    let filter = history::PrintFilter {
        states: filter
            .states
            .map(|s| s.into_iter().map(Into::into).collect()),
        since: filter.since.map(|t| t.0),
        until: filter.until.map(|t| t.0),
        filename: filter.filename,
    };
    let order = match args.order_by.map(|o| o.direction) {
        Some(OrderDirection::Asc) => history::PrintOrder::OldestFirst,
        _ => history::PrintOrder::NewestFirst,
    };
    let with_total = ctx.look_ahead().field("totalCount").exists();
    let found = request(ctx)?
        .service()
        .prints(viewer, printer_id, &filter, order, page, with_total)
        .await?;
    let Some(found) = found else {
        return Err(AppError::NotFound.into());
    };
    let mut conn = Connection::with_additional_fields(
        found.has_previous,
        found.has_next,
        PrintTotals {
            total_count: found.total.unwrap_or_default(),
        },
    );
    conn.edges.extend(
        found
            .prints
            .into_iter()
            .map(|p| Edge::new(cursor(Position::of(&p)), Print(p))),
    );
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let p = Position {
            started_at: chrono::DateTime::from_timestamp(1_700_000_000, 123_456_789)
                .unwrap_or_default(),
            id: 42,
        };
        assert_eq!(position("after", &cursor(p)).ok(), Some(p));
        assert!(position("after", "bm90IGEgY3Vyc29y").is_err());
        assert!(position("after", "!!").is_err());
    }
}
