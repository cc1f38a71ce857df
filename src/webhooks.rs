//! The webhook delivery worker: posts queued events to their endpoints,
//! signed per Standard Webhooks (`../shared/spec/webhooks.md`), off every
//! request path.
//!
//! Each pass asks the service which endpoints have a delivery due, and
//! runs one task per endpoint (at most [`WebhookConfig::concurrency`] at
//! once), which claims and sends that endpoint's due deliveries oldest
//! first. So a slow or dead receiver holds its own task only: another
//! endpoint's (another user's) deliveries go on beside it. What an attempt
//! came to is handed back to the service, which holds every rule (retries,
//! `retry-after`, 410, disabling). Redirects are not followed, and outside
//! development every address a host resolves to is checked at connect
//! time (against DNS rebinding), not only when the endpoint was saved.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};

use crate::config::WebhookConfig;
use crate::service::Service;
use crate::service::webhooks::{Attempt, Claimed, is_public, secret_bytes};

/// How often the worker looks for due deliveries without being woken,
/// and sweeps for printers that came online or went offline.
const PASS_EVERY: Duration = Duration::from_secs(1);
/// Most deliveries one endpoint task sends before giving its slot back.
const PER_TASK: usize = 50;

/// The Standard Webhooks signature of one attempt: `v1,` and the base64
/// HMAC-SHA256 of `{id}.{timestamp}.{body}`.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// Resolves host names to public addresses only (production).
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{} resolves to no public address (loopback, private, link-local and metadata addresses are refused)",
                    name.as_str()
                )
                .into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Starts the worker; it runs until `stop` flips to true.
pub fn start(
    service: Service,
    config: WebhookConfig,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), reqwest::Error> {
    let mut client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(10)))
        .no_proxy()
        .user_agent(concat!("printgate-webhooks/", env!("CARGO_PKG_VERSION")));
    if !config.allow_private_targets {
        client = client.dns_resolver(Arc::new(PublicOnly));
    }
    let worker = Worker {
        service,
        client: client.build()?,
        config,
        busy: Arc::default(),
    };
    tokio::spawn(worker.run(stop));
    Ok(())
}

#[derive(Clone)]
struct Worker {
    service: Service,
    client: reqwest::Client,
    config: WebhookConfig,
    /// Endpoints this instance is sending to now.
    busy: Arc<Mutex<HashSet<i32>>>,
}

/// Takes an endpoint off the busy set when its task ends, however it ends.
struct Release(Arc<Mutex<HashSet<i32>>>, i32);

impl Drop for Release {
    fn drop(&mut self) {
        if let Ok(mut b) = self.0.lock() {
            b.remove(&self.1);
        }
    }
}

impl Worker {
    async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let wake = self.service.webhook_wake();
        let mut tick = tokio::time::interval(PASS_EVERY);
        loop {
            tokio::select! {
                () = crate::state::going_away(&mut stop) => return,
                () = wake.notified() => {}
                _ = tick.tick() => {
                    if let Err(e) = self.service.sweep_online().await {
                        e.log();
                    }
                }
            }
            if let Err(e) = self.pass().await {
                e.log();
            }
        }
    }

    /// Starts a task for each endpoint with a delivery due that has none.
    async fn pass(&self) -> Result<(), crate::error::AppError> {
        let free = self.config.concurrency.saturating_sub(self.in_flight());
        if free == 0 {
            return Ok(());
        }
        let due = self
            .service
            .due_webhooks(u64::try_from(free * 4).unwrap_or(u64::MAX))
            .await?;
        for id in due {
            if self.in_flight() >= self.config.concurrency {
                break;
            }
            let fresh = self.busy.lock().is_ok_and(|mut b| b.insert(id));
            if !fresh {
                continue;
            }
            let release = Release(self.busy.clone(), id);
            let worker = self.clone();
            tokio::spawn(async move {
                let _release = release;
                worker.serve(id).await;
            });
        }
        Ok(())
    }

    fn in_flight(&self) -> usize {
        self.busy.lock().map_or(0, |b| b.len())
    }

    /// Sends endpoint `id`'s due deliveries, oldest first.
    async fn serve(&self, id: i32) {
        // Held past the timeout, so no instance claims it while an attempt
        // may still be in flight.
        let lease = self.config.timeout + Duration::from_secs(30);
        for _ in 0..PER_TASK {
            let claimed = match self.service.claim_delivery(id, lease).await {
                Ok(Some(c)) => c,
                Ok(None) => return,
                Err(e) => return e.log(),
            };
            let attempt = self.attempt(&claimed).await;
            let failed = !attempt.status.is_some_and(|s| (200..300).contains(&s));
            crate::metrics::metrics().webhook_attempt(!failed);
            if let Err(e) = self.service.record_attempt(&claimed, attempt).await {
                return e.log();
            }
            if failed {
                // The rest of this endpoint's queue waits for its next
                // pass: a failing receiver is not hammered.
                return;
            }
        }
    }

    /// One signed POST of a delivery's message.
    async fn attempt(&self, c: &Claimed) -> Attempt {
        let started = Instant::now();
        let url = match reqwest::Url::parse(&c.webhook.url) {
            Ok(u) => u,
            Err(_) => return failed(started, "The URL no longer parses."),
        };
        // An IP literal is never resolved: check it here.
        if !self.config.allow_private_targets {
            let literal = match url.host() {
                Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
                _ => None,
            };
            if literal.is_some_and(|ip| !is_public(ip)) {
                return failed(
                    started,
                    "The URL points at a loopback, private, link-local or metadata address, which is refused.",
                );
            }
        }
        let now = chrono::Utc::now();
        let ts = now.timestamp();
        let body = &c.message.payload;
        let mut signature = sign(&secret_bytes(&c.webhook.secret), &c.message.uid, ts, body);
        if let (Some(old), Some(until)) =
            (&c.webhook.previous_secret, c.webhook.previous_secret_until)
            && until > now
        {
            signature.push(' ');
            signature.push_str(&sign(&secret_bytes(old), &c.message.uid, ts, body));
        }
        let sent = self
            .client
            .post(url)
            .header("webhook-id", &c.message.uid)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(retry_after);
                Attempt {
                    status: Some(status),
                    duration: started.elapsed(),
                    error: resp.status().is_redirection().then(|| {
                        format!("The receiver answered {status} (a redirect, not followed).")
                    }),
                    retry_after,
                }
            }
            Err(e) if e.is_timeout() => failed(
                started,
                &format!("No answer within {} s.", self.config.timeout.as_secs()),
            ),
            Err(e) => failed(started, &describe(&e)),
        }
    }
}

fn failed(started: Instant, why: &str) -> Attempt {
    Attempt {
        status: None,
        duration: started.elapsed(),
        error: Some(why.to_owned()),
        retry_after: None,
    }
}

/// A transport error with its causes (reqwest's own text stops at the
/// outermost).
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_connect() {
        "Could not connect".to_owned()
    } else {
        "The request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A `retry-after` value: seconds, or an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_test_vector_signs_as_given() {
        let secret = secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        assert_eq!(
            sign(
                &secret,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        let later = (chrono::Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        assert!(retry_after(&later).is_some_and(|d| d.as_secs() >= 80));
        assert_eq!(retry_after("soon"), None);
    }
}
