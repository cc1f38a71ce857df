//! A printer, owned by one user, with the state its agent last reported.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "printers")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub user_id: i32,
    pub name: String,
    pub created_at: DateTimeUtc,
    /// `PAUSE` or `NONE`; the service layer owns the set of values.
    pub action_on_failure: String,
    pub watching_enabled: bool,
    pub tools_off_on_pause: bool,
    pub bed_off_on_pause: bool,
    pub retract_on_pause: f64,
    pub lift_z_on_pause: f64,
    pub detective_sensitivity: f64,
    pub min_timelapse_secs_on_finish: i32,
    pub min_timelapse_secs_on_cancel: i32,
    /// The agent's credential; unique.
    #[sea_orm(unique)]
    pub auth_token: String,
    pub archived_at: Option<DateTimeUtc>,
    /// Soft delete: a deleted printer is gone from every read.
    pub deleted_at: Option<DateTimeUtc>,
    pub agent_name: Option<String>,
    pub agent_version: Option<String>,
    /// The agent's last status object, verbatim.
    pub status: Option<Json>,
    /// The status's own `_ts` (agent clock, unix seconds), for ordering.
    pub status_ts: Option<f64>,
    /// When the last status arrived (server clock), for the 120-second rule.
    pub status_at: Option<DateTimeUtc>,
    /// The agent's last `settings` object, verbatim.
    pub agent_settings: Option<Json>,
    pub current_print_id: Option<i32>,
    pub normalized_p: f64,
    /// When the latest snapshot (in `snapshots`) was taken.
    pub pic_at: Option<DateTimeUtc>,
    /// The instance holding the printer's live agent connection, if any.
    pub agent_instance: Option<String>,
    /// Whether webhooks were last told the printer is online.
    pub online_announced: bool,
    /// The state `status` reports (a name the service owns), written with it.
    pub state: Option<String>,
    /// When the print should end, as `status` estimated it, written with it.
    pub finishes_at: Option<DateTimeUtc>,
    /// When the agent's last status arrived; kept when the status is cleared.
    pub last_seen_at: Option<DateTimeUtc>,
    /// Bumped by the database on every update of the row (a trigger), so a
    /// reader tells a changed printer from a kept one without reading it.
    pub revision: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id"
    )]
    User,
    #[sea_orm(has_many = "super::print::Entity")]
    Print,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl Related<super::print::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Print.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
