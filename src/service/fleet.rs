//! The fleet view: a viewer's printers filtered (by state, presence, name)
//! and ordered, and the fleet's counts. Both run in the database on the
//! columns written with each status (`state`, `finishes_at`), through the
//! SQL twin of the state rule, so a list of a thousand printers is not
//! loaded to count it.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use entity::{print, printer};
use sea_orm::sea_query::{Alias, CaseStatement, Expr, ExprTrait, Func, LikeExpr, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, JoinType, QueryFilter,
    QueryOrder, QuerySelect, Select,
};

use super::history::contains_pattern;
use super::rules::{self, NAME_MAX_CHARS, PrinterState};
use super::{Service, Viewer, now};
use crate::error::{AppError, Checks};

/// Which printers.
#[derive(Debug, Clone, Default)]
pub struct PrinterFilter {
    /// Any of these states (none given: all).
    pub states: Option<Vec<PrinterState>>,
    /// With an agent connected (true) or not (false).
    pub online: Option<bool>,
    /// The name contains this text (case-insensitive).
    pub name_contains: Option<String>,
}

/// What a printer list is ordered by (then by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrinterOrderField {
    #[default]
    Id,
    /// Case-insensitive.
    Name,
    CreatedAt,
    /// When the agent's estimate says the print ends (none last).
    FinishesAt,
}

/// A printer list's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrinterOrder {
    pub field: PrinterOrderField,
    pub descending: bool,
}

/// A listed printer's id and revision, and its current print's id and
/// revision: what a reader compares with what it kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revisions {
    pub id: i32,
    pub revision: i64,
    pub current_print: Option<(i32, i64)>,
}

/// The fleet's counts (printers not archived).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fleet {
    pub total: u64,
    /// With an agent connected to some instance.
    pub online: u64,
    /// Printers in each state, every state listed (zero included).
    pub by_state: Vec<(PrinterState, u64)>,
    /// Whose current print has a failure alert not yet acknowledged.
    pub alerting: u64,
    /// Printing, and the agent's estimate ends within the hour.
    pub finishing_within_hour: u64,
}

impl Fleet {
    pub fn count(&self, state: PrinterState) -> u64 {
        self.by_state
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    }
}

/// How far ahead "finishing soon" looks.
const SOON_SECS: i64 = 3600;

impl PrinterFilter {
    /// The filter as a condition on `printers` (with `now` for the state).
    fn condition(&self, now: DateTime<Utc>) -> Result<Condition, AppError> {
        let mut checks = Checks::default();
        let name = checks.optional(self.name_contains.as_deref(), |n| {
            if n.chars().count() > NAME_MAX_CHARS {
                Err(AppError::invalid(
                    "nameContains",
                    format!("Ensure this field has no more than {NAME_MAX_CHARS} characters."),
                ))
            } else {
                Ok(n)
            }
        });
        checks.finish()?;
        let mut c = Condition::all();
        if let Some(states) = &self.states {
            let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
            c = c.add(rules::printer_state_expr(now).is_in(names));
        }
        match self.online {
            Some(true) => c = c.add(printer::Column::AgentInstance.is_not_null()),
            Some(false) => c = c.add(printer::Column::AgentInstance.is_null()),
            None => {}
        }
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            c = c.add(
                Expr::expr(Func::lower(Expr::col(printer::Column::Name)))
                    .like(LikeExpr::new(contains_pattern(name)).escape('\\')),
            );
        }
        Ok(c)
    }
}

impl Service {
    /// The viewer's printers (archived ones too with `with_archived`) that
    /// match `filter`, in `order`.
    pub async fn printers_where(
        &self,
        viewer: &Viewer,
        with_archived: bool,
        filter: &PrinterFilter,
        order: PrinterOrder,
    ) -> Result<Vec<printer::Model>, AppError> {
        Ok(listing(viewer, with_archived, filter, order)?
            .all(self.db())
            .await?)
    }

    /// [`Service::printers_where`]'s printers as their ids and revisions
    /// only (with their current prints'), in the same order: one narrow
    /// read that tells a reader which printers changed since it last saw
    /// them, so it reads whole rows ([`Service::printers_by_id`]) only for
    /// those.
    ///
    /// The database hands them over as one row (the list aggregated in the
    /// list's order, `id,revision,print,print_revision;...`): row by row, a
    /// 1,000-printer list was 1,000 rows through sqlx's worker channel and
    /// sea-orm's decoding, most of a live farm's list computation.
    pub async fn printer_revisions(
        &self,
        viewer: &Viewer,
        with_archived: bool,
        filter: &PrinterFilter,
        order: PrinterOrder,
    ) -> Result<Vec<Revisions>, AppError> {
        // The expressions go where the backend's placeholders are.
        let backend = self.db().get_database_backend();
        let aggregate = if backend == DbBackend::Postgres {
            "string_agg"
        } else {
            "group_concat"
        };
        let mark = |n: usize| super::placeholder(backend, n);
        let terms = order_terms(order);
        let mut template = format!("{aggregate}({}, ';' ORDER BY ", mark(1));
        for (i, (_, dir)) in terms.iter().enumerate() {
            let dir = if matches!(dir, sea_orm::Order::Desc) {
                "DESC"
            } else {
                "ASC"
            };
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(template, "{sep}{} {dir}", mark(i + 2));
        }
        template.push(')');
        let entry = Expr::cust(
            r#"CAST("printers"."id" AS TEXT) || ',' || CAST("printers"."revision" AS TEXT) || ',' || COALESCE(CAST("prints"."id" AS TEXT), '') || ',' || COALESCE(CAST("prints"."revision" AS TEXT), '')"#,
        );
        let listed = Expr::cust_with_exprs(
            template,
            std::iter::once(entry).chain(terms.into_iter().map(|(e, _)| e)),
        );
        let row: Option<Option<String>> = filtered(viewer, with_archived, filter)?
            .select_only()
            .column_as(listed, "listed")
            .join(
                JoinType::LeftJoin,
                printer::Entity::belongs_to(print::Entity)
                    .from(printer::Column::CurrentPrintId)
                    .to(print::Column::Id)
                    .into(),
            )
            .into_tuple()
            .one(self.db())
            .await?;
        parse_revisions(row.flatten().as_deref().unwrap_or(""))
    }

    /// The counts of the viewer's fleet (printers not archived), in one
    /// query grouped by state.
    pub async fn fleet(&self, viewer: &Viewer) -> Result<Fleet, AppError> {
        let t = now();
        let one_if = |c: Condition| {
            Func::sum(
                CaseStatement::new()
                    .case(c, Expr::val(1))
                    .finally(Expr::val(0)),
            )
        };
        // The current print, joined (LEFT: most printers have none).
        let alert = Condition::all()
            .add(Expr::col((print::Entity, print::Column::Id)).is_not_null())
            .add(rules::alert_unanswered_condition());
        let stmt = Query::select()
            .expr_as(rules::printer_state_expr(t), Alias::new("state"))
            .expr_as(Func::count(Expr::val(1)), Alias::new("n"))
            .expr_as(
                one_if(Condition::all().add(printer::Column::AgentInstance.is_not_null())),
                Alias::new("online"),
            )
            .expr_as(
                one_if(
                    Condition::all()
                        .add(printer::Column::FinishesAt.is_not_null())
                        .add(
                            printer::Column::FinishesAt
                                .lte(t + chrono::Duration::seconds(SOON_SECS)),
                        ),
                ),
                Alias::new("soon"),
            )
            .expr_as(one_if(alert), Alias::new("alerting"))
            .from(printer::Entity)
            .left_join(
                print::Entity,
                Expr::col((print::Entity, print::Column::Id))
                    .equals((printer::Entity, printer::Column::CurrentPrintId)),
            )
            .and_where(Expr::col((printer::Entity, printer::Column::UserId)).eq(viewer.id()))
            .and_where(Expr::col((printer::Entity, printer::Column::DeletedAt)).is_null())
            .and_where(Expr::col((printer::Entity, printer::Column::ArchivedAt)).is_null())
            // By position: PostgreSQL does not match the select's CASE
            // (with its own parameters) to a repeated one.
            .add_group_by([Expr::cust("1")])
            .to_owned();
        let rows = self.db().query_all(&stmt).await?;
        let mut fleet = Fleet {
            by_state: PrinterState::ALL.iter().map(|s| (*s, 0)).collect(),
            ..Fleet::default()
        };
        for row in rows {
            let state: String = row.try_get("", "state")?;
            let state = PrinterState::from_stored(&state);
            let get = |col: &str| -> Result<u64, AppError> {
                let n: Option<i64> = row.try_get("", col)?;
                Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
            };
            let n = get("n")?;
            fleet.total += n;
            fleet.online += get("online")?;
            fleet.alerting += get("alerting")?;
            if matches!(state, PrinterState::Printing | PrinterState::Finishing) {
                fleet.finishing_within_hour += get("soon")?;
            }
            if let Some(slot) = fleet.by_state.iter_mut().find(|(s, _)| *s == state) {
                slot.1 += n;
            }
        }
        Ok(fleet)
    }
}

/// The query listing the viewer's printers (archived ones too with
/// `with_archived`) that match `filter`, in `order`.
fn listing(
    viewer: &Viewer,
    with_archived: bool,
    filter: &PrinterFilter,
    order: PrinterOrder,
) -> Result<Select<printer::Entity>, AppError> {
    Ok(order_terms(order)
        .into_iter()
        .fold(filtered(viewer, with_archived, filter)?, |q, (e, dir)| {
            q.order_by(e, dir)
        }))
}

/// The viewer's printers (archived ones too with `with_archived`) that
/// match `filter`, unordered.
fn filtered(
    viewer: &Viewer,
    with_archived: bool,
    filter: &PrinterFilter,
) -> Result<Select<printer::Entity>, AppError> {
    let q = printer::Entity::find()
        .filter(printer::Column::UserId.eq(viewer.id()))
        .filter(printer::Column::DeletedAt.is_null())
        .filter(filter.condition(now())?);
    Ok(if with_archived {
        q
    } else {
        q.filter(printer::Column::ArchivedAt.is_null())
    })
}

/// What `order` sorts by, in turn: its field, then the id (so the order is
/// total and the same in every read of it).
fn order_terms(order: PrinterOrder) -> Vec<(Expr, sea_orm::Order)> {
    let dir = if order.descending {
        sea_orm::Order::Desc
    } else {
        sea_orm::Order::Asc
    };
    let col = |c: printer::Column| Expr::col((printer::Entity, c));
    let mut terms = match order.field {
        PrinterOrderField::Id => vec![],
        PrinterOrderField::Name => {
            vec![(Func::lower(col(printer::Column::Name)).into(), dir.clone())]
        }
        PrinterOrderField::CreatedAt => vec![(col(printer::Column::CreatedAt), dir.clone())],
        // Printers with no estimate after those with one, either way.
        PrinterOrderField::FinishesAt => vec![
            (
                col(printer::Column::FinishesAt).is_null(),
                sea_orm::Order::Asc,
            ),
            (col(printer::Column::FinishesAt), dir.clone()),
        ],
    };
    terms.push((col(printer::Column::Id), dir));
    terms
}

/// [`Service::printer_revisions`]'s aggregate, read back (empty: no
/// printers).
fn parse_revisions(listed: &str) -> Result<Vec<Revisions>, AppError> {
    let bad = || AppError::Internal(format!("unreadable printer revisions: {listed:.80}"));
    if listed.is_empty() {
        return Ok(Vec::new());
    }
    listed
        .split(';')
        .map(|entry| {
            let mut parts = entry.split(',');
            let mut next = || parts.next().ok_or_else(bad);
            let (id, revision, print, print_revision) = (next()?, next()?, next()?, next()?);
            let current_print = match (print, print_revision) {
                ("", _) | (_, "") => None,
                (p, r) => Some((p.parse().map_err(|_| bad())?, r.parse().map_err(|_| bad())?)),
            };
            Ok(Revisions {
                id: id.parse().map_err(|_| bad())?,
                revision: revision.parse().map_err(|_| bad())?,
                current_print,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_read_back_as_listed() {
        assert_eq!(parse_revisions("").unwrap(), vec![]);
        assert_eq!(
            parse_revisions("7,3,,;2,10,41,5").unwrap(),
            vec![
                Revisions {
                    id: 7,
                    revision: 3,
                    current_print: None
                },
                Revisions {
                    id: 2,
                    revision: 10,
                    current_print: Some((41, 5))
                },
            ]
        );
        for bad in ["7,3,", "x,1,,", "1,2,3,y", "1,2,,;"] {
            assert!(parse_revisions(bad).is_err(), "{bad}");
        }
    }
}
