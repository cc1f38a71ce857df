//! What the security review needed of the schema: a per-user data version
//! (bumped with every owner write, so a read cache on any instance can tell
//! its answer is stale), agent presence per printer and a heartbeat per
//! instance (a printer is online only while an agent is connected to a
//! live instance), a unique key for G-code file records (an upsert instead
//! of read-then-insert), and an index for pruning printer events by age.
//!
//! Every step checks first, so a run interrupted half-way (on a backend
//! without transactional DDL, or before this crate ran each migration in a
//! transaction) is simply run again.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column("users", "data_version").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(big_integer(Users::DataVersion).default(0))
                        .to_owned(),
                )
                .await?;
        }
        if !manager.has_column("printers", "agent_instance").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(Printers::Table)
                        .add_column(text_null(Printers::AgentInstance))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Instances::Table)
                    .if_not_exists()
                    .col(text(Instances::Id).primary_key())
                    .col(timestamp_with_time_zone(Instances::HeartbeatAt))
                    .to_owned(),
            )
            .await?;
        // Duplicates the old read-then-insert race may have left: keep the
        // first of each, then make the key unique.
        let db = manager.get_connection();
        db.execute_unprepared(
            "DELETE FROM g_code_files WHERE id NOT IN \
             (SELECT MIN(id) FROM g_code_files GROUP BY printer_id, safe_filename, agent_signature)",
        )
        .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_g_code_files_printer_file_signature")
                    .table(GCodeFiles::Table)
                    .col(GCodeFiles::PrinterId)
                    .col(GCodeFiles::SafeFilename)
                    .col(GCodeFiles::AgentSignature)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_printer_events_printer_created")
                    .table(PrinterEvents::Table)
                    .col(PrinterEvents::PrinterId)
                    .col(PrinterEvents::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Instances::Table).to_owned())
            .await?;
        for (table, index) in [
            ("g_code_files", "uq_g_code_files_printer_file_signature"),
            ("printer_events", "idx_printer_events_printer_created"),
        ] {
            manager
                .drop_index(
                    Index::drop()
                        .name(index)
                        .table(Alias::new(table))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Printers::Table)
                    .drop_column(Printers::AgentInstance)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::DataVersion)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    DataVersion,
}

#[derive(DeriveIden)]
enum Printers {
    Table,
    AgentInstance,
}

#[derive(DeriveIden)]
enum Instances {
    Table,
    Id,
    HeartbeatAt,
}

#[derive(DeriveIden)]
enum GCodeFiles {
    Table,
    PrinterId,
    SafeFilename,
    AgentSignature,
}

#[derive(DeriveIden)]
enum PrinterEvents {
    Table,
    PrinterId,
    CreatedAt,
}
