//! The REST paths legacy clients call (`/api/v1/printers/...`), each served
//! by running its GraphQL operation on the same schema, as the caller.
//!
//! A handler here never touches the service or the database: it turns the
//! request into variables, runs the route's document through the
//! [`Gateway`](crate::gateway::Gateway), and turns the result into the REST
//! status and body. Everything about the routes is in [`routes::ROUTES`].

mod openapi;
pub mod routes;
mod shape;

use std::collections::{HashMap, HashSet};

use async_graphql::{ServerError, Variables};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use serde_json::{Map, Value};

use crate::error::{camel_case, code, log_internal};
use crate::graphql::AppSchema;
use crate::responses::{detail, field_error};
use crate::state::{AppState, MAX_BODY_BYTES};
use routes::{ParamKind, ROUTES, Route, Success};
use shape::{Shape, Types};

/// The compiled route table: each route with the shape of its result and
/// the keys its body may carry.
pub struct RestApi {
    routes: Vec<Compiled>,
    openapi: Value,
    cache: crate::readcache::ReadCache,
}

struct Compiled {
    route: &'static Route,
    shape: Shape,
    body: Option<BodyKeys>,
    /// For a route answering a list: its printers, kept in the REST shape
    /// of an item and written verbatim into the body.
    splice: Option<crate::graphql::rendered::Splice>,
}

/// How a JSON body's keys map onto the GraphQL input.
struct BodyKeys {
    /// The input type's fields (camelCase).
    writable: HashSet<String>,
    /// Keys of the REST representation that are not writable: clients send
    /// back the object they read, so these are ignored, not refused.
    read_only: HashSet<String>,
}

impl RestApi {
    /// Compiles the route table against the schema. Fails (at start-up, and
    /// in tests) when a document does not fit the schema.
    pub async fn new(
        schema: &AppSchema,
        cache_bytes: usize,
        gauge: std::sync::Arc<crate::metrics::CacheGauge>,
    ) -> Result<Self, String> {
        let types = Types::introspect(schema).await?;
        let mut routes = Vec::with_capacity(ROUTES.len());
        for route in ROUTES {
            let shape = Shape::of_result(&types, route.document)
                .map_err(|e| format!("{} {}: {e}", route.method, route.path))?;
            let body = route.body.map(|input| {
                let writable: HashSet<String> = types
                    .input_fields(input)
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect();
                let read_only = shape
                    .keys()
                    .into_iter()
                    .filter(|k| !writable.contains(&camel_case(k)))
                    .map(str::to_owned)
                    .collect();
                BodyKeys {
                    writable,
                    read_only,
                }
            });
            let splice = match &shape {
                Shape::List { item, .. } => {
                    let item = std::sync::Arc::new((**item).clone());
                    Some(crate::graphql::rendered::Splice::encoded_by(move |v| {
                        serde_json::to_vec(&item.rest(v)).ok()
                    }))
                }
                _ => None,
            };
            routes.push(Compiled {
                route,
                shape,
                body,
                splice,
            });
        }
        let openapi = openapi::document(&types, &routes);
        Ok(Self {
            routes,
            openapi,
            cache: crate::readcache::ReadCache::new(cache_bytes, gauge),
        })
    }

    /// The OpenAPI 3.1 document of these routes.
    pub fn openapi(&self) -> &Value {
        &self.openapi
    }

    /// The routes, each answering with and without its trailing slash, and
    /// with 405 (and `Allow`) for methods it does not serve.
    pub fn router(self: &std::sync::Arc<Self>) -> Router<AppState> {
        let mut by_path: Vec<(&'static str, Vec<usize>)> = Vec::new();
        for (i, c) in self.routes.iter().enumerate() {
            match by_path.iter_mut().find(|(p, _)| *p == c.route.path) {
                Some((_, ids)) => ids.push(i),
                None => by_path.push((c.route.path, vec![i])),
            }
        }
        let api = self.clone();
        let mut router = Router::new().route(
            "/api/v1/openapi.json",
            axum::routing::get(move || async move { axum::Json(api.openapi().clone()) }),
        );
        for (path, ids) in by_path {
            let allow = ids
                .iter()
                .map(|&i| self.routes[i].route.method.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let mut methods: MethodRouter<AppState> = MethodRouter::new();
            for i in ids {
                let filter = MethodFilter::try_from(self.routes[i].route.method.clone())
                    .unwrap_or(MethodFilter::GET);
                let api = self.clone();
                methods = methods.merge(on(
                    filter,
                    move |State(state): State<AppState>,
                          id: Option<Path<String>>,
                          Query(query): Query<Vec<(String, String)>>,
                          req: Request| async move {
                        let mut resp = api.handle(&state, i, id.map(|p| p.0), query, req).await;
                        let op = api.routes[i].route.operation_id;
                        resp.extensions_mut()
                            .insert(crate::metrics::Operation(format!("rest {op}")));
                        resp
                    },
                ));
            }
            let methods = methods
                .fallback(move |method: Method| async move { method_not_allowed(&method, &allow) });
            let other = match path.strip_suffix('/') {
                Some(bare) => bare.to_owned(),
                None => format!("{path}/"),
            };
            router = router.route(path, methods.clone()).route(&other, methods);
        }
        router
    }

    /// A user's counts now: the bus's change count and, with several
    /// instances, the data version in the database (`None` when it cannot
    /// be read: then nothing is served from, or kept in, the cache).
    async fn freshness(
        &self,
        state: &AppState,
        user_id: i32,
    ) -> Option<crate::readcache::Freshness> {
        state
            .gateway
            .freshness(user_id, state.cluster.is_some())
            .await
    }

    async fn handle(
        &self,
        state: &AppState,
        index: usize,
        id: Option<String>,
        query: Vec<(String, String)>,
        req: Request,
    ) -> Response {
        let Some(compiled) = self.routes.get(index) else {
            return detail(StatusCode::NOT_FOUND, "Not found.");
        };
        let route = compiled.route;
        let identity = state.identify(req.extensions(), req.headers()).await;
        // GraphQL names (variables and input fields) back to the REST names
        // the client used, for error bodies.
        let mut names: HashMap<String, String> = HashMap::new();
        let mut vars = Map::new();
        if let Some(id) = &id {
            vars.insert("id".into(), Value::String(id.clone()));
        }
        // Only the route's declared parameters count, as parsed: anything
        // else in the query string is ignored (and never part of a key).
        let mut params = Vec::with_capacity(route.query.len());
        for param in route.query {
            let given = query
                .iter()
                .rev()
                .find(|(k, _)| k == param.name)
                .map(|(_, v)| v);
            let value = match (&param.kind, given) {
                (ParamKind::Bool { default }, None) => Value::Bool(*default),
                (ParamKind::Bool { .. }, Some(text)) => match parse_bool(text) {
                    Some(b) => Value::Bool(b),
                    None => return field_error(param.name, "Must be a valid boolean."),
                },
                (ParamKind::Enum { .. }, None) => Value::Null,
                (ParamKind::Enum { .. }, Some(text)) => Value::String(text.clone()),
            };
            params.push((param.name, value.to_string()));
            names.insert(param.variable.into(), param.name.into());
            vars.insert(param.variable.into(), value);
        }
        // Reads of a verified user may be answered from the cache.
        let cacheable = route.method == Method::GET && route.success == Success::Ok;
        // (An API key's answers are its owner's: the same entries.)
        let key = match identity.sub() {
            Some(sub) if cacheable => Some(crate::readcache::Key {
                sub: sub.into(),
                // The route and its declared parameters, as parsed:
                // `/printers/007/` is `/printers/7/`, one entry.
                what: format!(
                    "{index} {:?} {params:?}",
                    id.as_deref().map(|i| {
                        i.parse::<i64>()
                            .map_or_else(|_| i.to_owned(), |n| n.to_string())
                    })
                )
                .into(),
            }),
            _ => None,
        };
        // The user the credential names (provisioned on first sight, as the
        // request itself would be), known before asking: a user's first
        // requests take turns like any others (32 at once were 32
        // computations of a 1,000-printer list, seconds each).
        let known_user = match &key {
            Some(_) => state.gateway.user_id(&identity).await,
            None => None,
        };
        // The user's counts, read once: they decide whether a kept answer
        // is served, and are what a new answer is kept under.
        let freshness_before = match known_user {
            Some(u) => self.freshness(state, u).await.map(|f| (u, f)),
            None => None,
        };
        if let (Some(k), Some((u, now))) = (&key, freshness_before)
            && let Some(body) = self.cache.kept(k, u, now)
        {
            crate::metrics::metrics()
                .rest_cache_hits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return bytes_response(StatusCode::OK, body);
        }
        // A miss of a kept kind waits for the next computation of the same
        // answer (which starts after this request arrived) and serves it,
        // or computes it for those waiting, under the counts read now.
        let mut freshness_before = freshness_before;
        let leader = match (&key, freshness_before) {
            (Some(k), Some((u, _))) => match self.cache.turn(k).await {
                crate::readcache::Turn::Shared(body) => {
                    crate::metrics::metrics()
                        .rest_cache_shared
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return bytes_response(StatusCode::OK, body);
                }
                crate::readcache::Turn::Compute(leader) => {
                    freshness_before = self.freshness(state, u).await.map(|f| (u, f));
                    if let Some((_, now)) = freshness_before
                        && let Some(body) = self.cache.kept(k, u, now)
                    {
                        crate::metrics::metrics()
                            .rest_cache_hits
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        leader.finish(Some(body.clone()));
                        return bytes_response(StatusCode::OK, body);
                    }
                    Some(leader)
                }
            },
            _ => None,
        };
        if key.is_some() {
            crate::metrics::metrics()
                .rest_cache_misses
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(keys) = &compiled.body {
            let body = match read_json_object(req).await {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            let mut input = Map::new();
            for (key, value) in body {
                if keys.read_only.contains(&key) {
                    continue;
                }
                let gql = camel_case(&key);
                if key.chars().any(char::is_uppercase) || !keys.writable.contains(&gql) {
                    return field_error(&key, "Unknown field.");
                }
                names.insert(gql.clone(), key);
                input.insert(gql, value);
            }
            vars.insert("input".into(), Value::Object(input));
        }
        let mut request = async_graphql::Request::new(route.document)
            .variables(Variables::from_json(Value::Object(vars)));
        if let Some(splice) = &compiled.splice {
            request = request.data(splice.clone());
        }
        let resp = state
            .gateway
            .execute_showing_credentials(identity, request)
            .await;
        if !resp.errors.is_empty() {
            return graphql_error(&resp.errors, &names);
        }
        let result = match &resp.data {
            async_graphql::Value::Object(o) => o.get("result"),
            _ => None,
        };
        let Some(result) = result.filter(|r| !matches!(r, async_graphql::Value::Null)) else {
            return detail(StatusCode::NOT_FOUND, "Not found.");
        };
        let status = match route.success {
            Success::Empty => return StatusCode::OK.into_response(),
            Success::Ok => StatusCode::OK,
            Success::Created => StatusCode::CREATED,
        };
        let body = match compiled.shape.rest(result).to_vec() {
            Ok(b) => axum::body::Bytes::from(b),
            Err(e) => return internal(&e.to_string()),
        };
        let user = match &resp.data {
            async_graphql::Value::Object(o) => match o.get("viewer") {
                Some(async_graphql::Value::Object(v)) => match v.get("id") {
                    Some(async_graphql::Value::String(id)) => id.parse::<i32>().ok(),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        // Kept under the counts read before asking, when the answer is the
        // known user's.
        if let (Some(k), Some(u), Some((known, freshness))) = (key, user, freshness_before)
            && known == u
        {
            self.cache.put(k, u, freshness, body.clone());
            if let Some(leader) = leader {
                leader.finish(Some(body.clone()));
            }
        }
        bytes_response(status, body)
    }
}

/// `true/1/yes/on` and `false/0/no/off`, any case.
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Reads a JSON object body: 413 over the size cap, 415 when not JSON, 400
/// when malformed or not an object.
async fn read_json_object(req: Request) -> Result<Map<String, Value>, Response> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large())?;
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if bytes.is_empty() && media.is_empty() {
        return Ok(Map::new());
    }
    if media != "application/json" && !media.ends_with("+json") {
        let shown = if media.is_empty() { "" } else { media.as_str() };
        return Err(detail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("Unsupported media type \"{shown}\" in request."),
        ));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(detail(
            StatusCode::BAD_REQUEST,
            "Invalid data. Expected a JSON object.",
        )),
        Err(e) => Err(detail(
            StatusCode::BAD_REQUEST,
            &format!("JSON parse error - {e}"),
        )),
    }
}

fn code_of(err: &ServerError) -> Option<String> {
    match err.extensions.as_ref().and_then(|e| e.get("code")) {
        Some(async_graphql::Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The 400 body naming every invalid field (`{"field": ["message"]}`),
/// under the names the client used.
fn invalid_fields(errors: &[ServerError], names: &HashMap<String, String>) -> Response {
    let mut body = Map::new();
    for err in errors
        .iter()
        .filter(|e| code_of(e).as_deref() == Some(code::BAD_USER_INPUT))
    {
        let field = match err.extensions.as_ref().and_then(|e| e.get("field")) {
            Some(async_graphql::Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        let message = err
            .message
            .strip_prefix(&format!("{field}: "))
            .unwrap_or(&err.message);
        let key = names
            .get(&field)
            .cloned()
            .unwrap_or_else(|| snake_case(&field));
        if let Value::Array(list) = body.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
            list.push(Value::String(message.to_owned()));
        }
    }
    (StatusCode::BAD_REQUEST, axum::Json(Value::Object(body))).into_response()
}

/// The REST answer to a GraphQL result's errors, by the first one's code
/// (invalid fields: all of them, in one body).
fn graphql_error(errors: &[ServerError], names: &HashMap<String, String>) -> Response {
    let Some(err) = errors.first() else {
        return internal("REST operation failed with no error");
    };
    match code_of(err).as_deref() {
        Some(code::UNAUTHENTICATED) => {
            let mut resp = detail(StatusCode::UNAUTHORIZED, &err.message);
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            resp
        }
        Some(code::NOT_FOUND) => detail(StatusCode::NOT_FOUND, "Not found."),
        Some(code::BAD_USER_INPUT) => invalid_fields(errors, names),
        Some(code::PRINTER_LIMIT_REACHED | code::FORBIDDEN) => {
            detail(StatusCode::FORBIDDEN, &err.message)
        }
        Some(code::INTERNAL) => detail(StatusCode::INTERNAL_SERVER_ERROR, &err.message),
        // Anything else means a route's document and the schema disagree.
        _ => internal(&format!("REST operation failed: {}", err.message)),
    }
}

fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_uppercase() {
            out.push('_');
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn bytes_response(status: StatusCode, body: axum::body::Bytes) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response()
}

fn too_large() -> Response {
    detail(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Request body is larger than 1 MiB.",
    )
}

fn internal(cause: &str) -> Response {
    let id = log_internal(cause);
    detail(
        StatusCode::INTERNAL_SERVER_ERROR,
        &format!("Internal server error (error id {id})."),
    )
}

fn method_not_allowed(method: &Method, allow: &str) -> Response {
    let mut resp = detail(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("Method \"{method}\" not allowed."),
    );
    if let Ok(v) = HeaderValue::from_str(allow) {
        resp.headers_mut().insert(header::ALLOW, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_read_like_the_existing_clients_send_them() {
        for t in ["true", "True", "1", "yes", "ON"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["false", "0", "no", "Off"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn snake_case_undoes_camel_case() {
        assert_eq!(snake_case("liftZOnPause"), "lift_z_on_pause");
        assert_eq!(
            camel_case(&snake_case("minTimelapseSecsOnFinish")),
            "minTimelapseSecsOnFinish"
        );
    }
}
