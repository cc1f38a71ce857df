//! The GraphQL schema: types, roots, loaders, and its HTTP endpoint.

mod codes;
pub mod context;
pub mod http;
mod loaders;
mod mutation;
mod query;
pub mod scalars;
mod types;

use async_graphql::{EmptySubscription, Schema};

pub use context::{RequestContext, with_request_data};
pub use mutation::Mutation;
pub use query::Query;

/// printgate's schema.
pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema. Per-request data (identity, loaders) is attached to
/// each request by [`with_request_data`]; the schema itself holds none, so
/// `printgate schema` can print it without a database.
pub fn build_schema() -> AppSchema {
    Schema::build(Query, Mutation, EmptySubscription)
        .extension(codes::ErrorCodes)
        .finish()
}

/// The schema in SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    build_schema().sdl()
}
