//! Rate limiting: a token bucket per caller, on every surface (GraphQL,
//! REST, agent endpoints and websockets' handshakes). A caller is its
//! credential (the bearer or agent token) or, without one, its IP address.
//! A refused request gets 429 with `Retry-After`.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::AppState;

/// Most callers tracked; past it the table starts over (a flood of
/// distinct callers cannot grow it without end).
const CAPACITY: usize = 100_000;

/// The limits: sustained requests per second and the burst above it.
/// `per_second == 0` turns limiting off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    pub per_second: f64,
    pub burst: f64,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_second: 200.0,
            burst: 400.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Caller {
    Credential(u64),
    Address(IpAddr),
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The buckets of every caller.
pub struct RateLimiter {
    limits: RateLimits,
    buckets: Mutex<HashMap<Caller, Bucket>>,
}

impl RateLimiter {
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `caller`; on refusal, the seconds until one is back.
    fn take(&self, caller: Caller) -> Result<(), u64> {
        let l = self.limits;
        if l.per_second <= 0.0 {
            return Ok(());
        }
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.len() >= CAPACITY && !buckets.contains_key(&caller) {
            buckets.clear();
        }
        let now = Instant::now();
        let b = buckets.entry(caller).or_insert(Bucket {
            tokens: l.burst,
            last: now,
        });
        b.tokens =
            (b.tokens + now.duration_since(b.last).as_secs_f64() * l.per_second).min(l.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / l.per_second).ceil().max(1.0) as u64)
        }
    }
}

fn caller(req: &Request) -> Caller {
    let credential = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty());
    match credential {
        Some(t) => {
            let mut h = DefaultHasher::new();
            t.hash(&mut h);
            Caller::Credential(h.finish())
        }
        None => Caller::Address(
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip()),
        ),
    }
}

/// The middleware.
pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match state.limiter.take(caller(&req)) {
        Ok(()) => next.run(req).await,
        Err(retry_after) => {
            crate::metrics::metrics()
                .rate_limited
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(path = %req.uri().path(), retry_after, "rate limited");
            let mut resp = (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({
                    "detail": "Too many requests; retry later.",
                    "errors": [{"message": "Too many requests; retry later.", "extensions": {"code": "RATE_LIMITED", "retryAfter": retry_after}}],
                })),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_over_its_burst_waits_and_others_do_not() {
        let rl = RateLimiter::new(RateLimits {
            per_second: 1.0,
            burst: 2.0,
        });
        let a = Caller::Credential(1);
        let b = Caller::Credential(2);
        assert!(rl.take(a).is_ok());
        assert!(rl.take(a).is_ok());
        assert_eq!(rl.take(a), Err(1));
        assert!(rl.take(b).is_ok(), "another caller is unaffected");
        let off = RateLimiter::new(RateLimits {
            per_second: 0.0,
            burst: 0.0,
        });
        assert!((0..1000).all(|_| off.take(a).is_ok()));
    }
}
