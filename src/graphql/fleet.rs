//! The fleet view in the schema: the typed `PrinterState`, the filter and
//! order of `printers`, and `fleet`, the fleet's counts. The queries are
//! the service's (in SQL, on the state stored with each status).

use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject};

use super::context::{request, viewer};
use super::history::OrderDirection;
use crate::service::fleet;
use crate::service::rules;

/// What a printer is doing, read from its agent's status.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum PrinterState {
    /// No status is shown: no agent is connected, or it has said nothing for 120 s.
    Offline,
    /// The agent is connected but its printer is not (the serial port is closed, without an error).
    Disconnected,
    /// Connected and idle.
    Operational,
    /// Printing.
    Printing,
    /// A pause was asked for and is under way.
    Pausing,
    /// Paused.
    Paused,
    /// A resume is under way.
    Resuming,
    /// A cancel is under way.
    Cancelling,
    /// The print is finishing.
    Finishing,
    /// The printer reports an error.
    Error,
    /// The status names no state printgate knows (see `status.state.text`).
    Unknown,
}

impl From<rules::PrinterState> for PrinterState {
    fn from(s: rules::PrinterState) -> Self {
        use rules::PrinterState as S;
        match s {
            S::Offline => Self::Offline,
            S::Disconnected => Self::Disconnected,
            S::Operational => Self::Operational,
            S::Printing => Self::Printing,
            S::Pausing => Self::Pausing,
            S::Paused => Self::Paused,
            S::Resuming => Self::Resuming,
            S::Cancelling => Self::Cancelling,
            S::Finishing => Self::Finishing,
            S::Error => Self::Error,
            S::Unknown => Self::Unknown,
        }
    }
}

impl From<PrinterState> for rules::PrinterState {
    fn from(s: PrinterState) -> Self {
        use PrinterState as S;
        match s {
            S::Offline => Self::Offline,
            S::Disconnected => Self::Disconnected,
            S::Operational => Self::Operational,
            S::Printing => Self::Printing,
            S::Pausing => Self::Pausing,
            S::Paused => Self::Paused,
            S::Resuming => Self::Resuming,
            S::Cancelling => Self::Cancelling,
            S::Finishing => Self::Finishing,
            S::Error => Self::Error,
            S::Unknown => Self::Unknown,
        }
    }
}

/// Which printers a list shows; every given condition must hold.
#[derive(InputObject, Default)]
pub struct PrinterFilter {
    /// In any of these states.
    pub states: Option<Vec<PrinterState>>,
    /// With its agent connected (true) or not (false).
    pub online: Option<bool>,
    /// The name contains this text (case-insensitive, at most 256 characters).
    pub name_contains: Option<String>,
}

impl From<PrinterFilter> for fleet::PrinterFilter {
    fn from(f: PrinterFilter) -> Self {
        Self {
            states: f.states.map(|s| s.into_iter().map(Into::into).collect()),
            online: f.online,
            name_contains: f.name_contains,
        }
    }
}

/// What a printer list is ordered by (then by id, the same way).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum PrinterOrderField {
    /// The printer's id (the order it was added in).
    Id,
    /// Its name, case-insensitive.
    Name,
    /// When it was added.
    CreatedAt,
    /// When its print should end, as the agent estimates (printers without an estimate last).
    FinishesAt,
}

/// The order of a printer list.
#[derive(InputObject)]
pub struct PrinterOrder {
    /// What to order by.
    #[graphql(default_with = "PrinterOrderField::Id")]
    pub field: PrinterOrderField,
    /// Which way.
    #[graphql(default_with = "OrderDirection::Asc")]
    pub direction: OrderDirection,
}

impl From<PrinterOrder> for fleet::PrinterOrder {
    fn from(o: PrinterOrder) -> Self {
        Self {
            field: match o.field {
                PrinterOrderField::Id => fleet::PrinterOrderField::Id,
                PrinterOrderField::Name => fleet::PrinterOrderField::Name,
                PrinterOrderField::CreatedAt => fleet::PrinterOrderField::CreatedAt,
                PrinterOrderField::FinishesAt => fleet::PrinterOrderField::FinishesAt,
            },
            descending: o.direction == OrderDirection::Desc,
        }
    }
}

/// How many printers are in one state.
#[derive(SimpleObject)]
pub struct FleetStateCount {
    /// The state.
    pub state: PrinterState,
    /// How many of the fleet's printers are in it.
    pub count: i32,
}

/// The counts of the viewer's fleet (printers not archived), computed in the database.
pub struct Fleet(fleet::Fleet);

fn count(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The counts of the viewer's fleet (printers not archived), computed in the database.
#[Object]
impl Fleet {
    /// The viewer's id: there is one fleet per user.
    async fn id(&self, ctx: &Context<'_>) -> Result<async_graphql::ID> {
        Ok(async_graphql::ID(viewer(ctx).await?.id().to_string()))
    }
    /// All printers not archived.
    async fn total(&self) -> i32 {
        count(self.0.total)
    }
    /// With an agent connected (to any instance).
    async fn online(&self) -> i32 {
        count(self.0.online)
    }
    /// Without an agent connected.
    async fn offline(&self) -> i32 {
        count(self.0.total.saturating_sub(self.0.online))
    }
    /// In state PRINTING.
    async fn printing(&self) -> i32 {
        count(self.0.count(rules::PrinterState::Printing))
    }
    /// In state PAUSED or PAUSING.
    async fn paused(&self) -> i32 {
        count(
            self.0.count(rules::PrinterState::Paused) + self.0.count(rules::PrinterState::Pausing),
        )
    }
    /// Whose current print has a failure alert not yet acknowledged.
    async fn alerting(&self) -> i32 {
        count(self.0.alerting)
    }
    /// Printing, and the agent estimates the print ends within the hour.
    async fn finishing_within_hour(&self) -> i32 {
        count(self.0.finishing_within_hour)
    }
    /// The count of every state (zero included), in the order of `PrinterState`.
    async fn by_state(&self) -> Vec<FleetStateCount> {
        self.0
            .by_state
            .iter()
            .map(|(s, n)| FleetStateCount {
                state: (*s).into(),
                count: count(*n),
            })
            .collect()
    }
}

/// The fleet's query root fields.
#[derive(Default)]
pub struct FleetQuery;

/// The fleet's query root fields.
#[Object]
impl FleetQuery {
    /// The viewer's fleet at a glance: counts by state, presence, alerts and prints ending soon.
    async fn fleet(&self, ctx: &Context<'_>) -> Result<Fleet> {
        let viewer = viewer(ctx).await?;
        Ok(Fleet(request(ctx)?.service().fleet(viewer).await?))
    }
}
