//! What every handler can reach: the state shared by the edges. It sits
//! below the edges (they import it; it imports none of their routers), so
//! no edge depends on another through it.

use std::sync::Arc;

use axum::http::{Extensions, HeaderMap};

use crate::agent::hub::AgentHub;
use crate::auth::{Authenticator, Identity, JwtKeys};
use crate::cluster::Cluster;
use crate::gateway::Gateway;
use crate::graphql::apq::PersistedQueries;
use crate::graphql::limits::{SubscriptionCounts, WsLimits};
use crate::metrics::CacheGauges;
use crate::ratelimit::RateLimiter;
use crate::urls::UrlSigner;

/// Largest request body accepted on any route.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach: one pointer to [`Shared`], so the clone
/// axum makes for every extractor and layer of every request is one
/// reference count, not one per field (those clones and drops were a
/// tenth of a cached read's CPU, the counts bouncing between cores).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The state itself.
pub struct Shared {
    pub gateway: Gateway,
    pub keys: Arc<JwtKeys>,
    /// Credentials (JWTs and API keys) into identities.
    pub auth: Arc<Authenticator>,
    /// This instance's live agent connections.
    pub agents: Arc<AgentHub>,
    pub urls: Arc<UrlSigner>,
    /// The link to other instances (PostgreSQL only).
    pub cluster: Option<Arc<Cluster>>,
    /// Registered automatic persisted queries.
    pub persisted: Arc<PersistedQueries>,
    /// Answers to queries over HTTP, kept while nothing they show changed
    /// (`None`: off).
    pub query_cache: Option<Arc<crate::readcache::ReadCache>>,
    /// Whether browsers get GraphiQL.
    pub graphiql: bool,
    /// Most operations in one batched request.
    pub max_batch: usize,
    pub limiter: Arc<RateLimiter>,
    /// The GraphQL websocket's timeouts and subscription caps.
    pub ws: WsLimits,
    /// Live subscriptions per user (the per-user cap).
    pub subscriptions: Arc<SubscriptionCounts>,
    /// The failure detector's queue, when detection is on.
    pub detector: Option<Arc<crate::detection::Detector>>,
    /// The token that opens `/metrics` on the main address, if any.
    pub metrics_token: Option<String>,
    /// The sizes of this application's caches, for `/metrics`.
    pub caches: CacheGauges,
    /// Flips to true when the server starts shutting down: websockets close
    /// with 1001 ("going away").
    pub shutdown: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    /// The request's identity: the one the rate limiter already verified
    /// (left in the request's extensions), else its credentials verified
    /// now.
    pub async fn identify(&self, extensions: &Extensions, headers: &HeaderMap) -> Identity {
        if let Some(identity) = extensions.get::<Identity>() {
            return identity.clone();
        }
        let (authorization, api_key) = crate::auth::credentials(headers);
        self.auth.identify(authorization, api_key).await
    }
}

/// Completes when the server starts shutting down.
pub async fn going_away(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|down| *down).await.map(|_| ());
}
