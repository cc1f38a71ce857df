//! The printer domain: rules, state changes and queries.
//!
//! Everything here is scoped to a [`Viewer`]: a user only ever reads or
//! changes their own printers, and that is enforced in these functions, not
//! in the resolvers that call them. This module knows nothing of HTTP,
//! GraphQL or JSON wire formats.

mod agent;
mod api_keys;
mod commands;
pub mod detection;
pub mod fleet;
pub mod history;
pub mod prediction;
mod presence;
pub mod printer_events;
mod printers;
pub mod rules;
mod status_writer;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use entity::user;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, Set};

use crate::error::AppError;
use crate::events::{Event, EventBus, EventKind};

pub use agent::{AgentSession, GCodeFile, PrinterEvent, StatusReport};
pub use api_keys::{ApiKeyScope, KeyPrincipal, NewApiKey, is_api_key};
pub use commands::{AgentCommand, CommandDelivery, NoAgents};
pub use printers::{ActionOutcome, NewPrinter, PrinterAction, PrinterPatch};
pub use rules::{ActionOnFailure, AlertOverwrite};

/// The authenticated user a request acts for, and the credential it came
/// with.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: user::Model,
    pub via: Credential,
}

/// What a request authenticated with: what it may do depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A JWT from the identity provider (or minted by `printgate token`):
    /// the user in person, allowed everything.
    Session,
    /// One of the user's API keys; `write` is its scope.
    ApiKey { id: i32, write: bool },
}

impl Viewer {
    pub fn id(&self) -> i32 {
        self.user.id
    }

    /// Refuses a READ API key: every write the viewer makes asks this
    /// first (the one place the scope is checked).
    pub fn may_write(&self) -> Result<(), AppError> {
        match self.via {
            Credential::ApiKey { write: false, .. } => Err(AppError::Forbidden(
                "This API key is read-only (scope READ): it cannot run mutations.".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Refuses every API key: managing keys and webhooks (which hold
    /// secrets) takes the user's own session.
    pub fn in_person(&self) -> Result<(), AppError> {
        match self.via {
            Credential::ApiKey { .. } => Err(AppError::Forbidden(
                "API keys cannot manage API keys or webhooks; use a session token (JWT).".into(),
            )),
            Credential::Session => Ok(()),
        }
    }
}

/// How long a looked-up user is reused before it is read again. Users are
/// only created (never changed by the API) so this only delays an operator's
/// change of `dh_balance` by at most this long.
const VIEWER_TTL: Duration = Duration::from_secs(5);
/// Most users kept; past it the cache starts over.
const VIEWER_CACHE_CAPACITY: usize = 10_000;

type ViewerCache = Mutex<HashMap<(String, Option<String>), (Instant, Viewer)>>;

/// Bounds on what one user or agent can make the service keep.
#[derive(Debug, Clone, Copy)]
pub struct ServiceLimits {
    /// Most printers one user may have (archived ones count).
    pub max_printers_per_user: u64,
    /// Most unrevoked API keys one user may have.
    pub max_api_keys_per_user: u64,
    /// Most webhook endpoints one user may have.
    pub max_webhooks_per_user: u64,
    /// Most deliveries one endpoint may have waiting; past it new events
    /// for that endpoint are recorded as failed ("queue full").
    pub max_pending_deliveries: u64,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        Self {
            max_printers_per_user: 1000,
            max_api_keys_per_user: 50,
            max_webhooks_per_user: 20,
            max_pending_deliveries: 1000,
        }
    }
}

/// The domain service: cheap to clone, shared by every edge.
#[derive(Clone)]
pub struct Service {
    db: DatabaseConnection,
    commands: Arc<dyn CommandDelivery>,
    events: Arc<dyn EventBus>,
    viewers: Arc<ViewerCache>,
    limits: ServiceLimits,
    /// This instance's id: what a printer's `agent_instance` names while
    /// its agent is connected here.
    instance: Arc<str>,
    /// The printer as read for the latest event of each printer: every
    /// subscriber of that printer shares the one read.
    shared_reads: Arc<SharedReads>,
    status_writer: status_writer::Writer,
    /// Verified API keys (briefly) and when each was last recorded used.
    keys: Arc<api_keys::KeyCache>,
    webhook_settings: Arc<webhooks::WebhookSettings>,
    /// Nudges this instance's delivery worker when an event was queued.
    webhook_wake: Arc<tokio::sync::Notify>,
}

/// Most printers whose shared read is kept; past it the map starts over
/// (it only saves reads; nothing depends on an entry being there).
const SHARED_READS: usize = 10_000;

type SharedRead = Arc<tokio::sync::OnceCell<Option<entity::printer::Model>>>;
type SharedReads = Mutex<HashMap<i32, (u64, SharedRead)>>;

impl Service {
    pub fn new(
        db: DatabaseConnection,
        commands: Arc<dyn CommandDelivery>,
        events: Arc<dyn EventBus>,
    ) -> Self {
        Self {
            db,
            commands,
            events,
            viewers: Arc::default(),
            limits: ServiceLimits::default(),
            instance: uuid::Uuid::new_v4().simple().to_string().into(),
            shared_reads: Arc::default(),
            status_writer: Arc::default(),
            keys: Arc::default(),
            webhook_settings: Arc::default(),
            webhook_wake: Arc::default(),
        }
    }

    /// The viewer's printer as it is after `event` (or after a later
    /// change): one read serves every subscriber hearing the same event
    /// (the read starts after the event was published, so it shows the
    /// change), and none is made when the row a later change wrote is
    /// kept.
    pub async fn printer_after(
        &self,
        viewer: &Viewer,
        event: &Event,
    ) -> Result<Option<entity::printer::Model>, AppError> {
        let cell = {
            let Ok(mut reads) = self.shared_reads.lock() else {
                return self.printer(viewer, event.printer_id).await;
            };
            match reads.get(&event.printer_id) {
                // The row of this event, or of a later one: a subscriber
                // behind the bus is handed the newer state (never an older
                // one) instead of reading the database for its old event.
                Some((seq, cell)) if *seq >= event.seq => cell.clone(),
                _ => {
                    if reads.len() >= SHARED_READS {
                        reads.clear();
                    }
                    let cell = SharedRead::default();
                    reads.insert(event.printer_id, (event.seq, cell.clone()));
                    cell
                }
            }
        };
        let read = cell
            .get_or_try_init(|| async {
                entity::printer::Entity::find_by_id(event.printer_id)
                    .filter(entity::printer::Column::DeletedAt.is_null())
                    .one(&self.db)
                    .await
            })
            .await?;
        Ok(read.clone().filter(|p| p.user_id == viewer.id()))
    }

    /// The same service under another instance id (the cluster's).
    pub fn with_instance(mut self, instance: &str) -> Self {
        self.instance = instance.into();
        self
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The same service with other limits.
    pub fn with_webhooks(mut self, settings: webhooks::WebhookSettings) -> Self {
        self.webhook_settings = Arc::new(settings);
        self
    }

    pub fn with_limits(mut self, limits: ServiceLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The user's data version: bumped in the same transaction as every
    /// change the user makes (see [`bump_version`]).
    pub async fn data_version(&self, user_id: i32) -> Result<i64, AppError> {
        let v: Option<i64> = user::Entity::find_by_id(user_id)
            .select_only()
            .column(user::Column::DataVersion)
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(v.unwrap_or(0))
    }

    /// Where changes are announced.
    pub fn events(&self) -> &Arc<dyn EventBus> {
        &self.events
    }

    /// Announces a change to `p`: the one place events are published.
    fn publish(&self, p: &entity::printer::Model, kind: EventKind) {
        self.events.publish(Event {
            printer_id: p.id,
            user_id: p.user_id,
            kind,
            seq: 0,
        });
    }

    /// Announces a change to `p`, which is the row as the change wrote it:
    /// subscribers are handed it instead of reading it.
    fn publish_row(&self, p: entity::printer::Model, kind: EventKind) {
        let seq = self.events.reserve_seq();
        let (printer_id, user_id) = (p.id, p.user_id);
        if let Ok(mut reads) = self.shared_reads.lock() {
            if reads.len() >= SHARED_READS {
                reads.clear();
            }
            let cell = SharedRead::new(tokio::sync::OnceCell::new_with(Some(Some(p))));
            reads.insert(printer_id, (seq, cell));
        }
        self.events.publish(Event {
            printer_id,
            user_id,
            kind,
            seq,
        });
    }

    /// The database handle, for start-up tasks and tests.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The user a token's `sub` names, created on first sight
    /// ("just-in-time provisioning"). A changed `email` claim is stored.
    pub async fn viewer(&self, sub: &str, email: Option<&str>) -> Result<Viewer, AppError> {
        // PostgreSQL cannot store U+0000, and no identity provider issues
        // control characters in these: refuse instead of failing inside.
        if rules::has_control_chars(sub) {
            return Err(AppError::invalid(
                "sub",
                "The token's sub claim contains control characters.",
            ));
        }
        if email.is_some_and(rules::has_control_chars) {
            return Err(AppError::invalid(
                "email",
                "The token's email claim contains control characters.",
            ));
        }
        let key = (sub.to_owned(), email.map(str::to_owned));
        let cached = self.viewers.lock().ok().and_then(|c| {
            c.get(&key)
                .filter(|(at, _)| at.elapsed() < VIEWER_TTL)
                .map(|(_, v)| v.clone())
        });
        if let Some(v) = cached {
            return Ok(v);
        }
        let viewer = self.load_viewer(sub, email).await?;
        if let Ok(mut c) = self.viewers.lock() {
            if c.len() >= VIEWER_CACHE_CAPACITY {
                c.clear();
            }
            c.insert(key, (Instant::now(), viewer.clone()));
        }
        Ok(viewer)
    }

    async fn load_viewer(&self, sub: &str, email: Option<&str>) -> Result<Viewer, AppError> {
        let found = user::Entity::find()
            .filter(user::Column::Sub.eq(sub))
            .one(&self.db)
            .await?;
        let user = match found {
            Some(u) if email.is_none() || u.email.as_deref() == email => u,
            Some(u) => {
                user::Entity::update_many()
                    .col_expr(user::Column::Email, email.map(str::to_owned).into())
                    .filter(user::Column::Id.eq(u.id))
                    .exec(&self.db)
                    .await?;
                user::Model {
                    email: email.map(str::to_owned),
                    ..u
                }
            }
            None => {
                // Two first requests of one new user may race: the unique
                // `sub` lets one insert win and the other do nothing.
                let row = user::ActiveModel {
                    sub: Set(sub.to_owned()),
                    email: Set(email.map(str::to_owned)),
                    dh_balance: Set(0.0),
                    created_at: Set(now()),
                    data_version: Set(0),
                    ..Default::default()
                };
                user::Entity::insert(row)
                    .on_conflict_do_nothing_on([user::Column::Sub])
                    .exec(&self.db)
                    .await?;
                user::Entity::find()
                    .filter(user::Column::Sub.eq(sub))
                    .one(&self.db)
                    .await?
                    .ok_or_else(|| AppError::internal("user vanished right after insert"))?
            }
        };
        Ok(Viewer {
            user,
            via: Credential::Session,
        })
    }
}

/// Bumps a user's data version: called inside the transaction of every
/// change the user makes, so whoever reads the version after the change
/// was answered sees it moved (on any instance). On PostgreSQL the row
/// lock it takes also serialises one user's creations (the printer cap).
pub(crate) async fn bump_version(
    c: &impl sea_orm::ConnectionTrait,
    user_id: i32,
) -> Result<(), AppError> {
    user::Entity::update_many()
        .col_expr(
            user::Column::DataVersion,
            sea_orm::sea_query::ExprTrait::add(
                sea_orm::sea_query::Expr::col(user::Column::DataVersion),
                1,
            ),
        )
        .filter(user::Column::Id.eq(user_id))
        .exec(c)
        .await?;
    Ok(())
}

/// The `n`th (from 1) placeholder of SQL written out for `backend`:
/// PostgreSQL numbers them, SQLite takes them in order.
pub(crate) fn placeholder(backend: sea_orm::DbBackend, n: usize) -> String {
    match backend {
        sea_orm::DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    }
}

/// A std duration as chrono's (one too long for chrono as a century).
pub(crate) fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(36_500))
}

/// The current time, truncated to microseconds: what both SQLite and
/// PostgreSQL store, so a value reads back exactly as it was written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
