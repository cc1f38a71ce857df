//! Start-up and migrations: a migration interrupted half-way (as older
//! printgates could leave one) runs again; several servers starting at once
//! on a fresh SQLite file all come up. On PostgreSQL in CI's second pass.

use migration::{Migrator, MigratorTrait};
use sea_orm::ConnectionTrait;

use crate::helpers::{fresh_database, test_config};

#[tokio::test]
async fn an_interrupted_migration_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _pg) = fresh_database(dir.path()).await;
    let config = printgate::config::DatabaseConfig::new(url.clone(), 2);
    let db = printgate::database::connect(&config).await.unwrap();
    Migrator::up(&db, Some(1)).await.unwrap();
    // What an older printgate killed right after migration 2's first
    // statement left behind: the column, and no record of the migration.
    db.execute_unprepared("ALTER TABLE printers ADD COLUMN pic_at timestamp with time zone")
        .await
        .unwrap();
    printgate::database::migrate(&db).await.unwrap();
    // And migration 3, interrupted the same way.
    db.execute_unprepared("DELETE FROM seaql_migrations WHERE version LIKE 'm20261201%'")
        .await
        .unwrap();
    printgate::database::migrate(&db).await.unwrap();
    let applied = Migrator::get_applied_migrations(&db).await.unwrap();
    assert_eq!(applied.len(), Migrator::migrations().len());
    // The server starts on it.
    let built = printgate::Application::build(test_config(dir.path(), url)).await;
    assert!(built.is_ok(), "{:?}", built.err().map(|e| e.to_string()));
}

#[tokio::test]
async fn servers_starting_at_once_on_a_fresh_sqlite_file_all_come_up() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("fresh.db").display()
    );
    let starts = (0..4).map(|_| {
        let mut c = test_config(dir.path(), url.clone());
        c.database.pool_size = 5;
        printgate::Application::build(c)
    });
    for built in futures_util::future::join_all(starts).await {
        assert!(built.is_ok(), "{:?}", built.err().map(|e| e.to_string()));
    }
}
