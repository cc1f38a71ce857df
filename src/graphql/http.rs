//! GraphQL over HTTP: `POST /graphql`, `GET /graphql` (queries only) and the
//! GraphiQL page for browsers.

use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{BatchRequest, BatchResponse, Variables};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::apq::{ApqError, Resolved};
use crate::auth::Identity;
use crate::state::AppState;

/// The media type GraphQL-over-HTTP defines for responses.
const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// Standard GraphQL-over-GET parameters.
#[derive(Debug, Deserialize)]
pub struct GetParams {
    query: Option<String>,
    variables: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    extensions: Option<String>,
}

/// `POST /graphql`: one operation or a batch, as JSON.
pub async fn post(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    let headers = req.headers().clone();
    let identity = state.identify(req.extensions(), &headers).await;
    // Read here, not with an extractor, so an oversized body gets a GraphQL
    // error body like every other refusal.
    let Ok(body) = axum::body::to_bytes(req.into_body(), crate::state::MAX_BODY_BYTES).await else {
        return request_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            "The request body is larger than 1 MiB.",
        );
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|v| v == "application/json" || v == "application/graphql+json");
    if !is_json {
        return request_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "A GraphQL request must be sent as application/json.",
        );
    }
    let mut batch: BatchRequest = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                &format!("The body is not a GraphQL request: {e}"),
            );
        }
    };
    if let BatchRequest::Batch(ops) = &batch
        && ops.len() > state.max_batch
    {
        let limit = state.max_batch;
        let body = json!({"errors": [{
            "message": format!("The batch has too many operations (limit {limit})."),
            "extensions": {"code": "BATCH_TOO_LARGE", "limit": limit},
        }]});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    let mut registrations = Vec::new();
    for request in batch.iter_mut() {
        match persisted(&state, request) {
            Ok(r) => registrations.push((r, request.query.clone())),
            Err(resp) => return resp,
        }
    }
    let operation = operation_label(&batch, &identity, &registrations);
    with_operation(
        execute(
            &state,
            identity,
            batch,
            registrations,
            &headers,
            Method::Post,
        )
        .await,
        operation,
    )
}

/// Runs a request and renders its answer (over GET, never a mutation); a single query of a verified
/// user may be answered from the query cache (the same rules as the REST
/// read cache: kept only while nothing the user has changed, never over a
/// second old, one computation per answer however many ask at once).
async fn execute(
    state: &AppState,
    identity: Identity,
    batch: BatchRequest,
    registrations: Vec<(Resolved, String)>,
    headers: &HeaderMap,
    method: Method,
) -> Response {
    let cached = match (&state.query_cache, &identity, &batch) {
        (Some(cache), Identity::Verified(claims), BatchRequest::Single(r))
            if !plainly_not_a_query(&r.query) =>
        {
            state.gateway.user_id(&identity).await.map(|user| {
                let who = format!("token {:?}", claims.email);
                (cache, user, cache_key(&claims.sub, &who, r, headers))
            })
        }
        // A key's answers are its owner's, kept apart from the owner's
        // token's (which can read keys and webhooks; a key cannot).
        (Some(cache), Identity::Key(k), BatchRequest::Single(r))
            if !plainly_not_a_query(&r.query) =>
        {
            state
                .gateway
                .user_id(&identity)
                .await
                .map(|user| (cache, user, cache_key(&k.sub, "api key", r, headers)))
        }
        _ => None,
    };
    let Some((cache, user, key)) = cached else {
        return uncached(state, identity, batch, registrations, headers, method).await;
    };
    // The user's counts now: they decide whether a kept answer is served,
    // and are what a new answer is kept under.
    let fresh_now = || state.gateway.freshness(user, state.cluster.is_some());
    let Some(fresh) = fresh_now().await else {
        return uncached(state, identity, batch, registrations, headers, method).await;
    };
    let metrics = crate::metrics::metrics();
    // Served from the cache (`counter`: as kept, or as computed for this
    // request's turn by another).
    let hit = |body, counter: &std::sync::atomic::AtomicU64| {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for (r, query) in &registrations {
            if let Resolved::Register(hash) = r {
                state.persisted.register(hash.clone(), query);
            }
        }
        cached_response(body, headers)
    };
    if let Some(body) = cache.kept(&key, user, fresh) {
        return hit(body, &metrics.graphql_cache_hits);
    }
    let query = match &batch {
        BatchRequest::Single(r) => is_query(&r.query, r.operation_name.as_deref()),
        BatchRequest::Batch(_) => false,
    };
    if !query {
        return uncached(state, identity, batch, registrations, headers, method).await;
    }
    let leader = match cache.turn(&key).await {
        crate::readcache::Turn::Shared(body) => return hit(body, &metrics.graphql_cache_shared),
        crate::readcache::Turn::Compute(leader) => leader,
    };
    // The counts now (after waiting), which the answer is kept under.
    let Some(fresh) = fresh_now().await else {
        return uncached(state, identity, batch, registrations, headers, method).await;
    };
    if let Some(body) = cache.kept(&key, user, fresh) {
        leader.finish(Some(body.clone()));
        return hit(body, &metrics.graphql_cache_hits);
    }
    metrics
        .graphql_cache_misses
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let batch = batch.data(super::rendered::Splice::graphql());
    let resp = state.gateway.execute_batch(identity, batch).await;
    register_if_ran(state, registrations, &resp);
    let clean = matches!(&resp, BatchResponse::Single(r) if r.errors.is_empty());
    let rendered = render(resp, headers);
    if !(clean && rendered.status() == StatusCode::OK) {
        // Those waiting compute their own (dropping the leader says so).
        return rendered;
    }
    // Kept as the bytes sent: read the body back out of the response.
    let (parts, body) = rendered.into_parts();
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => {
            cache.put(key, user, fresh, bytes.clone());
            leader.finish(Some(bytes.clone()));
            Response::from_parts(parts, axum::body::Body::from(bytes))
        }
        Err(e) => {
            let id = crate::error::log_internal(&e.to_string());
            request_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                crate::error::code::INTERNAL,
                &format!("Internal server error (error id {id})."),
            )
        }
    }
}

/// Runs a request without the query cache (over GET, never a mutation).
async fn uncached(
    state: &AppState,
    identity: Identity,
    batch: BatchRequest,
    registrations: Vec<(Resolved, String)>,
    headers: &HeaderMap,
    method: Method,
) -> Response {
    if let Some(refused) = refused_over(method, &batch) {
        return refused;
    }
    let batch = batch.data(super::rendered::Splice::graphql());
    let resp = state.gateway.execute_batch(identity, batch).await;
    register_if_ran(state, registrations, &resp);
    render(resp, headers)
}

/// What a query's answer depends on besides the data: who asks (and the
/// email their token carries, which `me` shows), the document, the
/// operation, the variables, and the media type it is sent in.
fn cache_key(
    sub: &str,
    who: &str,
    r: &async_graphql::Request,
    headers: &HeaderMap,
) -> crate::readcache::Key {
    let variables = serde_json::to_string(&r.variables).unwrap_or_default();
    crate::readcache::Key {
        sub: sub.into(),
        what: format!(
            "{} {who} {:?} {variables} {}",
            accepts(headers, GRAPHQL_RESPONSE),
            r.operation_name,
            r.query
        )
        .into(),
    }
}

/// A kept answer, sent as it was the first time (only clean answers to
/// queries are kept: 200, no errors).
fn cached_response(body: axum::body::Bytes, headers: &HeaderMap) -> Response {
    let content_type = if accepts(headers, GRAPHQL_RESPONSE) {
        GRAPHQL_RESPONSE
    } else {
        "application/json"
    };
    let mut resp = (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response();
    resp.extensions_mut()
        .insert(crate::metrics::ErrorCodes(Vec::new()));
    resp
}

/// Registers the new persisted documents whose operation ran (parsed,
/// validated, within the limits): one that failed before executing is
/// never kept.
fn register_if_ran(state: &AppState, registrations: Vec<(Resolved, String)>, resp: &BatchResponse) {
    let responses: Vec<&async_graphql::Response> = match resp {
        BatchResponse::Single(r) => vec![r],
        BatchResponse::Batch(rs) => rs.iter().collect(),
    };
    for ((r, query), resp) in registrations.into_iter().zip(responses) {
        if let Resolved::Register(hash) = r
            && !failed_before_execution(resp)
        {
            state.persisted.register(hash, &query);
        }
    }
}

/// Whether a response failed before anything executed (parse, validation,
/// limits): errors, none of them at a path.
fn failed_before_execution(r: &async_graphql::Response) -> bool {
    !r.errors.is_empty() && r.errors.iter().all(|e| e.path.is_empty())
}

/// `GET /graphql`: GraphiQL for a browser, otherwise a query (never a
/// mutation: a GET must not change anything).
pub async fn get(
    State(state): State<AppState>,
    verified: Option<axum::Extension<Identity>>,
    headers: HeaderMap,
    Query(params): Query<GetParams>,
) -> Response {
    let persisted_only = params
        .extensions
        .as_deref()
        .is_some_and(|e| e.contains("persistedQuery"));
    let query = match params.query {
        Some(q) => q,
        None if persisted_only => String::new(),
        None if state.graphiql && accepts(&headers, "text/html") => {
            return super::playground::page();
        }
        None => {
            return request_error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "Missing the `query` parameter.",
            );
        }
    };
    let mut request = async_graphql::Request::new(query);
    request.operation_name = params.operation_name;
    for (name, raw) in [
        ("variables", &params.variables),
        ("extensions", &params.extensions),
    ] {
        let Some(raw) = raw else { continue };
        let parsed: serde_json::Value = match serde_json::from_str(raw) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => {
                return request_error(
                    StatusCode::BAD_REQUEST,
                    "BAD_REQUEST",
                    &format!("The `{name}` parameter must be a JSON object."),
                );
            }
        };
        if name == "variables" {
            request.variables = Variables::from_json(parsed);
        } else if let Ok(ext) = serde_json::from_value(parsed) {
            request.extensions = ext;
        }
    }
    // A persisted document is restored first, so a mutation named only by
    // its hash is refused like any other.
    let registration = match persisted(&state, &mut request) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let identity = match verified {
        Some(axum::Extension(i)) => i,
        None => {
            state
                .identify(&axum::http::Extensions::new(), &headers)
                .await
        }
    };
    let registrations = vec![(registration, request.query.clone())];
    let batch = BatchRequest::Single(request);
    let operation = operation_label(&batch, &identity, &registrations);
    // A mutation is refused before it runs (`execute` checks, after the
    // query cache: a kept answer is one to a query).
    with_operation(
        execute(
            &state,
            identity,
            batch,
            registrations,
            &headers,
            Method::Get,
        )
        .await,
        operation,
    )
}

/// The HTTP method a request came by: over GET, a mutation is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
}

/// Over GET, a mutation is refused with 405 (a GET must not change
/// anything); `None` when the request may run.
fn refused_over(method: Method, batch: &BatchRequest) -> Option<Response> {
    let BatchRequest::Single(r) = batch else {
        return None;
    };
    if method != Method::Get || !is_mutation(&r.query, r.operation_name.as_deref()) {
        return None;
    }
    let mut resp = request_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "Mutations are only accepted over POST.",
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    Some(resp)
}

/// The operation label of a request, for logs and metrics: from a bounded
/// set (see `Metrics::operation_label`). A name counts only when the
/// caller is verified or the document was one already registered.
fn operation_label(
    batch: &BatchRequest,
    identity: &Identity,
    registrations: &[(Resolved, String)],
) -> String {
    match batch {
        BatchRequest::Single(r) => {
            let persisted = r.extensions.contains_key("persistedQuery")
                && registrations
                    .first()
                    .is_some_and(|(x, _)| *x == Resolved::Nothing);
            let trusted = matches!(identity, Identity::Verified(_) | Identity::Key(_)) || persisted;
            crate::metrics::metrics().operation_label(operation_name(r).as_deref(), trusted)
        }
        BatchRequest::Batch(_) => "graphql batch".into(),
    }
}

/// The operation's name: the given one, else the first named operation in
/// the document (read without parsing it).
fn operation_name(r: &async_graphql::Request) -> Option<String> {
    r.operation_name.clone().or_else(|| {
        let q = r.query.trim_start();
        let rest = ["query", "mutation", "subscription"]
            .iter()
            .find_map(|k| q.strip_prefix(k))?;
        // `query Name ...` is named; `query { ...` and `query(...` are not.
        let name: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        (!name.is_empty() && rest.starts_with(char::is_whitespace)).then_some(name)
    })
}

fn with_operation(mut resp: Response, operation: String) -> Response {
    resp.extensions_mut()
        .insert(crate::metrics::Operation(operation));
    resp
}

/// Resolves a request's persisted query, or gives the answer that says why
/// it could not.
#[allow(clippy::result_large_err)]
fn persisted(state: &AppState, request: &mut async_graphql::Request) -> Result<Resolved, Response> {
    state.persisted.resolve(request).map_err(|e| match e {
        ApqError::NotFound => request_error(
            StatusCode::OK,
            "PERSISTED_QUERY_NOT_FOUND",
            "PersistedQueryNotFound",
        ),
        ApqError::Invalid(why) => request_error(StatusCode::BAD_REQUEST, "BAD_REQUEST", why),
        ApqError::NotAllowed => request_error(
            StatusCode::BAD_REQUEST,
            "PERSISTED_QUERY_NOT_ALLOWED",
            "Only registered (trusted) documents are accepted here.",
        ),
    })
}

/// A document that starts as a mutation or a subscription (told without
/// parsing; anything else is parsed before its answer is kept).
fn plainly_not_a_query(query: &str) -> bool {
    let q = query.trim_start();
    q.starts_with("mutation") || q.starts_with("subscription")
}

/// Whether the operation a request runs is a query (the only kind whose
/// answer is kept). A document that does not parse, or names no single
/// operation, is not.
fn is_query(query: &str, operation_name: Option<&str>) -> bool {
    let Ok(doc) = async_graphql::parser::parse_query(query) else {
        return false;
    };
    match (&doc.operations, operation_name) {
        (DocumentOperations::Single(op), _) => op.node.ty == OperationType::Query,
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .get(name)
            .is_some_and(|op| op.node.ty == OperationType::Query),
        (DocumentOperations::Multiple(_), None) => false,
    }
}

/// Whether the operation a GET would run is a mutation. A document that does
/// not parse is left to the schema, which reports the parse error.
fn is_mutation(query: &str, operation_name: Option<&str>) -> bool {
    let Ok(doc) = async_graphql::parser::parse_query(query) else {
        return false;
    };
    match (&doc.operations, operation_name) {
        (DocumentOperations::Single(op), _) => op.node.ty == OperationType::Mutation,
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .get(name)
            .is_some_and(|op| op.node.ty == OperationType::Mutation),
        (DocumentOperations::Multiple(ops), None) => {
            ops.values().any(|op| op.node.ty == OperationType::Mutation)
        }
    }
}

fn accepts(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(media))
}

/// A response as async-graphql serializes it (`data`, then `extensions`
/// and `errors` when there are any), with its spliced printers written
/// verbatim (`rendered::write_spliced`).
fn written(resp: &BatchResponse) -> serde_json::Result<Vec<u8>> {
    fn one(out: &mut Vec<u8>, r: &async_graphql::Response) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"data\":");
        super::rendered::write_spliced(out, &r.data)?;
        if !r.extensions.is_empty() {
            out.extend_from_slice(b",\"extensions\":");
            serde_json::to_writer(&mut *out, &r.extensions)?;
        }
        if !r.errors.is_empty() {
            out.extend_from_slice(b",\"errors\":");
            serde_json::to_writer(&mut *out, &r.errors)?;
        }
        out.push(b'}');
        Ok(())
    }
    let mut out = Vec::new();
    match resp {
        BatchResponse::Single(r) => one(&mut out, r)?,
        BatchResponse::Batch(rs) => super::rendered::write_array(&mut out, rs, one)?,
    }
    Ok(out)
}

/// A response in the media type the client asked for: the GraphQL response
/// type when it accepts it, else `application/json` (clients that insist on
/// it exist). With the GraphQL type, a request that failed before executing
/// gets a 4xx, as GraphQL-over-HTTP says.
fn render(resp: BatchResponse, headers: &HeaderMap) -> Response {
    let responses: Vec<&async_graphql::Response> = match &resp {
        BatchResponse::Single(r) => vec![r],
        BatchResponse::Batch(rs) => rs.iter().collect(),
    };
    let mut codes = Vec::new();
    for e in responses.iter().flat_map(|r| &r.errors) {
        let code = e.extensions.as_ref().and_then(|x| x.get("code"));
        if let Some(async_graphql::Value::String(c)) = code {
            crate::metrics::metrics().error(c.as_str());
            codes.push(c.clone());
        }
    }
    let graphql_type = accepts(headers, GRAPHQL_RESPONSE);
    let failed_before_execution = match &resp {
        BatchResponse::Single(r) => failed_before_execution(r),
        BatchResponse::Batch(_) => false,
    };
    let status = if graphql_type && failed_before_execution {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    // A request that failed before executing has no `data` entry at all
    // (GraphQL-over-HTTP), rather than `"data": null`. Any other answer is
    // written straight to bytes (through a `serde_json::Value` first, a
    // 200-printer list cost a tenth of the request's CPU).
    let encoded = if failed_before_execution {
        serde_json::to_value(&resp).and_then(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("data");
            }
            serde_json::to_vec(&v)
        })
    } else {
        written(&resp)
    };
    let body = match encoded {
        Ok(b) => b,
        Err(e) => {
            let id = crate::error::log_internal(&e.to_string());
            return request_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                crate::error::code::INTERNAL,
                &format!("Internal server error (error id {id})."),
            );
        }
    };
    let content_type = if graphql_type {
        GRAPHQL_RESPONSE
    } else {
        "application/json"
    };
    let mut resp = (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
    resp.extensions_mut()
        .insert(crate::metrics::ErrorCodes(codes));
    resp
}

/// A request-level GraphQL error (nothing executed).
fn request_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"errors": [{"message": message, "extensions": {"code": code}}]});
    (status, axum::Json(body)).into_response()
}
