//! A user's webhook endpoint: where events are posted and the secret they
//! are signed with.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub user_id: i32,
    pub url: String,
    pub description: Option<String>,
    /// The event types it receives, space-separated.
    pub event_types: String,
    /// `whsec_...`: signs every attempt.
    pub secret: String,
    /// The secret before the last rotation, signing too until
    /// `previous_secret_until`.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<DateTimeUtc>,
    pub enabled: bool,
    /// Why printgate disabled it (a 410, or failing for too long).
    pub disabled_reason: Option<String>,
    /// When its current run of failures began (null after a success).
    pub failing_since: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
