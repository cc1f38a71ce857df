//! The GraphQL schema: types, roots, loaders, and its HTTP endpoint.

pub mod apq;
mod codes;
pub mod context;
mod documents;
pub mod http;
mod loaders;
mod mutation;
pub mod playground;
mod query;
pub mod scalars;
mod subscription;
mod types;
pub mod ws;

use std::sync::Arc;

use async_graphql::Schema;

use crate::agent::urls::UrlSigner;

pub use context::{RequestContext, with_request_data};
pub use mutation::Mutation;
pub use query::Query;
pub use subscription::Subscription;

/// printgate's schema.
pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Builds the schema. Per-request data (identity, loaders) is attached to
/// each request by [`with_request_data`]; the schema itself holds only the
/// snapshot URL signer, so `printgate schema` can print it without a database.
pub fn build_schema(urls: Arc<UrlSigner>) -> AppSchema {
    Schema::build(Query, Mutation, Subscription)
        .data(urls)
        .extension(codes::ErrorCodes)
        .extension(documents::DocumentCache::default())
        .finish()
}

/// The schema in SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    build_schema(Arc::new(UrlSigner::new(Vec::new(), ""))).sdl()
}
