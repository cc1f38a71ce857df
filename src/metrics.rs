//! What printgate is doing, for operators: request counts and latencies by
//! surface, operation and outcome, live agent connections, active
//! subscriptions, commands delivered or not, database pool use, refusals.
//! Served in Prometheus's text format at `GET /metrics`. A request id is
//! given to every request (or taken from a well-formed `x-request-id`),
//! returned in the `x-request-id` header and attached to every log line of
//! the request.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::agent::hub::AgentHub;

/// What `/metrics` reads besides the counters: one application's live
/// connections, database pool and caches, and the token that opens it on
/// the main address.
#[derive(Clone)]
pub struct Exposition {
    pub agents: std::sync::Arc<AgentHub>,
    pub db: sea_orm::DatabaseConnection,
    pub caches: CacheGauges,
    pub token: Option<String>,
}

/// Latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The operation a response came from, set by the GraphQL and REST handlers
/// for the request log and the metrics. Only ever a label from a bounded
/// set (see [`Metrics::operation_label`]), never client text as sent.
#[derive(Debug, Clone)]
pub struct Operation(pub String);

/// Most distinct operation labels kept; names past it count as `other`.
pub const MAX_OPERATION_LABELS: usize = 200;
/// Longest operation name used as a label.
pub const MAX_OPERATION_NAME: usize = 64;
/// Longest client string written to a log line.
pub const MAX_LOGGED_CHARS: usize = 128;

/// The size of one cache, kept by the cache, read by `/metrics`.
#[derive(Debug, Default)]
pub struct CacheGauge {
    bytes: AtomicU64,
    entries: AtomicU64,
}

impl CacheGauge {
    pub fn set(&self, bytes: usize, entries: usize) {
        self.bytes.store(bytes as u64, Ordering::Relaxed);
        self.entries.store(entries as u64, Ordering::Relaxed);
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn entries(&self) -> u64 {
        self.entries.load(Ordering::Relaxed)
    }
}

/// Failure detection's counters.
#[derive(Debug, Default)]
pub struct DetectionMetrics {
    pub judged: AtomicU64,
    /// Frames not judged, by reason (detection.md §2, and a full queue).
    skipped: Mutex<BTreeMap<&'static str, u64>>,
    pub ml_errors: AtomicU64,
    ml_micros: AtomicU64,
    ml_calls: AtomicU64,
    alerts: AtomicU64,
    auto_pauses: AtomicU64,
    /// The last ML error (for `/readyz`), if the last call failed.
    pub last_ml_error: Mutex<Option<String>>,
}

impl DetectionMetrics {
    pub fn skipped(&self, reason: &'static str) {
        if let Ok(mut s) = self.skipped.lock() {
            *s.entry(reason).or_insert(0) += 1;
        }
    }

    /// One ML call and how long it took; `error` when it failed.
    pub fn ml_call(&self, seconds: f64, error: Option<String>) {
        self.ml_calls.fetch_add(1, Ordering::Relaxed);
        self.ml_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        if error.is_some() {
            self.ml_errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut last) = self.last_ml_error.lock() {
            *last = error;
        }
    }

    pub fn alert(&self) {
        self.alerts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn auto_pause(&self) {
        self.auto_pauses.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP printgate_detection_frames_total Snapshot frames judged by the ML service, or skipped and why.\n# TYPE printgate_detection_frames_total counter\nprintgate_detection_frames_total{{outcome=\"judged\"}} {}",
            self.judged.load(Ordering::Relaxed)
        );
        if let Ok(s) = self.skipped.lock() {
            for (why, n) in s.iter() {
                let _ = writeln!(
                    out,
                    "printgate_detection_frames_total{{outcome=\"skipped\",reason=\"{why}\"}} {n}"
                );
            }
        }
        let calls = self.ml_calls.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP printgate_ml_requests_total Calls to the ML service.\n# TYPE printgate_ml_requests_total counter\nprintgate_ml_requests_total {calls}\n# HELP printgate_ml_errors_total ML calls that failed (down, slow, garbage).\n# TYPE printgate_ml_errors_total counter\nprintgate_ml_errors_total {}\n# HELP printgate_ml_request_seconds_sum Time spent in ML calls.\n# TYPE printgate_ml_request_seconds_sum counter\nprintgate_ml_request_seconds_sum {}",
            self.ml_errors.load(Ordering::Relaxed),
            self.ml_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP printgate_failure_alerts_total Failure alerts raised.\n# TYPE printgate_failure_alerts_total counter\nprintgate_failure_alerts_total {}\n# HELP printgate_auto_pauses_total Prints paused by the failure detector.\n# TYPE printgate_auto_pauses_total counter\nprintgate_auto_pauses_total {}",
            self.alerts.load(Ordering::Relaxed),
            self.auto_pauses.load(Ordering::Relaxed)
        );
    }
}

/// The caches of one application whose sizes `/metrics` reports.
#[derive(Debug, Default, Clone)]
pub struct CacheGauges {
    pub persisted_queries: std::sync::Arc<CacheGauge>,
    pub documents: std::sync::Arc<CacheGauge>,
    pub rest: std::sync::Arc<CacheGauge>,
    pub graphql: std::sync::Arc<CacheGauge>,
    pub printers: std::sync::Arc<CacheGauge>,
}

impl CacheGauges {
    fn all(&self) -> [(&'static str, &CacheGauge); 5] {
        [
            ("persisted_queries", &self.persisted_queries),
            ("documents", &self.documents),
            ("rest", &self.rest),
            ("graphql", &self.graphql),
            ("printers", &self.printers),
        ]
    }
}

/// A client string cut to at most [`MAX_LOGGED_CHARS`] characters, for logs.
pub fn truncated(text: &str) -> String {
    match text.char_indices().nth(MAX_LOGGED_CHARS) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    }
}

/// The GraphQL error codes of a response, for the request log.
#[derive(Debug, Clone, Default)]
pub struct ErrorCodes(pub Vec<String>);

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// All metrics of this process.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, String, &'static str), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    errors: Mutex<BTreeMap<String, u64>>,
    /// The operation names admitted as labels so far.
    names: Mutex<std::collections::HashSet<String>>,
    /// Cluster messages dropped because the NOTIFY queue was full.
    pub cluster_dropped: AtomicU64,
    pub subscriptions: AtomicI64,
    pub commands_delivered: AtomicU64,
    pub commands_undelivered: AtomicU64,
    pub rate_limited: AtomicU64,
    /// Connections refused at accept: over the per-address or total cap.
    pub connections_refused: AtomicU64,
    /// Cacheable REST reads answered from the read cache, and not.
    pub rest_cache_hits: AtomicU64,
    pub rest_cache_misses: AtomicU64,
    /// Cacheable REST reads that missed and were answered by the
    /// computation that started next (for all that waited for it).
    pub rest_cache_shared: AtomicU64,
    /// The same for queries over GraphQL HTTP.
    pub graphql_cache_hits: AtomicU64,
    pub graphql_cache_misses: AtomicU64,
    pub graphql_cache_shared: AtomicU64,
    /// Printers of a list reused as resolved, and resolved again.
    pub printer_render_hits: AtomicU64,
    pub printer_render_misses: AtomicU64,
    pub detection: DetectionMetrics,
    /// Webhook delivery attempts that got a 2xx, and the others.
    webhook_ok: AtomicU64,
    webhook_failed: AtomicU64,
}

impl Metrics {
    /// Counts one webhook delivery attempt.
    pub fn webhook_attempt(&self, success: bool) {
        let c = if success {
            &self.webhook_ok
        } else {
            &self.webhook_failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

impl Metrics {
    /// The label of a GraphQL operation: `graphql <name>` when the name is
    /// a plain GraphQL name of at most [`MAX_OPERATION_NAME`] characters
    /// from a caller who is trusted with it (a verified user, or a
    /// registered document) and the label set still has room; else
    /// `graphql other` (`graphql anonymous` without a name). The set of
    /// labels, and so `/metrics`, stays bounded whatever clients send.
    pub fn operation_label(&self, name: Option<&str>, trusted: bool) -> String {
        let Some(name) = name else {
            return "graphql anonymous".into();
        };
        let plain = !name.is_empty()
            && name.len() <= MAX_OPERATION_NAME
            && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let admitted = plain
            && trusted
            && self.names.lock().is_ok_and(|mut n| {
                n.contains(name) || (n.len() < MAX_OPERATION_LABELS && n.insert(name.to_owned()))
            });
        if admitted {
            format!("graphql {name}")
        } else {
            "graphql other".into()
        }
    }

    /// Counts a GraphQL error by its code.
    pub fn error(&self, code: &str) {
        if let Ok(mut e) = self.errors.lock() {
            *e.entry(code.to_owned()).or_insert(0) += 1;
        }
    }

    fn request(
        &self,
        surface: &'static str,
        operation: String,
        outcome: &'static str,
        seconds: f64,
    ) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((surface, operation, outcome)).or_insert(0) += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            let h = l.entry(surface).or_default();
            for (i, b) in BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    h.counts[i] += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
        }
    }

    /// The Prometheus text exposition.
    fn render(&self, state: &Exposition) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP printgate_requests_total Requests by surface, operation and outcome.\n# TYPE printgate_requests_total counter"
        );
        if let Ok(r) = self.requests.lock() {
            for ((s, o, r), n) in r.iter() {
                let _ = writeln!(
                    out,
                    "printgate_requests_total{{surface=\"{s}\",operation=\"{}\",outcome=\"{r}\"}} {n}",
                    escape(o)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP printgate_request_duration_seconds Request latency by surface.\n# TYPE printgate_request_duration_seconds histogram"
        );
        if let Ok(l) = self.latency.lock() {
            for (s, h) in l.iter() {
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "printgate_request_duration_seconds_bucket{{surface=\"{s}\",le=\"{b}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "printgate_request_duration_seconds_bucket{{surface=\"{s}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "printgate_request_duration_seconds_sum{{surface=\"{s}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "printgate_request_duration_seconds_count{{surface=\"{s}\"}} {}",
                    h.count
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP printgate_graphql_errors_total GraphQL errors by code (refusals included).\n# TYPE printgate_graphql_errors_total counter"
        );
        if let Ok(e) = self.errors.lock() {
            for (c, n) in e.iter() {
                let _ = writeln!(out, "printgate_graphql_errors_total{{code=\"{c}\"}} {n}");
            }
        }
        let gauges = [
            (
                "printgate_agent_connections",
                "Live agent websockets on this instance.",
                state.agents.len() as i64,
            ),
            (
                "printgate_subscriptions_active",
                "Active GraphQL subscriptions.",
                self.subscriptions.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP printgate_commands_total Agent commands by whether they reached a live connection.\n# TYPE printgate_commands_total counter"
        );
        let _ = writeln!(
            out,
            "printgate_commands_total{{delivered=\"true\"}} {}",
            self.commands_delivered.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "printgate_commands_total{{delivered=\"false\"}} {}",
            self.commands_undelivered.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP printgate_rate_limited_total Requests refused by the rate limiter.\n# TYPE printgate_rate_limited_total counter\nprintgate_rate_limited_total {}",
            self.rate_limited.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP printgate_cache_bytes Bytes held by each cache (bounded).\n# TYPE printgate_cache_bytes gauge"
        );
        for (name, g) in state.caches.all() {
            let _ = writeln!(
                out,
                "printgate_cache_bytes{{cache=\"{name}\"}} {}",
                g.bytes()
            );
        }
        let _ = writeln!(
            out,
            "# HELP printgate_cache_entries Entries held by each cache.\n# TYPE printgate_cache_entries gauge"
        );
        for (name, g) in state.caches.all() {
            let _ = writeln!(
                out,
                "printgate_cache_entries{{cache=\"{name}\"}} {}",
                g.entries()
            );
        }
        let _ = writeln!(
            out,
            "# HELP printgate_cluster_messages_dropped_total Cluster messages dropped while PostgreSQL was slow or down.\n# TYPE printgate_cluster_messages_dropped_total counter\nprintgate_cluster_messages_dropped_total {}",
            self.cluster_dropped.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP printgate_connections_refused_total Connections refused over the per-address or total cap.\n# TYPE printgate_connections_refused_total counter\nprintgate_connections_refused_total {}",
            self.connections_refused.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP printgate_rest_cache_requests_total Cacheable REST reads by whether the read cache answered (hit: as kept; shared: computed once for all that waited).\n# TYPE printgate_rest_cache_requests_total counter\nprintgate_rest_cache_requests_total{{outcome=\"hit\"}} {}\nprintgate_rest_cache_requests_total{{outcome=\"miss\"}} {}\nprintgate_rest_cache_requests_total{{outcome=\"shared\"}} {}",
            self.rest_cache_hits.load(Ordering::Relaxed),
            self.rest_cache_misses.load(Ordering::Relaxed),
            self.rest_cache_shared.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP printgate_graphql_cache_requests_total Queries over GraphQL HTTP of a verified user by whether the query cache answered (hit: as kept; shared: computed once for all that waited).\n# TYPE printgate_graphql_cache_requests_total counter\nprintgate_graphql_cache_requests_total{{outcome=\"hit\"}} {}\nprintgate_graphql_cache_requests_total{{outcome=\"miss\"}} {}\nprintgate_graphql_cache_requests_total{{outcome=\"shared\"}} {}",
            self.graphql_cache_hits.load(Ordering::Relaxed),
            self.graphql_cache_misses.load(Ordering::Relaxed),
            self.graphql_cache_shared.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP printgate_printer_render_requests_total Printers of a list answer (REST or GraphQL) by whether their resolved value was reused.\n# TYPE printgate_printer_render_requests_total counter\nprintgate_printer_render_requests_total{{outcome=\"hit\"}} {}\nprintgate_printer_render_requests_total{{outcome=\"miss\"}} {}",
            self.printer_render_hits.load(Ordering::Relaxed),
            self.printer_render_misses.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP printgate_webhook_attempts_total Webhook delivery attempts by outcome (success: a 2xx).\n# TYPE printgate_webhook_attempts_total counter\nprintgate_webhook_attempts_total{{outcome=\"success\"}} {}\nprintgate_webhook_attempts_total{{outcome=\"failure\"}} {}",
            self.webhook_ok.load(Ordering::Relaxed),
            self.webhook_failed.load(Ordering::Relaxed)
        );
        self.detection.render(&mut out);
        let (size, idle) = pool_use(state);
        let _ = writeln!(
            out,
            "# HELP printgate_db_pool_connections Database pool connections by state.\n# TYPE printgate_db_pool_connections gauge"
        );
        let _ = writeln!(
            out,
            "printgate_db_pool_connections{{state=\"idle\"}} {idle}"
        );
        let _ = writeln!(
            out,
            "printgate_db_pool_connections{{state=\"in_use\"}} {}",
            size.saturating_sub(idle)
        );
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', " ")
}

fn pool_use(state: &Exposition) -> (u32, u32) {
    let db = &state.db;
    match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => {
            let p = db.get_postgres_connection_pool();
            (p.size(), u32::try_from(p.num_idle()).unwrap_or(0))
        }
        sea_orm::DatabaseBackend::Sqlite => {
            let p = db.get_sqlite_connection_pool();
            (p.size(), u32::try_from(p.num_idle()).unwrap_or(0))
        }
        _ => (0, 0),
    }
}

/// `GET /metrics` on the main address: only with the configured metrics
/// token (`Authorization: Bearer <token>`); without one configured it is
/// not served there at all (use `--metrics-bind`).
pub async fn serve_with_token(
    State(state): State<Exposition>,
    headers: axum::http::HeaderMap,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::bearer_token);
    match (&state.token, given) {
        (Some(want), Some(got)) if constant_time_eq(want.as_bytes(), got.as_bytes()) => {
            serve(State(state)).await
        }
        (Some(_), _) => {
            let mut resp = (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"detail": "The metrics token is required."})),
            )
                .into_response();
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            resp
        }
        (None, _) => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"detail": "Not found."})),
        )
            .into_response(),
    }
}

/// Compares secrets in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /metrics` on the separate metrics address.
pub async fn serve(State(state): State<Exposition>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics().render(&state),
    )
        .into_response()
}

/// Which public surface a path belongs to.
pub fn surface(path: &str) -> &'static str {
    if path.starts_with("/graphql") {
        "graphql"
    } else if path.starts_with("/api/v1/octo")
        || path.starts_with("/ws/dev")
        || path.starts_with("/snapshots")
    {
        "agent"
    } else if path.starts_with("/api/") {
        "rest"
    } else {
        "other"
    }
}

/// A request id: the client's when it is short and plain, else a new one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned)
}

/// The middleware: request id, a span for the request's log lines, a
/// summary line, and the metrics.
pub async fn observe(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id(&req);
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let surface = surface(req.uri().path());
    let method = req.method().clone();
    let span = tracing::info_span!("request", request_id = %id, %method, path = %path);
    let mut resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status();
    let seconds = start.elapsed().as_secs_f64();
    let operation = resp
        .extensions()
        .get::<Operation>()
        .map_or_else(|| format!("{method} {path}"), |o| o.0.clone());
    let outcome = match status {
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        s if s.is_server_error() => "server_error",
        s if s.is_client_error() => "client_error",
        _ => "ok",
    };
    metrics().request(surface, operation.clone(), outcome, seconds);
    let codes = resp
        .extensions()
        .get::<ErrorCodes>()
        .map(|c| c.0.join(","))
        .unwrap_or_default();
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            duration_ms = seconds * 1000.0,
            operation = %operation,
            outcome,
            error_codes = %codes,
            "request"
        );
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}
