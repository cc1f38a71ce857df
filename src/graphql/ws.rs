//! GraphQL subscriptions over websockets at `/graphql/ws`, speaking both
//! `graphql-transport-ws` and the legacy `graphql-ws`. The token comes from
//! the `connection_init` payload (`{"Authorization": "Bearer ..."}`) or the
//! upgrade request's header.
//!
//! async-graphql speaks the protocol; this module drives the socket around
//! it, so that every way a connection can go wrong ends with a close code
//! from the protocol and a reason:
//! - a missing, refused or expired credential at `connection_init`, and the
//!   token's expiry while connected: 4403 (Forbidden);
//! - no `connection_init` within the init timeout: 4408;
//! - a second subscription with a live id: 4409;
//! - a client flooding messages: 4429; silent (no pong to our pings) past
//!   the idle timeout: 1011;
//! - the server shutting down: 1001 (going away).
//!
//! Subscriptions are capped per connection and per user: one over the cap
//! gets an `error` message (code `TOO_MANY_SUBSCRIPTIONS`) for its id, and
//! the connection stays up. Only subscriptions run here (queries and
//! mutations go over HTTP; see `graphql::admission`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use async_graphql::Data;
use async_graphql::http::{
    ALL_WEBSOCKET_PROTOCOLS, ClientMessage, WebSocket, WebSocketProtocols as Protocols, WsMessage,
};
use axum::extract::ws::{CloseFrame, Message};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::admission::OverWebSocket;
use super::context::{RequestContext, request_data};
use super::limits::{SubscriptionCounts, WsLimits};
use crate::auth::Identity;
use crate::state::AppState;

/// Largest message a subscription client may send (its operations are
/// small; this stops memory abuse).
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Messages per second a subscription client may send, and the burst.
const MESSAGES_PER_SEC: f64 = 10.0;
const MESSAGE_BURST: f64 = 50.0;
/// How often the server pings at most (websocket ping frames, which
/// browsers and client libraries answer by themselves).
const PING_EVERY: Duration = Duration::from_secs(30);

/// Close codes of the protocol (graphql-transport-ws) and of websockets.
pub mod close {
    pub const GOING_AWAY: u16 = 1001;
    pub const INTERNAL: u16 = 1011;
    pub const FORBIDDEN: u16 = 4403;
    pub const INIT_TIMEOUT: u16 = 4408;
    pub const DUPLICATE_ID: u16 = 4409;
    pub const TOO_MANY_REQUESTS: u16 = 4429;
}

/// The `Authorization` value in a `connection_init` payload, at the top
/// level or under `headers`, in any case.
fn payload_credentials(payload: &Value) -> (Option<String>, Option<String>) {
    let find = |v: &Value, name: &str| {
        v.as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str().map(str::to_owned))
    };
    let field = |name: &str| {
        find(payload, name).or_else(|| payload.get("headers").and_then(|h| find(h, name)))
    };
    (field("authorization"), field(crate::auth::API_KEY_HEADER))
}

/// What `connection_init` decided, for the driver.
#[derive(Debug, Clone)]
enum Init {
    Pending,
    Accepted { sub: String, exp: Option<i64> },
    Refused(String),
}

/// Upgrades to a GraphQL websocket.
pub async fn subscribe(
    State(state): State<AppState>,
    identity: Option<axum::Extension<Identity>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // The first subprotocol offered that printgate speaks, as the upgrade
    // below picks it.
    let protocol = headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().parse::<Protocols>().ok());
    let Some(protocol) = protocol else {
        return crate::responses::detail(
            axum::http::StatusCode::BAD_REQUEST,
            "Offer the graphql-transport-ws (or graphql-ws) subprotocol.",
        );
    };
    let from_header = match identity {
        Some(axum::Extension(i)) => i,
        None => {
            state
                .identify(&axum::http::Extensions::new(), &headers)
                .await
        }
    };
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| drive(state, protocol, from_header, socket))
        .into_response()
}

/// A token bucket over the client's messages.
struct Bucket(f64, Instant);

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.0 = (self.0 + now.duration_since(self.1).as_secs_f64() * MESSAGES_PER_SEC)
            .min(MESSAGE_BURST);
        self.1 = now;
        if self.0 >= 1.0 {
            self.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The subscriptions a connection holds, and its user's share of the
/// per-user count (given back when the connection ends).
struct Held {
    ids: HashSet<String>,
    user: Option<String>,
    counts: std::sync::Arc<SubscriptionCounts>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(u) = &self.user {
            self.counts.release(u, self.ids.len());
        }
    }
}

async fn drive(
    state: AppState,
    protocol: Protocols,
    from_header: Identity,
    socket: axum::extract::ws::WebSocket,
) {
    let limits = state.ws;
    let (mut sink, mut stream) = socket.split();
    let (to_protocol, from_client) = mpsc::channel::<serde_json::Result<ClientMessage>>(16);
    let init = std::sync::Arc::new(std::sync::Mutex::new(Init::Pending));
    let init_seen = init.clone();
    let init_state = state.clone();
    let incoming = Box::pin(futures_util::stream::unfold(
        from_client,
        |mut rx| async move { rx.recv().await.map(|m| (m, rx)) },
    ));
    let mut protocol_stream =
        WebSocket::from_message_stream(state.gateway.schema().clone(), incoming, protocol)
            .on_connection_init(move |payload| async move {
                let identity = match payload_credentials(&payload) {
                    (None, None) => from_header,
                    (authorization, key) => {
                        init_state
                            .auth
                            .identify(authorization.as_deref(), key.as_deref())
                            .await
                    }
                };
                let decided = match &identity {
                    Identity::Verified(_) | Identity::Key(_) => Init::Accepted {
                        sub: identity.sub().unwrap_or_default().to_owned(),
                        exp: identity.expires(),
                    },
                    Identity::Rejected(why) => Init::Refused(why.clone()),
                    Identity::Anonymous => {
                        Init::Refused("Authentication credentials were not provided.".into())
                    }
                };
                if let Ok(mut i) = init_seen.lock() {
                    *i = decided.clone();
                }
                if let Init::Refused(why) = decided {
                    return Err(async_graphql::Error::new(why));
                }
                let ctx = RequestContext::new(identity, init_state.gateway.service().clone());
                let mut data = Data::default();
                request_data(&ctx, &mut data);
                data.insert(OverWebSocket);
                Ok(data)
            });
    let legacy = protocol == Protocols::SubscriptionsTransportWS;
    let mut bucket = Bucket(MESSAGE_BURST, Instant::now());
    let mut held = Held {
        ids: HashSet::new(),
        user: None,
        counts: state.subscriptions.clone(),
    };
    let mut shutdown = state.shutdown.subscribe();
    let started = Instant::now();
    let mut last_heard = Instant::now();
    // At least three pings per idle timeout, so a live client is never cut.
    let mut ping = tokio::time::interval(
        PING_EVERY
            .min(limits.idle_timeout / 3)
            .max(Duration::from_millis(10)),
    );
    ping.tick().await;
    let outcome: (u16, String) = loop {
        let accepted = match init.lock().map(|i| i.clone()) {
            Ok(Init::Accepted { sub, exp }) => Some((sub, exp)),
            _ => None,
        };
        // The deadline of whatever ends the connection first: the init
        // timeout before `connection_init`, the token's expiry after it.
        let deadline = match &accepted {
            None => Some((
                tokio::time::Instant::from_std(started + limits.init_timeout),
                (
                    close::INIT_TIMEOUT,
                    "Connection initialisation timeout".to_owned(),
                ),
            )),
            Some((_, Some(exp))) => {
                let left = exp.saturating_sub(chrono::Utc::now().timestamp()).max(0);
                let left = Duration::from_secs(u64::try_from(left).unwrap_or(0));
                Some((
                    tokio::time::Instant::now() + left,
                    (close::FORBIDDEN, "Token has expired.".to_owned()),
                ))
            }
            Some((_, None)) => None,
        };
        if let (Some((sub, _)), None) = (&accepted, &held.user) {
            held.user = Some(sub.clone());
        }
        let expire = async {
            match &deadline {
                Some((at, _)) => tokio::time::sleep_until(*at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = expire => {
                if let Some((_, why)) = deadline {
                    break why;
                }
            }
            () = crate::state::going_away(&mut shutdown) => {
                break (close::GOING_AWAY, "server shutting down".into());
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > limits.idle_timeout {
                    break (close::INTERNAL, "idle timeout".into());
                }
                if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break (0, String::new());
                }
            }
            out = protocol_stream.next() => match out {
                Some(WsMessage::Text(text)) => {
                    forget_finished(&text, &mut held);
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break (0, String::new());
                    }
                }
                Some(WsMessage::Close(code, reason)) => {
                    let refused = match init.lock().map(|i| i.clone()) {
                        Ok(Init::Refused(why)) => Some(why),
                        _ => None,
                    };
                    break match refused {
                        Some(why) => (close::FORBIDDEN, why),
                        None => (code, reason),
                    };
                }
                None => {
                    // The legacy protocol refuses with a text message and
                    // ends: close with the same code as the other.
                    if let Ok(Init::Refused(why)) = init.lock().map(|i| i.clone()) {
                        break (close::FORBIDDEN, why);
                    }
                    break (1000, String::new());
                }
            },
            msg = stream.next() => {
                last_heard = Instant::now();
                let bytes = match msg {
                    Some(Ok(Message::Text(t))) => t.as_str().as_bytes().to_vec(),
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break (0, String::new()),
                };
                if !bucket.take() {
                    tracing::warn!("GraphQL websocket client floods; closing");
                    break (close::TOO_MANY_REQUESTS, "Too many messages".into());
                }
                let message = ClientMessage::from_bytes(bytes);
                if let Ok(ClientMessage::Start { id, .. }) = &message {
                    if held.ids.contains(id) {
                        break (close::DUPLICATE_ID, format!("Subscriber for {id} already exists"));
                    }
                    if let Some(refusal) = over_cap(&mut held, id, limits, legacy) {
                        if sink.send(Message::Text(refusal.into())).await.is_err() {
                            break (0, String::new());
                        }
                        continue;
                    }
                }
                if let Ok(ClientMessage::Stop { id }) = &message
                    && held.ids.remove(id)
                    && let Some(u) = &held.user
                {
                    held.counts.release(u, 1);
                }
                if to_protocol.send(message).await.is_err() {
                    break (1000, String::new());
                }
            }
        }
    };
    let (code, reason) = outcome;
    if code != 0 {
        let frame = CloseFrame {
            code,
            reason: reason.chars().take(120).collect::<String>().into(),
        };
        // The closing handshake: send ours, then read until the client's
        // (for up to 3 s), so the close frame is not lost to a reset.
        let _ = tokio::time::timeout(Duration::from_secs(3), async {
            if sink.send(Message::Close(Some(frame))).await.is_ok() {
                while let Some(Ok(m)) = stream.next().await {
                    if matches!(m, Message::Close(_)) {
                        break;
                    }
                }
            }
        })
        .await;
    }
}

/// Takes a place for subscription `id`, or gives the `error` message that
/// refuses it (the per-connection or the per-user cap is reached).
fn over_cap(held: &mut Held, id: &str, limits: WsLimits, legacy: bool) -> Option<String> {
    let refusal = |limit: usize, what: &str| {
        let error = json!({
            "message": format!("Too many subscriptions {what} (limit {limit})."),
            "extensions": {"code": "TOO_MANY_SUBSCRIPTIONS", "limit": limit},
        });
        // graphql-transport-ws carries a list of errors; the legacy one a
        // single error.
        let payload = if legacy { error } else { json!([error]) };
        json!({"type": "error", "id": id, "payload": payload}).to_string()
    };
    if held.ids.len() >= limits.per_connection {
        return Some(refusal(limits.per_connection, "on this connection"));
    }
    // Before connection_init there is no user: the protocol refuses it.
    if let Some(u) = &held.user
        && !held.counts.take(u, limits.per_user)
    {
        return Some(refusal(limits.per_user, "for this user"));
    }
    held.ids.insert(id.to_owned());
    None
}

/// A subscription the server finished (`complete`, or an `error` for it)
/// gives its place back.
fn forget_finished(text: &str, held: &mut Held) {
    if !(text.starts_with(r#"{"type":"complete""#) || text.starts_with(r#"{"type":"error""#)) {
        return;
    }
    let id = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned));
    if let Some(id) = id
        && held.ids.remove(&id)
        && let Some(u) = &held.user
    {
        held.counts.release(u, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_found_where_clients_put_it() {
        for payload in [
            json!({"Authorization": "Bearer a"}),
            json!({"authorization": "Bearer a"}),
            json!({"headers": {"Authorization": "Bearer a"}}),
        ] {
            assert_eq!(payload_credentials(&payload).0.as_deref(), Some("Bearer a"));
        }
        assert_eq!(payload_credentials(&json!({})), (None, None));
        assert_eq!(
            payload_credentials(&json!({"headers": {"X-Api-Key": "pgk_a"}}))
                .1
                .as_deref(),
            Some("pgk_a")
        );
    }
}
