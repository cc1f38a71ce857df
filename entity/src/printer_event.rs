//! A printer event reported over HTTP (a filament change, a printer error).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "printer_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub printer_id: i32,
    pub event_type: String,
    pub event_class: Option<String>,
    pub event_title: Option<String>,
    pub event_text: Option<String>,
    pub info_url: Option<String>,
    pub created_at: DateTimeUtc,
    /// The print it happened in, when there was one.
    pub print_id: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
