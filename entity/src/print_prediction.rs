//! One judged frame of a print: its failure score and the detections the
//! ML service saw (as text, the service's own list).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "print_predictions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub print_id: i32,
    pub p: f64,
    pub normalized_p: f64,
    /// `[[confidence, [xc, yc, w, h]], ...]`, as text.
    pub detections: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
