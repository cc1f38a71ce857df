//! Connecting to the database (SQLite or PostgreSQL) and migrating it.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

use crate::config::DatabaseConfig;

/// Opens a pool on the configured database.
///
/// SQLite runs in WAL mode with a busy timeout, so concurrent writers wait for
/// each other instead of failing with "database is locked".
pub async fn connect(config: &DatabaseConfig) -> Result<DatabaseConnection, DbErr> {
    let url = with_create_mode(&config.url);
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(config.pool_size)
        .min_connections(1)
        .connect_timeout(config.connect_timeout)
        .acquire_timeout(config.connect_timeout.max(Duration::from_secs(1)) * 2)
        .sqlx_logging(false);
    if config.is_postgres() {
        let ms = config.statement_timeout.as_millis().to_string();
        opts.map_sqlx_postgres_opts(move |o| o.options([("statement_timeout", ms.as_str())]));
    }
    if config.url.starts_with("sqlite:") {
        // An idle timeout or lifetime would let an in-memory database vanish
        // with its last connection.
        opts.idle_timeout(None::<Duration>)
            .max_lifetime(None::<Duration>)
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
    }
    Database::connect(opts).await
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// A SQLite file URL without a `mode` is given `mode=rwc`, so the file is
/// created when missing, as a newcomer expects.
fn with_create_mode(url: &str) -> String {
    if !url.starts_with("sqlite:") || url.contains("mode=") || url.contains(":memory:") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}mode=rwc")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_files_are_created_when_missing() {
        assert_eq!(with_create_mode("sqlite://a.db"), "sqlite://a.db?mode=rwc");
        assert_eq!(
            with_create_mode("sqlite://a.db?mode=ro"),
            "sqlite://a.db?mode=ro"
        );
        assert_eq!(with_create_mode("postgres://h/db"), "postgres://h/db");
    }
}
