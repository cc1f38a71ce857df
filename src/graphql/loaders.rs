//! DataLoaders: relations fetched in one statement per batch, so a list of
//! 500 printers costs the same number of queries as a list of one.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use entity::print;

use super::context::RequestContext;
use crate::error::AppError;

/// Prints by id, scoped to the request's viewer.
pub struct PrintLoader {
    ctx: Arc<RequestContext>,
}

impl PrintLoader {
    pub fn new(ctx: Arc<RequestContext>) -> Self {
        Self { ctx }
    }
}

impl Loader<i32> for PrintLoader {
    type Value = print::Model;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[i32]) -> Result<HashMap<i32, print::Model>, Self::Error> {
        // Prints are only reached through printers, which needed the viewer.
        let Some(viewer) = self.ctx.resolved_viewer() else {
            return Ok(HashMap::new());
        };
        self.ctx
            .service()
            .prints_by_id(viewer, keys)
            .await
            .map_err(Arc::new)
    }
}

/// Printers by id, scoped to the request's viewer (a print's `printer`).
pub struct PrinterLoader {
    ctx: Arc<RequestContext>,
}

impl PrinterLoader {
    pub fn new(ctx: Arc<RequestContext>) -> Self {
        Self { ctx }
    }
}

impl Loader<i32> for PrinterLoader {
    type Value = entity::printer::Model;
    type Error = Arc<AppError>;

    async fn load(
        &self,
        keys: &[i32],
    ) -> Result<HashMap<i32, entity::printer::Model>, Self::Error> {
        let Some(viewer) = self.ctx.resolved_viewer() else {
            return Ok(HashMap::new());
        };
        self.ctx
            .service()
            .printers_by_id(viewer, keys)
            .await
            .map_err(Arc::new)
    }
}
