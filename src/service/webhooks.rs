//! Webhooks: a user's endpoints, the outbox, and the delivery bookkeeping
//! (`../shared/spec/webhooks.md`; decisions in docs/integrations.md).
//!
//! An event becomes a message (its `webhook-id` and the exact body every
//! attempt sends) plus one delivery per subscribed endpoint, written in the
//! transaction of the change that caused it: no change without its event,
//! and a process killed before delivery loses nothing. The worker
//! (`src/webhooks.rs`) claims due deliveries one endpoint at a time and
//! reports each attempt here; every rule about retries, disabling and caps
//! is in this file. Endpoints are managed only in person (a session JWT).

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use entity::{print, printer, webhook, webhook_attempt, webhook_delivery, webhook_message};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, TransactionTrait,
    sea_query::{Expr, ExprTrait},
};
use serde_json::{Value, json};

use super::{Service, Viewer, chrono_of, now, rules};
use crate::error::{AppError, code};

/// The event types an endpoint can subscribe to.
pub mod types {
    pub const PRINT_STARTED: &str = "print.started";
    pub const PRINT_FINISHED: &str = "print.finished";
    pub const PRINT_CANCELLED: &str = "print.cancelled";
    pub const PRINT_FAILED: &str = "print.failed";
    pub const FAILURE_ALERTED: &str = "failure.alerted";
    pub const PRINTER_ONLINE: &str = "printer.online";
    pub const PRINTER_OFFLINE: &str = "printer.offline";
    pub const FILAMENT_CHANGE: &str = "printer.filament_change";
    pub const PRINTER_CREATED: &str = "printer.created";
    pub const PRINTER_DELETED: &str = "printer.deleted";
    /// Sent by `sendTestWebhook` to that endpoint only.
    pub const TEST: &str = "webhook.test";

    /// Every type an endpoint may subscribe to, in documentation order.
    pub const ALL: [&str; 10] = [
        PRINT_STARTED,
        PRINT_FINISHED,
        PRINT_CANCELLED,
        PRINT_FAILED,
        FAILURE_ALERTED,
        PRINTER_ONLINE,
        PRINTER_OFFLINE,
        FILAMENT_CHANGE,
        PRINTER_CREATED,
        PRINTER_DELETED,
    ];
}

/// Delivery states.
pub mod states {
    pub const PENDING: &str = "PENDING";
    pub const DELIVERED: &str = "DELIVERED";
    pub const FAILED: &str = "FAILED";
}

/// Longest endpoint URL.
const URL_MAX_CHARS: usize = 2000;
/// Longest description.
const DESCRIPTION_MAX_CHARS: usize = 500;
/// Longest error text kept for an attempt.
const ERROR_MAX_CHARS: usize = 500;
/// Longest a `retry-after` may push an attempt back.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(24 * 3600);
/// Most attempts one page of deliveries may carry.
pub const MAX_PAGE: u64 = 100;

/// How deliveries are retried and where endpoints may point.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The delay before each attempt: the first after the event, each next
    /// one after the previous failure (then jittered by up to a fifth).
    /// After the last, the delivery has failed and the endpoint is
    /// disabled.
    pub retry_schedule: Vec<Duration>,
    /// How long a printer must stay offline before `printer.offline`
    /// (a flapping agent is not announced).
    pub offline_grace: Duration,
    /// Whether endpoints may resolve to loopback, private, link-local or
    /// metadata addresses (development: local receivers work).
    pub allow_private_targets: bool,
    /// How long the secret before a rotation keeps signing.
    pub rotation_grace: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            retry_schedule: default_schedule(),
            offline_grace: Duration::from_secs(60),
            allow_private_targets: true,
            rotation_grace: Duration::from_secs(24 * 3600),
        }
    }
}

/// The spec's example schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h,
/// 10 h, 14 h, 20 h, 24 h.
pub fn default_schedule() -> Vec<Duration> {
    [
        0, 5, 300, 1800, 7200, 18_000, 36_000, 50_400, 72_000, 86_400,
    ]
    .into_iter()
    .map(Duration::from_secs)
    .collect()
}

/// A new endpoint.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
}

/// Changes to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    /// Re-enabling clears the reason it was disabled.
    pub enabled: Option<bool>,
}

/// A due delivery, claimed by this instance until its lease ends.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery: webhook_delivery::Model,
    pub message: webhook_message::Model,
    pub webhook: webhook::Model,
}

/// What one attempt came to, as the worker saw it.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    pub duration: Duration,
    /// Why it failed, when it did without a status (or with a non-2xx one).
    pub error: Option<String>,
    /// The receiver's `retry-after`, when it sent one.
    pub retry_after: Option<Duration>,
}

/// One attempt as the user sees it, with the event it carried.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub attempt: webhook_attempt::Model,
    pub event_id: String,
    pub event_type: String,
}

/// A page of an endpoint's attempts, newest first.
#[derive(Debug, Clone)]
pub struct AttemptPage {
    pub attempts: Vec<AttemptRecord>,
    pub has_next: bool,
}

/// `whsec_` and 32 random bytes in standard base64.
fn new_secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    )
}

/// The key bytes of a `whsec_` secret.
pub fn secret_bytes(secret: &str) -> Vec<u8> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_else(|_| b64.as_bytes().to_vec())
}

/// Whether a webhook may be sent to `ip` when private targets are not
/// allowed: only globally routable unicast addresses (no loopback,
/// private, link-local, carrier-grade NAT, metadata, multicast,
/// unspecified or documentation ranges; IPv4-mapped IPv6 judged as IPv4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (18..20).contains(&o[1]))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x64 && s[1] == 0xff9b))
        }
    }
}

/// Checks an endpoint URL's form: absolute http(s), a host, no
/// credentials, no fragment. Where it resolves to is checked separately.
fn valid_url(url: &str) -> Result<url::Url, AppError> {
    let bad = |m: &str| AppError::invalid("url", m);
    let url = url.trim();
    if url.chars().count() > URL_MAX_CHARS {
        return Err(bad(&format!(
            "Ensure this field has no more than {URL_MAX_CHARS} characters."
        )));
    }
    let parsed = url::Url::parse(url).map_err(|_| bad("Enter a valid URL."))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("Only http and https URLs are allowed."));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("Enter a valid URL."));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("Credentials in the URL are not allowed."));
    }
    if parsed.fragment().is_some() {
        return Err(bad("A URL with a fragment (#) is not allowed."));
    }
    Ok(parsed)
}

/// The addresses `url` resolves to (an IP literal resolves to itself).
pub async fn resolve(url: &url::Url) -> std::io::Result<Vec<IpAddr>> {
    let port = url.port_or_known_default().unwrap_or(443);
    match url.host() {
        Some(url::Host::Ipv4(ip)) => Ok(vec![IpAddr::V4(ip)]),
        Some(url::Host::Ipv6(ip)) => Ok(vec![IpAddr::V6(ip)]),
        Some(url::Host::Domain(d)) => Ok(tokio::net::lookup_host((d, port))
            .await?
            .map(|a| a.ip())
            .collect()),
        None => Ok(Vec::new()),
    }
}

fn valid_events(events: &[String]) -> Result<String, AppError> {
    let mut kept: Vec<&str> = Vec::new();
    for e in events {
        let Some(t) = types::ALL.iter().find(|t| **t == e.as_str()) else {
            return Err(AppError::invalid(
                "events",
                format!("\"{e}\" is not an event type."),
            ));
        };
        if !kept.contains(t) {
            kept.push(t);
        }
    }
    if kept.is_empty() {
        return Err(AppError::invalid(
            "events",
            "Choose at least one event type.",
        ));
    }
    Ok(kept.join(" "))
}

/// A description: optional (blank is none), else as [`rules::valid_text`].
fn valid_description(d: Option<String>) -> Result<Option<String>, AppError> {
    d.filter(|d| !d.trim().is_empty())
        .map(|d| rules::valid_text("description", &d, DESCRIPTION_MAX_CHARS))
        .transpose()
}

/// The event types an endpoint receives.
pub fn event_types(w: &webhook::Model) -> Vec<&str> {
    w.event_types.split(' ').filter(|t| !t.is_empty()).collect()
}

/// A printer as events name it.
pub fn printer_data(p: &printer::Model) -> Value {
    json!({"id": p.id, "name": p.name})
}

/// A print as events name it.
pub fn print_data(p: &print::Model) -> Value {
    json!({
        "id": p.id,
        "filename": p.filename,
        "started_at": p.started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "ended_at": p.finished_at.or(p.cancelled_at)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    })
}

fn cut(text: &str) -> String {
    text.chars().take(ERROR_MAX_CHARS).collect()
}

impl Service {
    fn settings(&self) -> &WebhookSettings {
        &self.webhook_settings
    }

    /// Tells read caches (on every instance) that the user's keys or
    /// webhooks changed; call after the transaction that bumped the
    /// user's version.
    pub(super) fn integration_changed(&self, user_id: i32) {
        self.events.publish(crate::events::Event {
            printer_id: 0,
            user_id,
            kind: crate::events::EventKind::Integration,
            seq: 0,
        });
    }

    /// Refuses a URL that is not http(s) or, in production, that resolves
    /// to an address that is not public (the worker checks again at
    /// connect time: DNS may change).
    async fn checked_url(&self, url: &str) -> Result<String, AppError> {
        let parsed = valid_url(url)?;
        if !self.settings().allow_private_targets {
            let addrs = resolve(&parsed)
                .await
                .map_err(|_| AppError::invalid("url", "The host name does not resolve."))?;
            if addrs.is_empty() || addrs.iter().any(|a| !is_public(*a)) {
                return Err(AppError::invalid(
                    "url",
                    "The URL points at a loopback, private, link-local or metadata address, which is not allowed.",
                ));
            }
        }
        Ok(parsed.to_string())
    }

    /// Creates an endpoint; returns it and its secret (shown once).
    pub async fn create_webhook(
        &self,
        viewer: &Viewer,
        new: NewWebhook,
    ) -> Result<(webhook::Model, String), AppError> {
        viewer.in_person()?;
        let mut c = crate::error::Checks::default();
        let events = c.check(valid_events(&new.events));
        let description = c.check(valid_description(new.description));
        let url = c.check(self.checked_url(&new.url).await);
        c.finish()?;
        let (Some(events), Some(description), Some(url)) = (events, description, url) else {
            return Err(AppError::internal("checked input vanished"));
        };
        let secret = new_secret();
        let txn = self.db().begin().await?;
        super::bump_version(&txn, viewer.id()).await?;
        let owned = webhook::Entity::find()
            .filter(webhook::Column::UserId.eq(viewer.id()))
            .count(&txn)
            .await?;
        let cap = self.limits.max_webhooks_per_user;
        if owned >= cap {
            return Err(AppError::LimitReached {
                code: code::WEBHOOK_LIMIT_REACHED,
                message: format!("A user may have at most {cap} webhooks; delete one first."),
                limit: cap,
            });
        }
        let t = now();
        let row = webhook::ActiveModel {
            user_id: Set(viewer.id()),
            url: Set(url),
            description: Set(description),
            event_types: Set(events),
            secret: Set(secret.clone()),
            previous_secret: Set(None),
            previous_secret_until: Set(None),
            enabled: Set(true),
            disabled_reason: Set(None),
            failing_since: Set(None),
            created_at: Set(t),
            updated_at: Set(t),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        self.integration_changed(viewer.id());
        Ok((row, secret))
    }

    /// The viewer's endpoints, oldest first.
    pub async fn webhooks(&self, viewer: &Viewer) -> Result<Vec<webhook::Model>, AppError> {
        viewer.in_person()?;
        Ok(webhook::Entity::find()
            .filter(webhook::Column::UserId.eq(viewer.id()))
            .order_by_asc(webhook::Column::Id)
            .all(self.db())
            .await?)
    }

    /// One of the viewer's endpoints.
    pub async fn webhook(
        &self,
        viewer: &Viewer,
        id: i32,
    ) -> Result<Option<webhook::Model>, AppError> {
        viewer.in_person()?;
        Ok(webhook::Entity::find_by_id(id)
            .filter(webhook::Column::UserId.eq(viewer.id()))
            .one(self.db())
            .await?)
    }

    async fn owned_webhook(&self, viewer: &Viewer, id: i32) -> Result<webhook::Model, AppError> {
        self.webhook(viewer, id).await?.ok_or(AppError::NotFound)
    }

    /// Changes an endpoint: only the given fields. Nothing is written when
    /// any is invalid.
    pub async fn update_webhook(
        &self,
        viewer: &Viewer,
        id: i32,
        patch: WebhookPatch,
    ) -> Result<webhook::Model, AppError> {
        let current = self.owned_webhook(viewer, id).await?;
        let mut row: webhook::ActiveModel = current.into();
        let mut c = crate::error::Checks::default();
        if let Some(v) = c.optional(patch.events, |e| valid_events(&e)) {
            row.event_types = Set(v);
        }
        if let Some(v) = c.optional(patch.description, valid_description) {
            row.description = Set(v);
        }
        if let Some(url) = patch.url
            && let Some(v) = c.check(self.checked_url(&url).await)
        {
            row.url = Set(v);
        }
        c.finish()?;
        if let Some(enabled) = patch.enabled {
            row.enabled = Set(enabled);
            if enabled {
                row.disabled_reason = Set(None);
                row.failing_since = Set(None);
            }
        }
        row.updated_at = Set(now());
        let txn = self.db().begin().await?;
        super::bump_version(&txn, viewer.id()).await?;
        let row = row.update(&txn).await?;
        txn.commit().await?;
        self.integration_changed(viewer.id());
        Ok(row)
    }

    /// Deletes an endpoint with its deliveries and their attempts.
    pub async fn delete_webhook(&self, viewer: &Viewer, id: i32) -> Result<(), AppError> {
        self.owned_webhook(viewer, id).await?;
        let txn = self.db().begin().await?;
        super::bump_version(&txn, viewer.id()).await?;
        // Children first, whether or not the database enforces the
        // foreign keys' cascades.
        webhook_attempt::Entity::delete_many()
            .filter(webhook_attempt::Column::WebhookId.eq(id))
            .exec(&txn)
            .await?;
        webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::WebhookId.eq(id))
            .exec(&txn)
            .await?;
        let gone = webhook::Entity::delete_many()
            .filter(webhook::Column::Id.eq(id))
            .filter(webhook::Column::UserId.eq(viewer.id()))
            .exec(&txn)
            .await?;
        if gone.rows_affected == 0 {
            return Err(AppError::NotFound);
        }
        txn.commit().await?;
        self.integration_changed(viewer.id());
        Ok(())
    }

    /// A new secret; the old one keeps signing (both signatures are sent)
    /// for the rotation grace, so receivers can switch without a gap.
    pub async fn rotate_webhook_secret(
        &self,
        viewer: &Viewer,
        id: i32,
    ) -> Result<(webhook::Model, String), AppError> {
        let current = self.owned_webhook(viewer, id).await?;
        let secret = new_secret();
        let t = now();
        let mut row: webhook::ActiveModel = current.clone().into();
        row.previous_secret = Set(Some(current.secret));
        row.previous_secret_until = Set(Some(t + chrono_of(self.settings().rotation_grace)));
        row.secret = Set(secret.clone());
        row.updated_at = Set(t);
        let txn = self.db().begin().await?;
        super::bump_version(&txn, viewer.id()).await?;
        let row = row.update(&txn).await?;
        txn.commit().await?;
        self.integration_changed(viewer.id());
        Ok((row, secret))
    }

    /// Queues a `webhook.test` event for this endpoint only; returns its
    /// `webhook-id`.
    pub async fn send_test_webhook(&self, viewer: &Viewer, id: i32) -> Result<String, AppError> {
        let w = self.owned_webhook(viewer, id).await?;
        let txn = self.db().begin().await?;
        // A write first: on SQLite a transaction that reads before it
        // writes cannot always take the write lock.
        super::bump_version(&txn, viewer.id()).await?;
        let uid = self
            .enqueue(
                &txn,
                viewer.id(),
                types::TEST,
                json!({"webhook": {"id": w.id}, "message": "A test event from printgate."}),
                Some(w.id),
            )
            .await?
            .ok_or_else(|| AppError::invalid("id", "The webhook is disabled; enable it first."))?;
        txn.commit().await?;
        self.integration_changed(viewer.id());
        self.wake_webhooks();
        Ok(uid)
    }

    /// A page of an endpoint's attempts, newest first: `first` (at most
    /// [`MAX_PAGE`]) older than the attempt `after`.
    pub async fn webhook_attempts(
        &self,
        viewer: &Viewer,
        webhook_id: i32,
        first: u64,
        after: Option<i32>,
    ) -> Result<AttemptPage, AppError> {
        self.owned_webhook(viewer, webhook_id).await?;
        let first = first.clamp(1, MAX_PAGE);
        let mut q = webhook_attempt::Entity::find()
            .filter(webhook_attempt::Column::WebhookId.eq(webhook_id));
        if let Some(after) = after {
            q = q.filter(webhook_attempt::Column::Id.lt(after));
        }
        let mut rows = q
            .order_by_desc(webhook_attempt::Column::Id)
            .limit(first + 1)
            .all(self.db())
            .await?;
        let has_next = rows.len() as u64 > first;
        rows.truncate(usize::try_from(first).unwrap_or(usize::MAX));
        let deliveries: Vec<i32> = rows.iter().map(|a| a.delivery_id).collect();
        let messages = self.messages_of(deliveries).await?;
        let attempts = rows
            .into_iter()
            .map(|attempt| {
                let m = messages.get(&attempt.delivery_id);
                AttemptRecord {
                    event_id: m.map(|m| m.uid.clone()).unwrap_or_default(),
                    event_type: m.map(|m| m.event_type.clone()).unwrap_or_default(),
                    attempt,
                }
            })
            .collect();
        Ok(AttemptPage { attempts, has_next })
    }

    /// The message of each delivery, by delivery id.
    async fn messages_of(
        &self,
        deliveries: Vec<i32>,
    ) -> Result<std::collections::HashMap<i32, webhook_message::Model>, AppError> {
        let deliveries = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::Id.is_in(deliveries))
            .all(self.db())
            .await?;
        let ids: Vec<i32> = deliveries.iter().map(|d| d.message_id).collect();
        let messages: std::collections::HashMap<i32, webhook_message::Model> =
            webhook_message::Entity::find()
                .filter(webhook_message::Column::Id.is_in(ids))
                .all(self.db())
                .await?
                .into_iter()
                .map(|m| (m.id, m))
                .collect();
        Ok(deliveries
            .into_iter()
            .filter_map(|d| messages.get(&d.message_id).cloned().map(|m| (d.id, m)))
            .collect())
    }

    /// Writes an event to the outbox inside `c` (the transaction of the
    /// change it reports): a message and a delivery for each of the user's
    /// enabled endpoints subscribed to `event_type` (or only endpoint
    /// `only`). Returns the message's id, or `None` when no endpoint wants
    /// it (then nothing is written).
    pub(super) async fn enqueue(
        &self,
        c: &impl ConnectionTrait,
        user_id: i32,
        event_type: &str,
        data: Value,
        only: Option<i32>,
    ) -> Result<Option<String>, AppError> {
        let mut q = webhook::Entity::find()
            .filter(webhook::Column::UserId.eq(user_id))
            .filter(webhook::Column::Enabled.eq(true));
        if let Some(id) = only {
            q = q.filter(webhook::Column::Id.eq(id));
        }
        let targets: Vec<webhook::Model> = q
            .all(c)
            .await?
            .into_iter()
            .filter(|w| only.is_some() || event_types(w).contains(&event_type))
            .collect();
        if targets.is_empty() {
            return Ok(None);
        }
        let t = now();
        let uid = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let payload = json!({
            "type": event_type,
            "timestamp": t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "data": data,
        });
        let message = webhook_message::ActiveModel {
            uid: Set(uid.clone()),
            user_id: Set(user_id),
            event_type: Set(event_type.to_owned()),
            payload: Set(payload.to_string()),
            created_at: Set(t),
            ..Default::default()
        }
        .insert(c)
        .await?;
        let first = t + chrono_of(
            self.settings()
                .retry_schedule
                .first()
                .copied()
                .unwrap_or_default(),
        );
        let cap = self.limits.max_pending_deliveries;
        for w in targets {
            let waiting = webhook_delivery::Entity::find()
                .filter(webhook_delivery::Column::WebhookId.eq(w.id))
                .filter(webhook_delivery::Column::State.eq(states::PENDING))
                .count(c)
                .await?;
            let full = waiting >= cap;
            let delivery = webhook_delivery::ActiveModel {
                webhook_id: Set(w.id),
                message_id: Set(message.id),
                state: Set(if full {
                    states::FAILED
                } else {
                    states::PENDING
                }
                .to_owned()),
                attempts: Set(0),
                next_attempt_at: Set(first),
                locked_until: Set(None),
                created_at: Set(t),
                finished_at: Set(full.then_some(t)),
                ..Default::default()
            }
            .insert(c)
            .await?;
            if full {
                // The user sees why an event never came.
                webhook_attempt::ActiveModel {
                    delivery_id: Set(delivery.id),
                    webhook_id: Set(w.id),
                    attempted_at: Set(t),
                    status_code: Set(None),
                    duration_ms: Set(0),
                    error: Set(Some(format!(
                        "Not queued: {waiting} deliveries already wait for this endpoint (the limit)."
                    ))),
                    next_retry_at: Set(None),
                    ..Default::default()
                }
                .insert(c)
                .await?;
            }
        }
        Ok(Some(uid))
    }

    /// Tells this instance's delivery worker that something was queued.
    pub(super) fn wake_webhooks(&self) {
        self.webhook_wake.notify_one();
    }

    /// What the worker waits on between passes.
    pub fn webhook_wake(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.webhook_wake.clone()
    }

    /// Endpoints with a delivery due now and not held by any instance
    /// (at most `limit`).
    pub async fn due_webhooks(&self, limit: u64) -> Result<Vec<i32>, AppError> {
        let t = now();
        let ids: Vec<i32> = webhook_delivery::Entity::find()
            .select_only()
            .column(webhook_delivery::Column::WebhookId)
            .distinct()
            .filter(webhook_delivery::Column::State.eq(states::PENDING))
            .filter(webhook_delivery::Column::NextAttemptAt.lte(t))
            .filter(
                webhook_delivery::Column::LockedUntil
                    .is_null()
                    .or(webhook_delivery::Column::LockedUntil.lt(t)),
            )
            .filter(webhook_delivery::Column::WebhookId.in_subquery(enabled_webhooks()))
            .limit(limit)
            .into_tuple()
            .all(self.db())
            .await?;
        Ok(ids)
    }

    /// Claims endpoint `webhook_id`'s oldest due delivery for `lease`: the
    /// claim is one conditional UPDATE, so of two instances (or two
    /// workers) only one gets a delivery.
    pub async fn claim_delivery(
        &self,
        webhook_id: i32,
        lease: Duration,
    ) -> Result<Option<Claimed>, AppError> {
        let t = now();
        let due = || {
            webhook_delivery::Column::State
                .eq(states::PENDING)
                .and(webhook_delivery::Column::NextAttemptAt.lte(t))
                .and(
                    webhook_delivery::Column::LockedUntil
                        .is_null()
                        .or(webhook_delivery::Column::LockedUntil.lt(t)),
                )
        };
        let Some(candidate) = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::WebhookId.eq(webhook_id))
            .filter(due())
            .order_by_asc(webhook_delivery::Column::Id)
            .one(self.db())
            .await?
        else {
            return Ok(None);
        };
        // The condition is checked again by the UPDATE itself: a row
        // another instance claimed in between no longer matches.
        let claimed = webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::LockedUntil,
                Expr::value(t + chrono_of(lease)),
            )
            .filter(webhook_delivery::Column::Id.eq(candidate.id))
            .filter(due())
            .exec_with_returning(self.db())
            .await?
            .into_iter()
            .next();
        let Some(delivery) = claimed else {
            return Ok(None);
        };
        let message = webhook_message::Entity::find_by_id(delivery.message_id)
            .one(self.db())
            .await?;
        let webhook = webhook::Entity::find_by_id(delivery.webhook_id)
            .one(self.db())
            .await?;
        match (message, webhook) {
            (Some(message), Some(webhook)) => Ok(Some(Claimed {
                delivery,
                message,
                webhook,
            })),
            // Deleted in between: nothing left to deliver.
            _ => Ok(None),
        }
    }

    /// Records an attempt and decides what follows: delivered on a 2xx;
    /// on a 410 the endpoint is disabled; otherwise the next attempt is
    /// scheduled (never before the receiver's `retry-after`), or, after
    /// the schedule's last, the delivery failed and the endpoint, failing
    /// all that time, is disabled.
    pub async fn record_attempt(
        &self,
        claimed: &Claimed,
        attempt: Attempt,
    ) -> Result<(), AppError> {
        let t = now();
        let d = &claimed.delivery;
        let success = attempt.status.is_some_and(|s| (200..300).contains(&s));
        let gone = attempt.status == Some(410);
        let attempts = d.attempts + 1;
        let schedule = &self.settings().retry_schedule;
        let next = (!success && !gone)
            .then(|| schedule.get(usize::try_from(attempts).unwrap_or(usize::MAX)))
            .flatten()
            .map(|delay| {
                let jitter = 1.0 + rand::random::<f64>() * 0.2 - 0.1;
                let mut delay = delay.mul_f64(jitter);
                if let Some(after) = attempt.retry_after {
                    delay = delay.max(after.min(RETRY_AFTER_MAX));
                }
                t + chrono_of(delay)
            });
        let error = match (&attempt.error, attempt.status) {
            (Some(e), _) => Some(cut(e)),
            (None, Some(s)) if !success => Some(format!("The receiver answered {s}.")),
            _ => None,
        };
        let txn = self.db().begin().await?;
        // The attempt shows in the owner's reads (`deliveries`).
        super::bump_version(&txn, claimed.webhook.user_id).await?;
        webhook_attempt::ActiveModel {
            delivery_id: Set(d.id),
            webhook_id: Set(d.webhook_id),
            attempted_at: Set(t),
            status_code: Set(attempt.status.map(i32::from)),
            duration_ms: Set(i32::try_from(attempt.duration.as_millis()).unwrap_or(i32::MAX)),
            error: Set(error.clone()),
            next_retry_at: Set(next),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        let state = match (success, next) {
            (true, _) => states::DELIVERED,
            (false, Some(_)) => states::PENDING,
            (false, None) => states::FAILED,
        };
        webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::State, Expr::value(state))
            .col_expr(webhook_delivery::Column::Attempts, Expr::value(attempts))
            .col_expr(
                webhook_delivery::Column::NextAttemptAt,
                Expr::value(next.unwrap_or(d.next_attempt_at)),
            )
            .col_expr(
                webhook_delivery::Column::LockedUntil,
                Expr::value(None::<DateTime<Utc>>),
            )
            .col_expr(
                webhook_delivery::Column::FinishedAt,
                Expr::value((state != states::PENDING).then_some(t)),
            )
            .filter(webhook_delivery::Column::Id.eq(d.id))
            .exec(&txn)
            .await?;
        let w = webhook::Entity::update_many().filter(webhook::Column::Id.eq(d.webhook_id));
        if success {
            w.col_expr(
                webhook::Column::FailingSince,
                Expr::value(None::<DateTime<Utc>>),
            )
            .exec(&txn)
            .await?;
        } else {
            let reason = if gone {
                Some("The receiver answered 410 Gone: it asked for no more deliveries.".to_owned())
            } else if next.is_none() {
                let since = claimed.webhook.failing_since.unwrap_or(d.created_at);
                Some(format!(
                    "Every attempt since {} failed: {} attempts of event {} and the others since; the last: {}",
                    since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    attempts,
                    claimed.message.uid,
                    error.as_deref().unwrap_or("failed"),
                ))
            } else {
                None
            };
            let mut w = w.col_expr(
                webhook::Column::FailingSince,
                Expr::value(claimed.webhook.failing_since.unwrap_or(t)),
            );
            if let Some(reason) = reason {
                w = w
                    .col_expr(webhook::Column::Enabled, Expr::value(false))
                    .col_expr(webhook::Column::DisabledReason, Expr::value(cut(&reason)));
            }
            w.exec(&txn).await?;
        }
        txn.commit().await?;
        self.integration_changed(claimed.webhook.user_id);
        Ok(())
    }

    /// Frees every delivery held by an attempt in flight: at start-up on
    /// SQLite, where this is the only instance, so an attempt a killed
    /// process left is made again at once instead of after its lease.
    pub async fn release_webhook_leases(&self) -> Result<u64, AppError> {
        let res = webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::LockedUntil,
                Expr::value(None::<DateTime<Utc>>),
            )
            .filter(webhook_delivery::Column::State.eq(states::PENDING))
            .filter(webhook_delivery::Column::LockedUntil.is_not_null())
            .exec(self.db())
            .await?;
        Ok(res.rows_affected)
    }

    /// Announces printers whose agents came (`printer.online`) or stayed
    /// away for the grace period (`printer.offline`), each once: the flag
    /// flips in the same transaction as the event is queued, by one
    /// conditional UPDATE, so of many instances sweeping only one
    /// announces it.
    pub async fn sweep_online(&self) -> Result<usize, AppError> {
        let grace = now() - chrono_of(self.settings().offline_grace);
        let came_cond = || {
            printer::Column::AgentInstance
                .is_not_null()
                .and(printer::Column::OnlineAnnounced.eq(false))
                .and(printer::Column::DeletedAt.is_null())
        };
        let left_cond = || {
            printer::Column::AgentInstance
                .is_null()
                .and(printer::Column::OnlineAnnounced.eq(true))
                .and(
                    printer::Column::StatusAt
                        .is_null()
                        .or(printer::Column::StatusAt.lt(grace)),
                )
        };
        // A read first: most passes find nothing, and a write transaction
        // would take SQLite's one write lock from the agents' statuses.
        let any = printer::Entity::find()
            .select_only()
            .column(printer::Column::Id)
            .filter(came_cond().or(left_cond()))
            .into_tuple::<i32>()
            .one(self.db())
            .await?;
        if any.is_none() {
            return Ok(0);
        }
        let txn = self.db().begin().await?;
        let came = printer::Entity::update_many()
            .col_expr(printer::Column::OnlineAnnounced, Expr::value(true))
            .filter(came_cond())
            .exec_with_returning(&txn)
            .await?;
        let left = printer::Entity::update_many()
            .col_expr(printer::Column::OnlineAnnounced, Expr::value(false))
            .filter(left_cond())
            .exec_with_returning(&txn)
            .await?;
        // Only owners with an endpoint are asked about (a thousand agents
        // connecting at once must not mean a thousand lookups).
        let mut owners: Vec<i32> = came.iter().chain(&left).map(|p| p.user_id).collect();
        owners.sort_unstable();
        owners.dedup();
        let hooked: std::collections::HashSet<i32> = webhook::Entity::find()
            .select_only()
            .column(webhook::Column::UserId)
            .filter(webhook::Column::Enabled.eq(true))
            .filter(webhook::Column::UserId.is_in(owners))
            .into_tuple::<i32>()
            .all(&txn)
            .await?
            .into_iter()
            .collect();
        let mut queued = 0;
        for (rows, ty) in [
            (&came, types::PRINTER_ONLINE),
            (&left, types::PRINTER_OFFLINE),
        ] {
            for p in rows
                .iter()
                .filter(|p| p.deleted_at.is_none() && hooked.contains(&p.user_id))
            {
                let data = json!({"printer": printer_data(p)});
                if self
                    .enqueue(&txn, p.user_id, ty, data, None)
                    .await?
                    .is_some()
                {
                    queued += 1;
                }
            }
        }
        txn.commit().await?;
        if queued > 0 {
            self.wake_webhooks();
        }
        Ok(came.len() + left.len())
    }

    /// Drops finished deliveries (with their attempts) and messages past
    /// the retention.
    pub async fn prune_webhooks(&self, retention: Duration) -> Result<u64, AppError> {
        let cutoff = now() - chrono_of(retention);
        let old = || {
            webhook_delivery::Entity::find()
                .select_only()
                .column(webhook_delivery::Column::Id)
                .filter(webhook_delivery::Column::State.ne(states::PENDING))
                .filter(webhook_delivery::Column::FinishedAt.lt(cutoff))
                .into_query()
        };
        let attempts = webhook_attempt::Entity::delete_many()
            .filter(webhook_attempt::Column::DeliveryId.in_subquery(old()))
            .exec(self.db())
            .await?;
        let deliveries = webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::State.ne(states::PENDING))
            .filter(webhook_delivery::Column::FinishedAt.lt(cutoff))
            .exec(self.db())
            .await?;
        let messages = webhook_message::Entity::delete_many()
            .filter(webhook_message::Column::CreatedAt.lt(cutoff))
            .filter(
                webhook_message::Column::Id.not_in_subquery(
                    webhook_delivery::Entity::find()
                        .select_only()
                        .column(webhook_delivery::Column::MessageId)
                        .into_query(),
                ),
            )
            .exec(self.db())
            .await?;
        Ok(attempts.rows_affected + deliveries.rows_affected + messages.rows_affected)
    }
}

/// `SELECT id FROM webhooks WHERE enabled`.
fn enabled_webhooks() -> sea_orm::sea_query::SelectStatement {
    webhook::Entity::find()
        .select_only()
        .column(webhook::Column::Id)
        .filter(webhook::Column::Enabled.eq(true))
        .into_query()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_targets_in_production() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} must be refused");
        }
        for ip in ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[test]
    fn urls_must_be_plain_http_or_https() {
        assert!(valid_url("https://hooks.example/x?y=1").is_ok());
        assert!(valid_url("http://127.0.0.1:9000/").is_ok());
        for bad in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "https://user:pw@example.com/",
            "not a url",
            "https://example.com/#frag",
        ] {
            assert!(valid_url(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn event_types_are_checked_and_deduplicated() {
        assert_eq!(
            valid_events(&["print.started".into(), "print.started".into()]).ok(),
            Some("print.started".into())
        );
        assert!(valid_events(&[]).is_err());
        assert!(valid_events(&["print.exploded".into()]).is_err());
    }

    #[test]
    fn secrets_are_whsec_and_decode_to_32_bytes() {
        let s = new_secret();
        assert!(s.starts_with("whsec_"));
        assert_eq!(secret_bytes(&s).len(), 32);
    }
}
