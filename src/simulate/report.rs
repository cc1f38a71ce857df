//! The simulator's measurements: GraphQL subscribers that check statuses
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
    /// Status-to-subscriber latencies, in milliseconds, with when each
    /// status was sent (unix ms).
    pub latencies_ms: Vec<(i64, i64)>,
    /// The newest sequence number seen, by agent tag.
    pub last: HashMap<String, u64>,
    /// Statuses sent after the warm-up that this subscriber never saw
    /// (gaps in a printer's sequence numbers).
    pub missed_steady: u64,
}

impl Seen {
    /// Printers whose last sent status this subscriber never saw.
    fn newest_missed(&self, sent: &HashMap<String, u64>) -> u64 {
        sent.iter()
            .filter(|(token, seq)| self.last.get(*token) != Some(*seq))
            .count() as u64
    }
}

const SUBSCRIPTION: &str = "subscription { printerUpdated { status { raw } } }";

/// Subscribes to all of the user's printers until `stop` flips (plus a
/// grace period for the last statuses).
pub async fn watch(
    url: String,
    jwt: String,
    steady_from_ms: i64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Seen {
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
                let (Some(token), Some(seq)) = (p["status"]["raw"]["_sim_agent"].as_str(), p["status"]["raw"]["_sim_seq"].as_u64()) else {
                    continue;
                };
                seen.updates += 1;
                let prev = seen.last.get(token).copied().unwrap_or(0);
                if seq < prev {
                    seen.reordered += 1;
                } else if seq > prev {
                    seen.distinct += 1;
                    seen.last.insert(token.to_owned(), seq);
                    if let Some(sent) = p["status"]["raw"]["_sim_sent_ms"].as_i64() {
                        seen.latencies_ms.push((sent, chrono::Utc::now().timestamp_millis() - sent));
                        // Sequence numbers go up by one per status sent.
                        if sent >= steady_from_ms + 1000 && prev > 0 {
                            seen.missed_steady += seq - prev - 1;
                        }
                    }
                }
            }
        }
    }
    seen
}

/// The `_sim_seq` of each printer's stored status, by agent tag.
pub async fn stored_seqs(
    http: &reqwest::Client,
    url: &str,
    jwt: &str,
) -> Result<HashMap<String, u64>, String> {
    let body: Value = http
        .post(format!("{url}/graphql"))
        .bearer_auth(jwt)
        .json(&json!({"query": "{ printers { status { raw } } }"}))
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
                        p["status"]["raw"]["_sim_agent"].as_str()?.to_owned(),
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

/// How long after the start the agents count as connected: the steady
/// figures leave out statuses sent before (the connection storm of a farm
/// starting at once, reported on its own).
pub const WARM_UP: Duration = Duration::from_secs(10);

/// The JSON report of a run (which started at `started_ms`, unix ms);
/// `seen` has one entry per subscriber.
pub fn summarize(
    counters: &Counters,
    started_ms: i64,
    elapsed: Duration,
    sent: &HashMap<String, u64>,
    stored: &HashMap<String, u64>,
    seen: &[Seen],
) -> Value {
    let statuses = counters.statuses_sent.load(Ordering::Relaxed);
    let lost_at_end = sent
        .iter()
        .filter(|(token, seq)| stored.get(*token) != Some(*seq))
        .count();
    let steady_from = started_ms + i64::try_from(WARM_UP.as_millis()).unwrap_or(i64::MAX);
    let (mut lat, mut warm): (Vec<i64>, Vec<i64>) = (Vec::new(), Vec::new());
    for &(sent, ms) in seen.iter().flat_map(|s| s.latencies_ms.iter()) {
        if sent >= steady_from {
            lat.push(ms);
        } else {
            warm.push(ms);
        }
    }
    lat.sort_unstable();
    warm.sort_unstable();
    let distinct_min = seen.iter().map(|s| s.distinct).min().unwrap_or(0);
    // The newest status of every printer reached every subscriber.
    let newest_missed: u64 = seen.iter().map(|s| s.newest_missed(sent)).sum();
    json!({
        "agents": sent.len(),
        "seconds": elapsed.as_secs_f64(),
        "statuses_sent": statuses,
        "statuses_per_sec": statuses as f64 / elapsed.as_secs_f64().max(0.001),
        "printers_whose_stored_status_is_not_the_last_sent": lost_at_end,
        "subscribers": seen.len(),
        "subscription_updates": seen.iter().map(|s| s.updates).sum::<u64>(),
        "subscription_distinct_statuses": distinct_min,
        "subscription_reordered": seen.iter().map(|s| s.reordered).sum::<u64>(),
        "statuses_never_delivered": seen.iter().map(|s| statuses.saturating_sub(s.distinct)).max().unwrap_or(statuses),
        "statuses_never_delivered_after_warm_up": seen.iter().map(|s| s.missed_steady).max().unwrap_or(0),
        "newest_status_missed": newest_missed,
        "latency_ms_p50": percentile(&lat, 0.5),
        "latency_ms_p99": percentile(&lat, 0.99),
        "latency_ms_max": lat.last().copied().unwrap_or(0),
        "warm_up_seconds": WARM_UP.as_secs(),
        "warm_up_latency_ms_p50": percentile(&warm, 0.5),
        "warm_up_latency_ms_p99": percentile(&warm, 0.99),
        "snapshots_posted": counters.snapshots_posted.load(Ordering::Relaxed),
        "connections": counters.connections.load(Ordering::Relaxed),
    })
}
