//! A cache of parsed GraphQL documents.
//!
//! Clients (and every REST route) send the same few documents over and
//! over; parsing them is the largest single cost of a small request (the
//! benchmark's profile shows the pest parser on top). Parsed documents are
//! kept by their text, up to a bound, so each is parsed once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerResult, Variables};

/// Most documents kept; past it the cache starts over (documents that vary
/// per request would otherwise grow it without end).
const CAPACITY: usize = 1000;

#[derive(Default)]
pub struct DocumentCache {
    docs: Arc<Mutex<HashMap<String, ExecutableDocument>>>,
}

impl ExtensionFactory for DocumentCache {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(CacheExtension {
            docs: self.docs.clone(),
        })
    }
}

struct CacheExtension {
    docs: Arc<Mutex<HashMap<String, ExecutableDocument>>>,
}

#[async_trait::async_trait]
impl Extension for CacheExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if let Some(doc) = self.docs.lock().ok().and_then(|d| d.get(query).cloned()) {
            return Ok(doc);
        }
        let doc = next.run(ctx, query, variables).await?;
        if let Ok(mut docs) = self.docs.lock() {
            if docs.len() >= CAPACITY {
                docs.clear();
            }
            docs.insert(query.to_owned(), doc.clone());
        }
        Ok(doc)
    }
}
