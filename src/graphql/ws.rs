//! GraphQL subscriptions over websockets at `/graphql/ws`, speaking both
//! `graphql-transport-ws` and the legacy `graphql-ws`. The token comes from
//! the `connection_init` payload (`{"Authorization": "Bearer ..."}`) or the
//! upgrade request's header.

use async_graphql::Data;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::context::{RequestContext, request_data};
use crate::auth::Identity;
use crate::state::AppState;

/// Largest message a subscription client may send (its operations are
/// small; this stops memory abuse).
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Messages per second a subscription client may send, and the burst.
const MESSAGES_PER_SEC: f64 = 10.0;
const MESSAGE_BURST: f64 = 50.0;

/// The `Authorization` value in a `connection_init` payload, at the top
/// level or under `headers`, in any case.
fn payload_authorization(payload: &Value) -> Option<String> {
    let find = |v: &Value| {
        v.as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, v)| v.as_str().map(str::to_owned))
    };
    find(payload).or_else(|| payload.get("headers").and_then(find))
}

/// Upgrades to a GraphQL websocket.
pub async fn subscribe(
    State(state): State<AppState>,
    protocol: GraphQLProtocol,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let from_header = state.identify(&headers);
    let schema = state.gateway.schema().clone();
    let mut shutdown = state.shutdown.subscribe();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            use futures_util::StreamExt;
            let (sink, stream) = socket.split();
            // A client over the message rate has its session ended.
            let mut bucket = (MESSAGE_BURST, std::time::Instant::now());
            let stream = stream.take_while(move |_| {
                let now = std::time::Instant::now();
                bucket.0 = (bucket.0
                    + now.duration_since(bucket.1).as_secs_f64() * MESSAGES_PER_SEC)
                    .min(MESSAGE_BURST);
                bucket.1 = now;
                let allowed = bucket.0 >= 1.0;
                if allowed {
                    bucket.0 -= 1.0;
                } else {
                    tracing::warn!("GraphQL websocket client floods; closing");
                }
                std::future::ready(allowed)
            });
            let serve = GraphQLWebSocket::new_with_pair(sink, stream, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let identity = match payload_authorization(&payload) {
                        Some(v) => state.keys.identify(Some(&v)),
                        None => from_header,
                    };
                    if let Identity::Rejected(why) = &identity {
                        return Err(async_graphql::Error::new(why.clone()));
                    }
                    let ctx = RequestContext::new(identity, state.gateway.service().clone());
                    let mut data = Data::default();
                    request_data(&ctx, &mut data);
                    Ok(data)
                })
                .serve();
            // On shutdown the session ends and its socket is dropped.
            tokio::select! {
                () = serve => {}
                () = crate::agent::socket::going_away(&mut shutdown) => {}
            }
        })
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_token_is_found_where_clients_put_it() {
        for payload in [
            json!({"Authorization": "Bearer a"}),
            json!({"authorization": "Bearer a"}),
            json!({"headers": {"Authorization": "Bearer a"}}),
        ] {
            assert_eq!(payload_authorization(&payload).as_deref(), Some("Bearer a"));
        }
        assert_eq!(payload_authorization(&json!({})), None);
    }
}
