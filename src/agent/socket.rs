//! The agent websocket `/ws/dev/`: handshake authentication, one connection
//! per printer, `remote_status`, frames in, commands out.

use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use entity::printer;
use futures_util::{SinkExt, StreamExt};

use super::frames::{self, Frame};
use super::hub::{Outbound, Registration, remote_status};
use crate::auth::bearer_token;
use crate::error::AppError;
use crate::ratelimit::{ClientAddr, charge_agent};
use crate::responses::detail;
use crate::service::AgentSession;
use crate::state::AppState;

/// Close code when the server shuts down ("going away").
const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for an agent that floods.
const CLOSE_POLICY: u16 = 1008;

/// Authenticates the handshake (`authorization: bearer <auth_token>`, any
/// case) and upgrades; an unknown, archived or deleted printer's token gets
/// 401 before any upgrade.
pub async fn upgrade(
    State(state): State<AppState>,
    addr: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let found = match token {
        Some(t) => state.gateway.service().agent_printer(t).await,
        None => Ok(None),
    };
    if let Ok(p) = &found
        && let Err(refused) = charge_agent(
            &state.limiter,
            p.as_ref().map(|p| p.id),
            addr.as_ref().map(|a| &a.0),
        )
    {
        return refused;
    }
    match found {
        Ok(Some(p)) => ws
            .max_message_size(frames::MAX_FRAME_BYTES * 4)
            .on_upgrade(move |socket| session(state, p, socket))
            .into_response(),
        Ok(None) => detail(StatusCode::UNAUTHORIZED, "Invalid or inactive token."),
        Err(e) => {
            e.log();
            detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error.")
        }
    }
}

async fn session(state: AppState, printer: printer::Model, socket: WebSocket) {
    let service = state.gateway.service().clone();
    let hub = state.agents.clone();
    let printer_id = printer.id;
    let Registration {
        id: conn_id,
        mut outbound,
        mut closed,
    } = hub.register(printer_id);
    let (mut sink, mut stream) = socket.split();
    let mut agent = AgentSession::new(printer_id);
    let watch = service.should_watch(&printer).await.unwrap_or(false);
    if sink
        .send(Message::Text(remote_status(watch).into()))
        .await
        .is_err()
    {
        hub.unregister(printer_id, conn_id);
        return;
    }
    if let Some(cluster) = &state.cluster {
        cluster.agent_connected(printer_id);
    }
    if let Err(e) = service.agent_connected(&printer).await {
        e.log();
    }
    tracing::info!(printer_id, "agent connected");
    let mut shutdown = state.shutdown.subscribe();
    let close_with = loop {
        tokio::select! {
            () = crate::state::going_away(&mut shutdown) => break Some((CLOSE_GOING_AWAY, "server shutting down")),
            // Replaced (4321) or removed (deleted, archived): always heard,
            // whatever is queued.
            _ = closed.changed() => break *closed.borrow(),
            out = outbound.recv() => match out {
                Some(Outbound::Text(frame, done)) => {
                    if sink.send(Message::Text(frame.into())).await.is_err() {
                        break None;
                    }
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
                // The hub dropped the connection: with a close signal, if
                // it gave one (both branches are ready together).
                None => break *closed.borrow(),
            },
            msg = stream.next() => {
                let msg = match msg {
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break None,
                    Some(Ok(m)) => m,
                };
                // Every frame counts against the printer's budget, which a
                // reconnect does not refill.
                if !hub.take_frame(printer_id) {
                    tracing::warn!(printer_id, "agent floods; closing");
                    break Some((CLOSE_POLICY, "too many frames"));
                }
                if let Message::Text(text) = msg
                    && !handle_text(&state, &mut agent, text.as_str()).await
                {
                    break Some((1000, "printer removed"));
                }
                // Binary frames only carry tunnel replies; pings are
                // answered by the websocket layer.
            }
        }
    };
    if let Some((code, reason)) = close_with {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            sink.send(Message::Close(Some(frame))),
        )
        .await;
    }
    if hub.unregister(printer_id, conn_id) {
        if let Err(e) = service.agent_disconnected(printer_id).await {
            e.log();
        }
        tracing::info!(printer_id, "agent disconnected");
    }
}

/// Applies one text frame; `false` when the printer is gone (deleted or
/// archived), so the session must end.
async fn handle_text(state: &AppState, agent: &mut AgentSession, text: &str) -> bool {
    let service = state.gateway.service();
    let printer_id = agent.printer_id();
    let frame = match frames::parse(text) {
        Ok(f) => f,
        Err(why) => {
            tracing::warn!(printer_id, why = %crate::metrics::truncated(&why), "dropped an agent frame");
            return true;
        }
    };
    let result = match frame {
        Frame::Passthru => {
            tracing::debug!(printer_id, "passthru reply");
            Ok(())
        }
        Frame::Tunnel => Ok(()),
        Frame::Status(report) => match service.agent_report(agent, *report).await {
            Ok(Some(watch)) => {
                state.agents.send(printer_id, remote_status(watch));
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        },
    };
    match result {
        Err(AppError::NotFound) => false,
        Err(e) => {
            e.log();
            true
        }
        Ok(()) => true,
    }
}
