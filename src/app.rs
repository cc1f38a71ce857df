//! The application: composes every edge's router over the shared
//! [`AppState`], and [`Application`], which binds a listener and serves
//! until stopped. Nothing below the edges imports this module.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;

use crate::agent::hub::AgentHub;
use crate::auth::JwtKeys;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::events::{EventBus, LocalBus};
use crate::gateway::Gateway;
use crate::graphql::apq::PersistedQueries;
use crate::metrics::CacheGauges;
use crate::ratelimit::RateLimiter;
use crate::rest::RestApi;
use crate::service::{CommandDelivery, Service, ServiceLimits};
use crate::state::{AppState, MAX_BODY_BYTES};
use crate::urls::UrlSigner;
use crate::{agent, database, graphql, metrics, ratelimit, server};

/// A start-up failure (bad configuration, unreachable database, busy port).
pub type StartupError = Box<dyn std::error::Error + Send + Sync>;

/// All routes, with their layers applied once.
pub fn router(state: AppState, rest: &Arc<RestApi>) -> Router {
    Router::new()
        .merge(rest.router())
        .merge(agent::router())
        .route("/graphql/ws", get(graphql::ws::subscribe))
        .route("/graphiql/{file}", get(graphql::playground::asset))
        .route(
            "/graphql",
            get(graphql::http::get).post(graphql::http::post),
        )
        .route("/healthz", get(healthz))
        .route_service(
            "/metrics",
            get(metrics::serve_with_token).with_state(exposition(&state)),
        )
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            ratelimit::Guard {
                limiter: state.limiter.clone(),
                auth: state.auth.clone(),
            },
            ratelimit::limit,
        ))
        .layer(axum::middleware::from_fn(metrics::observe))
        .with_state(state)
}

/// What `/metrics` reads of the application.
fn exposition(state: &AppState) -> metrics::Exposition {
    metrics::Exposition {
        agents: state.agents.clone(),
        db: state.gateway.service().db().clone(),
        caches: state.caches.clone(),
        token: state.metrics_token.clone(),
    }
}

/// The router of the separate metrics address: `/metrics` only.
fn metrics_router(state: &AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::serve))
        .fallback(not_found)
        .with_state(exposition(state))
}

/// The request timeout and, when origins are configured, CORS.
fn with_hygiene(router: Router, config: &Config) -> Router {
    let router = router.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        config.request_timeout,
    ));
    let origins: Vec<HeaderValue> = config
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        // No CORS headers at all: browsers refuse cross-origin calls.
        return router;
    }
    router.layer(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// Liveness: the process answers.
async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Readiness: the database answers (503 while it does not; no restart is
/// needed when it comes back, the pool reconnects).
async fn readyz(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    let ping = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        state.gateway.service().db().ping(),
    )
    .await;
    // The ML service is reported, never a reason to be unready: uploads and
    // statuses work without it.
    let detection = state.detector.as_ref().map(|_| {
        let last = crate::metrics::metrics()
            .detection
            .last_ml_error
            .lock()
            .ok()
            .and_then(|e| e.clone());
        match last {
            None => json!({"ml": "ok"}),
            Some(e) => json!({"ml": "failing", "detail": crate::metrics::truncated(&e)}),
        }
    });
    // Tokens from the identity provider cannot be checked until its keys
    // were fetched once; after that an unreachable IdP is reported, and
    // the keys there were keep working.
    let jwks = state.keys.jwks().map(|j| j.status());
    if let (Ok(Ok(())), Some(j)) = (&ping, &jwks)
        && j.loaded_at.is_none()
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unavailable",
                "detail": "The identity provider's signing keys (JWKS) could not be fetched yet.",
                "jwks": {"error": j.last_error},
            })),
        );
    }
    match ping {
        Ok(Ok(())) => {
            let mut body = json!({"status": "ready"});
            if let Some(d) = detection {
                body["detection"] = d;
            }
            if let Some(j) = jwks {
                body["jwks"] = json!({
                    "keys": j.keys,
                    "loaded_at": j.loaded_at.map(|t| t.to_rfc3339()),
                    "error": j.last_error,
                });
            }
            (StatusCode::OK, Json(body))
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "detail": "The database does not answer."})),
        ),
    }
}

async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, Json(json!({"detail": "Not found."})))
}

/// A service failure at start-up, with its cause (operators see it; no
/// client does).
fn startup(e: crate::error::AppError) -> StartupError {
    match e {
        crate::error::AppError::Internal(cause) => cause.into(),
        other => other.client_message().into(),
    }
}

/// A built, bound application, ready to serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    /// The separate `/metrics` listener, when one is configured.
    metrics: Option<TcpListener>,
    conn_limits: server::ConnLimits,
    retention: std::time::Duration,
}

impl Application {
    /// Connects and migrates the database, loads the keys and binds the
    /// listener (port 0 picks a free port).
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let keys = Arc::new(JwtKeys::load(&config.jwt)?);
        let db = database::connect(&config.database).await?;
        database::migrate(&db).await?;
        let agents = Arc::new(AgentHub::default());
        // On PostgreSQL, instances share events, commands and agent presence
        // over LISTEN/NOTIFY; on SQLite there is only ever one instance.
        let (cluster, commands, events): (_, Arc<dyn CommandDelivery>, Arc<dyn EventBus>) =
            if config.database.is_postgres() {
                let c = Cluster::start(&db, agents.clone()).await?;
                (Some(c.clone()), c.clone(), c)
            } else {
                (None, agents.clone(), Arc::new(LocalBus::default()))
            };
        let mut service = Service::new(db, commands, events)
            .with_limits(ServiceLimits {
                max_printers_per_user: config.guards.max_printers_per_user,
                max_api_keys_per_user: config.guards.max_api_keys_per_user,
                max_webhooks_per_user: config.guards.max_webhooks_per_user,
                max_pending_deliveries: config.guards.max_pending_deliveries,
            })
            .with_webhooks(config.webhooks.settings.clone());
        // Printers whose agents were connected to an instance that is gone
        // (on SQLite: to this one before it restarted) show offline now,
        // not when their status ages out.
        match &cluster {
            Some(c) => {
                service = service.with_instance(c.instance());
                service.heartbeat().await.map_err(startup)?;
                service.sweep_presence(false).await.map_err(startup)?;
            }
            None => {
                service.sweep_presence(true).await.map_err(startup)?;
                service.release_webhook_leases().await.map_err(startup)?;
            }
        }
        let urls = Arc::new(UrlSigner::new(keys.url_key().to_vec(), &config.public_url));
        let caches = CacheGauges::default();
        let persisted = Arc::new(match &config.trusted_documents {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let manifest: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                PersistedQueries::trusted(&manifest)?
            }
            None => PersistedQueries::new(
                config.guards.apq_cache_bytes,
                caches.persisted_queries.clone(),
            ),
        });
        // Trusted-documents mode holds inside the schema, for every
        // transport; the REST routes' own documents are trusted too.
        let mut schema_options = config.schema.clone();
        if let Some(mut allowed) = persisted.trusted_hashes() {
            allowed.extend(
                crate::rest::routes::ROUTES
                    .iter()
                    .map(|r| graphql::apq::hash(r.document)),
            );
            schema_options.admission.trusted = Some(Arc::new(allowed));
        }
        let gateway = Gateway::new(service, urls.clone(), schema_options, &caches);
        // The REST routes are compiled against the schema's types, read by
        // introspection, which production mode turns off for clients.
        let types_schema = graphql::build_schema(urls.clone(), graphql::SchemaOptions::default());
        let rest = Arc::new(
            RestApi::new(
                &types_schema,
                config.guards.rest_cache_bytes,
                caches.rest.clone(),
            )
            .await?,
        );
        let query_cache = (config.guards.graphql_cache_bytes > 0).then(|| {
            Arc::new(crate::readcache::ReadCache::new(
                config.guards.graphql_cache_bytes,
                caches.graphql.clone(),
            ))
        });
        let auth = Arc::new(crate::auth::Authenticator::new(
            keys.clone(),
            gateway.service().clone(),
        ));
        let state = crate::state::Shared {
            gateway,
            keys,
            auth,
            agents,
            urls,
            cluster,
            query_cache,
            persisted,
            graphiql: config.graphiql,
            max_batch: config.schema.limits.batch,
            limiter: Arc::new(RateLimiter::new(config.rate_limits.clone())),
            caches,
            detector: None,
            metrics_token: config.guards.metrics_token.clone(),
            ws: graphql::limits::WsLimits {
                init_timeout: config.guards.ws_init_timeout,
                idle_timeout: config.guards.ws_idle_timeout,
                per_connection: config.guards.max_subscriptions_per_connection,
                per_user: config.guards.max_subscriptions_per_user,
            },
            subscriptions: Arc::default(),
            shutdown: tokio::sync::watch::Sender::new(false),
        };
        let listener = TcpListener::bind(&config.bind).await?;
        let detector = match &config.detection {
            Some(d) => {
                let mut d = d.clone();
                if d.image_base.is_empty() {
                    // The ML service fetches images from this server.
                    let mut addr = listener.local_addr()?;
                    if addr.ip().is_unspecified() {
                        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                    }
                    d.image_base = format!("http://{addr}");
                }
                let judge = crate::detection::MlClient::new(
                    &d.ml_api_url,
                    d.ml_api_token.clone(),
                    d.ml_timeout,
                )?;
                tracing::info!(ml_api = %d.ml_api_url, images = %d.image_base, "failure detection on");
                Some(crate::detection::Detector::start(
                    &d,
                    state.gateway.service().clone(),
                    state.urls.clone(),
                    Arc::new(judge),
                ))
            }
            None => None,
        };
        let state = AppState::new(crate::state::Shared { detector, ..state });
        crate::webhooks::start(
            state.gateway.service().clone(),
            config.webhooks.worker.clone(),
            state.shutdown.subscribe(),
        )?;
        let metrics = match &config.guards.metrics_bind {
            Some(bind) => Some(TcpListener::bind(bind).await?),
            None => None,
        };
        let router = with_hygiene(router(state.clone(), &rest), &config);
        Ok(Self {
            listener,
            router,
            state,
            metrics,
            conn_limits: server::ConnLimits {
                per_address: config.guards.max_connections_per_address,
                total: config.guards.max_connections,
                header_read_timeout: config.guards.header_read_timeout,
                trusted_proxies: config.rate_limits.trusted_proxies.clone(),
            },
            retention: config.guards.retention,
        })
    }

    /// The address of the separate `/metrics` listener, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes; then stops accepting, tells every
    /// websocket to close with 1001, and finishes in-flight requests (each
    /// bounded by the request timeout).
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let going_away = self.state.shutdown.clone();
        let shutdown = async move {
            shutdown.await;
            tracing::info!("shutting down: closing websockets, finishing requests");
            let _ = going_away.send(true);
        };
        tokio::spawn(crate::janitor::run(
            self.state.gateway.service().clone(),
            self.state.cluster.is_some(),
            self.retention,
            self.state.shutdown.subscribe(),
        ));
        if let Some(listener) = self.metrics {
            let router = metrics_router(&self.state);
            let mut down = self.state.shutdown.subscribe();
            let limits = self.conn_limits.clone();
            tokio::spawn(async move {
                let stop = async move {
                    let _ = down.wait_for(|d| *d).await;
                };
                if let Err(e) = server::serve(listener, router, limits, stop).await {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            });
        }
        server::serve(self.listener, self.router, self.conn_limits, shutdown).await
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
