//! API keys and webhooks in the schema: the types, the `apiKeys`,
//! `webhooks` and `webhook` queries, and their mutations. Secrets (a key,
//! a webhook's signing secret) appear only in the result of the mutation
//! that made them; no read returns them. Every rule is the service's.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, Result, SimpleObject};
use entity::{api_key, webhook};

use super::context::{request, viewer, writer};
use super::query::row_id;
use super::scalars::DateTime;
use super::types::{cursor, cursor_id};
use crate::error::AppError;
use crate::service::webhooks::{self as hooks, types as event};
use crate::service::{ApiKeyScope as Scope, NewApiKey};

/// What an API key may do.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ApiKeyScope {
    /// Queries and subscriptions; mutations are refused with FORBIDDEN.
    Read,
    /// Queries, subscriptions and mutations (but never managing keys or webhooks).
    Write,
}

impl From<ApiKeyScope> for Scope {
    fn from(s: ApiKeyScope) -> Self {
        match s {
            ApiKeyScope::Read => Self::Read,
            ApiKeyScope::Write => Self::Write,
        }
    }
}

/// A long-lived credential for scripts and legacy clients, sent as `X-Api-Key: <key>` or `Authorization: Bearer <key>`. The key itself is shown once, by `createApiKey`.
pub struct ApiKey(pub api_key::Model);

/// A long-lived credential for scripts and legacy clients, sent as `X-Api-Key: <key>` or `Authorization: Bearer <key>`. The key itself is shown once, by `createApiKey`.
#[Object]
impl ApiKey {
    /// The key's id (for `revokeApiKey`).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The name given at creation.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// What the key may do.
    async fn scope(&self) -> ApiKeyScope {
        match Scope::parse(&self.0.scope) {
            Scope::Read => ApiKeyScope::Read,
            Scope::Write => ApiKeyScope::Write,
        }
    }
    /// The key's first characters (`pgk_` and eight more), to tell keys apart.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    /// When the key was created.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
    /// When the key was last used (recorded at most once a minute), if ever.
    async fn last_used_at(&self) -> Option<DateTime> {
        self.0.last_used_at.map(DateTime)
    }
    /// When the key stops working, if it does.
    async fn expires_at(&self) -> Option<DateTime> {
        self.0.expires_at.map(DateTime)
    }
    /// When the key was revoked; a revoked key is refused everywhere.
    async fn revoked_at(&self) -> Option<DateTime> {
        self.0.revoked_at.map(DateTime)
    }
}

/// A new API key and the key itself, shown only here.
#[derive(SimpleObject)]
pub struct CreatedApiKey {
    /// The key's record.
    pub api_key: ApiKey,
    /// The key (`pgk_...`): store it now, it cannot be shown again.
    pub key: String,
}

/// A new API key.
#[derive(InputObject)]
pub struct CreateApiKeyInput {
    /// 1 to 100 characters, to recognise the key by.
    pub name: String,
    /// What the key may do.
    pub scope: ApiKeyScope,
    /// When the key stops working (in the future); never when absent.
    pub expires_at: Option<DateTime>,
}

/// An event a webhook endpoint can receive; the payload's `type` is the dotted name given with each value.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum WebhookEventType {
    /// `print.started`: a print began.
    PrintStarted,
    /// `print.finished`: a print ended normally.
    PrintFinished,
    /// `print.cancelled`: a print was cancelled.
    PrintCancelled,
    /// `print.failed`: the agent reported the print failed, or it was cancelled under a failure alert not marked false.
    PrintFailed,
    /// `failure.alerted`: failure detection raised an alert; `data.paused` says whether the print was paused.
    FailureAlerted,
    /// `printer.online`: a printer's agent connected.
    PrinterOnline,
    /// `printer.offline`: a printer's agent has been away for the grace period (a reconnect within it sends nothing).
    PrinterOffline,
    /// `printer.filament_change`: the printer needs a filament change.
    FilamentChange,
    /// `printer.created`: a printer was added.
    PrinterCreated,
    /// `printer.deleted`: a printer was deleted.
    PrinterDeleted,
    /// `webhook.test`: sent by `sendTestWebhook` only.
    WebhookTest,
}

impl WebhookEventType {
    fn wire(self) -> &'static str {
        match self {
            Self::PrintStarted => event::PRINT_STARTED,
            Self::PrintFinished => event::PRINT_FINISHED,
            Self::PrintCancelled => event::PRINT_CANCELLED,
            Self::PrintFailed => event::PRINT_FAILED,
            Self::FailureAlerted => event::FAILURE_ALERTED,
            Self::PrinterOnline => event::PRINTER_ONLINE,
            Self::PrinterOffline => event::PRINTER_OFFLINE,
            Self::FilamentChange => event::FILAMENT_CHANGE,
            Self::PrinterCreated => event::PRINTER_CREATED,
            Self::PrinterDeleted => event::PRINTER_DELETED,
            Self::WebhookTest => event::TEST,
        }
    }

    fn of(wire: &str) -> Option<Self> {
        [
            Self::PrintStarted,
            Self::PrintFinished,
            Self::PrintCancelled,
            Self::PrintFailed,
            Self::FailureAlerted,
            Self::PrinterOnline,
            Self::PrinterOffline,
            Self::FilamentChange,
            Self::PrinterCreated,
            Self::PrinterDeleted,
            Self::WebhookTest,
        ]
        .into_iter()
        .find(|t| t.wire() == wire)
    }
}

/// An endpoint printgate posts events to, signed per Standard Webhooks.
pub struct Webhook(pub webhook::Model);

/// An endpoint printgate posts events to, signed per Standard Webhooks.
#[Object]
impl Webhook {
    /// The endpoint's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Where events are posted (http or https).
    async fn url(&self) -> &str {
        &self.0.url
    }
    /// A note of the user's.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// The events it receives.
    async fn events(&self) -> Vec<WebhookEventType> {
        hooks::event_types(&self.0)
            .into_iter()
            .filter_map(WebhookEventType::of)
            .collect()
    }
    /// Whether events are delivered to it.
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// Why printgate disabled it (a 410 answer, or every attempt failing for the whole retry schedule); null when enabled or disabled by the user.
    async fn disabled_reason(&self) -> Option<&str> {
        self.0.disabled_reason.as_deref()
    }
    /// When its current run of failed attempts began; null after a success.
    async fn failing_since(&self) -> Option<DateTime> {
        self.0.failing_since.map(DateTime)
    }
    /// Until when the secret before the last rotation signs too.
    async fn previous_secret_expires_at(&self) -> Option<DateTime> {
        self.0
            .previous_secret_until
            .filter(|t| *t > chrono::Utc::now())
            .map(DateTime)
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
    /// When it was last changed.
    async fn updated_at(&self) -> DateTime {
        DateTime(self.0.updated_at)
    }
    /// Its delivery attempts, newest first: `first` (1 to 100) after the cursor `after`.
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, desc = "How many deliveries (1 to 100).")] first: i32,
        #[graphql(desc = "A cursor from a previous page: the deliveries after it.")] after: Option<
            String,
        >,
    ) -> Result<WebhookDeliveryConnection> {
        let viewer = viewer(ctx).await?;
        let after_id = match after.as_deref() {
            None => None,
            Some(c) => Some(cursor_id("attempt", c).ok_or_else(|| {
                AppError::invalid("after", "This is not a cursor from this list.")
            })?),
        };
        let first = u64::try_from(first.max(1)).unwrap_or(1);
        let page = request(ctx)?
            .service()
            .webhook_attempts(viewer, self.0.id, first, after_id)
            .await?;
        let mut conn = Connection::new(after_id.is_some(), page.has_next);
        conn.edges.extend(
            page.attempts
                .into_iter()
                .map(|a| Edge::new(cursor("attempt", a.attempt.id), WebhookDelivery(a))),
        );
        Ok(conn)
    }
}

/// A page of an endpoint's delivery attempts.
pub type WebhookDeliveryConnection = Connection<String, WebhookDelivery>;

/// One attempt to deliver one event to an endpoint.
pub struct WebhookDelivery(hooks::AttemptRecord);

/// One attempt to deliver one event to an endpoint.
#[Object]
impl WebhookDelivery {
    /// The attempt's id.
    async fn id(&self) -> ID {
        ID(self.0.attempt.id.to_string())
    }
    /// The event's `webhook-id`: the same on every attempt of the event.
    async fn event_id(&self) -> &str {
        &self.0.event_id
    }
    /// The event's type.
    async fn event_type(&self) -> Option<WebhookEventType> {
        WebhookEventType::of(&self.0.event_type)
    }
    /// When the attempt was made.
    async fn attempted_at(&self) -> DateTime {
        DateTime(self.0.attempt.attempted_at)
    }
    /// The receiver's HTTP status; null when it did not answer.
    async fn status_code(&self) -> Option<i32> {
        self.0.attempt.status_code
    }
    /// How long the attempt took, in milliseconds.
    async fn duration_ms(&self) -> i32 {
        self.0.attempt.duration_ms
    }
    /// Why it failed; null on success.
    async fn error(&self) -> Option<&str> {
        self.0.attempt.error.as_deref()
    }
    /// When the event will be tried again; null when it was delivered or given up.
    async fn next_retry_at(&self) -> Option<DateTime> {
        self.0.attempt.next_retry_at.map(DateTime)
    }
}

/// An endpoint and its signing secret, shown only here.
#[derive(SimpleObject)]
pub struct WebhookWithSecret {
    /// The endpoint.
    pub webhook: Webhook,
    /// `whsec_...`: verify deliveries with it (e.g. the `standardwebhooks` library); it cannot be shown again.
    pub secret: String,
}

/// A new endpoint.
#[derive(InputObject)]
pub struct CreateWebhookInput {
    /// http or https; in production it may not point at loopback, private, link-local or metadata addresses.
    pub url: String,
    /// The events to receive (at least one).
    pub events: Vec<WebhookEventType>,
    /// A note, up to 500 characters.
    pub description: Option<String>,
}

/// Changes to an endpoint: only the given fields are written.
#[derive(InputObject)]
pub struct UpdateWebhookInput {
    /// A new URL (the same rules as at creation).
    pub url: Option<String>,
    /// The events to receive from now on.
    pub events: Option<Vec<WebhookEventType>>,
    /// A new note; null clears it.
    pub description: MaybeUndefined<String>,
    /// Disable or re-enable it (re-enabling clears `disabledReason`; events queued meanwhile are delivered).
    pub enabled: Option<bool>,
}

fn wires(events: &[WebhookEventType]) -> Vec<String> {
    events.iter().map(|e| e.wire().to_owned()).collect()
}

fn id_of(id: &ID) -> Result<i32, AppError> {
    row_id(id).ok_or(AppError::NotFound)
}

/// The integration queries.
#[derive(Default)]
pub struct IntegrationQuery;

/// The integration queries.
#[Object]
impl IntegrationQuery {
    /// The viewer's API keys, newest first (revoked ones too). Needs a session token: API keys cannot list keys.
    async fn api_keys(&self, ctx: &Context<'_>) -> Result<Vec<ApiKey>> {
        let viewer = viewer(ctx).await?;
        let rows = request(ctx)?.service().api_keys(viewer).await?;
        Ok(rows.into_iter().map(ApiKey).collect())
    }

    /// The viewer's webhook endpoints, oldest first (never their secrets). Needs a session token.
    async fn webhooks(&self, ctx: &Context<'_>) -> Result<Vec<Webhook>> {
        let viewer = viewer(ctx).await?;
        let rows = request(ctx)?.service().webhooks(viewer).await?;
        Ok(rows.into_iter().map(Webhook).collect())
    }

    /// One of the viewer's webhook endpoints; null when it is not theirs.
    async fn webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint's id.")] id: ID,
    ) -> Result<Option<Webhook>> {
        let viewer = viewer(ctx).await?;
        let Some(id) = row_id(&id) else {
            return Ok(None);
        };
        Ok(request(ctx)?
            .service()
            .webhook(viewer, id)
            .await?
            .map(Webhook))
    }
}

/// The integration mutations.
#[derive(Default)]
pub struct IntegrationMutation;

/// The integration mutations.
#[Object]
impl IntegrationMutation {
    /// Creates an API key; the key is in the result only. Needs a session token.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new key.")] input: CreateApiKeyInput,
    ) -> Result<CreatedApiKey> {
        let viewer = writer(ctx).await?;
        let (row, key) = request(ctx)?
            .service()
            .create_api_key(
                viewer,
                NewApiKey {
                    name: input.name,
                    scope: input.scope.into(),
                    expires_at: input.expires_at.map(|t| t.0),
                },
            )
            .await?;
        Ok(CreatedApiKey {
            api_key: ApiKey(row),
            key,
        })
    }

    /// Revokes an API key: refused at once on this instance and within a second on every other. Needs a session token.
    async fn revoke_api_key(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The key's id.")] id: ID,
    ) -> Result<ApiKey> {
        let viewer = writer(ctx).await?;
        let row = request(ctx)?
            .service()
            .revoke_api_key(viewer, id_of(&id)?)
            .await?
            .ok_or(AppError::NotFound)?;
        Ok(ApiKey(row))
    }

    /// Creates a webhook endpoint; its secret is in the result only.
    async fn create_webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new endpoint.")] input: CreateWebhookInput,
    ) -> Result<WebhookWithSecret> {
        let viewer = writer(ctx).await?;
        let (row, secret) = request(ctx)?
            .service()
            .create_webhook(
                viewer,
                hooks::NewWebhook {
                    url: input.url,
                    events: wires(&input.events),
                    description: input.description,
                },
            )
            .await?;
        Ok(WebhookWithSecret {
            webhook: Webhook(row),
            secret,
        })
    }

    /// Changes a webhook endpoint.
    async fn update_webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint's id.")] id: ID,
        #[graphql(desc = "The fields to change.")] input: UpdateWebhookInput,
    ) -> Result<Webhook> {
        let viewer = writer(ctx).await?;
        let patch = hooks::WebhookPatch {
            url: input.url,
            events: input.events.as_deref().map(wires),
            description: match input.description {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(d) => Some(Some(d)),
            },
            enabled: input.enabled,
        };
        let row = request(ctx)?
            .service()
            .update_webhook(viewer, id_of(&id)?, patch)
            .await?;
        Ok(Webhook(row))
    }

    /// Deletes a webhook endpoint and its delivery history; returns its id.
    async fn delete_webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint's id.")] id: ID,
    ) -> Result<ID> {
        let viewer = writer(ctx).await?;
        request(ctx)?
            .service()
            .delete_webhook(viewer, id_of(&id)?)
            .await?;
        Ok(id)
    }

    /// Gives a webhook endpoint a new secret (in the result only); the old one keeps signing beside it for 24 hours.
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint's id.")] id: ID,
    ) -> Result<WebhookWithSecret> {
        let viewer = writer(ctx).await?;
        let (row, secret) = request(ctx)?
            .service()
            .rotate_webhook_secret(viewer, id_of(&id)?)
            .await?;
        Ok(WebhookWithSecret {
            webhook: Webhook(row),
            secret,
        })
    }

    /// Queues a `webhook.test` event for this endpoint only; returns its `webhook-id`.
    async fn send_test_webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint's id.")] id: ID,
    ) -> Result<String> {
        let viewer = writer(ctx).await?;
        Ok(request(ctx)?
            .service()
            .send_test_webhook(viewer, id_of(&id)?)
            .await?)
    }
}
