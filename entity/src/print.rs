//! A print: one run of a G-code file on a printer.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "prints")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub printer_id: i32,
    /// The agent's `current_print_ts`; unique per printer.
    pub ext_id: i64,
    pub filename: String,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    pub cancelled_at: Option<DateTimeUtc>,
    /// When the agent reported the print failed (it is cancelled too).
    pub failed_at: Option<DateTimeUtc>,
    pub alerted_at: Option<DateTimeUtc>,
    pub alert_acknowledged_at: Option<DateTimeUtc>,
    pub alert_muted_at: Option<DateTimeUtc>,
    pub paused_at: Option<DateTimeUtc>,
    pub uploaded_at: Option<DateTimeUtc>,
    pub video_url: Option<String>,
    pub tagged_video_url: Option<String>,
    pub poster_url: Option<String>,
    pub prediction_json_url: Option<String>,
    /// `FAILED`, `NOT_FAILED` or null; the service layer owns the values.
    pub alert_overwrite: Option<String>,
    /// Bumped by the database on every update of the row (a trigger), so a
    /// reader tells a changed print from a kept one without reading it.
    pub revision: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::printer::Entity",
        from = "Column::PrinterId",
        to = "super::printer::Column::Id"
    )]
    Printer,
}

impl Related<super::printer::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Printer.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
