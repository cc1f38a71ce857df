//! A G-code file an agent reported at a print's start.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "g_code_files")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub printer_id: i32,
    pub filename: String,
    pub safe_filename: String,
    pub num_bytes: Option<i64>,
    pub agent_signature: String,
    pub url: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
