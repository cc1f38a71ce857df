//! The simulator's measurements: a GraphQL subscriber that checks statuses
//! arrive in order and times them, and the end-of-run comparison of what
//! was sent with what is stored.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::Counters;

/// What the subscriber saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Updates received.
    pub updates: u64,
    /// Updates whose sequence number went backwards for their printer.
    pub reordered: u64,
    /// Distinct statuses seen.
    pub distinct: u64,
    /// Status-to-subscriber latencies, in milliseconds.
    pub latencies_ms: Vec<i64>,
}

const SUBSCRIPTION: &str = "subscription { printerUpdated { authToken status { raw } } }";

/// Subscribes to all of the user's printers until `stop` flips (plus a
/// grace period for the last statuses).
pub async fn watch(url: String, jwt: String, mut stop: tokio::sync::watch::Receiver<bool>) -> Seen {
    let mut seen = Seen::default();
    let ws_url = format!("{}/graphql/ws", url.replacen("http", "ws", 1));
    let Ok(mut req) = ws_url.into_client_request() else {
        return seen;
    };
    if let Ok(v) = "graphql-transport-ws".parse() {
        req.headers_mut().insert("sec-websocket-protocol", v);
    }
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(req).await else {
        tracing::error!("the report subscriber could not connect");
        return seen;
    };
    let init =
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {jwt}")}});
    let sub = json!({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}});
    for m in [init, sub] {
        if ws.send(Message::Text(m.to_string().into())).await.is_err() {
            return seen;
        }
    }
    let mut last: HashMap<String, u64> = HashMap::new();
    let mut stopping = None;
    loop {
        let deadline =
            stopping.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = stop.changed(), if stopping.is_none() => {
                stopping = Some(tokio::time::Instant::now() + Duration::from_secs(2));
            }
            _ = tokio::time::sleep_until(deadline) => break,
            msg = ws.next() => {
                let Some(Ok(Message::Text(text))) = msg else {
                    if msg.is_none() { break } else { continue }
                };
                let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                let p = &v["payload"]["data"]["printerUpdated"];
                let (Some(token), Some(seq)) = (p["authToken"].as_str(), p["status"]["raw"]["_sim_seq"].as_u64()) else {
                    continue;
                };
                seen.updates += 1;
                let prev = last.get(token).copied().unwrap_or(0);
                if seq < prev {
                    seen.reordered += 1;
                } else if seq > prev {
                    seen.distinct += 1;
                    last.insert(token.to_owned(), seq);
                    if let Some(sent) = p["status"]["raw"]["_sim_sent_ms"].as_i64() {
                        seen.latencies_ms.push(chrono::Utc::now().timestamp_millis() - sent);
                    }
                }
            }
        }
    }
    seen
}

/// The `_sim_seq` of each printer's stored status, by agent token.
pub async fn stored_seqs(
    http: &reqwest::Client,
    url: &str,
    jwt: &str,
) -> Result<HashMap<String, u64>, String> {
    let body: Value = http
        .post(format!("{url}/graphql"))
        .bearer_auth(jwt)
        .json(&json!({"query": "{ printers { authToken status { raw } } }"}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    Ok(body["data"]["printers"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| {
                    Some((
                        p["authToken"].as_str()?.to_owned(),
                        p["status"]["raw"]["_sim_seq"].as_u64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default())
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The JSON report of a run.
pub fn summarize(
    counters: &Counters,
    elapsed: Duration,
    sent: &HashMap<String, u64>,
    stored: &HashMap<String, u64>,
    seen: &Seen,
) -> Value {
    let statuses = counters.statuses_sent.load(Ordering::Relaxed);
    let lost_at_end = sent
        .iter()
        .filter(|(token, seq)| stored.get(*token) != Some(*seq))
        .count();
    let mut lat = seen.latencies_ms.clone();
    lat.sort_unstable();
    json!({
        "agents": sent.len(),
        "seconds": elapsed.as_secs_f64(),
        "statuses_sent": statuses,
        "statuses_per_sec": statuses as f64 / elapsed.as_secs_f64().max(0.001),
        "printers_whose_stored_status_is_not_the_last_sent": lost_at_end,
        "subscription_updates": seen.updates,
        "subscription_distinct_statuses": seen.distinct,
        "subscription_reordered": seen.reordered,
        "latency_ms_p50": percentile(&lat, 0.5),
        "latency_ms_p99": percentile(&lat, 0.99),
        "snapshots_posted": counters.snapshots_posted.load(Ordering::Relaxed),
        "connections": counters.connections.load(Ordering::Relaxed),
    })
}
