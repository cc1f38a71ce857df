//! One event in the webhook outbox: its id (the `webhook-id` header) and
//! the exact body every attempt sends.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// `msg_...`; unique, the same on every retry.
    #[sea_orm(unique)]
    pub uid: String,
    pub user_id: i32,
    pub event_type: String,
    pub payload: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
