//! The GraphQL schema: types, roots, loaders, and its HTTP endpoint.

pub mod admission;
pub mod apq;
mod codes;
pub mod context;
pub mod documents;
mod fleet;
mod history;
pub mod http;
mod integrations;
pub mod limits;
mod loaders;
mod mutation;
pub mod playground;
mod query;
pub mod rendered;
pub mod scalars;
pub mod sdl;
mod subscription;
mod types;
pub mod ws;

use std::sync::Arc;

use async_graphql::Schema;

use crate::urls::UrlSigner;

pub use context::{RequestContext, ShowCredentials, with_request_data};
/// The query root: printers and the viewer, and the integrations.
#[derive(async_graphql::MergedObject, Default)]
#[graphql(name = "Query")]
pub struct Query(
    query::PrinterQuery,
    fleet::FleetQuery,
    integrations::IntegrationQuery,
);

/// The mutation root: printers and print actions, and the integrations.
#[derive(async_graphql::MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct Mutation(mutation::PrinterMutation, integrations::IntegrationMutation);
pub use subscription::Subscription;

/// printgate's schema.
pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Builds the schema. Per-request data (identity, loaders) is attached to each request by [`with_request_data`]; the schema itself holds only the snapshot URL signer, so `printgate schema` can print it without a database.
pub fn build_schema(urls: Arc<UrlSigner>, options: SchemaOptions) -> AppSchema {
    build_schema_with(urls, options, &crate::metrics::CacheGauges::default())
}

/// [`build_schema`], reporting its caches' sizes to `gauges`.
pub fn build_schema_with(
    urls: Arc<UrlSigner>,
    options: SchemaOptions,
    gauges: &crate::metrics::CacheGauges,
) -> AppSchema {
    let limits = options.limits;
    let mut builder = Schema::build(Query::default(), Mutation::default(), Subscription)
        .data(urls)
        .limit_depth(limits.depth)
        .limit_complexity(limits.complexity)
        .extension(codes::ErrorCodes(limits))
        .override_output_type_description::<history::PrintConnection>(
            "A page of prints, with `totalCount` and `pageInfo`.",
        )
        .override_output_type_description::<types::PrinterEventConnection>(
            "A page of a printer's event log, newest first.",
        )
        .override_output_type_description::<integrations::WebhookDeliveryConnection>(
            "A page of an endpoint's delivery attempts, newest first.",
        )
        .extension(options.admission.clone())
        // Limits wrap the cache, so cached documents are checked too.
        .extension(limits::QueryLimits(limits))
        .extension(documents::DocumentCache::new(
            options.document_cache_bytes,
            gauges.documents.clone(),
        ));
    if options.printer_cache_bytes > 0 {
        builder = builder.data(Arc::new(rendered::RenderCache::new(
            options.printer_cache_bytes,
            gauges.printers.clone(),
        )));
    }
    if !options.introspection {
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder.finish()
}

/// How the schema behaves: development defaults, or production's.
#[derive(Debug, Clone)]
pub struct SchemaOptions {
    /// Introspection and field suggestions ("Did you mean ...?").
    pub introspection: bool,
    pub limits: limits::Limits,
    /// Budget of the parsed-document cache, in bytes.
    pub document_cache_bytes: usize,
    /// Budget of the resolved printers kept for lists, in bytes; 0 turns
    /// it off (see [`rendered`]).
    pub printer_cache_bytes: usize,
    /// Which documents may run (trusted-documents mode).
    pub admission: admission::Admission,
}

impl Default for SchemaOptions {
    fn default() -> Self {
        Self {
            introspection: true,
            limits: limits::Limits::default(),
            document_cache_bytes: documents::DEFAULT_CACHE_BYTES,
            printer_cache_bytes: rendered::DEFAULT_CACHE_BYTES,
            admission: admission::Admission::default(),
        }
    }
}

/// The schema in SDL, as committed in `schema.graphql`: graphql-js's
/// printing of the schema's introspection (see [`sdl`]), and a newline.
pub async fn sdl() -> String {
    let schema = build_schema(
        Arc::new(UrlSigner::new(Vec::new(), "")),
        SchemaOptions::default(),
    );
    let response = schema.execute(sdl::INTROSPECTION_QUERY).await;
    let data = response.data.into_json().unwrap_or_default();
    let mut out = sdl::print(&data["__schema"]);
    out.push('\n');
    out
}
