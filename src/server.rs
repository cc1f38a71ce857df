//! The HTTP server loop: accepts connections, refuses the ones over the
//! caps (per client address and in all), gives each a deadline for its
//! request headers (a client that trickles headers is cut off, not held),
//! serves HTTP/1.1 (with websocket upgrades) and HTTP/2, and drains
//! gracefully on shutdown.
//!
//! axum's own `serve` has no header timeout and no connection caps; this
//! is the same hyper-util machinery with both.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// The connection caps and the header deadline.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    pub per_address: usize,
    pub total: usize,
    pub header_read_timeout: Duration,
    /// Peers not held to the per-address cap: a reverse proxy carries
    /// every client's connections.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Open connections, by client address.
#[derive(Default)]
struct Counts {
    by_address: HashMap<IpAddr, usize>,
    total: usize,
}

/// Holds a connection's place in the counts until it closes.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut c) = self.counts.lock() {
            c.total = c.total.saturating_sub(1);
            if let Some(n) = c.by_address.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    c.by_address.remove(&self.ip);
                }
            }
        }
    }
}

fn admit(counts: &Arc<Mutex<Counts>>, ip: IpAddr, limits: &ConnLimits) -> Option<Slot> {
    let mut c = counts.lock().ok()?;
    let mine = c.by_address.get(&ip).copied().unwrap_or(0);
    let proxy = limits.trusted_proxies.iter().any(|n| n.contains(&ip));
    if (mine >= limits.per_address && !proxy) || c.total >= limits.total {
        return None;
    }
    c.total += 1;
    *c.by_address.entry(ip).or_insert(0) += 1;
    Some(Slot {
        counts: counts.clone(),
        ip,
    })
}

/// Serves `router` on `listener` until `shutdown` completes, then stops
/// accepting and waits for open requests to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let counts = Arc::new(Mutex::new(Counts::default()));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = admit(&counts, peer.ip(), &limits) else {
            crate::metrics::metrics()
                .connections_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(peer = %peer.ip(), "connection refused: over the connection cap");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(move |req: hyper::Request<hyper::body::Incoming>| {
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                    req
                });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_over_its_cap_is_refused_and_its_places_come_back() {
        let counts = Arc::new(Mutex::new(Counts::default()));
        let limits = ConnLimits {
            per_address: 2,
            total: 3,
            header_read_timeout: Duration::from_secs(1),
            trusted_proxies: Vec::new(),
        };
        let a: IpAddr = [1, 1, 1, 1].into();
        let b: IpAddr = [2, 2, 2, 2].into();
        let one = admit(&counts, a, &limits);
        let two = admit(&counts, a, &limits);
        assert!(one.is_some() && two.is_some());
        assert!(admit(&counts, a, &limits).is_none(), "per address");
        let three = admit(&counts, b, &limits);
        assert!(three.is_some());
        assert!(admit(&counts, b, &limits).is_none(), "in all");
        drop(one);
        assert!(admit(&counts, a, &limits).is_some(), "a place came back");
        drop((two, three));
    }
}
