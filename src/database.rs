//! Connecting to the database (SQLite or PostgreSQL) and migrating it.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

use crate::config::DatabaseConfig;

/// Rows sqlx's SQLite worker may hand over before its reader takes them:
/// a whole list of a user at the default printer limit (1,000). At most
/// this many rows wait per connection (a printer row is a few KB).
const ROW_BUFFER: usize = 1024;

/// Opens a pool on the configured database.
///
/// SQLite runs in WAL mode with a busy timeout, so concurrent writers wait for
/// each other instead of failing with "database is locked".
pub async fn connect(config: &DatabaseConfig) -> Result<DatabaseConnection, DbErr> {
    let url = with_create_mode(&config.url);
    if url.starts_with("sqlite:") && !url.contains(":memory:") {
        prepare_sqlite(&url).await?;
    }
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
        // with its last connection. Nor is an embedded connection broken by
        // a server going away, so it is not pinged on every acquire: that
        // was a round trip to its worker thread before each statement (a
        // millisecond and more on a busy machine, three per computed list).
        opts.idle_timeout(None::<Duration>)
            .max_lifetime(None::<Duration>)
            .test_before_acquire(false)
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
                    // sqlx's worker thread hands rows over a channel of
                    // this many; at its default (50) a 1,000-printer list
                    // stalls the worker twenty times for the reader to
                    // drain it (two thread switches each).
                    .row_buffer_size(ROW_BUFFER)
            });
    }
    Database::connect(opts).await
}

/// Creates the SQLite file and switches it to WAL over one connection,
/// before any pool exists: a pool's connections opening a fresh file at
/// once race each other for the journal-mode switch ("database is locked").
async fn prepare_sqlite(url: &str) -> Result<(), DbErr> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(1)
        .min_connections(1)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(10))
        });
    let db = retry_busy(|| Database::connect(opts.clone())).await?;
    db.close().await
}

/// Applies every pending migration; a database busy at start (another
/// process migrating, a backup holding a lock) is waited for, not fatal.
/// Two servers starting at once may both try a migration: each runs in a
/// transaction, so the loser's is rolled back whole (its record, or a
/// table, collides) and it tries again, finding the work done.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    let mut attempts = 0;
    loop {
        match retry_busy(|| Migrator::up(db, None)).await {
            Err(e) if attempts < 5 && is_collision(&e) => {
                attempts += 1;
                tracing::warn!(error = %e, "another server migrated at the same time; trying again");
                tokio::time::sleep(Duration::from_millis(100 * attempts)).await;
            }
            other => return other,
        }
    }
}

/// A unique-key collision (SQLite's or PostgreSQL's wording).
fn is_collision(e: &DbErr) -> bool {
    let text = e.to_string();
    text.contains("UNIQUE constraint failed")
        || text.contains("duplicate key value")
        || text.contains("already exists")
}

/// How long start-up waits for a busy database.
const BUSY_WAIT: Duration = Duration::from_secs(30);

/// Runs `op`, again while it fails with "database is locked"/"busy", for
/// up to [`BUSY_WAIT`].
async fn retry_busy<T, F, Fut>(mut op: F) -> Result<T, DbErr>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DbErr>>,
{
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        match op().await {
            Err(e) if is_busy(&e) && started.elapsed() < BUSY_WAIT => {
                tracing::warn!(error = %e, "database busy at start; waiting");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

fn is_busy(e: &DbErr) -> bool {
    let text = e.to_string();
    text.contains("database is locked") || text.contains("database is busy")
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
