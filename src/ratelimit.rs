//! Rate limiting: token buckets on every surface (GraphQL, REST, the agent
//! endpoints and websockets' handshakes).
//!
//! Every request takes a token from its client address's bucket. A request
//! with a bearer JWT is verified here, once (the identity travels on in the
//! request's extensions), and a verified one also takes a token from its
//! user's bucket; an agent's request takes one from its printer's bucket
//! once the agent endpoint has checked the token. A credential that does
//! not verify takes from its address's much smaller failed-authentication
//! bucket, so a stream of junk tokens meets 429 instead of a fresh bucket
//! per token. Behind a reverse proxy the client address comes from
//! `X-Forwarded-For`, but only when the peer is a configured trusted proxy.
//! A refused request gets 429 with `Retry-After`.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use serde_json::json;

use crate::auth::Identity;

/// Most buckets tracked. Past it, buckets that have refilled (which are
/// the same as new ones) are dropped; callers that still find no room
/// share one overflow bucket, so a flood of new keys neither grows the
/// table nor resets anyone's bucket.
pub const CAPACITY: usize = 100_000;
/// Failed authentications an address may make per second, and at once.
pub const FAILED_AUTH_PER_SECOND: f64 = 1.0;
pub const FAILED_AUTH_BURST: f64 = 20.0;

/// The limits: sustained requests per second and the burst above it, per
/// caller (a user or a printer) and per client address.
/// `per_second == 0` turns limiting off.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
    pub per_second: f64,
    pub burst: f64,
    /// Per client address, whoever the callers behind it are.
    pub per_address_per_second: f64,
    pub per_address_burst: f64,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_second: 200.0,
            burst: 400.0,
            per_address_per_second: 400.0,
            per_address_burst: 800.0,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Whose bucket a token is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// A verified user (a hash of the token's `sub`).
    User(u64),
    /// A printer whose agent token was checked.
    Printer(i32),
    /// A client address (IPv6 by its /64: one host holds a whole prefix).
    Address(IpAddr),
    /// Failed authentications from an address.
    FailedAuth(IpAddr),
    /// Every caller that found the table full.
    Overflow,
}

#[derive(Debug, Clone, Copy)]
struct Rate {
    per_second: f64,
    burst: f64,
}

struct Bucket {
    tokens: f64,
    last: Instant,
    rate: Rate,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let r = self.rate;
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * r.per_second).min(r.burst);
        self.last = now;
    }

    fn full_at(&self, now: Instant) -> bool {
        self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate.per_second
            >= self.rate.burst
    }
}

struct Table {
    buckets: HashMap<Caller, Bucket>,
    last_sweep: Option<Instant>,
}

/// The buckets of every caller.
pub struct RateLimiter {
    limits: RateLimits,
    table: Mutex<Table>,
    capacity: usize,
    hasher: RandomState,
}

/// The client address of a request, as the rate limiter resolved it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl RateLimiter {
    pub fn new(limits: RateLimits) -> Self {
        Self::with_capacity(limits, CAPACITY)
    }

    /// A limiter tracking at most `capacity` buckets (tests use small ones).
    pub fn with_capacity(limits: RateLimits, capacity: usize) -> Self {
        Self {
            limits,
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                last_sweep: None,
            }),
            capacity: capacity.max(1),
            hasher: RandomState::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.limits.per_second > 0.0
    }

    fn rate(&self, caller: Caller) -> Rate {
        let l = &self.limits;
        match caller {
            Caller::User(_) | Caller::Printer(_) | Caller::Overflow => Rate {
                per_second: l.per_second,
                burst: l.burst,
            },
            Caller::Address(_) => Rate {
                per_second: l.per_address_per_second,
                burst: l.per_address_burst.max(1.0),
            },
            Caller::FailedAuth(_) => Rate {
                per_second: FAILED_AUTH_PER_SECOND,
                burst: FAILED_AUTH_BURST,
            },
        }
    }

    /// The bucket key of a verified user.
    pub fn user(&self, sub: &str) -> Caller {
        Caller::User(self.hasher.hash_one(sub))
    }

    /// How many buckets are tracked now.
    pub fn tracked(&self) -> usize {
        self.table.lock().map(|t| t.buckets.len()).unwrap_or(0)
    }

    /// Takes a token for `caller`; on refusal, the seconds until one is back.
    pub fn take(&self, caller: Caller) -> Result<(), u64> {
        if !self.enabled() {
            return Ok(());
        }
        let Ok(mut table) = self.table.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        let mut key = caller;
        if table.buckets.len() >= self.capacity && !table.buckets.contains_key(&caller) {
            // Sweep at most once a second: a table full of busy callers
            // must not cost a full scan per request.
            let due = table
                .last_sweep
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
            if due {
                table.buckets.retain(|_, b| !b.full_at(now));
                table.last_sweep = Some(now);
            }
            if table.buckets.len() >= self.capacity {
                key = Caller::Overflow;
            }
        }
        let rate = self.rate(key);
        let b = table.buckets.entry(key).or_insert(Bucket {
            tokens: rate.burst,
            last: now,
            rate,
        });
        b.refill(now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / rate.per_second).ceil().max(1.0) as u64)
        }
    }

    /// The client address of a request from `peer`: the peer itself, or,
    /// when the peer is a trusted proxy, the last address in
    /// `X-Forwarded-For` that is not itself a trusted proxy.
    pub fn client_addr(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let trusted = |ip: &IpAddr| self.limits.trusted_proxies.iter().any(|n| n.contains(ip));
        if !trusted(&peer) {
            return peer;
        }
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|h| h.trim().parse::<IpAddr>().ok())
            .collect();
        hops.iter()
            .rev()
            .find(|ip| !trusted(ip))
            .or(hops.first())
            .copied()
            .unwrap_or(peer)
    }
}

/// The address bucket of an address (IPv6 by its /64).
pub fn address(ip: IpAddr) -> Caller {
    Caller::Address(prefix(ip))
}

/// The failed-authentication bucket of an address.
pub fn failed_auth(ip: IpAddr) -> Caller {
    Caller::FailedAuth(prefix(ip))
}

fn prefix(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
            }
        },
    }
}

/// What the middleware needs: the buckets and the keys to verify tokens.
#[derive(Clone)]
pub struct Guard {
    pub limiter: Arc<RateLimiter>,
    pub auth: Arc<crate::auth::Authenticator>,
}

/// The 429 answer.
pub fn too_many(retry_after: u64) -> Response {
    crate::metrics::metrics()
        .rate_limited
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

/// Charges an agent's request once its token was checked: the printer's
/// bucket when it verified, the address's failed-authentication bucket
/// when it did not.
#[allow(clippy::result_large_err)]
pub fn charge_agent(
    limiter: &RateLimiter,
    printer_id: Option<i32>,
    addr: Option<&ClientAddr>,
) -> Result<(), Response> {
    let caller = match (printer_id, addr) {
        (Some(id), _) => Caller::Printer(id),
        (None, Some(a)) => failed_auth(a.0),
        (None, None) => return Ok(()),
    };
    limiter.take(caller).map_err(too_many)
}

/// The middleware: the address's bucket, then (for a bearer JWT) the
/// user's or the failed-authentication one. The verified identity is left
/// in the request's extensions for the handler.
pub async fn limit(State(guard): State<Guard>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let ip = guard.limiter.client_addr(peer, req.headers());
    req.extensions_mut().insert(ClientAddr(ip));
    let mut verdict = guard.limiter.take(address(ip));
    // Agents' tokens are not JWTs: their endpoints check them and charge
    // the printer (or the failed-authentication bucket) themselves.
    // The metrics token is not a JWT either.
    let agent_path =
        crate::metrics::surface(req.uri().path()) == "agent" || req.uri().path() == "/metrics";
    let (authorization, api_key) = crate::auth::credentials(req.headers());
    if verdict.is_ok() && !agent_path && (authorization.is_some() || api_key.is_some()) {
        let identity = guard.auth.identify(authorization, api_key).await;
        verdict = match &identity {
            Identity::Verified(c) => guard.limiter.take(guard.limiter.user(&c.sub)),
            // Each key has its own bucket: a script's key cannot spend its
            // owner's dashboard's share.
            Identity::Key(k) => guard
                .limiter
                .take(guard.limiter.user(&format!("api key {}", k.key_id))),
            _ => guard.limiter.take(failed_auth(ip)),
        };
        req.extensions_mut().insert(identity);
    }
    match verdict {
        Ok(()) => next.run(req).await,
        Err(retry_after) => {
            tracing::warn!(path = %crate::metrics::truncated(req.uri().path()), retry_after, "rate limited");
            too_many(retry_after)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_second: f64, burst: f64) -> RateLimits {
        RateLimits {
            per_second,
            burst,
            per_address_per_second: per_second,
            per_address_burst: burst,
            trusted_proxies: Vec::new(),
        }
    }

    #[test]
    fn a_caller_over_its_burst_waits_and_others_do_not() {
        let rl = RateLimiter::new(limits(1.0, 2.0));
        let a = Caller::User(1);
        let b = Caller::User(2);
        assert!(rl.take(a).is_ok());
        assert!(rl.take(a).is_ok());
        assert_eq!(rl.take(a), Err(1));
        assert!(rl.take(b).is_ok(), "another caller is unaffected");
        let off = RateLimiter::new(limits(0.0, 0.0));
        assert!((0..1000).all(|_| off.take(a).is_ok()));
    }

    #[test]
    fn a_flood_of_new_keys_resets_nobody_and_stays_bounded() {
        let rl = RateLimiter::with_capacity(limits(0.001, 2.0), 100);
        let victim = Caller::User(0);
        assert!(rl.take(victim).is_ok());
        assert!(rl.take(victim).is_ok());
        assert!(rl.take(victim).is_err(), "the victim spent its burst");
        for n in 1..10_000 {
            let _ = rl.take(Caller::User(n));
        }
        assert!(rl.tracked() <= 101, "tracked {}", rl.tracked());
        assert!(rl.take(victim).is_err(), "the flood did not refill it");
        // The flood's late keys share one overflow bucket, long spent.
        assert!(rl.take(Caller::User(20_000)).is_err());
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let mut l = limits(1.0, 1.0);
        l.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap_or_else(|e| panic!("{e}"))];
        let rl = RateLimiter::new(l);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.2.3.4, 10.0.0.7"),
        );
        let proxy: IpAddr = [10, 0, 0, 1].into();
        let stranger: IpAddr = [5, 6, 7, 8].into();
        assert_eq!(rl.client_addr(proxy, &h), IpAddr::from([1, 2, 3, 4]));
        assert_eq!(rl.client_addr(stranger, &h), stranger, "spoofed header");
        assert_eq!(rl.client_addr(proxy, &HeaderMap::new()), proxy);
    }

    #[test]
    fn ipv6_hosts_share_their_prefix() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap_or_else(|e| panic!("{e}"));
        let b: IpAddr = "2001:db8:1:2::ffff"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(address(a), address(b));
    }
}
