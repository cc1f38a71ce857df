//! Which documents may run, checked inside the schema so every transport
//! (HTTP, the websocket, the REST translation) meets the same rules:
//! - in trusted-documents mode, only the manifest's documents (and the REST
//!   routes' own) run, whatever carried them;
//! - over the websocket, only subscriptions run: queries and mutations go
//!   over HTTP, where the rate limiter, the request log and GET's
//!   no-mutation rule apply.

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql::{ErrorExtensionValues, ServerError, ServerResult, Variables};

use super::apq::hash;

/// Marks a websocket connection's data.
#[derive(Debug, Clone, Copy)]
pub struct OverWebSocket;

/// The extension; `trusted` is the allow-list of document hashes, if that
/// mode is on.
#[derive(Debug, Clone, Default)]
pub struct Admission {
    pub trusted: Option<Arc<HashSet<String>>>,
}

impl ExtensionFactory for Admission {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

fn refusal(code: &str, message: &str) -> ServerError {
    let mut err = ServerError::new(message, None);
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", code);
    err.extensions = Some(ext);
    err
}

#[async_trait::async_trait]
impl Extension for Admission {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if let Some(allowed) = &self.trusted
            && !allowed.contains(&hash(query))
        {
            return Err(refusal(
                "PERSISTED_QUERY_NOT_ALLOWED",
                "Only registered (trusted) documents are accepted here.",
            ));
        }
        let doc = next.run(ctx, query, variables).await?;
        if ctx.data_opt::<OverWebSocket>().is_some() {
            let only_subscriptions = match &doc.operations {
                DocumentOperations::Single(op) => op.node.ty == OperationType::Subscription,
                DocumentOperations::Multiple(ops) => ops
                    .values()
                    .all(|op| op.node.ty == OperationType::Subscription),
            };
            if !only_subscriptions {
                return Err(refusal(
                    "SUBSCRIPTIONS_ONLY",
                    "Only subscriptions run over the websocket; send queries and mutations over HTTP.",
                ));
            }
        }
        Ok(doc)
    }
}
