//! The query root: the viewer's printers and the viewer.

use async_graphql::{Context, ID, Object, Result};

use super::context::{request, viewer};
use super::fleet::{PrinterFilter, PrinterOrder};
use super::history::{PrintConnection, PrintFilter, PrintOrder, PrintsArgs};
use super::rendered::{Listed, Listing, Scope};
use super::types::{Printer, PrinterCredentials, User};

/// Parses an `ID` into a row id; anything else names no row.
pub fn row_id(id: &ID) -> Option<i32> {
    id.parse::<i32>().ok().filter(|n| *n > 0)
}

/// The printer queries.
#[derive(Default)]
pub struct PrinterQuery;

/// The printer queries.
#[Object]
impl PrinterQuery {
    /// The viewer's printers (archived ones only with `withArchived`), those matching `filter`, ordered by `orderBy` (by id when omitted). A list: counted 20 times its selection toward the complexity limit.
    #[graphql(complexity = "20 * child_complexity")]
    async fn printers(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Archived printers too.", default = false)] with_archived: bool,
        #[graphql(desc = "Only the printers matching it.")] filter: Option<PrinterFilter>,
        #[graphql(desc = "The order (by id, ascending, when omitted).")] order_by: Option<
            PrinterOrder,
        >,
    ) -> Result<Listing> {
        let viewer = viewer(ctx).await?;
        let service = request(ctx)?.service();
        let filter = filter.map(Into::into).unwrap_or_default();
        let order = order_by.map(Into::into).unwrap_or_default();
        let Some(scope) = Scope::of(ctx, &viewer.user) else {
            let rows = service
                .printers_where(viewer, with_archived, &filter, order)
                .await?;
            return Ok(Listing(
                rows.into_iter()
                    .map(|row| Listed::unkept(Printer(row)))
                    .collect(),
            ));
        };
        // Ids and revisions first; whole rows only for the printers whose
        // kept values are not current. A printer changed between the two
        // reads shows as it is now, in the place the first read gave it; one
        // deleted in between is left out.
        let listed = service
            .printer_revisions(viewer, with_archived, &filter, order)
            .await?;
        let kept: Vec<_> = listed.iter().map(|r| scope.kept(ctx, r)).collect();
        let missing: Vec<i32> = listed
            .iter()
            .zip(&kept)
            .filter(|(_, k)| k.is_none())
            .map(|(r, _)| r.id)
            .collect();
        let mut rows = if missing.is_empty() {
            Default::default()
        } else {
            service.printers_by_id(viewer, &missing).await?
        };
        Ok(Listing(
            listed
                .iter()
                .zip(kept)
                .filter_map(|(r, kept)| match kept {
                    Some(value) => Some(Listed::kept(value)),
                    None => rows
                        .remove(&r.id)
                        .map(|row| Listed::to_keep(Printer(row), scope.clone(), scope.source(r))),
                })
                .collect(),
        ))
    }

    /// One of the viewer's printers (archived ones too); null when it does not exist, was deleted, or is not the viewer's.
    async fn printer(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The printer's id.")] id: ID,
    ) -> Result<Option<Printer>> {
        let viewer = viewer(ctx).await?;
        let Some(id) = row_id(&id) else {
            return Ok(None);
        };
        let row = request(ctx)?.service().printer(viewer, id).await?;
        Ok(row.map(Printer))
    }

    /// The viewer's print history, over all their printers (or one, by `printerId`), newest first unless `orderBy` says otherwise: a cursor connection (`first`/`after` forward, `last`/`before` backward, at most 100 a page) with `totalCount`. Cursors stay valid as prints are added.
    #[allow(clippy::too_many_arguments)]
    async fn prints(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only this printer's prints.")] printer_id: Option<ID>,
        #[graphql(desc = "Only the prints matching it.")] filter: Option<PrintFilter>,
        #[graphql(desc = "The order (newest first when omitted).")] order_by: Option<PrintOrder>,
        #[graphql(
            desc = "Forward: how many prints (1 to 100; 20 when neither `first` nor `last` is given)."
        )]
        first: Option<i32>,
        #[graphql(desc = "A cursor: the prints after it.")] after: Option<String>,
        #[graphql(desc = "Backward: how many prints (1 to 100).")] last: Option<i32>,
        #[graphql(desc = "A cursor: the prints before it.")] before: Option<String>,
    ) -> Result<PrintConnection> {
        let printer = match printer_id {
            Some(id) => Some(row_id(&id).ok_or(crate::error::AppError::NotFound)?),
            None => None,
        };
        super::history::prints(
            ctx,
            printer,
            PrintsArgs {
                filter,
                order_by,
                first,
                after,
                last,
                before,
            },
        )
        .await
    }

    /// A printer's agent token, read on purpose (lists and subscriptions never carry it); null when the printer is not the viewer's.
    async fn printer_credentials(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The printer's id.")] id: ID,
    ) -> Result<Option<PrinterCredentials>> {
        let viewer = viewer(ctx).await?;
        let Some(id) = row_id(&id) else {
            return Ok(None);
        };
        let row = request(ctx)?.service().printer(viewer, id).await?;
        Ok(row.map(PrinterCredentials))
    }

    /// The authenticated user.
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        Ok(User(viewer(ctx).await?.user.clone()))
    }
}
