//! A revision on every printer and print row, bumped by the database on
//! every update of the row, whoever writes it (the API, the status writer,
//! another instance, an operator's SQL), so a reader can tell in one narrow
//! read which rows changed since it last saw them. The trigger, not the
//! writers, keeps it: no writer can forget it. (A writer may add one to it
//! in its own update, as the status writer does: then SQLite's trigger has
//! nothing to do.)
//!
//! On SQLite an `AFTER UPDATE` trigger sets it (SQLite's triggers cannot
//! assign `NEW`) whenever an update left it where it was or moved it back
//! (a stale model written whole); the trigger's own update moves it forward,
//! so it never fires itself again. On PostgreSQL a `BEFORE UPDATE` trigger
//! sets it on the row being written. Row ids are never reused (SQLite's
//! `AUTOINCREMENT`, PostgreSQL's sequences), so an id and a revision name
//! one version of one row.

use sea_orm_migration::sea_orm::DatabaseBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables that carry a revision.
const TABLES: [&str; 2] = ["printers", "prints"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES {
            if !manager.has_column(table, "revision").await? {
                manager
                    .alter_table(
                        Table::alter()
                            .table(Alias::new(table))
                            .add_column(big_integer(Revision::Revision).default(0))
                            .to_owned(),
                    )
                    .await?;
            }
        }
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Sqlite => {
                for table in TABLES {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER IF NOT EXISTS {table}_revision AFTER UPDATE ON {table} \
                         FOR EACH ROW WHEN NEW.revision <= OLD.revision \
                         BEGIN UPDATE {table} SET revision = OLD.revision + 1 WHERE id = NEW.id; END"
                    ))
                    .await?;
                }
            }
            DatabaseBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE OR REPLACE FUNCTION printgate_bump_revision() RETURNS trigger AS $$ \
                     BEGIN NEW.revision := OLD.revision + 1; RETURN NEW; END \
                     $$ LANGUAGE plpgsql",
                )
                .await?;
                for table in TABLES {
                    db.execute_unprepared(&format!(
                        "DROP TRIGGER IF EXISTS {table}_revision ON {table}"
                    ))
                    .await?;
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {table}_revision BEFORE UPDATE ON {table} \
                         FOR EACH ROW EXECUTE FUNCTION printgate_bump_revision()"
                    ))
                    .await?;
                }
            }
            other => {
                return Err(DbErr::Migration(format!(
                    "no revision trigger for {other:?}"
                )));
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for table in TABLES {
            match manager.get_database_backend() {
                DatabaseBackend::Postgres => {
                    db.execute_unprepared(&format!(
                        "DROP TRIGGER IF EXISTS {table}_revision ON {table}"
                    ))
                    .await?
                }
                _ => {
                    db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {table}_revision"))
                        .await?
                }
            };
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(table))
                        .drop_column(Revision::Revision)
                        .to_owned(),
                )
                .await?;
        }
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            db.execute_unprepared("DROP FUNCTION IF EXISTS printgate_bump_revision()")
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Revision {
    Revision,
}
