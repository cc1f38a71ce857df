//! A user: whoever a JWT's `sub` claim names, created on first sight.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// The JWT `sub` that names this user; unique.
    #[sea_orm(unique)]
    pub sub: String,
    pub email: Option<String>,
    /// "AI detection hours" balance; below zero stops failure detection.
    pub dh_balance: f64,
    pub created_at: DateTimeUtc,
    /// Bumped in the same transaction as every change the user makes, so a
    /// cached answer on any instance can tell it is stale.
    pub data_version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::printer::Entity")]
    Printer,
}

impl Related<super::printer::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Printer.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
