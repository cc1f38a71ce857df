//! Print history: a viewer's prints (of one printer or all of them),
//! filtered and paged by keyset, so page 1 and page 500 cost the same and
//! a cursor stays valid when prints are added (a cursor is the position
//! `(started_at, id)`, not an offset).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{print, printer};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait,
};

use super::rules::{PrintState, print_state_condition};
use super::{Service, Viewer};
use crate::error::AppError;

/// Most prints on one page.
pub const MAX_PAGE: u64 = 100;

/// Which prints.
#[derive(Debug, Clone, Default)]
pub struct PrintFilter {
    /// Any of these states (none given: all).
    pub states: Option<Vec<PrintState>>,
    /// Started at or after.
    pub since: Option<DateTime<Utc>>,
    /// Started before.
    pub until: Option<DateTime<Utc>>,
    /// The file name contains this (case-insensitive).
    pub filename: Option<String>,
}

/// The order of a history: by start time, then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrintOrder {
    #[default]
    NewestFirst,
    OldestFirst,
}

/// A position in a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub started_at: DateTime<Utc>,
    pub id: i32,
}

impl Position {
    pub fn of(p: &print::Model) -> Self {
        Self {
            started_at: p.started_at,
            id: p.id,
        }
    }
}

/// Which page: `first` after a position, or `last` before one (either
/// bound may be given with either count, as Relay allows).
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub first: Option<u64>,
    pub last: Option<u64>,
    pub after: Option<Position>,
    pub before: Option<Position>,
}

/// A page of prints, in the order asked for.
#[derive(Debug, Clone)]
pub struct PrintPage {
    pub prints: Vec<print::Model>,
    pub has_next: bool,
    pub has_previous: bool,
    /// How many prints match the filter, on every page (when asked).
    pub total: Option<u64>,
}

/// Rows strictly past `p` in `order` (`forward`), or strictly before it.
fn beyond(p: Position, order: PrintOrder, forward: bool) -> Condition {
    let later = (order == PrintOrder::OldestFirst) == forward;
    let (s, id) = (print::Column::StartedAt, print::Column::Id);
    if later {
        Condition::any()
            .add(s.gt(p.started_at))
            .add(Condition::all().add(s.eq(p.started_at)).add(id.gt(p.id)))
    } else {
        Condition::any()
            .add(s.lt(p.started_at))
            .add(Condition::all().add(s.eq(p.started_at)).add(id.lt(p.id)))
    }
}

/// `%text%` for LIKE, with the wildcards in `text` escaped.
pub(super) fn contains_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Service {
    /// A page of the viewer's prints: of printer `printer_id` (none when
    /// it is not the viewer's), or of all the viewer's printers.
    pub async fn prints(
        &self,
        viewer: &Viewer,
        printer_id: Option<i32>,
        filter: &PrintFilter,
        order: PrintOrder,
        page: PageRequest,
        with_total: bool,
    ) -> Result<Option<PrintPage>, AppError> {
        let mut base = Condition::all();
        match printer_id {
            Some(id) => {
                if self.printer(viewer, id).await?.is_none() {
                    return Ok(None);
                }
                base = base.add(print::Column::PrinterId.eq(id));
            }
            None => {
                base = base.add(
                    print::Column::PrinterId.in_subquery(
                        printer::Entity::find()
                            .select_only()
                            .column(printer::Column::Id)
                            .filter(printer::Column::UserId.eq(viewer.id()))
                            .filter(printer::Column::DeletedAt.is_null())
                            .into_query(),
                    ),
                );
            }
        }
        if let Some(states) = &filter.states {
            let mut any = Condition::any();
            for s in states {
                any = any.add(print_state_condition(*s));
            }
            base = base.add(any);
        }
        if let Some(t) = filter.since {
            base = base.add(print::Column::StartedAt.gte(t));
        }
        if let Some(t) = filter.until {
            base = base.add(print::Column::StartedAt.lt(t));
        }
        if let Some(name) = filter.filename.as_deref().filter(|n| !n.is_empty()) {
            base = base.add(
                Expr::expr(Func::lower(Expr::col(print::Column::Filename)))
                    .like(LikeExpr::new(contains_pattern(name)).escape('\\')),
            );
        }
        // The count reads every match: only when the client asked for it.
        let total = if with_total {
            Some(
                print::Entity::find()
                    .filter(base.clone())
                    .count(self.db())
                    .await?,
            )
        } else {
            None
        };
        let mut bounded = base.clone();
        if let Some(a) = page.after {
            bounded = bounded.add(beyond(a, order, true));
        }
        if let Some(b) = page.before {
            bounded = bounded.add(beyond(b, order, false));
        }
        // `last` reads from the far end, backwards.
        let backwards = page.first.is_none() && page.last.is_some();
        let n = page.first.or(page.last).unwrap_or(20).clamp(1, MAX_PAGE);
        let ascending = (order == PrintOrder::OldestFirst) != backwards;
        let q = print::Entity::find().filter(bounded);
        let q = if ascending {
            q.order_by_asc(print::Column::StartedAt)
                .order_by_asc(print::Column::Id)
        } else {
            q.order_by_desc(print::Column::StartedAt)
                .order_by_desc(print::Column::Id)
        };
        let mut prints = q.limit(n + 1).all(self.db()).await?;
        let more = prints.len() as u64 > n;
        prints.truncate(usize::try_from(n).unwrap_or(usize::MAX));
        if backwards {
            prints.reverse();
        }
        // Whether rows lie outside the page on the side the request did
        // not read towards: one LIMIT 1 look, not a count.
        let exists_beyond = |from: Option<Position>, forward: bool| {
            let base = base.clone();
            async move {
                let Some(p) = from else {
                    return Ok::<bool, AppError>(false);
                };
                Ok(print::Entity::find()
                    .filter(base)
                    .filter(beyond(p, order, forward))
                    .select_only()
                    .column(print::Column::Id)
                    .into_tuple::<i32>()
                    .one(self.db())
                    .await?
                    .is_some())
            }
        };
        let (has_next, has_previous) = if backwards {
            let next = exists_beyond(prints.last().map(Position::of).or(page.before), true).await?;
            (next, more)
        } else {
            let previous =
                exists_beyond(prints.first().map(Position::of).or(page.after), false).await?;
            (more, previous)
        };
        Ok(Some(PrintPage {
            prints,
            has_next,
            has_previous,
            total,
        }))
    }

    /// The printers of the given ids that are the viewer's (deleted ones
    /// excluded): a DataLoader batch.
    pub async fn printers_by_id(
        &self,
        viewer: &Viewer,
        ids: &[i32],
    ) -> Result<HashMap<i32, printer::Model>, AppError> {
        let rows = printer::Entity::find()
            .filter(printer::Column::Id.is_in(ids.iter().copied()))
            .filter(printer::Column::UserId.eq(viewer.id()))
            .filter(printer::Column::DeletedAt.is_null())
            .all(self.db())
            .await?;
        Ok(rows.into_iter().map(|p| (p.id, p)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_in_a_filename_are_matched_literally() {
        assert_eq!(contains_pattern("Benchy"), "%benchy%");
        assert_eq!(contains_pattern("50%_x"), "%50\\%\\_x%");
    }
}
