//! Runs GraphQL operations for a caller: the one entry point shared by the
//! GraphQL endpoint and the REST translation, so both see the same schema,
//! rules and identity handling.

use async_graphql::{BatchRequest, BatchResponse, Request, Response};

use std::sync::Arc;

use crate::auth::Identity;
use crate::graphql::{
    AppSchema, RequestContext, SchemaOptions, build_schema_with, with_request_data,
};
use crate::metrics::CacheGauges;
use crate::service::Service;
use crate::urls::UrlSigner;

/// The schema plus the service its resolvers use.
#[derive(Clone)]
pub struct Gateway {
    schema: AppSchema,
    service: Service,
}

impl Gateway {
    pub fn new(
        service: Service,
        urls: Arc<UrlSigner>,
        options: SchemaOptions,
        caches: &CacheGauges,
    ) -> Self {
        Self {
            schema: build_schema_with(urls, options, caches),
            service,
        }
    }

    pub fn schema(&self) -> &AppSchema {
        &self.schema
    }

    pub fn service(&self) -> &Service {
        &self.service
    }

    /// The user whose data a credential reads, for a read cache: a
    /// verified token's (provisioned on first sight, as the request itself
    /// would be), an API key's owner; `None` for no credential or when it
    /// cannot be had (then nothing is cached).
    pub async fn user_id(&self, identity: &Identity) -> Option<i32> {
        match identity {
            Identity::Verified(claims) => self
                .service
                .viewer(&claims.sub, claims.email.as_deref())
                .await
                .ok()
                .map(|v| v.id()),
            Identity::Key(key) => Some(key.user_id),
            Identity::Anonymous | Identity::Rejected(_) => None,
        }
    }

    /// What a read cache compares to know an answer it kept for `user_id`
    /// is current: the event bus's change count for the user and, when
    /// `across_instances`, the user's data version in the database. `None`
    /// when the version cannot be read (then nothing is served from or
    /// kept in a cache).
    pub async fn freshness(
        &self,
        user_id: i32,
        across_instances: bool,
    ) -> Option<crate::readcache::Freshness> {
        let generation = self.service.events().generation(user_id);
        let version = if across_instances {
            Some(self.service.data_version(user_id).await.ok()?)
        } else {
            None
        };
        Some(crate::readcache::Freshness {
            generation,
            version,
        })
    }

    /// Executes one operation as `identity`.
    pub async fn execute(&self, identity: Identity, request: Request) -> Response {
        let ctx = RequestContext::new(identity, self.service.clone());
        self.schema.execute(with_request_data(request, &ctx)).await
    }

    /// Executes one operation as `identity`, its printers showing their
    /// agent tokens: for the REST paths only, whose contract has them.
    pub async fn execute_showing_credentials(
        &self,
        identity: Identity,
        request: Request,
    ) -> Response {
        self.execute(identity, request.data(crate::graphql::ShowCredentials))
            .await
    }

    /// Executes one operation or a batch as `identity`; the operations of a
    /// batch share the identity and the viewer lookup.
    pub async fn execute_batch(&self, identity: Identity, batch: BatchRequest) -> BatchResponse {
        let ctx = RequestContext::new(identity, self.service.clone());
        let batch = match batch {
            BatchRequest::Single(r) => BatchRequest::Single(with_request_data(r, &ctx)),
            BatchRequest::Batch(rs) => {
                BatchRequest::Batch(rs.into_iter().map(|r| with_request_data(r, &ctx)).collect())
            }
        };
        self.schema.execute_batch(batch).await
    }
}
