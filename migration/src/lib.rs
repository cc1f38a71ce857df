//! The schema of printgate's database, as an ordered list of migrations.
//!
//! Each migration is self-contained (it never imports the `entity` crate) and
//! portable: the same statements run on SQLite and PostgreSQL. Each runs in
//! a transaction on both (SQLite's DDL is transactional too), and each step
//! checks before it changes anything, so a migration interrupted on a
//! database migrated by an older printgate simply runs again.

pub use sea_orm_migration::prelude::*;

mod m20261127_000001_core;
mod m20261127_000002_agents;
mod m20261201_000003_guards;
mod m20261201_000004_detection;
mod m20261201_000005_integrations;
mod m20261201_000006_history;
mod m20261201_000007_fleet;
mod m20261202_000008_revisions;

/// Applies printgate's migrations in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_core::Migration),
            Box::new(m20261127_000002_agents::Migration),
            Box::new(m20261201_000003_guards::Migration),
            Box::new(m20261201_000004_detection::Migration),
            Box::new(m20261201_000005_integrations::Migration),
            Box::new(m20261201_000006_history::Migration),
            Box::new(m20261201_000007_fleet::Migration),
            Box::new(m20261202_000008_revisions::Migration),
        ]
    }
}
