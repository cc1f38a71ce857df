//! A cache of parsed GraphQL documents.
//!
//! Clients (and every REST route) send the same few documents over and
//! over; parsing them is the largest single cost of a small request (the
//! benchmark's profile shows the pest parser on top). Parsed documents are
//! kept by their text, least recently used first, within a budget of bytes
//! (a parsed document's size is estimated from its text and its tokens:
//! each token becomes a node of about 160 bytes), so documents that vary
//! per request cannot grow it. The query limits run before this cache, so
//! an oversized document is refused before it is parsed or kept.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerResult, Variables};

use super::limits::count_tokens;
use crate::bounded::ByteLru;
use crate::metrics::CacheGauge;

/// Default budget of the cache.
pub const DEFAULT_CACHE_BYTES: usize = 32 * 1024 * 1024;
/// Estimated bytes of one parsed token.
const BYTES_PER_TOKEN: usize = 160;

type Docs = Arc<Mutex<ByteLru<Arc<str>, ExecutableDocument>>>;

pub struct DocumentCache {
    docs: Docs,
}

impl DocumentCache {
    pub fn new(max_bytes: usize, gauge: Arc<CacheGauge>) -> Self {
        Self {
            docs: Arc::new(Mutex::new(ByteLru::new(gauge, max_bytes))),
        }
    }
}

/// The estimated memory of a parsed `query`.
pub fn estimated_size(query: &str) -> usize {
    query.len() * 2 + count_tokens(query) * BYTES_PER_TOKEN
}

impl ExtensionFactory for DocumentCache {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(CacheExtension {
            docs: self.docs.clone(),
        })
    }
}

struct CacheExtension {
    docs: Docs,
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
        let key: Arc<str> = query.into();
        if let Some(doc) = self.docs.lock().ok().and_then(|mut d| d.get(&key).cloned()) {
            return Ok(doc);
        }
        let doc = next.run(ctx, query, variables).await?;
        let size = estimated_size(query);
        if let Ok(mut docs) = self.docs.lock() {
            docs.put(key, doc.clone(), size);
        }
        Ok(doc)
    }
}
