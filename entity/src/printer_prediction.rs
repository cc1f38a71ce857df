//! A printer's failure-detection state: the running means the detector
//! keeps between frames (detection.md §3).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "printer_predictions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub printer_id: i32,
    pub current_frame_num: i64,
    pub lifetime_frame_num: i64,
    pub current_p: f64,
    pub ewm_mean: f64,
    pub rolling_mean_short: f64,
    pub rolling_mean_long: f64,
    pub normalized_p: f64,
    /// Bumped by every write (optimistic concurrency between instances).
    pub version: i64,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
