//! Typed settings: the command line, every flag also readable from the
//! environment, turned into the [`Config`] that builds the app.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::graphql::SchemaOptions;
use crate::graphql::limits::Limits;
use crate::ratelimit::RateLimits;

/// The database used when nothing is configured: a SQLite file in the
/// working directory, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://printgate.db?mode=rwc";
/// Where `serve` listens when nothing is configured.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Which defaults apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Environment {
    #[default]
    Development,
    Production,
}

/// Where the data lives (`serve`, `migrate`, and `token`, whose
/// development secret sits beside the SQLite file).
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://FILE?mode=rwc` or `postgres://...`.
    #[arg(long, env = "PRINTGATE_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Largest number of pooled database connections.
    #[arg(long, env = "PRINTGATE_DB_POOL_SIZE", default_value_t = 10)]
    pub db_pool_size: u32,
    /// Seconds to wait for a database connection.
    #[arg(long, env = "PRINTGATE_DB_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub db_connect_timeout: Duration,
    /// Longest a single SQL statement may run (PostgreSQL).
    #[arg(long, env = "PRINTGATE_DB_STATEMENT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub db_statement_timeout: Duration,
}

impl Default for DatabaseArgs {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.into(),
            db_pool_size: 10,
            db_connect_timeout: Duration::from_secs(5),
            db_statement_timeout: Duration::from_secs(10),
        }
    }
}

/// The HS256 secret (`serve`, `token` and `demo` sign or verify with it).
#[derive(Debug, Clone, Default, Args)]
pub struct JwtSecretArg {
    /// HS256 secret for bearer tokens. Unset in development: a generated
    /// secret is kept in a file beside the SQLite database.
    #[arg(long, env = "PRINTGATE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

/// How bearer tokens are verified (`serve`).
#[derive(Debug, Clone, Args)]
pub struct JwtArgs {
    #[command(flatten)]
    pub secret: JwtSecretArg,
    /// PEM public key (RSA or EC) to verify RS256/ES256 tokens from an
    /// identity provider, instead of the HS256 secret.
    #[arg(long, env = "PRINTGATE_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,
    /// An identity provider's JWKS URL (e.g. a Keycloak realm's
    /// `.../protocol/openid-connect/certs`): tokens are verified with the
    /// key their `kid` names (RS256, ES256, EdDSA, ...), the document
    /// cached as its headers say and fetched again for an unknown `kid`.
    #[arg(long, env = "PRINTGATE_JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,
    /// The claim that names the user.
    #[arg(long, env = "PRINTGATE_JWT_USER_CLAIM", default_value = "sub")]
    pub jwt_user_claim: String,
    /// The claim that holds the user's email.
    #[arg(long, env = "PRINTGATE_JWT_EMAIL_CLAIM", default_value = "email")]
    pub jwt_email_claim: String,
    /// Required `iss` claim, if set.
    #[arg(long, env = "PRINTGATE_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim, if set.
    #[arg(long, env = "PRINTGATE_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
}

impl Default for JwtArgs {
    /// The flags' defaults (what `token` and `demo`, which take only the
    /// secret, verify with).
    fn default() -> Self {
        let claims = ClaimNames::default();
        Self {
            secret: JwtSecretArg::default(),
            jwt_public_key: None,
            jwt_jwks_url: None,
            jwt_user_claim: claims.user,
            jwt_email_claim: claims.email,
            jwt_issuer: None,
            jwt_audience: None,
        }
    }
}

/// Which defaults apply (`serve`, and `token`: production never generates
/// a secret).
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct EnvironmentArg {
    /// `development` or `production`.
    #[arg(long = "env", env = "PRINTGATE_ENV", value_enum, default_value_t)]
    pub environment: Environment,
}

/// How log lines are written (every subcommand).
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct LogArgs {
    /// `text` or `json`.
    #[arg(
        long,
        env = "PRINTGATE_LOG_FORMAT",
        value_enum,
        default_value_t,
        global = true
    )]
    pub log_format: LogFormat,
}

/// What the server reads besides its database and tokens (`serve`, and
/// `demo`, which brings its own database and tokens).
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "PRINTGATE_BIND", default_value = DEFAULT_BIND)]
    pub bind: String,
    /// The origin clients reach printgate at (e.g. `https://farm.example`),
    /// used for absolute snapshot URLs; unset, they are relative paths.
    #[arg(long, env = "PRINTGATE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Serve GraphiQL to browsers (default: on in development, off in
    /// production).
    #[arg(long, env = "PRINTGATE_GRAPHIQL")]
    pub graphiql: Option<bool>,
    /// Answer introspection and suggest field names (default: on in
    /// development, off in production).
    #[arg(long, env = "PRINTGATE_INTROSPECTION")]
    pub introspection: Option<bool>,
    /// Deepest selection nesting a query may have.
    #[arg(long, env = "PRINTGATE_MAX_QUERY_DEPTH", default_value_t = Limits::default().depth)]
    pub max_query_depth: usize,
    /// Highest query complexity (a field counts 1, list fields 20 times
    /// their selection).
    #[arg(long, env = "PRINTGATE_MAX_QUERY_COMPLEXITY", default_value_t = Limits::default().complexity)]
    pub max_query_complexity: usize,
    /// Most aliases in one document.
    #[arg(long, env = "PRINTGATE_MAX_ALIASES", default_value_t = Limits::default().aliases)]
    pub max_aliases: usize,
    /// Most root fields in one operation.
    #[arg(long, env = "PRINTGATE_MAX_ROOT_FIELDS", default_value_t = Limits::default().root_fields)]
    pub max_root_fields: usize,
    /// Most lexical tokens in one document.
    #[arg(long, env = "PRINTGATE_MAX_TOKENS", default_value_t = Limits::default().tokens)]
    pub max_tokens: usize,
    /// Most operations in one batched request.
    #[arg(long, env = "PRINTGATE_MAX_BATCH", default_value_t = Limits::default().batch)]
    pub max_batch: usize,
    /// Requests per second each caller (a token, or an IP address without
    /// one) may make, sustained; 0 turns rate limiting off.
    #[arg(long, env = "PRINTGATE_RATE_LIMIT", default_value_t = RateLimits::default().per_second)]
    pub rate_limit: f64,
    /// Requests a caller may make at once above the sustained rate.
    #[arg(long, env = "PRINTGATE_RATE_BURST", default_value_t = RateLimits::default().burst)]
    pub rate_burst: f64,
    /// Requests per second one client address may make, sustained, whoever
    /// the callers behind it are.
    #[arg(long, env = "PRINTGATE_RATE_LIMIT_PER_ADDRESS", default_value_t = RateLimits::default().per_address_per_second)]
    pub rate_limit_per_address: f64,
    /// Requests a client address may make at once above its sustained rate.
    #[arg(long, env = "PRINTGATE_RATE_BURST_PER_ADDRESS", default_value_t = RateLimits::default().per_address_burst)]
    pub rate_burst_per_address: f64,
    /// Reverse proxies (addresses or CIDR ranges, comma-separated) whose
    /// `X-Forwarded-For` names the client; from anyone else it is ignored.
    #[arg(
        long,
        env = "PRINTGATE_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = parse_net,
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Largest GraphQL document, in bytes.
    #[arg(long, env = "PRINTGATE_MAX_DOCUMENT_BYTES", default_value_t = Limits::default().document_bytes)]
    pub max_document_bytes: usize,
    /// Memory budget of the parsed-document cache, in bytes.
    #[arg(long, env = "PRINTGATE_DOCUMENT_CACHE_BYTES", default_value_t = crate::graphql::documents::DEFAULT_CACHE_BYTES)]
    pub document_cache_bytes: usize,
    /// Memory budget of the resolved printers kept for list answers (each
    /// reused while its rows are unchanged, at most 1 s), in bytes; 0 turns
    /// it off.
    #[arg(long, env = "PRINTGATE_PRINTER_CACHE_BYTES", default_value_t = crate::graphql::rendered::DEFAULT_CACHE_BYTES)]
    pub printer_cache_bytes: usize,
    /// Memory budget of the automatic persisted queries, in bytes.
    #[arg(long, env = "PRINTGATE_APQ_CACHE_BYTES", default_value_t = crate::graphql::apq::DEFAULT_CACHE_BYTES)]
    pub apq_cache_bytes: usize,
    /// Memory budget of the REST read cache, in bytes.
    #[arg(long, env = "PRINTGATE_REST_CACHE_BYTES", default_value_t = Guards::default().rest_cache_bytes)]
    pub rest_cache_bytes: usize,
    /// Memory budget of the GraphQL query cache (answers to queries over
    /// HTTP, kept while nothing they show changed), in bytes; 0 turns it
    /// off.
    #[arg(long, env = "PRINTGATE_GRAPHQL_CACHE_BYTES", default_value_t = Guards::default().graphql_cache_bytes)]
    pub graphql_cache_bytes: usize,
    /// Most printers one user may have (archived ones count; deleted ones
    /// do not).
    #[arg(long, env = "PRINTGATE_MAX_PRINTERS_PER_USER", default_value_t = Guards::default().max_printers_per_user)]
    pub max_printers_per_user: u64,
    /// Most unrevoked API keys one user may have.
    #[arg(long, env = "PRINTGATE_MAX_API_KEYS_PER_USER", default_value_t = Guards::default().max_api_keys_per_user)]
    pub max_api_keys_per_user: u64,
    /// Most webhook endpoints one user may have.
    #[arg(long, env = "PRINTGATE_MAX_WEBHOOKS_PER_USER", default_value_t = Guards::default().max_webhooks_per_user)]
    pub max_webhooks_per_user: u64,
    /// Most deliveries one webhook endpoint may have waiting (a receiver
    /// that is down); past it new events for it are recorded as failed.
    #[arg(long, env = "PRINTGATE_WEBHOOK_MAX_PENDING", default_value_t = Guards::default().max_pending_deliveries)]
    pub webhook_max_pending: u64,
    /// Longest a client may take to send a request's headers.
    #[arg(long, env = "PRINTGATE_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,
    /// Most open connections (HTTP and websockets) from one client address
    /// (a farm behind one NAT address holds one per printer); trusted
    /// proxies are not held to it.
    #[arg(long, env = "PRINTGATE_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = Guards::default().max_connections_per_address)]
    pub max_connections_per_address: usize,
    /// Most open connections in all.
    #[arg(long, env = "PRINTGATE_MAX_CONNECTIONS", default_value_t = Guards::default().max_connections)]
    pub max_connections: usize,
    /// Longest a GraphQL websocket may stay open before `connection_init`.
    #[arg(long, env = "PRINTGATE_WS_INIT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub ws_init_timeout: Duration,
    /// A GraphQL websocket silent (no message, no ping or pong) this long
    /// is closed.
    #[arg(long, env = "PRINTGATE_WS_IDLE_TIMEOUT", default_value = "90s", value_parser = humantime::parse_duration)]
    pub ws_idle_timeout: Duration,
    /// Most subscriptions one GraphQL websocket may run at once.
    #[arg(long, env = "PRINTGATE_MAX_SUBSCRIPTIONS_PER_CONNECTION", default_value_t = Guards::default().max_subscriptions_per_connection)]
    pub max_subscriptions_per_connection: usize,
    /// Most subscriptions one user may run at once, over all connections.
    #[arg(long, env = "PRINTGATE_MAX_SUBSCRIPTIONS_PER_USER", default_value_t = Guards::default().max_subscriptions_per_user)]
    pub max_subscriptions_per_user: usize,
    /// How long printer events, G-code file records and snapshots are kept.
    #[arg(long, env = "PRINTGATE_RETENTION", default_value = "90days", value_parser = humantime::parse_duration)]
    pub retention: Duration,
    /// Serve `/metrics` on this separate address (e.g. `127.0.0.1:9090`)
    /// instead of the main one.
    #[arg(long, env = "PRINTGATE_METRICS_BIND")]
    pub metrics_bind: Option<String>,
    /// A bearer token that opens `/metrics` on the main address; without
    /// it (and without `--metrics-bind`) `/metrics` is not served there.
    #[arg(long, env = "PRINTGATE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Secret for signing snapshot URLs, shared by every instance. Derived
    /// from the HS256 secret when unset; required in production with a JWT
    /// public key.
    #[arg(long, env = "PRINTGATE_URL_SIGNING_SECRET", hide_env_values = true)]
    pub url_signing_secret: Option<String>,
    /// Obico's ML service (`ml_api`), e.g. `http://127.0.0.1:3333`: turns
    /// failure detection on. Unset, nothing is judged.
    #[arg(long, env = "PRINTGATE_ML_API_URL")]
    pub ml_api_url: Option<String>,
    /// The ML service's token (sent as `Authorization: Bearer`), if it
    /// has one.
    #[arg(long, env = "PRINTGATE_ML_API_TOKEN", hide_env_values = true)]
    pub ml_api_token: Option<String>,
    /// Longest an ML call may take.
    #[arg(long, env = "PRINTGATE_ML_API_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub ml_api_timeout: Duration,
    /// The origin the ML service reaches printgate at, for the image URLs
    /// it fetches (default: `--public-url`, else this server's own
    /// address).
    #[arg(long, env = "PRINTGATE_INTERNAL_URL")]
    pub internal_url: Option<String>,
    /// Least time between two judged frames of a printer.
    #[arg(long, env = "PRINTGATE_MIN_DETECTION_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub min_detection_interval: Duration,
    /// Least time between two failure alerts of a print.
    #[arg(long, env = "PRINTGATE_ALERT_COOLDOWN", default_value = "90s", value_parser = humantime::parse_duration)]
    pub alert_cooldown: Duration,
    /// Frames waiting to be judged on this instance, at most (more are
    /// skipped and counted).
    #[arg(long, env = "PRINTGATE_DETECTION_QUEUE", default_value_t = 256)]
    pub detection_queue: usize,
    /// ML calls in flight at once.
    #[arg(long, env = "PRINTGATE_DETECTION_CONCURRENCY", default_value_t = 4)]
    pub detection_concurrency: usize,
    /// Webhook retry delays, comma-separated: the first is the delay
    /// before the first attempt, each next one after a failure (then a
    /// tenth of jitter either way); after the last a delivery has failed
    /// and its endpoint is disabled.
    #[arg(long, env = "PRINTGATE_WEBHOOK_RETRY_SCHEDULE", default_value = "0s,5s,5m,30m,2h,5h,10h,14h,20h,24h", value_delimiter = ',', value_parser = humantime::parse_duration)]
    pub webhook_retry_schedule: Vec<Duration>,
    /// Longest one webhook attempt may take.
    #[arg(long, env = "PRINTGATE_WEBHOOK_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub webhook_timeout: Duration,
    /// How long a printer must stay offline before `printer.offline` is
    /// sent (an agent that reconnects sooner is not announced).
    #[arg(long, env = "PRINTGATE_WEBHOOK_OFFLINE_GRACE", default_value = "60s", value_parser = humantime::parse_duration)]
    pub webhook_offline_grace: Duration,
    /// Let webhook endpoints point at loopback, private, link-local and
    /// metadata addresses (default: allowed in development, refused in
    /// production; allow it for receivers on your own network, e.g. Home
    /// Assistant on the LAN).
    #[arg(long, env = "PRINTGATE_WEBHOOK_ALLOW_PRIVATE_TARGETS")]
    pub webhook_allow_private_targets: Option<bool>,
    /// Webhook endpoints one instance delivers to at once.
    #[arg(long, env = "PRINTGATE_WEBHOOK_CONCURRENCY", default_value_t = 32)]
    pub webhook_concurrency: usize,
    /// Longest a request may take before it is answered 408.
    #[arg(long, env = "PRINTGATE_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Origins allowed to call printgate from a browser (comma-separated,
    /// e.g. `https://app.example`); none by default.
    #[arg(long, env = "PRINTGATE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Trusted-documents mode: a JSON file listing the only GraphQL
    /// documents clients may run (an array, or an object of hash to
    /// document); clients cannot register others.
    #[arg(long, env = "PRINTGATE_TRUSTED_DOCUMENTS")]
    pub trusted_documents: Option<PathBuf>,
}

/// Everything `serve` reads.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub jwt: JwtArgs,
    #[command(flatten)]
    pub env: EnvironmentArg,
}

/// Everything [`crate::Application::build`] needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: String,
    /// Introspection, suggestions and query limits.
    pub schema: SchemaOptions,
    /// Whether browsers get GraphiQL at `GET /graphql`.
    pub graphiql: bool,
    pub rate_limits: RateLimits,
    pub request_timeout: Duration,
    /// Origins allowed by CORS; empty allows none.
    pub cors_origins: Vec<String>,
    /// The trusted-documents manifest, when that mode is on.
    pub trusted_documents: Option<PathBuf>,
    /// Prefix of snapshot URLs (an origin, or empty for relative paths).
    pub public_url: String,
    pub database: DatabaseConfig,
    pub jwt: JwtConfig,
    /// Bounds on what clients can make the server keep.
    pub guards: Guards,
    /// Failure detection, when an ML service is configured.
    pub detection: Option<crate::detection::DetectionConfig>,
    /// Webhook retries, timeouts and where endpoints may point.
    pub webhooks: WebhookOptions,
}

/// How the webhook delivery worker (`src/webhooks.rs`) runs.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Longest one attempt may take (connect, send, answer).
    pub timeout: Duration,
    /// Endpoints served at once by this instance.
    pub concurrency: usize,
    /// Whether endpoints may resolve to private addresses (development).
    pub allow_private_targets: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            concurrency: 32,
            allow_private_targets: true,
        }
    }
}

/// How webhooks are delivered: the service's rules and the worker's.
#[derive(Debug, Clone, Default)]
pub struct WebhookOptions {
    pub settings: crate::service::webhooks::WebhookSettings,
    pub worker: WebhookConfig,
}

/// Bounds on what clients (users, agents, anyone) can make the server
/// keep: memory, rows, connections, time. Every one is in
/// docs/operations.md.
#[derive(Debug, Clone)]
pub struct Guards {
    pub apq_cache_bytes: usize,
    pub rest_cache_bytes: usize,
    pub graphql_cache_bytes: usize,
    pub max_printers_per_user: u64,
    pub max_api_keys_per_user: u64,
    pub max_webhooks_per_user: u64,
    pub max_pending_deliveries: u64,
    pub header_read_timeout: Duration,
    pub max_connections_per_address: usize,
    pub max_connections: usize,
    pub ws_init_timeout: Duration,
    pub ws_idle_timeout: Duration,
    pub max_subscriptions_per_connection: usize,
    pub max_subscriptions_per_user: usize,
    pub retention: Duration,
    pub metrics_bind: Option<String>,
    pub metrics_token: Option<String>,
}

impl Default for Guards {
    fn default() -> Self {
        Self {
            apq_cache_bytes: crate::graphql::apq::DEFAULT_CACHE_BYTES,
            rest_cache_bytes: 64 * 1024 * 1024,
            graphql_cache_bytes: 64 * 1024 * 1024,
            max_printers_per_user: 1000,
            max_api_keys_per_user: 50,
            max_webhooks_per_user: 20,
            max_pending_deliveries: 1000,
            header_read_timeout: Duration::from_secs(10),
            max_connections_per_address: 2048,
            max_connections: 16_384,
            ws_init_timeout: Duration::from_secs(10),
            ws_idle_timeout: Duration::from_secs(90),
            max_subscriptions_per_connection: 100,
            max_subscriptions_per_user: 500,
            retention: Duration::from_secs(90 * 24 * 3600),
            metrics_bind: None,
            metrics_token: None,
        }
    }
}

/// Where the data lives and how many connections to hold.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: String,
    pub pool_size: u32,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
}

impl DatabaseConfig {
    /// A config with the default timeouts.
    pub fn new(url: impl Into<String>, pool_size: u32) -> Self {
        Self {
            url: url.into(),
            pool_size,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres:") || self.url.starts_with("postgresql:")
    }
}

/// How bearer tokens are verified.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub secret: Option<String>,
    pub public_key: Option<PathBuf>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Secret for snapshot URLs (else derived from the HS256 secret).
    pub url_secret: Option<String>,
    pub production: bool,
    /// Where the development secret is kept when no secret is configured.
    pub dev_secret_path: PathBuf,
    /// An identity provider's JWKS document: keys by `kid`, refreshed.
    pub jwks_url: Option<String>,
    /// Which claims name the user and the email.
    pub claims: ClaimNames,
}

/// Which token claims printgate reads the user from.
#[derive(Debug, Clone)]
pub struct ClaimNames {
    /// The claim naming the user (default `sub`).
    pub user: String,
    /// The claim holding the email (default `email`).
    pub email: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            user: "sub".into(),
            email: "email".into(),
        }
    }
}

impl DatabaseArgs {
    /// The database these flags name.
    pub fn config(&self) -> DatabaseConfig {
        DatabaseConfig {
            url: self.database_url.clone(),
            pool_size: self.db_pool_size.max(1),
            connect_timeout: self.db_connect_timeout,
            statement_timeout: self.db_statement_timeout,
        }
    }
}

impl JwtArgs {
    /// The token keys these flags name; the development secret sits beside
    /// `database_url`'s file.
    pub fn config(
        &self,
        production: bool,
        database_url: &str,
        url_secret: Option<String>,
    ) -> JwtConfig {
        JwtConfig {
            secret: self.secret.jwt_secret.clone().filter(|s| !s.is_empty()),
            public_key: self.jwt_public_key.clone(),
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            url_secret: url_secret.filter(|s| !s.is_empty()),
            production,
            dev_secret_path: dev_secret_path(database_url),
            jwks_url: self.jwt_jwks_url.clone().filter(|u| !u.is_empty()),
            claims: ClaimNames {
                user: self.jwt_user_claim.clone(),
                email: self.jwt_email_claim.clone(),
            },
        }
    }
}

impl Settings {
    /// The [`Config`] these settings describe.
    pub fn config(&self) -> Config {
        let production = self.env.environment == Environment::Production;
        Config {
            bind: self.server.bind.clone(),
            schema: SchemaOptions {
                introspection: self.server.introspection.unwrap_or(!production),
                limits: Limits {
                    depth: self.server.max_query_depth,
                    complexity: self.server.max_query_complexity,
                    aliases: self.server.max_aliases,
                    root_fields: self.server.max_root_fields,
                    tokens: self.server.max_tokens,
                    batch: self.server.max_batch.max(1),
                    document_bytes: self.server.max_document_bytes.max(64),
                },
                document_cache_bytes: self.server.document_cache_bytes,
                printer_cache_bytes: self.server.printer_cache_bytes,
                admission: Default::default(),
            },
            guards: Guards {
                apq_cache_bytes: self.server.apq_cache_bytes,
                rest_cache_bytes: self.server.rest_cache_bytes,
                graphql_cache_bytes: self.server.graphql_cache_bytes,
                max_printers_per_user: self.server.max_printers_per_user,
                max_api_keys_per_user: self.server.max_api_keys_per_user,
                max_webhooks_per_user: self.server.max_webhooks_per_user,
                max_pending_deliveries: self.server.webhook_max_pending,
                header_read_timeout: self.server.header_read_timeout,
                max_connections_per_address: self.server.max_connections_per_address.max(1),
                max_connections: self.server.max_connections.max(1),
                ws_init_timeout: self.server.ws_init_timeout,
                ws_idle_timeout: self.server.ws_idle_timeout,
                max_subscriptions_per_connection: self.server.max_subscriptions_per_connection,
                max_subscriptions_per_user: self.server.max_subscriptions_per_user,
                retention: self.server.retention,
                metrics_bind: self.server.metrics_bind.clone().filter(|b| !b.is_empty()),
                metrics_token: self.server.metrics_token.clone().filter(|t| !t.is_empty()),
            },
            graphiql: self.server.graphiql.unwrap_or(!production),
            rate_limits: RateLimits {
                per_second: self.server.rate_limit.max(0.0),
                burst: self.server.rate_burst.max(1.0),
                per_address_per_second: self.server.rate_limit_per_address.max(0.0),
                per_address_burst: self.server.rate_burst_per_address.max(1.0),
                trusted_proxies: self.server.trusted_proxies.clone(),
            },
            request_timeout: self.server.request_timeout,
            trusted_documents: self.server.trusted_documents.clone(),
            cors_origins: self
                .server
                .cors_origins
                .iter()
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
            public_url: self.server.public_url.clone().unwrap_or_default(),
            webhooks: WebhookOptions {
                settings: crate::service::webhooks::WebhookSettings {
                    retry_schedule: if self.server.webhook_retry_schedule.is_empty() {
                        crate::service::webhooks::default_schedule()
                    } else {
                        self.server.webhook_retry_schedule.clone()
                    },
                    offline_grace: self.server.webhook_offline_grace,
                    allow_private_targets: self
                        .server
                        .webhook_allow_private_targets
                        .unwrap_or(!production),
                    ..Default::default()
                },
                worker: WebhookConfig {
                    timeout: self.server.webhook_timeout,
                    concurrency: self.server.webhook_concurrency.max(1),
                    allow_private_targets: self
                        .server
                        .webhook_allow_private_targets
                        .unwrap_or(!production),
                },
            },
            detection: self
                .server
                .ml_api_url
                .clone()
                .filter(|u| !u.is_empty())
                .map(|url| crate::detection::DetectionConfig {
                    ml_api_url: url,
                    ml_api_token: self.server.ml_api_token.clone().filter(|t| !t.is_empty()),
                    ml_timeout: self.server.ml_api_timeout,
                    image_base: self
                        .server
                        .internal_url
                        .clone()
                        .or_else(|| self.server.public_url.clone())
                        .unwrap_or_default(),
                    settings: crate::service::detection::DetectionSettings {
                        min_interval: self.server.min_detection_interval,
                        alert_cooldown: self.server.alert_cooldown,
                    },
                    queue: self.server.detection_queue,
                    concurrency: self.server.detection_concurrency,
                }),
            database: self.database.config(),
            jwt: self.jwt.config(
                production,
                &self.database.database_url,
                self.server.url_signing_secret.clone(),
            ),
        }
    }
}

/// An address (`10.0.0.1`) or a range (`10.0.0.0/8`).
fn parse_net(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is not an IP address or CIDR range"))
}

/// The development secret sits beside the SQLite file (`printgate.db` ->
/// `printgate.db.jwt-secret`), or in the working directory for other
/// databases.
pub fn dev_secret_path(database_url: &str) -> PathBuf {
    match sqlite_file(database_url) {
        Some(file) => {
            let mut name = file
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_default();
            name.push(".jwt-secret");
            file.with_file_name(name)
        }
        None => PathBuf::from("printgate.jwt-secret"),
    }
}

/// The file a `sqlite:` URL points at, if it is a file.
pub fn sqlite_file(database_url: &str) -> Option<PathBuf> {
    let rest = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_secret_sits_beside_the_sqlite_file() {
        assert_eq!(
            dev_secret_path("sqlite://data/pg.db?mode=rwc"),
            PathBuf::from("data/pg.db.jwt-secret")
        );
        assert_eq!(
            dev_secret_path("postgres://localhost/x"),
            PathBuf::from("printgate.jwt-secret")
        );
    }

    #[test]
    fn the_jwt_flags_default_as_parsed() {
        use clap::Parser;
        let cli = crate::cli::Cli::parse_from(["printgate"]);
        let parsed = &cli.settings.jwt;
        let default = JwtArgs::default();
        assert_eq!(parsed.jwt_user_claim, default.jwt_user_claim);
        assert_eq!(parsed.jwt_email_claim, default.jwt_email_claim);
    }

    #[test]
    fn every_flag_has_its_default() {
        use clap::Parser;
        let cli = crate::cli::Cli::parse_from(["printgate"]);
        assert!(cli.command.is_none());
        assert_eq!(cli.settings.server.bind, DEFAULT_BIND);
        assert_eq!(cli.settings.database.database_url, DEFAULT_DATABASE_URL);
    }
}
